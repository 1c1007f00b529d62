"""A window discriminator and GAN losses: the optional VQGAN-style adversarial term of ``vae.train``.

Spec:

- :class:`WindowDiscriminator` maps a window of ``T`` consecutive *normalised* frames (B, T, D) to one logit per
  window (B,): a 1-D convolution over time (kernel 3, ``hidden`` channels, LeakyReLU 0.2, ``layers`` of them, then a
  1x1 convolution to one channel) whose per-position logits are averaged over the window, a PatchGAN in time as in
  VQGAN. A kernel-3 stack sees velocities and accelerations of every feature, which is where foot sliding (feet
  moving while in contact) and jitter (large frame-to-frame acceleration) live, while a per-frame MSE only ever
  compares one frame to its target and has no term for how consecutive outputs fit together. Positive logits mean
  "real".
- Losses, pure functions of the logits (means over the batch), as pairs ``GAN_LOSSES[name] = (d_loss, g_loss)``:

  ====== ============================================================ ==========================
  name   discriminator loss                                           generator loss
  ====== ============================================================ ==========================
  hinge  0.5 (mean relu(1 - D(real)) + mean relu(1 + D(fake)))        -mean D(fake)
  bce    0.5 (mean softplus(-D(real)) + mean softplus(D(fake)))       mean softplus(-D(fake))
  ====== ============================================================ ==========================

  ``hinge`` is VQGAN's (Esser et al. 2021); ``bce`` is the non-saturating loss of Goodfellow et al. (2014). At
  D = 0 everywhere (a discriminator that cannot tell) the hinge discriminator loss is 1 and the bce one log 2.
- :func:`discriminator_accuracy`: the share of windows the discriminator calls right (real > 0, fake < 0), averaged
  over the real and the fake ones; 0.5 is chance.

How ``vae.train --adversarial-weight W`` uses them (see :mod:`vae.train`): at rollout step k >= T - 1 the fake window
is the last T frames the model decoded in this rollout and the real one the data frames at the same places; the
model's loss gains ``W * g_loss`` and the discriminator takes one Adam step on ``d_loss`` after the model's step.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class WindowDiscriminator(nn.Module):
    """(B, T, D) normalised frame windows -> (B,) logits (positive: real)."""

    def __init__(self, frame_size: int, hidden: int = 64, layers: int = 2):
        super().__init__()
        if frame_size < 1 or hidden < 1 or layers < 1:
            raise ValueError(f"WindowDiscriminator needs frame_size, hidden and layers >= 1, got {frame_size}, "
                             f"{hidden}, {layers}")
        blocks: list[nn.Module] = []
        channels = frame_size
        for _ in range(layers):
            blocks += [nn.Conv1d(channels, hidden, kernel_size=3, padding=1), nn.LeakyReLU(0.2)]
            channels = hidden
        blocks.append(nn.Conv1d(channels, 1, kernel_size=1))
        self.net = nn.Sequential(*blocks)

    def forward(self, windows: torch.Tensor) -> torch.Tensor:
        if windows.dim() != 3:
            raise ValueError(f"WindowDiscriminator takes (B, T, D) windows, got shape {tuple(windows.shape)}")
        logits = self.net(windows.transpose(1, 2))  # (B, 1, T): one logit per position
        return logits.mean(dim=(1, 2))  # (B,)


def hinge_d_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    return 0.5 * (F.relu(1.0 - real_logits).mean() + F.relu(1.0 + fake_logits).mean())


def hinge_g_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    return -fake_logits.mean()


def bce_d_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    return 0.5 * (F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean())


def bce_g_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    # Non-saturating: -log sigmoid(D(fake)) keeps a gradient when the discriminator is sure the window is fake.
    return F.softplus(-fake_logits).mean()


GAN_LOSSES = {"hinge": (hinge_d_loss, hinge_g_loss), "bce": (bce_d_loss, bce_g_loss)}


def discriminator_accuracy(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """Share of windows classified right, the mean over real and fake ones (0.5: chance)."""
    return 0.5 * ((real_logits > 0).float().mean() + (fake_logits < 0).float().mean())
