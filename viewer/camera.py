"""A perspective camera that orbits a target point: follow, orbit and fixed modes (pure numpy).

The eye sits at ``target + distance * (cos(el) sin(az), sin(el), cos(el) cos(az))``: azimuth 0 looks
from +z towards -z (at the front of a character with yaw 0), elevation > 0 looks down.

Modes (``cycle_mode`` goes round them in this order):

- ``"follow"``: :meth:`Camera.update` moves the target towards a point (e.g. the character's root) with a
  critically damped spring, so it trails smoothly without overshoot; distance, azimuth and elevation stay
  as set (mouse orbit and zoom still change them).
- ``"orbit"``: the target stays where it is; mouse drags orbit, scrolls zoom and :meth:`Camera.pan` moves
  the target along the ground.
- ``"fixed"``: a static overview from ``fixed_target`` / ``fixed_distance`` / ``fixed_azimuth`` /
  ``fixed_elevation``; mouse input is ignored.

Screen coordinates are pyglet's: pixels from the bottom-left corner of the window, x right, y up.
Matrices are numpy (4, 4) acting on column vectors; hand them to GL transposed (column-major).
"""

from __future__ import annotations

import math

import numpy as np

MODES = ("follow", "orbit", "fixed")
ORBIT_RAD_PER_PIXEL = 0.005
ZOOM_PER_SCROLL = 0.9
PAN_PER_PIXEL = 0.0015  # of the distance, so panning feels the same at every zoom
MIN_ELEVATION = math.radians(-5.0)
MAX_ELEVATION = math.radians(89.0)
DISTANCE_RANGE = (0.5, 200.0)


def look_at(eye: np.ndarray, target: np.ndarray, up=(0.0, 1.0, 0.0)) -> np.ndarray:
    """World -> camera (4, 4): the camera looks down its -z axis with +y up."""
    f = target - eye
    f = f / np.linalg.norm(f)
    s = np.cross(f, up)
    if np.linalg.norm(s) < 1e-9:  # looking straight up or down: any horizontal right vector will do
        s = np.array([1.0, 0.0, 0.0])
    s = s / np.linalg.norm(s)
    u = np.cross(s, f)
    m = np.eye(4)
    m[0, :3], m[1, :3], m[2, :3] = s, u, -f
    m[:3, 3] = -m[:3, :3] @ eye
    return m


def perspective(fov_y: float, aspect: float, near: float, far: float) -> np.ndarray:
    """OpenGL clip matrix (4, 4) for a vertical field of view ``fov_y`` radians."""
    f = 1.0 / math.tan(fov_y / 2.0)
    m = np.zeros((4, 4))
    m[0, 0] = f / aspect
    m[1, 1] = f
    m[2, 2] = (far + near) / (near - far)
    m[2, 3] = 2.0 * far * near / (near - far)
    m[3, 2] = -1.0
    return m


def critically_damped(x: np.ndarray, v: np.ndarray, goal: np.ndarray, omega: float, dt: float):
    """Exact step of x'' = -2 w x' - w^2 (x - goal) over dt -> (x, v); stable for any dt.

    The solution is x(t) = goal + (c1 + c2 t) e^(-w t) with c1 = x0 - goal, c2 = v0 + w c1.
    """
    c1 = x - goal
    c2 = v + omega * c1
    decay = math.exp(-omega * dt)
    x_new = goal + (c1 + c2 * dt) * decay
    v_new = (c2 - omega * (c1 + c2 * dt)) * decay
    return x_new, v_new


class Camera:
    """See the module docstring. Angles are radians, distances metres."""

    def __init__(
        self,
        mode: str = "follow",
        target=(0.0, 0.9, 0.0),
        distance: float = 4.5,
        azimuth: float = math.radians(60.0),
        elevation: float = math.radians(12.0),
        fov_y: float = math.radians(45.0),
        near: float = 0.05,
        far: float = 400.0,
        smoothing_time: float = 0.4,
        fixed_target=(0.0, 0.0, 0.0),
        fixed_distance: float = 16.0,
        fixed_azimuth: float = math.radians(30.0),
        fixed_elevation: float = math.radians(55.0),
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"camera mode must be one of {MODES}, got {mode!r}")
        if not smoothing_time > 0:
            raise ValueError(f"camera smoothing_time must be > 0 seconds, got {smoothing_time!r}")
        self.mode = mode
        self.target = np.asarray(target, dtype=np.float64).copy()
        self._velocity = np.zeros(3)
        self.distance = float(distance)
        self.azimuth = float(azimuth)
        self.elevation = float(elevation)
        self.fov_y = float(fov_y)
        self.near = float(near)
        self.far = float(far)
        self.smoothing_time = float(smoothing_time)
        self.fixed_target = np.asarray(fixed_target, dtype=np.float64).copy()
        self.fixed_distance = float(fixed_distance)
        self.fixed_azimuth = float(fixed_azimuth)
        self.fixed_elevation = float(fixed_elevation)

    # --- state ------------------------------------------------------------------------------------
    def cycle_mode(self) -> str:
        """Switch to the next mode (follow -> orbit -> fixed -> follow) and return its name."""
        self.mode = MODES[(MODES.index(self.mode) + 1) % len(MODES)]
        self._velocity[:] = 0.0
        return self.mode

    def update(self, dt: float, follow_point=None) -> None:
        """Advance the follow spring by ``dt`` seconds towards ``follow_point`` (only in follow mode)."""
        if self.mode != "follow" or follow_point is None or dt <= 0:
            return
        goal = np.asarray(follow_point, dtype=np.float64)
        # omega = 4 / T: a step is ~90 % closed after smoothing_time seconds.
        self.target, self._velocity = critically_damped(self.target, self._velocity, goal,
                                                        4.0 / self.smoothing_time, dt)

    def snap(self, point) -> None:
        """Put the target on ``point`` at once (after a reset or a teleport)."""
        self.target = np.asarray(point, dtype=np.float64).copy()
        self._velocity[:] = 0.0

    def orbit(self, dx_pixels: float, dy_pixels: float) -> None:
        """Turn around the target by a mouse drag (ignored in fixed mode)."""
        if self.mode == "fixed":
            return
        self.azimuth -= dx_pixels * ORBIT_RAD_PER_PIXEL
        self.elevation = float(np.clip(self.elevation - dy_pixels * ORBIT_RAD_PER_PIXEL, MIN_ELEVATION, MAX_ELEVATION))

    def zoom(self, scroll: float) -> None:
        """Move closer (scroll > 0) or away (ignored in fixed mode)."""
        if self.mode == "fixed":
            return
        self.distance = float(np.clip(self.distance * ZOOM_PER_SCROLL ** scroll, *DISTANCE_RANGE))

    def pan(self, dx_pixels: float, dy_pixels: float) -> None:
        """Slide the target along the ground with a mouse drag (orbit mode only: follow owns the target)."""
        if self.mode != "orbit":
            return
        right = np.array([math.cos(self.azimuth), 0.0, -math.sin(self.azimuth)])
        back = np.array([math.sin(self.azimuth), 0.0, math.cos(self.azimuth)])
        step = PAN_PER_PIXEL * self.distance
        self.target = self.target - right * dx_pixels * step + back * dy_pixels * step

    # --- geometry ---------------------------------------------------------------------------------
    def _view(self) -> tuple[np.ndarray, float, float, float]:
        if self.mode == "fixed":
            return self.fixed_target, self.fixed_distance, self.fixed_azimuth, self.fixed_elevation
        return self.target, self.distance, self.azimuth, self.elevation

    def look_target(self) -> np.ndarray:
        """The point the camera looks at now (3,)."""
        return self._view()[0].copy()

    def eye(self) -> np.ndarray:
        """Camera position (3,) in world metres."""
        target, distance, az, el = self._view()
        offset = np.array([math.cos(el) * math.sin(az), math.sin(el), math.cos(el) * math.cos(az)])
        return target + distance * offset

    def view_matrix(self) -> np.ndarray:
        return look_at(self.eye(), self._view()[0])

    def projection_matrix(self, aspect: float) -> np.ndarray:
        return perspective(self.fov_y, aspect, self.near, self.far)

    def view_projection(self, width: int, height: int) -> np.ndarray:
        """Clip-from-world (4, 4) for a ``width`` x ``height`` viewport."""
        return self.projection_matrix(width / max(height, 1)) @ self.view_matrix()

    def world_to_screen(self, points, width: int, height: int) -> np.ndarray:
        """World points (K, 3) -> pixels (K, 2) from the bottom-left; NaN for points behind the camera."""
        p = np.asarray(points, dtype=np.float64).reshape(-1, 3)
        clip = np.concatenate([p, np.ones((len(p), 1))], axis=1) @ self.view_projection(width, height).T
        with np.errstate(divide="ignore", invalid="ignore"):
            ndc = clip[:, :2] / clip[:, 3:4]
        pixels = (ndc + 1.0) * 0.5 * np.array([width, height])
        pixels[clip[:, 3] <= 1e-9] = np.nan
        return pixels

    def screen_ray(self, x: float, y: float, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
        """The ray (origin (3,), unit direction (3,)) from the eye through pixel (x, y)."""
        aspect = width / max(height, 1)
        tan_half = math.tan(self.fov_y / 2.0)
        ndc_x, ndc_y = 2.0 * x / width - 1.0, 2.0 * y / height - 1.0
        direction_cam = np.array([ndc_x * tan_half * aspect, ndc_y * tan_half, -1.0])
        view = self.view_matrix()
        direction = view[:3, :3].T @ direction_cam  # camera -> world: the inverse rotation
        return self.eye(), direction / np.linalg.norm(direction)

    def screen_to_ground(self, x: float, y: float, width: int, height: int, ground_y: float = 0.0):
        """Where the ray through pixel (x, y) meets the plane y = ground_y: (x, z) metres, or None.

        None when the ray runs parallel to the ground or hits it behind the camera (clicks on the sky).
        """
        origin, direction = self.screen_ray(x, y, width, height)
        if abs(direction[1]) < 1e-9:
            return None
        t = (ground_y - origin[1]) / direction[1]
        if t <= 0:
            return None
        hit = origin + t * direction
        return float(hit[0]), float(hit[2])
