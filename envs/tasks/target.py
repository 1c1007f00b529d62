"""Target: walk to a target on the ground; a new one appears on arrival.

=================== ===============================================================================
observation         ``[normalised condition frames (C*D), target (x, z) in the character frame (2), m]``
action              Box(-1, 1, (Z,)) latent / ``action_scale``, or Discrete(K) code (VQ manifold)
reward              progress toward the target this step (m, ``previous distance - distance``),
                    plus ``arrival_bonus`` on the step the target is reached
arrival             root within ``arrival_radius`` (0.5 m) of the target; a new target appears at once
targets             ``min_distance``..``max_distance`` (2-8 m) from the character, uniform direction,
                    kept inside the square arena of side ``arena_size`` (40 m) centred on the origin
                    (an offset that would leave it is reflected back)
termination         none (only a non-finite character state, see the environment)
truncation          ``max_episode_steps`` (default 900 = 30 s at 30 fps)
info metrics        ``distance_to_target`` (m), ``targets_reached`` (count this episode),
                    ``time_to_target`` (s from the target's appearance; masked: set on arrival steps only)
user input          ``set_goal(xz)``: the target there (e.g. a mouse click); ``replan``: new targets
                    around where the characters stand
desired motion      toward the target at ``distance / 2 s`` m/s, within 0.8-3.5 m/s (walk near, run far)
=================== ===============================================================================
"""

from __future__ import annotations

import torch

from envs.geometry import toward
from envs.tasks.base import FAINT_RGBA, GOAL_RGBA, Task, empty_draw_data, ground_point, ground_polyline

APPROACH_SECONDS = 2.0  # desired motion: a speed that would arrive in this time...
MIN_APPROACH_SPEED, MAX_APPROACH_SPEED = 0.8, 3.5  # ...within these bounds (m/s)


def sample_targets(task: Task, origin: torch.Tensor, min_distance: float, max_distance: float,
                   half_arena: float) -> torch.Tensor:
    """(B, 2) targets min..max_distance from ``origin`` (B, 2) in the arena (offsets leaving it are reflected)."""
    r = task.uniform(min_distance, max_distance)
    theta = task.uniform_angle()
    offset = torch.stack((torch.sin(theta), torch.cos(theta)), dim=1) * r[:, None]  # (B, 2)
    base = origin.clamp(-half_arena, half_arena)
    target = base + offset
    target = torch.where(target.abs() > half_arena, base - offset, target)
    return target.clamp(-half_arena, half_arena)


class Target(Task):
    name = "target"
    feature_size = 2
    default_max_episode_steps = 900
    accepts = frozenset({"goal"})
    state_names = ("target", "distance", "step_distance", "reached", "since", "arrived", "time_to_target")

    def __init__(self, core, *, arena_size: float = 40.0, min_distance: float = 2.0, max_distance: float = 8.0,
                 arrival_radius: float = 0.5, arrival_bonus: float = 1.0):
        super().__init__(core)
        if not 0 < min_distance <= max_distance:
            raise ValueError(f"need 0 < min_distance <= max_distance, got {min_distance}, {max_distance}")
        if arena_size < 2 * max_distance:
            raise ValueError(f"arena_size {arena_size} m must be at least 2 * max_distance ({2 * max_distance} m)")
        if arrival_radius <= 0:
            raise ValueError(f"arrival_radius must be positive, got {arrival_radius}")
        self.half_arena = 0.5 * float(arena_size)
        self.min_distance, self.max_distance = float(min_distance), float(max_distance)
        self.arrival_radius, self.arrival_bonus = float(arrival_radius), float(arrival_bonus)
        b, dev = core.num_envs, core.device
        self.target = torch.zeros(b, 2, device=dev)
        self.distance = torch.zeros(b, device=dev)  # to the current target: the base of the next progress reward
        self.step_distance = torch.zeros(b, device=dev)  # the one the last reward saw (the metric)
        self.reached = torch.zeros(b, dtype=torch.int64, device=dev)
        self.since = torch.zeros(b, dtype=torch.int64, device=dev)  # steps since the target appeared
        self.arrived = torch.zeros(b, dtype=torch.bool, device=dev)
        self.time_to_target = torch.zeros(b, device=dev)

    def _new_targets(self) -> torch.Tensor:
        return sample_targets(self, self.core.root_xz, self.min_distance, self.max_distance, self.half_arena)

    def _distance(self) -> torch.Tensor:
        return torch.linalg.vector_norm(self.target - self.core.root_xz, dim=1)

    def reset(self, mask):
        self.core.reset(mask)
        self.target = self.where(mask, self._new_targets(), self.target)
        zero = torch.zeros_like(self.reached)
        self.reached = self.where(mask, zero, self.reached)
        self.since = self.where(mask, zero, self.since)
        self.arrived = self.where(mask, torch.zeros_like(self.arrived), self.arrived)
        self.distance = self._distance()
        self.step_distance = self.where(mask, self.distance, self.step_distance)

    def set_targets(self, targets, mask=None) -> None:
        """Place targets by hand (e.g. a mouse click): ``targets`` (2,) or (B, 2) world xz m, where ``mask`` (B,)
        is set."""
        targets = torch.as_tensor(targets, dtype=torch.float32, device=self.core.device).reshape(-1, 2)
        if not bool(torch.isfinite(targets).all()) or bool((targets.abs() > self.half_arena).any()):
            raise ValueError(f"target {targets[0].tolist()} is outside the {2 * self.half_arena:g} m arena "
                             f"(|x|, |z| <= {self.half_arena:g} m)")
        targets = targets.expand(self.core.num_envs, 2)
        mask = None if mask is None else torch.as_tensor(mask, dtype=torch.bool, device=self.core.device)
        self.target = self.where(mask, targets, self.target)
        self.since = self.where(mask, torch.zeros_like(self.since), self.since)
        self.distance = self._distance()

    def set_goal(self, xz, mask=None) -> None:
        self.set_targets(xz, mask)

    def replan(self, mask):
        self.set_targets(self._new_targets(), mask)
        self.step_distance = self.where(mask, self.distance, self.step_distance)

    def desired_motion(self):
        direction, distance = toward(self.core.root_xz, self.target, self.core.facing())
        return direction, (distance / APPROACH_SECONDS).clamp(MIN_APPROACH_SPEED, MAX_APPROACH_SPEED)

    def _arrive(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Distance, progress reward and arrival bookkeeping shared with TimedTarget -> (distance, reward)."""
        distance = self._distance()
        self.arrived = distance < self.arrival_radius
        reward = self.distance - distance + self.arrival_bonus * self.arrived
        self.since = self.since + 1
        self.time_to_target = self.since * self.core.dt  # read only where arrived: before `since` restarts
        self.reached = self.reached + self.arrived
        return distance, reward

    def _replace_targets(self, mask: torch.Tensor, distance: torch.Tensor) -> None:
        """New targets where ``mask``; ``self.distance`` becomes ``distance`` or, where replaced, the new one."""
        if bool(mask.any()):
            self.target = torch.where(mask[:, None], self._new_targets(), self.target)
            self.since = torch.where(mask, torch.zeros_like(self.since), self.since)
            distance = self._distance()
        self.distance = distance

    def update(self):
        distance, reward = self._arrive()
        self.step_distance = distance
        self._replace_targets(self.arrived, distance)
        return reward, torch.zeros_like(self.arrived)

    def features(self):
        return self.core.to_char(self.target[:, None])[:, 0]  # (B, 2)

    def metrics(self):
        # On an arrival step the distance is the one the reward saw (to the target just reached).
        return {
            "distance_to_target": (self.step_distance, None),
            "targets_reached": (self.reached, None),
            "time_to_target": (self.time_to_target, self.arrived),
        }

    def draw_data(self, index):
        i = self.check_index(index)
        data = empty_draw_data()
        data["markers"].append({"position": ground_point(self.target[i].cpu()), "radius": self.arrival_radius,
                                "rgba": GOAL_RGBA.copy()})
        h = self.half_arena
        data["polylines"].append({"points": ground_polyline([[-h, -h], [h, -h], [h, h], [-h, h]], 0.01),
                                  "rgba": FAINT_RGBA.copy(), "closed": True})
        data["text"].append(f"targets reached: {int(self.reached[i])}")
        return data
