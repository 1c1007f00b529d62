"""Snapshot and restore the state of a batched environment, so that a resumed training continues exactly.

A :class:`envs.MotionVecEnv` keeps its state in torch tensors on three objects: the environment (episode
returns, pending restarts), its ``core`` (condition frames, root, yaw, step counters and the random
generator) and its ``task`` (goals, timers, counters). The snapshot holds every tensor and flag attribute of
the three plus the generator's state; static parts (the maze walls in pybullet, options) are rebuilt by
making the environment again with the same options. Restoring requires an environment made the same way
(same task, options, number of characters).
"""

from __future__ import annotations

import torch

_PARTS = ("env", "core", "task")


def _objects(env) -> dict:
    return {"env": env, "core": env.core, "task": env.task}


def env_state(env) -> dict:
    """Plain dict of the environment's tensors (cloned, on the CPU) and flags, and the generator state."""
    state: dict = {}
    for part, obj in _objects(env).items():
        entries = {}
        for name, value in vars(obj).items():
            if isinstance(value, torch.Tensor):
                entries[name] = value.detach().cpu().clone()
            elif isinstance(value, bool):
                entries[name] = value
        state[part] = entries
    state["generator"] = env.core.generator.get_state()
    return state


def load_env_state(env, state: dict) -> None:
    """Put a :func:`env_state` snapshot back (tensors moved to the environment's device)."""
    missing = [p for p in (*_PARTS, "generator") if p not in state]
    if missing:
        raise ValueError(f"environment snapshot lacks {missing}; it was not written by policies.env_state")
    device = env.core.device
    for part, obj in _objects(env).items():
        current = vars(obj)
        for name, value in state[part].items():
            if name not in current:
                raise ValueError(f"environment snapshot has {part}.{name}, which this environment lacks: it was made "
                                 "with another task or version")
            if isinstance(value, torch.Tensor):
                old = current[name]
                if isinstance(old, torch.Tensor) and old.shape != value.shape:
                    raise ValueError(f"environment snapshot {part}.{name} has shape {tuple(value.shape)}, this "
                                     f"environment {tuple(old.shape)}: another number of characters or options")
                value = value.to(device)
            setattr(obj, name, value)
    env.core.generator.set_state(state["generator"])
