"""The decoder in bfloat16: a crowd's matmuls at twice float32's rate on processors with bfloat16 instructions.

    manifold16 = bfloat16_manifold(manifold)   # a copy whose decoder computes in bfloat16; the caller's is untouched
    manifold16.step(latent, cond_raw)          # same inputs and outputs (float32) as manifold.step

A crowd's step is its decoder: at 1,024 characters the three mixture-of-experts layers are 85 % of the ONNX
Runtime graph's time (26 of 31 ms on one core of this project's CPU), each a (B, ~296) x (~296, E*256) matmul. On a
CPU with AVX512-BF16 (or AMX) torch's oneDNN kernels multiply bfloat16 matrices at about twice the float32 rate
(the decoder at B = 1,024 on one core: 34.7 -> 19.0 ms); ONNX Runtime has no x86 bfloat16 matmul, and its 8-bit
paths (:mod:`controller.quantize`, dynamic quantisation) do not speed up a batch this size (29 ms against 31).

Only the decoder (gate included) is converted: its inputs are cast to bfloat16 and its output back to float32,
so normalisation, the root integration and the policy stay in float32. bfloat16 keeps 8 bits of mantissa: a
frame differs from the float32 one by about 0.5 % of its spread (rms; tested), like the int8 weights' error.

Where the processor has no bfloat16 instructions, oneDNN emulates them and the decoder runs *slower* than in
float32: :func:`check_supported` refuses such a machine with the reason instead.
"""

from __future__ import annotations

import copy

import torch
from torch import nn


def native_bfloat16(device: torch.device | str = "cpu") -> bool:
    """Whether ``device`` multiplies bfloat16 matrices natively (CPU: AVX512-BF16 or AMX; CUDA: compute 8.0+)."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())


def check_supported(device: torch.device | str = "cpu") -> None:
    """Raise (naming the flag and the alternative) where bfloat16 would be emulated, i.e. slower than float32."""
    if not native_bfloat16(device):
        what = "this GPU" if torch.device(device).type == "cuda" else "this CPU (no AVX512-BF16 or AMX)"
        raise ValueError(f"precision 'bf16': {what} has no bfloat16 matmul instructions, so bfloat16 would run "
                         "slower than float32; use --precision fp32 (or int8 for one character on the CPU)")


class BFloat16Decoder(nn.Module):
    """A decoder ``(z (B, Z'), cond (B, C*D)) -> (B, F*D)`` computing in bfloat16, taking and giving float32."""

    def __init__(self, decoder: nn.Module):
        super().__init__()
        self.inner = copy.deepcopy(decoder).to(torch.bfloat16)

    def forward(self, z: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        return self.inner(z.to(torch.bfloat16), cond.to(torch.bfloat16)).float()


def bfloat16_manifold(manifold):
    """A copy of a Gaussian or VQ ``manifold`` whose ``decoder`` is a :class:`BFloat16Decoder` (inference only)."""
    if not isinstance(getattr(manifold, "decoder", None), nn.Module):
        raise ValueError(f"precision 'bf16': {type(manifold).__name__} has no decoder module to convert")
    decoder = manifold.decoder
    result = copy.deepcopy(manifold, {id(decoder): decoder})  # every part but the decoder, copied once below
    result.decoder = BFloat16Decoder(decoder)
    return result.eval()


__all__ = ["BFloat16Decoder", "bfloat16_manifold", "check_supported", "native_bfloat16"]
