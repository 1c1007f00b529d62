"""SB3VecEnv: a Stable-Baselines3 ``VecEnv`` over one natively batched :class:`envs.MotionVecEnv`.

SB3 steps numpy arrays and wants, for every character whose episode ended in a step, the last observation
of that episode in ``infos[i]["terminal_observation"]`` and ``infos[i]["TimeLimit.truncated"]``
(truncated and not terminated), with the returned observation already the first of the next episode: the
environment's ``SAME_STEP`` autoreset gives exactly that (``info["final_obs"]``). Used by
``benchmarks/bench_ppo.py`` to measure SB3's PPO against :mod:`policies.train` on the same environment;
it works for training with SB3 too (``PPO("MlpPolicy", SB3VecEnv(env))``).
"""

from __future__ import annotations

import numpy as np
import torch
from gymnasium.vector import AutoresetMode
from stable_baselines3.common.vec_env.base_vec_env import VecEnv


def _numpy(x) -> np.ndarray:
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


class SB3VecEnv(VecEnv):
    """See the module docstring. ``env``: a MotionVecEnv with SAME_STEP autoreset (either array backend)."""

    def __init__(self, env):
        if env.autoreset_mode is not AutoresetMode.SAME_STEP:
            raise ValueError("SB3VecEnv needs a MotionVecEnv with autoreset_mode=SAME_STEP (the default)")
        self.env = env
        self._actions = None
        self._seed = None
        super().__init__(env.num_envs, env.single_observation_space, env.single_action_space)

    def reset(self):
        obs, _ = self.env.reset(seed=self._seed)
        self._seed = None
        return _numpy(obs)

    def seed(self, seed: int | None = None):
        self._seed = seed
        return [seed] * self.num_envs

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = actions

    def step_wait(self):
        obs, reward, terminated, truncated, info = self.env.step(self._actions)
        obs, reward = _numpy(obs), _numpy(reward).astype(np.float32)
        terminated, truncated = _numpy(terminated), _numpy(truncated)
        dones = terminated | truncated
        infos: list[dict] = [{} for _ in range(self.num_envs)]
        if dones.any():
            final_obs = _numpy(info["final_obs"])
            stats = {k: _numpy(v) for k, v in info["episode_stats"].items()}
            for i in np.flatnonzero(dones):
                infos[i] = {"terminal_observation": final_obs[i],
                            "TimeLimit.truncated": bool(truncated[i] and not terminated[i]),
                            "episode": {"r": float(stats["r"][i]), "l": int(stats["l"][i]),
                                        "t": float(stats["seconds"][i])}}
        return obs, reward, dones, infos

    def close(self) -> None:
        self.env.close()

    def get_attr(self, attr_name, indices=None):
        return [getattr(self.env, attr_name)] * len(self._indices(indices))

    def set_attr(self, attr_name, value, indices=None) -> None:
        setattr(self.env, attr_name, value)

    def env_method(self, method_name, *method_args, indices=None, **method_kwargs):
        result = getattr(self.env, method_name)(*method_args, **method_kwargs)
        return [result] * len(self._indices(indices))

    def env_is_wrapped(self, wrapper_class, indices=None):
        return [False] * len(self._indices(indices))

    def _indices(self, indices):
        if indices is None:
            return range(self.num_envs)
        return [indices] if isinstance(indices, int) else list(indices)
