"""SamplingController: a gradient-free controller that steers a Motion VAE by sampling its prior.

Every frame, for each of the B characters, it draws K latents from the manifold's prior, decodes all B*K
candidate next frames in ONE batched ``manifold.step`` call, and keeps the candidate whose root motion best
matches what the task wants now: a turn rate toward the desired direction and a ground speed. No training,
no loops over characters; it works for every manifold the environments accept (Gaussian: it returns the
latent as an action ``z / action_scale``; discrete VQ: the chosen code).

The desired direction ``theta`` (character frame, radians, positive = to the left) and speed per task, read
from the task part of the observation:

=============== ==============================================================================
target          toward the target; speed grows with its distance (walk near, run far)
timed_target    toward the target; speed enough to arrive before the deadline
joystick        the commanded direction and speed
path_follow     toward the look-ahead point one step (``lookahead_seconds``) ahead; speed to get
                there in that time
maze            the free ray direction (nothing within ``MAZE_CLEARANCE_M``) closest to the direction of
                the next route waypoint (the goal's direction without ``route_hint``), at walking speed
random_walk     straight on at walking speed
=============== ==============================================================================

Score of a candidate (higher is better): ``-|turn rate - desired turn rate| / 1 rad/s - |speed - desired|
/ 1 m/s``, the desired turn rate being ``TURN_GAIN * theta`` clipped to ``MAX_TURN_RATE``: a proportional
heading controller, so candidates compete on comparable units whatever the heading error.
"""

from __future__ import annotations

import math

import torch

from envs.manifold_source import pose_layout

TURN_GAIN = 2.5  # 1/s: desired turn rate per radian of heading error
MAX_TURN_RATE = 4.0  # rad/s
WALK_SPEED = 1.0  # m/s
MAX_SPEED = 3.5  # m/s: about the fastest locomotion in the shipped data
MAZE_CLEARANCE_M = 1.5
TASKS = ("target", "timed_target", "joystick", "path_follow", "maze", "random_walk")


class SamplingController:
    """See the module docstring. ``controller(env, obs)`` -> actions for ``env.step``."""

    def __init__(self, manifold, task: str, *, num_candidates: int = 32, action_scale: float = 4.0,
                 seed: int = 0, lookahead_seconds: float = 0.5, ray_length: float = 10.0,
                 ray_offsets: torch.Tensor | None = None, route_hint: bool = True):
        if task not in TASKS:
            raise ValueError(f"task {task!r}: the sampling controller knows {', '.join(TASKS)}")
        if int(num_candidates) < 1:
            raise ValueError(f"num_candidates must be >= 1, got {num_candidates}")
        self.manifold = manifold
        self.task = task
        self.num_candidates = int(num_candidates)
        self.action_scale = float(action_scale)
        self.layout = pose_layout(manifold)
        self.fps = float(getattr(manifold, "fps", None) or 30.0)
        self.discrete = bool(getattr(manifold, "discrete", False))
        self.device = torch.device(getattr(manifold, "device", "cpu"))
        self.generator = torch.Generator(device=self.device).manual_seed(int(seed))
        self.lookahead_seconds = float(lookahead_seconds)
        self.ray_length = float(ray_length)
        self.ray_offsets = ray_offsets
        self.route_hint = bool(route_hint)

    @classmethod
    def for_env(cls, env, **kwargs) -> SamplingController:
        """A controller matching a MotionVecEnv's manifold, task, action scale and task options."""
        task = env.task
        options = {"action_scale": env.action_scale}
        if hasattr(task, "lookahead_seconds"):
            options["lookahead_seconds"] = task.lookahead_seconds
        if hasattr(task, "ray_offsets"):
            options["ray_offsets"] = task.ray_offsets
            options["ray_length"] = task.ray_length
            options["route_hint"] = task.route_hint
        return cls(env.manifold, task.name, **{**options, **kwargs})

    def __call__(self, env, obs: torch.Tensor) -> torch.Tensor:
        obs = torch.as_tensor(obs, device=self.device)
        return self.act(env.core.cond, obs[:, env.observation_layout["task"]])

    # ---- the desired motion -------------------------------------------------------------------------
    def desired(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Task features (B, F) -> (direction theta (B,) rad, character frame, + left; speed (B,) m/s)."""
        f = features.to(torch.float32)
        b = f.shape[0]
        if self.task in ("target", "timed_target"):
            theta = torch.atan2(f[:, 0], f[:, 1])
            distance = torch.linalg.vector_norm(f[:, :2], dim=1)
            speed = (distance / 2.0).clamp(0.8, MAX_SPEED)
            if self.task == "timed_target":
                needed = distance / (f[:, 2] - 0.5).clamp_min(0.1)
                speed = torch.maximum(speed, needed).clamp(0.8, MAX_SPEED)
            return theta, speed
        if self.task == "joystick":
            return torch.atan2(f[:, 0], f[:, 1]), f[:, 2]
        if self.task == "path_follow":
            ahead = f[:, 2:4] if f.shape[1] >= 4 else f[:, 0:2]  # the point one look-ahead step on
            theta = torch.atan2(ahead[:, 0], ahead[:, 1])
            speed = (torch.linalg.vector_norm(ahead, dim=1) / self.lookahead_seconds).clamp(0.0, MAX_SPEED)
            return theta, speed
        if self.task == "maze":
            return self._maze_direction(f), torch.full((b,), WALK_SPEED, device=f.device)
        return torch.zeros(b, device=f.device), torch.full((b,), WALK_SPEED, device=f.device)

    def _maze_direction(self, f: torch.Tensor) -> torch.Tensor:
        n = len(self.ray_offsets) if self.ray_offsets is not None else f.shape[1] - (6 if self.route_hint else 2)
        rays = f[:, :n]  # (B, N) hit fractions
        aim = f[:, n + 2 : n + 4] if self.route_hint else f[:, n : n + 2]  # (B, 2) next waypoint or goal, char frame
        offsets = self.ray_offsets
        if offsets is None:
            offsets = torch.arange(n, device=f.device, dtype=torch.float32) * (2.0 * math.pi / n)
        offsets = offsets.to(f.device)  # (N,) ray angles, + turning left
        goal_angle = torch.atan2(aim[:, 0], aim[:, 1])  # (B,)
        free = rays * self.ray_length > MAZE_CLEARANCE_M  # (B, N)
        closeness = torch.cos(offsets[None] - goal_angle[:, None])  # (B, N)
        score = torch.where(free, closeness, closeness - 3.0)
        best = offsets[score.argmax(dim=1)]
        return torch.atan2(torch.sin(best), torch.cos(best))

    # ---- sampling -----------------------------------------------------------------------------------
    @torch.no_grad()
    def act(self, cond_raw: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
        """Raw condition windows (B, C, D) + task features (B, F) -> actions (B, Z) in [-1, 1] or codes (B,)."""
        b, k = cond_raw.shape[0], self.num_candidates
        theta, speed = self.desired(features)
        candidates = self.manifold.sample_prior(b * k, generator=self.generator)  # (B*K, Z) or (B*K,)
        if hasattr(candidates, "to"):
            candidates = candidates.to(self.device)
        cond = cond_raw.repeat_interleave(k, dim=0)  # (B*K, C, D)
        nxt = self.manifold.step(candidates, cond).to(torch.float32)  # (B*K, D)
        delta = self.layout.root_deltas(nxt).reshape(b, k, 3)  # (B, K, 3)
        cand_speed = torch.linalg.vector_norm(delta[..., :2], dim=-1) * self.fps  # (B, K)
        cand_turn = delta[..., self.layout.root_dyaw] * self.fps  # (B, K) rad/s
        want_turn = (TURN_GAIN * theta).clamp(-MAX_TURN_RATE, MAX_TURN_RATE)  # (B,)
        score = -(cand_turn - want_turn[:, None]).abs() - (cand_speed - speed[:, None]).abs()
        best = score.argmax(dim=1)  # (B,)
        rows = torch.arange(b, device=best.device) * k + best
        chosen = candidates[rows]
        if self.discrete:
            return chosen.long()
        return (chosen / self.action_scale).clamp(-1.0, 1.0)
