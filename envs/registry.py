"""The one task registry: every task's name, aliases, Gymnasium id, class and policy file name.

Every tool reads its task list from here (the environments, ``train_policy.py``, ``policies.evaluate``,
``play.py`` and its input scripts), so a name means the same everywhere::

    spec = task_spec("path")            # aliases resolve: spec.name == "path_follow"
    spec.policy_file                    # "path_follow.pt": the file name a character bundle gives its policy
    spec.task_class()                   # envs.tasks.path_follow.PathFollow (imported on first use)

The scripted baseline of every task is the task's own :meth:`envs.tasks.base.Task.desired_motion` (the
direction and speed its goal asks for), which ``policies.SamplingController`` steers toward. ``interactive``
tasks are the ones ``play.py`` offers, on the number keys in this order.

This module imports no torch, so ``import envs`` (the Gymnasium registration) stays light.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass


@dataclass(frozen=True)
class TaskSpec:
    """One task (see the module docstring)."""

    name: str  # canonical name: the environments' ``task=``, the policy files' ``task`` entry
    class_path: str  # "module:Class" of the envs.tasks.base.Task subclass
    env_id: str  # Gymnasium id
    title: str  # short label for menus and the HUD
    aliases: tuple[str, ...] = ()
    interactive: bool = True  # offered in play.py

    @property
    def policy_file(self) -> str:
        """The policy's file name inside a character bundle (``policies/<name>.pt``)."""
        return f"{self.name}.pt"

    def task_class(self):
        module, _, cls = self.class_path.partition(":")
        return getattr(importlib.import_module(module), cls)


TASK_SPECS: tuple[TaskSpec, ...] = (
    TaskSpec("random_walk", "envs.tasks.random_walk:RandomWalk", "MVAE/RandomWalk-v0", "random walk",
             aliases=("random", "walk")),
    TaskSpec("target", "envs.tasks.target:Target", "MVAE/Target-v0", "target"),
    TaskSpec("joystick", "envs.tasks.joystick:Joystick", "MVAE/Joystick-v0", "joystick"),
    TaskSpec("path_follow", "envs.tasks.path_follow:PathFollow", "MVAE/PathFollow-v0", "path",
             aliases=("path", "pathfollow")),
    TaskSpec("maze", "envs.tasks.maze:Maze", "MVAE/Maze-v0", "maze"),
    TaskSpec("timed_target", "envs.tasks.timed_target:TimedTarget", "MVAE/TimedTarget-v0", "timed target",
             aliases=("timed",), interactive=False),
)

_BY_NAME = {alias: spec for spec in TASK_SPECS for alias in (spec.name, *spec.aliases)}


def task_names(interactive_only: bool = False) -> list[str]:
    """Canonical task names in registry order."""
    return [s.name for s in TASK_SPECS if s.interactive or not interactive_only]


def task_spec(name: str, what: str = "task") -> TaskSpec:
    """The spec of a task name or alias; a ValueError naming ``what`` (e.g. "--task") lists the choices."""
    spec = _BY_NAME.get(str(name).strip().lower()) if isinstance(name, str) else None
    if spec is None:
        choices = ", ".join(f"{s.name}" + (f" ({', '.join(s.aliases)})" if s.aliases else "") for s in TASK_SPECS)
        raise ValueError(f"unknown {what} {name!r}; choose one of {choices}")
    return spec


def canonical_task(name: str, what: str = "task") -> str:
    return task_spec(name, what).name


def task_choices() -> list[str]:
    """Every accepted spelling (for argparse ``choices``)."""
    return list(_BY_NAME)
