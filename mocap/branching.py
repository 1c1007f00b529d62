"""How much a dataset *branches*: from poses that look alike, how differently does the motion go on?

A Motion VAE can only be steered where its data branches (:mod:`mocap.motion_graph` explains why): if every pose
has one continuation, the latent has nothing to choose. This measures it on the data itself, before any training.
For up to ``SAMPLES`` frames: the set of matching poses (the frame itself and its motion-graph transition targets,
:func:`mocap.motion_graph.find_transitions`, at most ``MAX_MATCHES``); over the next ``HORIZON_S`` seconds each goes
on at some mean turn rate and speed; the spread (std) of those across the set. Frames with no match (or too
close to their clip's end) spread 0. Reports the means over the sampled frames: ``turn_spread_deg_s``,
``speed_spread_mps``, and ``branching_frames`` (the share of frames with at least one match).
"""

from __future__ import annotations

import numpy as np

from mocap.dataset import MotionDataset
from mocap.motion_graph import find_transitions

HORIZON_S = 0.5
SAMPLES = 4000
MAX_MATCHES = 32
THRESHOLD_M = 0.06  # the motion graph's default pose-match threshold


def future_motion(dataset: MotionDataset, horizon: int) -> tuple[np.ndarray, np.ndarray]:
    """Per frame, the mean turn rate (deg/s) and ground speed (m/s) over its next ``horizon`` frames (NaN
    where the clip ends sooner) -> two (N,) arrays."""
    layout = dataset.layout
    delta = layout.root_deltas(dataset.data).astype(np.float64)  # (N, 3)
    turn = np.full(dataset.num_frames, np.nan)
    speed = np.full(dataset.num_frames, np.nan)
    for start, end in zip(dataset.start_indices, dataset.end_indices, strict=True):
        dyaw = delta[start:end + 1, layout.root_dyaw]
        step = np.linalg.norm(delta[start:end + 1, layout.root_dxdz], axis=1)
        n = len(dyaw) - horizon
        if n <= 0:
            continue
        # Frame t's future is the deltas of frames t+1 .. t+horizon.
        yaw_sum = np.convolve(dyaw[1:], np.ones(horizon), mode="valid")[:n]
        step_sum = np.convolve(step[1:], np.ones(horizon), mode="valid")[:n]
        turn[start:start + n] = np.degrees(yaw_sum) * dataset.fps / horizon
        speed[start:start + n] = step_sum * dataset.fps / horizon
    return turn, speed


def branching(dataset: MotionDataset, threshold_m: float = THRESHOLD_M, seed: int = 0) -> dict:
    """The figures of the module docstring."""
    horizon = max(1, round(HORIZON_S * dataset.fps))
    turn, speed = future_motion(dataset, horizon)
    clips = [dataset.clip(c) for c in range(dataset.num_clips)]
    transitions = find_transitions(clips, threshold_m)
    rng = np.random.default_rng(seed)
    frames = np.flatnonzero(~np.isnan(turn))
    if len(frames) == 0:
        return {"turn_spread_deg_s": 0.0, "speed_spread_mps": 0.0, "branching_frames": 0.0}
    if len(frames) > SAMPLES:
        frames = np.sort(rng.choice(frames, SAMPLES, replace=False))
    turn_spread, speed_spread, branched = [], [], 0
    for g in frames:
        targets = transitions.targets[transitions.offsets[g]:transitions.offsets[g + 1]]
        if len(targets) > MAX_MATCHES:
            targets = rng.choice(targets, MAX_MATCHES, replace=False)
        group = np.concatenate([[g], targets])
        group = group[~np.isnan(turn[group])]
        branched += len(group) > 1
        turn_spread.append(float(turn[group].std()) if len(group) > 1 else 0.0)
        speed_spread.append(float(speed[group].std()) if len(group) > 1 else 0.0)
    return {"turn_spread_deg_s": float(np.mean(turn_spread)), "speed_spread_mps": float(np.mean(speed_spread)),
            "branching_frames": branched / len(frames)}

