"""DeepMimic humanoid motions (the clips shipped in the pybullet wheel) -> :class:`mocap.kinematics.Motion`.

File format: JSON ``{"Loop": "wrap" | "none", "Frames": [[...], ...]}``. Each frame of the humanoid
has 44 numbers::

    duration (s, time to the next frame)  root position (3, m)  root rotation (quaternion w, x, y, z)
    chest (quat)  neck (quat)  right hip (quat)  right knee (angle)  right ankle (quat)
    right shoulder (quat)  right elbow (angle)  left hip (quat)  left knee (angle)  left ankle (quat)
    left shoulder (quat)  left elbow (angle)

Skeleton: read from ``pybullet_data/humanoid/humanoid.urdf`` (see :mod:`mocap.urdf`), never hard-coded.
The joint rotations in a frame follow the URDF's movable joints in file order (spherical: a quaternion,
revolute: one angle about the joint axis); :data:`DEEPMIMIC_JOINTS` pins that order, and loading fails
if the URDF disagrees. The URDF is written at 4x scale; pybullet's own DeepMimic environment loads it
with ``globalScaling=0.25`` (:data:`URDF_SCALE`), which puts the feet on the ground for root heights
in the files. The skeleton has 15 joints: ``root`` (the pelvis link), ``chest``, ``neck``, and per side
``hip``, ``knee``, ``ankle``, ``shoulder``, ``elbow``, ``wrist`` (the wrists are fixed joints, i.e. the
hands); names carry ``left_``/``right_`` so mirroring works. End sites (``Skeleton.end_offsets``),
from the URDF collision shapes: the top of the head sphere on ``neck`` and the front of the sole
(the toe) on each ankle.

Conventions of the data (checked by the tests against the files and pybullet's own kinematics):
y-up, metres; quaternions (w, x, y, z); the character's rest pose faces +x with its right side at +z
(the knees bend with negative angles about +z, the elbows with positive ones). Nothing is rotated on
import: the project's facing is computed from the left/right joints (:func:`mocap.features.facing_yaw`).

Frame rate: the first frame's duration; durations in the files are rounded (0.033332 for 1/30 s), so
a rate within 0.1 % of an integer is snapped to it. The last frame's duration is ignored (it is 0 or
a repeat). If durations vary, the clip is resampled by time at the first frame's rate.

Looping (``loop_cycles`` K > 1, only for ``"Loop": "wrap"`` clips): the last frame closes the cycle,
standing where the next cycle's first frame starts. Frames 1..N-1 are repeated K-1 times, each
repetition moved by the rigid ground transform (translation in x/z, yaw about +y) that maps frame 0's
root onto the previous repetition's last root, so the root never jumps and the seam frame is not
duplicated: K (N - 1) + 1 frames. Joint poses are kept as they are; where a file's last pose differs
from its first (several do, by 5-30 degrees), the seam shows that difference as it is.
"""

from __future__ import annotations

import functools
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mocap.kinematics import Motion
from mocap.rotations import matrix_to_quat, quat_slerp, quat_to_matrix, yaw_matrix
from mocap.skeleton import Skeleton
from mocap.urdf import UrdfJoint, UrdfModel, motion_matrix, read_urdf, rpy_matrix

URDF_SCALE = 0.25
HUMANOID_URDF = Path("humanoid") / "humanoid.urdf"
# Joints whose rotations a frame stores, in frame order (DeepMimic's humanoid3d character, whose joints
# the URDF lists in the same order), with the number of values each takes.
DEEPMIMIC_JOINTS = (
    ("chest", 4), ("neck", 4),
    ("right_hip", 4), ("right_knee", 1), ("right_ankle", 4), ("right_shoulder", 4), ("right_elbow", 1),
    ("left_hip", 4), ("left_knee", 1), ("left_ankle", 4), ("left_shoulder", 4), ("left_elbow", 1),
)
ROOT_SIZE = 1 + 3 + 4  # duration, root position, root quaternion
FRAME_SIZE = ROOT_SIZE + sum(n for _, n in DEEPMIMIC_JOINTS)
_DOF_WIDTH = {"spherical": 4, "revolute": 1, "continuous": 1, "fixed": 0}
_FPS_SNAP = 1e-3
_DURATION_RTOL = 1e-3
_NOT_HUMANOID = ("laikago_walk.txt",)


@dataclass(frozen=True, eq=False)
class DeepMimicCharacter:
    """The humanoid as FK needs it.

    Attributes:
        skeleton: joints in URDF order; offsets in metres (URDF lengths times ``URDF_SCALE``).
        joints: the URDF joint above each skeleton joint (None for the root).
        root_rot, root_pos: fixed transform from the DeepMimic root (the URDF root link) to the
            skeleton root (identity here: the URDF's ``base`` link is folded into ``root``).
        widths: numbers each skeleton joint takes in a frame (root: 0, it is read separately).
    """

    skeleton: Skeleton
    joints: tuple[UrdfJoint | None, ...]
    root_rot: np.ndarray
    root_pos: np.ndarray
    widths: tuple[int, ...]


def _pybullet_data_dir() -> Path:
    try:
        import pybullet_data
    except ImportError:
        raise ModuleNotFoundError(
            "pybullet_data is missing: the DeepMimic motions and humanoid.urdf ship in the pybullet wheel; "
            "install it with `pip install pybullet`"
        ) from None
    return Path(pybullet_data.getDataPath())


def pybullet_motion_files() -> list[Path]:
    """The DeepMimic humanoid clips in the pybullet wheel: ``data/motions/humanoid3d_*.txt`` and
    ``data/motions/walker/*.txt``, each group sorted (the quadruped ``laikago_walk.txt`` is left out)."""
    motions = _pybullet_data_dir() / "data" / "motions"
    files = sorted(motions.glob("humanoid3d_*.txt")) + sorted((motions / "walker").glob("*.txt"))
    files = [f for f in files if f.name not in _NOT_HUMANOID]
    if not files:
        raise FileNotFoundError(f"{motions}: no DeepMimic humanoid motions (humanoid3d_*.txt, walker/*.txt) found")
    return files


def humanoid_urdf_path() -> Path:
    path = _pybullet_data_dir() / HUMANOID_URDF
    if not path.is_file():
        raise FileNotFoundError(f"{path}: the DeepMimic humanoid URDF is missing from pybullet_data; reinstall pybullet")
    return path


@functools.lru_cache(maxsize=4)
def load_humanoid(urdf_path: str | None = None) -> DeepMimicCharacter:
    """Build the DeepMimic humanoid from its URDF (pybullet's ``humanoid/humanoid.urdf`` by default)."""
    model = read_urdf(urdf_path or humanoid_urdf_path())
    root_link, root_rot, root_pos = _fold_dummy_root(model)

    names, parents, offsets, joints, widths = [root_link], [-1], [np.zeros(3)], [None], [0]
    index = {root_link: 0}
    for joint in model.joints:
        if joint.parent not in index:
            continue  # the folded base link's joint
        index[joint.child] = len(names)
        names.append(joint.name)
        parents.append(index[joint.parent])
        offsets.append(joint.origin_xyz * URDF_SCALE)
        joints.append(joint)
        widths.append(_DOF_WIDTH[joint.kind])

    stored = [(n, w) for n, w in zip(names, widths, strict=True) if w]
    if tuple(stored) != DEEPMIMIC_JOINTS:
        raise ValueError(
            f"{model.source}: the URDF's movable joints {stored} do not match DeepMimic's humanoid frame layout "
            f"{list(DEEPMIMIC_JOINTS)}; use pybullet's humanoid/humanoid.urdf"
        )
    end_offsets = np.zeros((len(names), 3))
    end_offsets[index["neck"]] = _head_top(model, "neck")
    for side in ("left", "right"):
        end_offsets[index[f"{side}_ankle"]] = _toe(model, f"{side}_ankle")
    skeleton = Skeleton(names, np.array(parents), np.array(offsets), end_offsets)
    return DeepMimicCharacter(skeleton, tuple(joints), root_rot, root_pos, tuple(widths))


def _fold_dummy_root(model: UrdfModel) -> tuple[str, np.ndarray, np.ndarray]:
    """Skip a root link hung on a single fixed joint (``base`` -> ``root``): its child becomes the skeleton root."""
    link, rot, pos = model.root_link, np.eye(3), np.zeros(3)
    while True:
        kids = model.child_joints(link)
        if len(kids) != 1 or kids[0].kind != "fixed" or model.links[link].shapes:
            return link, rot, pos
        pos = pos + rot @ (kids[0].origin_xyz * URDF_SCALE)
        rot = rot @ rpy_matrix(kids[0].origin_rpy)
        link = kids[0].child


def _head_top(model: UrdfModel, link: str) -> np.ndarray:
    """Top of the link's first sphere (the head), link frame, metres; zeros if it has none."""
    for s in model.links[link].shapes:
        if s.kind == "sphere":
            return (s.origin_xyz + np.array([0.0, s.size[0], 0.0])) * URDF_SCALE
    return np.zeros(3)


def _toe(model: UrdfModel, link: str) -> np.ndarray:
    """Front-bottom-middle of the link's first box (the foot; the rest pose faces +x), metres."""
    for s in model.links[link].shapes:
        if s.kind == "box":
            return (s.origin_xyz + np.array([0.5 * s.size[0], -0.5 * s.size[1], 0.0])) * URDF_SCALE
    return np.zeros(3)


def read_deepmimic(path: str | os.PathLike, loop_cycles: int = 1) -> Motion:
    """Read a DeepMimic humanoid clip (see the module docstring for the format, looping and frame rate)."""
    path = Path(path)
    if isinstance(loop_cycles, bool) or not isinstance(loop_cycles, (int, np.integer)) or loop_cycles < 1:
        raise ValueError(f"loop_cycles must be an integer >= 1, got {loop_cycles!r}")
    frames, wrap = _read_frames(path)
    character = load_humanoid()
    local_rot, local_pos = _pose_arrays(character, frames, path)

    durations = frames[:-1, 0]
    bad = np.nonzero(~(durations > 0))[0]
    if len(bad):
        raise ValueError(f"{path}: frame {int(bad[0])} has duration {durations[bad[0]]!r}; durations must be > 0 s")
    times = np.concatenate([[0.0], np.cumsum(durations)])  # (N,) s
    step = float(durations[0])
    if wrap and loop_cycles > 1:
        local_rot, local_pos, times = _loop(local_rot, local_pos, times, int(loop_cycles))
    if np.any(np.abs(np.diff(times) - step) > _DURATION_RTOL * step):
        local_rot, local_pos = _sample_times(local_rot, local_pos, times, step)
    sk = character.skeleton  # copied: the cached character must not change if a caller edits a clip's skeleton
    skeleton = Skeleton(list(sk.joint_names), sk.parents.copy(), sk.offsets.copy(), sk.end_offsets.copy())
    return Motion(path.stem, skeleton, local_rot, local_pos, _snap_fps(1.0 / step), str(path))


def _read_frames(path: Path) -> tuple[np.ndarray, bool]:
    """(N, 44) float64 frames and whether the clip wraps."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such DeepMimic motion file")
    try:
        doc = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{path}: not a DeepMimic motion file (not JSON: {e})") from None
    if not isinstance(doc, dict) or "Frames" not in doc:
        raise ValueError(f"{path}: not a DeepMimic motion file (no \"Frames\" list)")
    raw = doc["Frames"]
    if not isinstance(raw, list) or len(raw) < 2:
        raise ValueError(f"{path}: \"Frames\" must be a list of at least 2 frames")
    for i, frame in enumerate(raw):
        if not isinstance(frame, list) or len(frame) != FRAME_SIZE:
            n = len(frame) if isinstance(frame, list) else type(frame).__name__
            raise ValueError(
                f"{path}: frame {i} has {n} numbers; a DeepMimic humanoid frame has {FRAME_SIZE} "
                "(duration, root position 3, root quaternion 4, joint rotations 36)"
            )
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in frame):
            raise ValueError(f"{path}: frame {i} holds values that are not numbers")
    frames = np.array(raw, dtype=np.float64)
    if not np.all(np.isfinite(frames)):
        i = int(np.nonzero(~np.all(np.isfinite(frames), axis=1))[0][0])
        raise ValueError(f"{path}: frame {i} holds a non-finite number")
    return frames, doc.get("Loop") == "wrap"


def _pose_arrays(character: DeepMimicCharacter, frames: np.ndarray, path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Frames (N, 44) -> local rotations (N, J, 3, 3) and translations (N, J, 3)."""
    n, j = frames.shape[0], character.skeleton.num_joints
    local_rot = np.empty((n, j, 3, 3))
    local_pos = np.broadcast_to(character.skeleton.offsets, (n, j, 3)).copy()
    root_rot = quat_to_matrix(_checked_quat(frames[:, 4:8], path, "root"))
    local_rot[:, 0] = root_rot @ character.root_rot
    local_pos[:, 0] = frames[:, 1:4] + root_rot @ character.root_pos
    col = ROOT_SIZE
    for k in range(1, j):
        joint, width = character.joints[k], character.widths[k]
        if width == 4:
            value = _checked_quat(frames[:, col : col + 4], path, joint.name)
        elif width == 1:
            value = frames[:, col]
        else:
            value = None
        local_rot[:, k] = motion_matrix(joint, value)
        col += width
    return local_rot, local_pos


def _checked_quat(q: np.ndarray, path: Path, joint: str) -> np.ndarray:
    """(N, 4) quaternions; the files hold some unnormalised ones (norm 0.6-1), which we normalise."""
    norm = np.linalg.norm(q, axis=-1)
    if np.any(norm < 1e-6):
        raise ValueError(f"{path}: frame {int(np.argmax(norm < 1e-6))} has a zero quaternion for joint {joint!r}")
    return q / norm[:, None]


def _root_yaw_change(r0: np.ndarray, r1: np.ndarray) -> float:
    """Yaw (about +y) of the rotation taking ``r0`` to ``r1``: the twist part of ``r1 @ r0^T``."""
    d = r1 @ r0.T
    return float(np.arctan2(d[0, 2] - d[2, 0], d[0, 0] + d[2, 2]))


def _loop(local_rot: np.ndarray, local_pos: np.ndarray, times: np.ndarray, cycles: int):
    """Repeat frames 1..N-1 ``cycles - 1`` times, each copy moved onto the previous copy's end (module docstring).

    The move is one rigid ground transform T (yaw about +y, then x/z translation) taking frame 0's root
    onto frame N-1's root; copy k is T applied k times to the cycle.
    """
    turn = yaw_matrix(np.array(_root_yaw_change(local_rot[0, 0], local_rot[-1, 0])))  # (3, 3)
    ground = np.array([1.0, 0.0, 1.0])
    start, end = local_pos[0, 0] * ground, local_pos[-1, 0] * ground
    rots, poss, ts = [local_rot], [local_pos], [times]
    cyc_rot, cyc_pos = local_rot[1:], local_pos[1:]
    for k in range(1, cycles):
        cyc_rot, cyc_pos = cyc_rot.copy(), cyc_pos.copy()
        cyc_rot[:, 0] = turn @ cyc_rot[:, 0]
        cyc_pos[:, 0] = (cyc_pos[:, 0] - start) @ turn.T + end
        rots.append(cyc_rot)
        poss.append(cyc_pos)
        ts.append(times[1:] + k * times[-1])
    return np.concatenate(rots), np.concatenate(poss), np.concatenate(ts)


def _sample_times(local_rot: np.ndarray, local_pos: np.ndarray, times: np.ndarray, step: float):
    """Resample frames at irregular ``times`` (N,) onto a regular grid of ``step`` seconds.

    Rotations are slerped, translations interpolated linearly; the grid ends at or before the last frame.
    """
    n_new = int(np.floor(times[-1] / step + 1e-6)) + 1
    grid = np.arange(n_new) * step
    i0 = np.clip(np.searchsorted(times, grid, side="right") - 1, 0, len(times) - 2)
    alpha = np.clip((grid - times[i0]) / (times[i0 + 1] - times[i0]), 0.0, 1.0)  # (T',)
    q = matrix_to_quat(local_rot)  # (N, J, 4)
    q_new = quat_slerp(q[i0], q[i0 + 1], np.broadcast_to(alpha[:, None], (n_new, q.shape[1])))
    a = alpha[:, None, None]
    pos_new = (1.0 - a) * local_pos[i0] + a * local_pos[i0 + 1]
    return quat_to_matrix(q_new), pos_new


def _snap_fps(fps: float) -> float:
    """The files print durations with ~5 digits (0.033332 for 1/30 s): snap to an integer rate within 0.1 %."""
    nearest = round(fps)
    return float(nearest) if nearest > 0 and abs(fps - nearest) <= _FPS_SNAP * fps else fps
