"""Quality measures of Motion VAE output: pure torch functions over frames and joint positions.

Used by :mod:`vae.train` (latent use) and :mod:`vae.evaluate` (motion quality). Every function takes tensors and
returns tensors or plain numbers; nothing here reads files or holds state. Lengths are metres, angles radians,
frames follow :mod:`mocap.pose_layout`.
"""

from __future__ import annotations

import math

import torch

from mocap import root_motion
from mocap.pose_layout import PoseLayout

# A latent dim is active when its posterior mean varies across samples by more than this (Burda et al. 2016).
ACTIVE_UNIT_THRESHOLD = 0.01
# A foot joint is in contact while it is lower than its floor height plus this margin.
CONTACT_MARGIN_M = 0.05
# A generated frame with a feature this many data standard deviations from the mean has diverged.
DIVERGENCE_STD = 100.0


def integrate_root(frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Root ground position (..., T, 2) m and facing (..., T) rad from frames (..., T, D); frame 0 at the origin, yaw 0.

    Frame t's root delta moves the root from frame t-1 to t (displacement in t-1's facing frame, then the
    change of facing); frame 0's delta is ignored (:func:`mocap.root_motion.integrate_root`).
    """
    layout = PoseLayout.from_frame_size(frames.shape[-1])
    return root_motion.integrate_root(layout.root_deltas(frames))


def world_positions(frames: torch.Tensor) -> torch.Tensor:
    """World joint positions (..., T, J, 3) m from frames (..., T, D) by integrating the root from the origin."""
    layout = PoseLayout.from_frame_size(frames.shape[-1])
    world_xz, yaw = integrate_root(frames)  # (..., T, 2), (..., T)
    return root_motion.char_to_world(layout.positions(frames), world_xz, yaw)  # (..., T, J, 3)


def bone_length_errors(positions: torch.Tensor, parents, bone_lengths) -> torch.Tensor:
    """|distance(joint, parent) - bone length| (..., J-1) in metres for every non-root joint.

    ``positions`` (..., J, 3) in any frame that is a rigid motion of the world (character or world frame);
    ``parents`` (J,) with -1 at the root; ``bone_lengths`` (J,) metres (index 0 ignored).
    """
    parents = torch.as_tensor(parents, dtype=torch.long, device=positions.device)
    lengths = torch.as_tensor(bone_lengths, dtype=positions.dtype, device=positions.device)
    child = torch.arange(1, parents.shape[0], device=positions.device)
    dist = torch.linalg.vector_norm(positions[..., child, :] - positions[..., parents[child], :], dim=-1)
    return (dist - lengths[child]).abs()


def root_height_range(positions: torch.Tensor) -> tuple[float, float]:
    """(min, max) height in metres of joint 0 over all frames of positions (..., J, 3) (y-up)."""
    h = positions[..., 0, 1]
    return float(h.min()), float(h.max())


def foot_contact_displacements(
    world_pos: torch.Tensor, foot_joints, floor_heights, margin: float = CONTACT_MARGIN_M
) -> tuple[torch.Tensor, int]:
    """Horizontal displacements (m) of feet between consecutive frames while in contact, and the step count.

    ``world_pos`` (T, J, 3) of ONE continuous motion; a foot joint ``foot_joints[f]`` is in contact at a frame
    when its height is below ``floor_heights[f] + margin``. A step t-1 -> t counts when the foot is in contact at
    both frames. Returns (displacements (K,), number of foot steps considered (T-1) * F) so callers can pool
    several motions: foot skating is ``displacements.mean()``, the contact share is ``K / steps``.
    """
    feet = world_pos[:, torch.as_tensor(foot_joints, dtype=torch.long, device=world_pos.device)]  # (T, F, 3)
    floor = torch.as_tensor(floor_heights, dtype=world_pos.dtype, device=world_pos.device)  # (F,)
    contact = feet[..., 1] < floor + margin  # (T, F)
    both = contact[1:] & contact[:-1]  # (T-1, F)
    step = torch.linalg.vector_norm(feet[1:, :, [0, 2]] - feet[:-1, :, [0, 2]], dim=-1)  # (T-1, F)
    return step[both], int(both.numel())


def pose_diversity(positions: torch.Tensor, num_samples: int = 1000, generator: torch.Generator | None = None) -> float:
    """Mean pairwise pose distance (m) of up to ``num_samples`` poses drawn from positions (N, J, 3).

    The distance of two poses is the root mean square over joints of the joint-to-joint distance, in the
    character frame (so heading and place do not count, only the pose).
    """
    n, j = positions.shape[0], positions.shape[1]
    if n < 2:
        return 0.0
    if n > num_samples:
        idx = torch.randperm(n, generator=generator)[:num_samples].to(positions.device)
        positions = positions[idx]
        n = num_samples
    flat = positions.reshape(n, -1).double()  # (N, 3J)
    dist = torch.cdist(flat, flat) / math.sqrt(j)  # (N, N)
    return float(dist.sum() / (n * (n - 1)))


def gaussian_kl_per_dim(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(q(z|x) || N(0, I)) per latent dim (Z,), nats, averaged over the batch of mu, logvar (B, Z)."""
    return (-0.5 * (1.0 + logvar - mu.pow(2) - logvar.exp())).mean(dim=0)


def active_units(mu_variance: torch.Tensor, threshold: float = ACTIVE_UNIT_THRESHOLD) -> int:
    """Latent dims whose posterior mean varies across samples (variance (Z,)) by more than ``threshold``."""
    return int((mu_variance > threshold).sum())


def variance_from_moments(total: torch.Tensor, total_sq: torch.Tensor, count: int | float) -> torch.Tensor:
    """Population variance from a running sum and sum of squares of ``count`` samples (clamped at 0)."""
    mean = total / count
    return (total_sq / count - mean.pow(2)).clamp(min=0.0)


def code_usage(indices: torch.Tensor, num_codes: int) -> tuple[float, int]:
    """(perplexity exp(entropy of the code histogram), number of distinct codes used) of VQ code indices."""
    counts = torch.bincount(indices.reshape(-1).long(), minlength=num_codes).double()
    if counts.sum() == 0:
        return 0.0, 0
    p = counts / counts.sum()
    entropy = -(p[p > 0] * p[p > 0].log()).sum()
    return float(entropy.exp()), int((counts > 0).sum())


def nonfinite_frames(frames: torch.Tensor) -> torch.Tensor:
    """(..., T) bool: frames (..., T, D) with any NaN or infinity."""
    return ~torch.isfinite(frames).all(dim=-1)


def divergence_frame(frames_norm: torch.Tensor, threshold: float = DIVERGENCE_STD) -> int:
    """Index of the first frame of a walk (T, D) (normalised by the data's mean/std) that is non-finite or has a
    feature beyond ``threshold`` standard deviations: where an autoregressive rollout has blown up. T if none."""
    bad = nonfinite_frames(frames_norm) | (frames_norm.abs() > threshold).any(dim=-1)  # (T,)
    return int(bad.nonzero()[0, 0]) if bool(bad.any()) else int(frames_norm.shape[0])
