"""Analytic policy gradients: the environment's differentiable step, and a real (tiny) APG training run."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from envs.toy_manifold import ToyManifold
from envs.vec_env import MotionVecEnv
from policies import evaluate as evaluation
from policies import load_policy
from policies.train import Trainer, train
from policies.train_args import TrainArgs


def apg_args(tmp_path, **changes) -> TrainArgs:
    args = TrainArgs(task="target", vae="toy", algo="apg", num_envs=64, rollout_steps=16, hidden_sizes=(64, 64),
                     critic_hidden_sizes=(16,), threads=1, progress=False, tensorboard=False, eval_every=0,
                     checkpoint_every=20, steps=64 * 16 * 40, out=str(tmp_path / "policy.pt"),
                     run_dir=str(tmp_path / "run"))
    return dataclasses.replace(args, **changes)


def test_the_reward_is_differentiable_in_the_actions_and_detach_state_cuts_the_graph():
    env = MotionVecEnv(8, "joystick", array_backend="torch", foot_slide_weight=0.3)  # the shipped character's VAE
    env.reset(seed=0)
    first = torch.zeros(8, env.core.latent_size, requires_grad=True)
    total = env.step_differentiable(first).reward.sum()
    for _ in range(3):  # later frames depend on the first action through the pose and the root
        total = total + env.step_differentiable(torch.zeros(8, env.core.latent_size)).reward.sum()
    total.backward()
    assert first.grad is not None and float(first.grad.abs().sum()) > 0
    env.detach_state()
    assert not env.core.cond.requires_grad and not env.core.yaw.requires_grad and not env.task.speed.requires_grad
    with torch.no_grad():  # the Gymnasium step never records a graph
        obs, *_ = env.step(torch.zeros(8, env.core.latent_size))
    assert not obs.requires_grad


def test_apg_learns_the_toy_joystick_in_seconds_and_writes_the_same_policy_file(tmp_path):
    # The toy's latent is its speed and turn (no decoder to keep it near): no latent penalty.
    args = apg_args(tmp_path, task="joystick", learning_rate=3e-3, latent_penalty=0.0, steps=64 * 16 * 100)
    summary = train(args, quiet=True, on_update=lambda metrics: None)
    assert summary["update"] == 100 and summary["apg_skipped"] == 0 and "heading_error_deg" in summary
    policy = load_policy(tmp_path / "policy.pt")
    assert policy.task == "joystick" and not policy.discrete

    def score(make):
        return evaluation.evaluate(make, task="joystick", vae=ToyManifold(), episodes=32, seed=5,
                                   env_options={"max_episode_steps": 300})

    trained = score(lambda env: evaluation.PolicyController(policy))
    rand = score(lambda env: evaluation.PriorController(env, seed=5))
    assert trained["heading_error_deg"] < 15.0 and trained["speed_error_mps"] < 0.15, trained
    assert rand["heading_error_deg"] > 60.0


def test_apg_resumes_after_ctrl_c_exactly(tmp_path, monkeypatch, interrupt_on_call):
    def args(folder, **changes):
        return apg_args(folder, task="joystick", steps=64 * 16 * 4, checkpoint_every=1, **changes)

    train(args(tmp_path / "a"), quiet=True, on_update=lambda metrics: None)
    original = interrupt_on_call(Trainer, "apg_update", 3)  # Ctrl-C in the middle of the third window
    with pytest.raises(KeyboardInterrupt):
        train(args(tmp_path / "b"), quiet=True, on_update=lambda metrics: None)
    monkeypatch.setattr(Trainer, "apg_update", original)
    assert train(args(tmp_path / "b", resume=True), quiet=True, on_update=lambda metrics: None)["update"] == 4
    a = torch.load(tmp_path / "a" / "policy.pt", weights_only=True)["state_dict"]
    b = torch.load(tmp_path / "b" / "policy.pt", weights_only=True)["state_dict"]
    for key in a:
        assert torch.allclose(a[key], b[key], atol=1e-6), key


def test_apg_refuses_what_it_cannot_learn_with_a_clear_error(tmp_path, small_vq_manifold):
    with pytest.raises(ValueError, match="--algo apg needs a Gaussian manifold"):
        train(apg_args(tmp_path, task="joystick", vae=None), manifold=small_vq_manifold(), quiet=True)
    with pytest.raises(ValueError, match="--algo 'sac'"):
        train(apg_args(tmp_path, algo="sac"), quiet=True)
