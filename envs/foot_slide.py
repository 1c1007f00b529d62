"""Foot sliding of generated frames, as a reward term: how far the toes slide while they touch the ground.

Pure math over a batch of raw frames (layout: ``mocap.pose_layout``)::

    slide_cm = contact_slide_cm(frame (B, D), layout, toes (F,), floor_m (F,), fps) -> (B,) cm per frame

Per toe: its horizontal speed (the frame's own joint velocity, m/s, which the model predicts with the pose) times a
soft contact weight ``clamp(1 - (height - floor) / CONTACT_HEIGHT_M, 0, 1)`` (1 on the floor, 0 from 5 cm up: the
height of the data's contact labels, :mod:`mocap.features`), divided by the fps: centimetres slid per frame,
averaged over the toes. The floor of each toe is the ``FLOOR_PERCENTILE``-th percentile of its height over the
model's start frames (its training data), as ``mocap.prepare`` takes a clip's floor for its labels.

The environments scale the positive part of a task's reward by ``exp(-foot_slide_weight * slide_cm)`` (see
``envs.vec_env``): the same pressure for rewards in metres of progress and for rewards in (0, 1].
"""

from __future__ import annotations

import torch

from mocap.features import CONTACT_HEIGHT_M
from mocap.prepare import FLOOR_PERCENTILE


def toe_floor_heights(frames: torch.Tensor, layout, toes: torch.Tensor) -> torch.Tensor:
    """(F,) m: each toe's floor, the ``FLOOR_PERCENTILE``-th percentile of its height over raw frames (N, D)."""
    heights = layout.positions(frames)[:, toes, 1]  # (N, F)
    return torch.quantile(heights, FLOOR_PERCENTILE / 100.0, dim=0)


def contact_slide_cm(frame: torch.Tensor, layout, toes: torch.Tensor, floor_m: torch.Tensor,
                     fps: float) -> torch.Tensor:
    """(B,) cm the toes in contact slide over this frame (see the module docstring); frame (B, D) raw."""
    height = layout.positions(frame)[:, toes, 1] - floor_m  # (B, F) m above the floor
    contact = (1.0 - height / CONTACT_HEIGHT_M).clamp(0.0, 1.0)  # (B, F)
    velocity = layout.velocities(frame)[:, toes]  # (B, F, 3) m/s, character frame (turned world velocity)
    speed = torch.linalg.vector_norm(velocity[..., [0, 2]], dim=-1)  # (B, F) horizontal m/s
    return (contact * speed).mean(dim=1) * (100.0 / fps)
