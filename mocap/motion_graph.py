"""Motion-graph augmentation: random walks that branch between clips at matching poses.

Why: a Motion VAE can only be steered where its data branches. Small sets of short cyclic clips (the
DeepMimic motions in the pybullet wheel: a walk, four turns, a run) never branch: every pose has one
continuation, so the decoder learns to ignore z and no policy can steer it. Walking a motion graph
(Kovar et al. 2002) over those clips yields long sequences in which the same pose is followed sometimes
by a walk, sometimes by a left or a right turn: exactly the ambiguity the latent then has to carry.

A transition (clip a, frame i) -> (clip b, frame j) exists where the two poses match: mean joint distance
in the character frame plus 0.1 s of joint velocity difference below ``threshold_m``. At a jump the
pose difference is blended away over ``blend_frames`` (an offset that decays linearly, as in
inertialization), then every walk is made kinematically consistent again by rebuilding it through the
skeleton (6D orientations -> local rotations -> forward kinematics -> frames), so bone lengths stay exact.
"""

from __future__ import annotations

import numpy as np

from mocap.features import frames_to_motion, motion_to_frames
from mocap.pose_layout import PoseLayout
from mocap.skeleton import Skeleton

VELOCITY_WEIGHT_S = 0.1


def pose_distances(frames_a: np.ndarray, frames_b: np.ndarray) -> np.ndarray:
    """(Ta, D), (Tb, D) -> (Ta, Tb) pose mismatch in metres (positions + 0.1 s of velocity)."""
    layout = PoseLayout.from_frame_size(frames_a.shape[-1])
    pa, pb = layout.positions(frames_a), layout.positions(frames_b)  # (Ta, J, 3), (Tb, J, 3)
    va, vb = layout.velocities(frames_a), layout.velocities(frames_b)
    dp = np.linalg.norm(pa[:, None] - pb[None], axis=-1).mean(-1)  # (Ta, Tb)
    dv = np.linalg.norm(va[:, None] - vb[None], axis=-1).mean(-1)
    return dp + VELOCITY_WEIGHT_S * dv


def find_transitions(clips: list[np.ndarray], threshold_m: float) -> list[list[list[tuple[int, int]]]]:
    """For each clip and frame, the (clip, frame) it may jump to; the next frame of its own clip excluded."""
    table: list[list[list[tuple[int, int]]]] = [[[] for _ in range(len(c))] for c in clips]
    for a, fa in enumerate(clips):
        for b, fb in enumerate(clips):
            # Jump targets need a following frame to continue from.
            d = pose_distances(fa, fb[:-1])
            for i, j in zip(*np.nonzero(d < threshold_m), strict=True):
                if a == b and j in (i, i + 1):
                    continue
                table[a][i].append((b, int(j)))
    return table


def graph_walk(
    clips: list[np.ndarray],
    transitions: list[list[list[tuple[int, int]]]],
    num_frames: int,
    rng: np.random.Generator,
    jump_probability: float = 0.1,
    blend_frames: int = 6,
) -> np.ndarray:
    """One random walk of ``num_frames`` frames (T, D), blended at jumps but not yet re-consistent."""
    layout = PoseLayout.from_frame_size(clips[0].shape[-1])
    c = int(rng.integers(len(clips)))
    i = int(rng.integers(len(clips[c]) - 1))
    out = np.empty((num_frames, clips[0].shape[-1]))
    offset = np.zeros(clips[0].shape[-1])
    blend_left = 0
    for t in range(num_frames):
        options = transitions[c][i]
        at_end = i + 1 >= len(clips[c])
        if options and (at_end or rng.random() < jump_probability):
            b, j = options[int(rng.integers(len(options)))]
            old_next = clips[c][min(i + 1, len(clips[c]) - 1)]
            offset = old_next - clips[b][j + 1]
            offset[layout.root_delta] = 0.0  # deltas are relative: they need no alignment
            blend_left = blend_frames
            c, i = b, j + 1
        elif at_end:
            # A dead end (no matching pose anywhere): restart at a random frame.
            c = int(rng.integers(len(clips)))
            i = int(rng.integers(len(clips[c]) - 1))
            offset[:] = 0.0
            blend_left = 0
        else:
            i += 1
        weight = blend_left / blend_frames if blend_frames else 0.0
        out[t] = clips[c][i] + weight * offset
        blend_left = max(blend_left - 1, 0)
    return out


def graph_walks(
    clips: list[np.ndarray],
    skeleton: Skeleton,
    fps: float,
    total_frames: int,
    *,
    walk_frames: int = 600,
    threshold_m: float = 0.06,
    jump_probability: float = 0.1,
    blend_frames: int = 6,
    seed: int = 0,
) -> list[np.ndarray]:
    """Random motion-graph walks over ``clips`` (each (T, D)) adding up to ``total_frames`` frames.

    Returns kinematically consistent frames (rebuilt through ``skeleton``). Raises ValueError when no clip
    has a transition at ``threshold_m``, naming the threshold to raise.
    """
    transitions = find_transitions(clips, threshold_m)
    count = sum(len(opts) for clip in transitions for opts in clip)
    if count == 0:
        raise ValueError(
            f"motion graph: no two poses match within {threshold_m} m; raise --graph-threshold or add clips"
        )
    rng = np.random.default_rng(seed)
    walks = []
    remaining = total_frames
    while remaining > 1:
        n = min(walk_frames, remaining)
        raw = graph_walk(clips, transitions, n, rng, jump_probability, blend_frames)
        motion = frames_to_motion(raw, skeleton, fps)
        walks.append(motion_to_frames(motion)[0])
        remaining -= n
    return walks
