"""PolicyModule: observation normaliser + actor + critic, the network PPO trains and the file ships.

Contract (``notes/policy_contract.md``; the ONNX exporter in ``controller/`` relies on it):

* attributes ``obs_size`` O, ``action_size`` A (Z for a Gaussian manifold, 1 for a discrete one),
  ``discrete``, ``num_actions`` (K codes, discrete only, else None), ``task``, ``action_scale`` and ``config``;
* ``forward(obs_raw (B, O) float32)`` -> the deterministic action: ``(B, Z)`` float32 in [-1, 1] (the tanh
  mean) or ``(B,)`` int64 (the most likely code). Observation normalisation happens inside; this forward
  is what gets exported to ONNX, so it holds nothing but tensor ops.

Action distribution (what PPO samples and scores):

* Gaussian manifold: ``a ~ N(tanh(actor(x)), diag(exp(log_std))^2)`` with a state-independent ``log_std``.
  The sample ``a`` itself is stored and scored; the environment clips it to [-1, 1] and scales it by
  ``action_scale`` into a latent. The clip is part of the environment's dynamics, so the log-probability of
  the stored (unclipped) sample under the Gaussian is the exact log-probability of the action the policy
  took. (The reference code clamped the sample first and then scored the clamped value under the
  unclamped Gaussian, which is not the density of anything the policy did.)
* discrete (VQ) manifold: ``Categorical(logits=actor(x))`` over the K codes;
* prior-residual (config ``prior_residual``; a VQ manifold whose environment has a code prior): the last K
  observation features are the prior's next-code log-probabilities ``log p`` (``envs.vec_env``'s ``prior`` slice), and
  ``Categorical(logits=log p + r)``: the actor learns a residual ``r`` over what the data would do next, so its codes
  stay on the data's manifold where the task does not pull them away. Config ``residual``: ``"latent"`` (default):
  the actor outputs a direction ``q`` in the latent space and ``r_k = e_k . q`` with ``e_k`` the VQ model's code
  vectors (the ``codebook`` buffer, scaled to unit RMS): codes that decode alike gain alike, so what the policy
  learns about one code carries to its neighbours (the prior times a Gaussian around the policy's latent, as the
  Gaussian controller picks latents); ``"codes"``: one free residual per code. PPO adds ``KL(pi || p)``
  (:meth:`PolicyModule.evaluate_actions`' fourth output) to its loss. The normaliser, actor and critic see the other
  O - K features (``feature_size``); ``normalize`` passes the log-probabilities through unchanged.

Networks: actor ``O -> hidden... -> Z`` (ReLU, tanh on the mean) and a separate critic ``O -> hidden... -> 1``,
orthogonal initialisation; the actor's last layer starts near zero so the first actions are the prior's
mean plus exploration noise.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from policies.normalizer import RunningMeanVar

LOG_SQRT_2PI = 0.5 * math.log(2.0 * math.pi)
CONFIG_KEYS = ("obs_size", "action_size", "discrete", "num_actions", "latent_size", "hidden_sizes",
               "critic_hidden_sizes", "init_action_std", "action_scale", "task")  # required ("prior_residual",
# "residual": optional, absent from files written before prior-residual policies)
RESIDUALS = ("latent", "codes")


def mlp(sizes: list[int], out_gain: float) -> nn.Sequential:
    """Linear layers with ReLU between them, orthogonal init (gain sqrt 2, last layer ``out_gain``), zero biases."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        linear = nn.Linear(a, b)
        last = i == len(sizes) - 2
        nn.init.orthogonal_(linear.weight, gain=out_gain if last else math.sqrt(2.0))
        nn.init.zeros_(linear.bias)
        layers.append(linear)
        if not last:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def make_config(*, obs_size: int, latent_size: int, discrete: bool, num_actions: int | None, task: str,
                hidden_sizes=(128, 128), critic_hidden_sizes=(128, 128), init_action_std: float = 0.5,
                action_scale: float = 4.0, prior_residual: bool = False, residual: str = "latent") -> dict:
    """The policy's architecture as plain types (stored in the checkpoint, read back by load_policy)."""
    if residual not in RESIDUALS:
        raise ValueError(f"residual {residual!r}: choose one of {', '.join(RESIDUALS)}")
    if discrete and (num_actions is None or int(num_actions) < 2):
        raise ValueError(f"a discrete policy needs num_actions >= 2 codes, got {num_actions!r}")
    if prior_residual and (not discrete or int(obs_size) <= int(num_actions)):
        raise ValueError("a prior-residual policy needs a discrete (VQ) manifold and observations that end with the "
                         f"prior's {num_actions} log-probabilities (an environment with code_prior=)")
    if not init_action_std > 0 or not action_scale > 0:
        raise ValueError(f"init_action_std and action_scale must be positive, got {init_action_std}, {action_scale}")
    hidden = [int(h) for h in hidden_sizes]
    critic = [int(h) for h in critic_hidden_sizes]
    if not hidden or not critic or min(hidden + critic) < 1:
        raise ValueError(f"hidden sizes must be positive integers, got {hidden_sizes} / {critic_hidden_sizes}")
    return {
        "obs_size": int(obs_size),
        "action_size": 1 if discrete else int(latent_size),
        "discrete": bool(discrete),
        "num_actions": int(num_actions) if discrete else None,
        "latent_size": int(latent_size),
        "hidden_sizes": hidden,
        "critic_hidden_sizes": critic,
        "init_action_std": float(init_action_std),
        "action_scale": float(action_scale),
        "task": str(task),
        "prior_residual": bool(prior_residual),
        "residual": str(residual),
    }


class PolicyModule(nn.Module):
    """See the module docstring. Build with a :func:`make_config` dict."""

    def __init__(self, config: dict):
        super().__init__()
        missing = [k for k in CONFIG_KEYS if k not in config]
        if missing:
            raise ValueError(f"policy config lacks {missing}")
        self.config = dict(config)
        self.obs_size = int(config["obs_size"])
        self.discrete = bool(config["discrete"])
        self.num_actions = int(config["num_actions"]) if self.discrete else None
        self.action_size = 1 if self.discrete else int(config["latent_size"])
        self.latent_size = int(config["latent_size"])
        self.action_scale = float(config["action_scale"])
        self.task = str(config["task"])
        self.prior_residual = bool(config.get("prior_residual", False))  # older files have no such key
        self.residual = str(config.get("residual", "codes"))
        latent_residual = self.prior_residual and self.residual == "latent"
        outputs = self.latent_size if latent_residual or not self.discrete else self.num_actions
        # (K, Z) the VQ model's code vectors at unit RMS (set_codebook); only a latent-residual policy has them.
        if latent_residual:
            self.register_buffer("codebook", torch.zeros(self.num_actions, self.latent_size))
        else:
            self.codebook = None
        # F: what the normaliser, actor and critic see (all but the prior's log-probabilities).
        self.feature_size = self.obs_size - self.num_actions if self.prior_residual else self.obs_size
        self.obs_rms = RunningMeanVar(self.feature_size)
        self.actor = mlp([self.feature_size, *config["hidden_sizes"], outputs], out_gain=0.01)
        self.critic = mlp([self.feature_size, *config["critic_hidden_sizes"], 1], out_gain=1.0)
        if not self.discrete:
            std = float(config["init_action_std"])
            self.log_std = nn.Parameter(torch.full((self.latent_size,), math.log(std)))

    # ---- the exported forward -------------------------------------------------------------------
    def forward(self, obs_raw: torch.Tensor) -> torch.Tensor:
        out = self._actor_out(self.normalize(obs_raw))
        return out.argmax(dim=1) if self.discrete else torch.tanh(out)

    # ---- what PPO uses (on normalised observations) -----------------------------------------------
    # Only a prior-residual policy slices its observations: the other policies' exported graphs stay free of Slice
    # nodes (batch-1 inference is a hot path).
    def features(self, obs_raw: torch.Tensor) -> torch.Tensor:
        """(B, F) the observation features the normaliser sees (all but a prior's log-probabilities)."""
        return obs_raw[:, :self.feature_size] if self.prior_residual else obs_raw

    def normalize(self, obs_raw: torch.Tensor) -> torch.Tensor:
        """(B, O) raw -> (B, O) normalised features, then (prior-residual) the prior's log-probabilities unchanged."""
        if not self.prior_residual:
            return self.obs_rms.normalize(obs_raw)
        x = self.obs_rms.normalize(obs_raw[:, :self.feature_size])  # (B, F)
        return torch.cat((x, obs_raw[:, self.feature_size:]), dim=1)

    def _actor_out(self, x: torch.Tensor) -> torch.Tensor:
        """(B, K) logits (the prior's log-probabilities plus the residual) or (B, Z) pre-tanh means."""
        if not self.prior_residual:
            return self.actor(x)
        out = self.actor(x[:, :self.feature_size])
        if self.codebook is not None:
            out = out @ self.codebook.t()  # (B, Z) latent direction -> (B, K) residual
        return out + x[:, self.feature_size:]

    def set_codebook(self, codebook: torch.Tensor) -> None:
        """Take the VQ model's code vectors (K, Z), scaled to unit RMS (a latent-residual policy)."""
        if self.codebook is None:
            raise ValueError("only a prior-residual policy with residual='latent' has a codebook")
        codebook = codebook.detach().to(self.codebook)
        if tuple(codebook.shape) != tuple(self.codebook.shape):
            raise ValueError(f"codebook of shape {tuple(codebook.shape)}; this policy has "
                             f"{tuple(self.codebook.shape)} (codes x latent size)")
        self.codebook.copy_(codebook / codebook.pow(2).mean().sqrt().clamp_min(1e-8))

    def value(self, x: torch.Tensor) -> torch.Tensor:
        """(B,) state values of normalised observations x (B, O)."""
        return self.critic(self.features(x))[:, 0]

    def sample(self, x: torch.Tensor, generator: torch.Generator | None = None):
        """Normalised observations (B, O) -> (action, log_prob (B,), value (B,)); actions (B, Z) float or (B,) long."""
        out = self._actor_out(x)
        if self.discrete:
            logp_all = torch.log_softmax(out, dim=1)
            action = torch.multinomial(logp_all.exp(), 1, generator=generator)[:, 0]
            logp = logp_all.gather(1, action[:, None])[:, 0]
        else:
            mean, std = torch.tanh(out), self.log_std.exp()
            noise = torch.randn(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
            action = mean + std * noise
            logp = gaussian_log_prob(action, mean, self.log_std)
        return action, logp, self.value(x)

    def evaluate_actions(self, x: torch.Tensor, action: torch.Tensor):
        """(log_prob (B,), entropy (B,), value (B,), prior_kl (B,)) of stored actions under the current policy;
        ``prior_kl`` is KL(policy || code prior) for a prior-residual policy, zeros otherwise."""
        out = self._actor_out(x)
        prior_kl = torch.zeros(x.shape[0], dtype=x.dtype, device=x.device)
        if self.discrete:
            logp_all = torch.log_softmax(out, dim=1)
            logp = logp_all.gather(1, action.long()[:, None])[:, 0]
            probs = logp_all.exp()
            entropy = -(probs * logp_all).sum(dim=1)
            if self.prior_residual:
                prior_kl = (probs * (logp_all - x[:, self.feature_size:])).sum(dim=1)
        else:
            logp = gaussian_log_prob(action, torch.tanh(out), self.log_std)
            entropy = (0.5 + LOG_SQRT_2PI + self.log_std).sum().expand(x.shape[0])
        return logp, entropy, self.value(x), prior_kl


def gaussian_log_prob(action: torch.Tensor, mean: torch.Tensor, log_std: torch.Tensor) -> torch.Tensor:
    """log N(action; mean, diag(exp(log_std))^2) summed over the last dim -> (B,)."""
    z = (action - mean) * torch.exp(-log_std)
    return (-0.5 * z.pow(2) - log_std - LOG_SQRT_2PI).sum(dim=-1)
