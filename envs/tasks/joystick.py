"""Joystick: face the commanded direction at the commanded speed; the command changes every few seconds.

=================== ===============================================================================
observation         ``[normalised condition frames (C*D), commanded direction in the character frame
                    (x, z) unit vector (2), commanded speed (1) m/s]``
action              Box(-1, 1, (Z,)) latent / ``action_scale``, or Discrete(K) code (VQ manifold)
reward              ``exp(cos(e) - 1) * exp(-|v - v_cmd|)`` in (0, 1]: e is the angle between the
                    character's facing and the commanded direction, v the root's ground speed (m/s)
                    over the step. (The reference code compared the facing with ``sin(speed)`` by
                    mistake; here it is the commanded direction.)
commands            direction uniform in [-pi, pi), speed uniform in ``min_speed``..``max_speed``
                    (0-2 m/s); a new command after a hold drawn uniformly from ``change_interval``
                    (2-5 s); the reward of a step uses the command in force during it
termination         none (only a non-finite character state, see the environment)
truncation          ``max_episode_steps`` (default 900 = 30 s at 30 fps)
info metrics        ``heading_error_deg`` (|e| in degrees), ``speed_error`` (|v - v_cmd| m/s),
                    ``speed`` (v m/s), ``command_speed`` (m/s)
user input          ``set_command(direction, speed, hold_seconds=inf)``: e.g. a gamepad's stick
desired motion      the command
=================== ===============================================================================
"""

from __future__ import annotations

import math

import numpy as np
import torch

from envs.geometry import heading_vector
from envs.tasks.base import GOAL_RGBA, HINT_RGBA, Task, empty_draw_data, ground_point

DEGREES = 180.0 / math.pi


class Joystick(Task):
    name = "joystick"
    feature_size = 3
    default_max_episode_steps = 900
    accepts = frozenset({"command"})
    state_names = ("command_direction", "command_speed", "hold", "heading_error", "speed", "step_command_speed")

    def __init__(self, core, *, min_speed: float = 0.0, max_speed: float = 2.0,
                 change_interval: tuple[float, float] = (2.0, 5.0)):
        super().__init__(core)
        if not 0 <= min_speed <= max_speed:
            raise ValueError(f"need 0 <= min_speed <= max_speed (m/s), got {min_speed}, {max_speed}")
        lo, hi = (float(v) for v in change_interval)
        if not 0 < lo <= hi:
            raise ValueError(f"change_interval must be (low, high) seconds with 0 < low <= high, got {change_interval}")
        self.min_speed, self.max_speed = float(min_speed), float(max_speed)
        self.change_interval = (lo, hi)
        b, dev = core.num_envs, core.device
        self.command_direction = torch.zeros(b, 2, device=dev)  # unit ground vector, world
        self.command_speed = torch.zeros(b, device=dev)
        self.hold = torch.zeros(b, device=dev)  # seconds until the next command
        # What the last reward saw (the metrics): signed heading error (rad), speed, the command's speed.
        self.heading_error = torch.zeros(b, device=dev)
        self.speed = torch.zeros(b, device=dev)
        self.step_command_speed = torch.zeros(b, device=dev)

    def _new_commands(self, mask: torch.Tensor | None) -> None:
        self.command_direction = self.where(mask, heading_vector(self.uniform_angle()), self.command_direction)
        self.command_speed = self.where(mask, self.uniform(self.min_speed, self.max_speed), self.command_speed)
        self.hold = self.where(mask, self.uniform(*self.change_interval), self.hold)

    def set_command(self, direction, speed, mask=None, hold_seconds: float = math.inf) -> None:
        """Command by hand (e.g. from a gamepad): ``direction`` (B, 2) world ground vector (normalised here),
        ``speed`` (B,) m/s, where ``mask`` (B,) is set; no random change for ``hold_seconds`` (default: never)."""
        dev, b = self.core.device, self.core.num_envs
        direction = torch.as_tensor(direction, dtype=torch.float32, device=dev).reshape(-1, 2).expand(b, 2)
        norm = torch.linalg.vector_norm(direction, dim=1, keepdim=True)
        speed = torch.as_tensor(speed, dtype=torch.float32, device=dev).expand(b)
        if not bool(torch.isfinite(norm).all() and (norm > 1e-9).all()):
            raise ValueError("set_command: the direction must be a finite, non-zero ground vector (x, z)")
        if not bool(torch.isfinite(speed).all() and (speed >= 0).all()):
            raise ValueError("set_command: the speed must be finite and >= 0 m/s")
        direction = direction / norm
        mask = None if mask is None else torch.as_tensor(mask, dtype=torch.bool, device=dev)
        self.command_direction = self.where(mask, direction, self.command_direction)
        self.command_speed = self.where(mask, speed, self.command_speed)
        self.hold = self.where(mask, torch.full_like(self.hold, hold_seconds), self.hold)

    def desired_motion(self):
        return self.command_direction, self.command_speed

    def _command_in_char_frame(self) -> torch.Tensor:
        """(B, 2) the commanded direction seen by the character: (sin e, cos e) for heading error e."""
        return self.core.vectors_to_char(self.command_direction[:, None])[:, 0]

    def reset(self, mask):
        self.core.reset(mask)
        self._new_commands(mask)
        command = self._command_in_char_frame()
        self.heading_error = self.where(mask, torch.atan2(command[:, 0], command[:, 1]), self.heading_error)
        self.speed = self.where(mask, self.core.speed(), self.speed)
        self.step_command_speed = self.where(mask, self.command_speed, self.step_command_speed)

    def update(self):
        command = self._command_in_char_frame()
        self.heading_error = torch.atan2(command[:, 0], command[:, 1])
        self.speed = self.core.speed()
        self.step_command_speed = self.command_speed
        # exp(cos e - 1) * exp(-|v - v_cmd|) in one exp; cos e is the command's forward component.
        reward = torch.exp(command[:, 1] - 1.0 - (self.speed - self.command_speed).abs())
        self.hold = self.hold - self.core.dt
        change = self.hold <= 0
        if bool(change.any()):
            self._new_commands(change)
        return reward, torch.zeros_like(change)

    def features(self):
        return torch.cat((self._command_in_char_frame(), self.command_speed[:, None]), dim=1)  # (B, 3)

    def metrics(self):
        return {
            "heading_error_deg": (self.heading_error.abs() * DEGREES, None),
            "speed_error": ((self.speed - self.step_command_speed).abs(), None),
            "speed": (self.speed, None),
            "command_speed": (self.step_command_speed, None),
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
