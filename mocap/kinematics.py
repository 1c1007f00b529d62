"""Motion clips as local joint transforms, forward kinematics and resampling.

A :class:`Motion` is what every importer produces and the BVH exporter consumes:
per-frame local rotations and translations of each joint relative to its parent.
All functions are vectorised over frames; the only Python loops run over joints.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mocap.rotations import matrix_to_quat, quat_slerp, quat_to_matrix
from mocap.skeleton import Skeleton


@dataclass
class Motion:
    """One clip.

    Attributes:
        name: clip name (file stem, plus a suffix for mirrored copies).
        skeleton: the joint hierarchy.
        local_rot: (T, J, 3, 3) joint rotation relative to the parent (root: world).
        local_pos: (T, J, 3) metres, joint translation relative to the parent
            (root: world position; other joints: the rest offset unless the file animates it).
        fps: frames per second.
        source: where it came from, for error messages.
    """

    name: str
    skeleton: Skeleton
    local_rot: np.ndarray
    local_pos: np.ndarray
    fps: float
    source: str = ""

    @property
    def num_frames(self) -> int:
        return int(self.local_rot.shape[0])

    @property
    def seconds(self) -> float:
        return self.num_frames / self.fps


def forward_kinematics(
    parents: np.ndarray, local_rot: np.ndarray, local_pos: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Local transforms (..., J, 3, 3), (..., J, 3) -> world rotations (..., J, 3, 3), positions (..., J, 3)."""
    world_rot = np.empty_like(local_rot)
    world_pos = np.empty_like(local_pos)
    world_rot[..., 0, :, :] = local_rot[..., 0, :, :]
    world_pos[..., 0, :] = local_pos[..., 0, :]
    for j in range(1, len(parents)):
        p = parents[j]
        world_rot[..., j, :, :] = world_rot[..., p, :, :] @ local_rot[..., j, :, :]
        world_pos[..., j, :] = world_pos[..., p, :] + (world_rot[..., p, :, :] @ local_pos[..., j, :, None])[..., 0]
    return world_rot, world_pos


def world_to_local_rotations(parents: np.ndarray, world_rot: np.ndarray) -> np.ndarray:
    """Inverse of the rotation part of FK: (..., J, 3, 3) world -> local."""
    local = world_rot.copy()
    parent_rot = world_rot[..., parents[1:], :, :]  # (..., J-1, 3, 3)
    local[..., 1:, :, :] = np.swapaxes(parent_rot, -1, -2) @ world_rot[..., 1:, :, :]
    return local


def motion_from_world(name: str, skeleton, world_rot: np.ndarray, world_pos: np.ndarray, fps: float) -> Motion:
    """World joint rotations (T, J, 3, 3) and positions (T, J, 3) m -> a clip of local transforms for ``skeleton``:
    local rotations from the world ones, the root translated to its world position, every other joint at its
    rest offset (what a BVH of the skeleton can hold)."""
    local_rot = world_to_local_rotations(skeleton.parents, world_rot)
    local_pos = np.broadcast_to(skeleton.offsets, world_pos.shape).copy()  # (T, J, 3)
    local_pos[:, 0] = world_pos[:, 0]
    return Motion(name, skeleton, local_rot, local_pos, fps)


def motion_world(motion: Motion) -> tuple[np.ndarray, np.ndarray]:
    """World rotations (T, J, 3, 3) and positions (T, J, 3) of a clip."""
    return forward_kinematics(motion.skeleton.parents, motion.local_rot, motion.local_pos)


def resample(motion: Motion, fps: float) -> Motion:
    """Resample to ``fps`` by slerp of local rotations and lerp of translations.

    The new clip keeps the same duration (the last sample is at or before the last source frame).
    """
    if abs(motion.fps - fps) < 1e-6:
        return motion
    t_src = motion.num_frames - 1
    n_new = int(np.floor(t_src * fps / motion.fps + 1e-6)) + 1
    src_time = np.arange(n_new) * (motion.fps / fps)  # in source frames
    i0 = np.minimum(np.floor(src_time).astype(np.int64), t_src)
    i1 = np.minimum(i0 + 1, t_src)
    alpha = src_time - i0  # (T',)
    q = matrix_to_quat(motion.local_rot)  # (T, J, 4)
    q_new = quat_slerp(q[i0], q[i1], np.broadcast_to(alpha[:, None], (n_new, q.shape[1])))
    a = alpha[:, None, None]
    pos_new = (1.0 - a) * motion.local_pos[i0] + a * motion.local_pos[i1]
    return Motion(motion.name, motion.skeleton, quat_to_matrix(q_new), pos_new, fps, motion.source)


def drop_placement_roots(motion: Motion, height_fraction: float = 0.1) -> Motion:
    """Fold dummy roots into their single child until the root is the moving body joint.

    A root is a placement bone when it has exactly one child and either never moves
    (e.g. Bandai-Namco's static ``joint_Root``) or stays near the ground, below
    ``height_fraction`` of the character's height (e.g. LaFAN1's ``SimulationBone``).
    """
    while True:
        sk = motion.skeleton
        kids = sk.children(0)
        if sk.num_joints < 3 or len(kids) != 1:
            return motion
        _, world_pos = motion_world(motion)
        static = (
            np.ptp(motion.local_pos[:, 0], axis=0).max() < 1e-6
            and np.ptp(motion.local_rot[:, 0].reshape(motion.num_frames, 9), axis=0).max() < 1e-6
        )
        heights = world_pos[..., 1]
        extent = float(np.median(heights.max(axis=1) - heights.min(axis=1)))
        grounded = float(np.mean(np.abs(heights[:, 0] - heights.min(axis=1)))) < height_fraction * max(extent, 1e-6)
        if not (static or grounded):
            return motion
        c = kids[0]
        local_rot = motion.local_rot.copy()
        local_pos = motion.local_pos.copy()
        local_rot[:, c] = motion.local_rot[:, 0] @ motion.local_rot[:, c]
        local_pos[:, c] = motion.local_pos[:, 0] + (motion.local_rot[:, 0] @ motion.local_pos[:, c, :, None])[..., 0]
        keep = np.arange(1, sk.num_joints)
        parents = sk.parents[keep] - 1
        parents[c - 1] = -1
        if c != 1:
            raise ValueError(f"{motion.source}: placement root's child is not listed first; cannot reorder joints")
        skeleton = Skeleton([sk.joint_names[k] for k in keep], parents, sk.offsets[keep], sk.end_offsets[keep])
        motion = Motion(motion.name, skeleton, local_rot[:, keep], local_pos[:, keep], motion.fps, motion.source)
