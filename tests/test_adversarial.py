"""vae.adversarial and ``vae.train --adversarial-weight``: discriminator shapes, the GAN losses' values, that generator
steps lower the discriminator's ability to tell, and a tiny VQ run with the flag (finite, logged, resumed exactly, the
discriminator kept out of the model's weights). Bad flag values name the flag."""

from __future__ import annotations

import csv
import json
import math

import pytest
import torch

from vae import compare_manifolds
from vae.adversarial import GAN_LOSSES, WindowDiscriminator, discriminator_accuracy
from vae.train import TrainConfig, main, train
from vae.train_prior import PriorTrainConfig, train_prior

TINY = dict(model="vq", hidden_size=32, latent_size=8, num_experts=2, num_codes=16, batch_size=64, teacher_epochs=1,
            ramping_epochs=1, student_epochs=1, preview_every=0, progress=False, holdout_every=3,
            final_checks=False, adversarial_weight=0.1, adversarial_window=3)


def tiny_config(data: str, out, **overrides) -> TrainConfig:
    return TrainConfig(data=data, out=str(out), **{**TINY, **overrides})


# ---- the discriminator and the losses ------------------------------------------------------------------------

@pytest.mark.parametrize("window", [2, 4, 8])
def test_discriminator_gives_one_logit_per_window(window):
    torch.manual_seed(0)
    disc = WindowDiscriminator(frame_size=7, hidden=16)
    assert disc(torch.randn(5, window, 7)).shape == (5,)
    with pytest.raises(ValueError, match=r"\(B, T, D\)"):
        disc(torch.randn(5, 7))


def test_losses_values_and_signs():
    zero = torch.zeros(4)
    sure_real, sure_fake = torch.full((4,), 2.0), torch.full((4,), -2.0)
    d_hinge, g_hinge = GAN_LOSSES["hinge"]
    d_bce, g_bce = GAN_LOSSES["bce"]
    # A discriminator that cannot tell (logit 0): hinge 1, bce log 2.
    assert float(d_hinge(zero, zero)) == pytest.approx(1.0)
    assert float(d_bce(zero, zero)) == pytest.approx(math.log(2))
    assert float(g_hinge(zero)) == pytest.approx(0.0) and float(g_bce(zero)) == pytest.approx(math.log(2))
    # One beyond the margin on both sides: no hinge loss left; bce small but positive.
    assert float(d_hinge(sure_real, sure_fake)) == 0.0
    assert 0 < float(d_bce(sure_real, sure_fake)) < 0.2
    # The generator's loss falls as its windows look more real, for both losses.
    for g in (g_hinge, g_bce):
        assert float(g(sure_fake)) > float(g(zero)) > float(g(sure_real))
    assert float(discriminator_accuracy(sure_real, sure_fake)) == 1.0
    assert float(discriminator_accuracy(sure_fake, sure_real)) == 0.0
    assert float(discriminator_accuracy(sure_real, sure_real)) == 0.5


@pytest.mark.parametrize("loss", ["hinge", "bce"])
def test_generator_steps_lower_the_discriminators_ability(loss):
    """Smooth windows are real, jittery ones fake: the discriminator learns to tell them apart, and generator steps on
    the fake windows against it make them pass."""
    torch.manual_seed(0)
    d_loss, g_loss = GAN_LOSSES[loss]
    t = torch.arange(4.0)
    phase = torch.rand(256, 1, 6) * 6.28
    real = torch.sin(0.3 * t[None, :, None] + phase)  # (B, T, D) smooth
    fake = (real + 0.8 * torch.randn_like(real)).requires_grad_(True)  # jittery
    disc = WindowDiscriminator(frame_size=6, hidden=16)
    d_opt = torch.optim.Adam(disc.parameters(), lr=3e-3)
    for _ in range(150):
        d_opt.zero_grad()
        d_loss(disc(real), disc(fake.detach())).backward()
        d_opt.step()
    with torch.no_grad():
        trained = float(discriminator_accuracy(disc(real), disc(fake)))
        fake_logit = float(disc(fake).mean())
    assert trained > 0.9
    disc.requires_grad_(False)
    g_opt = torch.optim.Adam([fake], lr=3e-2)
    for _ in range(100):
        g_opt.zero_grad()
        g_loss(disc(fake)).backward()
        g_opt.step()
    with torch.no_grad():
        assert float(disc(fake).mean()) > fake_logit + 1.0
        assert float(discriminator_accuracy(disc(real), disc(fake))) < trained - 0.3


# ---- vae.train --adversarial-weight --------------------------------------------------------------------------

def test_tiny_run_logs_finite_adversarial_losses(tiny_data, tmp_path):
    out = tmp_path / "adv.pt"
    train(tiny_config(tiny_data, out, adversarial_start_epoch=1))
    raw = torch.load(out, weights_only=True)
    history = raw["extra"]["history"]
    assert history[0]["adv_d_loss"] is None  # before --adversarial-start-epoch
    for row in history[1:]:
        for key in ("adv_d_loss", "adv_g_loss", "adv_real_logit", "adv_fake_logit", "adv_d_accuracy"):
            assert math.isfinite(row[key]), key
        assert 0.0 <= row["adv_d_accuracy"] <= 1.0 and math.isfinite(row["loss"])
    assert not any("disc" in name for name in raw["state_dict"])  # the model's weights: no discriminator
    assert set(raw["extra"]["adversarial"]) == {"discriminator", "optimizer"}
    rows = list(csv.DictReader(open(tmp_path / "adv_logs" / "metrics.csv")))
    assert rows[0]["adv_d_loss"] == "" and float(rows[-1]["adv_d_accuracy"]) >= 0
    assert "adv D" in (tmp_path / "adv_logs" / "train.log").read_text()


def test_off_by_default_adds_no_state(tiny_data, tmp_path):
    out = tmp_path / "plain.pt"
    train(tiny_config(tiny_data, out, adversarial_weight=0.0, student_epochs=0, ramping_epochs=0))
    extra = torch.load(out, weights_only=True)["extra"]
    assert "adversarial" not in extra and "adv_d_loss" not in extra["history"][-1]


def test_resume_reaches_the_same_weights_and_discriminator(tiny_data, tmp_path):
    epochs = dict(teacher_epochs=1, ramping_epochs=2, student_epochs=1, checkpoint_every=2)
    straight = tmp_path / "straight.pt"
    train(tiny_config(tiny_data, straight, **epochs))
    split = tmp_path / "split.pt"
    train(tiny_config(tiny_data, split, stop_after_epoch=2, **epochs))
    train(tiny_config(tiny_data, split, resume=str(split), **epochs))
    a = torch.load(straight, weights_only=True)
    b = torch.load(split, weights_only=True)
    assert b["extra"]["epoch"] == 4
    for name, tensor in a["state_dict"].items():
        assert torch.allclose(tensor.float(), b["state_dict"][name].float(), atol=1e-6), name
    disc_a, disc_b = a["extra"]["adversarial"]["discriminator"], b["extra"]["adversarial"]["discriminator"]
    for name, tensor in disc_a.items():
        assert torch.allclose(tensor, disc_b[name], atol=1e-6), name
    assert [h["adv_d_loss"] for h in a["extra"]["history"]] == pytest.approx(
        [h["adv_d_loss"] for h in b["extra"]["history"]], abs=1e-6)


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--adversarial-weight", "-1"], "--adversarial-weight must be >= 0"),
        (["--adversarial-weight", "nan"], "--adversarial-weight must be >= 0"),
        (["--adversarial-weight", "0.1", "--adversarial-window", "1"], "--adversarial-window must be between 2"),
        (["--adversarial-weight", "0.1", "--adversarial-window", "9"], "--adversarial-window must be between 2"),
        (["--adversarial-weight", "0.1", "--adversarial-loss", "wgan"], "--adversarial-loss 'wgan'"),
        (["--adversarial-weight", "0.1", "--adversarial-start-epoch", "3"], "--adversarial-start-epoch must be in"),
    ],
)
def test_bad_adversarial_flags_name_the_flag(tiny_data, tmp_path, capsys, flags, message):
    argv = ["--data", tiny_data, "--out", str(tmp_path / "x.pt"), "--no-progress", "--model", "vq",
            "--teacher-epochs", "1", "--ramping-epochs", "1", "--student-epochs", "1", *flags]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("vae.train: error:") and message in err
    assert not (tmp_path / "x.pt").exists()


def test_refused_under_torchrun(tiny_data, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    assert main(["--data", tiny_data, "--out", str(tmp_path / "x.pt"), "--no-progress", "--model", "vq",
                 "--adversarial-weight", "0.1"]) == 2
    assert "not supported under torchrun" in capsys.readouterr().err


# ---- vae.compare_manifolds --vq-adversarial --prior-adversarial ------------------------------------------------

@pytest.fixture(scope="module")
def models(tiny_data, tmp_path_factory) -> dict:
    """A Gaussian model, a VQ model, an adversarial VQ model and a prior for each VQ model, all trained briefly."""
    root = tmp_path_factory.mktemp("adv_compare")
    paths = {name: str(root / f"{name}.pt") for name in ("gaussian", "vq", "prior", "vq_adv", "prior_adv")}
    one_epoch = dict(teacher_epochs=1, ramping_epochs=0, student_epochs=0)
    train(tiny_config(tiny_data, paths["gaussian"], model="mixture", adversarial_weight=0.0, **one_epoch))
    train(tiny_config(tiny_data, paths["vq"], adversarial_weight=0.0, **one_epoch))
    train(tiny_config(tiny_data, paths["vq_adv"], **one_epoch))
    for vq, prior in (("vq", "prior"), ("vq_adv", "prior_adv")):
        train_prior(PriorTrainConfig(vae=paths[vq], data=tiny_data, out=paths[prior], context=4, embed_size=16,
                                     num_layers=1, num_heads=2, epochs=1, batch_size=64, holdout_every=3,
                                     progress=False))
    return paths


def compare_args(models: dict, tiny_data: str, **adversarial) -> list[str]:
    args = ["--gaussian", models["gaussian"], "--vq", models["vq"], "--prior", models["prior"], "--data", tiny_data,
            "--characters", "2", "--steps", "20", "--latency-steps", "2", "--json"]
    return args + [x for k, v in adversarial.items() for x in (f"--{k.replace('_', '-')}", v)]


def test_compare_adds_the_adversarial_row_and_keeps_the_others(models, tiny_data, capsys):
    assert compare_manifolds.main(compare_args(models, tiny_data)) == 0
    plain = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert set(plain["rows"]) == set(compare_manifolds.ROWS)
    assert compare_manifolds.main(compare_args(models, tiny_data, vq_adversarial=models["vq_adv"],
                                               prior_adversarial=models["prior_adv"])) == 0
    both = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    row = both["rows"]["vq_adv_prior"]
    assert row["walk_frames"] == 2 * 20 and row["step_ms"] > 0 and row["codes_used"] >= 1
    assert all(row[c] is not None for c in ("recon_teacher", "recon_rollout8", "foot_sliding", "jitter"))
    for key in compare_manifolds.ROWS:  # the optional row draws after the others: their values are unchanged
        same = {c: v for c, v in plain["rows"][key].items() if c != "step_ms"}
        assert same == {c: v for c, v in both["rows"][key].items() if c != "step_ms"}, key
    table = compare_manifolds.markdown_table(both)
    assert "| VQ + prior + adversarial |" in table


def test_compare_adversarial_flags_go_together(models, tiny_data, capsys):
    assert compare_manifolds.main(compare_args(models, tiny_data, vq_adversarial=models["vq_adv"])) == 2
    assert "--vq-adversarial and --prior-adversarial go together" in capsys.readouterr().err
    assert compare_manifolds.main(compare_args(models, tiny_data, vq_adversarial=models["gaussian"],
                                               prior_adversarial=models["prior_adv"])) == 2
    assert "--vq-adversarial" in capsys.readouterr().err
    assert compare_manifolds.main(compare_args(models, tiny_data, vq_adversarial=models["vq_adv"],
                                               prior_adversarial=models["vq"])) == 2
    assert "--prior-adversarial" in capsys.readouterr().err


def test_prior_picker_survives_a_diverged_character():
    """A character whose poses went non-finite must not stop the others' walks (NaN logits in the draw)."""
    seen = {}

    def pick(codes, conds):
        seen["conds"] = conds
        return torch.zeros(codes.shape[0], dtype=torch.long)

    conds = torch.tensor([[[1.0, float("nan")]], [[float("inf"), 1e9]], [[0.5, -2.0]]])  # (B, W, CD)
    compare_manifolds.finite_conditions(pick)(torch.zeros(3, 1, dtype=torch.long), conds)
    limit = compare_manifolds.PRIOR_COND_LIMIT
    assert seen["conds"].tolist() == [[[1.0, 0.0]], [[0.0, limit]], [[0.5, -2.0]]]
