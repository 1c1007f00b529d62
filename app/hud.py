"""The HUD's text: what the simulation is doing, as lines (no wall-clock figures: recordings stay reproducible).

Lines: task and its key, characters, simulated time, inference backend and provider; the controller; the
motion style (models with styles); the commanded and actual heading (degrees, 0 = +z, counter-clockwise seen from above) and speed; the task's
metrics of the last step (first character, and the crowd mean when there are several).
"""

from __future__ import annotations

from envs.registry import task_names, task_spec

HIDDEN_METRICS = ("command_speed", "speed", "collided")  # speeds are on the command line; events flicker


def task_key(task: str) -> str:
    """The number key that switches to ``task`` (interactive tasks, in registry order), or "-"."""
    names = task_names(interactive_only=True)
    return str(names.index(task) + 1) if task in names else "-"


def simulation_lines(sim) -> list[str]:
    """Task, controller, backend, commanded vs actual motion and metrics of a :class:`app.simulation.Simulation`."""
    want_heading, want_speed = sim.commanded()
    heading, speed = sim.actual()
    want = "command: -" if want_heading is None else (
        f"command: heading {want_heading:+4.0f} deg {want_speed:.2f} m/s")
    crowd = f"{sim.num_characters} character{'s' if sim.num_characters > 1 else ''}"
    lines = [f"task {task_spec(sim.task_name).title} [{task_key(sim.task_name)}]   {crowd}   "
             f"t {sim.step_count * sim.dt:.1f} s   {sim.backend.summary}",
             f"controller: {getattr(sim.controller, 'short_label', sim.controller.label)}",
             f"{want}   actual: heading {heading:+4.0f} deg {speed:.2f} m/s"]
    style = sim.style_name()
    if style is not None:
        lines.append(f"style {style} [T]   ({sim.style_names.index(style) + 1} of {len(sim.style_names)})")
    metrics = metric_summary(sim.metrics, sim.num_characters)
    if metrics:
        lines.append(metrics)
    return lines


def metric_summary(metrics: dict, num_characters: int) -> str:
    """The task's metrics of the last step, for the first character (and the crowd mean when B > 1)."""
    parts = []
    for key, (values, mask) in metrics.items():
        if mask is not None or key in HIDDEN_METRICS:
            continue
        fmt = ".2f" if values.dtype.is_floating_point else "d"
        value = float(values[0]) if values.dtype.is_floating_point else int(values[0])
        text = f"{key} {value:{fmt}}"
        if num_characters > 1:
            text += f" (mean {float(values.float().mean()):.2f})"
        parts.append(text)
    return "   ".join(parts)
