"""The paper code's mixture-decoder formulation, reproduced for benchmarks and equivalence tests only.

The reference implementation of the Motion VAE (Ling et al. 2020) blends the experts' *weights* per sample,
``W_b = sum_k c_bk W_k`` (and likewise the biases), then runs one batched matmul per layer, which materialises a
(B, in, out) tensor per layer. :class:`vae.mixture_vae.MixtureDecoder` computes the same function the fast way
(every expert in one matmul, then blend the outputs). :class:`ReferenceMixtureDecoder` runs a decoder's own
parameters the reference's way, so tests can check that the two agree and benchmarks can time one against the
other. Training, environments and export never use it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from vae.mixture_vae import MixtureDecoder


class ReferenceMixtureDecoder:
    """``decode(z (B, Z), cond (B, C*D)) -> (B, F*D)`` of ``decoder`` with per-sample blended weights."""

    def __init__(self, decoder: MixtureDecoder):
        self.decoder = decoder
        self._expert_major_cache: dict[int, tuple[tuple, torch.Tensor]] = {}

    def expert_major(self, i: int) -> torch.Tensor:
        """Layer i's weights as (E, in*out), the reference's storage, so its blend is one plain matmul.

        Without autograd the contiguous copy is cached (keyed on the parameter's version) so the reference is
        timed as the original code runs, not with a layout copy per call.
        """
        w = self.decoder.weights[i]  # (in, E, out)
        if torch.is_grad_enabled() and w.requires_grad:
            return w.permute(1, 0, 2).reshape(w.shape[1], -1)  # (E, in*out)
        key = (w.data_ptr(), w._version, w.device)
        cached = self._expert_major_cache.get(i)
        if cached is None or cached[0] != key:
            cached = (key, w.detach().permute(1, 0, 2).reshape(w.shape[1], -1).contiguous())  # (E, in*out)
            self._expert_major_cache[i] = cached
        return cached[1]

    def __call__(self, z: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        decoder = self.decoder
        coef = decoder.coefficients(z, cond)  # (B, E)
        h = cond
        last = len(decoder.weights) - 1
        for i, (w, b) in enumerate(zip(decoder.weights, decoder.biases, strict=True)):
            x = torch.cat((z, h), dim=1).unsqueeze(1)  # (B, 1, in)
            in_size, _, out_size = w.shape
            mixed_w = (coef @ self.expert_major(i)).view(-1, in_size, out_size)  # (B, in, out)
            mixed_b = (coef @ b).unsqueeze(1)  # (B, 1, out)
            h = torch.baddbmm(mixed_b, x, mixed_w).squeeze(1)  # (B, out)
            if i < last:
                h = F.elu(h)
        return h
