"""PathFollow: keep up with a point that moves along a closed path at a set pace.

=================== ===============================================================================
observation         ``[normalised condition frames (C*D), K look-ahead points (x, z) in the character
                    frame (2K) m]``: where the moving point is now and will be after
                    ``lookahead_seconds`` (0.5 s), 2x, ... (K = ``num_lookahead`` = 5)
action              Box(-1, 1, (Z,)) latent / ``action_scale``, or Discrete(K) code (VQ manifold)
reward              ``exp(-d)`` in (0, 1]: d is the ground distance (m) from the root to the moving point
paths               closed curves through the character's start, traversed at ``path_speed``
                    (1.2 m/s): ``path="figure8"`` (a lemniscate, 12-18 m across), ``"random"`` (a smooth
                    star-shaped loop r(t) = R (1 + sum_k a_k cos(k t + phi_k)), R 4-7 m) or ``"mixed"``
                    (each episode picks one with probability 1/2); random orientation and direction
termination         d > ``max_distance`` (4 m): the character lost the path (and a non-finite state)
start               the path passes through the character's start and the moving point starts there; with
                    ``start_offset`` > 0 (m, a training aid) the whole path is moved by up to that distance
                    (uniform, in a random direction), so the episode starts with the point away from the
                    character, which has to catch up: the recoveries that lost episodes need
truncation          ``max_episode_steps`` (default 900 = 30 s at 30 fps)
info metrics        ``path_distance`` (d, m), ``path_laps`` (loops completed by the moving point)
user input          ``set_path(points)`` (below); ``replan``: the paths move so that the moving point is
                    where the character stands
desired motion      toward the look-ahead point one ``lookahead_seconds`` ahead, at the speed that
                    reaches it in that time (at most 3.5 m/s)
=================== ===============================================================================

Interactive hook: ``set_path(points, mask=None)`` replaces the paths by hand-made ones (e.g. drawn with
the mouse): the points are joined end to start into a loop, resampled like the generated paths, and the
moving point restarts at ``points[0]``.
"""

from __future__ import annotations

import math

import torch

from envs.geometry import toward
from envs.tasks.base import (
    FAINT_RGBA,
    GOAL_RGBA,
    HINT_RGBA,
    MAX_GROUND_COORDINATE,
    Task,
    empty_draw_data,
    ground_point,
    ground_polyline,
)

PATH_KINDS = ("mixed", "figure8", "random")
MAX_DESIRED_SPEED = 3.5  # m/s
DENSE_SAMPLES_PER_POINT = 4  # curve samples per output point, before arc-length resampling


class PathFollow(Task):
    name = "path_follow"
    default_max_episode_steps = 900
    accepts = frozenset({"path"})
    state_names = ("path", "length", "progress", "distance")

    def __init__(self, core, *, path: str = "mixed", path_speed: float = 1.2, num_lookahead: int = 5,
                 lookahead_seconds: float = 0.5, max_distance: float = 4.0, path_points: int = 256,
                 start_offset: float = 0.0):
        super().__init__(core)
        if path not in PATH_KINDS:
            raise ValueError(f"path={path!r}; choose one of {', '.join(PATH_KINDS)}")
        if path_speed <= 0 or lookahead_seconds <= 0 or max_distance <= 0:
            raise ValueError("path_speed, lookahead_seconds and max_distance must be positive")
        if not 0.0 <= start_offset < max_distance:
            raise ValueError(f"start_offset={start_offset:g} m must be at least 0 and below max_distance "
                             f"({max_distance:g} m), or every episode would start lost")
        if int(num_lookahead) < 1 or int(path_points) < 16:
            raise ValueError(f"need num_lookahead >= 1 and path_points >= 16, got {num_lookahead}, {path_points}")
        self.path_kind = path
        self.path_speed, self.lookahead_seconds = float(path_speed), float(lookahead_seconds)
        self.num_lookahead, self.max_distance = int(num_lookahead), float(max_distance)
        self.start_offset = float(start_offset)
        self.feature_size = 2 * self.num_lookahead
        b, p, dev = core.num_envs, int(path_points), core.device
        self.path = torch.zeros(b, p, 2, device=dev)  # uniform arc-length samples of each closed path, world
        self.length = torch.ones(b, device=dev)
        self.progress = torch.zeros(b, device=dev)  # arc length travelled by the moving point (m)
        self.distance = torch.zeros(b, device=dev)

    # ---- paths ----------------------------------------------------------------------------------
    def _curves(self, b: int) -> torch.Tensor:
        """(b, N, 2) dense closed curves starting at the origin, of the configured kinds."""
        dev = self.core.device
        n = self.path.shape[1] * DENSE_SAMPLES_PER_POINT
        t = torch.arange(n, device=dev) * (2.0 * math.pi / n)  # (N,)
        # Figure eight: (A sin t, H sin t cos t) passes the origin at t = 0 and t = pi.
        width, height = self.uniform(6.0, 9.0, (b, 1)), self.uniform(4.0, 6.0, (b, 1))
        eight = torch.stack((width * torch.sin(t), height * torch.sin(t) * torch.cos(t)), dim=-1)  # (B, N, 2)
        # Random loop: a radius wobbling around R with harmonics 2..4; |sum a_k| < 0.45 keeps it star-shaped.
        radius = self.uniform(4.0, 7.0, (b, 1))
        k = torch.arange(2, 5, device=dev, dtype=torch.float32)  # (3,)
        amp = self.uniform(-0.15, 0.15, (b, 3))[:, :, None]
        phase = self.uniform(0.0, 2.0 * math.pi, (b, 3))[:, :, None]
        r = radius * (1.0 + (amp * torch.cos(k[None, :, None] * t + phase)).sum(dim=1))  # (B, N)
        loop = torch.stack((r * torch.cos(t), r * torch.sin(t)), dim=-1)
        loop = loop - loop[:, :1]
        pick_eight = self.uniform(0.0, 1.0, (b,)) < 0.5
        if self.path_kind != "mixed":
            pick_eight = torch.full_like(pick_eight, self.path_kind == "figure8")
        curve = torch.where(pick_eight[:, None, None], eight, loop)
        mirror = torch.where(self.uniform(0.0, 1.0, (b,)) < 0.5, -1.0, 1.0)  # either direction of travel
        curve = curve * torch.stack((torch.ones_like(mirror), mirror), dim=-1)[:, None, :]
        turn = self.uniform(-math.pi, math.pi, (b,))
        c, s = torch.cos(turn)[:, None], torch.sin(turn)[:, None]
        x, z = curve[..., 0], curve[..., 1]
        return torch.stack((c * x + s * z, c * z - s * x), dim=-1)

    def _resample(self, curve: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Dense closed curves (B, N, 2) -> P points evenly spaced in arc length (B, P, 2) and lengths (B,)."""
        b, n, _ = curve.shape
        p = self.path.shape[1]
        seg = torch.linalg.vector_norm(torch.roll(curve, -1, dims=1) - curve, dim=-1)  # (B, N): i -> i+1
        cum = torch.cat((torch.zeros(b, 1, device=curve.device), torch.cumsum(seg, dim=1)), dim=1)  # (B, N+1)
        length = cum[:, -1]
        q = torch.arange(p, device=curve.device)[None] * (length[:, None] / p)  # (B, P)
        i = (torch.searchsorted(cum, q, right=True) - 1).clamp(0, n - 1)
        w = ((q - cum.gather(1, i)) / seg.gather(1, i).clamp_min(1e-9))[..., None]
        a = curve.gather(1, i[..., None].expand(b, p, 2))
        nxt = curve.gather(1, ((i + 1) % n)[..., None].expand(b, p, 2))
        return a + w * (nxt - a), length

    def points_at(self, arc: torch.Tensor) -> torch.Tensor:
        """Points (B, K, 2) on each path at arc lengths ``arc`` (B, K) metres (any value: the paths are closed)."""
        b, p, _ = self.path.shape
        f = torch.remainder(arc, self.length[:, None]) * (p / self.length[:, None])
        i0 = f.floor().long().clamp(0, p - 1)
        w = (f - i0)[..., None]
        a = self.path.gather(1, i0[..., None].expand(*i0.shape, 2))
        nxt = self.path.gather(1, ((i0 + 1) % p)[..., None].expand(*i0.shape, 2))
        return a + w * (nxt - a)

    def lookahead(self) -> torch.Tensor:
        """(B, K, 2) world points: the moving point now and every ``lookahead_seconds`` ahead."""
        k = torch.arange(self.num_lookahead, device=self.core.device)
        return self.points_at(self.progress[:, None] + k * (self.path_speed * self.lookahead_seconds))

    def set_path(self, points, mask=None) -> None:
        """Follow hand-made paths: ``points`` (P, 2) or (B, P, 2) world xz m, P >= 2, joined end to start into a
        closed loop and resampled evenly in arc length; the moving point restarts at ``points[0]`` where
        ``mask`` (B,) is set (everywhere when None)."""
        b, dev = self.core.num_envs, self.core.device
        pts = torch.as_tensor(points, dtype=torch.float32, device=dev)
        if pts.dim() == 2:
            pts = pts[None].expand(b, -1, -1)  # (B, P, 2)
        if pts.dim() != 3 or pts.shape[0] != b or pts.shape[1] < 2 or pts.shape[2] != 2:
            raise ValueError(f"set_path: points must be (P, 2) or ({b}, P, 2) world xz with P >= 2, "
                             f"got shape {tuple(pts.shape)}")
        if not bool(torch.isfinite(pts).all()) or bool((pts.abs() > MAX_GROUND_COORDINATE).any()):
            raise ValueError(f"set_path: points must be finite and within {MAX_GROUND_COORDINATE:g} m of the origin")
        path, length = self._resample(pts)
        if bool((length < 1e-3).any()):
            raise ValueError("set_path: a path has (almost) no length; give at least two distinct points")
        mask = None if mask is None else torch.as_tensor(mask, dtype=torch.bool, device=dev)
        self.path = self.where(mask, path, self.path)
        self.length = self.where(mask, length, self.length)
        self.progress = self.where(mask, torch.zeros_like(self.progress), self.progress)
        self.distance = self.where(mask, self._measure(), self.distance)

    def replan(self, mask):
        shift = self.core.root_xz - self.points_at(self.progress[:, None])[:, 0]  # (B, 2)
        self.path = self.where(mask, self.path + shift[:, None], self.path)
        self.distance = self.where(mask, self._measure(), self.distance)

    def desired_motion(self):
        ahead = self.lookahead()[:, min(1, self.num_lookahead - 1)]  # (B, 2)
        direction, distance = toward(self.core.root_xz, ahead, self.core.facing())
        return direction, (distance / self.lookahead_seconds).clamp(0.0, MAX_DESIRED_SPEED)

    # ---- protocol -------------------------------------------------------------------------------
    def _measure(self) -> torch.Tensor:
        return torch.linalg.vector_norm(self.points_at(self.progress[:, None])[:, 0] - self.core.root_xz, dim=1)

    def reset(self, mask):
        self.core.reset(mask)
        # Paths are the costly part of a reset: make them only for the characters that restart.
        rows = torch.arange(self.core.num_envs, device=self.core.device) if mask is None else mask.nonzero()[:, 0]
        if rows.numel() == 0:
            return
        path, length = self._resample(self._curves(rows.numel()))
        start = self.core.root_xz[rows]  # (n, 2)
        if self.start_offset > 0.0:  # drawn only then, so that the default's episodes stay what they were
            reach = self.uniform(0.0, self.start_offset, (rows.numel(),))
            angle = self.uniform(-math.pi, math.pi, (rows.numel(),))
            start = start + reach[:, None] * torch.stack((torch.cos(angle), torch.sin(angle)), dim=-1)  # (n, 2)
        self.path = self.path.index_put((rows,), path + start[:, None, :])
        self.length = self.length.index_put((rows,), length)
        self.progress = self.progress.index_put((rows,), torch.zeros_like(length))
        self.distance = self.where(mask, self._measure(), self.distance)

    def update(self):
        self.progress = self.progress + self.path_speed * self.core.dt
        self.distance = self._measure()
        return torch.exp(-self.distance), self.distance > self.max_distance

    def features(self):
        return self.core.to_char(self.lookahead()).reshape(self.core.num_envs, -1)  # (B, 2K)

    def metrics(self):
        return {
            "path_distance": (self.distance, None),
            "path_laps": (torch.floor(self.progress / self.length), None),
        }

    def draw_data(self, index):
        i = self.check_index(index)
        data = empty_draw_data()
        data["polylines"].append({"points": ground_polyline(self.path[i].cpu(), 0.02), "rgba": FAINT_RGBA.copy(),
                                  "closed": True})
        ahead = self.lookahead()[i].cpu()
        data["markers"].append({"position": ground_point(ahead[0]), "radius": 0.25, "rgba": GOAL_RGBA.copy()})
        for point in ahead[1:]:
            data["markers"].append({"position": ground_point(point), "radius": 0.1, "rgba": HINT_RGBA.copy()})
        data["text"].append(f"distance to the path point: {float(self.distance[i]):.2f} m")
        return data
