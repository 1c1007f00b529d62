"""PoseMixtureVAE (Ling et al. 2020): Gaussian encoder + mixture-of-experts decoder.

Decoder: E experts, each an ELU MLP ``[z, cond] -> H -> H -> F*D`` whose every layer also sees z
(input ``[z, h]``), blended by a gating network ``[z, cond] -> 64 -> 64 -> E`` (softmax).
The reference code blends the *weights* per sample (W_b = sum_k c_bk W_k, then a batched matmul), which
materialises a (B, in, out) tensor per layer. Blending is linear, so

    (sum_k c_k W_k) x + sum_k c_k b_k  ==  sum_k c_k (W_k x + b_k)

and the fast path runs all experts of a layer as ONE matmul with the weights stored as (in, E, out),
then blends the E outputs. :mod:`vae.reference` keeps the reference formulation for tests and benchmarks.
With D=267, Z=32: each expert 0.228M parameters, gate 0.024M, decoder 1.39M, whole model 1.70M.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from vae.config import VAEConfig
from vae.manifold import GaussianManifold


class MixtureDecoder(nn.Module):
    """Mixture-of-experts decoder ``(z (B, Z), cond (B, C*D)) -> (B, F*D)``."""

    def __init__(self, config: VAEConfig):
        super().__init__()
        z, h, e = config.decoder_latent_size, config.hidden_size, config.num_experts
        cond_size = config.num_condition_frames * config.frame_size
        out_size = config.num_future_predictions * config.frame_size
        self.num_experts = e
        sizes = [(z + cond_size, h), (z + h, h), (z + h, out_size)]
        # Weight of layer i: (in, E, out), so ``w.flatten(1)`` is a free (in, E*out) view for one matmul.
        self.weights = nn.ParameterList([nn.Parameter(torch.empty(i, e, o)) for i, o in sizes])
        self.biases = nn.ParameterList([nn.Parameter(torch.empty(e, o)) for _, o in sizes])
        g = config.gate_hidden_size
        self.gate = nn.Sequential(
            nn.Linear(z + cond_size, g), nn.ELU(),
            nn.Linear(g, g), nn.ELU(),
            nn.Linear(g, e),
        )
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        # Each expert starts like an nn.Linear of its own: U(-1/sqrt(in), 1/sqrt(in)).
        for w, b in zip(self.weights, self.biases, strict=True):
            bound = 1.0 / math.sqrt(w.shape[0])
            w.uniform_(-bound, bound)
            b.uniform_(-bound, bound)

    def coefficients(self, z: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """(B, E) expert blending weights, summing to 1."""
        return F.softmax(self.gate(torch.cat((z, cond), dim=1)), dim=1)

    def forward(self, z: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        coef = self.coefficients(z, cond).unsqueeze(1)  # (B, 1, E)
        h = cond
        last = len(self.weights) - 1
        for i, (w, b) in enumerate(zip(self.weights, self.biases, strict=True)):
            x = torch.cat((z, h), dim=1)  # (B, in)
            y = torch.addmm(b.flatten(), x, w.flatten(1))  # (B, E*out): every expert in one matmul
            y = y.reshape(-1, self.num_experts, w.shape[2])  # (B, E, out); -1, not B: ONNX export keeps B dynamic
            h = torch.bmm(coef, y).squeeze(1)  # (B, out): sum_k c_k y_k
            if i < last:
                h = F.elu(h)
        return h


class PoseMixtureVAE(GaussianManifold):
    """The paper's Motion VAE: Gaussian latent (Z=32), mixture-of-experts decoder."""

    def __init__(self, config: VAEConfig):
        super().__init__(config)
        self.decoder = MixtureDecoder(config)
