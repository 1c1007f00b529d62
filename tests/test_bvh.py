"""BVH reading and writing: rotation orders, position channels, end sites, units, write -> read round trips."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from mocap.bvh import import_bvh, read_bvh, write_bvh
from mocap.kinematics import Motion, motion_world
from mocap.skeleton import Skeleton

# A small biped in centimetres. Mixed rotation orders: the root lists Z X Y, the left leg Y X Z, the right
# leg X Y Z (via "Xrotation Yrotation Zrotation"), the spine has position channels that replace its offset.
SMALL_BVH = """\
HIERARCHY
ROOT Hips
{
\tOFFSET 0 0 0
\tCHANNELS 6 Xposition Yposition Zposition Zrotation Xrotation Yrotation
\tJOINT LeftUpLeg
\t{
\t\tOFFSET {o1}
\t\tCHANNELS 3 Yrotation Xrotation Zrotation
\t\tJOINT LeftFoot
\t\t{
\t\t\tOFFSET {o2}
\t\t\tCHANNELS 3 Zrotation Yrotation Xrotation
\t\t\tEnd Site
\t\t\t{
\t\t\t\tOFFSET {e2}
\t\t\t}
\t\t}
\t}
\tJOINT RightUpLeg
\t{
\t\tOFFSET {o3}
\t\tCHANNELS 3 Xrotation Yrotation Zrotation
\t\tJOINT RightFoot
\t\t{
\t\t\tOFFSET {o4}
\t\t\tCHANNELS 3 Zrotation Yrotation Xrotation
\t\t\tEnd Site
\t\t\t{
\t\t\t\tOFFSET {e4}
\t\t\t}
\t\t}
\t}
\tJOINT Spine
\t{
\t\tOFFSET {o5}
\t\tCHANNELS 6 Xposition Yposition Zposition Zrotation Xrotation Yrotation
\t\tJOINT Head
\t\t{
\t\t\tOFFSET {o6}
\t\t\tCHANNELS 3 Zrotation Xrotation Yrotation
\t\t\tEnd Site
\t\t\t{
\t\t\t\tOFFSET {e6}
\t\t\t}
\t\t}
\t}
}
MOTION
Frames: {frames}
Frame Time: 0.0333333
{data}
"""
NAMES = ["Hips", "LeftUpLeg", "LeftFoot", "RightUpLeg", "RightFoot", "Spine", "Head"]
PARENTS = [-1, 0, 1, 0, 3, 0, 5]
OFFSETS_CM = np.array([[0, 0, 0], [10, 0, 0], [0, -90, 0], [-10, 0, 0], [0, -90, 0], [0, 10, 0], [0, 60, 0]], float)
# Per joint: (column of its first rotation channel, rotation axes in file order).
ROT_CHANNELS = {0: (3, "ZXY"), 1: (6, "YXZ"), 2: (9, "ZYX"), 3: (12, "XYZ"), 4: (15, "ZYX"), 5: (21, "ZXY"), 6: (24, "ZXY")}
NUM_CHANNELS = 27


END_OFFSETS_CM = {2: [0, -5, 12], 4: [0, -5, 12], 6: [0, 20, 0]}


def small_bvh(values: np.ndarray, scale_units: float = 1.0) -> str:
    """The small biped with (T, 27) channel values in cm; ``scale_units`` converts every length (0.01: metres)."""
    text = SMALL_BVH
    for j, offset in enumerate(OFFSETS_CM):
        text = text.replace(f"{{o{j}}}", " ".join(f"{x * scale_units:.9g}" for x in offset))
    for j, offset in END_OFFSETS_CM.items():
        text = text.replace(f"{{e{j}}}", " ".join(f"{x * scale_units:.9g}" for x in offset))
    values = values.copy()
    values[:, [0, 1, 2, 18, 19, 20]] *= scale_units  # root and spine translations
    data = "\n".join(" ".join(f"{x:.9g}" for x in row) for row in values)
    return text.replace("{frames}", str(len(values))).replace("{data}", data)


def random_values(rng: np.random.Generator, t: int) -> np.ndarray:
    v = rng.uniform(-25.0, 25.0, size=(t, NUM_CHANNELS))  # degrees: a roughly upright pose
    v[:, 0:3] = np.array([5.0, 95.0, -3.0]) + rng.normal(0, 10, size=(t, 3))  # root cm
    v[:, 18:21] = np.array([0.0, 10.0, 0.0]) + rng.normal(0, 2, size=(t, 3))  # spine translation cm
    return v


def _rx(a):
    c, s = np.cos(a), np.sin(a)
    return np.array([[1, 0, 0], [0, c, -s], [0, s, c]])


def _ry(a):
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])


def _rz(a):
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])


def naive_fk(values_row: np.ndarray) -> np.ndarray:
    """World positions (J, 3) in cm for one frame, joint by joint with hand-written matrices."""
    axis = {"X": _rx, "Y": _ry, "Z": _rz}
    world_r, world_p = [], []
    for j in range(len(NAMES)):
        col, order = ROT_CHANNELS[j]
        r = np.eye(3)
        for k, a in enumerate(order):
            r = r @ axis[a](np.radians(values_row[col + k]))
        if j == 0:
            p, rw = values_row[0:3], r
        else:
            local = values_row[18:21] if j == 5 else OFFSETS_CM[j]
            pr, pp = world_r[PARENTS[j]], world_p[PARENTS[j]]
            p, rw = pp + pr @ local, pr @ r
        world_r.append(rw)
        world_p.append(p)
    return np.array(world_p)


def test_small_file_structure_units_and_fps(tmp_path):
    rng = np.random.default_rng(0)
    f = tmp_path / "small.bvh"
    f.write_text(small_bvh(random_values(rng, 12)))
    result = import_bvh(f)
    m = result.motion
    assert result.unit == "cm" and result.scale == 0.01
    assert m.skeleton.joint_names == NAMES
    assert m.skeleton.parents.tolist() == PARENTS
    np.testing.assert_allclose(m.skeleton.offsets, OFFSETS_CM * 0.01)
    # End Sites belong to their parent joint, in metres.
    np.testing.assert_allclose(m.skeleton.end_offsets[2], [0, -0.05, 0.12])
    np.testing.assert_allclose(m.skeleton.end_offsets[6], [0, 0.2, 0])
    assert np.all(m.skeleton.end_offsets[[0, 1, 3, 5]] == 0)
    assert m.fps == 30.0 and m.num_frames == 12 and m.name == "small"
    assert 1.0 < result.height_m < 2.5


def test_rotation_orders_and_position_channels_match_hand_fk(tmp_path):
    rng = np.random.default_rng(1)
    values = random_values(rng, 20)
    f = tmp_path / "small.bvh"
    f.write_text(small_bvh(values))
    _, world_pos = motion_world(read_bvh(f))
    expected = np.stack([naive_fk(row) for row in values]) * 0.01
    np.testing.assert_allclose(world_pos, expected, atol=1e-9)


def test_exact_values_for_quarter_turns(tmp_path):
    """Quarter turns worked out on paper: order matters and the spine's channels replace its offset."""
    row = np.zeros(NUM_CHANNELS)
    row[0:3] = [0, 100, 0]
    row[5] = 90.0  # root Yrotation (listed third: Z X Y): the body turns to face +x
    row[6], row[7] = 90.0, 90.0  # left hip: Yrotation 90 then Xrotation 90 -> R = Ry Rx
    row[18:21] = [0, 12, 3]  # spine translation replaces OFFSET 0 10 0
    f = tmp_path / "quarter.bvh"
    f.write_text(small_bvh(np.stack([row, row])))
    _, world_pos = motion_world(read_bvh(f, scale=0.01))
    p = world_pos[0] * 100.0  # back to cm
    np.testing.assert_allclose(p[1], [0, 100, -10], atol=1e-9)  # Ry(90) (10, 0, 0) = (0, 0, -10)
    # Left foot: Ry(90) [Ry(90) Rx(90)] (0, -90, 0) = Ry(180) (0, 0, -90) = (0, 0, 90), from the hip.
    np.testing.assert_allclose(p[2], [0, 100, 80], atol=1e-9)
    np.testing.assert_allclose(p[5], [3, 112, 0], atol=1e-9)  # Ry(90) (0, 12, 3) = (3, 12, 0)


@pytest.mark.parametrize(("factor", "unit"), [(0.01, "m"), (1.0 / 2.54, "inch")])
def test_units_detected(tmp_path, factor, unit):
    values = random_values(np.random.default_rng(2), 10)
    f = tmp_path / "u.bvh"
    f.write_text(small_bvh(values, scale_units=factor))
    result = import_bvh(f)
    assert result.unit == unit
    reference = tmp_path / "cm.bvh"
    reference.write_text(small_bvh(values))
    np.testing.assert_allclose(motion_world(result.motion)[1], motion_world(read_bvh(reference))[1], atol=1e-6)


def test_unknown_units_fall_back_to_1_7_m_with_a_warning(tmp_path):
    f = tmp_path / "millimetres.bvh"
    f.write_text(small_bvh(random_values(np.random.default_rng(3), 10), scale_units=10.0))
    with pytest.warns(UserWarning, match=r"millimetres\.bvh.*--scale"):
        result = import_bvh(f)
    assert result.unit == "fitted"
    assert result.height_m == pytest.approx(1.7)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert import_bvh(f, scale=0.001).unit == "given"


def synthetic_motion(rng: np.random.Generator, t: int = 15) -> Motion:
    values = random_values(rng, t)
    skeleton = Skeleton(NAMES, PARENTS, OFFSETS_CM * 0.01, np.zeros((7, 3)))
    from mocap.rotations import euler_to_matrix

    local_rot = np.stack([euler_to_matrix(np.radians(values[:, c : c + 3]), o) for c, o in ROT_CHANNELS.values()], 1)
    local_pos = np.broadcast_to(skeleton.offsets, (t, 7, 3)).copy()
    local_pos[:, 0] = values[:, 0:3] * 0.01
    local_pos[:, 5] = values[:, 18:21] * 0.01
    return Motion("synthetic", skeleton, local_rot, local_pos, 30.0)


@pytest.mark.parametrize("order", ["ZXY", "XYZ", "ZYX"])
def test_write_then_read_gives_the_same_positions(tmp_path, order):
    motion = synthetic_motion(np.random.default_rng(4))
    out = tmp_path / "out.bvh"
    write_bvh(out, motion, order=order)
    back = import_bvh(out)
    assert back.unit == "cm"
    assert back.motion.skeleton.joint_names == NAMES
    assert back.motion.fps == pytest.approx(30.0)
    np.testing.assert_allclose(motion_world(back.motion)[1], motion_world(motion)[1], atol=1e-6)
    assert not [p for p in tmp_path.iterdir() if p.name != "out.bvh"]  # no temp file left


def test_written_file_is_plain_bvh(tmp_path):
    motion = synthetic_motion(np.random.default_rng(5), t=3)
    out = tmp_path / "plain.bvh"
    write_bvh(out, motion, unit_scale=1.0)
    text = out.read_text()
    lines = text.splitlines()
    assert lines[0] == "HIERARCHY" and lines[1] == "ROOT Hips"
    assert "CHANNELS 6 Xposition Yposition Zposition Zrotation Xrotation Yrotation" in lines[4]
    assert text.count("End Site") == 3  # one per leaf joint
    frames_at = lines.index("MOTION")
    assert lines[frames_at + 1] == "Frames: 3" and lines[frames_at + 2].startswith("Frame Time: 0.0333333")
    # Root: 6 channels; the spine's translation is animated so it keeps 6; the five others 3 each.
    assert all(len(line.split()) == 6 + 6 + 5 * 3 for line in lines[frames_at + 3 :])


@pytest.mark.parametrize(
    ("rel", "scale"), [("bandai-namco-1/dataset-1_walk_normal_001.bvh", None), ("cmu/02_01.bvh", 0.0254 / 0.45)]
)
def test_real_file_import_export_import_within_1mm(shared_mocap, tmp_path, rel, scale):
    src = shared_mocap / rel
    first = read_bvh(src, scale=scale)
    out = tmp_path / "again.bvh"
    write_bvh(out, first)
    second = read_bvh(out)
    assert second.skeleton.joint_names == first.skeleton.joint_names
    assert second.num_frames == first.num_frames
    err = np.abs(motion_world(second)[1] - motion_world(first)[1]).max()
    assert err < 1e-3, f"{rel}: import -> export -> import moved a joint by {err * 1000:.3f} mm"


def test_ground_level_placement_root_is_dropped(tmp_path):
    """A LaFAN1-style ``SimulationBone`` that follows the hips on the ground is folded into the hips."""
    motion = synthetic_motion(np.random.default_rng(6))
    sk = motion.skeleton
    t = motion.num_frames
    ground = motion.local_pos[:, 0] * np.array([1.0, 0.0, 1.0])  # (T, 3) hips projected on the floor
    with_root = Motion(
        "placed",
        Skeleton(["SimulationBone", *sk.joint_names], [-1, *(sk.parents + 1)], np.vstack([np.zeros(3), sk.offsets])),
        np.concatenate([np.broadcast_to(np.eye(3), (t, 1, 3, 3)), motion.local_rot], axis=1),
        np.concatenate([ground[:, None], motion.local_pos], axis=1),
        motion.fps,
    )
    with_root.local_pos[:, 1] -= ground
    out = tmp_path / "placed.bvh"
    write_bvh(out, with_root)
    result = import_bvh(out)
    assert result.dropped_roots == ["SimulationBone"]
    assert result.motion.skeleton.joint_names == NAMES
    np.testing.assert_allclose(motion_world(result.motion)[1], motion_world(motion)[1], atol=1e-6)
