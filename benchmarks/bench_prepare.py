"""Benchmark of ``mocap.prepare`` on the whole Bandai-Namco set (../shared/mocap/bandai-namco-1).

Measures, in one run:

- seconds to prepare every file with ``--mirror`` (no progress bar), min / median / max over ``--repeats``;
- BVH import throughput on every file (source frames/s) with :func:`mocap.bvh.import_bvh`, and import + full FK;
- a naive importer against ours **on the same files** (the first ``--naive-files`` of the set): the naive one parses
  line by line and runs FK frame by frame and joint by joint in Python; ours imports and runs FK on the same files.
  The two take turns ``--repeats`` times (a busy spell on a shared machine hits both alike), their positions are
  checked against each other, and the ratio is ours / naive frames/s at the best and the median turn. It is a
  naive importer written for this comparison (what a first implementation does), not another project's code,
  and the ratio is labelled as such. Our full-set figures are not divided by the naive subset's: different files
  run at different speeds (frame counts, channels), so only the same-files ratio is one.

Run from the repository root: ``python -m benchmarks.bench_prepare [--data DIR] [--repeats N] [--naive-files N]``.
Prints one JSON line (min / median / max, the thread count and the load average).
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.common import context, emit, interleaved, ratio, spread
from mocap.bvh import import_bvh
from mocap.kinematics import motion_world
from mocap.prepare import prepare

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "mocap" / "bandai-namco-1"


def _axis_matrix(axis: str, degrees: float) -> list[list[float]]:
    c, s = math.cos(math.radians(degrees)), math.sin(math.radians(degrees))
    if axis == "X":
        return [[1, 0, 0], [0, c, -s], [0, s, c]]
    if axis == "Y":
        return [[c, 0, s], [0, 1, 0], [-s, 0, c]]
    return [[c, -s, 0], [s, c, 0], [0, 0, 1]]


def _matmul(a: list[list[float]], b: list[list[float]]) -> list[list[float]]:
    return [[sum(a[i][k] * b[k][j] for k in range(3)) for j in range(3)] for i in range(3)]


def _matvec(a: list[list[float]], v: list[float]) -> list[float]:
    return [sum(a[i][k] * v[k] for k in range(3)) for i in range(3)]


def naive_import(path: Path) -> np.ndarray:
    """World positions (T, J, 3) in file units: line-by-line parsing, per-frame per-joint Python FK."""
    names, parents, offsets, channels = [], [], [], []
    stack: list[int] = []
    lines = path.read_text().splitlines()
    i = 0
    in_end_site = False
    while lines[i].strip() != "MOTION":
        words = lines[i].split()
        if words and words[0] in ("ROOT", "JOINT"):
            names.append(words[1])
            parents.append(stack[-1] if stack else -1)
        elif words and words[0] == "End":
            in_end_site = True
        elif words and words[0] == "{" and not in_end_site:
            stack.append(len(names) - 1)
        elif words and words[0] == "}":
            if in_end_site:
                in_end_site = False
            else:
                stack.pop()
        elif words and words[0] == "OFFSET" and not in_end_site:
            offsets.append([float(w) for w in words[1:4]])
        elif words and words[0] == "CHANNELS":
            channels.append(words[2:])
        i += 1
    frames = [[float(w) for w in line.split()] for line in lines[i + 3 :] if line.strip()]
    out = np.empty((len(frames), len(names), 3))
    for t, values in enumerate(frames):
        col = 0
        world_rot: list[list[list[float]]] = []
        world_pos: list[list[float]] = []
        for j in range(len(names)):
            pos = list(offsets[j])
            rot = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]
            for ch in channels[j]:
                if ch.endswith("position"):
                    pos["XYZ".index(ch[0])] = values[col]
                else:
                    rot = _matmul(rot, _axis_matrix(ch[0], values[col]))
                col += 1
            p = parents[j]
            if p < 0:
                world_rot.append(rot)
                world_pos.append(pos)
            else:
                offset = _matvec(world_rot[p], pos)
                world_pos.append([world_pos[p][k] + offset[k] for k in range(3)])
                world_rot.append(_matmul(world_rot[p], rot))
        out[t] = world_pos
    return out


def ours_import(path: Path):
    """Our import and full FK of one file -> (import result, world positions (T, J, 3) in metres)."""
    imported = import_bvh(path)
    return imported, motion_world(imported.motion)[1]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="folder of BVH files (Bandai-Namco set)")
    parser.add_argument("--repeats", type=int, default=3, help="repeats of every measurement (turns of the pair)")
    parser.add_argument("--naive-files", type=int, default=3, help="files both importers run on")
    args = parser.parse_args(argv)
    files = sorted(args.data.glob("*.bvh"))
    if not files:
        emit({"benchmark": "prepare", "error": f"no .bvh files in {args.data}"})
        raise SystemExit(2)

    prepare_s, import_s, import_fk_s = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            data = prepare([str(args.data)], str(Path(tmp) / "bandai.npz"), mirror=True, progress=False)
            prepare_s.append(time.perf_counter() - t0)
    source_frames = 0
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        motions = [import_bvh(f).motion for f in files]
        t1 = time.perf_counter()
        for m in motions:
            motion_world(m)
        t2 = time.perf_counter()
        import_s.append(t1 - t0)
        import_fk_s.append(t2 - t0)
        source_frames = sum(m.num_frames for m in motions)

    subset = files[: args.naive_files]
    naive = [naive_import(f) for f in subset]
    ours = [ours_import(f) for f in subset]
    # The naive importer keeps placement roots (the first joints of the file); ours drops them.
    max_diff = max(
        float(np.abs(n[:, len(r.dropped_roots):] * r.scale - o).max())
        for n, (r, o) in zip(naive, ours, strict=True)
    )
    subset_frames = sum(len(n) for n in naive)
    turns = interleaved({"naive": lambda: [naive_import(f) for f in subset],
                         "ours": lambda: [ours_import(f) for f in subset]}, args.repeats, calls=1)
    fps = {k: [subset_frames / s for s in v] for k, v in turns.items()}

    emit({
        "benchmark": "prepare",
        "data": str(args.data),
        "files": len(files),
        "source_frames": source_frames,
        "clips_out": data.num_clips,
        "frames_out": data.num_frames,
        "prepare_mirror_s": spread(prepare_s),
        "import_frames_per_s": spread([source_frames / s for s in import_s], 0),
        "import_fk_frames_per_s": spread([source_frames / s for s in import_fk_s], 0),
        "same_files": [f.name for f in subset],
        "same_files_frames": subset_frames,
        "same_files_naive_importer_frames_per_s": spread(fps["naive"], 0),
        "same_files_ours_frames_per_s": spread(fps["ours"], 0),
        "speedup_vs_naive_importer_same_files": ratio(fps["ours"], fps["naive"], 1),
        "naive_vs_ours_max_diff_m": max_diff,
        **context(threads=1),
    })


if __name__ == "__main__":
    main()
