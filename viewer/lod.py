"""Which characters of a crowd are drawn, and how finely: frustum culling and level of detail by screen size.

Pure numpy, once per frame over all N characters of a :class:`viewer.scene.Characters` group (about a
millisecond for 1,000). Each character is bounded by a sphere around its joints, grown by how far its shadow
reaches, so a character just outside the view whose shadow falls inside it is still drawn. Its size on screen
is the extent of its joints projected at its depth.

Levels (what :mod:`viewer.renderer` draws for each):

- ``near``: the exact capsule body, ray-cast, with its exact shadow: the single-character look. Characters at
  least ``near_pixels`` tall, at most ``max_near`` of them (the nearest): a camera inside a dense crowd must not
  pay for hundreds of exact bodies.
- ``mid``: every capsule of the body as a camera-facing quad (impostors, :mod:`viewer.crowd`), with a blob
  shadow: characters at least ``mid_pixels`` tall that are not near.
- ``far``: seven impostors (torso, head, shoulders, straight limbs: :mod:`viewer.impostors`), a blob shadow.
- ``tiny``: under ``tiny_pixels`` tall: the torso, head and legs only (arms are a pixel wide there), a blob
  shadow.
- culled: the bounding sphere lies outside the view frustum.

Every list runs nearest first, so depth testing rejects hidden impostors before they are shaded.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from viewer.camera import Camera
from viewer.lighting import shadow_reach

NEAR_PIXELS = 200.0  # exact bodies from this screen height up (the follow camera shows its character ~270 px)
MAX_NEAR = 8
MID_PIXELS = 110.0  # the app's crowd camera shows its crowd 75-100 px tall: far (7 capsules), the cost 1,000 allow
TINY_PIXELS = 28.0
BODY_MARGIN = 0.3  # m beyond the joints: capsule radii, a head drawn beyond a leaf neck joint


@dataclass(frozen=True)
class CrowdLod:
    """Character indices (int64) by level, each nearest first; ``culled`` counts the rest."""

    near: np.ndarray
    mid: np.ndarray
    far: np.ndarray
    tiny: np.ndarray
    culled: int


def frustum_planes(view_projection: np.ndarray) -> np.ndarray:
    """Clip-from-world (4, 4) -> the 6 frustum planes (6, 4) (unit normal pointing inside, offset).

    A point p is inside plane (n, d) when n . p + d >= 0 (Gribb & Hartmann: rows of the clip matrix).
    """
    m = np.asarray(view_projection, dtype=np.float64)
    planes = np.stack([m[3] + m[0], m[3] - m[0], m[3] + m[1], m[3] - m[1], m[3] + m[2], m[3] - m[2]])
    return planes / np.linalg.norm(planes[:, :3], axis=1, keepdims=True)


def bounding_spheres(positions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Poses (N, J, 3) -> (centres (N, 3), radii of the body (N,), radii with the shadow's reach (N,)) in metres."""
    # Reduced over a contiguous last axis: numpy takes 3-4x longer over the middle axis of (N, J, 3).
    by_axis = np.ascontiguousarray(np.swapaxes(positions, 1, 2))  # (N, 3, J)
    low, high = by_axis.min(axis=2), by_axis.max(axis=2)  # (N, 3)
    centre = 0.5 * (low + high)
    body = 0.5 * np.linalg.norm(high - low, axis=1) + BODY_MARGIN
    return centre, body, body + shadow_reach(high[:, 1] + BODY_MARGIN)


def choose_lod(positions: np.ndarray, camera: Camera, width: int, height: int, *,
               near_pixels: float = NEAR_PIXELS, max_near: int = MAX_NEAR, mid_pixels: float = MID_PIXELS,
               tiny_pixels: float = TINY_PIXELS, cull: bool = True) -> CrowdLod:
    """Cull (unless ``cull`` is False) and sort the characters of poses (N, J, 3) seen by ``camera`` in a
    ``width`` x ``height`` view."""
    clip = camera.view_projection(width, height)
    centre, body, reach = bounding_spheres(np.asarray(positions, dtype=np.float64))
    planes = frustum_planes(clip)
    # Small products by broadcasting, not matmul: BLAS would wake its thread pool, which then spins on the
    # cores the software rasteriser needs.
    inside = (centre[:, None, :] * planes[None, :, :3]).sum(-1) + planes[:, 3] >= -reach[:, None]  # (N, 6)
    visible = np.flatnonzero(inside.all(axis=1)) if cull else np.arange(len(centre))
    depth = (centre[visible] * clip[3, :3]).sum(-1) + clip[3, 3]  # clip w: distance ahead of the eye
    order = np.argsort(depth, kind="stable")
    visible, depth, body = visible[order], depth[order], body[visible[order]]
    focal_pixels = 0.5 * height / np.tan(0.5 * camera.fov_y)
    # Screen height of the body (its sphere's diameter less the margin). A body reaching the eye's plane is as
    # near as it gets; one wholly behind it shows at most its shadow: drawn at the cheapest level.
    pixels = 2.0 * (body - BODY_MARGIN) * focal_pixels / np.maximum(depth, camera.near)
    pixels = np.where(depth - body < camera.near, np.inf, pixels)
    pixels = np.where(depth + body < camera.near, 0.0, pixels)
    near = visible[pixels >= near_pixels][: int(max_near)]
    rest = np.isin(visible, near, invert=True)
    return CrowdLod(near=near, mid=visible[rest & (pixels >= mid_pixels)],
                    far=visible[rest & (pixels < mid_pixels) & (pixels >= tiny_pixels)],
                    tiny=visible[rest & (pixels < tiny_pixels)], culled=len(positions) - len(visible))
