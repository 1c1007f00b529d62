"""``python -m characters.build --manifold vq``: a VQ character bundle with its code prior, built, played through the
prior on ONNX Runtime, its ONNX prior step equal to torch's; the flags that cannot work together refused; a
Gaussian build's stages and fingerprints as they were.

The motion is the DeepMimic walk and turn clips of the pybullet wheel; the budget is the smallest a build takes
(0.5 minutes), so the figures are poor and the build goes on past its failed gates: what is tested is the pipeline.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from characters import budget as budgets
from characters.build import BuildConfig, main
from characters.bundle import load_character

TINY_VQ = ["--clips", "walk|turn", "--minutes", "0.5", "--graph-seconds", "30", "--tasks", "target", "--threads", "1",
           "--accept-failed-gates", "--eval-episodes", "4", "--skip-preview", "--manifold", "vq"]


@pytest.fixture(scope="module")
def vq_built(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("vq") / "tiny-vq"
    assert main(["pybullet", "--out", str(out), *TINY_VQ]) == 0
    return out


def test_a_vq_build_makes_a_bundle_with_its_prior_and_prior_residual_policies(vq_built):
    from policies import load_policy
    from vae import load_manifold
    from vae.prior import load_prior, read_prior

    character = load_character(vq_built)
    meta = json.loads((vq_built / "character.json").read_text())
    assert meta["manifold"] == "vq" and meta["prior"] == "prior.pt" and character.prior == vq_built / "prior.pt"
    assert str(vq_built.resolve()) not in (vq_built / "character.json").read_text(), "no machine paths"
    manifold = load_manifold(character.vae)
    assert manifold.discrete
    prior = load_prior(character.prior, manifold)  # it belongs to this VQ model
    assert "optimizer" not in read_prior(character.prior)["extra"], "shipped slim"
    assert 1 <= prior.step_context <= prior.context

    policy = load_policy(character.policy("target"))
    assert policy.prior_residual and policy.prior_path == character.prior.resolve()
    assert load_policy(character.policy("target")).train_args["algo"] == "ppo"
    assert (vq_built / "policies" / "target.pt.onnx" / "manifest.json").is_file()
    assert (vq_built / "prior.pt.onnx" / "prior_step.onnx").is_file()

    state = json.loads((vq_built / "build" / "state.json").read_text())
    assert list(state["stages"]) == ["data", "vae", "prior", "policies", "export", "report"]
    figures = state["stages"]["prior"]["metrics"]
    assert figures["unigram_ce"] > 0 and figures["step_context"] == prior.step_context and "heldout_ce" in figures
    log = (vq_built / "build.log").read_text()
    assert "[prior 3/7" in log and "code prior" in log and "[report 7/7" in log
    assert "id='fig-prior-training'" in (vq_built / "report.html").read_text()


def test_the_app_plays_the_vq_character_through_its_prior_on_onnx_runtime(vq_built):
    from app.simulation import AppConfig, Simulation
    from controller.prior_session import OnnxCodePrior
    from policies.controllers import PolicyController

    sim = Simulation(AppConfig(character=vq_built, task="target", backend="onnx"), verbose=False)
    try:
        assert isinstance(sim.code_prior, OnnxCodePrior) and sim.env.core.code_prior is sim.code_prior
        k = int(sim.backend.num_codes)
        layout = sim.env.observation_layout["prior"]
        assert layout.stop == sim.obs.shape[1] and layout.stop - layout.start == k, "observations end with K log-probs"
        assert isinstance(sim.controller, PolicyController) and sim.controller.backend is not None
        assert "code prior" in sim.controller.label and sim.controller.short_label.endswith("+ prior")
        for _ in range(15):
            sim.step()
        assert np.isfinite(sim.joint_positions()).all()
        torch.testing.assert_close(sim.obs[:, layout].exp().sum(dim=1), torch.ones(1))

        sim.switch_task("random_walk")  # codes drawn from the prior
        for _ in range(10):
            sim.step()
        assert np.isfinite(sim.joint_positions()).all() and "code prior" in sim.controller.label

        # The stand-in's logits are torch's on the contexts the app really built.
        core, prior = sim.env.core, sim.code_prior.prior
        with torch.no_grad():
            expected = prior.step_logits(core.prior_codes, core.prior_conds)
        torch.testing.assert_close(sim.code_prior.step_logits(core.prior_codes, core.prior_conds), expected,
                                   atol=1e-4, rtol=0)
    finally:
        sim.close()


def test_the_onnx_prior_step_matches_torch_with_a_shorter_step_context(vq_built, tmp_path):
    from controller.prior_session import make_code_prior
    from vae.prior import load_prior, save_prior

    prior = load_prior(vq_built / "prior.pt")
    prior.extra = {**prior.extra, "step_context": 4}  # as train_prior chooses it when a short context loses nothing
    path = tmp_path / "prior.pt"
    save_prior(path, prior, vae=prior.vae_fingerprint, style_names=prior.style_names, extra=prior.extra)
    onnx_prior = make_code_prior(path, vq_built / "vae.pt", "onnx")
    assert onnx_prior.step_context == 4 and onnx_prior.config.pad_code == prior.config.num_codes
    assert (tmp_path / "prior.pt.onnx" / "manifest.json").is_file(), "cached beside the prior"
    generator = torch.Generator().manual_seed(0)
    k, cd = prior.config.num_codes, prior.config.cond_size
    for batch in (1, 5):
        codes = torch.randint(k + 1, (batch, 4), generator=generator)  # (B, W') PAD included
        conds = torch.randn(batch, 4, cd, generator=generator)  # (B, W', C*D)
        with torch.no_grad():
            expected = prior.step_logits(codes, conds)
        torch.testing.assert_close(onnx_prior.step_logits(codes, conds), expected, atol=1e-4, rtol=0)
    with pytest.raises(ValueError, match="W' = 4"):
        onnx_prior.step_logits(torch.zeros(1, 16, dtype=torch.long), torch.zeros(1, 16, cd))


def test_play_refuses_a_prior_that_does_not_fit_its_model_naming_the_flag(vq_built, tmp_path, capsys):
    import play
    from characters.bundle import SHIPPED

    gaussian = SHIPPED / "deepmimic" / "vae.pt"
    args = ["--record", str(tmp_path / "x.mp4"), "--headless", "--size", "64x64", "--seconds", "0.1"]
    assert play.main(["--vae", str(gaussian), "--prior", str(vq_built / "prior.pt"), *args]) == 2
    err = capsys.readouterr().err
    assert "--prior" in err and "Gaussian" in err and "Traceback" not in err

    other = torch.load(vq_built / "prior.pt", map_location="cpu", weights_only=True)
    other["vae"]["weights"] = "0" * 16  # the codes of another VQ model
    torch.save(other, tmp_path / "other.pt")
    assert play.main(["--vae", str(vq_built / "vae.pt"), "--prior", str(tmp_path / "other.pt"), *args]) == 2
    err = capsys.readouterr().err
    assert "--prior" in err and "another VQ model" in err


def test_apg_with_a_vq_manifold_is_refused_naming_both_flags(tmp_path, capsys):
    assert main(["pybullet", "--out", str(tmp_path / "out"), "--manifold", "vq", "--algo", "apg"]) == 2
    err = capsys.readouterr().err
    assert "--algo apg" in err and "--manifold vq" in err
    assert not (tmp_path / "out").exists(), "refused before any work"
    assert BuildConfig(out="x", manifold="vq").algo_for("joystick") == "ppo"
    assert BuildConfig(out="x").algo_for("joystick") == "apg"


def fake_context(tmp_path: Path, **changes) -> SimpleNamespace:
    from characters.stage_data import FIGURES_VERSION

    cfg = BuildConfig(out=str(tmp_path), tasks="target,joystick", **changes)
    return SimpleNamespace(cfg=cfg, out=tmp_path, work=tmp_path / "build", inputs=["pybullet"],
                           budget=budgets.split(cfg.minutes, cfg.task_list, prior=cfg.vq),
                           results={"data": {"figures_version": FIGURES_VERSION}})


def test_a_gaussian_build_keeps_its_stages_budget_and_fingerprints(tmp_path):
    from characters import stage_export, stage_policies, stage_vae

    assert BuildConfig(out="x").stages == ["data", "vae", "policies", "export", "preview", "report"]
    assert BuildConfig(out="x", manifold="vq").stages == ["data", "vae", "prior", "policies", "export", "preview",
                                                           "report"]
    learning = 40.0 - budgets.FIXED_MINUTES
    plan = budgets.split(40.0, ["target", "joystick"])
    assert (plan.vae, plan.policy, plan.prior) == (budgets.VAE_SHARE * learning,
                                                   (1 - budgets.VAE_SHARE) * learning / 2, 0.0)
    vq_plan = budgets.split(40.0, ["target", "joystick"], prior=True)
    assert vq_plan.vae == plan.vae and vq_plan.prior > 0 and vq_plan.policy < plan.policy

    gaussian, vq = fake_context(tmp_path), fake_context(tmp_path, manifold="vq")
    settings, _ = stage_vae.settings(gaussian)
    assert settings["recipe"]["model"] == "mixture"
    # Settings of a training term that is off change nothing: builds recorded before it stay done.
    assert not [k for k in settings["recipe"] if k.startswith("adversarial_")]
    assert stage_vae.settings(vq)[0]["recipe"]["model"] == "vq"
    for stage in (stage_policies, stage_export):
        settings, files = stage.settings(gaussian)
        assert "prior" not in settings and tmp_path / "prior.pt" not in files, stage.__name__
        assert tmp_path / "prior.pt" in stage.settings(vq)[1], stage.__name__
