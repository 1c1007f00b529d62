"""Gymnasium environments: Motion VAE characters given tasks, natively batched in torch.

Registered ids (``import envs`` registers them; it loads no torch until an environment is made)::

    MVAE/RandomWalk-v0  MVAE/Target-v0  MVAE/TimedTarget-v0  MVAE/Joystick-v0  MVAE/PathFollow-v0  MVAE/Maze-v0

``gymnasium.make(id, vae=...)`` gives a one-character :class:`MotionEnv`; ``gymnasium.make_vec(id,
num_envs=N, vae=...)`` gives the natively batched :class:`MotionVecEnv` (not a SyncVectorEnv of N copies).
``vae`` is a checkpoint path, a manifold object, or None for the default character's VAE; ``character`` a
bundle (folder or shipped name, :mod:`characters.bundle`) whose VAE and action scale are used. Other keyword
options: ``device``, ``array_backend`` ("numpy" | "torch", vector only), ``action_scale`` (4.0),
``max_episode_steps``, ``start_frames``, ``fps``, ``autoreset_mode`` (vector only) and the task's own options
(each task module's docstring is its spec: ``envs/tasks/*.py``).

Modules: ``motion_core`` (batched character state), ``vec_env`` / ``single_env`` (the Gymnasium APIs),
``registry`` (the one task list: names, aliases, ids, policy file names), ``tasks`` (one module per task),
``manifold_source`` (``vae=`` handling), ``maze_layout`` and ``ray_sensor``
(the maze and its pybullet rays), ``geometry`` (ground-plane math), ``toy_manifold`` (a tiny steerable
stand-in manifold for tests and demos).
"""

from __future__ import annotations

from gymnasium.envs.registration import register
from gymnasium.envs.registration import registry as gym_registry

from envs.registry import TASK_SPECS

TASK_IDS = {spec.env_id: spec.name for spec in TASK_SPECS}

for _env_id, _task in TASK_IDS.items():
    if _env_id not in gym_registry:
        register(
            id=_env_id,
            entry_point="envs.single_env:MotionEnv",
            vector_entry_point="envs.vec_env:MotionVecEnv",
            kwargs={"task": _task},
        )

_LAZY = {
    "MotionEnv": "envs.single_env",
    "MotionVecEnv": "envs.vec_env",
    "MotionCore": "envs.motion_core",
    "ToyManifold": "envs.toy_manifold",
    "TASKS": "envs.tasks",
}


def __getattr__(name: str):
    # Lazy exports keep `import envs` (the registration) free of torch.
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'envs' has no attribute {name!r}")


__all__ = ["TASK_IDS", "MotionEnv", "MotionVecEnv", "MotionCore", "ToyManifold", "TASKS"]
