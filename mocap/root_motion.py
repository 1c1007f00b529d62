"""Root motion on the ground: the one implementation of integrating root deltas and of placing character-frame
points in the world (and back).

Pure functions over any leading dimensions ``...``, for numpy arrays and torch tensors alike: each function
works in the type of its first argument (dtype and device included), so the offline tools (numpy, float64),
the evaluation metrics and the batched environments (torch, float32, any device) share one definition.

Conventions (:mod:`mocap.rotations`, :mod:`mocap.pose_layout`): y-up, lengths in metres, angles in radians.
A ground vector is ``(x, z)``. Yaw 0 faces +z; a positive yaw turns the facing from +z toward +x. Variable
names state the space:

- ``world_``: the world frame;
- ``char_``: the character frame at facing ``yaw``: origin the root projected on the ground, +z the facing,
  +y up. A character-frame ground vector ``v`` is ``R v`` in the world, ``R = ground_rotation(yaw)``
  ``= [[cos, sin], [-sin, cos]]`` (``R_y(yaw)`` restricted to (x, z)).

A root delta is the first three features of a frame (``mocap.pose_layout``): ``(dx, dz)`` metres, the root's
ground displacement from the previous frame expressed in the *previous* frame's character frame, then
``dyaw`` radians, the change of facing. Integration never wraps yaw (the sum of the turns); a caller that
keeps yaw in (-pi, pi] wraps it itself.

Every function also accepts ``rotation=ground_rotation(yaw)`` where the caller caches it (the environments
do): it saves the two trigonometric calls and gives the same numbers.
"""

from __future__ import annotations

import sys

import numpy as np

from mocap.pose_layout import ROOT_DXDZ, ROOT_DYAW
from mocap.rotations import wrap_angle


class _NumpyOps:
    """The few array functions root motion needs, under one spelling (numpy and torch differ in names and in
    ``axis`` / ``dim``)."""

    cos, sin, zeros_like = np.cos, np.sin, np.zeros_like

    @staticmethod
    def cat(arrays, axis: int):
        return np.concatenate(arrays, axis=axis)

    @staticmethod
    def stack(arrays, axis: int):
        return np.stack(arrays, axis=axis)

    @staticmethod
    def cumsum(array, axis: int):
        return np.cumsum(array, axis=axis)

    @staticmethod
    def like(value, reference):
        return np.asarray(value, dtype=reference.dtype)


class _TorchOps:
    @staticmethod
    def cos(x):
        return sys.modules["torch"].cos(x)

    @staticmethod
    def sin(x):
        return sys.modules["torch"].sin(x)

    @staticmethod
    def zeros_like(x):
        return sys.modules["torch"].zeros_like(x)

    @staticmethod
    def cat(arrays, axis: int):
        return sys.modules["torch"].cat(arrays, dim=axis)

    @staticmethod
    def stack(arrays, axis: int):
        return sys.modules["torch"].stack(arrays, dim=axis)

    @staticmethod
    def cumsum(array, axis: int):
        return sys.modules["torch"].cumsum(array, dim=axis)

    @staticmethod
    def like(value, reference):
        return sys.modules["torch"].as_tensor(value, dtype=reference.dtype, device=reference.device)


def _ops(x):
    """numpy or torch functions for ``x``; torch is only looked at when the caller already imported it."""
    torch = sys.modules.get("torch")
    return _TorchOps if torch is not None and isinstance(x, torch.Tensor) else _NumpyOps


def ground_rotation(yaw):
    """Yaw (...) radians -> (..., 2, 2) ``[[cos, sin], [-sin, cos]]``: character-frame ground vectors to the world."""
    ops = _ops(yaw)
    c, s = ops.cos(yaw), ops.sin(yaw)
    return ops.stack((c, s, -s, c), -1).reshape(*c.shape, 2, 2)  # (..., 4) -> (..., 2, 2)


def char_to_world_xz(char_xz, yaw=None, *, rotation=None):
    """Ground vectors (..., 2) in the character frame at ``yaw`` (...) -> world (..., 2); rotation only."""
    rotation = ground_rotation(yaw) if rotation is None else rotation  # (..., 2, 2)
    return (rotation @ char_xz[..., None])[..., 0]  # (..., 2, 1) -> (..., 2)


def world_to_char_xz(world_xz, yaw=None, *, rotation=None):
    """World ground vectors (..., 2) -> the character frame at ``yaw`` (...) (..., 2); rotation only."""
    rotation = ground_rotation(yaw) if rotation is None else rotation  # (..., 2, 2)
    return (world_xz[..., None, :] @ rotation)[..., 0, :]  # row vector times R = R^T v: (..., 1, 2) -> (..., 2)


def char_to_world(char_points, world_xz, yaw=None, *, rotation=None):
    """Points (..., K, 3) in the character frame of a root at ``world_xz`` (..., 2) m facing ``yaw`` (...) ->
    world points (..., K, 3) m: turned about +y by yaw, then moved by the root's ground position."""
    ops = _ops(char_points)
    rotation = ground_rotation(yaw) if rotation is None else rotation  # (..., 2, 2)
    # (..., K, 2) @ R^T: each row vector v becomes (R v)^T; ::2 picks (x, z) of (x, y, z).
    xz = char_points[..., ::2] @ rotation.swapaxes(-1, -2) + world_xz[..., None, :]  # (..., K, 2)
    return ops.stack((xz[..., 0], char_points[..., 1], xz[..., 1]), -1)  # (..., K, 3)


def world_to_char(world_points, world_xz, yaw=None, *, rotation=None):
    """World points (..., K, 3) m -> the character frame (..., K, 3) of a root at ``world_xz`` (..., 2) facing
    ``yaw`` (...). With ``world_xz`` zero it turns directions (velocities) instead of points."""
    ops = _ops(world_points)
    rotation = ground_rotation(yaw) if rotation is None else rotation  # (..., 2, 2)
    xz = (world_points[..., ::2] - world_xz[..., None, :]) @ rotation  # (..., K, 2): row vectors times R = R^T v
    return ops.stack((xz[..., 0], world_points[..., 1], xz[..., 1]), -1)  # (..., K, 3)


def step_root(world_xz, yaw, root_delta, *, rotation=None):
    """One frame of root motion: root at ``world_xz`` (..., 2) m facing ``yaw`` (...) rad, moved by the next
    frame's ``root_delta`` (..., 3) -> (world_xz (..., 2), yaw (...)). Yaw is not wrapped.

    ``root_delta`` may also be the whole next frame (..., D): only its first three features are read (saves a
    slice in the environments' per-step loop).
    """
    rotation = ground_rotation(yaw) if rotation is None else rotation  # (..., 2, 2)
    world_xz = world_xz + (rotation @ root_delta[..., ROOT_DXDZ, None])[..., 0]  # (..., 2, 1) -> (..., 2)
    return world_xz, yaw + root_delta[..., ROOT_DYAW]


def integrate_root(root_deltas, start_xz=None, start_yaw=None):
    """Root ground positions (..., T, 2) m and facings (..., T) rad of frames with ``root_deltas`` (..., T, 3).

    Frame 0 sits at ``start_xz`` (..., 2) facing ``start_yaw`` (...) (default: the origin, yaw 0); frame t's
    delta moves the root from frame t-1 to t, so frame 0's delta is ignored. The same as :func:`step_root`
    T-1 times, with the sums taken as cumulative sums.
    """
    ops = _ops(root_deltas)
    delta = root_deltas[..., 1:, :]  # (..., T-1, 3)
    turned = ops.cumsum(delta[..., ROOT_DYAW], -1)  # (..., T-1)
    yaw = ops.cat((ops.zeros_like(root_deltas[..., :1, ROOT_DYAW]), turned), -1)  # (..., T)
    if start_yaw is not None:
        yaw = yaw + ops.like(start_yaw, yaw)[..., None]
    step = char_to_world_xz(delta[..., ROOT_DXDZ], yaw[..., :-1])  # (..., T-1, 2) world displacements
    origin = ops.zeros_like(root_deltas[..., :1, ROOT_DXDZ])  # (..., 1, 2)
    world_xz = ops.cat((origin, ops.cumsum(step, -2)), -2)  # (..., T, 2)
    if start_xz is not None:
        world_xz = world_xz + ops.like(start_xz, world_xz)[..., None, :]
    return world_xz, yaw


def root_deltas_from_world(world_xz, yaw):
    """Inverse of :func:`integrate_root`: root ground positions (..., T, 2) m and facings (..., T) rad ->
    root deltas (..., T, 3). dyaw is wrapped to [-pi, pi). Frame 0 has no previous frame: its delta repeats
    frame 1's (zeros when T = 1)."""
    ops = _ops(world_xz)
    if world_xz.shape[-2] < 2:
        return ops.cat((ops.zeros_like(world_xz), ops.zeros_like(yaw)[..., None]), -1)  # (..., T, 3)
    step = world_xz[..., 1:, :] - world_xz[..., :-1, :]  # (..., T-1, 2) world displacement t-1 -> t
    char_step = world_to_char_xz(step, yaw[..., :-1])  # in the previous frame's character frame
    turn = wrap_angle(yaw[..., 1:] - yaw[..., :-1])  # (..., T-1)
    deltas = ops.cat((char_step, turn[..., None]), -1)  # (..., T-1, 3)
    return ops.cat((deltas[..., :1, :], deltas), -2)  # (..., T, 3)
