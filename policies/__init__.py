"""PPO policies that steer a Motion VAE through a task, their file format, evaluation and a sampling baseline.

Public API::

    from policies import load_policy, PolicyModule, save_policy, check_policy_fits, SamplingController
    policy = load_policy("assets/characters/deepmimic/policies/target.pt")   # nn.Module in eval mode
    action = policy(obs_raw)                                # (B, O) float32 -> (B, Z) in [-1, 1] / (B,) codes

Modules: ``network`` (PolicyModule: normaliser + actor + critic), ``checkpoint`` (the policy file,
load_policy, fit checks), ``normalizer`` (running mean / variance), ``ppo`` (rollout storage, GAE, the
update), ``train_args`` (TrainArgs, the CLI), ``train`` (the training loop behind ``train_policy.py``),
``evaluate`` (``python -m policies.evaluate``), ``controllers`` (policy, prior and scripted controllers for an
environment), ``sampling_controller`` (the gradient-free baseline / fallback controller), ``sb3_vec_env`` (a
Stable-Baselines3 VecEnv adapter, used by benchmarks/bench_ppo.py).
"""

from __future__ import annotations

from policies.checkpoint import (
           PolicyMismatchWarning,
           check_policy_fits,
           load_policy,
           read_policy_checkpoint,
           save_policy,
)
from policies.controllers import PolicyController, PriorController
from policies.network import PolicyModule, make_config
from policies.sampling_controller import SamplingController

__all__ = ["load_policy", "save_policy", "read_policy_checkpoint", "check_policy_fits", "PolicyMismatchWarning",
           "PolicyModule", "make_config", "SamplingController", "PolicyController", "PriorController"]
