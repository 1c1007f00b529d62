"""Original-MVAE npz import: fake files built from real DeepMimic clips, read back without their skeleton."""

from __future__ import annotations

import numpy as np
import pytest

from mocap.deepmimic import pybullet_motion_files, read_deepmimic
from mocap.features import motion_to_frames
from mocap.mvae_npz import FOOT_M, is_mvae_npz, read_mvae_npz
from mocap.pose_layout import PoseLayout
from mocap.rotations import rot6d_to_matrix, yaw_matrix

FPS = 30.0
CLIPS = ("humanoid3d_walk.txt", "turn_left0.txt", "humanoid3d_run.txt")


@pytest.fixture(scope="module")
def source():
    """(frames per clip, skeleton) of real 30 fps DeepMimic clips in our frame layout."""
    files = [f for f in pybullet_motion_files() if f.name in CLIPS]
    motions = [read_deepmimic(f) for f in files]
    assert all(m.fps == FPS for m in motions)
    return [motion_to_frames(m)[0] for m in motions], motions[0].skeleton


def _write(path, clips, **extra):
    data = np.concatenate(clips).astype(np.float32)
    ends = np.cumsum([len(c) for c in clips]) - 1
    np.savez(path, **{"data": data, "end_indices": ends, **extra})
    return path


def _joint_map(original, imported, layout):
    """For each imported joint, the original joint whose positions it carries."""
    a, b = layout.positions(original), layout.positions(imported)  # (T, J, 3)
    return np.array([int(np.argmin(np.abs(a - b[:, [i]]).max(axis=(0, 2)))) for i in range(layout.num_joints)])


def test_skeleton_is_inferred_from_frames(tmp_path, source):
    clips, truth = source
    path = _write(tmp_path / "mocap.npz", clips)  # no skeleton keys, like the original file
    assert is_mvae_npz(path)
    out = read_mvae_npz(path, FPS)
    assert [name for name, _, _ in out] == ["mocap:0", "mocap:1", "mocap:2"]
    assert [len(f) for _, f, _ in out] == [len(c) for c in clips]
    layout = PoseLayout(truth.num_joints)
    sk = out[0][2]
    perm = _joint_map(clips[0], out[0][1], layout)  # imported joint i = original joint perm[i]
    assert sorted(perm) == list(range(truth.num_joints))
    assert np.all(sk.parents[1:] < np.arange(1, truth.num_joints))  # parents precede children
    inferred = {(perm[i], perm[sk.parents[i]]) for i in range(1, sk.num_joints)}
    actual = {(i, truth.parents[i]) for i in range(1, truth.num_joints)}
    assert inferred == actual
    assert np.abs(sk.bone_lengths() - truth.bone_lengths()[perm]).max() < 1e-3
    assert np.abs(sk.offsets - truth.offsets[perm]).max() < 1e-3
    # Every frame column moved with its joint (rotations too), and the root delta is untouched.
    for (_, frames, _), original in zip(out, clips, strict=True):
        assert np.allclose(layout.positions(frames), layout.positions(original)[:, perm], atol=1e-5)
        assert np.allclose(layout.velocities(frames), layout.velocities(original)[:, perm], atol=1e-4)
        assert np.allclose(layout.rotations6d(frames), layout.rotations6d(original)[:, perm], atol=1e-5)
        assert np.allclose(layout.root_deltas(frames), layout.root_deltas(original), atol=1e-6)
    # Side names pair the same joints as the true names do, so mirroring works.
    mirror = sk.mirror_indices()
    assert np.array_equal(perm[mirror], truth.mirror_indices()[perm])
    assert sk.joint_names[0] == "joint_00"


def test_file_skeleton_is_used_as_is(tmp_path, source):
    clips, truth = source
    names = np.array(["walk", "turn", "run"])
    path = _write(tmp_path / "ours.npz", clips, fps=np.float64(FPS), clip_names=names, **truth.to_arrays())
    out = read_mvae_npz(path, FPS)
    assert [n for n, _, _ in out] == list(names)
    assert out[0][2].joint_names == truth.joint_names
    assert np.allclose(out[1][1], clips[1], atol=1e-5)


def test_reference_conventions_are_converted(tmp_path, source):
    """Feet, per-frame velocities, [Y axes..., Z axes...] orientations and a +x-facing character frame
    (the reference code's conventions) read back as our layout."""
    clips, truth = source
    layout = PoseLayout(truth.num_joints)
    quarter = yaw_matrix(np.array(np.pi / 2))  # turns our +z facing to +x
    ref = []
    for c in clips:
        r = c.copy()
        n = len(c)
        step = np.stack([c[:, 0], np.zeros(n), c[:, 1]], -1) @ quarter.T
        r[:, layout.root_dxdz] = step[:, [0, 2]]
        r[:, layout.joint_pos] = (layout.positions(c) @ quarter.T).reshape(n, -1)
        r[:, layout.joint_vel] = (layout.velocities(c) @ quarter.T).reshape(n, -1) / FPS
        for part in (layout.root_dxdz, layout.joint_pos, layout.joint_vel):
            r[:, part] /= FOOT_M
        rot = quarter @ rot6d_to_matrix(layout.rotations6d(c))  # (T, J, 3, 3)
        r[:, layout.joint_rot6d] = np.concatenate([rot[..., 1].reshape(n, -1), rot[..., 2].reshape(n, -1)], 1)
        ref.append(r)
    ours = read_mvae_npz(_write(tmp_path / "ours.npz", clips), FPS)
    theirs = read_mvae_npz(_write(tmp_path / "ref.npz", ref), FPS)
    assert ours[0][2].joint_names == theirs[0][2].joint_names
    assert np.abs(ours[0][2].offsets - theirs[0][2].offsets).max() < 1e-4
    for (_, a, _), (_, b, _) in zip(ours, theirs, strict=True):
        assert np.abs(a - b).max() < 1e-4


def test_trailing_frames_form_a_last_clip(tmp_path, source):
    clips, _ = source
    data = np.concatenate(clips).astype(np.float32)
    path = tmp_path / "m.npz"
    np.savez(path, data=data, end_indices=np.array([len(clips[0]) - 1]))
    out = read_mvae_npz(path, FPS)
    assert [len(f) for _, f, _ in out] == [len(clips[0]), len(data) - len(clips[0])]


def test_is_mvae_npz_rejects_other_files(tmp_path):
    text = tmp_path / "a.npz"
    text.write_text("hello")
    other = tmp_path / "b.npz"
    np.savez(other, x=np.zeros(3))
    assert not is_mvae_npz(text) and not is_mvae_npz(other) and not is_mvae_npz(tmp_path / "missing.npz")


@pytest.mark.parametrize("change, message", [
    (lambda d, e: (d[:, :-1], e), "features per frame"),
    (lambda d, e: (d, np.append(e[:-1], len(d))), "out of range"),
    (lambda d, e: (d, e[::-1].copy()), "strictly increasing"),
    (lambda d, e: (d, e.astype(np.float64)), "integer"),
    (lambda d, e: (d[0], e), "2-D"),
])
def test_bad_shapes_give_clear_errors(tmp_path, source, change, message):
    clips, _ = source
    data, ends = change(np.concatenate(clips).astype(np.float32), np.cumsum([len(c) for c in clips]) - 1)
    path = tmp_path / "bad.npz"
    np.savez(path, data=data, end_indices=ends)
    with pytest.raises(ValueError, match=message) as err:
        read_mvae_npz(path, FPS)
    assert str(path) in str(err.value)


def test_inconsistent_frames_and_wrong_fps_are_rejected(tmp_path, source):
    clips, truth = source
    layout = PoseLayout(truth.num_joints)
    shuffled = [c.copy() for c in clips]
    for c in shuffled:
        c[:, layout.joint_vel] = np.random.default_rng(0).permutation(c[:, layout.joint_vel])
    with pytest.raises(ValueError, match="velocities disagree"):
        read_mvae_npz(_write(tmp_path / "shuffled.npz", shuffled), FPS)
    with pytest.raises(ValueError, match="pass fps=30"):
        read_mvae_npz(_write(tmp_path / "ok.npz", clips), 60.0)
    with pytest.raises(ValueError, match="fps=30.0 but fps=60.0"):
        read_mvae_npz(_write(tmp_path / "ours.npz", clips, fps=np.float64(FPS)), 60.0)
