"""Ground-plane geometry in torch for batches of characters (pure functions).

Conventions are the project's (see :mod:`mocap.rotations`): y-up, metres, radians; a 2-vector is
``(x, z)`` on the ground; yaw 0 faces +z and a positive yaw turns the facing from +z toward +x
(the character's left). ``R_y(yaw)`` maps the character frame to the world, so a character-frame
vector ``(x, z)`` is ``(c x + s z, -s x + c z)`` in the world, ``c, s = cos(yaw), sin(yaw)``.
"""

from __future__ import annotations

import torch


def heading_vector(yaw: torch.Tensor) -> torch.Tensor:
    """Yaw (...) -> unit facing direction (..., 2) on the ground: (sin yaw, cos yaw)."""
    return torch.stack((torch.sin(yaw), torch.cos(yaw)), dim=-1)


def toward(origin: torch.Tensor, goal: torch.Tensor, fallback: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Unit ground direction (B, 2) from ``origin`` (B, 2) to ``goal`` (B, 2), ``fallback`` (B, 2) where they
    coincide, and the distance (B,) m."""
    offset = goal - origin
    distance = torch.linalg.vector_norm(offset, dim=1)
    direction = torch.where((distance > 1e-6)[:, None], offset / distance.clamp_min(1e-6)[:, None], fallback)
    return direction, distance


def rot6d_to_matrix(x: torch.Tensor) -> torch.Tensor:
    """(..., 6) two columns -> (..., 3, 3) rotation by Gram-Schmidt (torch twin of mocap.rotations)."""
    b1 = torch.nn.functional.normalize(x[..., 0:3], dim=-1, eps=1e-8)
    a2 = x[..., 3:6]
    b2 = torch.nn.functional.normalize(a2 - (b1 * a2).sum(-1, keepdim=True) * b1, dim=-1, eps=1e-8)
    b3 = torch.linalg.cross(b1, b2, dim=-1)
    return torch.stack((b1, b2, b3), dim=-1)


def yaw_matrix(yaw: torch.Tensor) -> torch.Tensor:
    """Rotation about +y, yaw (...) -> (..., 3, 3)."""
    c, s = torch.cos(yaw), torch.sin(yaw)
    one, zero = torch.ones_like(yaw), torch.zeros_like(yaw)
    rows = ((c, zero, s), (zero, one, zero), (-s, zero, c))
    return torch.stack([torch.stack(r, dim=-1) for r in rows], dim=-2)


def point_box_distance(points: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
    """Ground distance from points (B, 2) to axis-aligned rectangles (W, 4) ``[xmin, xmax, zmin, zmax]`` -> (B, W).

    Zero for a point inside a rectangle.
    """
    x, z = points[:, None, 0], points[:, None, 1]  # (B, 1)
    dx = torch.clamp(torch.maximum(boxes[:, 0] - x, x - boxes[:, 1]), min=0.0)  # (B, W)
    dz = torch.clamp(torch.maximum(boxes[:, 2] - z, z - boxes[:, 3]), min=0.0)
    return torch.sqrt(dx * dx + dz * dz)
