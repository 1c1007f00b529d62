"""The discrete line's controller: environments that keep a code prior's context, RandomWalk drawing codes from the
prior, and prior-residual policies (the prior's logits plus a learned residual, with a KL term) trained, saved and
evaluated through it.

Tiny models (conftest ``tiny_vq_paths``: a VQ model with 16 codes and its prior, trained on the DeepMimic clips
shipped with pybullet); no ../shared data.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from envs.vec_env import MotionVecEnv
from policies import evaluate as evaluation
from policies import load_policy
from policies.network import PolicyModule, make_config
from policies.train import main as train_main
from vae import load_manifold
from vae.prior import load_prior, save_prior

K = 16  # codes of the tiny VQ model


def prior_env(paths, task: str = "target", n: int = 4, **options) -> MotionVecEnv:
    return MotionVecEnv(n, task, paths["vq"], code_prior=paths["prior"], array_backend="torch", **options)


def test_the_environment_keeps_each_characters_context_and_observes_the_prior(tiny_vq_paths):
    env = prior_env(tiny_vq_paths)
    obs, _ = env.reset(seed=0)
    core, prior = env.core, env.core.code_prior
    pad, w = prior.config.pad_code, prior.step_context
    assert 1 <= w <= prior.context and core.prior_codes.shape == (4, w) and bool((core.prior_codes == pad).all())
    log_probs = obs[:, env.observation_layout["prior"]]  # (B, K)
    assert log_probs.shape == (4, K) and env.observation_layout["prior"].stop == obs.shape[1]
    torch.testing.assert_close(log_probs.exp().sum(dim=1), torch.ones(4))
    with torch.no_grad():
        direct = torch.log_softmax(prior.step_logits(core.prior_codes, core.prior_conds), dim=1)
    torch.testing.assert_close(log_probs, direct)
    assert env.observation_feature_name(env.observation_layout["prior"].start + 3) == \
        "prior log-probability of code 3"

    codes = torch.tensor([1, 2, 3, 4])
    env.step(codes)
    assert torch.equal(core.prior_codes[:, -1], codes)  # the code taken and the pose it led to
    torch.testing.assert_close(core.prior_conds[:, -1], core.normalized_condition())

    state = env.state_dict()
    after = env.step(codes)[0]
    env.load_state_dict(state)
    assert torch.equal(env.step(codes)[0], after)  # the context is part of the exact state

    # A character put into a new pose forgets the codes that led to the old one; the others keep theirs.
    env.place(torch.tensor([True, False, False, False]), cond=core.cond.clone())
    assert bool((core.prior_codes[0] == pad).all()) and torch.equal(core.prior_codes[1:, -1], codes[1:])


def test_random_walk_draws_its_codes_from_the_prior(tiny_vq_paths):
    class TwoCodes:
        """A stand-in prior that wants code 5 or code 9, one chance in two each, whatever the context."""

        step_context = 2
        config = SimpleNamespace(pad_code=K)

        def step_logits(self, codes, conds, style=None):
            logits = torch.full((codes.shape[0], K), -30.0)
            logits[:, [5, 9]] = 0.0
            return logits

    env = MotionVecEnv(64, "random_walk", tiny_vq_paths["vq"], code_prior=TwoCodes(), array_backend="torch")
    env.reset(seed=0)
    taken = []
    for _ in range(4):
        env.step(torch.zeros(64, dtype=torch.long))  # the action is ignored
        taken.append(env.core.prior_codes[:, -1])
    taken = torch.cat(taken)  # drawn, not the most likely: both codes, about half each
    assert set(taken.tolist()) == {5, 9} and 0.4 < float((taken == 5).float().mean()) < 0.6
    assert bool(torch.isfinite(env.core.cond).all())

    # The same seed, the same walk; without a prior the codes are uniform over the codebook.
    again = MotionVecEnv(64, "random_walk", tiny_vq_paths["vq"], code_prior=TwoCodes(), array_backend="torch")
    again.reset(seed=0)
    for _ in range(4):
        again.step(torch.zeros(64, dtype=torch.long))
    assert torch.equal(again.core.cond, env.core.cond)
    plain = MotionVecEnv(64, "random_walk", tiny_vq_paths["vq"], array_backend="torch")
    plain.reset(seed=0)
    assert len(set(plain.core.sample_prior().tolist())) > 8


def test_a_prior_residual_policy_starts_as_the_prior_and_scores_its_kl():
    f = 10  # task features before the prior's log-probabilities
    config = make_config(obs_size=f + K, latent_size=8, discrete=True, num_actions=K, task="target",
                         prior_residual=True, residual="codes")
    policy = PolicyModule(config)
    assert policy.feature_size == f and policy.obs_rms.mean.shape == (f,)
    g = torch.Generator().manual_seed(0)
    prior_logp = torch.log_softmax(torch.randn(5, K, generator=g) * 2, dim=1)  # (B, K)
    obs = torch.cat((torch.randn(5, f, generator=g), prior_logp), dim=1)  # (B, O)
    x = policy.normalize(obs)
    assert torch.equal(x[:, f:], prior_logp)  # the log-probabilities are not normalised

    actions = torch.arange(5)
    with torch.no_grad():
        policy.actor[-1].weight.zero_()
        policy.actor[-1].bias.zero_()
        logp, _, _, kl = policy.evaluate_actions(x, actions)
    torch.testing.assert_close(logp, prior_logp.gather(1, actions[:, None])[:, 0])  # zero residual = the prior
    torch.testing.assert_close(kl, torch.zeros(5), atol=1e-6, rtol=0)
    assert torch.equal(policy(obs), prior_logp.argmax(dim=1))

    with torch.no_grad():
        policy.actor[-1].bias.copy_(torch.randn(K, generator=g))
        _, _, _, kl = policy.evaluate_actions(x, actions)
        pi = torch.log_softmax(prior_logp + policy.actor[-1].bias, dim=1)
    torch.testing.assert_close(kl, (pi.exp() * (pi - prior_logp)).sum(dim=1))
    assert bool((kl > 0).all())

    # A latent residual: the actor's latent direction q scores code k by its code vector, e_k . q.
    latent = PolicyModule(make_config(obs_size=f + K, latent_size=8, discrete=True, num_actions=K, task="target",
                                      prior_residual=True))
    codebook = torch.randn(K, 8, generator=g) * 3.0
    latent.set_codebook(codebook)
    assert abs(float(latent.codebook.pow(2).mean()) - 1.0) < 1e-5  # unit RMS: the residual's scale is the actor's
    with torch.no_grad():
        latent.actor[-1].weight.zero_()
        latent.actor[-1].bias.copy_(torch.randn(8, generator=g))
        logp, _, _, _ = latent.evaluate_actions(latent.normalize(obs), actions)
        want = torch.log_softmax(prior_logp + latent.actor[-1].bias @ latent.codebook.t(), dim=1)
    torch.testing.assert_close(logp, want.gather(1, actions[:, None])[:, 0])
    with pytest.raises(ValueError, match="codebook of shape"):
        latent.set_codebook(torch.randn(K, 4))
    with pytest.raises(ValueError, match="residual"):
        make_config(obs_size=f + K, latent_size=8, discrete=True, num_actions=K, task="target", prior_residual=True,
                    residual="words")

    with pytest.raises(ValueError, match="prior-residual"):
        make_config(obs_size=30, latent_size=8, discrete=False, num_actions=None, task="target", prior_residual=True)
    old = {k: v for k, v in config.items() if k != "prior_residual"}  # files written before prior-residual policies
    assert PolicyModule(old).prior_residual is False


def train_args(paths, out: Path, *extra: str) -> list[str]:
    return ["--task", "target", "--vae", paths["vq"], "--prior", paths["prior"], "--num-envs", "16",
            "--rollout-steps", "8", "--minibatch-size", "64", "--out", str(out), "--run-dir", str(out.parent / out.stem),
            "--eval-every", "0", "--no-progress", "--no-tensorboard", "--threads", "1", *extra]


def test_training_through_the_prior_records_it_and_the_kl_term_holds_the_policy_near_it(tiny_vq_paths, tmp_path,
                                                                                         capsys):
    free, held = tmp_path / "free.pt", tmp_path / "held.pt"
    assert train_main(train_args(tiny_vq_paths, free, "--steps", "2560", "--prior-kl", "0", "--learning-rate",
                                 "3e-3")) == 0
    assert train_main(train_args(tiny_vq_paths, held, "--steps", "2560", "--prior-kl", "5", "--learning-rate",
                                 "3e-3")) == 0
    kls = {}
    for name in ("free", "held"):
        with open(tmp_path / name / "progress.csv") as fh:
            rows = fh.read().splitlines()
        header = rows[0].split(",")
        kls[name] = float(rows[-1].split(",")[header.index("ppo_prior_kl")])
    assert kls["held"] < 0.5 * kls["free"], kls

    policy = load_policy(free)
    assert policy.prior_residual and policy.prior_path == Path(tiny_vq_paths["prior"]).resolve()
    raw = torch.load(free, weights_only=True)
    assert raw["prior_weights"] and not Path(raw["prior_path"]).is_absolute()

    # policies.evaluate finds the prior through the policy file.
    capsys.readouterr()
    assert evaluation.main([str(free), "--episodes", "4", "--json", "--threads", "1"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["task"] == "target" and 0.0 <= result["success_rate"] <= 1.0

    # Another prior (other weights) or none at all: refused, naming what to do.
    other = tmp_path / "other_prior.pt"
    prior = load_prior(tiny_vq_paths["prior"], load_manifold(tiny_vq_paths["vq"]))
    with torch.no_grad():
        prior.head.weight.add_(0.1)
    save_prior(other, prior, vae=prior.vae_fingerprint, style_names=prior.style_names, extra=prior.extra)
    assert evaluation.main([str(free), "--episodes", "2", "--prior", str(other)]) == 2
    assert "another code prior" in capsys.readouterr().err
    moved = tmp_path / "moved"
    moved.mkdir()
    shutil.copy(free, moved / "free.pt")
    shutil.copy(tiny_vq_paths["vq"], moved / "vq.pt")
    assert evaluation.main([str(moved / "free.pt"), "--vae", str(moved / "vq.pt"), "--episodes", "2"]) == 2
    assert "--prior" in capsys.readouterr().err


def test_prior_flags_are_checked(tiny_vq_paths, tmp_path, capsys):
    out = tmp_path / "p.pt"
    assert train_main(train_args(tiny_vq_paths, out, "--prior-kl", "-1")) == 2
    assert "--prior-kl" in capsys.readouterr().err
    gaussian = ["--vae", tiny_vq_paths["gaussian"]]
    assert train_main(train_args(tiny_vq_paths, out)[:2] + gaussian + train_args(tiny_vq_paths, out)[4:]) == 2
    assert "Gaussian" in capsys.readouterr().err
