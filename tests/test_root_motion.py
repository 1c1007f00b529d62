"""mocap.root_motion: one root integration for numpy and torch; integration and its inverse agree."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mocap import root_motion as rm
from mocap.rotations import wrap_angle, yaw_matrix


def random_deltas(shape, seed=0) -> np.ndarray:
    """Root deltas (*shape, 3): steps of a few cm, turns of up to ~0.3 rad per frame."""
    rng = np.random.default_rng(seed)
    deltas = rng.normal(scale=0.05, size=(*shape, 3))
    deltas[..., 2] = rng.uniform(-0.3, 0.3, size=shape)
    return deltas


def test_conventions_yaw_zero_faces_plus_z_and_positive_yaw_turns_toward_plus_x():
    forward = np.array([0.0, 1.0])  # character-frame (x, z): straight ahead
    np.testing.assert_allclose(rm.char_to_world_xz(forward, np.array(0.0)), [0.0, 1.0])
    np.testing.assert_allclose(rm.char_to_world_xz(forward, np.array(np.pi / 2)), [1.0, 0.0], atol=1e-15)
    # The same rotation as mocap.rotations.yaw_matrix on 3D points, plus the root's ground position.
    rng = np.random.default_rng(1)
    points, yaw, root = rng.normal(size=(5, 7, 3)), rng.uniform(-4, 4, size=5), rng.normal(size=(5, 2))
    expected = np.einsum("tab,tkb->tka", yaw_matrix(yaw), points) + np.stack([root[:, 0], 0 * root[:, 0], root[:, 1]], -1)[:, None]
    np.testing.assert_allclose(rm.char_to_world(points, root, yaw), expected, atol=1e-12)


def test_numpy_and_torch_agree():
    deltas = random_deltas((3, 40))  # (B, T, 3)
    start_xz, start_yaw = np.array([[1.0, 2.0], [-3.0, 0.5], [0.0, 0.0]]), np.array([0.3, -2.0, 3.1])
    xz, yaw = rm.integrate_root(deltas, start_xz, start_yaw)
    xz_t, yaw_t = rm.integrate_root(torch.from_numpy(deltas), torch.from_numpy(start_xz), torch.from_numpy(start_yaw))
    assert isinstance(xz_t, torch.Tensor) and xz_t.dtype == torch.float64
    np.testing.assert_allclose(xz_t.numpy(), xz, atol=1e-12)
    np.testing.assert_allclose(yaw_t.numpy(), yaw, atol=1e-12)

    points = np.random.default_rng(2).normal(size=(3, 40, 5, 3))  # (B, T, K, 3)
    world = rm.char_to_world(points, xz, yaw)
    np.testing.assert_allclose(rm.char_to_world(torch.from_numpy(points), xz_t, yaw_t).numpy(), world, atol=1e-12)
    np.testing.assert_allclose(rm.world_to_char(torch.from_numpy(world), xz_t, yaw_t).numpy(),
                               rm.world_to_char(world, xz, yaw), atol=1e-12)
    np.testing.assert_allclose(rm.root_deltas_from_world(xz_t, yaw_t).numpy(), rm.root_deltas_from_world(xz, yaw),
                               atol=1e-12)
    step_xz, step_yaw = rm.step_root(xz[:, 0], yaw[:, 0], deltas[:, 1])
    step_xz_t, step_yaw_t = rm.step_root(xz_t[:, 0], yaw_t[:, 0], torch.from_numpy(deltas[:, 1]))
    np.testing.assert_allclose(step_xz_t.numpy(), step_xz, atol=1e-12)
    np.testing.assert_allclose(step_yaw_t.numpy(), step_yaw, atol=1e-12)


def test_torch_keeps_dtype_and_needs_no_start():
    deltas = torch.from_numpy(random_deltas((2, 10))).float()
    xz, yaw = rm.integrate_root(deltas)
    assert xz.dtype == yaw.dtype == torch.float32 and xz.shape == (2, 10, 2) and yaw.shape == (2, 10)
    assert torch.equal(xz[:, 0], torch.zeros(2, 2)) and torch.equal(yaw[:, 0], torch.zeros(2))


def test_integrate_then_invert_is_the_identity():
    deltas = random_deltas((4, 50), seed=3)  # (B, T, 3); frame 0's delta is not integrated
    xz, yaw = rm.integrate_root(deltas, np.array([0.5, -1.0]), 2.5)
    back = rm.root_deltas_from_world(xz, yaw)
    np.testing.assert_allclose(back[:, 1:], deltas[:, 1:], atol=1e-12)
    np.testing.assert_array_equal(back[:, 0], back[:, 1])  # no frame -1: frame 0 repeats frame 1


def test_invert_then_integrate_reproduces_the_path():
    rng = np.random.default_rng(4)
    xz = np.cumsum(rng.normal(scale=0.05, size=(60, 2)), axis=0)  # (T, 2)
    yaw = np.cumsum(rng.uniform(-0.3, 0.3, size=60)) + 10.0  # unwrapped, far from [-pi, pi)
    deltas = rm.root_deltas_from_world(xz, yaw)
    assert np.all(np.abs(deltas[:, 2]) <= np.pi)
    xz2, yaw2 = rm.integrate_root(deltas, xz[0], yaw[0])
    np.testing.assert_allclose(xz2, xz, atol=1e-12)
    np.testing.assert_allclose(wrap_angle(yaw2 - yaw), 0.0, atol=1e-12)


def test_one_step_is_a_one_frame_integration():
    deltas = random_deltas((6, 2), seed=5)  # (B, 2, 3): frame 0 and the step to frame 1
    start_xz, start_yaw = np.random.default_rng(6).normal(size=(6, 2)), np.linspace(-3, 3, 6)
    xz, yaw = rm.integrate_root(deltas, start_xz, start_yaw)
    step_xz, step_yaw = rm.step_root(start_xz, start_yaw, deltas[:, 1])
    np.testing.assert_allclose(step_xz, xz[:, 1], atol=1e-15)
    np.testing.assert_allclose(step_yaw, yaw[:, 1], atol=1e-15)
    # Stepping T-1 times follows the integration over T frames.
    long = random_deltas((30,), seed=7)
    xz_t, yaw_t = rm.integrate_root(long, np.array([1.0, 1.0]), 0.5)
    at, facing = np.array([1.0, 1.0]), np.array(0.5)
    for t in range(1, 30):
        at, facing = rm.step_root(at, facing, long[t])
        np.testing.assert_allclose(at, xz_t[t], atol=1e-12)
        np.testing.assert_allclose(facing, yaw_t[t], atol=1e-12)


def test_step_reads_only_the_root_delta_of_a_whole_frame():
    frame = np.concatenate([random_deltas((4,), seed=8), np.full((4, 12), 7.0)], -1)  # (B, 3 + 12 J), J = 1
    a = rm.step_root(np.zeros((4, 2)), np.zeros(4), frame)
    b = rm.step_root(np.zeros((4, 2)), np.zeros(4), frame[:, :3])
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])


@pytest.mark.parametrize("as_torch", [False, True])
def test_char_and_world_are_inverse_and_a_cached_rotation_gives_the_same_bits(as_torch):
    rng = np.random.default_rng(9)
    points, xz, yaw = rng.normal(size=(8, 5, 3)), rng.normal(size=(8, 2)), rng.uniform(-7, 7, size=8)
    if as_torch:
        points, xz, yaw = (torch.from_numpy(x).float() for x in (points, xz, yaw))
    world = rm.char_to_world(points, xz, yaw)
    back = rm.world_to_char(world, xz, yaw)
    np.testing.assert_allclose(np.asarray(back), np.asarray(points), atol=1e-5 if as_torch else 1e-12)
    rotation = rm.ground_rotation(yaw)  # (B, 2, 2)
    assert (rm.char_to_world(points, xz, rotation=rotation) == world).all()
    assert (rm.world_to_char_xz(xz, yaw) == rm.world_to_char_xz(xz, rotation=rotation)).all()
    np.testing.assert_allclose(np.asarray(rm.char_to_world_xz(rm.world_to_char_xz(xz, yaw), yaw)), np.asarray(xz),
                               atol=1e-5 if as_torch else 1e-12)


def test_one_frame_has_a_zero_delta():
    deltas = rm.root_deltas_from_world(np.array([[1.0, 2.0]]), np.array([0.5]))
    np.testing.assert_array_equal(deltas, np.zeros((1, 3)))
