"""Real skeletons from ../shared/mocap: import, resample to 30 fps, frames, integrate back to the world.

Integrating the root deltas from the first frame's ground position and facing must reproduce the resampled
source motion to under a millimetre over the whole clip, for every skeleton, and mirroring must be exact.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from mocap import root_motion
from mocap.bvh import import_bvh
from mocap.features import frames_to_motion, frames_to_world, mirror_frames, motion_to_frames
from mocap.kinematics import resample
from mocap.pose_layout import PoseLayout

# (file, joints after dropping placement roots, detected unit, source fps)
# Real rigs are not perfectly left/right symmetric: mirrored orientations may miss by this much (mean).
MIRROR_ASYMMETRY_M = 0.02

CLIPS = [
    ("bandai-namco-1/dataset-1_walk_normal_001.bvh", 21, "cm", 30.0),
    ("bandai-namco-1/dataset-1_walk-right_normal_001.bvh", 21, "cm", 30.0),
    # CMU files are in ASF units (1/0.45 inch) that match no common unit: the fallback scales the
    # character to 1.7 m and warns (pass --scale 0.05644 for the exact size).
    ("cmu/02_01.bvh", 31, "fitted", 120.0),
    ("sfu/0005_Walking001.bvh", 25, "inch", 120.0),
    ("games105/walk60.bvh", 20, "m", 60.0),
    ("games105/walk_and_turn_left.bvh", 20, "m", 100.0),
]


def load_30fps(path):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = import_bvh(path)
    return result, resample(result.motion, 30.0), [str(w.message) for w in caught]


@pytest.mark.parametrize(("rel", "joints", "unit", "fps"), CLIPS, ids=[c[0].split("/")[-1] for c in CLIPS])
def test_frames_integrate_back_to_the_source_motion(shared_mocap, rel, joints, unit, fps):
    result, motion, caught = load_30fps(shared_mocap / rel)
    assert result.motion.fps == fps
    assert motion.skeleton.num_joints == joints
    assert result.unit == unit
    if unit == "fitted":
        assert result.height_m == pytest.approx(1.7) and any("--scale" in m for m in caught)
    else:
        assert not caught
    assert 1.0 < result.height_m < 2.0  # a human, in metres

    frames, world_pos, yaw = motion_to_frames(motion)
    for dtype in (np.float64, np.float32):  # float32: as stored in the dataset
        world_rot, back = frames_to_world(frames.astype(dtype).astype(np.float64), world_pos[0, 0, [0, 2]], yaw[0])
        err = np.abs(back - world_pos).max()
        assert err < 1e-3, f"{rel} ({dtype.__name__}): frames drift {err * 1000:.3f} mm from the source"
    # The same root integration in torch float32 (what the environments and the VAE metrics run).
    layout = PoseLayout(motion.skeleton.num_joints)
    frames_t = torch.from_numpy(frames).float()
    xz, facing = root_motion.integrate_root(layout.root_deltas(frames_t), torch.from_numpy(world_pos[0, 0, [0, 2]]),
                                            torch.tensor(yaw[0]))
    back_t = root_motion.char_to_world(layout.positions(frames_t), xz, facing).double().numpy()
    err = np.abs(back_t - world_pos).max()
    assert err < 1e-3, f"{rel} (torch float32): frames drift {err * 1000:.3f} mm from the source"


def test_bandai_namco_drops_the_static_root(shared_mocap):
    result, _, _ = load_30fps(shared_mocap / CLIPS[0][0])
    assert result.dropped_roots == ["joint_Root"]
    assert result.motion.skeleton.joint_names[0] == "Hips"


@pytest.mark.parametrize("rel", [c[0] for c in CLIPS], ids=[c[0].split("/")[-1] for c in CLIPS])
def test_mirroring_is_exact(shared_mocap, rel):
    _, motion, _ = load_30fps(shared_mocap / rel)
    perm = motion.skeleton.mirror_indices()
    frames, world_pos, yaw = motion_to_frames(motion)
    axis = motion.skeleton.mirror_reflections()
    mirrored = mirror_frames(frames, perm, axis)
    np.testing.assert_allclose(mirror_frames(mirrored, perm, axis), frames, atol=1e-9)
    # The mirrored orientations drive the skeleton to the mirrored positions (up to the rig's own
    # left/right asymmetry), so mirrored clips export to BVH correctly.
    rebuilt, _, _ = motion_to_frames(frames_to_motion(mirrored, motion.skeleton, motion.fps))
    layout = PoseLayout(motion.skeleton.num_joints)
    drift = np.linalg.norm(layout.positions(rebuilt) - layout.positions(mirrored), axis=-1).mean()
    assert drift < MIRROR_ASYMMETRY_M, f"{rel}: mirrored orientations miss the mirrored positions by {drift * 100:.2f} cm"
    # Integrated from the same start, the mirrored clip is the source reflected in the x = 0 plane,
    # with left and right joints swapped.
    _, original = frames_to_world(frames)
    _, reflected = frames_to_world(mirrored)
    np.testing.assert_allclose(reflected[:, perm] * np.array([-1.0, 1.0, 1.0]), original, atol=1e-6)


def test_mirrored_right_turn_turns_left(shared_mocap):
    _, motion, _ = load_30fps(shared_mocap / "games105/walk_and_ture_right.bvh")  # sic: the dataset's file name
    frames, _, _ = motion_to_frames(motion)
    mirrored = mirror_frames(frames, motion.skeleton.mirror_indices(), motion.skeleton.mirror_reflections())
    layout = PoseLayout(motion.skeleton.num_joints)
    turn = np.degrees(layout.root_deltas(frames)[1:, layout.root_dyaw].sum())
    mirrored_turn = np.degrees(layout.root_deltas(mirrored)[1:, layout.root_dyaw].sum())
    assert turn < -45.0  # it turns right by 95 deg (its travel direction: by 89 deg)
    assert mirrored_turn == pytest.approx(-turn)
