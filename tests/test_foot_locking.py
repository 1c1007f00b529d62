"""mocap.foot_locking: two-bone IK, leg chains by name, kinematic contacts, the stepped FootLocker (pure numpy).

A hand-built CMU-style skeleton (hips, spine, per side up-leg > leg > foot > toe) walks by forward kinematics,
so positions and rotations agree exactly and the locker's rotations can be checked through forward kinematics.
"""

from __future__ import annotations

import numpy as np
import pytest

from mocap.features import CONTACT_HEIGHT_M, CONTACT_SPEED_MPS
from mocap.foot_locking import (
    BLEND_OUT_FRAMES,
    BLEND_OUT_STEP_M,
    DROP_SPEED_MPS,
    LEASH_M,
    LOCK_SPEED_MPS,
    MAX_PELVIS_DROP_M,
    PLANTED_LEASH_M,
    RELEASE_DISTANCE_M,
    RISE_SPEED_MPS,
    SLOW_LEASH_M,
    SLOW_ROOT_MPS,
    FootLocker,
    detect_contacts,
    leg_chains,
    lock_legs,
    minimal_rotation,
    stance_reach,
    two_bone_ik,
)
from mocap.kinematics import forward_kinematics, world_to_local_rotations
from mocap.rotations import axis_angle_matrix
from mocap.skeleton import Skeleton

FPS = 30.0
THIGH = SHIN = 0.42  # m
HIP_HEIGHT = 0.70  # m: legs bent (0.84 m long), feet flat on the floor


def walker_skeleton() -> Skeleton:
    names = ["Hips", "Spine", "LeftUpLeg", "LeftLeg", "LeftFoot", "LeftToeBase",
             "RightUpLeg", "RightLeg", "RightFoot", "RightToeBase"]
    parents = [-1, 0, 0, 2, 3, 4, 0, 6, 7, 8]
    offsets = [[0, 0, 0], [0, 0.25, 0],
               [0.1, 0, 0], [0, -THIGH, 0], [0, -SHIN, 0], [0, -0.06, 0.12],
               [-0.1, 0, 0], [0, -THIGH, 0], [0, -SHIN, 0], [0, -0.06, 0.12]]
    return Skeleton(names, parents, offsets)


def walker_pose(root_xz: np.ndarray, skeleton: Skeleton) -> tuple[np.ndarray, np.ndarray]:
    """Root ground positions (T, 2) m -> world rotations (T, J, 3, 3) and positions (T, J, 3): the hips at
    ``HIP_HEIGHT``, knees bent forward, each foot flat, straight below its hip (so the feet slide with the root)."""
    t, j = len(root_xz), skeleton.num_joints
    bend = np.arccos(HIP_HEIGHT / (THIGH + SHIN))  # rad: thigh angle off vertical
    local_rot = np.tile(np.eye(3), (t, j, 1, 1))  # (T, J, 3, 3)
    for hip, knee, foot in ((2, 3, 4), (6, 7, 8)):
        local_rot[:, hip] = axis_angle_matrix(0, -bend)  # the knee goes forward (+z)
        local_rot[:, knee] = axis_angle_matrix(0, 2 * bend)
        local_rot[:, foot] = axis_angle_matrix(0, -bend)  # the foot flat again in the world
    local_pos = np.broadcast_to(skeleton.offsets, (t, j, 3)).copy()
    local_pos[:, 0] = np.stack([root_xz[:, 0], np.full(t, HIP_HEIGHT), root_xz[:, 1]], axis=-1)
    return forward_kinematics(skeleton.parents, local_rot, local_pos)


def floor_of(world_pos: np.ndarray, chains) -> np.ndarray:
    """(2, 2) floor under each (foot, toe): their height in the first pose (feet flat on the floor there)."""
    return world_pos[0, chains.contact_joints, 1]


def bone_lengths(world_pos: np.ndarray, skeleton: Skeleton) -> np.ndarray:
    return np.linalg.norm(world_pos[..., 1:, :] - world_pos[..., skeleton.parents[1:], :], axis=-1)


# ---- two-bone IK ----------------------------------------------------------------------------------------------
def random_chains(rng, shape):
    root = rng.normal(size=shape + (3,))
    mid = root + rng.normal(size=shape + (3,)) * rng.uniform(0.2, 1.0, size=shape + (1,))
    end = mid + rng.normal(size=shape + (3,)) * rng.uniform(0.2, 1.0, size=shape + (1,))
    return root, mid, end


def test_two_bone_ik_keeps_bone_lengths_and_reaches_reachable_targets():
    rng = np.random.default_rng(0)
    root, mid, end = random_chains(rng, (8, 250))  # leading dims (8, 250)
    upper, lower = np.linalg.norm(mid - root, axis=-1), np.linalg.norm(end - mid, axis=-1)
    # Targets at distances spread over the reachable range [|upper - lower|, upper + lower].
    direction = rng.normal(size=root.shape)
    direction /= np.linalg.norm(direction, axis=-1, keepdims=True)
    dist = np.abs(upper - lower) + rng.uniform(0.01, 0.99, size=upper.shape) * (upper + lower - np.abs(upper - lower))
    target = root + dist[..., None] * direction
    pole = rng.normal(size=root.shape)
    new_mid, new_end = two_bone_ik(root, mid, end, target, pole)
    np.testing.assert_allclose(np.linalg.norm(new_mid - root, axis=-1), upper, atol=1e-9, rtol=0)
    np.testing.assert_allclose(np.linalg.norm(new_end - new_mid, axis=-1), lower, atol=1e-9, rtol=0)
    np.testing.assert_allclose(new_end, target, atol=1e-9, rtol=0)
    # The knee bends to the pole's side of the root-target line.
    axis = direction
    pole_off = pole - np.sum(pole * axis, -1, keepdims=True) * axis
    knee_off = new_mid - root - np.sum((new_mid - root) * axis, -1, keepdims=True) * axis
    assert (np.sum(pole_off * knee_off, axis=-1) > 0).all()


def test_two_bone_ik_out_of_reach_lands_on_the_line_and_never_flips():
    rng = np.random.default_rng(1)
    root, mid, end = random_chains(rng, (500,))
    upper, lower = np.linalg.norm(mid - root, axis=-1), np.linalg.norm(end - mid, axis=-1)
    direction = rng.normal(size=root.shape)
    direction /= np.linalg.norm(direction, axis=-1, keepdims=True)
    far = root + (upper + lower + rng.uniform(0.01, 2.0, size=upper.shape))[..., None] * direction
    new_mid, new_end = two_bone_ik(root, mid, end, far, mid - root)
    np.testing.assert_allclose(new_end, root + (upper + lower)[..., None] * direction, atol=1e-9, rtol=0)
    np.testing.assert_allclose(np.linalg.norm(new_end - new_mid, axis=-1), lower, atol=1e-9, rtol=0)
    near = root + 0.5 * np.abs(upper - lower)[..., None] * direction  # closer than the bones can fold
    new_mid, new_end = two_bone_ik(root, mid, end, near, mid - root)
    np.testing.assert_allclose(np.linalg.norm(new_end - root, axis=-1), np.abs(upper - lower), atol=1e-9, rtol=0)
    np.testing.assert_allclose(np.linalg.norm(new_mid - root, axis=-1), upper, atol=1e-9, rtol=0)

    # A knee bent forward stays forward through a sweep of targets around the straight leg (no flip).
    hip, knee, ankle = np.zeros(3), np.array([0.0, -0.42, 0.01]), np.array([0.0, -0.84, 0.0])
    for dz in np.linspace(-0.3, 0.3, 61):
        for dy in (0.0, 0.05, 0.3):
            new_knee, _ = two_bone_ik(hip, knee, ankle, np.array([0.0, -0.84 + dy, dz]), np.array([0.0, 0.0, 1.0]))
            line = np.array([0.0, -0.84 + dy, dz]) / np.linalg.norm([0.0, -0.84 + dy, dz])
            off = new_knee - np.dot(new_knee, line) * line
            assert off[2] >= -1e-12, f"knee behind the leg for target dz={dz}, dy={dy}"


def test_the_pose_itself_is_a_fixed_point_and_minimal_rotations_turn_one_direction_onto_another():
    rng = np.random.default_rng(2)
    root, mid, end = random_chains(rng, (300,))
    axis = (end - root) / np.linalg.norm(end - root, axis=-1, keepdims=True)
    bend = (mid - root) - np.sum((mid - root) * axis, -1, keepdims=True) * axis
    new_mid, new_end = two_bone_ik(root, mid, end, end, bend)
    np.testing.assert_allclose(new_mid, mid, atol=1e-9)
    np.testing.assert_allclose(new_end, end, atol=1e-9)

    a, b = rng.normal(size=(300, 3)), rng.normal(size=(300, 3))
    r = minimal_rotation(a, b)
    np.testing.assert_allclose((r @ a[..., None])[..., 0] / np.linalg.norm(a, axis=-1, keepdims=True),
                               b / np.linalg.norm(b, axis=-1, keepdims=True), atol=1e-9)
    np.testing.assert_allclose(r @ np.swapaxes(r, -1, -2), np.broadcast_to(np.eye(3), r.shape), atol=1e-9)
    np.testing.assert_allclose(np.linalg.det(r), 1.0, atol=1e-9)
    normal = np.cross(a, b)  # minimal: the axis perpendicular to both stays put
    np.testing.assert_allclose((r @ normal[..., None])[..., 0], normal, atol=1e-9)


# ---- skeletons ------------------------------------------------------------------------------------------------
def test_leg_chains_by_name_and_clear_errors():
    chains = leg_chains(walker_skeleton())
    assert chains.hip.tolist() == [2, 6] and chains.knee.tolist() == [3, 7]
    assert chains.foot.tolist() == [4, 8] and chains.toe.tolist() == [5, 9]
    assert chains.names[0] == "left: LeftUpLeg > LeftLeg > LeftFoot > LeftToeBase"
    assert [r.tolist() for r in chains.foot_riders] == [[4, 5], [8, 9]]

    # The DeepMimic humanoid: ankles with no toe joint below them.
    dm = Skeleton(["root", "chest", "right_hip", "right_knee", "right_ankle", "left_hip", "left_knee", "left_ankle"],
                  [-1, 0, 0, 2, 3, 0, 5, 6], np.zeros((8, 3)))
    chains = leg_chains(dm)
    assert chains.foot.tolist() == [7, 4] and chains.toe.tolist() == [7, 4] and chains.hip.tolist() == [5, 2]

    with pytest.raises(ValueError, match="no left toe, foot or ankle joint"):
        leg_chains(Skeleton(["Hips", "Spine", "Head"], [-1, 0, 1], np.zeros((3, 3))))
    short = Skeleton(["Hips", "LeftFoot", "RightFoot"], [-1, 0, 0], np.zeros((3, 3)))
    with pytest.raises(ValueError, match=r"left hip > knee > foot chain.*LeftFoot.*Hips is the root"):
        leg_chains(short)


# ---- contacts -------------------------------------------------------------------------------------------------
def test_contacts_need_a_low_and_slow_lowest_joint_with_the_data_thresholds():
    skeleton = walker_skeleton()
    chains = leg_chains(skeleton)
    _, pose = walker_pose(np.zeros((1, 2)), skeleton)
    floor = floor_of(pose, chains)
    step = lambda dx, dy: pose[0] + np.array([dx, dy, 0.0])  # noqa: E731 - the whole body moved
    slow, fast = 0.9 * CONTACT_SPEED_MPS / FPS, 1.1 * CONTACT_SPEED_MPS / FPS  # m per step
    assert detect_contacts(step(slow, 0.0), pose[0], chains, floor, FPS).tolist() == [True, True]
    assert detect_contacts(step(fast, 0.0), pose[0], chains, floor, FPS).tolist() == [False, False]
    high = step(0.0, 1.1 * CONTACT_HEIGHT_M)
    assert detect_contacts(high, high, chains, floor, FPS).tolist() == [False, False]
    # Heel up, toe down: the toe (the lowest above its floor) decides, and it is still.
    heel_up = pose[0].copy()
    heel_up[4, 1] += 0.2
    assert detect_contacts(heel_up, pose[0], chains, floor, FPS).tolist() == [True, True]
    # Leading dims: (T-1, 2) for a sequence.
    assert detect_contacts(pose.repeat(5, 0)[1:], pose.repeat(5, 0)[:-1], chains, floor, FPS).shape == (4, 2)


# ---- the locker -----------------------------------------------------------------------------------------------
def walk(speeds_mps: np.ndarray, characters: int = 1):
    """Root moving along +z at ``speeds_mps`` (T,) per step -> rotations, positions (T, B, J, ...)."""
    skeleton = walker_skeleton()
    z = np.concatenate([[0.0], np.cumsum(speeds_mps[1:] / FPS)])
    root_xz = np.stack([np.zeros_like(z), z], axis=-1)  # (T, 2)
    world_rot, world_pos = walker_pose(root_xz, skeleton)
    offsets = np.arange(characters)[:, None] * np.array([2.0, 0.0, 0.0])  # (B, 3): side by side
    return skeleton, np.repeat(world_rot[:, None], characters, 1), world_pos[:, None] + offsets[None, :, None]


def run_locker(locker, world_rot, world_pos):
    out_pos, out_rot = zip(*(locker.step(world_pos[t], world_rot[t]) for t in range(len(world_pos))), strict=True)
    return np.stack(out_rot), np.stack(out_pos)


def test_locked_toes_stay_put_bones_keep_their_lengths_and_rotations_reproduce_the_positions():
    # 1 s at 0.24 m/s (the feet slide under the body, slower than the contact speed, less than the release
    # distance in all), then 0.5 s at 1.5 m/s.
    speeds = np.concatenate([np.full(30, 0.24), np.full(15, 1.5)])
    skeleton, world_rot, world_pos = walk(speeds, characters=3)
    chains = leg_chains(skeleton)
    locker = FootLocker(chains, 3, FPS, floor_of(world_pos[:, 0], chains))
    out_rot, out_pos = run_locker(locker, world_rot, world_pos)

    toe = out_pos[:, :, chains.toe][..., ::2]  # (T, B, 2, 2)
    raw_toe = world_pos[:, :, chains.toe][..., ::2]
    held = slice(1, 30)  # contact starts at step 1 (step 0 has no previous pose to measure speed from)
    assert np.abs(toe[held] - toe[1]).max() < 1e-9, "the locked toes do not move while in contact"
    slid = np.abs(raw_toe[29] - raw_toe[1]).max()
    assert 0.2 < slid < RELEASE_DISTANCE_M, "the model's toes slid 22 cm meanwhile"
    np.testing.assert_allclose(bone_lengths(out_pos, skeleton), bone_lengths(world_pos, skeleton), atol=1e-9)
    np.testing.assert_allclose(out_pos[:, :, chains.toe, 1], world_pos[:, :, chains.toe, 1], atol=1e-9,
                               err_msg="the toe height follows the pose")
    # Forward kinematics of the returned rotations (local from world, rest offsets, the root's position)
    # puts every joint where the returned positions say.
    local_rot = world_to_local_rotations(skeleton.parents, out_rot)
    local_pos = np.broadcast_to(skeleton.offsets, out_pos.shape).copy()
    local_pos[..., 0, :] = out_pos[..., 0, :]
    _, fk_pos = forward_kinematics(skeleton.parents, local_rot, local_pos)
    np.testing.assert_allclose(fk_pos, out_pos, atol=1e-9)
    # The knees stay bent forward (+z of the hips' line) while held.
    knee_forward = out_pos[held, :, chains.knee, 2] - 0.5 * (out_pos[held, :, chains.hip, 2]
                                                             + out_pos[held, :, chains.foot, 2])
    assert (knee_forward > 0).all()


def test_blend_out_has_no_jump_and_reaches_the_model_pose():
    speeds = np.concatenate([np.full(20, 0.3), np.full(20, 1.5)])  # contact ends when the feet speed up
    skeleton, world_rot, world_pos = walk(speeds)
    chains = leg_chains(skeleton)
    locker = FootLocker(chains, 1, FPS, floor_of(world_pos[:, 0], chains))
    weights = []
    drawn = []
    for t in range(len(world_pos)):
        drawn.append(locker.step(world_pos[t])[0])
        weights.append(locker.weight.copy())
    drawn, weights = np.stack(drawn)[:, 0], np.stack(weights)[:, 0]  # (T, J, 3), (T, 2)
    end = 1 + int(np.argmax(weights[1:, 0] < 1.0))  # first step after the contact (step 0 has no lock yet)
    assert end == 20
    np.testing.assert_allclose(weights[end:end + BLEND_OUT_FRAMES + 1, 0], np.linspace(0.8, 0.0, 5).tolist() + [0.0],
                               atol=1e-12)
    raw_toe = world_pos[:, 0, chains.toe][..., ::2]  # (T, 2, 2)
    toe = drawn[:, chains.toe][..., ::2]
    raw_step = np.linalg.norm(np.diff(raw_toe, axis=0), axis=-1)  # (T-1, 2)
    step = np.linalg.norm(np.diff(toe, axis=0), axis=-1)
    gap = np.linalg.norm(raw_toe[end - 1] - toe[end - 1], axis=-1)  # how far the lock held the toe from the model's
    assert gap.min() > 0.05
    # Every step of the drawn toe is at most the model's own step plus 1/BLEND_OUT_FRAMES of the gap then.
    bound = raw_step + (np.linalg.norm(raw_toe[1:] - toe[end - 1], axis=-1) / BLEND_OUT_FRAMES)
    assert (step[end - 1:] <= bound[end - 1:] + 1e-9).all(), "a jump larger than the blend allows"
    np.testing.assert_allclose(drawn[end + BLEND_OUT_FRAMES:], world_pos[end + BLEND_OUT_FRAMES:, 0], atol=1e-12,
                               err_msg="after the blend the pose is the model's")


def test_reset_and_far_drift_release_locks():
    skeleton, world_rot, world_pos = walk(np.full(16, 0.3), characters=2)
    chains = leg_chains(skeleton)
    locker = FootLocker(chains, 2, FPS, floor_of(world_pos[:, 0], chains))
    for t in range(6):
        locker.step(world_pos[t])
    assert locker.locked.all()
    locker.reset(np.array([True, False]))  # character 0 teleported
    assert locker.locked.tolist() == [[False, False], [True, True]] and locker.weight[0].sum() == 0
    out, _ = locker.step(world_pos[6])
    np.testing.assert_allclose(out[0], world_pos[6, 0], atol=1e-12)  # no previous pose: no contact, no correction
    # Character 1 jumps 3 m without being reset: released at once (no leg dragged across the gap).
    jumped = world_pos[7].copy()
    jumped[1] += np.array([3.0, 0.0, 0.0])
    out, _ = locker.step(jumped)
    assert not locker.locked[1].any() and locker.weight[1].sum() == 0
    np.testing.assert_allclose(out[1], jumped[1], atol=1e-12)
    # A foot sliding just past the release distance lets go and blends out (no re-lock while the contact lasts).
    locker = FootLocker(chains, 1, FPS, floor_of(world_pos[:, 0], chains), release_m=0.05)
    for t in range(16):
        locker.step(world_pos[t, :1])
    assert locker.released.all() and (locker.weight == 0).all()


def test_a_lock_beyond_reach_lowers_the_body_and_the_other_foot_stays():
    skeleton, world_rot, world_pos = walk(np.zeros(1))
    chains = leg_chains(skeleton)
    pose, rot = world_pos[0], world_rot[0]  # (1, J, 3), (1, J, 3, 3)
    toe = pose[:, chains.toe][..., ::2]  # (1, 2, 2)
    target = toe.copy()
    target[0, 0, 1] -= 0.5  # the left toe 50 cm behind: beyond the bent leg's reach at this hip height
    out, out_rot = lock_legs(pose, rot, chains, target, np.array([[True, False]]))
    drop = pose[0, 0, 1] - out[0, 0, 1]
    assert 0.0 < drop <= MAX_PELVIS_DROP_M + 1e-12
    np.testing.assert_allclose(out[0, chains.toe[0]][::2], target[0, 0], atol=1e-9)
    np.testing.assert_allclose(out[0, chains.toe[1]], pose[0, chains.toe[1]], atol=1e-9)  # the free foot stays
    np.testing.assert_allclose(bone_lengths(out, skeleton), bone_lengths(pose, skeleton), atol=1e-9)
    local_pos = np.broadcast_to(skeleton.offsets, out.shape).copy()
    local_pos[:, 0] = out[:, 0]  # the lowered root
    _, fk_pos = forward_kinematics(skeleton.parents, world_to_local_rotations(skeleton.parents, out_rot), local_pos)
    np.testing.assert_allclose(fk_pos, out, atol=1e-9)
    # The same correction repeated with the drop given (as for another pose of the same step).
    again, _ = lock_legs(pose, rot, chains, target, np.array([[True, False]]), drop_m=np.array([[drop]]))
    np.testing.assert_allclose(again, out, atol=1e-12)
    # Farther than any drop allows: the foot stays on the ground, as close as the leg gets.
    target[0, 0, 1] -= 1.0
    out, _ = lock_legs(pose, None, chains, target, np.array([[True, False]]))
    assert out[0, chains.toe[0], 1] == pytest.approx(pose[0, chains.toe[0], 1], abs=1e-9)
    assert pose[0, 0, 1] - out[0, 0, 1] == pytest.approx(MAX_PELVIS_DROP_M)


def drawn_toes(locker, world_pos, contacts=None, predicted=None):
    """Step ``locker`` through poses (T, 1, J, 3) (with ``contacts`` or ``predicted`` ones (T, 1, 2)) -> the drawn
    left toe (T, 2) x, z and the body's drop (T,) m."""
    toe, drop = [], []
    for t in range(len(world_pos)):
        out, _ = locker.step(world_pos[t], contacts=None if contacts is None else contacts[t],
                             predicted=None if predicted is None else predicted[t])
        toe.append(out[0, locker.chains.toe[0]][::2])
        drop.append(world_pos[t, 0, 0, 1] - out[0, 0, 1])
    return np.stack(toe), np.array(drop)


@pytest.mark.parametrize("speed, slow_root_mps, reach_m, leash", [
    (0.3, 0.2, None, PLANTED_LEASH_M), (0.3, SLOW_ROOT_MPS, None, SLOW_LEASH_M), (0.3, SLOW_ROOT_MPS, 0.1, PLANTED_LEASH_M),
    (0.8, SLOW_ROOT_MPS, None, LEASH_M)])
def test_a_low_sliding_toe_is_held_from_where_it_was_then_trails_on_its_leash(speed, slow_root_mps, reach_m, leash):
    # The walker's toes stay on the floor and slide with the body at `speed`: 0.3 m/s (planted by the data's rule;
    # a body that slow stands or turns on the spot, its feet under it: the longer slow leash unless the threshold is
    # set below it, or the lock is farther from the root than the data's toes get, reach_m) or 0.8 m/s (faster than
    # the data's 0.6 m/s contact speed, which never locked it, slower than LOCK_SPEED_MPS).
    assert CONTACT_SPEED_MPS < 0.8 < LOCK_SPEED_MPS and SLOW_ROOT_MPS < 0.8
    skeleton, _, world_pos = walk(np.full(80, speed))
    chains = leg_chains(skeleton)
    locker = FootLocker(chains, 1, FPS, floor_of(world_pos[:, 0], chains), slow_root_mps=slow_root_mps, reach_m=reach_m)
    toe, drop = drawn_toes(locker, world_pos)
    raw = world_pos[:, 0, chains.toe[0]][:, ::2]  # (T, 2) the model's toe
    gap = np.linalg.norm(toe - raw, axis=-1)
    assert gap.max() <= leash + 1e-12 and np.linalg.norm(raw[-1] - raw[0]) > leash + 0.1
    if leash <= PLANTED_LEASH_M:
        assert (drop == 0).all(), "within the walker's reach"
    else:  # the slow leash holds the toe farther behind than this sliding walker's leg reaches: the body lowers
        assert 0.0 <= drop.min() and drop.max() <= MAX_PELVIS_DROP_M + 1e-12
    # The lock starts at step 1 where the toe was drawn at step 0: the model's step into the contact is not taken.
    first = int(np.argmax(np.linalg.norm(raw - raw[0], axis=-1) > leash + 1e-9))  # the model's toe past the leash
    np.testing.assert_allclose(toe[:first], np.broadcast_to(raw[0], toe[:first].shape), atol=1e-9,
                               err_msg="the toe stays where it was until the model's toe is a leash away")
    np.testing.assert_allclose(gap[first:], leash, atol=1e-9, err_msg="then it trails exactly the leash behind")
    step, raw_step = np.linalg.norm(np.diff(toe, axis=0), axis=-1), np.linalg.norm(np.diff(raw, axis=0), axis=-1)
    assert (step <= raw_step + 1e-9).all(), "a trailing toe never moves faster than the model's"

    # The data's own contact speed never locks the faster toe.
    if speed > CONTACT_SPEED_MPS:
        data_rule = FootLocker(chains, 1, FPS, floor_of(world_pos[:, 0], chains), speed_mps=CONTACT_SPEED_MPS)
        np.testing.assert_allclose(drawn_toes(data_rule, world_pos)[0], raw, atol=1e-12)


def test_a_release_eases_out_at_most_blend_out_step_faster_than_the_model_and_a_new_lock_starts_without_a_jump():
    # 2 s at 0.3 m/s (held, then trailing a planted leash behind), 10 steps at 1.2 m/s (faster than LOCK_SPEED_MPS:
    # the contact ends with the toe about 0.39 m from the model's), then slow again (a new contact).
    speeds = np.concatenate([np.full(60, 0.3), np.full(10, 1.2), np.full(20, 0.3)])
    skeleton, _, world_pos = walk(speeds)
    chains = leg_chains(skeleton)
    # The planted leash, not the slow one: a body sliding at 0.3 m/s stands for the slow leash's rule.
    locker = FootLocker(chains, 1, FPS, floor_of(world_pos[:, 0], chains), slow_root_mps=0.2)
    toe, weights = [], []
    for t in range(len(world_pos)):
        toe.append(locker.step(world_pos[t])[0][0, chains.toe[0]][::2])
        weights.append(locker.weight[0, 0])
    toe, weights = np.stack(toe), np.array(weights)
    raw = world_pos[:, 0, chains.toe[0]][:, ::2]
    end = 60  # the first fast step
    assert weights[end - 1] == 1.0 and weights[end] < 1.0
    offset = np.linalg.norm(toe[end - 1] - raw[end])  # the correction when it let go
    assert RELEASE_DISTANCE_M > offset > BLEND_OUT_FRAMES * BLEND_OUT_STEP_M
    steps = int(np.ceil(offset / BLEND_OUT_STEP_M))  # more steps than BLEND_OUT_FRAMES for a large correction
    np.testing.assert_allclose(weights[end:end + steps], 1.0 - np.arange(1, steps + 1) / steps, atol=1e-12)
    excess = np.linalg.norm(np.diff(toe, axis=0), axis=-1) - np.linalg.norm(np.diff(raw, axis=0), axis=-1)
    assert excess.max() <= BLEND_OUT_STEP_M + 1e-9, f"a jump of {excess.max() * 100:.1f} cm beyond the model's step"
    np.testing.assert_allclose(toe[end + steps - 1:end + 10], raw[end + steps - 1:end + 10], atol=1e-12,
                               err_msg="after the blend the toe is the model's")
    # The new contact locks where the toe was drawn the step before: it stops there, no jump.
    restart = end + 10
    assert weights[restart] == 1.0 and weights[restart - 1] == 0.0
    np.testing.assert_allclose(toe[restart], toe[restart - 1], atol=1e-12)


def test_the_body_lowers_and_rises_at_bounded_speeds_and_a_short_leg_moves_its_lock():
    # The left foot is held (contacts given) on a leash longer than the leg reaches while the body runs at 2 m/s:
    # the body lowers to reach it, at most DROP_SPEED_MPS, then rises back at most RISE_SPEED_MPS once let go.
    speeds = np.full(75, 2.0)
    skeleton, _, world_pos = walk(speeds)
    chains = leg_chains(skeleton)
    contacts = np.zeros((75, 1, 2), dtype=bool)
    contacts[1:20, 0, 0] = True
    locker = FootLocker(chains, 1, FPS, floor_of(world_pos[:, 0], chains), leash_m=1.0, planted_leash_m=1.0,
                        release_m=2.0)
    toe, drop = drawn_toes(locker, world_pos, contacts)
    rate = np.diff(drop)
    assert drop.max() == pytest.approx(MAX_PELVIS_DROP_M)
    assert rate.max() <= DROP_SPEED_MPS / FPS + 1e-12 and rate.max() == pytest.approx(DROP_SPEED_MPS / FPS)
    assert rate.min() >= -RISE_SPEED_MPS / FPS - 1e-12 and rate.min() == pytest.approx(-RISE_SPEED_MPS / FPS)
    assert drop[-1] == 0.0
    # While held, a leg the body has not been lowered enough for reaches toward its lock (the toe moves forward with
    # the body, never back: the lock follows it).
    assert (np.diff(toe[1:20, 1]) >= -1e-12).all() and toe[19, 1] - toe[1, 1] > 0.05


def test_stance_reach_is_how_far_the_datas_toes_get_from_the_root():
    skeleton, _, world_pos = walk(np.full(40, 1.0))
    chains = leg_chains(skeleton)
    poses = world_pos[:, 0]  # (T, J, 3)
    gap = np.linalg.norm(poses[:, chains.toe][..., ::2] - poses[:, None, 0, ::2], axis=-1)  # (T, 2)
    assert stance_reach(poses, chains, percentile=100.0) == pytest.approx(gap.max())
    assert stance_reach(poses, chains) <= gap.max() and stance_reach(poses[None], chains) == stance_reach(poses, chains)
