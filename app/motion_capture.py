"""A play session's motion out as BVH, for the character's own skeleton (``play.py --record-bvh``, key B).

:class:`MotionCapture` keeps the world joint rotations and positions of the captured characters at every
simulation step and writes one BVH per character (``mocap.bvh.write_bvh``: local rotations from the world
ones, the root's world translation, the skeleton's rest offsets), at the simulation's frame rate, ready for
Blender or a game engine. The app hands it the pose as drawn (``Simulation.joint_rotations`` /
``joint_positions``): with foot locking on (key L), locked legs' hips and knees turned and the root lowered as
``mocap.foot_locking.lock_legs`` solved them, so the file's feet stay planted. A character that restarts
elsewhere (a new task, a reset) jumps in the file as it did on screen.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from common.paths import output_file
from mocap.bvh import write_bvh
from mocap.kinematics import motion_from_world


class MotionCapture:
    """World joints of ``characters`` (indices; None = all) per step -> BVH files."""

    def __init__(self, skeleton, fps: float, characters: list[int] | None = (0,)):
        if skeleton is None:
            raise ValueError("this model has no skeleton (a hand-built manifold): its motion cannot be written as BVH")
        self.skeleton = skeleton
        self.fps = float(fps)
        self.characters = None if characters is None else list(characters)
        self._rot: list[np.ndarray] = []
        self._pos: list[np.ndarray] = []

    @property
    def steps(self) -> int:
        return len(self._pos)

    def add(self, world_rot: np.ndarray, world_pos: np.ndarray) -> None:
        """One simulation step: world rotations (B, J, 3, 3) and positions (B, J, 3) m of every character."""
        rows = slice(None) if self.characters is None else self.characters
        self._rot.append(np.array(world_rot[rows], dtype=np.float64))
        self._pos.append(np.array(world_pos[rows], dtype=np.float64))

    def paths_for(self, path) -> list[Path]:
        """One file per captured character: ``path`` itself for one, ``<stem>_<i>.bvh`` for a crowd."""
        path = Path(path)
        count = self._pos[0].shape[0] if self._pos else len(self.characters or [])
        if count == 1 and self.characters is not None:
            return [path]
        indices = self.characters if self.characters is not None else range(count)
        return [path.with_name(f"{path.stem}_{i:04d}{path.suffix}") for i in indices]

    def save(self, path) -> list[Path]:
        """Write the capture (at least two steps) -> the files written."""
        output_file(path, "--record-bvh", (".bvh",))
        if self.steps < 2:
            raise ValueError(f"--record-bvh {path}: nothing to write ({self.steps} step captured; a BVH needs 2)")
        rot = np.stack(self._rot, axis=1)  # (B, T, J, 3, 3)
        pos = np.stack(self._pos, axis=1)  # (B, T, J, 3)
        written = []
        for k, target in enumerate(self.paths_for(path)):
            motion = motion_from_world(target.stem, self.skeleton, rot[k], pos[k], self.fps)
            write_bvh(target, motion)
            written.append(target)
        return written
