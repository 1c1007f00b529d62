"""vae.prior_walk and vae.compare_manifolds: a VQ model walking on its own, and the autonomous-motion table.

Tiny models trained here (a VQ model, its prior, a Gaussian model) on the DeepMimic walk/run clips shipped with
pybullet (mirrored); no ../shared data.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from policies.train import main as train_policy
from vae import VAEConfig, build_model, load_manifold
from vae.compare_manifolds import COLUMNS, ROWS, main, wasserstein_1d
from vae.metrics import code_usage
from vae.prior import CodePrior, load_prior, prior_config_for
from vae.prior_walk import code_walk, prior_picker, prior_walk, uniform_picker, uniform_walk

W = 8  # context window of the test prior (conftest.TINY_PRIOR_CONTEXT)


@pytest.fixture(scope="module")
def tiny(tiny_vq_paths) -> dict:
    return tiny_vq_paths


@pytest.fixture(scope="module")
def models(tiny):
    vq = load_manifold(tiny["vq"])
    return vq, load_prior(tiny["prior"], vq)


def test_prior_walk_is_seeded_finite_and_starts_with_the_prior(models):
    vq, prior = models
    start = vq.start_frames[:4]  # (B, C, D) raw
    frames = prior_walk(vq, prior, start, 40, torch.Generator().manual_seed(3))
    assert frames.shape == (4, 40, vq.frame_size) and bool(torch.isfinite(frames).all())
    assert torch.equal(frames, prior_walk(vq, prior, start, 40, torch.Generator().manual_seed(3)))
    assert not torch.equal(frames, prior_walk(vq, prior, start, 40, torch.Generator().manual_seed(4)))
    # Greedy (top-k 1) walks do not depend on the seed.
    greedy = prior_walk(vq, prior, start, 10, torch.Generator().manual_seed(1), top_k=1)
    assert torch.equal(greedy, prior_walk(vq, prior, start, 10, torch.Generator().manual_seed(2), top_k=1))

    # The first step is a direct prior call on the start pose, then the decoder's step with that code.
    with torch.no_grad():
        codes, conds = prior.start_context(vq.normalize(start.reshape(4, -1)))
        code = prior.sample_next(codes, conds, generator=torch.Generator().manual_seed(3))  # (B,)
        torch.testing.assert_close(frames[:, 0], vq.step(code, start), atol=1e-4, rtol=1e-4)


def test_prior_walk_keeps_the_code_and_pose_history(models):
    vq, prior = models
    start = vq.start_frames[:3]
    seen = []
    pick = prior_picker(prior, torch.Generator().manual_seed(0), temperature=0.8, top_k=5)

    def recording(codes: torch.Tensor, conds: torch.Tensor) -> torch.Tensor:
        seen.append((codes.clone(), conds.clone()))
        return pick(codes, conds)

    steps = W + 4
    frames, taken = code_walk(vq, start, steps, recording, context=W, pad_code=prior.config.pad_code)
    start_norm = vq.normalize(start.reshape(3, -1))  # (B, C*D)
    for t, (codes, conds) in enumerate(seen):
        assert codes.shape == (3, W) and conds.shape == (3, W, prior.config.cond_size)
        n = min(t, W)  # codes taken so far that fit the window
        assert torch.equal(codes[:, W - n:], taken[:, t - n:t])
        assert bool((codes[:, : W - n] == prior.config.pad_code).all())
        for k in range(W - n):  # padding positions hold the start pose
            torch.testing.assert_close(conds[:, k], start_norm)
        if t:  # the newest position holds the pose the last code led to
            torch.testing.assert_close(conds[:, -1], vq.normalize(frames[:, t - 1]), atol=1e-4, rtol=1e-4)
    # Sampling from the recorded contexts again gives the codes the walk took.
    again = prior_picker(prior, torch.Generator().manual_seed(0), temperature=0.8, top_k=5)
    assert all(torch.equal(again(c, x), taken[:, t]) for t, (c, x) in enumerate(seen))


def test_uniform_walk_covers_the_codebook(models):
    vq, _ = models
    start = vq.start_frames[:8]
    frames, codes = code_walk(vq, start, 100, uniform_picker(vq.num_codes, torch.Generator().manual_seed(0)))
    assert bool(torch.isfinite(frames).all()) and code_usage(codes, vq.num_codes)[1] == vq.num_codes
    walk = uniform_walk(vq, start, 100, torch.Generator().manual_seed(0))
    torch.testing.assert_close(walk, frames)
    with pytest.raises(ValueError, match="expected"):
        uniform_walk(vq, start[:, 0], 5, torch.Generator())


def test_wasserstein_1d():
    a = np.array([0.0, 1.0, 2.0, 5.0])
    assert wasserstein_1d(a, a) == 0.0
    assert wasserstein_1d(a, a + 0.5) == pytest.approx(0.5)
    assert wasserstein_1d(np.zeros(3), np.ones(7)) == pytest.approx(1.0)


def test_compare_manifolds_prints_the_whole_table(tiny, tmp_path, capsys):
    policy = tmp_path / "target.pt"  # a prior-residual Target policy of the VQ model, trained briefly
    assert train_policy(["--task", "target", "--vae", tiny["vq"], "--prior", tiny["prior"], "--num-envs", "8",
                         "--rollout-steps", "8", "--steps", "128", "--out", str(policy), "--run-dir",
                         str(tmp_path / "run"), "--eval-every", "0", "--no-progress", "--no-tensorboard"]) == 0
    args = ["--gaussian", tiny["gaussian"], "--vq", tiny["vq"], "--prior", tiny["prior"], "--data", tiny["data"],
            "--characters", "3", "--steps", "40", "--latency-steps", "3", "--target", f"vq_prior={policy}",
            "--policy-episodes", "4"]
    capsys.readouterr()
    assert main(args) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    result = json.loads(lines[-1])
    assert set(result["rows"]) == set(ROWS)
    policy_columns = {c for c in COLUMNS if c.startswith(("target", "joystick"))}
    for key, row in result["rows"].items():
        assert set(row) == set(COLUMNS), key
        evaluated = {"target_success", "target_minutes"} if key == "vq_prior" else set()
        missing = [c for c, v in row.items() if v is None and not (key == "gaussian" and c.startswith("code"))
                   and c not in policy_columns - evaluated]
        assert not missing, (key, missing)
        assert row["train_minutes"] > 0
        assert row["walk_frames"] == 3 * 40 and row["nonfinite_frames"] == 0 and row["step_ms"] > 0
    assert result["rows"]["vq_uniform"]["recon_teacher"] == result["rows"]["vq_prior"]["recon_teacher"]
    assert all(result["data"][k] is not None for k in ("foot_sliding", "jitter", "pose_diversity"))
    table = [line for line in lines[:-1] if line.startswith("|")]
    assert len(table) == 2 + len(ROWS) + 1 and all(name in "\n".join(table) for name in ROWS.values())
    assert 0.0 <= result["rows"]["vq_prior"]["target_success"] <= 1.0 and " %" in table[2 + 2]

    # A policy file that is not there, or for another task, is refused by its flag before any walk.
    assert main([*args[:-4], "--joystick", f"vq_prior={tmp_path / 'none.pt'}"]) == 2
    assert "--joystick" in capsys.readouterr().err
    assert main([*args[:-4], "--target", f"nowhere={policy}"]) == 2
    assert "--target" in capsys.readouterr().err


def test_bad_input_names_the_flag(tiny, tmp_path, capsys):
    base = {"--gaussian": tiny["gaussian"], "--vq": tiny["vq"], "--prior": tiny["prior"], "--data": tiny["data"]}

    def error(**swap) -> str:
        args = {**base, **{f"--{k}": v for k, v in swap.items()}}
        assert main([x for kv in args.items() for x in kv] + ["--steps", "5", "--json"]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1, err
        return err

    err = error(vq=tiny["gaussian"])
    assert f"--vq {tiny['gaussian']}" in err and "Gaussian" in err
    assert f"--gaussian {tiny['vq']}" in error(gaussian=tiny["vq"])
    assert "--prior" in error(prior=tiny["vq"])
    assert "--prior" in error(prior=str(tmp_path / "missing.pt"))


def test_prior_walk_decodes_and_conditions_in_the_given_style():
    torch.manual_seed(0)
    vq = build_model(VAEConfig(model="vq", frame_size=27, latent_size=8, hidden_size=32, gate_hidden_size=16,
                               num_experts=2, num_codes=16, num_styles=3)).eval()
    prior = CodePrior(prior_config_for(vq, context=4, embed_size=32, num_layers=1, num_heads=4, dropout=0.0)).eval()
    start = torch.randn(2, 1, 27)  # (B, C, D)

    def walk(style) -> torch.Tensor:
        return prior_walk(vq, prior, start, 6, torch.Generator().manual_seed(0), style=style)

    styled = walk(torch.tensor([0, 2]))
    assert torch.equal(styled, walk(torch.tensor([0, 2])))
    assert not torch.allclose(styled, walk(torch.tensor([1, 1])))
    torch.testing.assert_close(walk(torch.eye(3)[[0, 2]]), styled)  # one-hot weights are the indices
