"""MotionEnv: one character of a task as a plain ``gymnasium.Env`` (what ``gymnasium.make`` returns).

It runs the batched environment with B = 1 and no autoreset, and unbatches its results: observation
``(O,)`` float32 numpy, reward ``float``, ``terminated`` / ``truncated`` ``bool``, and ``info`` a flat dict of
Python scalars: every task metric valid this step (event metrics such as ``time_to_target`` appear only
on the steps they happen), ``nonfinite`` and ``diverged``. Spaces, options and task specs are those of
:class:`envs.vec_env.MotionVecEnv` (``observation_space`` / ``action_space`` are its single-character
spaces). After an episode ends, call ``reset()``; stepping on continues the finished character.
"""

from __future__ import annotations

import gymnasium
import numpy as np
import torch
from gymnasium.vector import AutoresetMode

from envs.vec_env import MotionVecEnv


class MotionEnv(gymnasium.Env):
    """One character (see the module docstring); ``.vec`` is the underlying B = 1 batched environment."""

    metadata = {"render_modes": []}

    def __init__(self, task: str = "target", vae=None, *, render_mode: str | None = None, **options):
        if render_mode is not None:
            raise ValueError(
                f"render_mode={render_mode!r}: the environments do not render; draw env.core.world_joint_positions() "
                "and env.draw_data() with the viewer package"
            )
        if "num_envs" in options or "autoreset_mode" in options or "array_backend" in options:
            raise ValueError("MotionEnv is one character without autoreset; for batches use gymnasium.make_vec or "
                             "envs.MotionVecEnv")
        self.vec = MotionVecEnv(1, task, vae, array_backend="torch", autoreset_mode=AutoresetMode.DISABLED, **options)
        self.observation_space = self.vec.single_observation_space
        self.action_space = self.vec.single_action_space
        self.render_mode = None
        self._discrete = self.vec.core.discrete

    @property
    def core(self):
        return self.vec.core

    @property
    def task(self):
        return self.vec.task

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        obs, info = self.vec.reset(seed=seed, options=options)
        return obs[0].cpu().numpy(), _scalars(info)

    def step(self, action):
        a = action if isinstance(action, torch.Tensor) else np.asarray(action)
        expected = () if self._discrete else self.action_space.shape
        if tuple(a.shape) != expected:
            what = "one integer code index" if self._discrete else f"a float array of shape {expected} in [-1, 1]"
            raise ValueError(f"action has shape {tuple(a.shape)}; pass {what}")
        out = self.vec.step_tensors(a[None])
        info = {key: _scalar(values[0]) for key, (values, mask) in out.metrics.items() if mask is None or mask[0]}
        info["nonfinite"] = bool(out.nonfinite[0])
        info["diverged"] = bool(out.diverged[0])
        return out.obs[0].cpu().numpy(), float(out.reward[0]), bool(out.terminated[0]), bool(out.truncated[0]), info

    def draw_data(self) -> dict:
        """What a viewer draws besides the character (see envs.tasks.base)."""
        return self.vec.draw_data(0)

    def close(self):
        self.vec.close()


def _scalar(x: torch.Tensor):
    return bool(x) if x.dtype == torch.bool else (float(x) if x.dtype.is_floating_point else int(x))


def _scalars(info: dict) -> dict:
    """Vector info of one character (torch backend) -> flat dict of the valid entries as Python scalars."""
    return {key: _scalar(value[0]) for key, value in info.items()
            if not key.startswith("_") and bool(info["_" + key][0])}
