"""RunningMeanVar: running mean and variance of a stream of vectors, kept as module buffers (torch, any device).

Used twice by the trainer: inside the policy for observations (the buffers travel with the policy, so the
shipped file normalises raw observations by itself) and for the scale of discounted returns (reward
normalisation). Batches are merged with the parallel form of Welford's update (Chan et al.), so the result
does not depend on how a stream is cut into batches beyond float rounding.
"""

from __future__ import annotations

import torch
from torch import nn

CLIP = 10.0  # normalised observations are clipped to +-CLIP (outliers cannot saturate the network)
EPS = 1e-8


class RunningMeanVar(nn.Module):
    """Mean (size,), population variance (size,) and sample count of everything passed to :meth:`update`."""

    mean: torch.Tensor
    var: torch.Tensor
    count: torch.Tensor

    def __init__(self, size: int):
        super().__init__()
        self.size = int(size)
        self.register_buffer("mean", torch.zeros(self.size))
        self.register_buffer("var", torch.ones(self.size))
        # A tiny prior count keeps the first merge well defined and lets the first batch dominate.
        self.register_buffer("count", torch.tensor(1e-4, dtype=torch.float64))

    @torch.no_grad()
    def update(self, x: torch.Tensor) -> None:
        """Merge a batch ``x`` (N, size) (or (N,) when size is 1)."""
        x = x.reshape(-1, self.size).to(self.mean.dtype)
        n = x.shape[0]
        if n == 0:
            return
        batch_mean = x.mean(dim=0)
        batch_var = x.var(dim=0, unbiased=False)
        total = self.count + n
        delta = batch_mean - self.mean
        w = (n / total).to(self.mean.dtype)
        new_mean = self.mean + delta * w
        m2 = self.var * (self.count / total).to(self.mean.dtype) + batch_var * w + delta.pow(2) * w * (1 - w)
        self.mean.copy_(new_mean)
        self.var.copy_(m2)
        self.count.copy_(total)

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """(x - mean) / sqrt(var + eps), clipped to +-CLIP."""
        return ((x - self.mean) / torch.sqrt(self.var + EPS)).clamp(-CLIP, CLIP)

    def scale(self, x: torch.Tensor) -> torch.Tensor:
        """x / sqrt(var + eps) (no centring: what reward scaling needs)."""
        return x / torch.sqrt(self.var + EPS)
