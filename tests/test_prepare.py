"""``python -m mocap.prepare`` end to end: generated BVH folders, real Bandai-Namco / GAMES-105 files, pybullet."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mocap.bvh import write_bvh
from mocap.dataset import MotionDataset
from mocap.kinematics import Motion
from mocap.prepare import prepare
from mocap.rotations import axis_angle_matrix, yaw_matrix
from mocap.skeleton import Skeleton

REPO = Path(__file__).resolve().parents[1]
NPZ_KEYS = {
    "data", "end_indices", "fps", "clip_names", "joint_names", "parents", "offsets", "end_offsets",
    "foot_joints", "foot_contacts", "floor_heights", "format_version",
}
NAMES = ["Hips", "LeftUpLeg", "LeftLeg", "LeftFoot", "RightUpLeg", "RightLeg", "RightFoot", "Spine", "Head"]
PARENTS = [-1, 0, 1, 2, 0, 4, 5, 0, 7]
OFFSETS = np.array(
    [[0, 0, 0], [0.1, 0, 0], [0, -0.45, 0], [0, -0.45, 0], [-0.1, 0, 0], [0, -0.45, 0], [0, -0.45, 0],
     [0, 0.1, 0], [0, 0.5, 0]]
)


def walk(name: str, seconds: float, fps: float, turn_rate: float) -> Motion:
    """A biped walking at 1 m/s, turning at ``turn_rate`` rad/s (positive: left), legs swinging."""
    t = np.arange(int(round(seconds * fps)) + 1) / fps
    yaw = turn_rate * t  # (T,)
    heading = np.stack([np.sin(yaw), np.zeros_like(yaw), np.cos(yaw)], axis=-1)  # (T, 3) facing direction
    root = np.cumsum(heading, axis=0) / fps + np.array([0.0, 0.92, 0.0])
    swing = 0.4 * np.sin(2 * np.pi * t)
    local_rot = np.broadcast_to(np.eye(3), (len(t), len(NAMES), 3, 3)).copy()
    local_rot[:, 0] = yaw_matrix(yaw)
    local_rot[:, 1] = axis_angle_matrix(0, swing)
    local_rot[:, 4] = axis_angle_matrix(0, -swing)
    local_pos = np.broadcast_to(OFFSETS, (len(t), len(NAMES), 3)).copy()
    local_pos[:, 0] = root
    skeleton = Skeleton(NAMES, PARENTS, OFFSETS, np.zeros_like(OFFSETS))
    return Motion(name, skeleton, local_rot, local_pos, fps)


@pytest.fixture
def bvh_folder(tmp_path) -> Path:
    folder = tmp_path / "walks"
    (folder / "sub").mkdir(parents=True)
    write_bvh(folder / "walk_a.bvh", walk("a", 2.0, 60.0, 0.5))
    write_bvh(folder / "walk_b.bvh", walk("b", 1.0, 30.0, -0.8))
    write_bvh(folder / "sub" / "walk_c.bvh", walk("c", 1.5, 120.0, 0.0))
    return folder


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "mocap.prepare", *args, "--no-progress"],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )


def test_cli_on_a_generated_folder(bvh_folder, tmp_path):
    out = tmp_path / "data.npz"
    proc = run_cli(str(bvh_folder), "--out", str(out), "--mirror", "--fps", "30")
    assert proc.returncode == 0, proc.stderr
    # 2 s + 1 s + 1.5 s at 30 fps, plus the last frame of each clip; each clip twice.
    frames = 2 * (61 + 31 + 46)
    assert proc.stdout.strip() == f"prepared 6 clips, {frames} frames, {frames / 30:.1f} s, 9 joints, 30 fps -> {out}"
    with np.load(out, allow_pickle=False) as z:
        assert set(z.files) == NPZ_KEYS
        assert z["data"].shape == (frames, 3 + 12 * 9) and z["data"].dtype == np.float32
        assert z["clip_names"].tolist() == [
            "sub/walk_c", "sub/walk_c:mirror", "walk_a", "walk_a:mirror", "walk_b", "walk_b:mirror"
        ]
        assert z["end_indices"].tolist() == (np.cumsum([46, 46, 61, 61, 31, 31]) - 1).tolist()
        assert z["joint_names"].tolist() == NAMES
        assert [NAMES[i] for i in z["foot_joints"]] == ["LeftFoot", "RightFoot"]
        assert z["foot_contacts"].shape == (frames, 2)
    data = MotionDataset.load(out)
    assert data.fps == 30.0 and data.num_clips == 6


def test_mirrored_turn_goes_the_other_way_and_swaps_contacts(bvh_folder, tmp_path):
    data = prepare([str(bvh_folder)], str(tmp_path / "d.npz"), mirror=True, clips="walk_a", progress=False)
    assert data.clip_names == ["walk_a", "walk_a:mirror"]
    dyaw = [data.layout.root_deltas(data.clip(c))[1:, 2].sum() for c in range(2)]
    assert dyaw[0] == pytest.approx(1.0, abs=0.02)  # 0.5 rad/s for 2 s, to the left
    assert dyaw[1] == pytest.approx(-dyaw[0], abs=1e-5)
    n = len(data.clip(0))
    original, mirrored = data.foot_contacts[:n], data.foot_contacts[n:]
    assert original.any() and np.mean(original == mirrored[:, ::-1]) > 0.98


def test_clips_filter_and_fps(bvh_folder, tmp_path):
    data = prepare([str(bvh_folder)], str(tmp_path / "d.npz"), fps=20.0, clips=r"^sub/", progress=False)
    assert data.clip_names == ["sub/walk_c"] and data.fps == 20.0 and data.num_frames == 31


def test_cli_on_bandai_namco(shared_mocap, tmp_path):
    out = tmp_path / "bandai.npz"
    proc = run_cli(str(shared_mocap / "bandai-namco-1"), "--out", str(out), "--mirror", "--clips", r"walk_normal_00[12]")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("prepared 4 clips, ") and "21 joints, 30 fps" in proc.stdout
    data = MotionDataset.load(out)
    assert data.clip_names == [
        "dataset-1_walk_normal_001", "dataset-1_walk_normal_001:mirror",
        "dataset-1_walk_normal_002", "dataset-1_walk_normal_002:mirror",
    ]
    assert data.skeleton.joint_names[0] == "Hips" and "joint_Root" not in data.skeleton.joint_names
    assert [data.skeleton.joint_names[i] for i in data.foot_joints] == ["Foot_L", "Toes_L", "Foot_R", "Toes_R"]
    # A walk keeps each foot on the ground for a good part of the time.
    assert 0.2 < data.foot_contacts.mean() < 0.8
    # Floors: ankles about 10 cm up, toes lower; the mirrored clips give the same floors.
    ankle_l, toe_l, ankle_r, toe_r = data.floor_heights
    assert 0.0 < toe_l < ankle_l < 0.15 and 0.0 < toe_r < ankle_r < 0.15


def test_same_joints_in_another_order_are_reordered(shared_mocap, tmp_path):
    """GAMES-105 files list the same skeleton in different orders; prepare puts them in the first's order."""
    walk60 = shared_mocap / "games105" / "walk60.bvh"
    alone = prepare([str(walk60)], str(tmp_path / "a.npz"), progress=False)
    both = prepare([str(shared_mocap / "games105" / "idle.bvh"), str(walk60)], str(tmp_path / "b.npz"), progress=False)
    assert alone.skeleton.joint_names != both.skeleton.joint_names
    assert sorted(alone.skeleton.joint_names) == sorted(both.skeleton.joint_names)
    perm = [alone.skeleton.joint_names.index(n) for n in both.skeleton.joint_names]
    a, b = alone.clip(0), both.clip(1)
    np.testing.assert_array_equal(b[:, :3], a[:, :3])
    np.testing.assert_allclose(both.layout.positions(b), alone.layout.positions(a)[:, perm])
    np.testing.assert_allclose(both.layout.rotations6d(b), alone.layout.rotations6d(a)[:, perm])


def test_pybullet_motions(tmp_path):
    data = prepare(["pybullet"], str(tmp_path / "pb.npz"), clips="walk", mirror=True, progress=False, skip_bad=True)
    assert data.num_clips >= 2 and all("walk" in n for n in data.clip_names)
    assert data.fps == 30.0 and data.num_frames > 30


def test_mvae_npz_input_is_mirrored(bvh_folder, tmp_path):
    source = prepare([str(bvh_folder)], str(tmp_path / "src.npz"), progress=False)
    original = tmp_path / "mocap.npz"  # the original file's keys only: no skeleton, no names
    np.savez(original, data=source.data, end_indices=source.end_indices)
    data = prepare([str(original)], str(tmp_path / "d.npz"), mirror=True, progress=False)
    assert data.clip_names == ["mocap:0", "mocap:0:mirror", "mocap:1", "mocap:1:mirror", "mocap:2", "mocap:2:mirror"]
    assert data.num_frames == 2 * source.num_frames
    turns = [data.layout.root_deltas(data.clip(c))[1:, data.layout.root_dyaw].sum() for c in (2, 3)]
    assert turns[0] == pytest.approx(1.0, abs=0.02) and turns[1] == pytest.approx(-turns[0], abs=1e-4)
