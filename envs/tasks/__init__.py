"""The tasks: one class per module, each module docstring is the task's spec (observation, reward, ...).

``TASKS`` maps the names used by the environments (``task="target"``) to the classes; ``make_task``
builds one with checked options.
"""

from __future__ import annotations

import inspect

from envs.tasks.base import Task
from envs.tasks.joystick import Joystick
from envs.tasks.maze import Maze
from envs.tasks.path_follow import PathFollow
from envs.tasks.random_walk import RandomWalk
from envs.tasks.target import Target
from envs.tasks.timed_target import TimedTarget

TASKS: dict[str, type[Task]] = {
    "random_walk": RandomWalk,
    "target": Target,
    "timed_target": TimedTarget,
    "joystick": Joystick,
    "path_follow": PathFollow,
    "maze": Maze,
}


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
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; choose one of {', '.join(TASKS)}")
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
