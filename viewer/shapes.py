"""Unit meshes and per-instance data for instanced drawing (pure numpy, no GL).

The viewer draws two kinds of solids, both as instances of the **unit box** mesh (corners at +-1,
flat face normals, counter-clockwise seen from outside):

- **boxes** (walls, obstacles): the box scaled by its half extents, turned about +y and moved;
- **capsules** (bones, spheres = zero-length capsules, polyline tubes): the box becomes a *proxy*, the
  capsule's tight oriented bounding box, and the fragment shader ray-casts the exact capsule inside it
  (:func:`capsule_ray_hits` is the same maths in numpy). 12 triangles per capsule at any distance
  and perfectly round shapes: software GL (llvmpipe) is bound by triangle count, and a crowd of
  256 characters is ~5,000 capsules.

Instances are rows of :data:`INSTANCE_FLOATS` float32: the model matrix column by column (16, the layout
OpenGL expects), endpoint a and the radius (4), endpoint b and a pad (4), colour RGBA (4). Boxes leave
the endpoint fields zero. Far characters' capsules (impostors, :mod:`viewer.crowd`) need no proxy: their rows
are :data:`IMPOSTOR_FLOATS` floats, endpoint a and the radius, endpoint b and a pad, colour RGB and a pad.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mocap.rotations import yaw_matrix
from viewer.impostors import ImpostorPlan, impostor_capsules

INSTANCE_FLOATS = 28
IMPOSTOR_FLOATS = 12  # per far capsule: endpoint a, radius; endpoint b, pad; colour RGB, pad
UP = np.array([0.0, 1.0, 0.0])


@dataclass(frozen=True)
class Mesh:
    """Indexed triangles: positions (V, 3), normals (V, 3), indices (I,) uint32, CCW seen from outside."""

    positions: np.ndarray
    normals: np.ndarray
    indices: np.ndarray

    def vertex_array(self) -> np.ndarray:
        """(V, 6) float32 interleaved position, normal: the layout the renderer uploads."""
        return np.concatenate([self.positions, self.normals], axis=1).astype(np.float32)

    @property
    def triangle_count(self) -> int:
        return len(self.indices) // 3


def box_mesh() -> Mesh:
    """Cube with corners at +-1, 4 vertices per face so each face has its own normal."""
    positions, normals, indices = [], [], []
    for axis in range(3):
        for sign in (1.0, -1.0):
            n = np.zeros(3)
            n[axis] = sign
            u = np.zeros(3)
            u[(axis + 1) % 3] = 1.0
            v = np.cross(n, u)  # (u, v, n) right-handed: u x v = n, so u, v run CCW seen from outside
            base = len(positions)
            for cu, cv in ((-1, -1), (1, -1), (1, 1), (-1, 1)):
                positions.append(n + cu * u + cv * v)
                normals.append(n)
            indices += [base, base + 1, base + 2, base, base + 2, base + 3]
    pos = np.array(positions)
    return Mesh(pos, np.array(normals), np.array(indices, dtype=np.uint32))


def ground_quad(center_xz: tuple[float, float], half_size: float) -> np.ndarray:
    """(4, 3) float32 corners of a y = 0 square, counter-clockwise seen from above (+y)."""
    x, z = center_xz
    h = half_size
    return np.array([[x - h, 0, z - h], [x - h, 0, z + h], [x + h, 0, z + h], [x + h, 0, z - h]], dtype=np.float32)


def _perpendicular_frames(axis: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Unit vectors u, w (K, 3) with (u, axis, w) a right-handed orthonormal frame (columns of a rotation)."""
    helper = np.where(np.abs(axis[:, :1]) < 0.9, [[1.0, 0.0, 0.0]], [[0.0, 0.0, 1.0]])  # (K, 3)
    w = np.cross(helper, axis)
    w /= np.linalg.norm(w, axis=-1, keepdims=True)
    u = np.cross(axis, w)
    return u, w


def capsule_proxies(endpoints: np.ndarray, radii: np.ndarray) -> np.ndarray:
    """Capsules between endpoints (K, 2, 3) with radii (K,) -> proxy box model matrices (K, 4, 4).

    The unit box maps onto the capsule's bounding box: centred between the endpoints, half extents
    r x (half length + r) x r, its y axis along the capsule (up for a zero-length capsule, a sphere).
    """
    endpoints = np.asarray(endpoints, dtype=np.float64).reshape(-1, 2, 3)
    radii = np.broadcast_to(np.asarray(radii, dtype=np.float64), endpoints.shape[:1])
    a, b = endpoints[:, 0], endpoints[:, 1]
    length = np.linalg.norm(b - a, axis=-1, keepdims=True)  # (K, 1)
    axis = np.where(length > 1e-9, (b - a) / np.maximum(length, 1e-12), UP)
    u, w = _perpendicular_frames(axis)
    model = np.zeros((len(a), 4, 4))
    model[:, :3, 0] = u * radii[:, None]
    model[:, :3, 1] = axis * (0.5 * length + radii[:, None])
    model[:, :3, 2] = w * radii[:, None]
    model[:, :3, 3] = 0.5 * (a + b)
    model[:, 3, 3] = 1.0
    return model


def box_instances(centers: np.ndarray, half_extents: np.ndarray, yaws: np.ndarray) -> np.ndarray:
    """Boxes turned by yaw about +y (yaw 0: box axes = world axes) -> model matrices (K, 4, 4)."""
    centers = np.asarray(centers, dtype=np.float64).reshape(-1, 3)
    half = np.asarray(half_extents, dtype=np.float64).reshape(-1, 3)
    yaws = np.broadcast_to(np.asarray(yaws, dtype=np.float64), centers.shape[:1])
    model = np.zeros((len(centers), 4, 4))
    model[:, :3, :3] = yaw_matrix(yaws) * half[:, None, :]  # rotate the scaled axes: R @ diag(half)
    model[:, :3, 3] = centers
    model[:, 3, 3] = 1.0
    return model


def capsule_rows(endpoints: np.ndarray, radii: np.ndarray, rgba: np.ndarray) -> np.ndarray:
    """Capsules (K, 2, 3), radii (K,), colours (K, 4) -> instance rows (K, INSTANCE_FLOATS) float32."""
    endpoints = np.asarray(endpoints, dtype=np.float64).reshape(-1, 2, 3)
    k = len(endpoints)
    out = np.zeros((k, INSTANCE_FLOATS), dtype=np.float32)
    out[:, :16] = capsule_proxies(endpoints, radii).transpose(0, 2, 1).reshape(k, 16)  # column-major
    out[:, 16:19] = endpoints[:, 0]
    out[:, 19] = radii
    out[:, 20:23] = endpoints[:, 1]
    out[:, 24:28] = rgba
    return out


def impostor_rows(plan: ImpostorPlan, positions: np.ndarray, rgba: np.ndarray) -> np.ndarray:
    """Poses (N, J, 3), colours (N, 4) -> instance rows (N C, IMPOSTOR_FLOATS) float32 of the plan's C capsules,
    character by character."""
    ends, radii = impostor_capsules(plan, positions)  # (N, C, 2, 3), (N, C)
    rows = np.zeros((len(positions), plan.count, IMPOSTOR_FLOATS), dtype=np.float32)
    rows[..., 0:3] = ends[:, :, 0]
    rows[..., 3] = radii
    rows[..., 4:7] = ends[:, :, 1]
    rows[..., 8:11] = np.clip(rgba[:, None, :3] * plan.shade[None, :, None], 0.0, 1.0)
    return rows.reshape(-1, IMPOSTOR_FLOATS)  # (N, C, F) -> (N C, F)


def box_rows(model: np.ndarray, rgba: np.ndarray) -> np.ndarray:
    """Box model matrices (K, 4, 4), colours (K, 4) -> instance rows (K, INSTANCE_FLOATS) float32."""
    k = len(model)
    out = np.zeros((k, INSTANCE_FLOATS), dtype=np.float32)
    out[:, :16] = model.transpose(0, 2, 1).reshape(k, 16)
    out[:, 24:28] = rgba
    return out


def capsule_ray_hits(origins: np.ndarray, directions: np.ndarray, a: np.ndarray, b: np.ndarray,
                     radius: float) -> np.ndarray:
    """Distance (K,) along unit rays to the first hit of one capsule [a, b] (radius), inf for a miss.

    The capsule is the union of the finite cylinder and two end spheres, so its first hit is the nearest
    of: the infinite cylinder's entry point if it falls between the ends, and each sphere's entry point.
    This mirrors the fragment shader; the renderer does it on the GPU.
    """
    o = np.asarray(origins, dtype=np.float64).reshape(-1, 3)
    d = np.asarray(directions, dtype=np.float64).reshape(-1, 3)
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    best = np.full(len(o), np.inf)
    length = np.linalg.norm(b - a)
    if length > 1e-9:
        u = (b - a) / length
        oa = o - a
        du, oau = d @ u, oa @ u
        qa = 1.0 - du * du  # |d_perp|^2; 0 when the ray runs along the axis
        qb = np.einsum("kc,kc->k", oa, d) - oau * du
        qc = np.einsum("kc,kc->k", oa, oa) - oau * oau - radius * radius
        disc = qb * qb - qa * qc
        ok = (qa > 1e-12) & (disc >= 0)
        t = np.where(ok, (-qb - np.sqrt(np.where(ok, disc, 0.0))) / np.where(ok, qa, 1.0), np.inf)
        s = oau + np.where(ok, t, 0.0) * du  # a miss (t = inf) along a perpendicular axis (du = 0) is not nan
        best = np.where(ok & (t > 0) & (s >= 0) & (s <= length), t, best)
    for c in (a, b):
        oc = o - c
        hb = np.einsum("kc,kc->k", oc, d)
        h = hb * hb - (np.einsum("kc,kc->k", oc, oc) - radius * radius)
        t = -hb - np.sqrt(np.maximum(h, 0.0))
        best = np.where((h >= 0) & (t > 0) & (t < best), t, best)
    return best
