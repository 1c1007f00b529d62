"""The one place that defines the Motion VAE frame layout (Ling et al. 2020).

A frame is a flat vector of ``D = 3 + 12 J`` floats for a skeleton of J joints::

    [0:3]              root_delta   (dx m, dz m, dyaw rad): root displacement on the ground,
                                    expressed in the *previous* frame's facing frame,
                                    then the change of facing since the previous frame
    [3 : 3+3J]         joint_pos    (J, 3) m, in the character frame (origin: root projected
                                    on the ground; +z: facing; +y: up)
    [3+3J : 3+6J]      joint_vel    (J, 3) m/s, finite differences of world positions,
                                    rotated into the current character frame
    [3+6J : 3+12J]     joint_rot6d  (J, 6) joint orientations in the character frame,
                                    first two columns of the rotation matrix

This is also the layout of the original MVAE ``mocap.npz`` (267 = 3 + 12 * 22).
No other module may index frames with literals: use the slices and helpers here.
"""

from __future__ import annotations

from dataclasses import dataclass

ROOT_DELTA_SIZE = 3
ROOT_DXDZ = slice(0, 2)
ROOT_DYAW = 2


@dataclass(frozen=True)
class PoseLayout:
    """Named slices of a frame for a skeleton of ``num_joints`` joints."""

    num_joints: int

    @classmethod
    def from_frame_size(cls, frame_size: int) -> PoseLayout:
        if frame_size < ROOT_DELTA_SIZE + 12 or (frame_size - ROOT_DELTA_SIZE) % 12 != 0:
            raise ValueError(
                f"frame size {frame_size} is not 3 + 12 * J for any joint count J; "
                "frames must be [root delta (3), positions (3J), velocities (3J), 6D rotations (6J)]"
            )
        return cls((frame_size - ROOT_DELTA_SIZE) // 12)

    @property
    def frame_size(self) -> int:
        return ROOT_DELTA_SIZE + 12 * self.num_joints

    @property
    def root_delta(self) -> slice:
        return slice(0, ROOT_DELTA_SIZE)

    @property
    def root_dxdz(self) -> slice:
        return ROOT_DXDZ

    @property
    def root_dyaw(self) -> int:
        return ROOT_DYAW

    @property
    def joint_pos(self) -> slice:
        return slice(ROOT_DELTA_SIZE, ROOT_DELTA_SIZE + 3 * self.num_joints)

    @property
    def joint_vel(self) -> slice:
        j = self.num_joints
        return slice(ROOT_DELTA_SIZE + 3 * j, ROOT_DELTA_SIZE + 6 * j)

    @property
    def joint_rot6d(self) -> slice:
        j = self.num_joints
        return slice(ROOT_DELTA_SIZE + 6 * j, ROOT_DELTA_SIZE + 12 * j)

    # Views as (..., J, k) arrays. They work for numpy arrays and torch tensors alike.
    def positions(self, frames):
        """(..., D) -> (..., J, 3) character-frame joint positions (m)."""
        return frames[..., self.joint_pos].reshape(*frames.shape[:-1], self.num_joints, 3)

    def velocities(self, frames):
        """(..., D) -> (..., J, 3) character-frame joint velocities (m/s)."""
        return frames[..., self.joint_vel].reshape(*frames.shape[:-1], self.num_joints, 3)

    def rotations6d(self, frames):
        """(..., D) -> (..., J, 6) character-frame joint orientations."""
        return frames[..., self.joint_rot6d].reshape(*frames.shape[:-1], self.num_joints, 6)

    def root_deltas(self, frames):
        """(..., D) -> (..., 3): dx (m), dz (m), dyaw (rad)."""
        return frames[..., self.root_delta]
