"""Task: the goal, observation features, reward and metrics of one environment kind, for B characters.

A task owns the goal state of every character and reads / resets the character state through a
:class:`envs.motion_core.MotionCore`. The environment (``envs.vec_env``) calls, in order:

* ``reset(mask)`` (B,) bool: restart those characters (``core.reset``) and give them new goals;
* ``latent(action)`` -> what ``core.step`` takes (the policy action scaled, or, for RandomWalk, prior samples);
* ``update()`` after ``core.step`` -> ``(reward (B,), terminated (B,) bool)``; may give characters new goals;
* ``features()`` -> (B, feature_size) task part of the observation (after the condition frames);
* ``metrics()`` -> ``{name: (values (B,), mask (B,) bool or None)}``; ``None`` means valid for every character,
  a mask marks event metrics (e.g. ``time_to_target`` only where a target was just reached).

What a user (the app, a script) may ask of a task, the same call for every task:

* ``accepts``: which of ``"goal"`` (:meth:`Task.set_goal`: a point on the ground), ``"path"``
  (:meth:`Task.set_path`) and ``"command"`` (:meth:`Task.set_command`: a direction and speed) it takes;
  the others raise :class:`TaskInputError`;
* ``replan(mask)``: after the environment moved characters (``MotionVecEnv.place``), goals relative to where
  they now stand; ``placeable = False`` tasks (the maze: characters start in its cells) refuse ``place``;
* ``desired_motion()`` -> ``(direction (B, 2) world unit vector, speed (B,) m/s)``: what the goal asks of each
  character now. The scripted baseline (``policies.SamplingController``) steers toward it and the app's HUD
  shows it.

State: ``state_names`` lists every tensor attribute that changes while the task runs; ``state_dict()`` /
``load_state_dict()`` copy exactly those (so a resumed training continues exactly).

Draw data (for a viewer, which the environment never imports): ``draw_data(i)`` returns plain data in
world metres, y-up, colours as RGBA floats in [0, 1]::

    {"markers":   [{"position": (3,) float array, "radius": float, "rgba": (4,) float array}, ...],
     "polylines": [{"points": (P, 3) float array, "rgba": (4,), "closed": bool}, ...],
     "boxes":     [{"center": (3,) float array, "half_extents": (3,) float array, "rgba": (4,)}, ...],
     "text":      [str, ...]}

Every key is always present (possibly with an empty list).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from envs.motion_core import MotionCore

GOAL_RGBA = np.array([0.95, 0.35, 0.2, 1.0])
HINT_RGBA = np.array([0.3, 0.6, 0.95, 1.0])
FAINT_RGBA = np.array([0.6, 0.6, 0.6, 0.8])
MARKER_HEIGHT = 0.05  # m: ground markers sit just above the floor so they are not z-fighting it


def empty_draw_data() -> dict:
    return {"markers": [], "polylines": [], "boxes": [], "text": []}


def ground_point(xz, height: float = MARKER_HEIGHT) -> np.ndarray:
    """(2,) ground position -> (3,) y-up point at ``height``."""
    x, z = (float(v) for v in np.asarray(xz, dtype=np.float64).reshape(2))
    return np.array([x, height, z])


def ground_polyline(points_xz, height: float = MARKER_HEIGHT) -> np.ndarray:
    """(P, 2) ground points -> (P, 3)."""
    p = np.asarray(points_xz, dtype=np.float64).reshape(-1, 2)
    return np.stack([p[:, 0], np.full(len(p), height), p[:, 1]], axis=1)


WALK_SPEED = 1.0  # m/s: what a task without a speed of its own asks for
MAX_GROUND_COORDINATE = 1000.0  # m: goals and paths farther out are input mistakes (and lose float32 precision)


class TaskInputError(ValueError):
    """A request the task does not take (e.g. a path for the target task)."""


class Task:
    """Base class. Subclasses set ``name``, ``feature_size``, ``default_max_episode_steps`` and ``state_names``."""

    name = "task"
    feature_size = 0
    default_max_episode_steps = 600
    ignores_action = False
    accepts: frozenset[str] = frozenset()
    placeable = True
    state_names: tuple[str, ...] = ()

    def __init__(self, core: MotionCore):
        self.core = core
        self.action_scale = 1.0  # set by the environment

    # ---- random numbers from the core's generator (one stream for the whole environment) --------
    def uniform(self, low: float, high: float, shape: tuple[int, ...] | None = None) -> torch.Tensor:
        shape = (self.core.num_envs,) if shape is None else shape
        u = torch.rand(shape, generator=self.core.generator, device=self.core.device)
        return low + (high - low) * u

    def uniform_angle(self) -> torch.Tensor:
        return self.uniform(-math.pi, math.pi)

    # ---- the protocol -----------------------------------------------------------------------------
    def reset(self, mask: torch.Tensor | None) -> None:
        self.core.reset(mask)

    def latent(self, action: torch.Tensor) -> torch.Tensor:
        """Validated action -> manifold latent: scaled floats (Gaussian), or the code indices as they are (discrete)."""
        return action if self.core.discrete else action * self.action_scale

    def update(self) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def features(self) -> torch.Tensor:
        return torch.zeros(self.core.num_envs, 0, device=self.core.device)

    def metrics(self) -> dict[str, tuple[torch.Tensor, torch.Tensor | None]]:
        return {}

    def desired_motion(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(direction (B, 2) world unit vector, speed (B,) m/s): straight on at walking speed by default."""
        return self.core.facing(), torch.full((self.core.num_envs,), WALK_SPEED, device=self.core.device)

    def draw_data(self, index: int) -> dict:
        self.check_index(index)
        return empty_draw_data()

    # ---- what a user may ask (see the module docstring) --------------------------------------------
    def set_goal(self, xz, mask=None) -> None:
        """Put the goal at ground point ``xz`` ((2,) or (B, 2) world m) where ``mask`` (B,) is set."""
        raise TaskInputError(f"the {self.name} task takes no goal point")

    def set_path(self, points, mask=None) -> None:
        raise TaskInputError(f"the {self.name} task takes no path")

    def set_command(self, direction, speed, mask=None, **options) -> None:
        raise TaskInputError(f"the {self.name} task takes no direction / speed command")

    def replan(self, mask: torch.Tensor | None) -> None:
        """Goals relative to where the characters (``mask``, None = all) stand now; nothing by default."""

    # ---- state --------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, torch.Tensor]:
        return {name: getattr(self, name).detach().cpu().clone() for name in self.state_names}

    def load_state_dict(self, state: dict) -> None:
        missing = sorted(set(self.state_names) - set(state))
        extra = sorted(set(state) - set(self.state_names))
        if missing or extra:
            raise ValueError(f"task state for {self.name!r}: missing {missing}, unexpected {extra}; it was saved by "
                             "another task or version")
        for name in self.state_names:
            old, new = getattr(self, name), state[name]
            if tuple(old.shape) != tuple(new.shape):
                raise ValueError(f"task state {self.name}.{name} has shape {tuple(new.shape)}, this task "
                                 f"{tuple(old.shape)}: another number of characters or options")
            setattr(self, name, new.to(device=old.device, dtype=old.dtype))

    def close(self) -> None:
        """Release outside resources (e.g. a physics client)."""

    # ---- helpers ------------------------------------------------------------------------------------
    def check_index(self, index: int) -> int:
        b = self.core.num_envs
        if not isinstance(index, (int, np.integer)) or not -b <= int(index) < b:
            raise IndexError(f"env index {index!r} is out of range for {b} environments")
        return int(index) % b

    def where(self, mask: torch.Tensor | None, new: torch.Tensor, old: torch.Tensor) -> torch.Tensor:
        """``new`` where ``mask`` (B,) is set (everywhere when None), else ``old``; any trailing dims."""
        if mask is None:
            return new.clone()
        return torch.where(mask.reshape(mask.shape + (1,) * (new.dim() - 1)), new, old)
