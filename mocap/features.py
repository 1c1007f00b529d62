"""World motion <-> Motion VAE frames (see :mod:`mocap.pose_layout` for the layout).

Pure functions over numpy arrays. Spaces are named in the variables:
``world_`` (y-up, metres), ``char_`` (character frame: root projected on the ground,
+z facing), ``local_`` (relative to the parent joint).
"""

from __future__ import annotations

import numpy as np

from mocap import root_motion
from mocap.kinematics import Motion, motion_world, world_to_local_rotations
from mocap.pose_layout import PoseLayout
from mocap.root_motion import char_to_world, root_deltas_from_world, world_to_char
from mocap.rotations import matrix_to_rot6d, rot6d_to_matrix, yaw_matrix
from mocap.skeleton import Skeleton, name_side

# Contact labels: a foot joint is in contact while it is within this height of its
# lowest height in the clip and moves slower than this horizontally.
CONTACT_HEIGHT_M = 0.05
CONTACT_SPEED_MPS = 0.6
# A model's contact channel (vae.contacts: a probability per foot joint) above this is a contact.
CONTACT_PROBABILITY = 0.5


# Names the facing definition the frames are made with (a build's data stage records it: a new one prepares again).
FACING_DEFINITION = "root-pairs"


def facing_yaw(skeleton: Skeleton, world_pos: np.ndarray, source: str = "") -> np.ndarray:
    """Facing angle (T,) radians from the left-minus-right vectors of the body's root pairs.

    Facing is perpendicular to the across-body direction: ``forward = across x up``, so a character whose left side
    points to +x faces +z (yaw 0). The across direction sums the pairs nearest the root (:func:`root_pairs`: on a
    humanoid the hips and the shoulders), which turn with the trunk; the limbs' pairs do not: a stride puts one foot
    0.6 m ahead of the other, and summing the feet, toes and hands with them swung the facing of a normal walk by
    +-35 deg per step (Bandai-Namco ``walk_normal_001``: 20.7 deg mean deviation from its 1-s average with every pair,
    2.1 deg with the root pairs), which the joystick then measured as heading error.
    """
    perm = _left_right_pairs(skeleton, source)
    left = root_pairs(skeleton, perm)
    across = (world_pos[:, left] - world_pos[:, perm[left]]).sum(axis=1)  # (T, 3)
    return np.arctan2(-across[:, 2], across[:, 0])


def root_pairs(skeleton: Skeleton, perm: np.ndarray) -> list[int]:
    """The left joints of the left/right pairs whose parent is a centre joint (hips, shoulders or collars on a
    humanoid), given the mirror permutation ``perm`` (J,); every left joint of a pair when none hangs off the centre."""
    sided = [i for i in range(skeleton.num_joints) if name_side(skeleton.joint_names[i]) == "left" and perm[i] != i]
    parents = skeleton.parents
    nearest = [i for i in sided if parents[i] < 0 or perm[parents[i]] == parents[i]]
    return nearest or sided


def _left_right_pairs(skeleton: Skeleton, source: str) -> np.ndarray:
    try:
        return skeleton.mirror_indices()
    except ValueError as e:
        raise ValueError(
            f"{source or 'skeleton'}: the facing direction comes from left/right joint pairs, and {e}"
        ) from None


def world_to_frames(world_rot: np.ndarray, world_pos: np.ndarray, yaw: np.ndarray, fps: float) -> np.ndarray:
    """World joints (T, J, 3, 3), (T, J, 3) and facing (T,) -> frames (T, D) float64.

    Frame 0's root delta and velocities repeat frame 1's (there is no frame -1).
    """
    t, j = world_pos.shape[:2]
    if t < 2:
        raise ValueError("a clip needs at least 2 frames to compute velocities")
    layout = PoseLayout(j)
    world_xz = world_pos[:, 0, ::2]  # (T, 2): the root joint's ground position
    char_pos = world_to_char(world_pos, world_xz, yaw)  # (T, J, 3)
    world_vel = np.diff(world_pos, axis=0, prepend=world_pos[:1]) * fps
    world_vel[0] = world_vel[1]
    char_vel = world_to_char(world_vel, np.zeros_like(world_xz), yaw)  # (T, J, 3): turned only
    char_rot = yaw_matrix(-yaw)[:, None] @ world_rot  # (T, J, 3, 3)

    frames = np.zeros((t, layout.frame_size))
    frames[:, layout.root_delta] = root_deltas_from_world(world_xz, yaw)
    frames[:, layout.joint_pos] = char_pos.reshape(t, -1)  # (T, J, 3) -> (T, 3J)
    frames[:, layout.joint_vel] = char_vel.reshape(t, -1)  # (T, J, 3) -> (T, 3J)
    frames[:, layout.joint_rot6d] = matrix_to_rot6d(char_rot).reshape(t, -1)  # (T, J, 6) -> (T, 6J)
    return frames


def integrate_root(frames: np.ndarray, start_xz=(0.0, 0.0), start_yaw: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Root ground position (T, 2) m and facing (T,) rad from frames (T, D) float64; frame 0 sits at the start.

    Frame t's delta moves the root from frame t-1 to t: displacement in t-1's facing frame
    (:func:`mocap.root_motion.integrate_root`).
    """
    layout = PoseLayout.from_frame_size(frames.shape[-1])
    deltas = np.asarray(layout.root_deltas(frames), dtype=np.float64)  # (T, 3)
    return root_motion.integrate_root(deltas, start_xz, start_yaw)


def frames_to_world(frames: np.ndarray, start_xz=(0.0, 0.0), start_yaw: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Frames (T, D) -> world rotations (T, J, 3, 3) and positions (T, J, 3) m by integrating the root."""
    layout = PoseLayout.from_frame_size(frames.shape[-1])
    world_xz, yaw = integrate_root(frames, start_xz, start_yaw)
    world_pos = char_to_world(np.asarray(layout.positions(frames), dtype=np.float64), world_xz, yaw)  # (T, J, 3)
    world_rot = yaw_matrix(yaw)[:, None] @ rot6d_to_matrix(layout.rotations6d(frames))  # (T, J, 3, 3)
    return world_rot, world_pos


def motion_to_frames(motion: Motion) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A clip -> (frames (T, D), world positions (T, J, 3), facing yaw (T,))."""
    world_rot, world_pos = motion_world(motion)
    yaw = facing_yaw(motion.skeleton, world_pos, motion.source or motion.name)
    return world_to_frames(world_rot, world_pos, yaw, motion.fps), world_pos, yaw


def frames_to_motion(frames: np.ndarray, skeleton: Skeleton, fps: float, name: str = "clip") -> Motion:
    """Frames -> a clip of local transforms for ``skeleton`` (for BVH export).

    Joint orientations give local rotations; the root joint's position gives the root
    translation; other joints use the skeleton's rest offsets.
    """
    world_rot, world_pos = frames_to_world(frames)
    local_rot = world_to_local_rotations(skeleton.parents, world_rot)
    local_pos = np.broadcast_to(skeleton.offsets, world_pos.shape).copy()
    local_pos[:, 0] = world_pos[:, 0]
    return Motion(name, skeleton, local_rot, local_pos, fps)


def mirror_frames(frames: np.ndarray, mirror_perm: np.ndarray, reflections: np.ndarray | None = None) -> np.ndarray:
    """Reflect frames (..., D) across the character's sagittal plane (x -> -x), swapping sides.

    Orientations become ``S R_pair(j) M_j``: ``S`` reflects the character-frame x axis and ``M_j``
    (J, 3, 3) the joint's local rest frame (``Skeleton.mirror_reflections()``), so the mirrored
    orientations drive the skeleton to the mirrored positions. Without ``reflections`` M_j = S
    (right for rigs whose rest frames are symmetric across x). Applying it twice is the identity.
    """
    layout = PoseLayout.from_frame_size(frames.shape[-1])
    out = np.array(frames, copy=True)
    reflect = np.array([-1.0, 1.0, 1.0])
    if reflections is None:
        reflections = np.broadcast_to(np.diag(reflect), (layout.num_joints, 3, 3))
    out[..., layout.root_dxdz] = frames[..., layout.root_dxdz] * reflect[::2]  # (dx, dz) -> (-dx, dz)
    out[..., layout.root_dyaw] = -frames[..., layout.root_dyaw]
    pos = layout.positions(frames)[..., mirror_perm, :] * reflect
    vel = layout.velocities(frames)[..., mirror_perm, :] * reflect
    rot = rot6d_to_matrix(layout.rotations6d(frames)[..., mirror_perm, :])  # (..., J, 3, 3)
    rot = (reflect[:, None] * rot) @ reflections
    out[..., layout.joint_pos] = pos.reshape(*frames.shape[:-1], -1)  # (..., J, 3) -> (..., 3J)
    out[..., layout.joint_vel] = vel.reshape(*frames.shape[:-1], -1)  # (..., J, 3) -> (..., 3J)
    out[..., layout.joint_rot6d] = matrix_to_rot6d(rot).reshape(*frames.shape[:-1], -1)  # (..., J, 6) -> (..., 6J)
    return out


def foot_contacts(
    world_pos: np.ndarray,
    foot_idx: np.ndarray,
    fps: float,
    floor_height: np.ndarray | None = None,
    height_m: float = CONTACT_HEIGHT_M,
    speed_mps: float = CONTACT_SPEED_MPS,
) -> np.ndarray:
    """Contact labels (T, F) bool for the foot joints ``foot_idx`` of world positions (T, J, 3).

    ``floor_height`` (F,) is each foot joint's lowest height; by default the clip's 5th percentile.
    """
    feet = world_pos[:, foot_idx]  # (T, F, 3)
    if floor_height is None:
        floor_height = np.percentile(feet[..., 1], 5, axis=0)
    vel = np.diff(feet, axis=0, prepend=feet[:1]) * fps
    vel[0] = vel[1] if len(vel) > 1 else 0.0
    speed = np.linalg.norm(vel[..., [0, 2]], axis=-1)
    return (feet[..., 1] < floor_height + height_m) & (speed < speed_mps)


def default_foot_indices(skeleton: Skeleton, world_pos: np.ndarray) -> np.ndarray:
    """Foot joints by name (foot/ankle/toe); otherwise the two joints lowest on average."""
    idx = skeleton.foot_indices()
    if len(idx) == 0:
        idx = np.sort(np.argsort(world_pos[..., 1].mean(axis=0))[:2])
    return idx
