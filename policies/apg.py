"""Analytic policy gradients (APG): the policy learns from the gradient of the task's reward, taken back through the
Motion VAE's decoder, the root integration and the earlier frames, instead of from sampled returns (PPO).

A kinematic controller's world model is exact and differentiable: the next pose is ``decoder(z, pose)`` and every
task's reward is a smooth function of poses and root motion (see each task's docstring). So, as short-horizon
actor-critic methods (SHAC, Xu et al. 2022) and ControlVAE (Yao et al. 2022) do through a *learned* world model,
one update here

1. runs ``horizon`` frames of all B characters with ``a = tanh(actor(obs)) + noise`` (``noise ~ N(0,
   exploration_std^2)``), recording the graph (``MotionVecEnv.step_differentiable``; finished episodes restart
   inside the window and simply stop contributing gradient through their old state);
2. takes ``loss = -mean(reward) + latent_penalty * mean(z^2) + smoothness_penalty * mean((z_t - z_t-1)^2)`` over
   the window, ``z = a * action_scale`` the latent in the prior's standard deviations (the first penalty keeps the
   latent where the decoder was trained: without it the policy finds latents that move the root faster than the
   legs, i.e. sliding feet; the second damps frame-to-frame switching of the latent, i.e. jitter);
3. back-propagates through the whole window, clips the gradient norm, and takes one Adam step on the actor;
4. cuts the graph (``MotionVecEnv.detach_state``): the next window starts where this one ended.

The result is the same ``PolicyModule`` PPO trains (same file, same ONNX export, same evaluation); its critic is
not trained. Gaussian manifolds only (a VQ code has no gradient); one process (no torchrun).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch

from policies.network import PolicyModule


@dataclass
class APGStats:
    """Means over one update's window (plain floats)."""

    loss: float
    reward: float  # mean reward per frame and character
    latent_sq: float  # mean z^2 per latent dimension (1 under the prior)
    grad_norm: float  # before clipping
    skipped: int  # 1 when the gradient was not finite and no step was taken

    def as_dict(self) -> dict:
        return asdict(self)


def apg_update(policy: PolicyModule, optimizer: torch.optim.Optimizer, env, obs: torch.Tensor, *, horizon: int,
               exploration_std: float, latent_penalty: float, max_grad_norm: float, generator: torch.Generator,
               smoothness_penalty: float = 0.0, on_step=None) -> tuple[torch.Tensor, torch.Tensor, APGStats]:
    """One APG update from the current observations ``obs`` (B, O) -> (next obs (B, O) detached, every observation
    the actor saw (T, B, O), stats). ``on_step(step_tensors)`` sees each frame's detached results
    (metrics, episode ends)."""
    total_reward = torch.zeros((), device=obs.device)
    total_latent_sq = torch.zeros((), device=obs.device)
    total_change_sq = torch.zeros((), device=obs.device)
    previous = None
    seen = []
    for _ in range(horizon):
        seen.append(obs.detach())
        mean = torch.tanh(policy.actor(policy.normalize(obs)))  # (B, Z)
        noise = torch.randn(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
        action = (mean + exploration_std * noise).clamp(-1.0, 1.0)
        out = env.step_differentiable(action)
        total_reward = total_reward + out.reward.mean()
        total_latent_sq = total_latent_sq + (action * env.action_scale).pow(2).mean()
        if previous is not None:
            total_change_sq = total_change_sq + ((mean - previous) * env.action_scale).pow(2).mean()
        previous = mean
        if on_step is not None:  # detached: logging must neither record graph nor keep the window's alive
            metrics = {key: (values.detach(), mask) for key, (values, mask) in out.metrics.items()}
            on_step(out._replace(obs=out.obs.detach(), reward=out.reward.detach(), metrics=metrics))
        obs = out.obs
    loss = (-total_reward + latent_penalty * total_latent_sq + smoothness_penalty * total_change_sq) / horizon
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    params = [p for group in optimizer.param_groups for p in group["params"]]
    grad_norm = torch.nn.utils.clip_grad_norm_(params, max_grad_norm)
    finite = bool(torch.isfinite(grad_norm))
    if finite:
        optimizer.step()
    env.detach_state()
    stats = APGStats(loss=float(loss.detach()), reward=float(total_reward.detach()) / horizon,
                     latent_sq=float(total_latent_sq.detach()) / horizon, grad_norm=float(grad_norm),
                     skipped=0 if finite else 1)
    return obs.detach(), torch.stack(seen), stats


__all__ = ["APGStats", "apg_update"]
