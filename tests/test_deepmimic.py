"""DeepMimic import: real pybullet motion files, checked for what a viewer would show."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mocap.deepmimic import FRAME_SIZE, load_humanoid, pybullet_motion_files, read_deepmimic
from mocap.features import facing_yaw, frames_to_world, motion_to_frames
from mocap.kinematics import motion_world

FILES = pybullet_motion_files()
WALKS = [f for f in FILES if f.name == "humanoid3d_walk.txt" or f.parent.name == "walker"]


def _by_name(name):
    return next(f for f in FILES if f.name == name)


def _end_site(motion, world_rot, world_pos, joint):
    """World position (T, 3) of a joint's end site (head top, toe)."""
    j = motion.skeleton.index(joint)
    return world_pos[:, j] + world_rot[:, j] @ motion.skeleton.end_offsets[j]


def test_files_found_and_quadruped_left_out():
    names = [f.name for f in FILES]
    assert "humanoid3d_walk.txt" in names and "turn_left0.txt" in names
    assert "laikago_walk.txt" not in names
    assert len(WALKS) == 6


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_every_motion_loads(path):
    m = read_deepmimic(path)
    assert m.skeleton.num_joints == 15
    assert m.num_frames >= 20 and m.fps in (16.0, 24.0, 30.0, 60.0)
    assert np.all(np.isfinite(m.local_rot)) and np.all(np.isfinite(m.local_pos))
    # Joint names pair up for mirroring.
    perm = m.skeleton.mirror_indices()
    assert m.skeleton.joint_names[perm[m.skeleton.index("left_hip")]] == "right_hip"


def test_skeleton_comes_from_the_urdf():
    sk = load_humanoid().skeleton
    assert sk.joint_names[0] == "root"
    assert sk.joint_names[sk.parents[sk.index("right_knee")]] == "right_hip"
    assert sk.joint_names[sk.parents[sk.index("left_shoulder")]] == "chest"
    # URDF hip origin 0.339548 at pybullet's DeepMimic scale 0.25; shin 1.686184 * 0.25.
    assert np.allclose(sk.offsets[sk.index("left_hip")], [0, 0, -0.339548 * 0.25])
    assert np.isclose(sk.bone_lengths()[sk.index("right_knee")], 1.686184 * 0.25)
    assert sk.end_offsets[sk.index("right_ankle")][0] > 0.1  # toe ahead of the ankle (rest pose faces +x)


def test_forward_kinematics_matches_pybullet():
    """Our FK of the file equals pybullet's own placement of the URDF (as its DeepMimic env loads it)."""
    import pybullet as pb
    import pybullet_data

    path = _by_name("humanoid3d_walk.txt")
    raw = np.array(json.loads(path.read_text())["Frames"])
    m = read_deepmimic(path)
    world_rot, world_pos = motion_world(m)
    client = pb.connect(pb.DIRECT)
    try:
        pb.setAdditionalSearchPath(pybullet_data.getDataPath(), physicsClientId=client)
        body = pb.loadURDF("humanoid/humanoid.urdf", globalScaling=0.25, useFixedBase=True,
                           flags=pb.URDF_MAINTAIN_LINK_ORDER, physicsClientId=client)
        index = {pb.getJointInfo(body, i, physicsClientId=client)[1].decode(): i
                 for i in range(pb.getNumJoints(body, physicsClientId=client))}
        worst = 0.0
        for t in range(0, len(raw), 4):
            a = raw[t]
            pb.resetBasePositionAndOrientation(body, a[1:4], [*a[5:8], a[4]], physicsClientId=client)
            col = 8
            for name in ("chest", "neck", "right_hip", "right_knee", "right_ankle", "right_shoulder", "right_elbow",
                         "left_hip", "left_knee", "left_ankle", "left_shoulder", "left_elbow"):
                if name.endswith(("knee", "elbow")):
                    pb.resetJointState(body, index[name], a[col], physicsClientId=client)
                    col += 1
                else:
                    q = a[col : col + 4] / np.linalg.norm(a[col : col + 4])
                    pb.resetJointStateMultiDof(body, index[name], [*q[1:], q[0]], physicsClientId=client)
                    col += 4
            for j, name in enumerate(m.skeleton.joint_names[1:], start=1):
                state = pb.getLinkState(body, index[name], computeForwardKinematics=True, physicsClientId=client)
                rot = np.array(pb.getMatrixFromQuaternion(state[5])).reshape(3, 3)
                worst = max(worst, np.abs(np.array(state[4]) - world_pos[t, j]).max(), np.abs(rot - world_rot[t, j]).max())
    finally:
        pb.disconnect(client)
    assert worst < 1e-5


@pytest.mark.parametrize("path", WALKS, ids=lambda p: p.name)
def test_walks_are_upright_grounded_and_go_forward(path):
    m = read_deepmimic(path)
    world_rot, world_pos = motion_world(m)
    head = _end_site(m, world_rot, world_pos, "neck")
    assert np.mean(head[:, 1] > world_pos[:, 0, 1] + 0.3) > 0.95  # y-up: head well above the pelvis
    toes = np.stack([_end_site(m, world_rot, world_pos, f"{s}_ankle") for s in ("left", "right")])
    assert abs(toes[..., 1].min()) < 0.05  # feet reach the ground (y = 0)
    yaw = facing_yaw(m.skeleton, world_pos)
    forward = np.stack([np.sin(yaw), np.cos(yaw)], axis=-1)  # yaw 0 faces +z: direction (x, z) = (sin, cos)
    steps = np.diff(world_pos[:, 0, [0, 2]], axis=0)
    assert np.sum(steps * forward[:-1]) > 0.5  # metres travelled along the facing direction


@pytest.mark.parametrize("path", WALKS, ids=lambda p: p.name)
def test_knees_and_elbows_bend_the_right_way(path):
    """A bent knee points forward (ahead of the hip-ankle line); a bent elbow points backward."""
    m = read_deepmimic(path)
    _, pos = motion_world(m)
    sk = m.skeleton
    yaw = facing_yaw(sk, pos)
    forward = np.stack([np.sin(yaw), np.zeros_like(yaw), np.cos(yaw)], axis=-1)  # (T, 3)
    for side in ("left", "right"):
        for upper, mid, lower, sign in (("hip", "knee", "ankle", 1.0), ("shoulder", "elbow", "wrist", -1.0)):
            a, b, c = (pos[:, sk.index(f"{side}_{n}")] for n in (upper, mid, lower))
            bend = np.linalg.norm(b - a, axis=-1) + np.linalg.norm(c - b, axis=-1) - np.linalg.norm(c - a, axis=-1)
            bent = bend > 0.01
            ahead = np.sum((b - 0.5 * (a + c)) * forward, axis=-1) * sign
            assert bent.sum() > 5 and np.mean(ahead[bent] > 0) > 0.9, f"{side} {mid}"


@pytest.mark.parametrize("name, sign", [("turn_left0.txt", 1), ("turn_left1.txt", 1),
                                        ("turn_right0.txt", -1), ("turn_right1.txt", -1)])
def test_turns_go_their_way(name, sign):
    # Yaw is a rotation about +y and yaw 0 faces +z. Ry(a) maps +z to (sin a, 0, cos a): a small positive
    # yaw swings the facing towards +x, which is the character's left side when it faces +z. So turning
    # left increases yaw (and right decreases it).
    m = read_deepmimic(_by_name(name))
    _, world_pos = motion_world(m)
    yaw = np.unwrap(facing_yaw(m.skeleton, world_pos))
    assert sign * (yaw[-1] - yaw[0]) > np.radians(15)


@pytest.mark.parametrize("path", WALKS, ids=lambda p: p.name)
def test_frames_round_trip_to_world(path):
    m = read_deepmimic(path)
    frames, world_pos, yaw = motion_to_frames(m)
    _, back = frames_to_world(frames, world_pos[0, 0, [0, 2]], yaw[0])
    assert np.abs(back - world_pos).max() < 1e-3


def test_loop_cycles_repeat_without_jumps():
    path = _by_name("humanoid3d_walk.txt")
    once, thrice = read_deepmimic(path), read_deepmimic(path, loop_cycles=3)
    n = once.num_frames
    assert thrice.num_frames == 3 * (n - 1) + 1
    assert np.allclose(thrice.local_pos[:n], once.local_pos) and np.allclose(thrice.local_rot[:n], once.local_rot)
    _, pos = motion_world(thrice)
    steps = np.linalg.norm(np.diff(pos[:, 0], axis=0), axis=-1)
    seams = np.array([n - 1, 2 * (n - 1)])  # steps from each cycle's last frame into the next cycle
    inner = np.delete(steps, seams)
    assert steps[seams].max() <= 1.2 * inner.max()
    # Each cycle advances by the same distance: the walk keeps going instead of jumping back.
    ends = pos[[0, n - 1, 2 * (n - 1), 3 * (n - 1)], 0][:, [0, 2]]
    hops = np.linalg.norm(np.diff(ends, axis=0), axis=-1)
    assert hops.min() > 1.0 and np.ptp(hops) < 1e-6


def test_loop_cycles_ignored_for_clips_that_do_not_wrap():
    path = _by_name("humanoid3d_kick.txt")  # "Loop": "none"
    assert read_deepmimic(path, loop_cycles=3).num_frames == read_deepmimic(path).num_frames


def test_uneven_durations_are_resampled(tmp_path):
    doc = json.loads(_by_name("humanoid3d_walk.txt").read_text())
    doc["Frames"][5][0] *= 2  # one frame lasts two
    path = tmp_path / "uneven.txt"
    path.write_text(json.dumps(doc))
    m = read_deepmimic(path)
    assert m.fps == 30.0 and m.num_frames == len(doc["Frames"]) + 1


@pytest.mark.parametrize("content, message", [
    ("not json {", "not JSON"),
    (json.dumps({"Loop": "wrap"}), "Frames"),
    (json.dumps({"Frames": [[0.03] * FRAME_SIZE, [0.03] * 20]}), "frame 1 has 20 numbers"),
])
def test_bad_files_give_clear_errors(tmp_path, content, message):
    path = tmp_path / "bad.txt"
    path.write_text(content)
    with pytest.raises(ValueError, match=message) as err:
        read_deepmimic(path)
    assert str(path) in str(err.value)


def test_quadruped_file_is_rejected():
    laikago = FILES[0].parent / "laikago_walk.txt"
    with pytest.raises(ValueError, match="frame 0 has 20 numbers"):
        read_deepmimic(laikago)


@pytest.mark.parametrize("joint, message", [
    ('<joint name="j" type="prismatic"><parent link="a"/><child link="b"/></joint>', "prismatic"),
    ('<joint name="j" type="fixed"><parent link="a"/><child link="c"/></joint>', "'c', which is not defined"),
    ('<joint name="j" type="fixed"><parent link="a"/><child link="b"/><origin xyz="1 2"/></joint>', "has 2 numbers"),
])
def test_bad_urdf_gives_clear_errors(tmp_path, joint, message):
    from mocap.urdf import read_urdf

    path = tmp_path / "robot.urdf"
    path.write_text(f'<robot name="r"><link name="a"/><link name="b"/>{joint}</robot>')
    with pytest.raises(ValueError, match=message):
        read_urdf(path)


def facing_wobble_deg(yaw: np.ndarray, fps: float) -> float:
    """Mean deviation (deg) of a facing track from its centred 1-s average: the trunk's sway plus what the facing
    definition adds to it."""
    half = min(int(fps // 2), (len(yaw) - 1) // 3)
    yaw = np.unwrap(yaw)
    average = np.convolve(yaw, np.ones(2 * half + 1) / (2 * half + 1), mode="same")
    return float(np.degrees(np.abs(yaw - average))[half:-half].mean())


def test_a_walks_facing_follows_the_trunk_not_the_stride():
    """The facing comes from the hips and shoulders: a straight walk's facing stays within a few degrees of its
    average (summing the feet and hands too swung it by tens of degrees per step)."""
    m = read_deepmimic(_by_name("humanoid3d_walk.txt"))
    _, world_pos = motion_world(m)
    assert facing_wobble_deg(facing_yaw(m.skeleton, world_pos), m.fps) < 6.0  # measured 4.4


@pytest.mark.parametrize("clip, most", [("walk", 4.0), ("run", 4.0), ("dash", 5.0), ("walk-back", 4.0)])
def test_bandai_namco_locomotion_faces_steadily(shared_mocap, clip, most):
    """Measured 2.1 / 2.4 / 3.2 / 1.1 deg (with every joint pair: 20.7 / 11.1 / 20.3 / 22.3)."""
    from mocap.bvh import read_bvh
    from mocap.features import root_pairs
    from mocap.skeleton import name_side

    m = read_bvh(shared_mocap / "bandai-namco-1" / f"dataset-1_{clip}_normal_001.bvh")
    _, world_pos = motion_world(m)
    sk = m.skeleton
    assert sorted(sk.joint_names[i] for i in root_pairs(sk, sk.mirror_indices())) == ["Shoulder_L", "UpperLeg_L"]
    assert facing_wobble_deg(facing_yaw(sk, world_pos), m.fps) < most
    perm = sk.mirror_indices()  # every pair, feet and hands too, as the facing was made before
    left = [i for i, name in enumerate(sk.joint_names) if name_side(name) == "left" and perm[i] != i]
    across = (world_pos[:, left] - world_pos[:, perm[left]]).sum(axis=1)
    assert facing_wobble_deg(np.arctan2(-across[:, 2], across[:, 0]), m.fps) > 10.0
