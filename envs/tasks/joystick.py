"""Joystick: move in the commanded direction at the commanded speed, facing the commanded facing; the command
changes every few seconds.

=================== ===============================================================================
observation         ``[normalised condition frames (C*D), commanded travel direction in the character
                    frame (x, z) unit vector (2), commanded speed (1) m/s]``, and with
                    ``facing_command=True`` also ``[commanded facing in the character frame (2)]``
action              Box(-1, 1, (Z,)) latent / ``action_scale``, or Discrete(K) code (VQ manifold)
reward              ``exp((cos(e_face) - 1) + w (a_travel - 1) - |v - v_cmd|)`` in (0, 1]: e_face is
                    the angle between the character's facing and the commanded facing; a_travel is cos of
                    e_travel, the angle between its ground velocity and the commanded travel direction, while
                    it moves faster than 0.3 m/s, and fades to 0 as it stops while commanded to move (so
                    standing still is no way out of the travel term), weighted by
                    ``w = travel_weight * min(1, v_cmd / 0.5 m/s)`` (direction matters once it moves), v the
                    root's ground speed (m/s) over the step. Without ``facing_command`` the commanded facing
                    is the travel direction. ``travel_weight=0`` is the paper's
                    ``exp(cos(e) - 1) * exp(-|v - v_cmd|)`` (its code compared the facing with ``sin(speed)``
                    by mistake; here it is the commanded direction); the default 1 also asks the character to
                    go where it faces: trained without it, a character whose data has sidesteps reaches the
                    commanded facing while crab-walking (measured on Bandai-Namco: 35 deg between its velocity
                    and the command)
commands            travel direction uniform in [-pi, pi); speed 0 with probability
                    ``stand_probability`` (0), else uniform in ``min_speed``..``max_speed`` (0-2 m/s);
                    with ``facing_command``, a strafe (facing = travel turned by an angle uniform in
                    [-pi, pi)) with probability ``strafe_probability`` (0.3), its speed uniform in
                    ``min_speed``..``strafe_max_speed`` (None: max_speed; mocap sidesteps and walks back
                    slower than it runs), else facing = travel; a new command after a hold drawn uniformly
                    from ``change_interval`` (2-5 s); the reward of a step uses the command in force during it
termination         none (only a non-finite character state, see the environment)
truncation          ``max_episode_steps`` (default 900 = 30 s at 30 fps)
info metrics        ``heading_error_deg`` (|e_face|, degrees), ``travel_error_deg`` (|e_travel|, degrees, while
                    commanded faster than 0.3 m/s and moving; else 0), ``speed_error`` (|v - v_cmd| m/s),
                    ``speed`` (v m/s), ``command_speed`` (m/s), ``strafing`` (the commanded facing differs from
                    the travel direction by more than 30 degrees)
user input          ``set_command(direction, speed, hold_seconds=inf, facing=None)``: e.g. a gamepad's stick
                    (``facing`` None: face where you go)
desired motion      the commanded travel direction and speed
=================== ===============================================================================
"""

from __future__ import annotations

import math

import numpy as np
import torch

from envs.geometry import heading_vector
from envs.tasks.base import GOAL_RGBA, HINT_RGBA, Task, empty_draw_data, ground_point

DEGREES = 180.0 / math.pi
TRAVEL_WEIGHT_SPEED = 0.5  # m/s: the commanded speed at which the travel direction counts fully
TRAVEL_METRIC_SPEED = 0.3  # m/s: travel direction errors are measured above this commanded and actual speed
STRAFE_ANGLE = math.radians(30.0)


def _angle_between(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Signed angle (B,) from unit ground vectors a (B, 2) to b (B, 2), radians in (-pi, pi]."""
    cross = a[:, 0] * b[:, 1] - a[:, 1] * b[:, 0]
    return -torch.atan2(cross, (a * b).sum(dim=1))


class Joystick(Task):
    name = "joystick"
    default_max_episode_steps = 900
    accepts = frozenset({"command"})
    state_names = ("command_direction", "command_facing", "command_speed", "hold", "heading_error", "travel_error",
                   "travel_alignment", "speed", "step_command_speed", "step_strafing")

    def __init__(self, core, *, min_speed: float = 0.0, max_speed: float = 2.0,
                 change_interval: tuple[float, float] = (2.0, 5.0), stand_probability: float = 0.0,
                 facing_command: bool = False, strafe_probability: float = 0.3, travel_weight: float = 1.0,
                 strafe_max_speed: float | None = None):
        super().__init__(core)
        if not 0 <= min_speed <= max_speed:
            raise ValueError(f"need 0 <= min_speed <= max_speed (m/s), got {min_speed}, {max_speed}")
        lo, hi = (float(v) for v in change_interval)
        if not 0 < lo <= hi:
            raise ValueError(f"change_interval must be (low, high) seconds with 0 < low <= high, got {change_interval}")
        if not 0 <= stand_probability <= 1 or not 0 <= strafe_probability <= 1:
            raise ValueError("stand_probability and strafe_probability must lie in [0, 1]")
        if strafe_max_speed is not None and not strafe_max_speed > 0:
            raise ValueError(f"strafe_max_speed must be > 0 m/s (or None: max_speed), got {strafe_max_speed}")
        self.strafe_max_speed = float(max_speed) if strafe_max_speed is None else min(float(strafe_max_speed),
                                                                                       float(max_speed))
        if not travel_weight >= 0:
            raise ValueError(f"travel_weight must be >= 0, got {travel_weight}")
        self.travel_weight = float(travel_weight)
        self.min_speed, self.max_speed = float(min_speed), float(max_speed)
        self.change_interval = (lo, hi)
        self.stand_probability = float(stand_probability)
        self.facing_command = bool(facing_command)
        self.strafe_probability = float(strafe_probability) if self.facing_command else 0.0
        self.feature_size = 5 if self.facing_command else 3
        b, dev = core.num_envs, core.device
        self.command_direction = torch.zeros(b, 2, device=dev)  # unit ground vector, world: where to go
        self.command_facing = torch.zeros(b, 2, device=dev)  # unit ground vector, world: where to look
        self.command_speed = torch.zeros(b, device=dev)
        self.hold = torch.zeros(b, device=dev)  # seconds until the next command
        # What the last reward saw (the metrics): signed errors (rad), speed, the command's speed, strafing.
        self.heading_error = torch.zeros(b, device=dev)
        self.travel_error = torch.zeros(b, device=dev)
        self.travel_alignment = torch.ones(b, device=dev)  # what the reward's travel term sees, see _errors
        self.speed = torch.zeros(b, device=dev)
        self.step_command_speed = torch.zeros(b, device=dev)
        self.step_strafing = torch.zeros(b, dtype=torch.bool, device=dev)

    def _new_commands(self, mask: torch.Tensor | None) -> None:
        angle = self.uniform_angle()
        speed = self.uniform(self.min_speed, self.max_speed)
        # Draws only for the options in use, so the default commands are those of earlier versions.
        if self.stand_probability > 0:
            speed = torch.where(self.uniform(0.0, 1.0) < self.stand_probability, torch.zeros_like(speed), speed)
        facing_angle = angle
        if self.strafe_probability > 0:
            turn = self.uniform_angle()
            strafe = self.uniform(0.0, 1.0) < self.strafe_probability
            facing_angle = angle + torch.where(strafe, turn, torch.zeros_like(turn))
            if self.strafe_max_speed < self.max_speed:  # the same draw, squeezed: uniform up to strafe_max_speed
                squeeze = (self.strafe_max_speed - self.min_speed) / (self.max_speed - self.min_speed)
                speed = torch.where(strafe, self.min_speed + (speed - self.min_speed) * squeeze, speed)
        self.command_direction = self.where(mask, heading_vector(angle), self.command_direction)
        self.command_facing = self.where(mask, heading_vector(facing_angle), self.command_facing)
        self.command_speed = self.where(mask, speed, self.command_speed)
        self.hold = self.where(mask, self.uniform(*self.change_interval), self.hold)

    def set_command(self, direction, speed, mask=None, hold_seconds: float = math.inf, facing=None) -> None:
        """Command by hand (e.g. from a gamepad): ``direction`` (B, 2) world ground vector to travel along
        (normalised here), ``speed`` (B,) m/s, ``facing`` (B, 2) where to look (None: where it goes), where
        ``mask`` (B,) is set; no random change for ``hold_seconds`` (default: never)."""
        dev, b = self.core.device, self.core.num_envs
        direction = self._unit(direction, "direction")
        facing = direction if facing is None else self._unit(facing, "facing")
        speed = torch.as_tensor(speed, dtype=torch.float32, device=dev).expand(b)
        if not bool(torch.isfinite(speed).all() and (speed >= 0).all()):
            raise ValueError("set_command: the speed must be finite and >= 0 m/s")
        mask = None if mask is None else torch.as_tensor(mask, dtype=torch.bool, device=dev)
        self.command_direction = self.where(mask, direction, self.command_direction)
        self.command_facing = self.where(mask, facing, self.command_facing)
        self.command_speed = self.where(mask, speed, self.command_speed)
        self.hold = self.where(mask, torch.full_like(self.hold, hold_seconds), self.hold)

    def _unit(self, vectors, what: str) -> torch.Tensor:
        v = torch.as_tensor(vectors, dtype=torch.float32, device=self.core.device).reshape(-1, 2)
        v = v.expand(self.core.num_envs, 2)
        norm = torch.linalg.vector_norm(v, dim=1, keepdim=True)
        if not bool(torch.isfinite(norm).all() and (norm > 1e-9).all()):
            raise ValueError(f"set_command: the {what} must be a finite, non-zero ground vector (x, z)")
        return v / norm

    def desired_motion(self):
        return self.command_direction, self.command_speed

    def _in_char_frame(self, vectors: torch.Tensor) -> torch.Tensor:
        """(B, 2) a world ground direction seen by the character: (sin e, cos e) for the angle e to its facing."""
        return self.core.vectors_to_char(vectors[:, None])[:, 0]

    def _errors(self) -> None:
        """Facing and travel errors, speed and the commanded strafe, as the reward and the metrics see them."""
        facing = self._in_char_frame(self.command_facing)
        self.heading_error = torch.atan2(facing[:, 0], facing[:, 1])
        self.speed = self.core.speed()
        velocity = self.core.root_velocity()  # (B, 2) world m/s
        moving = (self.speed > TRAVEL_METRIC_SPEED) & (self.command_speed > TRAVEL_METRIC_SPEED)
        unit = velocity / self.speed.clamp_min(1e-6)[:, None]
        self.travel_error = torch.where(moving, _angle_between(self.command_direction, unit),
                                        torch.zeros_like(self.speed))
        # The reward's travel term: cos(e_travel) once the character moves faster than TRAVEL_METRIC_SPEED, fading to 0
        # as it stops while commanded to move. With cos(e_travel) alone, standing still has no travel error at all,
        # and PPO learned exactly that first (Bandai-Namco, speeds 0-3.85 m/s: 0.13 m/s after 20 minutes).
        along = (velocity * self.command_direction).sum(dim=1)  # (B,) m/s along the commanded direction
        self.travel_alignment = torch.where(self.command_speed > TRAVEL_METRIC_SPEED,
                                            along / self.speed.clamp_min(TRAVEL_METRIC_SPEED),
                                            torch.ones_like(along))
        self.step_command_speed = self.command_speed
        offset = _angle_between(self.command_direction, self.command_facing).abs()
        self.step_strafing = offset > STRAFE_ANGLE

    def reset(self, mask):
        self.core.reset(mask)
        self._new_commands(mask)
        keep = {name: getattr(self, name) for name in ("heading_error", "travel_error", "travel_alignment", "speed",
                                                        "step_command_speed", "step_strafing")}
        self._errors()
        for name, old in keep.items():
            setattr(self, name, self.where(mask, getattr(self, name), old))

    def update(self):
        self._errors()
        weight = self.travel_weight * (self.command_speed / TRAVEL_WEIGHT_SPEED).clamp(0.0, 1.0)
        # One exp: exp(cos e_face - 1) * exp(w (a_travel - 1)) * exp(-|v - v_cmd|).
        reward = torch.exp(torch.cos(self.heading_error) - 1.0 + weight * (self.travel_alignment - 1.0)
                           - (self.speed - self.command_speed).abs())
        self.hold = self.hold - self.core.dt
        change = self.hold <= 0
        if bool(change.any()):
            self._new_commands(change)
        return reward, torch.zeros_like(change)

    def features(self):
        parts = [self._in_char_frame(self.command_direction), self.command_speed[:, None]]
        if self.facing_command:
            parts.append(self._in_char_frame(self.command_facing))
        return torch.cat(parts, dim=1)  # (B, 3) or (B, 5)

    def metrics(self):
        return {
            "heading_error_deg": (self.heading_error.abs() * DEGREES, None),
            "travel_error_deg": (self.travel_error.abs() * DEGREES, None),
            "speed_error": ((self.speed - self.step_command_speed).abs(), None),
            "speed": (self.speed, None),
            "command_speed": (self.step_command_speed, None),
            "strafing": (self.step_strafing, None),
        }

    def draw_data(self, index):
        i = self.check_index(index)
        data = empty_draw_data()
        root = self.core.root_xz[i].cpu().numpy().astype(np.float64)
        command = self.command_direction[i].cpu().numpy().astype(np.float64)
        facing = heading_vector(self.core.yaw[i]).cpu().numpy().astype(np.float64)
        length = 0.5 + float(self.command_speed[i])  # the arrow grows with the commanded speed
        data["polylines"].append({"points": np.stack([ground_point(root), ground_point(root + length * command)]),
                                  "rgba": GOAL_RGBA.copy(), "closed": False})
        data["polylines"].append({"points": np.stack([ground_point(root), ground_point(root + 1.0 * facing)]),
                                  "rgba": HINT_RGBA.copy(), "closed": False})
        data["markers"].append({"position": ground_point(root + length * command), "radius": 0.1,
                                "rgba": GOAL_RGBA.copy()})
        data["text"].append(f"command: {float(self.command_speed[i]):.2f} m/s, "
                            f"speed {float(self.speed[i]):.2f} m/s")
        return data
