"""PPO in torch: the rollout storage, generalised advantage estimation and the clipped-objective update.

Everything stays on the environment's device: the rollout is written into preallocated (T, B, ...) tensors,
advantages are computed there and minibatches are index gathers, so nothing crosses to numpy on the way.

Conventions of the stored rollout (T frames of B characters):

* ``obs[t]`` the raw observation the action was chosen from; the policy sees ``normalize(obs[t])`` with the
  observation statistics frozen for the whole rollout and its update (they move between updates), so the
  log-probabilities stored while acting are those of the inputs the update sees;
* ``rewards[t]`` the (scaled) reward of step t, plus ``gamma * V(final_obs)`` where the episode was
  truncated by the time limit at step t (it would have gone on: bootstrapping from its last observation keeps
  the value of time-limited states right); a termination adds nothing;
* ``dones[t]`` the episode ended at step t (terminated or truncated), so ``obs[t + 1]`` starts a new episode.

One bad batch never poisons the policy: a minibatch whose loss or gradient norm is not finite is skipped (no
optimiser step) and counted in ``UpdateStats.skipped``; the trainer restores the last good state after an update
that still left non-finite weights (``policies.train``).

Several processes (``torchrun``, :mod:`policies.train`): each rank runs this update on its own rollout, scoring its
minibatches through a DistributedDataParallel wrapper (``scorer``) whose backward all-reduces (averages) the
gradients, so every rank takes the same optimiser step; ``mean_across`` averages the early-stopping KL over the
ranks, so they all stop after the same epoch. The skip decision needs nothing more: the averaged gradient is the
same on every rank, and a non-finite gradient on one rank makes it non-finite on all.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from policies.network import PolicyModule


class Rollout:
    """Preallocated (T, B, ...) storage for one rollout."""

    def __init__(self, steps: int, num_envs: int, obs_size: int, action_shape: tuple[int, ...],
                 action_dtype: torch.dtype, device: torch.device):
        t, b = steps, num_envs
        self.obs = torch.zeros(t, b, obs_size, device=device)
        self.actions = torch.zeros(t, b, *action_shape, dtype=action_dtype, device=device)
        self.log_probs = torch.zeros(t, b, device=device)
        self.values = torch.zeros(t, b, device=device)
        self.rewards = torch.zeros(t, b, device=device)
        self.dones = torch.zeros(t, b, device=device)
        self.advantages = torch.zeros(t, b, device=device)
        self.returns = torch.zeros(t, b, device=device)

    @property
    def steps(self) -> int:
        return self.obs.shape[0]


def compute_gae(rewards: torch.Tensor, values: torch.Tensor, dones: torch.Tensor, last_value: torch.Tensor,
                gamma: float, lam: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(advantages, returns), each (T, B), from rewards, values, dones (T, B) and V(obs after the last step) (B,)."""
    steps = rewards.shape[0]
    advantages = torch.zeros_like(rewards)
    running = torch.zeros_like(last_value)
    next_value = last_value
    for t in reversed(range(steps)):
        live = 1.0 - dones[t]
        delta = rewards[t] + gamma * next_value * live - values[t]
        running = delta + gamma * lam * live * running
        advantages[t] = running
        next_value = values[t]
    return advantages, advantages + values


@dataclass
class UpdateStats:
    policy_loss: float
    value_loss: float
    entropy: float
    approx_kl: float
    clip_fraction: float
    prior_kl: float  # KL(policy || code prior) of a prior-residual policy (0 otherwise)
    explained_variance: float
    epochs: int
    skipped: int = 0  # minibatches skipped for a non-finite loss or gradient

    def as_dict(self) -> dict:
        return dict(vars(self))


def ppo_update(policy: PolicyModule, optimizer: torch.optim.Optimizer, rollout: Rollout, *, epochs: int,
               minibatch_size: int, clip_coef: float, vf_coef: float, ent_coef: float, max_grad_norm: float,
               target_kl: float, generator: torch.Generator, scorer: Callable | None = None,
               mean_across: Callable[[torch.Tensor], torch.Tensor] | None = None,
               prior_kl_coef: float = 0.0) -> UpdateStats:
    """Clipped-surrogate PPO epochs over the rollout; ``generator`` (CPU) orders the minibatches. A prior-residual
    policy's loss adds ``prior_kl_coef * KL(policy || code prior)``: the cost of leaving the data's next-code choices.

    ``scorer(x, actions) -> (log_prob, entropy, value, prior_kl)``: ``policy.evaluate_actions`` by default (one process), its
    DistributedDataParallel wrapper under torchrun; ``mean_across(t)``: the mean of ``t`` over the processes
    (identity by default). See the module docstring.
    """
    scorer = policy.evaluate_actions if scorer is None else scorer
    n = rollout.obs.shape[0] * rollout.obs.shape[1]
    obs = rollout.obs.reshape(n, -1)
    with torch.no_grad():
        x_all = policy.normalize(obs)  # the statistics the actions were chosen with (frozen until after this)
    actions = rollout.actions.reshape(n, *rollout.actions.shape[2:])
    old_logp = rollout.log_probs.reshape(n)
    advantages = rollout.advantages.reshape(n)
    returns = rollout.returns.reshape(n)
    device = obs.device
    mb = min(minibatch_size, n)
    totals = torch.zeros(6, device=device)  # policy loss, value loss, entropy, kl, clip fraction, prior kl
    count, epochs_run, skipped = 0, 0, 0
    for _ in range(epochs):
        order = torch.randperm(n, generator=generator).to(device)
        kl_sum = torch.zeros((), device=device)
        batches = 0
        for start in range(0, n - mb + 1, mb):
            idx = order[start:start + mb]
            logp, entropy, value, prior_kl = scorer(x_all[idx], actions[idx])
            adv = advantages[idx]
            adv = (adv - adv.mean()) / (adv.std() + 1e-8)
            log_ratio = logp - old_logp[idx]
            ratio = log_ratio.exp()
            policy_loss = torch.max(-adv * ratio, -adv * ratio.clamp(1 - clip_coef, 1 + clip_coef)).mean()
            value_loss = 0.5 * (value - returns[idx]).pow(2).mean()
            entropy_mean = entropy.mean()
            prior_kl_mean = prior_kl.mean()
            loss = policy_loss + vf_coef * value_loss - ent_coef * entropy_mean + prior_kl_coef * prior_kl_mean
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            grad_norm = torch.nn.utils.clip_grad_norm_(policy.parameters(), max_grad_norm)
            if not bool(torch.isfinite(grad_norm)):  # a NaN / inf loss gives a non-finite norm too
                optimizer.zero_grad(set_to_none=True)
                skipped += 1
                continue
            optimizer.step()
            with torch.no_grad():
                kl = ((ratio - 1) - log_ratio).mean()  # k3 estimator: unbiased, >= 0
                clipped = ((ratio - 1).abs() > clip_coef).float().mean()
                totals += torch.stack((policy_loss.detach(), value_loss.detach(), entropy_mean.detach(), kl, clipped,
                                       prior_kl_mean.detach()))
                kl_sum += kl
            count += 1
            batches += 1
        epochs_run += 1
        if target_kl > 0:
            kl_mean = kl_sum / max(batches, 1)
            if float(kl_mean if mean_across is None else mean_across(kl_mean)) > target_kl:
                break
    means = (totals / max(count, 1)).tolist() if count else [float("nan")] * 6
    with torch.no_grad():
        values = rollout.values.reshape(n)
        var_returns = returns.var()
        explained = float(1 - (returns - values).var() / var_returns) if float(var_returns) > 0 else 0.0
    return UpdateStats(*means, explained_variance=explained, epochs=epochs_run, skipped=skipped)
