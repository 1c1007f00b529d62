"""Foot sliding of generated frames, as a reward term: how far the toes slide while they touch the ground.

Pure math over a batch of characters (layout: ``mocap.pose_layout``)::

    before = world_toes(frame, layout, toes, root_xz, rotation)  # (B, F, 3) m, before the step
    ...step...
    after = world_toes(...)                                       # (B, F, 3) m, after it
    slide_cm = contact_slide_cm(before, after, floor_m (F,))       # (B,) cm per frame

Per toe: how far it moved horizontally in the world over the step (m), times a soft contact weight
``clamp(1 - (height - floor) / CONTACT_HEIGHT_M, 0, 1)`` of its new height (1 on the floor, 0 from 5 cm up: the
height of the data's contact labels, :mod:`mocap.features`): centimetres slid per frame, averaged over the toes. The
floor of each toe is the ``FLOOR_PERCENTILE``-th percentile of its height over the model's start frames (its
training data), as ``mocap.prepare`` takes a clip's floor for its labels.

A character could escape that term by floating, both feet above the contact height (a policy trained through the
decoder's gradient did: its lower toe's median height was 8 cm, the data's 0.0 cm, 90 % under 1 cm, under 9 cm
even while dashing), so ``hover_cm`` adds the centimetres its lower toe floats above ``HOVER_HEIGHT_M`` (2 cm)::

    penalty_cm = contact_slide_cm(before, after, floor_m) + hover_cm(after, floor_m)

The hover penalty starts below the contact height, where the slide weight is still 0.6, so that no toe height is
free of both terms: with both at 5 cm a policy trained through the decoder's gradient held its lower toe at 4.4-5.1
cm (10th-90th percentile) and glided, every toe moving at 0.9 m/s (Bandai-Namco; CAMDM sliding 1.42 against the
data's 0.08, which grounds each rollout at its lowest toe). The data's lower toe is above 2 cm in 4 % of its frames
(Bandai-Namco; DeepMimic 6 %: a run's flight phase).

Displacements of world positions, as ``mocap.quality.foot_sliding`` measures (CAMDM), and not the frame's predicted
joint velocities: those are outputs of the model too, and a policy trained through the decoder's gradient
(:mod:`policies.apg`) learned to zero them while the toes' positions slid (Bandai-Namco: reward term near 0, CAMDM
sliding 1.3 against the data's 0.08).

The environments scale the positive part of a task's reward by ``exp(-foot_slide_weight * slide_cm)`` (see
``envs.vec_env``): the same pressure for rewards in metres of progress and for rewards in (0, 1].
"""

from __future__ import annotations

import torch

from mocap.features import CONTACT_HEIGHT_M
from mocap.prepare import FLOOR_PERCENTILE
from mocap.root_motion import char_to_world

HOVER_HEIGHT_M = 0.02  # the lower toe's height above its floor (m) from which it counts as floating
FOOT_SLIDE_DEFINITION = "slide-5cm-hover-2cm"  # builds record it: a policy trained on another definition retrains


def toe_floor_heights(frames: torch.Tensor, layout, toes: torch.Tensor) -> torch.Tensor:
    """(F,) m: each toe's floor, the ``FLOOR_PERCENTILE``-th percentile of its height over raw frames (N, D)."""
    heights = layout.positions(frames)[:, toes, 1]  # (N, F)
    return torch.quantile(heights, FLOOR_PERCENTILE / 100.0, dim=0)


def world_toes(frame: torch.Tensor, layout, toes: torch.Tensor, root_xz: torch.Tensor,
               rotation: torch.Tensor) -> torch.Tensor:
    """(B, F, 3) world toe positions (m) of raw frames (B, D) whose roots stand at ``root_xz`` (B, 2) turned by
    ``rotation`` (B, 2, 2) (``MotionCore.rotation``)."""
    return char_to_world(layout.positions(frame)[:, toes], root_xz, rotation=rotation)  # (B, F, 3)


def hover_cm(after: torch.Tensor, floor_m: torch.Tensor) -> torch.Tensor:
    """(B,) cm the lower toe floats above ``HOVER_HEIGHT_M`` (0 while a foot is down), world toes (B, F, 3) m."""
    lowest = (after[..., 1] - floor_m).min(dim=1).values  # (B,) m
    return (lowest - HOVER_HEIGHT_M).clamp_min(0.0) * 100.0


def contact_slide_cm(before: torch.Tensor, after: torch.Tensor, floor_m: torch.Tensor) -> torch.Tensor:
    """(B,) cm the toes in contact slid over a step: world toe positions ``before`` and ``after`` it (B, F, 3) m."""
    contact = (1.0 - (after[..., 1] - floor_m) / CONTACT_HEIGHT_M).clamp(0.0, 1.0)  # (B, F)
    moved = torch.linalg.vector_norm((after - before)[..., ::2], dim=-1)  # (B, F) horizontal m
    return (contact * moved).mean(dim=1) * 100.0
