"""Import an original Motion VAE ``mocap.npz`` (or any npz of frames in our layout) as clips.

Input keys: ``data`` (N, D) frames with D = 3 + 12 J, ``end_indices`` (C,) index of each clip's last
frame (strictly increasing, within [0, N-1]); other keys are ignored except:

* ``joint_names``, ``parents``, ``offsets`` (and ``end_offsets``): a skeleton (our dataset files). Used as is.
* ``clip_names`` (C,): clip names; otherwise clips are named ``<file stem>:<i>``.
* ``fps``: must agree with the ``fps`` argument (the original file has none; the paper uses 30).

Frames after the last end index form one more clip (the reference trainer samples them too).

The frames are checked against :mod:`mocap.pose_layout` and the two differences the reference code
suggests for its own file are undone, each detected from the data, never assumed:

* 6D orientations stored as all joints' Y axes then all joints' Z axes (the reference's pose CSV header
  ``...YDir`` x J, ``...ZDir`` x J) instead of per joint [column 0, column 1]: detected because only one
  reading gives orthonormal pairs; converted to per-joint [X, Y] with X = Y x Z.
* Lengths in feet (the reference renders its data with ``FOOT2METER = 0.3048``): detected from the
  character's height (3.3-7.5 units tall); positions, velocities and root displacements are scaled to metres.
* Velocities per frame instead of per second: detected by comparing them with the finite differences
  the positions and root deltas imply; multiplied by ``fps``.
* A character frame facing +x (the reference's target reward treats the character's +x as ahead):
  files without our skeleton keys are turned about +y by the quarter turn that makes their net root
  motion go along +z (left alone when the clips have no clear net direction).

Frames that still disagree with the layout (velocities not matching positions and root deltas, which
catches a wrong forward axis or missing root motion but tolerates central differences) are rejected.

Skeleton inference (when the file has none): joints that move rigidly together keep constant distances,
so the parent tree is the minimum spanning tree over the standard deviation (across frames) of pairwise
joint distances. Children of one joint are rigid with it and with each other, so exact ties are broken
towards the joint that joined the tree first (Prim's algorithm from the root), which picks the parent.
The root is the joint nearest the character-frame origin on the ground plane (the character frame is
built on the root, so this is exact for frames made by :func:`mocap.features.motion_to_frames`; for such
frames it is joint 0). Joints are renumbered in BFS order (parents first) and the frame columns permuted
to match. Offsets are the mean of ``R_parent^T (p_child - p_parent)`` (parent orientation from the
frames), scaled to the mean bone length. Names are generic: ``joint_NN`` (new index) for centre joints;
joints whose mirror image (x -> -x in the character frame, +x being the character's left) is another
joint with a mirrored parent are named ``left_KK``/``right_KK`` for pair KK, so mirroring works.
"""

from __future__ import annotations

import os
import zipfile
from collections import deque
from pathlib import Path

import numpy as np

from mocap.pose_layout import PoseLayout
from mocap.root_motion import world_to_char, world_to_char_xz
from mocap.rotations import rot6d_to_matrix, yaw_matrix
from mocap.skeleton import Skeleton

FOOT_M = 0.3048
FEET_HEIGHT_RANGE = (3.3, 7.5)  # a person 1.0-2.3 m tall, in feet
MAX_HEIGHT_M = 2.5
RIGID_STD_M = 1e-4  # distance spread below which two joints count as rigidly linked (float32 data: ~1e-6)
# Central-difference velocities leave a relative residual up to ~0.46 (measured on the DeepMimic clips) and
# shift the ratio by up to ~20 %; a wrong forward axis or missing root motion leaves 0.85 or more.
VEL_RATIO_TOL = 0.2
VEL_RESIDUAL_TOL = 0.6
FACING_NET_MOTION = 0.3  # net displacement / path length above which the net direction says where "forward" is
FACING_AXIS_TOL = np.radians(30.0)
_CHUNK = 4096


def is_mvae_npz(path: str | os.PathLike) -> bool:
    """True if ``path`` is an npz archive holding ``data`` and ``end_indices`` (reads only the archive index)."""
    try:
        if not zipfile.is_zipfile(path):
            return False
        with zipfile.ZipFile(path) as z:
            names = set(z.namelist())
    except OSError:
        return False
    return {"data.npy", "end_indices.npy"} <= names


def read_mvae_npz(path: str | os.PathLike, fps: float) -> list[tuple[str, np.ndarray, Skeleton]]:
    """Clips ``(name, frames (T, D) float64, skeleton)`` from an MVAE npz (see the module docstring)."""
    path = Path(path)
    fps = _checked_fps(fps, path)
    data, end_indices, arrays = _load(path)
    layout = _layout(data, path)
    if "fps" in arrays and abs(float(arrays["fps"]) - fps) > 1e-6 * fps:
        raise ValueError(f"{path}: the file says fps={float(arrays['fps'])} but fps={fps} was given; pass the file's rate")
    starts, ends = _clip_bounds(end_indices, data.shape[0], path)
    data = _fix_rotation_arrangement(data, layout, path)
    data = _to_metres(data, layout, path)
    data = _fix_velocity_units(data, layout, starts, fps, path)

    if all(k in arrays for k in ("joint_names", "parents", "offsets")):
        skeleton = _file_skeleton(arrays, layout, path)
    else:
        data = _face_plus_z(data, layout, path)
        skeleton, perm = infer_skeleton(data, str(path))
        data = permute_joints(data, perm)

    names = _clip_names(arrays, len(starts), path)
    return [(names[c], data[s : e + 1].copy(), skeleton) for c, (s, e) in enumerate(zip(starts, ends, strict=True))]


def _checked_fps(fps, path: Path) -> float:
    try:
        value = float(fps)
    except (TypeError, ValueError):
        raise ValueError(f"{path}: fps must be a number, got {fps!r}") from None
    if not np.isfinite(value) or value <= 0:
        raise ValueError(f"{path}: fps must be > 0, got {fps!r} (the original MVAE data is 30 fps)")
    return value


def _load(path: Path) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except Exception as e:  # noqa: BLE001 - any reader error means the same thing to the user
        raise ValueError(f"{path}: not a readable .npz of plain arrays ({e})") from None
    for key in ("data", "end_indices"):
        if key not in arrays:
            raise ValueError(f"{path}: no {key!r} array; an MVAE mocap.npz holds 'data' (N, D) and 'end_indices' (C,)")
    data = arrays["data"]
    if data.ndim != 2 or not np.issubdtype(data.dtype, np.number):
        raise ValueError(f"{path}: 'data' must be a 2-D array of numbers (frames x features), got {data.dtype} {data.shape}")
    if not np.all(np.isfinite(data)):
        raise ValueError(f"{path}: 'data' holds non-finite values (first bad frame {int(np.argmax(~np.isfinite(data).all(1)))})")
    ends = arrays["end_indices"]
    if ends.ndim != 1 or not np.issubdtype(ends.dtype, np.integer):
        raise ValueError(f"{path}: 'end_indices' must be a 1-D integer array, got {ends.dtype} {ends.shape}")
    return data.astype(np.float64), ends.astype(np.int64), arrays


def _layout(data: np.ndarray, path: Path) -> PoseLayout:
    try:
        return PoseLayout.from_frame_size(data.shape[1])
    except ValueError as e:
        raise ValueError(f"{path}: 'data' has {data.shape[1]} features per frame: {e}") from None


def _clip_bounds(ends: np.ndarray, n: int, path: Path) -> tuple[np.ndarray, np.ndarray]:
    if n == 0:
        raise ValueError(f"{path}: 'data' has no frames")
    if len(ends) and (ends.min() < 0 or ends.max() >= n):
        bad = int(ends[(ends < 0) | (ends >= n)][0])
        raise ValueError(f"{path}: end index {bad} is out of range for {n} frames (valid: 0..{n - 1})")
    if np.any(np.diff(ends) <= 0):
        i = int(np.argmax(np.diff(ends) <= 0))
        raise ValueError(f"{path}: 'end_indices' must be strictly increasing; entry {i + 1} ({ends[i + 1]}) follows {ends[i]}")
    if len(ends) == 0 or ends[-1] != n - 1:
        ends = np.append(ends, n - 1)
    starts = np.concatenate([[0], ends[:-1] + 1])
    return starts, ends


def _clip_names(arrays: dict[str, np.ndarray], count: int, path: Path) -> list[str]:
    names = arrays.get("clip_names")
    if names is not None and names.ndim == 1 and len(names) == count:
        return [str(n) for n in names.tolist()]
    return [f"{path.stem}:{i}" for i in range(count)]


def _file_skeleton(arrays: dict[str, np.ndarray], layout: PoseLayout, path: Path) -> Skeleton:
    try:
        skeleton = Skeleton.from_arrays(arrays)
    except (ValueError, KeyError) as e:
        raise ValueError(f"{path}: its skeleton arrays are invalid: {e}") from None
    if skeleton.num_joints != layout.num_joints:
        raise ValueError(
            f"{path}: frames have {layout.num_joints} joints (D={layout.frame_size}) but the skeleton has "
            f"{skeleton.num_joints}; drop the skeleton keys to infer one, or fix the file"
        )
    return skeleton


# --- layout checks -----------------------------------------------------------------------------------------


def _orthonormal_error(a: np.ndarray, b: np.ndarray) -> float:
    """Median over frames/joints of the worst of | |a|-1 |, | |b|-1 |, |a.b| for vector pairs (..., 3)."""
    na, nb = np.linalg.norm(a, axis=-1), np.linalg.norm(b, axis=-1)
    err = np.maximum(np.maximum(np.abs(na - 1), np.abs(nb - 1)), np.abs(np.sum(a * b, axis=-1)))
    return float(np.median(err))


def _fix_rotation_arrangement(data: np.ndarray, layout: PoseLayout, path: Path) -> np.ndarray:
    """Per-joint [col 0, col 1] (ours) or the reference's [Y axes of all joints, Z axes of all joints]."""
    sample = data[:: max(1, len(data) // 2000)]
    rot = layout.rotations6d(sample)  # (S, J, 6)
    ours = _orthonormal_error(rot[..., :3], rot[..., 3:])
    flat = sample[:, layout.joint_rot6d]
    j = layout.num_joints
    y_axes = flat[:, : 3 * j].reshape(-1, j, 3)  # (S, J, 3)
    z_axes = flat[:, 3 * j :].reshape(-1, j, 3)
    blocked = _orthonormal_error(y_axes, z_axes)
    if ours < 1e-2:
        return data
    if blocked < 1e-2:
        out = data.copy()
        flat = data[:, layout.joint_rot6d]
        y_axes, z_axes = flat[:, : 3 * j].reshape(-1, j, 3), flat[:, 3 * j :].reshape(-1, j, 3)
        x_axes = np.cross(y_axes, z_axes)
        out[:, layout.joint_rot6d] = np.concatenate([x_axes, y_axes], axis=-1).reshape(len(data), -1)
        return out
    raise ValueError(
        f"{path}: the orientation block (features {layout.joint_rot6d.start}..{layout.joint_rot6d.stop - 1}) does not "
        f"hold unit orthogonal axis pairs in either known arrangement (median error {min(ours, blocked):.3f}); "
        "the frames do not follow mocap/pose_layout.py"
    )


def _to_metres(data: np.ndarray, layout: PoseLayout, path: Path) -> np.ndarray:
    """Scale lengths from feet when the character is 3.3-7.5 units tall; reject other odd sizes."""
    heights = np.ptp(layout.positions(data[:: max(1, len(data) // 2000)])[..., 1], axis=-1)
    height = float(np.percentile(heights, 90))
    if height <= MAX_HEIGHT_M:
        return data
    if FEET_HEIGHT_RANGE[0] <= height <= FEET_HEIGHT_RANGE[1]:
        out = data.copy()
        for part in (layout.root_dxdz, layout.joint_pos, layout.joint_vel):
            out[:, part] *= FOOT_M
        return out
    raise ValueError(
        f"{path}: the character is {height:.1f} units tall, neither metres nor feet; convert the positions to metres"
    )


def _frame_displacements(data: np.ndarray, layout: PoseLayout, starts: np.ndarray):
    """Stored velocities (M, J, 3) and the per-frame displacements the positions and root deltas imply.

    Velocity t (character frame t) times dt equals ``p_t - Ry(-dyaw_t) (p_{t-1} - (dx_t, 0, dz_t))``.
    Each clip's frame 0 is left out (its velocity repeats frame 1's).
    """
    inside = np.ones(len(data), dtype=bool)
    inside[starts] = False
    t = np.nonzero(inside)[0]
    pos = layout.positions(data)  # (N, J, 3)
    delta = layout.root_deltas(data[t])  # (M, 3)
    # Frame t-1's character frame plays the world: frame t's root stands at (dx, dz) in it, turned by dyaw.
    turned = world_to_char(pos[t - 1], delta[:, layout.root_dxdz], delta[:, layout.root_dyaw])  # (M, J, 3)
    return layout.velocities(data[t]), pos[t] - turned


def _fix_velocity_units(data: np.ndarray, layout: PoseLayout, starts: np.ndarray, fps: float, path: Path) -> np.ndarray:
    vel, disp = _frame_displacements(data, layout, starts)
    if len(vel) == 0 or float(np.sum(disp**2)) < 1e-12:
        return data  # nothing moves: no evidence either way
    ratio = float(np.sum(vel * disp) / np.sum(disp**2))  # velocity / displacement: the rate they were made at
    residual = float(np.linalg.norm(vel - ratio * disp) / max(np.linalg.norm(vel), 1e-12))
    if residual > VEL_RESIDUAL_TOL:
        raise ValueError(
            f"{path}: joint velocities disagree with the positions and root deltas (relative residual {residual:.2f}); "
            "the frames do not follow mocap/pose_layout.py (root delta in the previous facing frame, +z facing, "
            "velocities in the current character frame)"
        )
    if abs(ratio - fps) <= VEL_RATIO_TOL * fps:
        return data
    if abs(ratio - 1.0) <= VEL_RATIO_TOL:
        out = data.copy()
        out[:, layout.joint_vel] *= fps
        return out
    raise ValueError(
        f"{path}: the velocities were made at {ratio:.1f} frames per second, not fps={fps}; pass fps={ratio:.0f}"
    )


def _face_plus_z(data: np.ndarray, layout: PoseLayout, path: Path) -> np.ndarray:
    """Turn the character frame about +y so that the net root motion goes along +z (our facing).

    Only for files without our skeleton keys; left as is when the motion has no clear net direction.
    """
    step = data[:, layout.root_dxdz]  # (N, 2): dx, dz
    net, travelled = step.mean(0), np.linalg.norm(step, axis=-1).mean()
    if travelled < 1e-9 or np.linalg.norm(net) < FACING_NET_MOTION * travelled:
        return data
    angle = float(np.arctan2(net[0], net[1]))  # from +z towards +x
    quarter = round(angle / (np.pi / 2))
    if abs(angle - quarter * np.pi / 2) > FACING_AXIS_TOL:
        raise ValueError(
            f"{path}: the character mostly moves {np.degrees(angle):.0f} degrees off +z in its own frame; frames must "
            "face +z (mocap/pose_layout.py) and no axis-aligned turn fixes that"
        )
    if quarter % 4 == 0:
        return data
    yaw = np.array(quarter * np.pi / 2)  # the file's facing in our character frame
    turn = yaw_matrix(-yaw)  # (3, 3): into the frame that faces it
    out = data.copy()
    n = len(data)
    out[:, layout.root_dxdz] = world_to_char_xz(step, yaw)  # (N, 2)
    out[:, layout.joint_pos] = (layout.positions(data) @ turn.T).reshape(n, -1)  # (N, J, 3) -> (N, 3J)
    out[:, layout.joint_vel] = (layout.velocities(data) @ turn.T).reshape(n, -1)  # (N, J, 3) -> (N, 3J)
    rot6d = layout.rotations6d(data)  # (N, J, 6): two columns, each turned
    turned = np.concatenate([rot6d[..., :3] @ turn.T, rot6d[..., 3:] @ turn.T], -1)  # (N, J, 6)
    out[:, layout.joint_rot6d] = turned.reshape(n, -1)  # (N, J, 6) -> (N, 6J)
    return out


# --- skeleton inference ------------------------------------------------------------------------------------


def distance_spread(positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation (J, J) over frames of pairwise joint distances, positions (N, J, 3)."""
    j = positions.shape[1]
    total, total_sq = np.zeros((j, j)), np.zeros((j, j))
    for i in range(0, len(positions), _CHUNK):
        p = positions[i : i + _CHUNK]
        d = np.linalg.norm(p[:, :, None] - p[:, None], axis=-1)  # (n, J, J)
        total += d.sum(0)
        total_sq += (d**2).sum(0)
    mean = total / len(positions)
    return mean, np.sqrt(np.maximum(total_sq / len(positions) - mean**2, 0.0))


def infer_skeleton(frames: np.ndarray, source: str = "") -> tuple[Skeleton, np.ndarray]:
    """Skeleton from frames (N, D) (module docstring) and the joint order ``perm`` (new -> old index)."""
    layout = PoseLayout.from_frame_size(frames.shape[1])
    j = layout.num_joints
    pos = layout.positions(frames)  # (N, J, 3)
    mean_dist, spread = distance_spread(pos)
    root = int(np.argmin(np.linalg.norm(pos[..., [0, 2]], axis=-1).mean(0)))
    parent_old = _prim_tree(np.where(spread > RIGID_STD_M, spread, 0.0), mean_dist, root)

    perm = _bfs_order(parent_old, root)
    new_of = np.empty(j, dtype=np.int64)
    new_of[perm] = np.arange(j)
    parents = np.array([-1] + [int(new_of[parent_old[o]]) for o in perm[1:]], dtype=np.int64)

    rot = rot6d_to_matrix(layout.rotations6d(frames))  # (N, J, 3, 3)
    offsets = np.zeros((j, 3))
    for c in range(1, j):
        oc, op = perm[c], perm[parents[c]]
        local = np.einsum("nba,nb->na", rot[:, op], pos[:, oc] - pos[:, op])  # R_p^T (p_c - p_p), (N, 3)
        direction = local.mean(0)
        norm = np.linalg.norm(direction)
        offsets[c] = direction / norm * mean_dist[oc, op] if norm > 1e-9 else 0.0

    names = _joint_names(pos[:, perm].mean(0), parents)
    if len(set(names)) != j:
        raise ValueError(f"{source}: could not name the inferred joints uniquely")
    return Skeleton(names, parents, offsets), perm


def _prim_tree(weight: np.ndarray, mean_dist: np.ndarray, root: int) -> np.ndarray:
    """Parent (J,) of each joint in the minimum spanning tree of ``weight`` grown from ``root``.

    Ties go to the tree joint that joined earliest, then to the shorter edge.
    """
    j = len(weight)
    parent = np.full(j, -1, dtype=np.int64)
    joined = {root: 0}
    while len(joined) < j:
        best = None
        for t, order in joined.items():
            for v in range(j):
                if v in joined:
                    continue
                key = (weight[t, v], order, mean_dist[t, v], v)
                if best is None or key < best[0]:
                    best = (key, t, v)
        _, t, v = best
        parent[v] = t
        joined[v] = len(joined)
    return parent


def _bfs_order(parent: np.ndarray, root: int) -> np.ndarray:
    order, queue = [], deque([root])
    while queue:
        v = queue.popleft()
        order.append(v)
        queue.extend(int(c) for c in np.nonzero(parent == v)[0])
    return np.array(order, dtype=np.int64)


def _joint_names(mean_pos: np.ndarray, parents: np.ndarray) -> list[str]:
    """``left_KK``/``right_KK`` for mirror pairs (+x is the character's left), ``joint_NN`` otherwise.

    Side names are given only if every joint's mirror partner (nearest joint to its reflected mean position)
    is mutual and the partners' parents are partners too; otherwise all joints get ``joint_NN``.
    """
    j = len(mean_pos)
    generic = [f"joint_{i:02d}" for i in range(j)]
    reflected = mean_pos * np.array([-1.0, 1.0, 1.0])
    partner = np.argmin(np.linalg.norm(mean_pos[None] - reflected[:, None], axis=-1), axis=1)  # (J,)
    if np.any(partner[partner] != np.arange(j)):
        return generic
    for i in range(1, j):
        if partner[parents[i]] != parents[partner[i]]:
            return generic
    if partner[0] != 0 or np.all(partner == np.arange(j)):
        return generic
    names = list(generic)
    pair = 0
    for i in range(j):
        k = int(partner[i])
        if k <= i:
            continue
        left, right = (i, k) if mean_pos[i, 0] > mean_pos[k, 0] else (k, i)
        names[left], names[right] = f"left_{pair:02d}", f"right_{pair:02d}"
        pair += 1
    return names


def permute_joints(frames: np.ndarray, perm: np.ndarray) -> np.ndarray:
    """Reorder the joints of frames (N, D): new joint i is old joint ``perm[i]``; the root delta is kept."""
    layout = PoseLayout.from_frame_size(frames.shape[1])
    n = frames.shape[0]
    out = frames.copy()
    out[:, layout.joint_pos] = layout.positions(frames)[:, perm].reshape(n, -1)
    out[:, layout.joint_vel] = layout.velocities(frames)[:, perm].reshape(n, -1)
    out[:, layout.joint_rot6d] = layout.rotations6d(frames)[:, perm].reshape(n, -1)
    return out
