"""TimedTarget: reach each target before its deadline; the time left is part of the observation.

=================== ===============================================================================
observation         ``[normalised condition frames (C*D), target (x, z) in the character frame (2) m,
                    time left (1) s]``
action              Box(-1, 1, (Z,)) latent / ``action_scale``, or Discrete(K) code (VQ manifold)
reward              progress toward the target this step (m); ``+on_time_bonus`` (1.0) on reaching it
                    in time; ``-late_penalty`` (1.0) on the step its deadline passes unreached
deadline            each target gets ``distance / pace + slack_seconds`` with pace uniform in
                    ``min_pace``..``max_pace`` (1.0-2.0 m/s) and slack 1 s (time to turn and start)
new target          on arrival (within ``arrival_radius``, 0.5 m) or when the deadline passes;
                    placement as Target (2-8 m away, inside a 40 m arena)
termination         none (only a non-finite character state, see the environment)
truncation          ``max_episode_steps`` (default 900 = 30 s at 30 fps)
info metrics        ``distance_to_target`` (m), ``time_left`` (s), ``targets_reached`` (in time, count),
                    ``targets_missed`` (count), ``time_to_target`` (s; masked: arrival steps only)
=================== ===============================================================================

User input and desired motion as Target's; the desired speed is at least what arrives 0.5 s before the deadline.

Options of Target (``arena_size``, ``min_distance``, ``max_distance``, ``arrival_radius``) apply too.
"""

from __future__ import annotations

import torch

from envs.tasks.target import MAX_APPROACH_SPEED, MIN_APPROACH_SPEED, Target

DEADLINE_MARGIN_S = 0.5  # desired motion: plan to arrive this much before the deadline


class TimedTarget(Target):
    name = "timed_target"
    feature_size = 3
    default_max_episode_steps = 900
    state_names = Target.state_names + ("time_left", "step_time_left", "missed", "late")

    def __init__(self, core, *, min_pace: float = 1.0, max_pace: float = 2.0, slack_seconds: float = 1.0,
                 on_time_bonus: float = 1.0, late_penalty: float = 1.0, **target_options):
        super().__init__(core, arrival_bonus=on_time_bonus, **target_options)
        if not 0 < min_pace <= max_pace:
            raise ValueError(f"need 0 < min_pace <= max_pace (m/s), got {min_pace}, {max_pace}")
        if slack_seconds < 0:
            raise ValueError(f"slack_seconds must be >= 0, got {slack_seconds}")
        self.min_pace, self.max_pace = float(min_pace), float(max_pace)
        self.slack_seconds, self.late_penalty = float(slack_seconds), float(late_penalty)
        b, dev = core.num_envs, core.device
        self.time_left = torch.zeros(b, device=dev)
        self.step_time_left = torch.zeros(b, device=dev)
        self.missed = torch.zeros(b, dtype=torch.int64, device=dev)
        self.late = torch.zeros(b, dtype=torch.bool, device=dev)

    def _deadlines(self) -> torch.Tensor:
        return self.distance / self.uniform(self.min_pace, self.max_pace) + self.slack_seconds

    def reset(self, mask):
        super().reset(mask)
        self.time_left = self.where(mask, self._deadlines(), self.time_left)
        self.step_time_left = self.where(mask, self.time_left, self.step_time_left)
        self.missed = self.where(mask, torch.zeros_like(self.missed), self.missed)
        self.late = self.where(mask, torch.zeros_like(self.late), self.late)

    def set_targets(self, targets, mask=None, seconds=None) -> None:
        """Place targets by hand with ``seconds`` (B,) to reach them (default: drawn as for a new target)."""
        super().set_targets(targets, mask)
        mask = None if mask is None else torch.as_tensor(mask, dtype=torch.bool, device=self.core.device)
        allowed = self._deadlines() if seconds is None else torch.as_tensor(
            seconds, dtype=torch.float32, device=self.core.device).expand(self.core.num_envs)
        self.time_left = self.where(mask, allowed, self.time_left)

    def desired_motion(self):
        direction, speed = super().desired_motion()
        distance = torch.linalg.vector_norm(self.target - self.core.root_xz, dim=1)
        needed = distance / (self.time_left - DEADLINE_MARGIN_S).clamp_min(0.1)
        return direction, torch.maximum(speed, needed).clamp(MIN_APPROACH_SPEED, MAX_APPROACH_SPEED)

    def update(self):
        distance, reward = self._arrive()
        self.step_distance = distance
        self.time_left = self.time_left - self.core.dt
        self.step_time_left = self.time_left
        self.late = (self.time_left < 0) & ~self.arrived
        reward = reward - self.late_penalty * self.late
        self.missed = self.missed + self.late
        renew = self.arrived | self.late
        self._replace_targets(renew, distance)
        if bool(renew.any()):
            self.time_left = torch.where(renew, self._deadlines(), self.time_left)
        return reward, torch.zeros_like(renew)

    def features(self):
        return torch.cat((super().features(), self.time_left[:, None]), dim=1)  # (B, 3)

    def metrics(self):
        out = super().metrics()
        out["time_left"] = (self.step_time_left, None)
        out["targets_missed"] = (self.missed, None)
        return out

    def draw_data(self, index):
        data = super().draw_data(index)
        i = self.check_index(index)
        data["text"].append(f"time left: {float(self.time_left[i]):.1f} s, missed: {int(self.missed[i])}")
        return data
