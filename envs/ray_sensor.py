"""RaySensor: static boxes in a pybullet DIRECT client, and batched ray casts against them.

All rays of a step go to one ``rayTestBatch`` call (pybullet refuses batches of 16,384 rays or more, so
larger casts are split into calls of ``MAX_RAYS_PER_CALL``). A ray reports the fraction of its length at
the first hit, 1.0 when it hits nothing. A ray that starts inside a box does not see that box (Bullet's
convention).
"""

from __future__ import annotations

import numpy as np

MAX_RAYS_PER_CALL = 8192


class RaySensor:
    """Owns one pybullet physics client holding fixed boxes; ``close()`` disconnects it."""

    def __init__(self, centers: np.ndarray, half_extents: np.ndarray):
        import pybullet  # imported here so that importing the environments stays light

        self._pb = pybullet
        centers = np.asarray(centers, dtype=np.float64).reshape(-1, 3)
        half_extents = np.asarray(half_extents, dtype=np.float64).reshape(-1, 3)
        if centers.shape != half_extents.shape:
            raise ValueError(f"box centers {centers.shape} and half extents {half_extents.shape} disagree")
        self.client = pybullet.connect(pybullet.DIRECT)
        if self.client < 0:
            raise RuntimeError("pybullet could not open a DIRECT physics client")
        self.bodies = []
        for center, half in zip(centers, half_extents, strict=True):
            shape = pybullet.createCollisionShape(pybullet.GEOM_BOX, halfExtents=half.tolist(),
                                                  physicsClientId=self.client)
            self.bodies.append(pybullet.createMultiBody(baseMass=0.0, baseCollisionShapeIndex=shape,
                                                        basePosition=center.tolist(), physicsClientId=self.client))

    def cast(self, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
        """Rays from ``starts`` (R, 3) to ``ends`` (R, 3), world metres -> hit fractions (R,) in [0, 1]."""
        if self.client is None:
            raise RuntimeError("the ray sensor is closed (its environment was closed)")
        starts = np.ascontiguousarray(starts, dtype=np.float64).reshape(-1, 3)
        ends = np.ascontiguousarray(ends, dtype=np.float64).reshape(-1, 3)
        out = np.empty(len(starts))
        for lo in range(0, len(starts), MAX_RAYS_PER_CALL):
            hi = min(lo + MAX_RAYS_PER_CALL, len(starts))
            hits = self._pb.rayTestBatch(starts[lo:hi], ends[lo:hi], physicsClientId=self.client)
            # pybullet answers with one tuple per ray: (body, link, fraction, position, normal).
            out[lo:hi] = np.fromiter((hit[2] for hit in hits), dtype=np.float64, count=hi - lo)
        return out

    def close(self) -> None:
        if self.client is not None:
            if self._pb.isConnected(physicsClientId=self.client):
                self._pb.disconnect(physicsClientId=self.client)
            self.client = None

    def __del__(self):
        try:
            self.close()
        except Exception:  # noqa: BLE001 - interpreter shutdown may have torn pybullet down already
            pass
