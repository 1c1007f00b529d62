"""PoseVQVAE: the Motion VAE with a discrete latent (a codebook of K code vectors).

Encoder: the MVAE encoder body with one head, z_e (B, Z). Quantiser: nearest code, straight-through
gradients ``z = z_e + sg(q - z_e)``, commitment loss ``beta * ||z_e - sg(q)||^2``. The codebook is not
trained by gradients but by exponential moving averages (van den Oord et al. 2017, appendix):

    N_k <- d N_k + (1 - d) n_k          n_k: batch uses of code k
    m_k <- d m_k + (1 - d) sum z_e      over the batch vectors assigned to k
    e_k  = m_k / N~_k                   N~: N with Laplace smoothing, so rarely used codes stay finite

and codes whose EMA use N_k drops below ``vq_reset_threshold`` are dead: they are re-initialised from
random encoder outputs of the batch (the "EMA reset" quantiser of T2M-GPT). The first training batch
initialises the whole codebook from encoder outputs with N = 1, so a code unused in a batch is reset.
All of this happens only in train mode; under torch.distributed the batch statistics are all-reduced and
the reset candidates broadcast from rank 0, so every rank keeps the same codebook.

Decoder: the mixture-of-experts decoder of PoseMixtureVAE, conditioned on the code vector, so a
comparison with the Gaussian model isolates the latent. A policy acts by choosing a code index.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from vae.config import VAEConfig
from vae.manifold import MotionEncoder, MotionManifold
from vae.mixture_vae import MixtureDecoder


class EMAResetQuantizer(nn.Module):
    """Nearest-code quantiser with EMA codebook updates and dead-code reset."""

    def __init__(self, num_codes: int, code_size: int, beta: float, decay: float, reset_threshold: float,
                 laplace_eps: float = 1e-5):
        super().__init__()
        self.num_codes = num_codes
        self.code_size = code_size
        self.beta = beta
        self.decay = decay
        self.reset_threshold = reset_threshold
        self.laplace_eps = laplace_eps
        # All-reduce the EMA statistics when torch.distributed is initialised (False keeps ranks apart).
        self.sync_distributed = True
        self.register_buffer("codebook", torch.randn(num_codes, code_size))
        self.register_buffer("ema_count", torch.zeros(num_codes))
        self.register_buffer("ema_sum", torch.zeros(num_codes, code_size))
        self.register_buffer("initialized", torch.tensor(False))

    def _distributed(self) -> bool:
        return self.sync_distributed and dist.is_available() and dist.is_initialized()

    def nearest(self, z_e: torch.Tensor) -> torch.Tensor:
        """(B, Z) -> (B,) index of the closest code (squared Euclidean distance)."""
        distances = (
            z_e.pow(2).sum(1, keepdim=True) - 2.0 * z_e @ self.codebook.t() + self.codebook.pow(2).sum(1)
        )  # (B, K)
        return distances.argmin(dim=1)

    def _random_outputs(self, z_e: torch.Tensor) -> torch.Tensor:
        """(K, Z) random rows of the batch, with a little noise so repeated rows give distinct codes."""
        rows = z_e[torch.randint(z_e.shape[0], (self.num_codes,), device=z_e.device)]  # (K, Z)
        noise_scale = 0.01 * z_e.std().clamp_min(1e-6)
        candidates = rows + noise_scale * torch.randn_like(rows)
        if self._distributed():
            dist.broadcast(candidates, src=0)
        return candidates

    @torch.no_grad()
    def _initialize(self, z_e: torch.Tensor) -> None:
        self.codebook.copy_(self._random_outputs(z_e))
        self.ema_sum.copy_(self.codebook)
        self.ema_count.fill_(1.0)
        self.initialized.fill_(True)

    @torch.no_grad()
    def _ema_update(self, z_e: torch.Tensor, indices: torch.Tensor) -> None:
        onehot = F.one_hot(indices, self.num_codes).to(z_e.dtype)  # (B, K)
        counts = onehot.sum(0)  # (K,)
        sums = onehot.t() @ z_e  # (K, Z)
        if self._distributed():
            dist.all_reduce(counts)
            dist.all_reduce(sums)
        self.ema_count.mul_(self.decay).add_(counts, alpha=1.0 - self.decay)
        self.ema_sum.mul_(self.decay).add_(sums, alpha=1.0 - self.decay)
        n = self.ema_count.sum()
        eps, k = self.laplace_eps, self.num_codes
        smoothed = (self.ema_count + eps) / (n + k * eps) * n  # (K,) Laplace-smoothed counts, same total
        self.codebook.copy_(self.ema_sum / smoothed.clamp_min(1e-12).unsqueeze(1))
        dead = self.ema_count < self.reset_threshold  # (K,)
        if bool(dead.any()):
            candidates = self._random_outputs(z_e)
            self.codebook[dead] = candidates[dead]
            # Keep the statistics consistent with the new position, so sum / count reproduces it.
            self.ema_sum[dead] = candidates[dead] * smoothed[dead].unsqueeze(1)

    def forward(self, z_e: torch.Tensor) -> dict[str, torch.Tensor]:
        if self.training and not bool(self.initialized):
            self._initialize(z_e.detach())
        indices = self.nearest(z_e.detach())  # (B,)
        q = self.codebook[indices]  # (B, Z), a copy: the EMA update below does not change it
        if self.training:
            self._ema_update(z_e.detach(), indices)
        commit_loss = F.mse_loss(z_e, q)
        z = z_e + (q - z_e).detach()  # straight-through: the forward value is q, the gradient flows to z_e
        counts = torch.bincount(indices, minlength=self.num_codes).to(z_e.dtype)
        probs = counts / counts.sum()
        perplexity = torch.exp(-(probs * torch.log(probs + 1e-10)).sum())
        return {
            "z": z,
            "z_e": z_e,
            "indices": indices,
            "commit_loss": commit_loss,
            "vq_loss": self.beta * commit_loss,
            "perplexity": perplexity,
        }


class PoseVQVAE(MotionManifold):
    """Discrete Motion VAE: encoder -> nearest of K codes -> mixture-of-experts decoder."""

    discrete = True

    def __init__(self, config: VAEConfig):
        super().__init__(config)
        self.num_codes = config.num_codes
        self.encoder = MotionEncoder(config, config.latent_size)
        self.quantizer = EMAResetQuantizer(
            config.num_codes, config.latent_size, config.vq_beta, config.ema_decay, config.vq_reset_threshold
        )
        self.decoder = MixtureDecoder(config)

    def encode(self, next_norm: torch.Tensor, cond_norm: torch.Tensor, style=None) -> dict[str, torch.Tensor]:
        """z (B, Z) quantised (straight-through), z_e, indices (B,), vq_loss, commit_loss, perplexity.

        ``vq_loss`` is the whole latent loss to add to the reconstruction loss (the codebook itself is
        updated by EMA in train mode, not by gradients).
        """
        return self.quantizer(self.encoder(next_norm, self.with_style(cond_norm, style)))

    def decode(self, z: torch.Tensor, cond_norm: torch.Tensor, style=None) -> torch.Tensor:
        return self.decoder(self.with_style(z, style), cond_norm)

    @property
    def codebook(self) -> torch.Tensor:
        """(K, Z) code vectors."""
        return self.quantizer.codebook

    def sample_prior(self, batch_size: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """(B,) long code indices drawn in proportion to the EMA code use (uniform before training)."""
        weights = self.quantizer.ema_count.detach().float()
        if not bool(weights.sum() > 0):
            weights = torch.ones_like(weights)
        where = generator.device if generator is not None else self.device
        idx = torch.multinomial(weights.to(where), batch_size, replacement=True, generator=generator)
        return idx.to(self.device)

    def latent_from_action(self, action: torch.Tensor) -> torch.Tensor:
        """(B,) integer code indices in [0, K) -> (B, Z) code vectors."""
        action = torch.as_tensor(action, device=self.device)
        if action.dim() == 2 and action.shape[1] == 1:
            action = action[:, 0]
        if action.dim() != 1 or action.dtype.is_floating_point or action.dtype == torch.bool:
            raise ValueError(
                f"action has shape {tuple(action.shape)} and dtype {action.dtype}; a VQ manifold takes (B,) "
                f"integer code indices in [0, {self.num_codes})"
            )
        if action.numel() and (int(action.min()) < 0 or int(action.max()) >= self.num_codes):
            raise ValueError(f"code index out of range [0, {self.num_codes}): got {action.min()}..{action.max()}")
        return self.codebook[action.long()]
