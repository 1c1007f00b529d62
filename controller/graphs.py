"""The torch modules that are exported to ONNX: raw frames in, raw frames out, everything inside one graph.

Graphs (B is a dynamic axis in every one)::

    DecoderGraph     (latent (B, Z) float32 | code (B,) int64, cond_raw (B, C*D) float32[, style (B, S)])
                     -> next_raw (B, D)
    PolicyGraph      obs_raw (B, O) float32 -> action (B, A) float32 in [-1, 1] | (B,) int64 code
    ControllerGraph  (obs_raw (B, O), cond_raw (B, C*D)[, style (B, S)]) -> (next_raw (B, D), action)

``style`` (float32 blend weights of the S styles) is an input only of models with styles.

``DecoderGraph`` does what ``MotionManifold.step`` does: normalise the condition, look the code vector
up (VQ), decode, keep the first future frame, denormalise. It is written for tracing: no data-dependent
Python branches, and reshapes use -1 instead of the traced batch size, so the exported graph carries no
shape arithmetic. The mixture-of-experts decoder is traced in its fast formulation (all experts of a layer
in one matmul, then the expert outputs blended by the gate), which equals blending the weights.
A mixture-of-experts decoder is exported with the denormalisation folded into its last layer (its weights and
biases scaled by the frame's spread, the mean added to every expert's bias: the experts' blending weights sum to 1)
and only the first future frame's columns kept, so the graph ends at the blend: three nodes fewer, ~2.5 us of a
batch-1 call on the CPU.
``ControllerGraph`` fuses the policy and the decoder; it scales Gaussian actions by ``action_scale`` (the
environments' latent = action * action_scale) and looks discrete actions up in the codebook.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from vae.mixture_vae import MixtureDecoder


def raw_output_manifold(manifold, frame_mean: torch.Tensor, frame_std: torch.Tensor):
    """A copy of ``manifold`` whose mixture decoder writes the first future frame in raw units (B, D) (see the
    module docstring); None for other decoders."""
    if not isinstance(getattr(manifold, "decoder", None), MixtureDecoder):
        return None
    result = copy.deepcopy(manifold)
    d = frame_mean.shape[0]
    weight, bias = result.decoder.weights[-1], result.decoder.biases[-1]  # (in, E, F*D), (E, F*D)
    with torch.no_grad():
        result.decoder.weights[-1] = nn.Parameter(weight[:, :, :d] * frame_std)  # (in, E, D)
        result.decoder.biases[-1] = nn.Parameter(bias[:, :d] * frame_std + frame_mean)  # (E, D)
    return result.eval()


class DecoderGraph(nn.Module):
    """(latent or code, cond_raw (B, C*D)) -> next_raw (B, D): ``manifold.step`` as one traceable module."""

    def __init__(self, manifold):
        super().__init__()
        self.manifold = manifold
        self.discrete = bool(manifold.discrete)
        self.latent_bound = None if self.discrete else getattr(manifold, "latent_bound", None)
        c, d = manifold.num_condition_frames, manifold.frame_size
        self.frame_size = d
        mean = manifold.data_mean.detach().float()
        std = manifold.data_std.detach().float()
        # The condition window is C frames flattened oldest first: tile the per-frame statistics.
        self.register_buffer("cond_mean", mean.repeat(c).clone())  # (C*D,)
        self.register_buffer("cond_std", std.repeat(c).clone())  # (C*D,)
        self.register_buffer("frame_mean", mean.clone())  # (D,)
        self.register_buffer("frame_std", std.clone())  # (D,)
        self.raw_output = raw_output_manifold(manifold, self.frame_mean, self.frame_std)

    def latent(self, action: torch.Tensor) -> torch.Tensor:
        """(B, Z) latents (clamped to the model's latent bound, as ``step`` does); (B,) int64 codes become (B, Z)
        code vectors."""
        if self.discrete:
            return self.manifold.codebook[action]
        return action if self.latent_bound is None else action.clamp(-self.latent_bound, self.latent_bound)

    def forward(self, action: torch.Tensor, cond_raw: torch.Tensor, style: torch.Tensor | None = None) -> torch.Tensor:
        z = self.latent(action)  # (B, Z)
        cond_norm = (cond_raw - self.cond_mean) / self.cond_std  # (B, C*D)
        if self.raw_output is not None:
            return self.raw_output.decode(z, cond_norm, style=style)  # first future frame, raw, (B, D)
        out = self.manifold.decode(z, cond_norm, style=style)  # (B, F*D)
        return out[:, : self.frame_size] * self.frame_std + self.frame_mean  # first future frame, (B, D)


class PolicyGraph(nn.Module):
    """obs_raw (B, O) -> action: the policy's own forward (observation normalisation and tanh inside)."""

    def __init__(self, policy: nn.Module):
        super().__init__()
        self.policy = policy

    def forward(self, obs_raw: torch.Tensor) -> torch.Tensor:
        return self.policy(obs_raw)


class ControllerGraph(nn.Module):
    """(obs_raw, cond_raw) -> (next_raw, action): the policy's action decoded in the same graph."""

    def __init__(self, policy: nn.Module, manifold, action_scale: float | None):
        super().__init__()
        self.policy = policy
        self.decoder = DecoderGraph(manifold)
        self.action_scale = None if manifold.discrete else float(action_scale)

    def forward(self, obs_raw: torch.Tensor, cond_raw: torch.Tensor,
                style: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        action = self.policy(obs_raw)  # (B, A) in [-1, 1], or (B,) codes
        latent = action if self.action_scale is None else action * self.action_scale
        return self.decoder(latent, cond_raw, style), action
