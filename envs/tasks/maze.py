"""Maze: reach a goal cell of a walled grid maze, seeing the walls through a fan of rays.

=================== ===============================================================================
observation         ``[normalised condition frames (C*D), ray hit fractions (N), goal (x, z) in the
                    character frame (2) m, route waypoints (2 x (x, z)) in the character frame m]``;
                    N = ``num_rays`` (16) rays of ``ray_length`` (10 m) at ``ray_height`` (1 m), evenly
                    fanned over ``ray_fov_deg`` (360: all around, ray 0 straight ahead, then turning
                    left), cast with pybullet ``rayTestBatch`` against the wall boxes, all characters in
                    one call; 1.0 = nothing within reach. The waypoints (``route_hint``, default on) are
                    the next two doorways on the shortest route to the goal (the goal cell's centre
                    once the route reaches it): the map knowledge a game's navigation mesh gives its
                    agents. ``route_hint=False`` drops them (the paper's harder setting: rays and goal
                    only, the policy must find the way itself)
action              Box(-1, 1, (Z,)) latent / ``action_scale``, or Discrete(K) code (VQ manifold)
maze                ``cells`` x ``cells`` (5 x 5) cells of ``cell_size`` (4 m), walls ``wall_thickness``
                    (0.2 m) thick and ``wall_height`` (2 m) high, generated once from ``maze_seed``
                    (a perfect maze: one route between any two cells) and shared by all B characters
reward              progress along the shortest route to the goal (m, decrease of the route distance
                    below), ``+goal_bonus`` (1.0) on arrival, ``-collision_penalty`` (1.0) on a step
                    that ends in collision, ``-clearance_penalty`` (0: off) per second x how far the root
                    is inside ``clearance_m`` (0.6 m) of a wall, as a fraction of the way from there to
                    ``body_radius`` (a dense warning: once a policy walks the maze, collisions come
                    about once in 8-13 character-minutes, a rare signal for the penalty alone)
route distance      min over the character's cell c and the cells open to it n of
                    ``cell_size * moves(n, goal) + |root - centre(n)|``, continuous across cells
arrival             root within ``arrival_radius`` (0.5 m) of the goal cell's centre; a new goal cell
                    (uniform among the others) at once
collision           the root within ``body_radius`` (0.3 m) of a wall (ground distance to the wall's
                    rectangle); counted in ``collisions``. ``collision="terminate"`` (default) ends
                    the episode, ``"penalize"`` only applies the penalty (the character walks on,
                    possibly through the wall: nothing pushes it back)
start               the centre of a random cell, random facing; the goal a different random cell
termination         collision (with ``collision="terminate"``) or a non-finite character state
truncation          ``max_episode_steps`` (default 1500 = 50 s at 30 fps)
info metrics        ``distance_to_goal`` (route distance, m), ``targets_reached`` (goals, count),
                    ``time_to_target`` (s; masked: arrival steps only), ``collisions`` (count this
                    episode), ``collided`` (bool, this step)
=================== ===============================================================================

User input: ``set_goal(xz)`` makes the cell holding ``xz`` the goal (e.g. a mouse click). The characters
cannot be moved in by ``place`` (``placeable = False``): they start at cell centres, away from the walls.
Desired motion (the scripted baseline): at walking speed along the free ray (nothing within 1.5 m) closest
to the next route waypoint (to the goal without ``route_hint``).

The pybullet client is opened in the constructor and closed by ``close()`` (the environment's close).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from envs.geometry import heading_vector, point_box_distance
from envs.maze_layout import generate_maze
from envs.ray_sensor import RaySensor
from envs.tasks.base import (
    FAINT_RGBA,
    GOAL_RGBA,
    HINT_RGBA,
    WALK_SPEED,
    Task,
    empty_draw_data,
    ground_point,
    ground_polyline,
)

COLLISION_MODES = ("terminate", "penalize")
CLEARANCE_M = 1.5  # desired motion: a ray this free counts as a way through
WALL_RGBA = np.array([0.55, 0.55, 0.6, 1.0])


class Maze(Task):
    name = "maze"
    default_max_episode_steps = 1500
    accepts = frozenset({"goal"})
    placeable = False
    state_names = ("goal", "route", "reached", "since", "arrived", "time_to_target", "collisions", "collided",
                   "step_route", "rays", "ray_pose")

    def __init__(self, core, *, cells: int = 5, cell_size: float = 4.0, maze_seed: int = 0,
                 extra_openings: float = 0.0, wall_thickness: float = 0.2, wall_height: float = 2.0,
                 num_rays: int = 16, ray_length: float = 10.0, ray_fov_deg: float = 360.0, ray_height: float = 1.0,
                 body_radius: float = 0.3, arrival_radius: float = 0.5, goal_bonus: float = 1.0,
                 collision: str = "terminate", collision_penalty: float = 1.0, clearance_penalty: float = 0.0,
                 clearance_m: float = 0.6, route_hint: bool = True):
        super().__init__(core)
        if collision not in COLLISION_MODES:
            raise ValueError(f"collision={collision!r}; choose one of {', '.join(COLLISION_MODES)}")
        if int(num_rays) < 1 or ray_length <= 0 or not 0 < ray_fov_deg <= 360:
            raise ValueError("need num_rays >= 1, ray_length > 0 and 0 < ray_fov_deg <= 360")
        if body_radius < 0 or arrival_radius <= 0 or wall_thickness <= 0 or wall_height <= 0:
            raise ValueError("body_radius must be >= 0 and arrival_radius, wall_thickness, wall_height > 0")
        if clearance_penalty < 0 or clearance_m <= body_radius:
            raise ValueError(f"need clearance_penalty >= 0 and clearance_m > body_radius ({body_radius} m), got "
                             f"{clearance_penalty}, {clearance_m}")
        if 2 * (arrival_radius + body_radius) + wall_thickness > cell_size:
            raise ValueError(f"cell_size {cell_size} m is too small for the arrival radius, body radius and walls")
        self.layout = generate_maze(int(cells), float(cell_size), int(maze_seed), float(extra_openings))
        self.collision, self.collision_penalty = collision, float(collision_penalty)
        self.clearance_penalty, self.clearance_m = float(clearance_penalty), float(clearance_m)
        self.body_radius, self.arrival_radius = float(body_radius), float(arrival_radius)
        self.goal_bonus = float(goal_bonus)
        self.num_rays, self.ray_length, self.ray_height = int(num_rays), float(ray_length), float(ray_height)
        self.wall_height = float(wall_height)
        self.route_hint = bool(route_hint)
        self.feature_size = self.num_rays + 2 + (4 if self.route_hint else 0)
        dev = core.device
        fov = math.radians(ray_fov_deg)
        k = torch.arange(self.num_rays, dtype=torch.float32, device=dev)
        if ray_fov_deg >= 360:
            self.ray_offsets = k * (fov / self.num_rays)  # ray 0 straight ahead, then turning left
        else:
            self.ray_offsets = -0.5 * fov + k * (fov / max(self.num_rays - 1, 1)) if self.num_rays > 1 else k
        walls = self.layout.walls(float(wall_thickness))  # (W, 4)
        self.walls = torch.as_tensor(walls, dtype=torch.float32, device=dev)
        centers = np.stack([(walls[:, 0] + walls[:, 1]) / 2, np.full(len(walls), wall_height / 2),
                            (walls[:, 2] + walls[:, 3]) / 2], axis=1)
        halves = np.stack([(walls[:, 1] - walls[:, 0]) / 2, np.full(len(walls), wall_height / 2),
                           (walls[:, 3] - walls[:, 2]) / 2], axis=1)
        self.wall_boxes = (centers, halves)
        self.sensor = RaySensor(centers, halves)
        self.cell_centers = torch.as_tensor(self.layout.cell_centers(), dtype=torch.float32, device=dev)  # (n*n, 2)
        self.neighbours = torch.as_tensor(self.layout.neighbours(), device=dev)  # (n*n, 5), -1 padded
        self.moves = torch.as_tensor(self.layout.cell_distances(), dtype=torch.float32, device=dev)  # (n*n, n*n)
        self.next_cell = torch.as_tensor(self.layout.next_cells(), device=dev)  # (n*n, n*n)
        b = core.num_envs
        self.goal = torch.zeros(b, dtype=torch.int64, device=dev)
        self.route = torch.zeros(b, device=dev)
        self.reached = torch.zeros(b, dtype=torch.int64, device=dev)
        self.since = torch.zeros(b, dtype=torch.int64, device=dev)
        self.arrived = torch.zeros(b, dtype=torch.bool, device=dev)
        self.time_to_target = torch.zeros(b, device=dev)
        self.collisions = torch.zeros(b, dtype=torch.int64, device=dev)
        self.collided = torch.zeros(b, dtype=torch.bool, device=dev)
        self.step_route = torch.zeros(b, device=dev)
        self.rays = torch.ones(b, self.num_rays, device=dev)
        self.ray_pose = torch.full((b, 3), math.nan, device=dev)  # (x, z, yaw) of the last cast; NaN: never cast

    # ---- geometry -----------------------------------------------------------------------------------
    def cell_of(self, xz: torch.Tensor) -> torch.Tensor:
        n, s, h = self.layout.cells, self.layout.cell_size, self.layout.half_width
        ij = torch.floor((xz + h) / s).long().clamp(0, n - 1)  # (B, 2)
        return ij[:, 0] * n + ij[:, 1]

    def route_distance(self, xz: torch.Tensor, goal: torch.Tensor) -> torch.Tensor:
        """(B,) metres to the goal cell's centre along the maze (see the module docstring)."""
        candidates = self.neighbours[self.cell_of(xz)]  # (B, 5)
        valid = candidates >= 0
        candidates = candidates.clamp_min(0)
        moves = self.moves[candidates, goal[:, None]]  # (B, 5)
        straight = torch.linalg.vector_norm(xz[:, None, :] - self.cell_centers[candidates], dim=-1)  # (B, 5)
        cost = torch.where(valid, self.layout.cell_size * moves + straight, torch.full_like(straight, math.inf))
        return cost.min(dim=1).values

    def route_waypoints(self, xz: torch.Tensor, goal: torch.Tensor) -> torch.Tensor:
        """(B, 2, 2) world ground points: the next two doorways on the shortest route to the goal cell.

        A doorway is the middle of the open edge between two consecutive route cells; where the route has
        reached the goal cell, the goal cell's centre stands in.
        """
        cell = self.cell_of(xz)
        first = self.next_cell[cell, goal]  # (B,)
        second = self.next_cell[first, goal]

        def doorway(a, b):
            middle = 0.5 * (self.cell_centers[a] + self.cell_centers[b])
            return torch.where((a == b)[:, None], self.cell_centers[b], middle)  # (B, 2)

        return torch.stack((doorway(cell, first), doorway(first, second)), dim=1)

    def wall_distance(self, xz: torch.Tensor) -> torch.Tensor:
        """(B,) ground distance from each root to the nearest wall (0 inside one)."""
        return point_box_distance(xz, self.walls).min(dim=1).values

    def cast_rays(self, rows: torch.Tensor | None = None) -> torch.Tensor:
        """(R, N) hit fractions of the ray fans of characters ``rows`` (all when None), in one pybullet call."""
        core = self.core
        xz, yaw = (core.root_xz, core.yaw) if rows is None else (core.root_xz[rows], core.yaw[rows])
        angles = yaw[:, None] + self.ray_offsets  # (R, N)
        direction = torch.stack((torch.sin(angles), torch.zeros_like(angles), torch.cos(angles)), dim=-1)
        start = torch.stack((xz[:, 0], torch.full_like(yaw, self.ray_height), xz[:, 1]), dim=-1)
        start = start[:, None, :].expand_as(direction)  # (R, N, 3)
        end = start + self.ray_length * direction
        fractions = self.sensor.cast(start.reshape(-1, 3).cpu().numpy(), end.reshape(-1, 3).cpu().numpy())
        return torch.as_tensor(fractions, dtype=torch.float32, device=core.device).reshape(len(yaw), -1)

    def _update_rays(self) -> None:
        """Recast only the characters that moved since the last cast (after an autoreset: the restarted ones)."""
        pose = torch.cat((self.core.root_xz, self.core.yaw[:, None]), dim=1)  # (B, 3)
        moved = (pose != self.ray_pose).any(dim=1)
        if bool(moved.all()):
            self.rays = self.cast_rays()
        elif bool(moved.any()):
            rows = moved.nonzero()[:, 0]
            self.rays = self.rays.index_put((rows,), self.cast_rays(rows))
        self.ray_pose = pose

    def _new_goals(self, cell: torch.Tensor) -> torch.Tensor:
        """(B,) a uniform cell other than ``cell``."""
        total = self.layout.num_cells
        shift = torch.randint(1, total, cell.shape, generator=self.core.generator, device=self.core.device)
        return (cell + shift) % total

    def set_goals(self, cells, mask=None) -> None:
        """Choose goal cells by hand: ``cells`` (B,) flat cell indices (``i * cells + j``), where ``mask`` is set."""
        cells = torch.as_tensor(cells, dtype=torch.int64, device=self.core.device).expand(self.core.num_envs)
        if bool(((cells < 0) | (cells >= self.layout.num_cells)).any()):
            raise ValueError(f"goal cells must lie in [0, {self.layout.num_cells})")
        mask = None if mask is None else torch.as_tensor(mask, dtype=torch.bool, device=self.core.device)
        self.goal = self.where(mask, cells, self.goal)
        self.since = self.where(mask, torch.zeros_like(self.since), self.since)
        self.route = self.route_distance(self.core.root_xz, self.goal)

    def set_goal(self, xz, mask=None) -> None:
        xz = torch.as_tensor(xz, dtype=torch.float32, device=self.core.device).reshape(-1, 2)
        if not bool(torch.isfinite(xz).all()):
            raise ValueError("set_goal: the point must be finite (x, z) metres")
        self.set_goals(self.cell_of(xz).expand(self.core.num_envs), mask)

    def desired_motion(self):
        core = self.core
        aim = self.route_waypoints(core.root_xz, self.goal)[:, 0] if self.route_hint else self.cell_centers[self.goal]
        aim_char = core.to_char(aim[:, None])[:, 0]  # (B, 2)
        aim_angle = torch.atan2(aim_char[:, 0], aim_char[:, 1])  # (B,) character frame, + to the left
        self._update_rays()
        free = self.rays * self.ray_length > CLEARANCE_M  # (B, N)
        closeness = torch.cos(self.ray_offsets[None] - aim_angle[:, None])  # (B, N)
        best = self.ray_offsets[torch.where(free, closeness, closeness - 3.0).argmax(dim=1)]  # (B,)
        return heading_vector(core.yaw + best), torch.full_like(best, WALK_SPEED)

    # ---- protocol -------------------------------------------------------------------------------------
    def reset(self, mask):
        core = self.core
        start = torch.randint(self.layout.num_cells, (core.num_envs,), generator=core.generator, device=core.device)
        core.reset(mask, root_xz=self.cell_centers[start])
        self.goal = self.where(mask, self._new_goals(start), self.goal)
        zero = torch.zeros_like(self.reached)
        self.reached, self.since = self.where(mask, zero, self.reached), self.where(mask, zero, self.since)
        self.collisions = self.where(mask, zero, self.collisions)
        self.arrived = self.where(mask, torch.zeros_like(self.arrived), self.arrived)
        self.collided = self.where(mask, torch.zeros_like(self.collided), self.collided)
        self.route = self.route_distance(core.root_xz, self.goal)
        self.step_route = self.where(mask, self.route, self.step_route)

    def update(self):
        xz = self.core.root_xz
        route = self.route_distance(xz, self.goal)
        self.arrived = torch.linalg.vector_norm(xz - self.cell_centers[self.goal], dim=1) < self.arrival_radius
        wall = self.wall_distance(xz)
        self.collided = wall < self.body_radius
        reward = self.route - route + self.goal_bonus * self.arrived - self.collision_penalty * self.collided
        if self.clearance_penalty > 0:
            inside = ((self.clearance_m - wall) / (self.clearance_m - self.body_radius)).clamp(0.0, 1.0)  # (B,)
            reward = reward - self.clearance_penalty * self.core.dt * inside
        self.step_route = route
        self.collisions = self.collisions + self.collided
        self.reached = self.reached + self.arrived
        self.since = self.since + 1
        self.time_to_target = self.since * self.core.dt
        if bool(self.arrived.any()):
            self.goal = torch.where(self.arrived, self._new_goals(self.cell_of(xz)), self.goal)
            self.since = torch.where(self.arrived, torch.zeros_like(self.since), self.since)
            route = self.route_distance(xz, self.goal)
        self.route = route
        terminated = self.collided if self.collision == "terminate" else torch.zeros_like(self.collided)
        return reward, terminated.clone()

    def features(self):
        self._update_rays()
        goal = self.core.to_char(self.cell_centers[self.goal][:, None])[:, 0]  # (B, 2)
        if not self.route_hint:
            return torch.cat((self.rays, goal), dim=1)  # (B, N + 2)
        waypoints = self.core.to_char(self.route_waypoints(self.core.root_xz, self.goal))  # (B, 2, 2)
        return torch.cat((self.rays, goal, waypoints.reshape(-1, 4)), dim=1)  # (B, N + 6)

    def metrics(self):
        return {
            "distance_to_goal": (self.step_route, None),
            "targets_reached": (self.reached, None),
            "time_to_target": (self.time_to_target, self.arrived),
            "collisions": (self.collisions, None),
            "collided": (self.collided, None),
        }

    def draw_data(self, index):
        i = self.check_index(index)
        data = empty_draw_data()
        centers, halves = self.wall_boxes
        for center, half in zip(centers, halves, strict=True):
            data["boxes"].append({"center": center.copy(), "half_extents": half.copy(), "rgba": WALL_RGBA.copy()})
        data["markers"].append({"position": ground_point(self.cell_centers[self.goal[i]].cpu()),
                                "radius": self.arrival_radius, "rgba": GOAL_RGBA.copy()})
        root = self.core.root_xz[i].cpu().numpy().astype(np.float64)
        start = np.array([root[0], self.ray_height, root[1]])
        angles = (self.core.yaw[i] + self.ray_offsets).cpu().numpy().astype(np.float64)
        reach = self.rays[i].cpu().numpy().astype(np.float64) * self.ray_length
        for angle, length in zip(angles, reach, strict=True):
            end = start + length * np.array([math.sin(angle), 0.0, math.cos(angle)])
            data["polylines"].append({"points": np.stack([start, end]), "rgba": HINT_RGBA.copy(), "closed": False})
        if self.route_hint:
            waypoints = self.route_waypoints(self.core.root_xz[i : i + 1], self.goal[i : i + 1])[0].cpu()  # (2, 2)
            route = np.concatenate([root[None], waypoints.numpy().astype(np.float64)])
            data["polylines"].append({"points": ground_polyline(route), "rgba": FAINT_RGBA.copy(), "closed": False})
        data["text"].append(f"goals: {int(self.reached[i])}, collisions: {int(self.collisions[i])}")
        return data

    def close(self):
        self.sensor.close()
