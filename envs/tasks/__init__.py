"""The tasks: one class per module, each module docstring is the task's spec (observation, reward, ...).

``TASKS`` maps the canonical names of :mod:`envs.registry` to the classes; ``make_task`` builds one (by name
or alias) with checked options.
"""

from __future__ import annotations

import inspect

from envs.registry import TASK_SPECS, task_spec
from envs.tasks.base import Task
from envs.tasks.joystick import Joystick
from envs.tasks.maze import Maze
from envs.tasks.path_follow import PathFollow
from envs.tasks.random_walk import RandomWalk
from envs.tasks.target import Target
from envs.tasks.timed_target import TimedTarget

TASKS: dict[str, type[Task]] = {spec.name: spec.task_class() for spec in TASK_SPECS}


def task_options(cls: type[Task]) -> list[str]:
    """Keyword options a task class accepts (TimedTarget also takes Target's)."""
    names: list[str] = []
    for klass in cls.__mro__:
        if klass is Task or "__init__" not in vars(klass):
            continue
        for p in inspect.signature(klass.__init__).parameters.values():
            if p.kind is inspect.Parameter.KEYWORD_ONLY and p.name not in names:
                names.append(p.name)
    return names


def make_task(name: str, core, options: dict) -> Task:
    name = task_spec(name).name
    cls = TASKS[name]
    unknown = sorted(set(options) - set(task_options(cls)))
    if unknown:
        raise ValueError(
            f"unknown option(s) {unknown} for task {name!r}; its options are {task_options(cls)} "
            "(and the environment's own: vae, device, array_backend, action_scale, max_episode_steps, "
            "start_frames, fps, autoreset_mode)"
        )
    return cls(core, **options)


__all__ = ["TASKS", "Task", "make_task", "task_options", "RandomWalk", "Target", "TimedTarget", "Joystick",
           "PathFollow", "Maze"]
