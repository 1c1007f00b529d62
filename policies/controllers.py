"""Controllers: ``controller(env, obs) -> actions`` for a ``MotionVecEnv``, shared by evaluation and the app.

=================== ========================================================================================
PolicyController    a trained policy, run by an inference backend's ``act`` (ONNX Runtime) or by its torch
                    module; Gaussian actions are rescaled from the policy's ``action_scale`` to the
                    environment's (the latent is action * scale on both sides)
PriorController     latents drawn from the VAE's prior (the paper's random-walk baseline; uniform actions in the
                    [-1, 1] box would be latents of up to 4 sigma the VAE never saw), or codes (VQ): drawn
                    from the environment's code prior given each character's context where it has one, else
                    uniform
SamplingController  the scripted baseline (:mod:`policies.sampling_controller`)
=================== ========================================================================================

Each has a one-line ``label`` for logs and HUDs.
"""

from __future__ import annotations

import torch

from policies.sampling_controller import SamplingController


class PolicyController:
    """A policy module, optionally run by an inference backend (anything with ``act(obs) -> actions``)."""

    def __init__(self, policy, backend=None, label: str = ""):
        self.policy = policy
        self.backend = backend
        self.scale = float(getattr(policy, "action_scale", 1.0))
        self.label = label or f"policy {getattr(policy, 'source', '')}".strip()

    @torch.no_grad()
    def __call__(self, env, obs: torch.Tensor) -> torch.Tensor:
        obs = torch.as_tensor(obs, dtype=torch.float32)
        if self.backend is not None:
            action = self.backend.act(obs)
        else:
            action = self.policy(obs.to(next(self.policy.parameters()).device))
        action = action.to(env.device)
        if env.core.discrete or self.scale == env.action_scale:
            return action
        return (action * (self.scale / env.action_scale)).clamp(-1.0, 1.0)


class PriorController:
    """z ~ N(0, I) from the VAE's prior -> action z / action_scale, or a code (from the code prior, else uniform);
    seeded."""

    label = "prior samples"

    def __init__(self, env, seed: int = 0):
        self.generator = torch.Generator(device=env.device).manual_seed(int(seed))

    @torch.no_grad()
    def __call__(self, env, obs=None) -> torch.Tensor:
        z = env.core.sample_prior(self.generator).to(env.device)  # (B, Z) latents or (B,) codes
        return z.long() if env.core.discrete else (z / env.action_scale).clamp(-1.0, 1.0)


__all__ = ["PolicyController", "PriorController", "SamplingController"]
