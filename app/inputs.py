"""Keyboard, gamepad and mouse -> control commands for the real-time app (pure logic plus a guarded gamepad reader).

Bindings (also what the app's F1 overlay lists, from :data:`KEY_HELP`):

=================== ==================================================================================
W A S D / arrows    move direction relative to the camera: W forward (away from the camera), A left,
                    S toward the camera, D right (the joystick task's command): walk
Shift (held)        run; Shift + Ctrl: dash (the character's walk / run / dash speeds)
Space (held)        stop: command speed 0 (facing kept); releasing every move key stops too
Q (held)            strafe: face the camera's direction while moving sideways or backwards
1 2 3 4 5           task: random walk, target, joystick, path, maze (envs.registry's interactive tasks)
R / P / C           reset the characters / pause / cycle camera mode (follow, orbit, fixed)
B                   start / stop capturing the followed character's motion to BVH
L                   foot locking on / off (planted feet held where they landed by leg IK; on by default)
T / Shift+T         next / previous motion style (characters whose model has styles; faded in)
H / F1              hide the HUD / help overlay
Esc                 quit
left click          target task: place the target there (from random walk / joystick it switches to
                    the target task first); maze: make that cell the goal
left drag           path task: draw a path from the character along the stroke (looped back)
right drag          orbit the camera
middle drag         pan the camera (orbit mode)
wheel               zoom
gamepad             left stick: direction, its travel the speed (dead zone ``STICK_DEAD_ZONE``); right
                    trigger half way or A: run, all the way: dash; B: stop; left trigger or left
                    shoulder: strafe; Y: next style
=================== ==================================================================================

A move is ``(x, y)`` in screen terms: x to the right, y forward (into the screen), length <= 1. The camera's
azimuth turns it into a world ground direction (:func:`world_direction`), using the viewer's camera
convention: the eye sits at ``target + d (cos el sin az, sin el, cos el cos az)``, so "forward" on screen is
``(-sin az, -cos az)`` on the ground and "right" is ``(cos az, -sin az)``.

Key names are pyglet's ``key.symbol_string`` names ("W", "LEFT", "LSHIFT", "SPACE"), so this module never
imports ``pyglet.window`` (which would fix pyglet's platform, see :mod:`viewer.display`).

Gamepads come from ``pyglet.input``, which raises on machines without ``/dev/input`` and cannot be imported
in pyglet's headless mode: :class:`Gamepads` treats every such failure as "no gamepad" and says so in
``status``; it follows hot-plugging through ``pyglet.input.ControllerManager`` where one exists.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from envs.registry import task_names, task_spec

STICK_DEAD_ZONE = 0.2  # of full deflection: sticks rarely rest at exactly 0
TRIGGER_RUN = 0.5  # right-trigger travel beyond which the character runs (left trigger: strafes)
TRIGGER_DASH = 0.95  # ... and beyond which it dashes
CLICK_SLOP_PX = 6.0  # a press and release closer than this is a click, not a drag
PATH_POINT_SPACING_PX = 8.0  # mouse samples closer than this along a stroke are skipped

FORWARD_KEYS = ("W", "UP")
BACK_KEYS = ("S", "DOWN")
LEFT_KEYS = ("A", "LEFT")
RIGHT_KEYS = ("D", "RIGHT")
RUN_KEYS = ("LSHIFT", "RSHIFT")
DASH_KEYS = ("LCTRL", "RCTRL")  # with Shift
STOP_KEYS = ("SPACE",)
STRAFE_KEYS = ("Q",)
MOVE_KEYS = FORWARD_KEYS + BACK_KEYS + LEFT_KEYS + RIGHT_KEYS + RUN_KEYS + DASH_KEYS + STOP_KEYS + STRAFE_KEYS
TASK_KEYS = {f"{prefix}{i}": name for i, name in enumerate(task_names(interactive_only=True), start=1)
             for prefix in ("_", "NUM_")}
KEY_CAPTURE = "B"
KEY_FOOT_LOCK = "L"
KEY_STYLE = "T"

KEY_HELP = [
    "W A S D / arrows   move (relative to the camera; joystick task)",
    "Shift run   Shift+Ctrl dash   Space stop   Q strafe (face the camera's way)",
    f"{' '.join(str(i + 1) for i in range(len(task_names(True))))}          task: "
    + ", ".join(task_spec(n).title for n in task_names(True)),
    "R reset    P pause    C camera mode (follow / orbit / fixed)    B capture motion to BVH",
    "L foot locking on / off (planted feet held by leg IK)    T / Shift+T next / previous style",
    "left click         place the target (maze: the goal cell)",
    "left drag          draw a path (path task)",
    "right drag orbit   middle drag pan   wheel zoom",
    "gamepad            left stick move, right trigger run (fully: dash), B stop, left trigger strafe, Y style",
    "H hide the HUD     F1 this help     Esc quit",
]


@dataclass(frozen=True)
class Control:
    """What the user asks of the character this simulation step."""

    move: tuple[float, float] = (0.0, 0.0)  # screen terms, length <= 1
    run: bool = False
    stop: bool = False
    dash: bool = False
    strafe: bool = False

    @property
    def moving(self) -> bool:
        return math.hypot(*self.move) > 1e-6 and not self.stop

    @property
    def active(self) -> bool:
        """True when the user is steering or stopping (a command should be issued)."""
        return self.stop or self.moving


@dataclass(frozen=True)
class PadState:
    """What the gamepad holds: the stick (x, y_up) after the dead zone and the buttons."""

    stick: tuple[float, float] = (0.0, 0.0)
    run: bool = False
    stop: bool = False
    dash: bool = False
    strafe: bool = False
    next_style: bool = False  # held: the app switches style when it goes down


def keyboard_move(held) -> tuple[float, float]:
    """Held key names -> (x, y) move, unit length on diagonals; opposite keys cancel."""
    held = set(held)
    x = float(any(k in held for k in RIGHT_KEYS)) - float(any(k in held for k in LEFT_KEYS))
    y = float(any(k in held for k in FORWARD_KEYS)) - float(any(k in held for k in BACK_KEYS))
    norm = math.hypot(x, y)
    return (x / norm, y / norm) if norm > 0 else (0.0, 0.0)


def stick_move(x: float, y_up: float, dead_zone: float = STICK_DEAD_ZONE) -> tuple[float, float]:
    """A stick deflection (x right, y up, each in [-1, 1]) -> (x, y) move with a radial dead zone.

    Inside ``dead_zone`` the move is zero; beyond it the length is rescaled from [dead_zone, 1] to [0, 1]
    so the command starts smoothly at the edge of the dead zone.
    """
    if not 0.0 <= dead_zone < 1.0:
        raise ValueError(f"dead_zone must be in [0, 1), got {dead_zone}")
    r = math.hypot(x, y_up)
    if r <= dead_zone:
        return (0.0, 0.0)
    scale = min((r - dead_zone) / (1.0 - dead_zone), 1.0) / r
    return (x * scale, y_up * scale)


def combine(held, stick: tuple[float, float] = (0.0, 0.0), pad_run: bool = False, pad_stop: bool = False,
            pad_dash: bool = False, pad_strafe: bool = False) -> Control:
    """Keyboard and gamepad together -> one Control (moves add, clamped to length 1)."""
    held = set(held)
    kx, ky = keyboard_move(held)
    x, y = kx + stick[0], ky + stick[1]
    norm = math.hypot(x, y)
    if norm > 1.0:
        x, y = x / norm, y / norm
    shift = any(k in held for k in RUN_KEYS)
    dash = pad_dash or (shift and any(k in held for k in DASH_KEYS))
    run = pad_run or shift or dash
    stop = pad_stop or any(k in held for k in STOP_KEYS)
    strafe = pad_strafe or any(k in held for k in STRAFE_KEYS)
    return Control((x, y), run, stop, dash, strafe)


def world_direction(move: tuple[float, float], azimuth: float) -> tuple[float, float] | None:
    """A screen-terms move and the camera azimuth (rad) -> unit world ground direction (x, z), or None if no move."""
    mx, my = move
    if math.hypot(mx, my) < 1e-6:
        return None
    forward = (-math.sin(azimuth), -math.cos(azimuth))
    right = (math.cos(azimuth), -math.sin(azimuth))
    dx, dz = my * forward[0] + mx * right[0], my * forward[1] + mx * right[1]
    norm = math.hypot(dx, dz)
    return (dx / norm, dz / norm)


def command_speed(control: Control, speeds: dict[str, float]) -> float:
    """The ground speed (m/s) a Control asks for: 0 when stopping, else the ``speeds["walk" | "run" | "dash"]`` it
    selects, scaled by the stick's travel."""
    if control.stop:
        return 0.0
    amount = min(math.hypot(*control.move), 1.0)
    return amount * speeds["dash" if control.dash else "run" if control.run else "walk"]


class MouseGesture:
    """One left-button gesture: a click (press and release within ``CLICK_SLOP_PX``) or a stroke (a drag).

    ``press(x, y)``, ``drag(x, y)`` (returns True once the gesture became a stroke), ``release(x, y)`` ->
    ``("click", (x, y))`` or ``("stroke", [(x, y), ...])`` in window pixels, or None without a press.
    """

    def __init__(self, slop_px: float = CLICK_SLOP_PX, spacing_px: float = PATH_POINT_SPACING_PX):
        self.slop_px, self.spacing_px = float(slop_px), float(spacing_px)
        self.points: list[tuple[float, float]] | None = None
        self.dragging = False

    @property
    def active(self) -> bool:
        return self.points is not None

    def press(self, x: float, y: float) -> None:
        self.points = [(float(x), float(y))]
        self.dragging = False

    def drag(self, x: float, y: float) -> bool:
        if self.points is None:
            return False
        first, last = self.points[0], self.points[-1]
        if not self.dragging and math.hypot(x - first[0], y - first[1]) > self.slop_px:
            self.dragging = True
        if math.hypot(x - last[0], y - last[1]) >= self.spacing_px:
            self.points.append((float(x), float(y)))
        return self.dragging

    def release(self, x: float, y: float):
        if self.points is None:
            return None
        points, dragging = self.points, self.dragging
        self.points, self.dragging = None, False
        if not dragging:
            return ("click", points[0])
        if math.hypot(x - points[-1][0], y - points[-1][1]) > 0:
            points.append((float(x), float(y)))
        return ("stroke", points)


class Gamepads:
    """The first connected game controller through ``pyglet.input``, or none, never raising.

    ``status`` is a one-line description for the console / HUD; ``read()`` -> ``(stick (x, y_up),
    run, stop)`` of the active controller (zeros without one). Construct it after the window exists
    (``pyglet.input`` on Linux uses the display).
    """

    def __init__(self):
        self.controller = None
        self.manager = None
        self.status = "no gamepad"
        try:
            import pyglet.input as pinput
        except Exception as e:  # noqa: BLE001 - headless pyglet raises assorted errors here
            self.status = f"no gamepad (pyglet.input unavailable: {type(e).__name__})"
            return
        try:
            manager_cls = getattr(pinput, "ControllerManager", None)
            if manager_cls is not None:
                self.manager = manager_cls()
                self.manager.push_handlers(on_connect=self._on_connect, on_disconnect=self._on_disconnect)
                found = self.manager.get_controllers()
            else:
                found = pinput.get_controllers()
        except FileNotFoundError:
            self.manager = None
            self.status = "no gamepad (this machine has no /dev/input)"
            return
        except Exception as e:  # noqa: BLE001 - input back ends raise assorted errors without devices
            self.manager = None
            self.status = f"no gamepad ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else 'unavailable'})"
            return
        if found:
            self._on_connect(found[0])
        else:
            self.status = "no gamepad connected (plug one in: it is picked up while running)" if self.manager \
                else "no gamepad connected"

    def _on_connect(self, controller) -> None:
        if self.controller is not None:
            return
        try:
            controller.open()
        except Exception as e:  # noqa: BLE001 - a device can vanish between listing and opening
            self.status = f"gamepad {getattr(controller, 'name', '?')} could not be opened ({e})"
            return
        self.controller = controller
        self.status = f"gamepad: {getattr(controller, 'name', 'controller')}"

    def _on_disconnect(self, controller) -> None:
        if controller is self.controller:
            self.controller = None
            self.status = "gamepad disconnected"

    def read(self) -> PadState:
        c = self.controller
        if c is None:
            return PadState()
        # pyglet's lefty grows downward (its left_analog negates it): up on the stick is forward.
        stick = stick_move(float(c.leftx), -float(c.lefty))
        trigger = float(getattr(c, "righttrigger", 0.0))
        run = trigger > TRIGGER_RUN or bool(getattr(c, "a", False))
        strafe = float(getattr(c, "lefttrigger", 0.0)) > TRIGGER_RUN or bool(getattr(c, "leftshoulder", False))
        return PadState(stick, run, bool(getattr(c, "b", False)), trigger > TRIGGER_DASH, strafe,
                        bool(getattr(c, "y", False)))

    def close(self) -> None:
        if self.controller is not None:
            try:
                self.controller.close()
            except Exception:  # noqa: BLE001 - closing a vanished device must not stop the app
                pass
            self.controller = None
