"""What to draw in one frame, as plain data: the viewer knows nothing about tasks or environments.

Everything is y-up, metres, world coordinates; colours are RGBA floats in [0, 1] (an RGB triple gets
alpha 1). Items with alpha < 1 are drawn translucent after the opaque ones and cast no shadow.

- :class:`Characters`: N poses of one skeleton (joint positions), drawn as capsule bodies
  (see :mod:`viewer.body`). A crowd is one ``Characters`` with N > 1: it draws in one call.
- :class:`Marker`: a sphere (targets, hit points).
- :class:`Polyline`: a tube through K points, ``width`` metres thick (paths, rays, direction arrows;
  ``arrow=True`` adds an arrow head at the last point).
- :class:`Box`: a box turned by ``yaw`` about +y (walls, obstacles).

Markers, polylines and boxes are named tuples, so plain tuples in the same order work too:
``(position, radius, rgba)``, ``(points, rgba, width)``, ``(center, half_extents, yaw, rgba)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

DEFAULT_CHARACTER_RGBA = (0.86, 0.56, 0.32, 1.0)


def as_rgba(value, what: str) -> np.ndarray:
    """An RGB or RGBA float colour in [0, 1] -> (4,) float32, or a clear error naming ``what``."""
    c = np.asarray(value, dtype=np.float64).reshape(-1)
    if c.shape not in ((3,), (4,)):
        raise ValueError(f"{what}: a colour is 3 or 4 floats (RGB[A] in [0, 1]), got {value!r}")
    if np.any(c < 0) or np.any(c > 1):
        raise ValueError(f"{what}: colour components must lie in [0, 1] (not 0-255), got {value!r}")
    return np.append(c, 1.0).astype(np.float32) if c.shape == (3,) else c.astype(np.float32)


def _vector3(value, what: str) -> np.ndarray:
    v = np.asarray(value, dtype=np.float64).reshape(-1)
    if v.shape != (3,) or not np.all(np.isfinite(v)):
        raise ValueError(f"{what}: expected 3 finite numbers (x, y, z in metres), got {value!r}")
    return v


class Marker(NamedTuple):
    position: Sequence[float]
    radius: float = 0.1
    rgba: Sequence[float] = (0.9, 0.15, 0.15, 1.0)


class Polyline(NamedTuple):
    points: np.ndarray
    rgba: Sequence[float] = (0.2, 0.5, 0.95, 1.0)
    width: float = 0.03
    arrow: bool = False


class Box(NamedTuple):
    center: Sequence[float]
    half_extents: Sequence[float]
    yaw: float = 0.0
    rgba: Sequence[float] = (0.55, 0.58, 0.62, 1.0)


@dataclass
class Characters:
    """N poses of one skeleton.

    Attributes:
        positions: (N, J, 3) or (J, 3) world joint positions, metres.
        parents: (J,) parent index of each joint, -1 for the root.
        joint_names: J names; they pick the body proportions (see :mod:`viewer.body`). Without names
            every bone gets a radius proportional to its length.
        rgba: one colour (3 or 4 floats) or one per character (N, 3|4).
        joint_radii: optional (J,) radius of the bone ending at each joint (0 hides it), metres.
    """

    positions: np.ndarray
    parents: Sequence[int]
    joint_names: Sequence[str] | None = None
    rgba: Sequence[float] | np.ndarray = DEFAULT_CHARACTER_RGBA
    joint_radii: Sequence[float] | None = None

    def __post_init__(self) -> None:
        pos = np.asarray(self.positions, dtype=np.float64)
        if pos.ndim == 2:
            pos = pos[None]  # (1, J, 3)
        if pos.ndim != 3 or pos.shape[-1] != 3:
            raise ValueError(f"Characters.positions must be (N, J, 3) or (J, 3) metres, got shape {pos.shape}")
        j = pos.shape[1]
        parents = np.asarray(self.parents, dtype=np.int64).reshape(-1)
        if parents.shape != (j,):
            raise ValueError(f"Characters.parents has {parents.size} entries but positions have {j} joints")
        if j == 0 or parents[0] != -1 or np.any(parents[1:] < 0) or np.any(parents[1:] >= np.arange(1, j)):
            raise ValueError("Characters.parents must list the root first (-1) and every parent before its child")
        if self.joint_names is not None and len(self.joint_names) != j:
            raise ValueError(f"Characters.joint_names has {len(self.joint_names)} names for {j} joints")
        if not np.all(np.isfinite(pos)):
            raise ValueError("Characters.positions contain NaN or infinite values")
        if self.joint_radii is not None:
            radii = np.asarray(self.joint_radii, dtype=np.float64).reshape(-1)
            if radii.shape != (j,) or not np.all(np.isfinite(radii)) or np.any(radii < 0):
                raise ValueError(f"Characters.joint_radii must be {j} finite radii >= 0 metres (0 hides a bone), "
                                 f"got {self.joint_radii!r}")
            self.joint_radii = radii
        rgba = np.asarray(self.rgba, dtype=np.float64)
        if rgba.ndim == 1:
            rgba = np.broadcast_to(as_rgba(rgba, "Characters.rgba"), (pos.shape[0], 4))
        elif rgba.ndim == 2 and rgba.shape[0] == pos.shape[0] and rgba.shape[1] in (3, 4):
            if np.any(rgba < 0) or np.any(rgba > 1):
                raise ValueError("Characters.rgba: colour components must lie in [0, 1] (not 0-255)")
            if rgba.shape[1] == 3:
                rgba = np.concatenate([rgba, np.ones((len(rgba), 1))], axis=1)
        else:
            raise ValueError(f"Characters.rgba must be one colour or one per character ({pos.shape[0]}, 4), "
                             f"got shape {rgba.shape}")
        self.positions = pos
        self.parents = parents
        self.rgba = np.asarray(rgba, dtype=np.float32)

    @classmethod
    def from_skeleton(cls, skeleton, positions, rgba=DEFAULT_CHARACTER_RGBA, joint_radii=None) -> Characters:
        """From anything with ``joint_names`` and ``parents`` (e.g. :class:`mocap.skeleton.Skeleton`)."""
        return cls(positions, skeleton.parents, list(skeleton.joint_names), rgba, joint_radii)

    @property
    def count(self) -> int:
        return self.positions.shape[0]


@dataclass
class SceneFrame:
    """Everything drawn in one frame; see the module docstring."""

    characters: list[Characters] = field(default_factory=list)
    markers: list[Marker] = field(default_factory=list)
    polylines: list[Polyline] = field(default_factory=list)
    boxes: list[Box] = field(default_factory=list)

    def __post_init__(self) -> None:
        if isinstance(self.characters, Characters):
            self.characters = [self.characters]
        for i, c in enumerate(self.characters):
            if not isinstance(c, Characters):
                raise TypeError(f"SceneFrame.characters[{i}] must be a viewer.Characters, got {type(c).__name__}")
        self.markers = [_marker(m, i) for i, m in enumerate(self.markers)]
        self.polylines = [_polyline(p, i) for i, p in enumerate(self.polylines)]
        self.boxes = [_box(b, i) for i, b in enumerate(self.boxes)]


def _marker(m, i: int) -> Marker:
    m = Marker(*m)
    what = f"SceneFrame.markers[{i}]"
    if not m.radius > 0:
        raise ValueError(f"{what}: radius must be > 0 metres, got {m.radius!r}")
    return Marker(_vector3(m.position, what + ".position"), float(m.radius), as_rgba(m.rgba, what + ".rgba"))


def _polyline(p, i: int) -> Polyline:
    p = Polyline(*p)
    what = f"SceneFrame.polylines[{i}]"
    pts = np.asarray(p.points, dtype=np.float64)
    if pts.ndim != 2 or pts.shape[1] != 3 or len(pts) < 2 or not np.all(np.isfinite(pts)):
        raise ValueError(f"{what}.points must be (K >= 2, 3) finite metres, got shape {pts.shape}")
    if not p.width > 0:
        raise ValueError(f"{what}: width must be > 0 metres, got {p.width!r}")
    return Polyline(pts, as_rgba(p.rgba, what + ".rgba"), float(p.width), bool(p.arrow))


def _box(b, i: int) -> Box:
    b = Box(*b)
    what = f"SceneFrame.boxes[{i}]"
    half = _vector3(b.half_extents, what + ".half_extents")
    if np.any(half <= 0):
        raise ValueError(f"{what}.half_extents must be > 0 metres, got {b.half_extents!r}")
    return Box(_vector3(b.center, what + ".center"), half, float(b.yaw), as_rgba(b.rgba, what + ".rgba"))
