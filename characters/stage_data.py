"""Build stage 1, data: the BVH inputs -> one training dataset, its figures and gates.

``mocap.prepare`` reads every BVH (mirrored where the skeleton names left and right joints), then the stage
measures what the data gates judge (:func:`characters.gates.data_gates`): seconds of motion, clips, the source frame
rate, the feet found for contacts, and the *branching* of the data (:func:`mocap.branching.branching`: how
differently the motion goes on from nearby poses). Where the data barely branches (clips that only go straight),
``GRAPH_SECONDS_PER_MINUTE`` of motion-graph walks per minute of data are added (bounded by ``MAX_GRAPH_SECONDS``),
the remedy measured on the DeepMimic clips. Small data gets them whatever it measures (below
``GRAPH_BELOW_SECONDS``): the 15 s of DeepMimic walk and turn clips measure 27 deg/s of turn spread (their poses
match across clips), yet a VAE trained on them alone ignored z, since so few frames let the decoder tell the clips
apart by pose. Writes ``<bundle>/build/data.npz``.
"""

from __future__ import annotations

import re
from pathlib import Path

from characters.gates import MIN_TURN_SPREAD_DEG_S, data_gates

GRAPH_SECONDS_PER_MINUTE = 30.0
MIN_GRAPH_SECONDS = 300.0  # what made the DeepMimic character steerable
MAX_GRAPH_SECONDS = 600.0
GRAPH_BELOW_SECONDS = 120.0


def input_files(inputs: list[str]) -> list[Path]:
    """Every motion file the inputs name (folders expanded; the word ``pybullet``: the DeepMimic motions of the
    pybullet wheel, as ``mocap.prepare`` reads them), sorted; a clear error when there is none."""
    from mocap.deepmimic import pybullet_motion_files
    from mocap.prepare import PYBULLET

    files: list[Path] = []
    for item in inputs:
        path = Path(item)
        if item == PYBULLET:
            files += [Path(p) for p in pybullet_motion_files()]
        elif path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.suffix.lower() == ".bvh")
            if not found:
                raise FileNotFoundError(f"{path}: no .bvh file in this folder (or below it)")
            files += found
        elif path.is_file():
            files.append(path)
        else:
            raise FileNotFoundError(f"{path}: no such file or folder")
    return files


def source_fps(files: list[Path]) -> float | None:
    """Frame rate of the first BVH (its ``Frame Time`` line); None without a BVH."""
    for path in files:
        if path.suffix.lower() != ".bvh":
            continue
        with open(path, errors="replace") as f:
            for line in f:
                match = re.match(r"\s*Frame Time:\s*([0-9.eE+-]+)", line)
                if match and float(match.group(1)) > 0:
                    return 1.0 / float(match.group(1))
    return None


MOVING_MPS = 0.3
SPEED_PERCENTILES = {"walk": 50, "run": 95, "dash": 99}  # of the data's moving frames
FIGURES_VERSION = 2  # 2: the run speed at the 95th percentile (was the 90th), the strafing speed


def locomotion_speeds(dataset) -> dict[str, float]:
    """Walk, run and dash ground speeds (m/s) of the data: the 50th, 95th and 99th percentile of the root speed over
    frames faster than ``MOVING_MPS`` (Bandai-Namco: 0.91, 2.81, 3.85: its runs lie between 2 and 3 m/s, and the
    90th percentile, 1.98, was a brisk walk).
    What the app's W, Shift and Shift+Ctrl ask for."""
    import numpy as np

    layout = dataset.layout
    speed = np.linalg.norm(layout.root_deltas(dataset.data)[:, layout.root_dxdz], axis=1) * dataset.fps  # (N,)
    moving = speed[speed > MOVING_MPS]
    if len(moving) == 0:
        return {name: 0.0 for name in SPEED_PERCENTILES}
    return {name: round(float(np.percentile(moving, q)), 2) for name, q in SPEED_PERCENTILES.items()}


STANDING_MPS = 0.1
SIDEWAYS_DEG = 45.0


def motion_repertoire(dataset) -> dict[str, float]:
    """What the data can show a policy: ``standing_share`` (frames slower than ``STANDING_MPS``),
    ``sideways_share`` (moving frames whose travel is more than ``SIDEWAYS_DEG`` off the facing: sidesteps and
    walking back) and ``sideways_speed_mps``, the 90th percentile of their speed (the fastest strafe to ask for).
    Bandai-Namco: both shares well above the 2 % / 5 % the joystick options need."""
    import numpy as np

    layout = dataset.layout
    delta = layout.root_deltas(dataset.data)  # (N, 3) character frame, per frame
    dxdz = delta[:, layout.root_dxdz]  # (N, 2): +x left, +z ahead
    speed = np.linalg.norm(dxdz, axis=1) * dataset.fps  # (N,) m/s
    moving = speed > MOVING_MPS
    off_facing = np.degrees(np.abs(np.arctan2(dxdz[:, 0], dxdz[:, 1])))  # (N,) 0 ahead .. 180 back
    sideways = moving & (off_facing > SIDEWAYS_DEG)
    return {"standing_share": round(float((speed < STANDING_MPS).mean()), 4),
            "sideways_share": round(float(sideways.sum() / max(1, moving.sum())), 4),
            "sideways_speed_mps": round(float(np.percentile(speed[sideways], 90)), 2) if sideways.any() else 0.0}


def speed_range(dataset) -> list[float]:
    """[slowest, fastest] ground speed (m/s) of the data's locomotion: the 5th and 99th percentiles of the root
    speed over frames faster than ``MOVING_MPS``; [0, 0] when nothing moves."""
    import numpy as np

    layout = dataset.layout
    speed = np.linalg.norm(layout.root_deltas(dataset.data)[:, layout.root_dxdz], axis=1) * dataset.fps  # (N,)
    moving = speed[speed > MOVING_MPS]
    if len(moving) == 0:
        return [0.0, 0.0]
    return [round(float(np.percentile(moving, 5)), 2), round(float(np.percentile(moving, 99)), 2)]


def data_path(ctx) -> Path:
    return ctx.work / "data.npz"


def settings(ctx) -> tuple[dict, list[Path]]:
    cfg = ctx.cfg
    from mocap.features import FACING_DEFINITION

    return ({"clips": cfg.clips, "fps": cfg.fps, "mirror": cfg.mirror, "seed": cfg.seed,
             "graph_seconds": cfg.graph_seconds, "styles": cfg.styles, "facing": FACING_DEFINITION},
            input_files(ctx.inputs))


def figures(ctx) -> dict:
    """The data stage's figures as this version defines them. Those of a build recorded by an older version are
    measured again from the stage's data file where they depend on it alone (speeds, repertoire); the stage itself
    stays done, since rewriting its output would retrain the VAE."""
    data = ctx.results.get("data", {})
    if data.get("figures_version") != FIGURES_VERSION and data_path(ctx).is_file():
        from mocap.dataset import MotionDataset

        dataset = MotionDataset.load(data_path(ctx))
        data = {**data, "speeds_mps": locomotion_speeds(dataset), **motion_repertoire(dataset),
                "figures_version": FIGURES_VERSION}
        ctx.results["data"] = data
    return data


def run(ctx):
    from mocap.branching import branching
    from mocap.prepare import prepare
    from mocap.quality import toe_joints

    cfg, progress = ctx.cfg, ctx.progress
    files = input_files(ctx.inputs)
    progress.stage("data", f"reading {len(files)} motion file(s)")
    if cfg.styles and cfg.graph_seconds > 0:
        raise ValueError("--styles with --graph-seconds: motion-graph walks jump between clips of different styles; "
                         "use one or the other")
    styles = cfg.styles or None
    dataset = prepare(ctx.inputs, str(data_path(ctx)), fps=cfg.fps, mirror=cfg.mirror, clips=cfg.clips or None,
                      progress=False, seed=cfg.seed, styles=styles)
    copies = 2 if cfg.mirror else 1
    seconds, clips = dataset.num_frames / dataset.fps / copies, dataset.num_clips // copies
    try:
        feet = [dataset.skeleton.joint_names[i] for i in toe_joints(dataset.skeleton)]
    except ValueError:
        feet = []
    spread = branching(dataset)
    progress.figure(f"{seconds:.0f} s of motion in {clips} clips; nearby poses branch by "
                    f"{spread['turn_spread_deg_s']:.1f} deg/s of turn")
    if dataset.num_styles:
        progress.figure(f"{dataset.num_styles} styles: {', '.join(dataset.style_names)}")
    graph_seconds = max(cfg.graph_seconds, 0.0)
    if cfg.graph_seconds < 0 and (spread["turn_spread_deg_s"] < MIN_TURN_SPREAD_DEG_S or seconds < GRAPH_BELOW_SECONDS):
        graph_seconds = min(MAX_GRAPH_SECONDS, max(MIN_GRAPH_SECONDS, GRAPH_SECONDS_PER_MINUTE * seconds / 60.0))
        if styles:
            progress.figure("styles: no motion-graph walks (they would jump between styles)")
            graph_seconds = 0.0
    if graph_seconds > 0:
        why = ("asked for" if cfg.graph_seconds >= 0 else "little data" if seconds < GRAPH_BELOW_SECONDS
               else "the data barely branches")
        progress.figure(f"{why}: adding {graph_seconds:.0f} s of motion-graph walks")
        dataset = prepare(ctx.inputs, str(data_path(ctx)), fps=cfg.fps, mirror=cfg.mirror, clips=cfg.clips or None,
                          progress=False, graph_seconds=graph_seconds, seed=cfg.seed)
        spread = branching(dataset)
    metrics = {"seconds": seconds, "clips": clips, "frames": dataset.num_frames,
               "speed_range_mps": speed_range(dataset), "speeds_mps": locomotion_speeds(dataset),
               "short_clips": 0, "source_fps": source_fps(files), "fps": dataset.fps, "feet": feet,
               "graph_seconds": graph_seconds, "joints": dataset.skeleton.num_joints,
               "styles": list(dataset.style_names), **motion_repertoire(dataset), **spread,
               "figures_version": FIGURES_VERSION}
    return metrics, data_gates(metrics)
