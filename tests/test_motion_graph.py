"""Motion-graph augmentation: walks branch between clips, stay kinematically exact, and turn plausibly."""

from __future__ import annotations

import numpy as np
import pytest

from mocap.deepmimic import pybullet_motion_files, read_deepmimic
from mocap.features import frames_to_world, mirror_frames, motion_to_frames
from mocap.motion_graph import find_transitions, find_transitions_reference, graph_walks
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
    table = find_transitions(clips, threshold_m=0.06).table()
    targets = {(a, b) for a, per_frame in enumerate(table) for opts in per_frame for b, _ in opts}
    assert len({b for a, b in targets if a != b}) >= len(clips) // 2, "few clips are reachable from others"


def assert_same_transitions(found, reference):
    np.testing.assert_array_equal(found.clip_starts, reference.clip_starts)
    np.testing.assert_array_equal(found.offsets, reference.offsets)
    np.testing.assert_array_equal(found.targets, reference.targets)


@pytest.mark.parametrize("threshold", [0.005, 0.06, 0.3, 5.0])
def test_tree_search_finds_exactly_the_all_pairs_transitions(walker_clips, threshold):
    clips, _ = walker_clips
    reference = find_transitions_reference(clips, threshold)
    for leaf in (1, 4, 7, 1000):  # the tree's shape changes the work, never the answer
        assert_same_transitions(find_transitions(clips, threshold, leaf_frames=leaf), reference)


def test_tree_search_takes_identical_poses_whole(walker_clips):
    """A clip standing still matches itself everywhere: whole node pairs are accepted without measuring."""
    clips, _ = walker_clips
    still = np.repeat(clips[0][:1], 300, axis=0)  # (300, D)
    clips = [still, *clips[:3], still.copy()]
    assert_same_transitions(find_transitions(clips, 0.06), find_transitions_reference(clips, 0.06))


def test_transition_rules(walker_clips):
    clips, _ = walker_clips
    found = find_transitions(clips, 0.3)
    for c, clip in enumerate(clips):
        for i in range(len(clip)):
            for g in found.options(c, i):
                b, j = found.locate(int(g))
                assert j + 1 < len(clips[b]), "a jump target needs a following frame"
                assert not (b == c and j in (i, i + 1)), "no jump to the frame itself or its own next frame"


def test_tree_search_on_real_mocap(shared_mocap):
    """Bandai-Namco clips (1,500 frames, idle and walking poses): the same transitions as the all-pairs loops."""
    from mocap.bvh import import_bvh
    from mocap.kinematics import resample

    files = sorted((shared_mocap / "bandai-namco-1").glob("*.bvh"))[:40:4]
    clips = [motion_to_frames(resample(import_bvh(f).motion, 30.0))[0][:150] for f in files]
    reference = find_transitions_reference(clips, 0.06)
    assert reference.count > 1000
    assert_same_transitions(find_transitions(clips, 0.06), reference)


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
