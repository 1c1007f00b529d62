"""Motion-graph augmentation: walks branch between clips, stay kinematically exact, and turn plausibly."""

from __future__ import annotations

import numpy as np
import pytest

from mocap.deepmimic import pybullet_motion_files, read_deepmimic
from mocap.features import frames_to_world, mirror_frames, motion_to_frames
from mocap.motion_graph import find_transitions, graph_walks
from mocap.pose_layout import PoseLayout
from mocap.prepare import PrepareError, prepare


@pytest.fixture(scope="module")
def walker_clips():
    files = [f for f in pybullet_motion_files() if f.parent.name == "walker"]
    motions = [read_deepmimic(f) for f in files]
    skeleton = motions[0].skeleton
    clips = [motion_to_frames(m)[0] for m in motions]
    perm, reflections = skeleton.mirror_indices(), skeleton.mirror_reflections()
    clips += [mirror_frames(c, perm, reflections) for c in clips]
    return clips, skeleton


def test_transitions_connect_different_clips(walker_clips):
    clips, _ = walker_clips
    table = find_transitions(clips, threshold_m=0.06)
    targets = {(a, b) for a, per_frame in enumerate(table) for opts in per_frame for b, _ in opts}
    assert len({b for a, b in targets if a != b}) >= len(clips) // 2, "few clips are reachable from others"


def test_walks_keep_bone_lengths_and_branch(walker_clips):
    clips, skeleton = walker_clips
    walks = graph_walks(clips, skeleton, 30.0, total_frames=900, walk_frames=300, seed=1)
    assert sum(len(w) for w in walks) == 900
    layout = PoseLayout(skeleton.num_joints)
    _, world = frames_to_world(np.concatenate(walks))
    bones = np.linalg.norm(world[:, 1:] - world[:, skeleton.parents[1:]], axis=-1)  # (T, J-1)
    np.testing.assert_allclose(bones, np.broadcast_to(skeleton.bone_lengths()[1:], bones.shape), atol=1e-6)
    # Turning stays within what the clips do (no facing flips at the jumps).
    dyaw = np.degrees(np.abs(layout.root_deltas(np.concatenate(walks))[:, layout.root_dyaw]))
    clip_dyaw = np.degrees(np.abs(np.concatenate(clips)[:, layout.root_dyaw]))
    assert dyaw.max() < 2.0 * clip_dyaw.max()
    # Both turn directions occur over one-second windows: the walks branch left and right.
    yaw = np.cumsum(layout.root_deltas(walks[0])[:, layout.root_dyaw])
    per_second = np.degrees(yaw[30:] - yaw[:-30])
    assert per_second.min() < -10.0 and per_second.max() > 10.0


def test_walks_are_reproducible_from_the_seed(walker_clips):
    clips, skeleton = walker_clips
    a = graph_walks(clips, skeleton, 30.0, total_frames=200, seed=3)
    b = graph_walks(clips, skeleton, 30.0, total_frames=200, seed=3)
    np.testing.assert_array_equal(np.concatenate(a), np.concatenate(b))


def test_prepare_adds_graph_clips(tmp_path):
    out = tmp_path / "graph.npz"
    ds = prepare(["pybullet"], str(out), clips="walker|turn", mirror=True, graph_seconds=20, progress=False)
    names = [n for n in ds.clip_names if n.startswith("graph:")]
    assert names and sum(len(ds.clip(ds.clip_names.index(n))) for n in names) == 600
    with pytest.raises(PrepareError, match="graph-threshold"):
        prepare(["pybullet"], str(tmp_path / "none.npz"), clips="turn_left0", graph_seconds=5,
                graph_threshold=1e-9, progress=False)
    assert not (tmp_path / "none.npz").exists()
