"""Recording and replaying the app's inputs, one entry per simulation step where something changed.

A script with the seed it was made from reproduces a session exactly: the app feeds it to the simulation
step by step instead of the live devices, so ``python play.py --input-script S.json --record out.mp4``
renders the same video bit for bit every time (simulation time drives everything; see ``app.interactive``).

File format (JSON, written atomically)::

    {"format": "mvae-play-input", "version": 1,
     "seed": 0, "task": "joystick", "characters": 1, "fps": 30.0,
     "steps": 600,                                    # simulation steps covered (the default video length)
     "note": "free text",                             # optional
     "events": [{"step": 0, "keys": ["W"]},
                {"step": 90, "keys": ["W", "A"], "camera": {"azimuth": 3.1}},
                {"step": 400, "task": "target", "click": [2.5, 6.0]}, ...]}

Each event has a ``step`` (non-decreasing) and any of:

=============== ======================================================================================
``keys``        key names held from this step on (pyglet names of the move keys: "W", "A", "S", "D",
                "UP", "DOWN", "LEFT", "RIGHT", "LSHIFT", "RSHIFT", "SPACE"; others are refused)
``stick``       ``[x, y_up]`` gamepad left stick after the dead zone, held from this step on
``pad_run``     bool, gamepad run held from this step on
``pad_stop``    bool, gamepad stop held from this step on
``pad_dash``    bool, gamepad dash (trigger all the way) held from this step on
``pad_strafe``  bool, gamepad strafe held from this step on
``camera``      ``{"mode", "azimuth", "elevation", "distance"}`` (any subset) set at this step
``task``        switch to this task (a name or alias of envs.registry: random_walk, target, joystick,
                path_follow / path, maze)
``reset``       ``true``: restart the characters
``click``       ``[x, z]`` a left click on the ground (world metres, within 1 km of the origin)
``path``        ``[[x, z], ...]`` a stroke drawn on the ground (world metres, >= 2 points, within 1 km)
``style``       a style name of the model, or "next" / "previous" (models with styles; key T / Shift+T)
=============== ======================================================================================

Held state (keys, stick, pad buttons) persists until an event changes it; the rest happens once. Within
one step, events apply in file order, and within one event as ``task``, ``reset``, ``click``, ``path``,
``style``.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from app.inputs import MOVE_KEYS
from common.atomic import atomic_write
from envs.registry import canonical_task
from envs.tasks.base import MAX_GROUND_COORDINATE

FORMAT = "mvae-play-input"
VERSION = 1
CAMERA_FIELDS = ("mode", "azimuth", "elevation", "distance")
CAMERA_MODES = ("follow", "orbit", "fixed")
ACTION_FIELDS = ("task", "reset", "click", "path", "style")
PAD_BUTTONS = ("pad_run", "pad_stop", "pad_dash", "pad_strafe")
HELD_FIELDS = ("keys", "stick", *PAD_BUTTONS)
EVENT_FIELDS = ("step",) + HELD_FIELDS + ("camera",) + ACTION_FIELDS


@dataclass(frozen=True)
class Held:
    """Inputs held down across steps."""

    keys: tuple[str, ...] = ()
    stick: tuple[float, float] = (0.0, 0.0)
    pad_run: bool = False
    pad_stop: bool = False
    pad_dash: bool = False
    pad_strafe: bool = False


@dataclass
class StepInput:
    """Everything the user did for one simulation step."""

    held: Held = field(default_factory=Held)
    camera: dict | None = None  # camera fields set at this step
    actions: list[dict] = field(default_factory=list)  # one-off: {"task": ...}, {"reset": True}, {"click": ...}, ...


class ScriptError(ValueError):
    """An input script that cannot be read; the message names the file and the field."""


# ---- recording --------------------------------------------------------------------------------------------
class InputRecorder:
    """Collects StepInputs as the app steps and writes them as a script (sparse: only changes)."""

    def __init__(self, *, seed: int, task: str, characters: int, fps: float, note: str = ""):
        self.header = {"format": FORMAT, "version": VERSION, "seed": int(seed), "task": str(task),
                       "characters": int(characters), "fps": float(fps)}
        self.note = note
        self.events: list[dict] = []
        self.steps = 0
        self._held = Held()

    def add(self, step: StepInput) -> None:
        """Record the input of the next simulation step."""
        event: dict = {}
        if step.held != self._held:
            event.update(_held_fields(step.held, self._held))
            self._held = step.held
        if step.camera:
            event["camera"] = {k: (float(v) if k != "mode" else str(v)) for k, v in step.camera.items()}
        for action in step.actions:
            if any(k in event for k in action) or _order_violated(event, action):
                self._emit(event)
                event = {}
            event.update(_plain(action))
        self._emit(event)
        self.steps += 1

    def _emit(self, event: dict) -> None:
        if event:
            self.events.append({"step": self.steps, **event})

    def to_dict(self) -> dict:
        out = {**self.header, "steps": self.steps}
        if self.note:
            out["note"] = self.note
        out["events"] = self.events
        return out

    def save(self, path) -> Path:
        path = Path(path)
        write_json_atomic(path, self.to_dict())
        return path


def _held_fields(new: Held, old: Held) -> dict:
    out: dict = {}
    if new.keys != old.keys:
        out["keys"] = list(new.keys)
    if new.stick != old.stick:
        out["stick"] = [float(new.stick[0]), float(new.stick[1])]
    for name in PAD_BUTTONS:
        if getattr(new, name) != getattr(old, name):
            out[name] = bool(getattr(new, name))
    return out


def _order_violated(event: dict, action: dict) -> bool:
    """Would merging ``action`` into ``event`` change the order it is applied in (task, reset, click, path)?"""
    present = [ACTION_FIELDS.index(k) for k in event if k in ACTION_FIELDS]
    incoming = [ACTION_FIELDS.index(k) for k in action if k in ACTION_FIELDS]
    return bool(present and incoming and min(incoming) <= max(present))


def _plain(action: dict) -> dict:
    """An action with JSON-friendly values (floats as floats, points as lists)."""
    out = {}
    for key, value in action.items():
        if key == "click":
            out[key] = [float(value[0]), float(value[1])]
        elif key == "path":
            out[key] = [[float(x), float(z)] for x, z in value]
        elif key == "reset":
            out[key] = True
        else:
            out[key] = str(value)
    return out


def dumps_script(data: dict) -> str:
    """JSON text of a script with one event per line (readable, diffable, hand-editable)."""
    head = {k: v for k, v in data.items() if k != "events"}
    lines = json.dumps(head, indent=1).rstrip("}").rstrip().rstrip(",")
    events = ",\n".join("  " + json.dumps(e) for e in data.get("events", []))
    return f"{lines},\n \"events\": [\n{events}\n ]\n}}\n"


def write_json_atomic(path: Path, data: dict) -> None:
    """Write ``data`` as a script's JSON all at once or not at all."""
    with atomic_write(path, "w") as f:
        f.write(dumps_script(data))


# ---- replaying --------------------------------------------------------------------------------------------
@dataclass
class InputScript:
    """A validated script (see the module docstring); ``player()`` replays it step by step."""

    seed: int
    task: str
    characters: int
    fps: float
    steps: int
    events: list[dict]
    path: Path | None = None
    note: str = ""

    @classmethod
    def load(cls, path) -> InputScript:
        path = Path(path)
        if not path.is_file():
            raise ScriptError(f"input script {path}: no such file (record one with `python play.py --record-input "
                              f"{path.name}`, or use assets/demos/joystick_tour.json)")
        try:
            data = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise ScriptError(f"input script {path}: not readable JSON ({e})") from None
        return cls.from_dict(data, path)

    @classmethod
    def from_dict(cls, data, path: Path | None = None) -> InputScript:
        where = f"input script {path}" if path is not None else "input script"
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise ScriptError(f"{where}: not an {FORMAT!r} file (its 'format' field must be {FORMAT!r})")
        if data.get("version") != VERSION:
            raise ScriptError(f"{where}: version {data.get('version')!r}; this app reads version {VERSION}")
        seed = _int(data.get("seed"), f"{where}: 'seed'", minimum=0)
        characters = _int(data.get("characters", 1), f"{where}: 'characters'", minimum=1)
        steps = _int(data.get("steps"), f"{where}: 'steps'", minimum=0)
        task = _task(data.get("task"), f"{where}: 'task'")
        fps = data.get("fps", 30.0)
        if not isinstance(fps, (int, float)) or isinstance(fps, bool) or not fps > 0:
            raise ScriptError(f"{where}: 'fps' must be a positive number, got {fps!r}")
        events = data.get("events")
        if not isinstance(events, list):
            raise ScriptError(f"{where}: 'events' must be a list of {{'step': ..., ...}} objects")
        checked, last = [], 0
        for i, event in enumerate(events):
            e = _check_event(event, f"{where}: events[{i}]")
            if e["step"] < last:
                raise ScriptError(f"{where}: events[{i}] has step {e['step']} after step {last}; keep steps in order")
            last = e["step"]
            checked.append(e)
        return cls(seed, task, characters, float(fps), steps, checked, path, str(data.get("note", "")))

    def player(self) -> ScriptPlayer:
        return ScriptPlayer(self)


class ScriptPlayer:
    """Yields the StepInput of step 0, 1, 2, ... of a script; past its end the held inputs are released."""

    def __init__(self, script: InputScript):
        self.script = script
        self.step = 0
        self._next = 0
        self._held = Held()

    @property
    def finished(self) -> bool:
        return self.step >= self.script.steps and self._next >= len(self.script.events)

    def next_input(self) -> StepInput:
        events = self.script.events
        out = StepInput()
        while self._next < len(events) and events[self._next]["step"] == self.step:
            event = events[self._next]
            self._held = Held(
                keys=tuple(event["keys"]) if "keys" in event else self._held.keys,
                stick=tuple(event["stick"]) if "stick" in event else self._held.stick,
                **{name: event.get(name, getattr(self._held, name)) for name in PAD_BUTTONS},
            )
            if "camera" in event:
                out.camera = {**(out.camera or {}), **event["camera"]}
            out.actions.extend({k: event[k]} for k in ACTION_FIELDS if k in event)
            self._next += 1
        self.step += 1
        out.held = self._held if self.step <= self.script.steps or self._next < len(events) else Held()
        return out


def _int(value, what: str, minimum: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ScriptError(f"{what} must be an integer >= {minimum}, got {value!r}")
    return value


def _point(value, what: str, limit: float = MAX_GROUND_COORDINATE) -> list[float]:
    if (not isinstance(value, (list, tuple)) or len(value) != 2
            or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in value)):
        raise ScriptError(f"{what} must be [x, z], two finite numbers (metres), got {value!r}")
    if max(abs(value[0]), abs(value[1])) > limit:
        raise ScriptError(f"{what} is {value!r}: farther than {limit:g} m from the origin (a typo?)")
    return [float(value[0]), float(value[1])]


def _task(value, what: str) -> str:
    try:
        return canonical_task(value, what)
    except ValueError as e:
        raise ScriptError(str(e)) from None


def _check_event(event, where: str) -> dict:
    if not isinstance(event, dict):
        raise ScriptError(f"{where} must be an object with a 'step', got {event!r}")
    unknown = sorted(set(event) - set(EVENT_FIELDS))
    if unknown:
        raise ScriptError(f"{where}: unknown field(s) {unknown}; the fields are {', '.join(EVENT_FIELDS)}")
    out = {"step": _int(event.get("step"), f"{where}.step", minimum=0)}
    if "keys" in event:
        keys = event["keys"]
        if not isinstance(keys, list) or not all(isinstance(k, str) and k for k in keys):
            raise ScriptError(f"{where}.keys must be a list of key names such as ['W', 'LSHIFT'], got {keys!r}")
        unknown = [k for k in keys if k.upper() not in MOVE_KEYS]
        if unknown:
            raise ScriptError(f"{where}.keys: unknown key name(s) {unknown}; the held keys are "
                              f"{', '.join(MOVE_KEYS)}")
        out["keys"] = [k.upper() for k in keys]
    if "stick" in event:
        x, y = _point(event["stick"], f"{where}.stick")
        if math.hypot(x, y) > 1.0 + 1e-6:
            raise ScriptError(f"{where}.stick must lie within the unit circle, got {event['stick']!r}")
        out["stick"] = [x, y]
    for name in PAD_BUTTONS:
        if name in event:
            if not isinstance(event[name], bool):
                raise ScriptError(f"{where}.{name} must be true or false, got {event[name]!r}")
            out[name] = event[name]
    if "camera" in event:
        camera = event["camera"]
        if not isinstance(camera, dict) or not camera or set(camera) - set(CAMERA_FIELDS):
            raise ScriptError(f"{where}.camera must be an object with some of {', '.join(CAMERA_FIELDS)}, "
                              f"got {camera!r}")
        if "mode" in camera and camera["mode"] not in CAMERA_MODES:
            raise ScriptError(f"{where}.camera.mode must be one of {', '.join(CAMERA_MODES)}, got {camera['mode']!r}")
        for key in ("azimuth", "elevation", "distance"):
            value = camera.get(key)
            if key in camera and (not isinstance(value, (int, float)) or isinstance(value, bool)
                                  or not math.isfinite(value)):
                raise ScriptError(f"{where}.camera.{key} must be a finite number, got {value!r}")
        out["camera"] = dict(camera)
    if "task" in event:
        out["task"] = _task(event["task"], f"{where}.task")
    if "reset" in event:
        if event["reset"] is not True:
            raise ScriptError(f"{where}.reset must be true, got {event['reset']!r}")
        out["reset"] = True
    if "click" in event:
        out["click"] = _point(event["click"], f"{where}.click")
    if "path" in event:
        path = event["path"]
        if not isinstance(path, list) or len(path) < 2:
            raise ScriptError(f"{where}.path must be a list of at least 2 [x, z] points, got {path!r}")
        out["path"] = [_point(p, f"{where}.path[{j}]") for j, p in enumerate(path)]
    if "style" in event:
        if not isinstance(event["style"], str) or not event["style"]:
            raise ScriptError(f"{where}.style must be a style name, 'next' or 'previous', got {event['style']!r}")
        out["style"] = event["style"]
    return out
