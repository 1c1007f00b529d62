"""vae.prior, vae.train_prior and vae.prior_onnx: the transformer prior over VQ codes.

Causality, seeded sampling, the file round trip, ONNX parity, bad inputs, and a short training run on a tiny VQ
model trained here on the DeepMimic walk/run clips shipped with pybullet (mirrored).
"""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch

from mocap.skeleton import Skeleton
from vae import VAEConfig, build_model, load_manifold, save_checkpoint
from vae.prior import (
    STEP_CONTEXT_TOLERANCE,
    CodePrior,
    check_prior_fits,
    load_prior,
    prior_config_for,
    push_context,
    save_prior,
    vae_fingerprint,
)
from vae.prior_onnx import export_prior_step, step_inputs, step_latency_ms
from vae.train import TrainConfig, train
from vae.train_prior import PriorTrainConfig, choose_step_context, main, train_prior

W = 8  # context window of the test priors
SIZES = dict(context=W, embed_size=32, num_layers=2, num_heads=4, dropout=0.0)


@pytest.fixture(scope="module")
def tiny_vq(tiny_data, tmp_path_factory) -> str:
    """A VQ Motion VAE (16 codes) trained for one epoch on the tiny data."""
    out = tmp_path_factory.mktemp("vq") / "vq.pt"
    train(TrainConfig(data=tiny_data, out=str(out), model="vq", hidden_size=32, latent_size=8, num_experts=2,
                      num_codes=16, batch_size=64, teacher_epochs=1, ramping_epochs=0, student_epochs=0,
                      preview_every=0, progress=False, holdout_every=3, final_checks=False))
    return str(out)


def styled_vq(frame_size: int = 27, styles: int = 3):
    torch.manual_seed(0)
    manifold = build_model(VAEConfig(model="vq", frame_size=frame_size, latent_size=8, hidden_size=32,
                                     gate_hidden_size=16, num_experts=2, num_codes=16, num_styles=styles)).eval()
    data = torch.randn(64, frame_size) * 0.1 + 1.0
    manifold.set_normalization(data.mean(0), data.std(0))
    return manifold


def random_context(prior: CodePrior, batch: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    cfg = prior.config
    codes = torch.randint(cfg.num_codes + 1, (batch, cfg.context), generator=g)  # (B, W), PAD included
    return codes, torch.randn(batch, cfg.context, cfg.cond_size, generator=g)  # (B, W, CD)


def test_changing_a_future_position_never_changes_past_logits():
    torch.manual_seed(0)
    prior = CodePrior(prior_config_for(styled_vq(), **SIZES)).eval()
    codes, conds = random_context(prior, 3, seed=1)
    style = torch.tensor([0, 2, 1])
    with torch.no_grad():
        before = prior(codes, conds, style)  # (B, W, K)
        for t in range(W - 1):
            later_codes, later_conds = codes.clone(), conds.clone()
            later_codes[:, t + 1:] = (later_codes[:, t + 1:] + 5) % (prior.num_codes + 1)
            later_conds[:, t + 1:] += 3.0
            after = prior(later_codes, later_conds, style)
            torch.testing.assert_close(after[:, : t + 1], before[:, : t + 1], atol=1e-6, rtol=0)
            assert (after[:, t + 1:] - before[:, t + 1:]).abs().max() > 1e-3  # the future positions do see it
        # A shorter history is the first positions of a longer one.
        torch.testing.assert_close(prior(codes[:, :3], conds[:, :3], style), before[:, :3], atol=1e-6, rtol=0)


def test_sampling_is_deterministic_from_a_seed():
    torch.manual_seed(0)
    manifold = styled_vq()
    prior = CodePrior(prior_config_for(manifold, **SIZES)).eval()

    def rollout(seed: int, **kw) -> torch.Tensor:
        g = torch.Generator().manual_seed(seed)
        cond = torch.randn(4, prior.config.cond_size, generator=torch.Generator().manual_seed(9))  # (B, CD)
        codes, conds = prior.start_context(cond)
        assert (codes == prior.config.pad_code).all() and conds.shape == (4, W, prior.config.cond_size)
        taken = []
        with torch.no_grad():
            for _ in range(3 * W):
                code = prior.sample_next(codes, conds, style=torch.tensor([0, 1, 2, 0]), generator=g, **kw)  # (B,)
                z = manifold.latent_from_action(code)
                cond = manifold.decode(z, cond, style=torch.tensor([0, 1, 2, 0]))  # the pose the code leads to
                codes, conds = push_context(codes, conds, code, cond)
                taken.append(code)
        return torch.stack(taken, 1)  # (B, 3W)

    first = rollout(7)
    assert first.shape == (4, 3 * W) and int(first.min()) >= 0 and int(first.max()) < prior.num_codes
    assert torch.equal(first, rollout(7))
    assert not torch.equal(first, rollout(8))
    assert torch.equal(rollout(7, temperature=0.7, top_k=3), rollout(7, temperature=0.7, top_k=3))
    codes, conds = random_context(prior, 5, seed=3)
    with torch.no_grad():
        greedy = prior.step_logits(codes, conds).argmax(-1)
        assert torch.equal(prior.sample_next(codes, conds, top_k=1, generator=torch.Generator().manual_seed(0)),
                           greedy)
    with pytest.raises(ValueError, match="temperature"):
        prior.sample_next(codes, conds, temperature=0.0)


def test_onnx_step_matches_torch(tmp_path):
    manifold = styled_vq()
    torch.manual_seed(1)
    prior = CodePrior(prior_config_for(manifold, **SIZES)).eval()
    path = tmp_path / "prior_step.onnx"
    info = export_prior_step(prior, manifold, path)
    assert [(i["name"], i["shape"], i["dtype"]) for i in info["inputs"]] == [
        ("codes", ["batch", W], "int64"), ("cond_raw", ["batch", W, 27], "float32"), ("style", ["batch", 3], "float32")]
    assert info["outputs"][0]["shape"] == ["batch", 16] and info["parity_max_error"] <= 1e-4

    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = step_inputs(prior, manifold, 5, torch.Generator().manual_seed(4))
    got = session.run(["logits"], {n: t.numpy() for n, t in x.items()})[0]
    with torch.no_grad():
        cond_norm = manifold.normalize(x["cond_raw"])  # (B, W, CD) raw -> normalised, as the graph does
        expected = prior.step_logits(x["codes"], cond_norm, x["style"]).numpy()
    np.testing.assert_allclose(got, expected, atol=1e-4, rtol=0)
    assert step_latency_ms(path, prior, manifold, calls=5, repeats=1) > 0


def test_prior_file_round_trip_and_fit(tmp_path):
    manifold = styled_vq()
    torch.manual_seed(2)
    prior = CodePrior(prior_config_for(manifold, **SIZES)).eval()
    path = tmp_path / "prior.pt"
    save_prior(path, prior, vae=vae_fingerprint(manifold), style_names=["a", "b", "c"], extra={"epoch": 3})
    raw = torch.load(path, weights_only=True)
    assert raw["format"] == "mvae-prior" and raw["config"]["context"] == W and raw["extra"]["epoch"] == 3
    loaded = load_prior(path, manifold)
    assert loaded.style_names == ["a", "b", "c"] and not loaded.training
    codes, conds = random_context(prior, 2, seed=5)
    with torch.no_grad():
        assert torch.equal(loaded(codes, conds), prior(codes, conds))

    other = styled_vq()
    with torch.no_grad():
        other.quantizer.codebook.add_(1.0)  # same sizes, other codes
    with pytest.raises(ValueError, match="another VQ model"):
        check_prior_fits(loaded, other)
    with pytest.raises(ValueError, match="codes"):
        load_prior(path, styled_vq(styles=0))
    with pytest.raises(ValueError, match="Gaussian"):
        check_prior_fits(loaded, build_model(VAEConfig(frame_size=27, hidden_size=16, latent_size=4)))


def write_checkpoint(path, manifold, skeleton, fingerprint="none"):
    save_checkpoint(path, manifold, skeleton=skeleton, fps=30.0, dataset_fingerprint=fingerprint)


def test_clear_errors_for_a_gaussian_model_and_other_skeletons(tiny_data, tiny_vq, tmp_path, capsys):
    skeleton = load_manifold(tiny_vq).skeleton
    gaussian = tmp_path / "gaussian.pt"
    write_checkpoint(gaussian, build_model(VAEConfig(frame_size=183, hidden_size=16, latent_size=4)), skeleton)
    out = str(tmp_path / "prior.pt")
    assert main(["--vae", str(gaussian), "--data", tiny_data, "--out", out, "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert f"--vae {gaussian}" in err and "Gaussian" in err and "--model vq" in err

    four = Skeleton(["hips", "spine", "neck", "head"], [-1, 0, 1, 2], np.full((4, 3), 0.1))
    small = tmp_path / "small_vq.pt"
    write_checkpoint(small, styled_vq(frame_size=3 + 12 * 4, styles=0), four)
    assert main(["--vae", str(small), "--data", tiny_data, "--out", out, "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert f"--data {tiny_data}" in err and "183 features (15 joints)" in err and str(small) in err

    assert main(["--vae", tiny_vq, "--data", str(tmp_path / "missing.npz"), "--out", out]) == 2
    assert "--data" in capsys.readouterr().err
    assert main(["--vae", out, "--data", tiny_data, "--out", out]) == 2  # no such file yet
    assert "--vae" in capsys.readouterr().err


def test_training_lowers_the_loss_and_resumes_exactly(tiny_data, tiny_vq, tmp_path):
    common = dict(vae=tiny_vq, data=tiny_data, context=W, embed_size=32, num_layers=2, num_heads=4, epochs=8,
                  batch_size=32, learning_rate=3e-3, holdout_every=3, progress=False)
    whole = tmp_path / "whole.pt"
    train_prior(PriorTrainConfig(out=str(whole), **common))
    raw = torch.load(whole, weights_only=True)
    history = raw["extra"]["history"]
    assert [h["epoch"] for h in history] == list(range(1, 9)) and raw["extra"]["epoch"] == 8
    assert history[-1]["train_ce"] < 0.7 * history[0]["train_ce"]
    # The context and the pose tell more than the codes' frequencies, on held-out motion too.
    unigram = raw["extra"]["unigram_ce"]
    assert history[-1]["train_ce"] < unigram - 0.5 and history[-1]["heldout_ce"] < unigram
    assert raw["vae"]["weights"] and raw["extra"]["train_config"]["vae"] == "vq.pt"  # no machine paths
    with open(tmp_path / "whole_logs" / "metrics.csv") as f:
        assert [int(row["epoch"]) for row in csv.DictReader(f)] == list(range(1, 9))
    prior = load_prior(whole, load_manifold(tiny_vq))
    assert prior.config.num_codes == 16 and prior.config.cond_size == 183
    # The finished prior measured how much of its window a rollout step needs, and steps with that much.
    curve = raw["extra"]["context_ce"]
    assert sorted(curve, key=int) == ["1", "2", "4", "8"]
    assert prior.step_context == raw["extra"]["step_context"] == choose_step_context(
        {int(w): ce for w, ce in curve.items()}, W)
    assert curve[str(prior.step_context)] <= curve[str(W)] + STEP_CONTEXT_TOLERANCE

    part = tmp_path / "part.pt"
    train_prior(PriorTrainConfig(out=str(part), stop_after_epoch=3, **common))
    assert torch.load(part, weights_only=True)["extra"]["epoch"] == 3
    train_prior(PriorTrainConfig(out=str(part), resume=str(part), **common))
    resumed = torch.load(part, weights_only=True)
    assert [h["epoch"] for h in resumed["extra"]["history"]] == list(range(1, 9))
    for name, value in raw["state_dict"].items():
        assert torch.equal(resumed["state_dict"][name], value), name


def test_the_step_context_is_the_shortest_within_the_tolerance():
    curve = {1: 2.0, 2: 1.80, 4: 1.705, 8: 1.70, 16: 1.71}
    assert choose_step_context(curve, 16) == 4  # 1.705 <= 1.71 + tolerance; 1.80 is not
    assert choose_step_context({1: 1.0, 2: 1.0}, 2) == 1
    assert choose_step_context({}, 16) == 16
