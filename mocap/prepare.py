"""``python -m mocap.prepare``: motion files -> one Motion VAE training dataset (``DATA.npz``).

Usage::

    python -m mocap.prepare INPUT... --out DATA.npz [--fps 30] [--mirror] [--clips REGEX] [--scale S]
                            [--frame-time SECONDS] [--min-frames N] [--skip-bad] [--loop-cycles K] [--no-progress]

Each INPUT is one of:

- a ``.bvh`` file (units detected or ``--scale`` metres per file unit; placement roots dropped);
- a folder: every ``*.bvh`` below it, recursively, in sorted order (an empty folder is an error);
- a DeepMimic motion ``.txt`` file (``--loop-cycles K`` repeats a cyclic motion K times);
- an original-MVAE ``mocap.npz`` (frames already in the Motion VAE layout);
- the word ``pybullet``: the DeepMimic motions shipped in the pybullet wheel.

Per clip: load -> resample to ``--fps`` -> frames (:func:`mocap.features.motion_to_frames`) -> foot contacts
against the clip's own floor (5th percentile of each foot joint's height) -> with ``--mirror`` also the
mirrored clip ``<name>:mirror`` (contacts recomputed from its own world positions). Clip names are file stems
(paths relative to the folder for folder inputs); ``--clips`` keeps the clips whose name matches the regular
expression (``re.search``). All clips must share one skeleton: the same joint names with the same parents.
Clips that list those joints in another order are reordered to the first clip's order; the dataset stores
the first clip's skeleton (its offsets too). ``floor_heights`` in the dataset is the median over clips of their floors.
``--scale`` applies to BVH inputs only (DeepMimic and MVAE data are already in metres). ``--frame-time`` replaces
the ``Frame Time`` of every BVH input (for files whose header is wrong, e.g. milliseconds typed as seconds: a BVH
frame rate outside 1-1000 fps is refused); prepare files with different rates separately.

Errors (bad file, too-short clip, other skeleton) stop at the first one with exit code 2 and a one-line
message, unless ``--skip-bad`` is given: then bad files and clips are left out and listed at the end. The
output is written atomically once everything is read, so an error or Ctrl-C never leaves a partial file and
never touches an existing one; an ``--out`` that cannot be written (a folder, a path under a file, a folder
without write access) is refused before any input is read.
"""

from __future__ import annotations

import argparse
import re
import sys
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from common.paths import OutputPathError, output_file
from mocap.bvh import FPS_RANGE, BVHError, import_bvh
from mocap.dataset import MotionDataset
from mocap.features import (
    default_foot_indices,
    foot_contacts,
    frames_to_world,
    mirror_frames,
    motion_to_frames,
)
from mocap.kinematics import Motion, resample
from mocap.motion_graph import graph_walks
from mocap.pose_layout import PoseLayout
from mocap.skeleton import Skeleton

# 1 condition frame + an 8-step rollout + 1: the shortest clip a training sample can come from.
DEFAULT_MIN_FRAMES = 10
# Each clip's floor for contact labels: this percentile of each foot joint's height.
FLOOR_PERCENTILE = 5.0
PYBULLET = "pybullet"


class PrepareError(ValueError):
    """A bad input, flag or clip; the message says which and what to do."""


@dataclass
class _Source:
    kind: str  # "bvh", "deepmimic" or "mvae"
    path: Path
    name: str  # clip name for single-clip files; the file stem for multi-clip files


@dataclass
class _Clip:
    name: str
    frames: np.ndarray  # (T, D)
    world_pos: np.ndarray  # (T, J, 3)
    skeleton: Skeleton
    source: str


def prepare(
    inputs: list[str],
    out: str,
    fps: float = 30.0,
    mirror: bool = False,
    clips: str | None = None,
    scale: float | None = None,
    min_frames: int = DEFAULT_MIN_FRAMES,
    skip_bad: bool = False,
    loop_cycles: int = 1,
    progress: bool = True,
    graph_seconds: float = 0.0,
    graph_threshold: float = 0.06,
    seed: int = 0,
    styles: str | None = None,
    frame_time: float | None = None,
) -> MotionDataset:
    """Read ``inputs``, write the dataset to ``out`` (atomically) and return it. See the module docstring.

    Raises PrepareError (or :class:`mocap.bvh.BVHError`) on the first bad input unless ``skip_bad``;
    with ``skip_bad`` the skipped files and clips are printed to stderr at the end.
    """
    _check_flags(inputs, out, fps, scale, min_frames, loop_cycles, frame_time)
    pattern = _compile_clips(clips)
    sources = _expand_inputs(inputs)

    skipped: list[str] = []

    def bad(message: str) -> None:
        if not skip_bad:
            raise PrepareError(message)
        skipped.append(message)

    kept: list[_Clip] = []
    names_seen: set[str] = set()
    matched = 0
    for source in _progress(sources, progress):
        if source.kind != "mvae" and pattern is not None and not pattern.search(source.name):
            continue
        try:
            loaded = list(_load(source, fps, scale, loop_cycles, frame_time))
        except (ValueError, OSError) as e:
            message = str(e) if str(source.path) in str(e) else f"{source.path}: {e}"
            bad(message)
            continue
        for clip in loaded:
            if pattern is not None and not pattern.search(clip.name):
                continue
            matched += 1
            conformed = _conform(clip, kept[0] if kept else None, min_frames)
            if isinstance(conformed, str):
                bad(conformed)
                continue
            conformed.name = _unique(clip.name, names_seen)
            kept.append(conformed)

    if not kept:
        if pattern is not None and matched == 0:
            raise PrepareError(
                f"--clips {clips!r} matches no clip name among {len(sources)} input files; clip names are file stems "
                "(paths relative to a folder input)"
            )
        _report_skipped(skipped)
        raise PrepareError("no usable clips: every input was skipped (see above)")

    if styles and graph_seconds > 0:
        raise PrepareError("--styles with --graph-seconds: graph walks jump between clips of different styles; "
                           "use one or the other")
    dataset = _build_dataset(kept, fps, mirror, graph_seconds, graph_threshold, seed)
    if styles:
        dataset.clip_styles, dataset.style_names = clip_styles(dataset.clip_names, styles)
    dataset.save(out)
    _report_skipped(skipped)
    return dataset


def _check_flags(
    inputs: list[str], out: str, fps: float, scale: float | None, min_frames: int, loop_cycles: int,
    frame_time: float | None = None,
) -> None:
    if not inputs:
        raise PrepareError("no INPUT given: pass .bvh files, folders, DeepMimic .txt files, a mocap.npz or 'pybullet'")
    if not (np.isfinite(fps) and fps > 0):
        raise PrepareError(f"--fps must be a positive number, got {fps}")
    if scale is not None and not (np.isfinite(scale) and scale > 0):
        raise PrepareError(f"--scale must be a positive number of metres per file unit (0.01 for cm), got {scale}")
    if min_frames < 2:
        raise PrepareError(f"--min-frames must be at least 2 (velocities need two frames), got {min_frames}")
    if loop_cycles < 1:
        raise PrepareError(f"--loop-cycles must be at least 1, got {loop_cycles}")
    lo, hi = FPS_RANGE
    if frame_time is not None and not (np.isfinite(frame_time) and 1.0 / hi <= frame_time <= 1.0 / lo):
        raise PrepareError(
            f"--frame-time must be seconds per frame between {1.0 / hi:g} and {1.0 / lo:g} ({lo:g}-{hi:g} fps), "
            f"got {frame_time}"
        )
    try:
        output_file(out, "--out", (".npz",))
    except OutputPathError as e:
        raise PrepareError(str(e)) from None


def _compile_clips(clips: str | None) -> re.Pattern[str] | None:
    if clips is None:
        return None
    try:
        return re.compile(clips)
    except re.error as e:
        raise PrepareError(f"--clips {clips!r} is not a valid regular expression: {e}") from None


def _expand_inputs(inputs: list[str]) -> list[_Source]:
    """Each INPUT -> the files it stands for, with their clip names."""
    sources: list[_Source] = []
    for item in inputs:
        if item == PYBULLET:
            deepmimic = _other_module("deepmimic", item)
            files = deepmimic.pybullet_motion_files()
            if not files:
                raise PrepareError("'pybullet': the installed pybullet wheel ships no DeepMimic motion files")
            sources += [_Source("deepmimic", Path(f), Path(f).stem) for f in files]
            continue
        path = Path(item)
        if path.is_dir():
            files = sorted(p for p in path.rglob("*") if p.suffix.lower() == ".bvh" and p.is_file())
            if not files:
                raise PrepareError(f"{path}: the folder holds no .bvh files (searched recursively)")
            sources += [_Source("bvh", f, f.relative_to(path).with_suffix("").as_posix()) for f in files]
        elif not path.exists():
            raise PrepareError(f"{path}: no such file or folder")
        elif path.suffix.lower() == ".bvh":
            sources.append(_Source("bvh", path, path.stem))
        elif path.suffix.lower() == ".txt":
            sources.append(_Source("deepmimic", path, path.stem))
        elif path.suffix.lower() == ".npz":
            mvae_npz = _other_module("mvae_npz", item)
            if not mvae_npz.is_mvae_npz(path):
                raise PrepareError(
                    f"{path}: not a Motion VAE frames file; a .npz input needs 'data' (N, 3 + 12 J frames) and "
                    "'end_indices' like the original MVAE mocap.npz"
                )
            sources.append(_Source("mvae", path, path.stem))
        else:
            raise PrepareError(
                f"{path}: unsupported input; give .bvh files, folders of them, DeepMimic .txt files, an original "
                "MVAE mocap.npz or the word 'pybullet'"
            )
    return sources


def _other_module(name: str, item: str):
    """Lazy import of the DeepMimic / MVAE-npz readers, so BVH work never depends on them."""
    try:
        if name == "deepmimic":
            from mocap import deepmimic as module
        else:
            from mocap import mvae_npz as module
    except ImportError as e:
        raise PrepareError(f"{item}: reading it needs mocap.{name}, which cannot be imported ({e})") from None
    return module


def _load(
    source: _Source, fps: float, scale: float | None, loop_cycles: int, frame_time: float | None = None
) -> Iterator[_Clip]:
    """The clips of one file, at ``fps``, as frames plus world positions."""
    if source.kind == "mvae":
        mvae_npz = _other_module("mvae_npz", str(source.path))
        for name, frames, skeleton in mvae_npz.read_mvae_npz(source.path, fps):
            frames = np.asarray(frames, dtype=np.float64)
            world_pos = frames_to_world(frames)[1] if len(frames) else np.zeros((0, skeleton.num_joints, 3))
            yield _Clip(name, frames, world_pos, skeleton, str(source.path))
        return
    if source.kind == "bvh":
        motion = import_bvh(source.path, scale, frame_time).motion
    else:
        motion = _other_module("deepmimic", str(source.path)).read_deepmimic(source.path, loop_cycles=loop_cycles)
    yield _motion_clip(motion, source.name, fps)


def _motion_clip(motion: Motion, name: str, fps: float) -> _Clip:
    motion = resample(motion, fps)
    if motion.num_frames < 2:  # no velocities: an empty clip, which _conform reports as too short
        j = motion.skeleton.num_joints
        return _Clip(name, np.zeros((motion.num_frames, PoseLayout(j).frame_size)), np.zeros((motion.num_frames, j, 3)),
                     motion.skeleton, motion.source)
    frames, world_pos, _ = motion_to_frames(motion)
    return _Clip(name, frames, world_pos, motion.skeleton, motion.source)


def _conform(clip: _Clip, first: _Clip | None, min_frames: int) -> _Clip | str:
    """``clip`` with its joints in the first clip's order, or why it cannot join the dataset."""
    n = clip.frames.shape[0]
    if n < min_frames:
        return (
            f"{clip.source}: clip {clip.name!r} has {n} frames at this fps, fewer than --min-frames {min_frames}; "
            "use --skip-bad to leave it out or lower --min-frames"
        )
    if first is None or clip.skeleton.joint_names == first.skeleton.joint_names:
        return clip
    perm = _same_hierarchy_perm(clip.skeleton, first.skeleton)
    if perm is None:
        return (
            f"{clip.source}: its skeleton differs from the first clip's ({first.source}); all clips must share one "
            f"skeleton (same joints and parents). First: {first.skeleton.joint_names}; "
            f"this one: {clip.skeleton.joint_names}. Prepare them into separate datasets or use --skip-bad"
        )
    # Same joints and parents listed in another order (GAMES-105 files do this): reorder to the first's.
    layout = PoseLayout(first.skeleton.num_joints)
    frames = np.empty_like(clip.frames)
    frames[:, layout.root_delta] = layout.root_deltas(clip.frames)
    frames[:, layout.joint_pos] = layout.positions(clip.frames)[:, perm].reshape(n, -1)
    frames[:, layout.joint_vel] = layout.velocities(clip.frames)[:, perm].reshape(n, -1)
    frames[:, layout.joint_rot6d] = layout.rotations6d(clip.frames)[:, perm].reshape(n, -1)
    return _Clip(clip.name, frames, clip.world_pos[:, perm], first.skeleton, clip.source)


def _same_hierarchy_perm(skeleton: Skeleton, reference: Skeleton) -> np.ndarray | None:
    """Indices into ``skeleton`` listing its joints in ``reference``'s order, if both have the same joints
    with the same parents; else None."""
    index = {name: i for i, name in enumerate(skeleton.joint_names)}
    if sorted(index) != sorted(reference.joint_names) or len(index) != skeleton.num_joints:
        return None
    perm = np.array([index[name] for name in reference.joint_names])

    def parent_name(sk: Skeleton, j: int) -> str | None:
        return None if sk.parents[j] < 0 else sk.joint_names[sk.parents[j]]

    same = all(parent_name(skeleton, perm[k]) == parent_name(reference, k) for k in range(len(perm)))
    return perm if same else None


def _unique(name: str, seen: set[str]) -> str:
    candidate, k = name, 2
    while candidate in seen:
        candidate, k = f"{name}#{k}", k + 1
    seen.add(candidate)
    return candidate


def _build_dataset(
    clips: list[_Clip], fps: float, mirror: bool, graph_seconds: float = 0.0, graph_threshold: float = 0.06, seed: int = 0
) -> MotionDataset:
    skeleton = clips[0].skeleton
    foot_idx = default_foot_indices(skeleton, clips[0].world_pos)
    perm = _mirror_perm(clips[0]) if mirror else None

    names: list[str] = []
    frames: list[np.ndarray] = []
    contacts: list[np.ndarray] = []
    floors: list[np.ndarray] = []

    def add(name: str, clip_frames: np.ndarray, world_pos: np.ndarray) -> None:
        floor = np.percentile(world_pos[:, foot_idx, 1], FLOOR_PERCENTILE, axis=0)  # (F,)
        names.append(name)
        frames.append(clip_frames)
        contacts.append(foot_contacts(world_pos, foot_idx, fps, floor))
        floors.append(floor)

    for clip in clips:
        add(clip.name, clip.frames, clip.world_pos)
        if perm is not None:
            mirrored = mirror_frames(clip.frames, perm, skeleton.mirror_reflections())
            _, mirrored_pos = frames_to_world(mirrored)
            add(f"{clip.name}:mirror", mirrored, mirrored_pos)

    if graph_seconds > 0:
        try:
            walks = graph_walks(list(frames), skeleton, fps, int(graph_seconds * fps), threshold_m=graph_threshold, seed=seed)
        except ValueError as e:
            raise PrepareError(f"--graph-seconds: {e}") from None
        for k, walk in enumerate(walks):
            _, walk_pos = frames_to_world(walk)
            add(f"graph:{k:03d}", walk, walk_pos)

    lengths = np.array([len(f) for f in frames])
    return MotionDataset(
        data=np.concatenate(frames).astype(np.float32),
        end_indices=np.cumsum(lengths) - 1,
        fps=float(fps),
        skeleton=skeleton,
        clip_names=names,
        foot_joints=foot_idx,
        foot_contacts=np.concatenate(contacts),
        floor_heights=np.median(np.stack(floors), axis=0).astype(np.float32),
    )


def clip_styles(names: list[str], pattern: str) -> tuple[np.ndarray, list[str]]:
    """Each clip's style from its name (``:mirror`` copies share their clip's): the first group of ``pattern``
    (``re.search``), e.g. ``_([a-z-]+)_[0-9]+$`` gives Bandai-Namco's ``dataset-1_walk_angry_001`` the style
    ``angry`` -> (C,) indices into the sorted style names, and those names."""
    try:
        regex = re.compile(pattern)
    except re.error as e:
        raise PrepareError(f"--styles {pattern!r} is not a regular expression ({e})") from None
    if regex.groups < 1:
        raise PrepareError(f"--styles {pattern!r} needs a group: the part of a clip name that names its style, e.g. "
                           "'_([a-z-]+)_[0-9]+$'")
    found = []
    for name in names:
        match = regex.search(name.removesuffix(":mirror"))
        if match is None or not match.group(1):
            raise PrepareError(f"--styles {pattern!r} finds no style in the clip name {name!r}; adjust the pattern, "
                               "or leave such clips out with --clips")
        found.append(match.group(1))
    style_names = sorted(set(found))
    return np.array([style_names.index(s) for s in found], dtype=np.int64), style_names


def _mirror_perm(first: _Clip) -> np.ndarray | None:
    try:
        return first.skeleton.mirror_indices()
    except ValueError as e:
        if first.source.lower().endswith(".npz"):
            warnings.warn(f"{first.source}: not mirrored: {e}", stacklevel=3)
            return None
        raise PrepareError(f"--mirror: {e}") from None


def _progress(sources: list[_Source], enabled: bool):
    if not enabled:
        return sources
    from tqdm import tqdm

    return tqdm(sources, desc="prepare", unit="file", file=sys.stderr)


def _report_skipped(skipped: list[str]) -> None:
    if not skipped:
        return
    print(f"skipped {len(skipped)} bad file(s)/clip(s) (--skip-bad):", file=sys.stderr)
    for message in skipped:
        print(f"  - {message}", file=sys.stderr)


def summary_line(dataset: MotionDataset, out: str) -> str:
    s = dataset.summary()
    return (
        f"prepared {s['clips']} clips, {s['frames']} frames, {s['seconds']:.1f} s, {s['joints']} joints, "
        f"{s['fps']:g} fps -> {out}"
    )


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m mocap.prepare",
        description="Turn BVH / DeepMimic / original-MVAE motion files into one Motion VAE dataset (.npz).",
    )
    p.add_argument("inputs", nargs="+", metavar="INPUT",
                   help="a .bvh file, a folder of .bvh files, a DeepMimic .txt, an original MVAE mocap.npz, or 'pybullet'")
    p.add_argument("--out", required=True, help="output dataset file (.npz), written atomically")
    p.add_argument("--fps", type=float, default=30.0, help="frame rate of the dataset (default 30)")
    p.add_argument("--mirror", action="store_true", help="also add each clip mirrored left-right (<name>:mirror)")
    p.add_argument("--clips", metavar="REGEX", help="keep only clips whose name matches (re.search)")
    p.add_argument("--scale", type=float, help="BVH metres per file unit (default: detect cm, m or inches)")
    p.add_argument("--frame-time", type=float, metavar="SECONDS",
                   help="BVH seconds per frame, replacing every BVH file's 'Frame Time' (for files whose header is "
                        "wrong, e.g. 33.3333 meaning milliseconds: pass 0.0333333)")
    p.add_argument("--min-frames", type=int, default=DEFAULT_MIN_FRAMES,
                   help=f"shortest usable clip after resampling (default {DEFAULT_MIN_FRAMES})")
    p.add_argument("--skip-bad", action="store_true", help="leave out bad files and clips, list them at the end")
    p.add_argument("--loop-cycles", type=int, default=1, help="repeat cyclic DeepMimic motions K times (default 1)")
    p.add_argument("--graph-seconds", type=float, default=0.0,
                   help="add this many seconds of motion-graph random walks that branch between clips at matching "
                        "poses (see mocap/motion_graph.py; makes small clip sets steerable). Default 0: none")
    p.add_argument("--graph-threshold", type=float, default=0.06,
                   help="pose mismatch (m) below which the motion graph may jump between frames (default 0.06)")
    p.add_argument("--seed", type=int, default=0, help="seed of the motion-graph walks (default 0)")
    p.add_argument("--styles", default=None,
                   help="label each clip with a style: a regular expression whose first group, found in the clip's "
                        "name, names its style (Bandai-Namco: '_([a-z-]+)_[0-9]+$'); a style-conditioned VAE learns "
                        "them")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    with warnings.catch_warnings():
        warnings.showwarning = _show_warning
        try:
            dataset = prepare(
                args.inputs, args.out, fps=args.fps, mirror=args.mirror, clips=args.clips, scale=args.scale,
                min_frames=args.min_frames, skip_bad=args.skip_bad, loop_cycles=args.loop_cycles,
                progress=not args.no_progress, graph_seconds=args.graph_seconds,
                graph_threshold=args.graph_threshold, seed=args.seed, frame_time=args.frame_time, styles=args.styles,
            )
        except (PrepareError, BVHError) as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            print(f"interrupted: {args.out} was not written", file=sys.stderr)
            return 130
    print(summary_line(dataset, args.out))
    return 0


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    from tqdm import tqdm

    tqdm.write(f"warning: {message}", file=sys.stderr)  # above the progress bar, not through it


if __name__ == "__main__":
    sys.exit(main())
