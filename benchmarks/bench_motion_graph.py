"""Benchmark of the motion-graph transition search (``mocap.prepare --graph-seconds``) on the Bandai-Namco set.

Measures, in one run, on the clips ``mocap.prepare --mirror`` builds (every BVH file, 30 fps, plus mirrors):

- ours: :func:`mocap.motion_graph.find_transitions` (ball tree, exact) on all frames, min/median/max seconds
  over repeats, and frames/s;
- the old search, :func:`mocap.motion_graph.find_transitions_reference` (every clip against every clip, in
  Python loops over clip pairs), on a subset of the clips it can finish (``--old-frames``), with ours on the
  same subset, the two taking turns ``--repeats`` times (a busy spell hits both alike): frames/s for both (like
  for like) and the speedup at the best and the median turn; both must return the same transitions.

The search is quadratic in the worst case, so frames/s on the subset and on the whole set are not comparable
with each other, and no ratio divides one by the other; the ratio on the subset is the like-for-like one. The old
search's time on the whole set is also given as an estimate (its subset time scaled by frames^2: it compares every
pair), labelled as such. Every figure is min / median / max; the JSON line also carries the load average.
``--threads`` sets the search's torch threads (default: ``mocap.motion_graph.SEARCH_THREADS``, 1; the old
search is numpy, one thread). On 2 cores a second busy process slows multi-threaded torch 10-50x.

Run from the repository root: ``python -m benchmarks.bench_motion_graph [--data DIR] [--repeats N]
[--old-frames N] [--threads T]``. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings
from pathlib import Path

import numpy as np

from benchmarks.common import context, emit, interleaved, ratio, spread
from mocap.bvh import import_bvh
from mocap.features import mirror_frames, motion_to_frames
from mocap.kinematics import resample
from mocap.motion_graph import SEARCH_THREADS, find_transitions, find_transitions_reference

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "mocap" / "bandai-namco-1"


def load_clips(folder: Path, fps: float) -> list[np.ndarray]:
    """Frames (T, D) of every BVH in ``folder`` at ``fps``, then their mirrors (as ``mocap.prepare --mirror``)."""
    files = sorted(folder.rglob("*.bvh"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        motions = [resample(import_bvh(f).motion, fps) for f in files]
    skeleton = motions[0].skeleton
    clips = [motion_to_frames(m)[0] for m in motions]
    perm, reflections = skeleton.mirror_indices(), skeleton.mirror_reflections()
    return clips + [mirror_frames(c, perm, reflections) for c in clips]


def subset(clips: list[np.ndarray], frames: int) -> list[np.ndarray]:
    """Clips spread over the set (every k-th, then the ones after those: walks, idles, dances...) until at least
    ``frames`` frames."""
    step = max(1, int(sum(len(c) for c in clips) / frames))
    out, total = [], 0
    for k in [i for r in range(step) for i in range(r, len(clips), step)]:
        if total >= frames:
            break
        out.append(clips[k])
        total += len(clips[k])
    return out


def timed(fn, repeats: int) -> tuple[list[float], object]:
    seconds, result = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        result = fn()
        seconds.append(time.perf_counter() - t0)
    return seconds, result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="folder of BVH files (Bandai-Namco set)")
    parser.add_argument("--fps", type=float, default=30.0)
    parser.add_argument("--threshold", type=float, default=0.06, help="pose mismatch (m), as --graph-threshold")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--old-frames", type=int, default=3000, help="frames in the subset the old search runs on")
    parser.add_argument("--threads", type=int, default=SEARCH_THREADS,
                        help=f"torch threads of the search (default {SEARCH_THREADS}, as mocap.prepare runs it)")
    args = parser.parse_args(argv)
    if not any(args.data.rglob("*.bvh")):
        emit({"benchmark": "motion_graph", "error": f"no .bvh files in {args.data}"})
        raise SystemExit(2)

    clips = load_clips(args.data, args.fps)
    frames = sum(len(c) for c in clips)
    full_s, full = timed(lambda: find_transitions(clips, args.threshold, threads=args.threads), args.repeats)

    small = subset(clips, args.old_frames)
    small_frames = sum(len(c) for c in small)
    ours = find_transitions(small, args.threshold, threads=args.threads)
    old = find_transitions_reference(small, args.threshold)
    same = all(np.array_equal(getattr(ours, k), getattr(old, k)) for k in ("clip_starts", "offsets", "targets"))
    turns = interleaved({"ours": lambda: find_transitions(small, args.threshold, threads=args.threads),
                         "old": lambda: find_transitions_reference(small, args.threshold)}, args.repeats, calls=1)

    ours_fps = [small_frames / s for s in turns["ours"]]
    old_fps = [small_frames / s for s in turns["old"]]
    emit({
        "benchmark": "motion_graph",
        "data": str(args.data),
        "threshold_m": args.threshold,
        "clips": len(clips),
        "frames": frames,
        "transitions": full.count,
        "ours_s": spread(full_s, 3),
        "ours_frames_per_s": spread([frames / s for s in full_s], 0),
        "subset_clips": len(small),
        "subset_frames": small_frames,
        "subset_transitions": ours.count,
        "subset_same_transitions": bool(same),
        "subset_ours_frames_per_s": spread(ours_fps, 0),
        "subset_old_frames_per_s": spread(old_fps, 0),
        "subset_speedup": ratio(ours_fps, old_fps, 1),
        # The old search compares every pair: its time grows as frames^2 (an estimate, not a measurement).
        "old_full_s_estimated_from_subset": round(statistics.median(turns["old"]) * (frames / small_frames) ** 2),
        **context(threads=args.threads),
    })


if __name__ == "__main__":
    main()
