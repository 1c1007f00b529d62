"""PoseVAE: the paper's baseline, a Gaussian Motion VAE with a single MLP decoder.

Decoder ``[z, cond] -> H -> H -> F*D`` (ELU), z concatenated into every layer as in the mixture model,
so the comparison with PoseMixtureVAE isolates the mixture of experts.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from vae.config import VAEConfig
from vae.manifold import GaussianManifold


class ConcatDecoder(nn.Module):
    """MLP decoder ``(z (B, Z), cond (B, C*D)) -> (B, F*D)`` with z fed to every layer."""

    def __init__(self, config: VAEConfig):
        super().__init__()
        z, h = config.decoder_latent_size, config.hidden_size
        cond_size = config.num_condition_frames * config.frame_size
        self.fc1 = nn.Linear(z + cond_size, h)
        self.fc2 = nn.Linear(z + h, h)
        self.out = nn.Linear(z + h, config.num_future_predictions * config.frame_size)

    def forward(self, z: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        h = F.elu(self.fc1(torch.cat((z, cond), dim=1)))
        h = F.elu(self.fc2(torch.cat((z, h), dim=1)))
        return self.out(torch.cat((z, h), dim=1))


class PoseVAE(GaussianManifold):
    """Gaussian latent, single-MLP decoder."""

    def __init__(self, config: VAEConfig):
        super().__init__(config)
        self.decoder = ConcatDecoder(config)
