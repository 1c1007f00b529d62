"""BVH motion files: read any BVH into a :class:`~mocap.kinematics.Motion` (metres) and write one back.

Reading (:func:`read_bvh`, :func:`import_bvh`):

- HIERARCHY: ``ROOT``/``JOINT``/``End Site`` blocks with ``OFFSET`` and ``CHANNELS``. Channels may be listed
  in any order and any subset per joint. Rotation channels are applied in the order listed:
  ``Zrotation Xrotation Yrotation`` means ``R = Rz @ Rx @ Ry`` (degrees in the file). Position channels, on the
  root or on any other joint, replace the matching component of the joint's rest ``OFFSET`` in that frame
  (the convention of Blender and most exporters). An ``End Site`` offset is stored in
  ``Skeleton.end_offsets`` of its parent joint.
- MOTION: ``Frames: N``, ``Frame Time: dt`` (fps = 1 / dt), then N lines of values. The block is parsed by
  numpy's C reader in one go, and token counts per line are found on the raw bytes, so there is no
  per-frame Python loop. A frame rate outside 1-1000 fps is refused (33.3333 is milliseconds typed as seconds
  and would become a 1,000x slow-motion clip; 10000 would be resampled into gigabytes): ``frame_time``
  (``mocap.prepare --frame-time``) replaces the file's value.
- Units: ``scale`` multiplies file units to metres. When it is None the unit is detected from the
  character's height (median over frames of the highest minus the lowest joint or End Site after FK): a height of
  1-2.5 in metres, centimetres or inches picks that unit; anything else is scaled to 1.7 m with a warning
  that names the file and suggests ``--scale``. :class:`BVHImport` records the choice.
- Placement roots (Bandai-Namco's static ``joint_Root``, LaFAN1-style ``SimulationBone``) are folded away
  by :func:`mocap.kinematics.drop_placement_roots`, so joint 0 is the moving body root.
- Malformed files raise :class:`BVHError` naming the file, the line and what to do. Besides syntax, a file is
  refused for duplicate joint names (both lines named), a NaN or infinite OFFSET, and an absurd OFFSET:
  longer than ``MAX_OFFSET_M`` after the unit is settled, or more than ``MAX_OFFSET_RATIO`` times the median
  bone of the file (no body part is; such an offset also swamps the float32 precision of every other bone
  in the dataset, and it would fool the unit detection, which measures the character's height).

Writing (:func:`write_bvh`): offsets in file units (metres * ``unit_scale``, centimetres by default), the root
with 6 channels, every other joint with 3 rotation channels in ``order`` (plus 3 position channels for joints
whose translation is animated away from the rest offset), an ``End Site`` on every leaf, and
``Frame Time``. The root ``OFFSET`` is written as zero: its position channels carry the translation, so
readers that add the offset and readers that replace it agree. The file is written atomically.
"""

from __future__ import annotations

import io
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from common.atomic import atomic_write
from mocap.kinematics import Motion, drop_placement_roots, forward_kinematics
from mocap.rotations import axis_angle_matrix, euler_to_matrix, matrix_to_euler
from mocap.skeleton import Skeleton

# Accepted character heights (metres) when detecting units, and the height used when none fits.
HEIGHT_RANGE_M = (1.0, 2.5)
FALLBACK_HEIGHT_M = 1.7
# Candidate units, tried in this order: (name, metres per file unit).
UNIT_CANDIDATES = (("cm", 0.01), ("m", 1.0), ("inch", 0.0254))
# Plausible frame rates of a motion capture file (frames per second).
FPS_RANGE = (1.0, 1000.0)
# An OFFSET (joint or End Site) longer than this many metres, or than this many times the file's median
# non-zero OFFSET, is no body part.
MAX_OFFSET_M = 1e4
MAX_OFFSET_RATIO = 1e4
# Frames used to measure the height (evenly spaced); the median over them is stable.
_HEIGHT_SAMPLE_FRAMES = 256
# A joint whose animated translation stays within this many metres of its offset is written without
# position channels.
_STATIC_TRANSLATION_M = 1e-5

_CHANNELS = {
    "xposition": ("pos", 0),
    "yposition": ("pos", 1),
    "zposition": ("pos", 2),
    "xrotation": ("rot", 0),
    "yrotation": ("rot", 1),
    "zrotation": ("rot", 2),
}
_AXES = "XYZ"
_IS_SPACE = np.zeros(256, dtype=bool)  # byte -> is ASCII whitespace
_IS_SPACE[[9, 10, 11, 12, 13, 32]] = True


class BVHError(ValueError):
    """A BVH file that cannot be read; the message names the file, the line and what to do."""


@dataclass
class BVHImport:
    """What :func:`import_bvh` read.

    Attributes:
        motion: the clip, in metres, placement roots dropped.
        unit: "cm", "m", "inch" (detected), "fitted" (no unit fitted; scaled to 1.7 m with a warning)
            or "given" (the caller passed ``scale``).
        scale: metres per file unit that was applied.
        height_m: the character's height after scaling (median over frames of highest minus lowest joint).
        dropped_roots: names of the placement roots that were folded away.
    """

    motion: Motion
    unit: str
    scale: float
    height_m: float
    dropped_roots: list[str]


@dataclass
class _Joint:
    name: str
    parent: int
    offset: np.ndarray  # (3,) file units
    channels: list[tuple[str, int]]  # (kind "pos"/"rot", axis) in file order
    line: int
    offset_line: int = 0
    end_offset: np.ndarray | None = None
    end_line: int = 0


def read_bvh(path: str | os.PathLike, scale: float | None = None, frame_time: float | None = None) -> Motion:
    """Read a BVH file into a Motion in metres (see the module docstring); ``scale`` = metres per file unit,
    ``frame_time`` = seconds per frame, replacing the file's ``Frame Time``."""
    return import_bvh(path, scale, frame_time).motion


def import_bvh(path: str | os.PathLike, scale: float | None = None, frame_time: float | None = None) -> BVHImport:
    """Like :func:`read_bvh`, also reporting the unit, scale and height it settled on."""
    path = Path(path)
    if frame_time is not None:
        _check_frame_rate(frame_time, f"{path}: frame_time={frame_time!r}", "pass seconds per frame")
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise BVHError(f"{path}: cannot read the file ({e.strerror or e})") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")  # joint names from some exporters; numbers are ASCII either way
    lines = text.splitlines()

    motion_line = _find_motion_line(lines, path)
    joints = _HierarchyParser(lines[:motion_line], path).parse()
    _check_offset_ratios(joints, path)
    num_frames = _frames_count(lines, motion_line, path)
    fps, first_data_line = _parse_motion_header(lines, motion_line, path, frame_time)
    values = _parse_frames(lines, first_data_line, num_frames, joints, path)

    skeleton_file_units = Skeleton(
        [j.name for j in joints],
        [j.parent for j in joints],
        np.stack([j.offset for j in joints]),
        np.stack([np.zeros(3) if j.end_offset is None else j.end_offset for j in joints]),
    )
    local_rot, local_pos = _channels_to_transforms(joints, values)

    if scale is None:
        unit, scale, height = _detect_scale(skeleton_file_units, local_rot, local_pos, path)
    else:
        if not (np.isfinite(scale) and scale > 0):
            raise BVHError(f"{path}: scale must be a positive number of metres per file unit, got {scale}")
        unit, scale = "given", float(scale)
        height = _height(skeleton_file_units, local_rot, local_pos) * scale
    _check_offset_lengths(joints, scale, unit, path)

    skeleton = Skeleton(
        skeleton_file_units.joint_names,
        skeleton_file_units.parents,
        skeleton_file_units.offsets * scale,
        skeleton_file_units.end_offsets * scale,
    )
    motion = Motion(path.stem, skeleton, local_rot, local_pos * scale, fps, str(path))
    try:
        dropped = drop_placement_roots(motion)
    except ValueError as e:
        raise BVHError(f"{path}: {e}") from None
    removed = skeleton.joint_names[: skeleton.num_joints - dropped.skeleton.num_joints]
    return BVHImport(dropped, unit, scale, height, removed)


def _find_motion_line(lines: list[str], path: Path) -> int:
    """Index of the ``MOTION`` line; checks that a HIERARCHY comes before it."""
    hierarchy = motion = None
    for i, line in enumerate(lines):
        word = line.strip().upper()
        if hierarchy is None and word == "HIERARCHY":
            hierarchy = i
        elif word == "MOTION":
            motion = i
            break
    if hierarchy is None:
        raise BVHError(
            f"{path}:1: no HIERARCHY section; a BVH file starts with HIERARCHY, then ROOT ... "
            "— is this really a BVH file?"
        )
    if motion is None:
        raise BVHError(
            f"{path}:{len(lines)}: no MOTION section after the HIERARCHY; the file is truncated or not a BVH file "
            "— re-export it"
        )
    return motion


def _frames_count(lines: list[str], motion_line: int, path: Path) -> int:
    i = _next_nonblank(lines, motion_line + 1)
    line = lines[i].strip() if i < len(lines) else ""
    if not line.lower().startswith("frames:"):
        raise BVHError(f"{path}:{i + 1}: expected 'Frames: N' after MOTION, found {_show(lines, i)}")
    value = line[len("frames:"):].strip()
    try:
        n = int(value)
    except ValueError:
        raise BVHError(f"{path}:{i + 1}: 'Frames:' must be a whole number, found {value!r}") from None
    if n < 1:
        raise BVHError(f"{path}:{i + 1}: the file has {n} frames; a clip needs at least one")
    return n


def _parse_motion_header(
    lines: list[str], motion_line: int, path: Path, frame_time: float | None = None
) -> tuple[float, int]:
    """(fps, index of the first frame line) from the ``Frame Time:`` line; ``frame_time`` replaces its value."""
    i = _next_nonblank(lines, _next_nonblank(lines, motion_line + 1) + 1)
    line = lines[i].strip() if i < len(lines) else ""
    if not line.lower().startswith("frame time:"):
        raise BVHError(
            f"{path}:{i + 1}: expected 'Frame Time: SECONDS' after 'Frames:', found {_show(lines, i)}; "
            "add it (e.g. 'Frame Time: 0.0333333' for 30 fps)"
        )
    if frame_time is not None:
        return _snap_fps(1.0 / float(frame_time)), i + 1
    value = line[len("frame time:"):].strip()
    where = f"{path}:{i + 1}: 'Frame Time: {value}'"
    try:
        dt = float(value)
    except ValueError:
        raise BVHError(f"{where} must be a number of seconds; fix the file or pass --frame-time SECONDS") from None
    if not (np.isfinite(dt) and dt > 0):
        raise BVHError(f"{where} must be a positive number of seconds; fix the file or pass --frame-time SECONDS")
    _check_frame_rate(dt, where, "fix the file or pass --frame-time SECONDS (it replaces the file's value)")
    return _snap_fps(1.0 / dt), i + 1


def _check_frame_rate(dt: float, where: str, remedy: str) -> None:
    """Refuse seconds per frame ``dt`` outside ``FPS_RANGE`` (``where`` names the file and line or the flag)."""
    try:
        dt = float(dt)
    except (TypeError, ValueError):
        raise BVHError(f"{where} must be a number of seconds per frame; {remedy}") from None
    lo, hi = FPS_RANGE
    if not (np.isfinite(dt) and 1.0 / hi <= dt <= 1.0 / lo):
        fps = f"{1.0 / dt:.4g} frames per second" if np.isfinite(dt) and dt > 0 else "no frame rate"
        # A value in 1-1000 read as milliseconds gives a plausible rate: say so (33.3333 ms is 30 fps).
        hint = f" (if it is {dt:g} ms, that is {1000.0 / dt:.4g} fps: --frame-time {dt / 1000.0:g})" if (
            np.isfinite(dt) and 1.0 <= dt <= 1000.0) else ""
        raise BVHError(
            f"{where} is {fps}, outside the plausible {lo:g}-{hi:g} fps{hint}; {remedy}"
        )


def _snap_fps(fps: float) -> float:
    """Round an fps within 0.01 % of a whole number to it: Frame Time is printed to 6-7 digits
    (0.0333333 s is 30 fps, not 30.00003), and a near-miss would make resampling drop a frame."""
    whole = round(fps)
    return float(whole) if whole > 0 and abs(fps - whole) <= 1e-4 * whole else fps


def _parse_frames(lines: list[str], first: int, num_frames: int, joints: list[_Joint], path: Path) -> np.ndarray:
    """The frame lines -> (T, C) float64, checking counts and numbers with line numbers in the errors."""
    num_channels = sum(len(j.channels) for j in joints)
    block = "\n".join(lines[first:])
    counts = _tokens_per_line(block.encode("utf-8", errors="replace"))  # (L,)
    data_lines = np.nonzero(counts)[0]
    if len(data_lines) < num_frames:
        last = first + (int(data_lines[-1]) + 1 if len(data_lines) else 0)
        raise BVHError(
            f"{path}:{last}: the MOTION block is truncated: 'Frames: {num_frames}' but only {len(data_lines)} frame "
            f"lines follow; re-export the file or correct the Frames: count to {len(data_lines)}"
        )
    if len(data_lines) > num_frames:
        warnings.warn(
            f"{path}:{first + int(data_lines[num_frames]) + 1}: {len(data_lines) - num_frames} frame lines after "
            f"the {num_frames} that 'Frames:' announces are ignored; correct the Frames: count to read them",
            stacklevel=3,
        )
        data_lines = data_lines[:num_frames]
    bad = np.nonzero(counts[data_lines] != num_channels)[0]
    if len(bad):
        k = int(bad[0])
        raise BVHError(
            f"{path}:{first + int(data_lines[k]) + 1}: frame {k} has {int(counts[data_lines[k]])} values but the "
            f"HIERARCHY declares {num_channels} channels; the file is corrupt or its CHANNELS lines do not match "
            "the data — re-export it"
        )
    values = _parse_numbers(block, num_frames, num_channels)  # (T, C)
    if values is None:
        k, line_index, token = _first_non_numeric(block)
        raise BVHError(
            f"{path}:{first + line_index + 1}: frame {k} holds {token!r}, which is not a number; fix or re-export "
            "the file"
        ) from None
    finite = np.isfinite(values).all(axis=1)
    if not finite.all():
        k = int(np.argmin(finite))
        raise BVHError(
            f"{path}:{first + int(data_lines[k]) + 1}: frame {k} holds a NaN or infinite value; fix or re-export "
            "the file"
        )
    return values


def _parse_numbers(block: str, num_frames: int, num_channels: int) -> np.ndarray | None:
    """The first ``num_frames`` rows of numbers in ``block`` -> (T, C), or None if a token is not a number.

    Token counts per line are already checked, so only a non-numeric token can fail here.
    """
    try:  # numpy's C reader
        return np.loadtxt(io.StringIO(block), dtype=np.float64, comments=None, max_rows=num_frames, ndmin=2)
    except ValueError:
        pass
    # Python's float() accepts a few spellings numpy rejects (e.g. "1_000"); only if it fails too is it an error.
    tokens = block.split()[: num_frames * num_channels]
    try:
        return np.fromiter(map(float, tokens), dtype=np.float64, count=len(tokens)).reshape(num_frames, num_channels)
    except ValueError:
        return None


def _tokens_per_line(block: bytes) -> np.ndarray:
    """Number of whitespace-separated tokens on each line of ``block`` (vectorised over bytes)."""
    b = np.frombuffer(block, dtype=np.uint8)
    newline = b == 10
    space = _IS_SPACE[b]
    starts = ~space
    starts[1:] &= space[:-1]  # a token starts where a non-space follows a space
    line_of = np.cumsum(newline, dtype=np.int32)  # line index of each byte
    return np.bincount(line_of[starts], minlength=int(newline.sum()) + 1)


def _first_non_numeric(block: str) -> tuple[int, int, str]:
    """(frame index, line index in ``block``, token) of the first token float() rejects. Error path only."""
    frame = 0
    for line_index, line in enumerate(block.split("\n")):
        words = line.split()
        for w in words:
            try:
                float(w)
            except ValueError:
                return frame, line_index, w
        frame += bool(words)
    return frame, 0, ""


def _channels_to_transforms(joints: list[_Joint], values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(T, C) channel values -> local rotations (T, J, 3, 3) and translations (T, J, 3), file units."""
    t, num_joints = values.shape[0], len(joints)
    local_rot = np.empty((t, num_joints, 3, 3))
    local_pos = np.empty((t, num_joints, 3))
    by_order: dict[str, tuple[list[int], list[np.ndarray]]] = {}  # Euler order -> joints, their angle columns
    col = 0
    for j, joint in enumerate(joints):
        cols = col + np.arange(len(joint.channels))
        col += len(joint.channels)
        local_pos[:, j] = joint.offset
        rot_cols, rot_axes = [], []
        for c, (kind, axis) in zip(cols, joint.channels, strict=True):
            if kind == "pos":
                local_pos[:, j, axis] = values[:, c]
            else:
                rot_cols.append(c)
                rot_axes.append(axis)
        if len(rot_axes) == 3 and len(set(rot_axes)) == 3:
            group = by_order.setdefault("".join(_AXES[a] for a in rot_axes), ([], []))
            group[0].append(j)
            group[1].append(np.array(rot_cols))
        else:  # fewer (or repeated) rotation channels: compose them one by one in file order
            m = np.broadcast_to(np.eye(3), (t, 3, 3)).copy()
            for c, axis in zip(rot_cols, rot_axes, strict=True):
                m = m @ axis_angle_matrix(axis, np.radians(values[:, c]))
            local_rot[:, j] = m
    # One call per rotation order, for all joints that share it.
    for order, (group_joints, group_cols) in by_order.items():
        angles = np.radians(values[:, np.stack(group_cols)])  # (T, G, 3)
        local_rot[:, group_joints] = euler_to_matrix(angles, order)
    return local_rot, local_pos


def _height(skeleton: Skeleton, local_rot: np.ndarray, local_pos: np.ndarray) -> float:
    """Median over (a sample of) frames of the highest minus the lowest joint or End Site, in file units.

    End Sites count because they usually mark the top of the head and the tips of the toes, so the
    measure is close to the body height.
    """
    t = local_rot.shape[0]
    sample = np.linspace(0, t - 1, min(t, _HEIGHT_SAMPLE_FRAMES)).round().astype(np.int64)
    world_rot, world_pos = forward_kinematics(skeleton.parents, local_rot[sample], local_pos[sample])
    ends = np.nonzero(np.any(skeleton.end_offsets != 0, axis=1))[0]
    end_pos = world_pos[:, ends] + (world_rot[:, ends] @ skeleton.end_offsets[ends, :, None])[..., 0]  # (S, E, 3)
    heights = np.concatenate([world_pos[..., 1], end_pos[..., 1]], axis=1)  # (S, J + E)
    return float(np.median(heights.max(axis=1) - heights.min(axis=1)))


def _detect_scale(
    skeleton: Skeleton, local_rot: np.ndarray, local_pos: np.ndarray, path: Path
) -> tuple[str, float, float]:
    """(unit, metres per file unit, height in metres) from the character's height."""
    height = _height(skeleton, local_rot, local_pos)
    if not height > 0:
        raise BVHError(
            f"{path}: cannot detect the units: all joints are at one height in every frame; "
            "pass the scale (metres per file unit, --scale) explicitly"
        )
    lo, hi = HEIGHT_RANGE_M
    for unit, metres in UNIT_CANDIDATES:
        if lo <= height * metres <= hi:
            return unit, metres, height * metres
    scale = FALLBACK_HEIGHT_M / height
    warnings.warn(
        f"{path}: the character is {height:.4g} file units tall, which is not {lo}-{hi} m in metres, centimetres "
        f"or inches; scaling by {scale:.6g} m per unit to make it {FALLBACK_HEIGHT_M} m tall. "
        "Pass --scale METRES_PER_UNIT to set the unit yourself.",
        stacklevel=3,
    )
    return "fitted", scale, FALLBACK_HEIGHT_M


def _length(v: np.ndarray) -> float:
    """Euclidean length of a finite 3-vector without overflowing for huge components (1e200 squared is inf)."""
    biggest = float(np.max(np.abs(v)))
    return biggest * float(np.linalg.norm(v / biggest)) if biggest > 0 else 0.0


def _offsets(joints: list[_Joint]) -> list[tuple[float, int, str]]:
    """(length in file units, line, what) of every joint and End Site OFFSET."""
    out = [(_length(j.offset), j.offset_line, f"the OFFSET of joint {j.name!r}") for j in joints]
    out += [(_length(j.end_offset), j.end_line, f"the End Site OFFSET of joint {j.name!r}")
            for j in joints if j.end_offset is not None]
    return out


def _check_offset_ratios(joints: list[_Joint], path: Path) -> None:
    """Refuse an OFFSET more than ``MAX_OFFSET_RATIO`` times the median non-zero OFFSET (any unit)."""
    offsets = _offsets(joints)
    lengths = np.array([length for length, _, _ in offsets])
    if not np.any(lengths > 0):
        return
    median = float(np.median(lengths[lengths > 0]))
    length, line, what = max(offsets)
    if length > MAX_OFFSET_RATIO * median:
        raise BVHError(
            f"{path}:{line}: {what} is {length:.4g} file units long, {length / median:.3g} times the median bone "
            f"({median:.4g}); no body part is, and it would swamp every other bone: fix or re-export the file"
        )


def _check_offset_lengths(joints: list[_Joint], scale: float, unit: str, path: Path) -> None:
    """Refuse an OFFSET longer than ``MAX_OFFSET_M`` once the unit (``scale`` metres per file unit) is settled."""
    length, line, what = max(_offsets(joints))
    if length * scale > MAX_OFFSET_M:
        source = "--scale" if unit == "given" else f"the detected unit ({unit})"
        raise BVHError(
            f"{path}:{line}: {what} is {length * scale:.4g} m with {source}, more than {MAX_OFFSET_M:g} m; "
            "fix the file or the scale"
        )


def _next_nonblank(lines: list[str], i: int) -> int:
    while i < len(lines) and not lines[i].strip():
        i += 1
    return i


def _show(lines: list[str], i: int) -> str:
    return repr(lines[i].strip()[:60]) if i < len(lines) else "the end of the file"


class _HierarchyParser:
    """Recursive-descent parser over the HIERARCHY tokens, keeping line numbers for errors."""

    def __init__(self, lines: list[str], path: Path):
        self.path = path
        self.tokens = [(w, n + 1) for n, line in enumerate(lines) for w in line.split()]
        self.pos = 0
        self.joints: list[_Joint] = []
        self.name_lines: dict[str, int] = {}

    def parse(self) -> list[_Joint]:
        self._expect("HIERARCHY")
        self._expect("ROOT")
        self._joint(parent=-1)
        if self.pos < len(self.tokens):
            word, line = self.tokens[self.pos]
            hint = " (files with several ROOTs are not supported; split them)" if word.upper() == "ROOT" else ""
            raise BVHError(f"{self.path}:{line}: unexpected {word!r} after the ROOT joint's closing brace{hint}")
        return self.joints

    def _next(self, what: str) -> tuple[str, int]:
        if self.pos >= len(self.tokens):
            last = self.tokens[-1][1] if self.tokens else 1
            raise BVHError(f"{self.path}:{last}: the HIERARCHY ends before {what}; the file is truncated or malformed")
        tok = self.tokens[self.pos]
        self.pos += 1
        return tok

    def _expect(self, keyword: str, where: str = "") -> int:
        word, line = self._next(repr(keyword))
        if word.upper() != keyword.upper():
            raise BVHError(f"{self.path}:{line}: expected {keyword!r}{where}, found {word!r}; the HIERARCHY is malformed")
        return line

    def _numbers(self, n: int, what: str) -> np.ndarray:
        out = []
        for _ in range(n):
            word, line = self._next(what)
            try:
                out.append(float(word))
            except ValueError:
                raise BVHError(f"{self.path}:{line}: {what} needs {n} numbers, found {word!r}") from None
            if not np.isfinite(out[-1]):
                raise BVHError(f"{self.path}:{line}: {what} holds {word!r}, not a finite number; fix or re-export "
                               "the file")
        return np.array(out)

    def _joint(self, parent: int) -> None:
        name, line = self._next("a joint name")
        if name == "{":
            raise BVHError(f"{self.path}:{line}: a joint without a name; give every ROOT/JOINT a name")
        if name in self.name_lines:
            raise BVHError(
                f"{self.path}:{line}: joint name {name!r} is used twice (lines {self.name_lines[name]} and {line}); "
                "joints are matched by name across files, so every ROOT/JOINT needs its own: rename one"
            )
        self.name_lines[name] = line
        index = len(self.joints)
        self._expect("{", f" after joint {name!r}")
        offset_line = self._expect("OFFSET", f" in joint {name!r}")
        offset = self._numbers(3, f"OFFSET of joint {name!r}")
        joint = _Joint(name, parent, offset, [], line, offset_line)
        self.joints.append(joint)
        word, wline = self._next(f"the rest of joint {name!r}")
        if word.upper() == "CHANNELS":
            joint.channels = self._channels(name)
            word, wline = self._next(f"the rest of joint {name!r}")
        while word != "}":
            upper = word.upper()
            if upper == "JOINT":
                self._joint(parent=index)
            elif upper == "END":
                where = f" in the End Site of joint {name!r}"
                self._expect("Site", where)
                self._expect("{", where)
                joint.end_line = self._expect("OFFSET", where)
                joint.end_offset = self._numbers(3, f"End Site OFFSET of joint {name!r}")
                self._expect("}", where)
            else:
                raise BVHError(
                    f"{self.path}:{wline}: expected JOINT, End Site or '}}' inside joint {name!r}, found {word!r}"
                )
            word, wline = self._next(f"the closing brace of joint {name!r}")

    def _channels(self, name: str) -> list[tuple[str, int]]:
        count_word, line = self._next(f"the channel count of joint {name!r}")
        try:
            count = int(count_word)
        except ValueError:
            raise BVHError(f"{self.path}:{line}: CHANNELS of joint {name!r} must start with a count, found {count_word!r}") from None
        channels = []
        for _ in range(count):
            word, cline = self._next(f"the {count} channels of joint {name!r}")
            channel = _CHANNELS.get(word.lower())
            if channel is None:
                raise BVHError(
                    f"{self.path}:{cline}: unknown channel {word!r} on joint {name!r}; channels are "
                    "Xposition Yposition Zposition Xrotation Yrotation Zrotation (or the CHANNELS count is wrong)"
                )
            channels.append(channel)
        return channels


def write_bvh(
    path: str | os.PathLike, motion: Motion, order: str = "ZXY", unit_scale: float = 100.0
) -> None:
    """Write ``motion`` as BVH; ``unit_scale`` = file units per metre (100: centimetres). Atomic."""
    order = order.upper()
    if sorted(order) != ["X", "Y", "Z"]:
        raise ValueError(f"write_bvh: order must be a permutation of 'XYZ' such as 'ZXY', got {order!r}")
    sk = motion.skeleton
    spaced = [n for n in sk.joint_names if not n or any(ch.isspace() for ch in n)]
    if spaced:
        raise ValueError(f"write_bvh: BVH joint names cannot be empty or hold spaces; rename {spaced}")
    rot_channels = " ".join(f"{a}rotation" for a in order)
    # Joints whose translation is animated (not just the rest offset) keep position channels.
    animated = np.abs(motion.local_pos - sk.offsets).max(axis=(0, 2)) > _STATIC_TRANSLATION_M  # (J,)
    animated[0] = True

    out: list[str] = ["HIERARCHY"]

    def fmt(v: np.ndarray) -> str:
        return " ".join(f"{x:.6f}" for x in v)

    def emit(j: int, depth: int) -> None:
        pad = "\t" * depth
        keyword = "ROOT" if j == 0 else "JOINT"
        offset = np.zeros(3) if j == 0 else sk.offsets[j] * unit_scale
        out.append(f"{pad}{keyword} {sk.joint_names[j]}")
        out.append(f"{pad}{{")
        out.append(f"{pad}\tOFFSET {fmt(offset)}")
        if animated[j]:
            out.append(f"{pad}\tCHANNELS 6 Xposition Yposition Zposition {rot_channels}")
        else:
            out.append(f"{pad}\tCHANNELS 3 {rot_channels}")
        kids = sk.children(j)
        for c in kids:
            emit(c, depth + 1)
        if not kids:
            out.append(f"{pad}\tEnd Site")
            out.append(f"{pad}\t{{")
            out.append(f"{pad}\t\tOFFSET {fmt(sk.end_offsets[j] * unit_scale)}")
            out.append(f"{pad}\t}}")
        out.append(f"{pad}}}")

    emit(0, 0)
    # Channel columns in the order the hierarchy lists the joints (depth-first), which is the file order.
    columns = []
    eulers = np.degrees(matrix_to_euler(motion.local_rot, order))  # (T, J, 3)
    for j in _depth_first(sk):
        if animated[j]:
            columns.append(motion.local_pos[:, j] * unit_scale)
        columns.append(eulers[:, j])
    values = np.concatenate(columns, axis=1)  # (T, C)
    out += ["MOTION", f"Frames: {motion.num_frames}", f"Frame Time: {1.0 / motion.fps:.8f}"]

    with atomic_write(path, "w", encoding="utf-8", newline="\n") as f:
        f.write("\n".join(out) + "\n")
        np.savetxt(f, values, fmt="%.6f")


def _depth_first(sk: Skeleton) -> list[int]:
    order: list[int] = []
    stack = [0]
    while stack:
        j = stack.pop()
        order.append(j)
        stack.extend(reversed(sk.children(j)))
    return order
