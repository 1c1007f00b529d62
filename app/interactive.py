"""The real-time window around a :class:`app.simulation.Simulation`: devices, the fixed-rate loop, recording.

:class:`App` (pyglet) owns a :class:`viewer.ViewerWindow`, the input devices (keyboard, gamepad, mouse; bindings
in :mod:`app.inputs`), the loop and the recordings. ``tick(dt)`` runs the simulation at its fixed rate from
wall time (at most ``catch_up_steps()`` steps per call), interpolates joint positions between the last two
states for rendering, and updates the camera and HUD; ``step_simulation()`` runs one step;
``record_video(path, steps)`` renders one video frame per simulation step (simulation time, never wall time),
so a seed and an input script (:mod:`app.input_script`) reproduce a video exactly. Tests and benchmarks drive
both without ``pyglet.app.run``; ``frame(dt)`` is one displayed frame (``tick`` with the window drawn before the
simulation steps, so that software GL rasterises while they run; then ``flip``), what ``run`` repeats.

Mouse: a left click places the goal (:meth:`Simulation.click`), a left drag draws a path (:meth:`Simulation.
draw_path`); the window itself orbits on a right drag, pans on a middle drag and zooms on the wheel. Key B
starts and stops capturing the followed character's motion to BVH (:mod:`app.motion_capture`). Key T (Shift+T,
the gamepad's Y) switches to the next (previous) motion style of a model with styles, faded in
(:meth:`Simulation.change_style`). Key L turns planted feet (foot locking, on by default:
:meth:`Simulation.set_foot_locking`) off and on; what is drawn, recorded and captured is the simulation's
``joint_positions()`` / ``joint_rotations()``, feet locked while it is on.

The HUD shows fps, inference milliseconds (the controller's action plus the decoder step, from the backend's
meters), the simulation's lines (:mod:`app.hud`) and whether foot locking is on. Recordings leave out the
wall-clock figures (fps, milliseconds) so that identical inputs give identical frames.
"""

from __future__ import annotations

import math
import os
import time
from pathlib import Path

import numpy as np

from app.hud import simulation_lines
from app.input_script import Held, InputRecorder, ScriptPlayer, StepInput
from app.inputs import (
    KEY_CAPTURE,
    KEY_FOOT_LOCK,
    KEY_HELP,
    KEY_STYLE,
    MOVE_KEYS,
    TASK_KEYS,
    Gamepads,
    MouseGesture,
    PadState,
)
from app.motion_capture import MotionCapture
from app.simulation import Simulation

FOLLOW_HEIGHT = 0.9  # m: the camera looks at the character's hips, not its feet
CAMERA_BEHIND_OFFSET = math.radians(25.0)  # start behind the character, a little to its right
CAMERA_DISTANCE = 5.5
CAMERA_ELEVATION = math.radians(15.0)
OVERVIEW_CAMERA_DISTANCE = 9.0  # tasks that place characters themselves (the maze): look over the walls
OVERVIEW_CAMERA_ELEVATION = math.radians(50.0)
MAX_STEPS_PER_TICK = 4  # a slow frame catches up at most this many steps (no spiral of death)
MIN_FRAME_HZ = 20.0  # catching up stops where its steps would hold frames below this rate: the simulation slows instead
WARM_UP_STEPS = 3  # the first steps allocate and compile: not timed for catch_up_steps
CROWD_GOALS_DRAWN = 16  # goal markers of characters 1.. drawn besides the first one's full draw data
CROWD_CAMERA_MIN = 16  # characters from which the camera frames the crowd around the first one
CROWD_CAMERA_DISTANCE = 16.0
CROWD_CAMERA_ELEVATION = math.radians(32.0)
LEAD_RGBA = (0.86, 0.56, 0.32, 1.0)
CROWD_HUES = (0.3, 0.85)  # green through blue to purple: never the lead's orange
LEAD_RING_RADIUS = 0.6  # m: in a crowd, a ring on the ground marks the first character (the user's)
LINE_WIDTH = 0.03
STROKE_RGBA = (0.2, 0.75, 0.35, 1.0)
NOTE_CHARS = 110  # longer console notes are cut in the HUD
HUD_REFRESH_S = 0.25  # live HUD text refresh period (a changed line costs pyglet ~0.4 ms to lay out)
HUD_RECORD_STEPS = 3  # recordings refresh the HUD every this many simulation steps


# ---- scene ------------------------------------------------------------------------------------------------
def scene_items(data: dict, translucent: bool = False):
    """Task draw data (see envs.tasks.base) -> (markers, polylines, boxes) for a viewer.SceneFrame."""
    from viewer.scene import Box, Marker, Polyline

    def colour(rgba):
        c = np.asarray(rgba, dtype=np.float64).copy()
        if translucent:
            c[3] = min(c[3], 0.45)
        return c

    markers = [Marker(m["position"], float(m["radius"]), colour(m["rgba"])) for m in data["markers"]]
    lines = []
    for p in data["polylines"]:
        points = np.asarray(p["points"], dtype=np.float64)
        if p.get("closed") and len(points) > 2:
            points = np.concatenate([points, points[:1]])
        if len(points) >= 2:
            lines.append(Polyline(points, colour(p["rgba"]), LINE_WIDTH))
    boxes = [Box(b["center"], b["half_extents"], 0.0, colour(b["rgba"])) for b in data["boxes"]]
    return markers, lines, boxes


def crowd_colours(count: int) -> np.ndarray:
    """(count, 4) RGBA: the first character (the user's) in ``LEAD_RGBA``, every other one its own muted colour of
    ``CROWD_HUES`` (hue, saturation and value in golden-ratio-like steps, so neighbours in index differ), so that a
    crowd reads as many people and the lead stands out."""
    i = np.arange(count, dtype=np.float64)
    hue = CROWD_HUES[0] + (CROWD_HUES[1] - CROWD_HUES[0]) * ((i * 0.618034) % 1.0)
    saturation = 0.3 + 0.25 * ((i * 0.414214) % 1.0)
    value = 0.6 + 0.3 * ((i * 0.732051) % 1.0)
    # HSV -> RGB: channel n (5, 3, 1 for r, g, b) is v - v s clip(min(k, 4 - k), 0, 1), k = (n + 6 h) mod 6.
    k = (np.array([5.0, 3.0, 1.0]) + 6.0 * hue[:, None]) % 6.0  # (count, 3)
    rgb = value[:, None] * (1.0 - saturation[:, None] * np.clip(np.minimum(k, 4.0 - k), 0.0, 1.0))
    rgba = np.concatenate([rgb, np.ones((count, 1))], axis=1)
    rgba[:1] = LEAD_RGBA
    return rgba


def lead_ring(root) -> np.ndarray:
    """(25, 3) points of a closed ring of ``LEAD_RING_RADIUS`` on the ground around a root position (3,)."""
    angle = np.linspace(0.0, 2.0 * math.pi, 25)
    return np.stack([root[0] + LEAD_RING_RADIUS * np.cos(angle), np.full(25, 0.02),
                     root[2] + LEAD_RING_RADIUS * np.sin(angle)], axis=1)


def next_free_path(path: Path) -> Path:
    """``path`` if nothing is there, else ``<stem>_2<suffix>``, ``_3``, ... (never overwrites a capture)."""
    if not path.exists():
        return path
    stem = path.stem.rsplit("_", 1)[0] if path.stem.rsplit("_", 1)[-1].isdigit() else path.stem
    k = 2
    while (candidate := path.with_name(f"{stem}_{k}{path.suffix}")).exists():
        k += 1
    return candidate


class App:
    """The window, the devices and the loop around a :class:`Simulation` (see the module docstring).

    ``realtime=False`` (recording): no live devices, and the HUD leaves out wall-clock figures. ``script``: a
    :class:`app.input_script.ScriptPlayer` that feeds the steps first (live input takes over after it ends);
    ``input_recorder``: an :class:`app.input_script.InputRecorder` that receives every step; ``motion_capture``:
    a :class:`app.motion_capture.MotionCapture` that receives every step's joints from the start (``play.py
    --record-bvh``), written to ``capture_path`` when B is pressed or the app closes.
    """

    def __init__(self, sim: Simulation, window, *, script: ScriptPlayer | None = None,
                 input_recorder: InputRecorder | None = None, realtime: bool = True,
                 motion_capture: MotionCapture | None = None, capture_path: Path | None = None):
        from pyglet.window import key, mouse

        self._key, self._mouse = key, mouse
        self.sim = sim
        self.window = window
        self.camera = window.camera
        self.script = script
        self.input_recorder = input_recorder
        self.realtime = realtime
        self.paused = False
        self.hud_visible = True
        self._hud_time = -1.0
        self._hud_dirty = True
        self.quit_requested = False
        self.held: set[str] = set()
        self.pending: list[dict] = []
        self.gesture = MouseGesture()
        self.stroke_preview: list[tuple[float, float]] = []
        self.gamepads = Gamepads() if realtime else None
        self._pad = PadState()
        self.accumulator = 0.0
        self.fps = 0.0
        self.step_seconds = 0.0  # running mean wall time of a live simulation step (0: none measured yet)
        self.sim_hz = sim.fps  # running mean of the simulation steps taken per wall second (live)
        self.frame_count = 0
        self._last_camera: dict | None = None
        self.motion_capture = motion_capture
        self.capture_path = capture_path
        self._prev = self._cur = sim.joint_positions()
        self.character_rgba = crowd_colours(sim.num_characters)
        self._task_items, self._task_items_key = ([], [], []), None  # task_items() and the step they belong to
        self._torch_threads = None  # torch's threads before the app took half of them (restored by close)
        if realtime and window.software_gl:
            # The window rasterises on the CPU while the simulation steps (see tick): a crowd's torch decoder
            # keeps to half the cores, so the two do not fight over them (1,000 characters on 2 cores: 29 ms a
            # frame with one thread against 38 with two).
            import torch

            self._torch_threads = torch.get_num_threads()
            torch.set_num_threads(max(1, (os.cpu_count() or 2) // 2))
        window.set_help(["Keys and mouse"] + KEY_HELP + ([self.gamepads.status] if self.gamepads else []))
        window.push_handlers(self)
        self.reset_camera()
        self._last_camera = self._camera_state()
        self.update_view(0.0, alpha=1.0)

    # ---- camera ---------------------------------------------------------------------------------------------
    def follow_point(self, positions: np.ndarray) -> np.ndarray:
        root = positions[0, 0]
        return np.array([root[0], FOLLOW_HEIGHT, root[2]])

    def reset_camera(self) -> None:
        """Look at the first character from behind it, a little to its right (from higher up over walls, from
        farther and higher in a crowd)."""
        self.camera.snap(self.follow_point(self._cur))
        self.camera.azimuth = float(self.sim.env.core.yaw[0]) + math.pi + CAMERA_BEHIND_OFFSET
        high = bool(self.sim.draw_data(0)["boxes"])  # walls: look over them
        self.camera.elevation = OVERVIEW_CAMERA_ELEVATION if high else CAMERA_ELEVATION
        self.camera.distance = OVERVIEW_CAMERA_DISTANCE if high else CAMERA_DISTANCE
        if self.sim.num_characters >= CROWD_CAMERA_MIN:  # a crowd: the first character among the others
            self.camera.elevation = max(self.camera.elevation, CROWD_CAMERA_ELEVATION)
            self.camera.distance = max(self.camera.distance, CROWD_CAMERA_DISTANCE)

    def azimuth(self) -> float:
        """The azimuth the view is seen from now (the fixed mode has its own)."""
        return self.camera.fixed_azimuth if self.camera.mode == "fixed" else self.camera.azimuth

    def _camera_state(self) -> dict:
        c = self.camera
        return {"mode": c.mode, "azimuth": float(c.azimuth), "elevation": float(c.elevation),
                "distance": float(c.distance)}

    def _apply_camera(self, fields: dict) -> None:
        for name, value in fields.items():
            setattr(self.camera, name, value if name == "mode" else float(value))

    # ---- pyglet events --------------------------------------------------------------------------------------
    def on_key_press(self, symbol, modifiers):
        name = self._key.symbol_string(symbol)
        if name == "ESCAPE":
            self.quit()
        elif name == "F1":
            self.window.help_visible = not self.window.help_visible
        elif name == "P":
            self.paused = not self.paused
        elif name == "C":
            self.camera.cycle_mode()
        elif name == "H":
            self.hud_visible = not self.hud_visible
        elif name == "R":
            self.pending.append({"reset": True})
        elif name == KEY_CAPTURE:
            self.toggle_capture()
        elif name == KEY_FOOT_LOCK:
            self.toggle_foot_locking()
        elif name == KEY_STYLE:
            self.pending.append({"style": "previous" if modifiers & self._key.MOD_SHIFT else "next"})
        elif name in TASK_KEYS:
            self.pending.append({"task": TASK_KEYS[name]})
        elif name in MOVE_KEYS:
            self.held.add(name)
        self._hud_dirty = True
        return True  # handled: keeps pyglet's default Esc-closes-window out of the way

    def on_key_release(self, symbol, modifiers):
        self.held.discard(self._key.symbol_string(symbol))
        return True

    def on_deactivate(self):
        self.held.clear()  # keys released while another window has the focus never send a release

    def on_mouse_press(self, x, y, button, modifiers):
        if button == self._mouse.LEFT:
            self.gesture.press(x, y)
            self.stroke_preview = []
        return True

    def on_mouse_drag(self, x, y, dx, dy, buttons, modifiers):
        if not buttons & self._mouse.LEFT:
            return None  # the window orbits (right drag) and pans (middle drag)
        if self.gesture.drag(x, y) and self._takes_paths():
            ground = self.window.screen_to_ground(x, y)
            if ground is not None:
                self.stroke_preview.append(ground)
        return True

    def _takes_paths(self) -> bool:
        return "path" in self.sim.env.task.accepts

    def on_mouse_release(self, x, y, button, modifiers):
        if button != self._mouse.LEFT:
            return True
        result = self.gesture.release(x, y)
        self.stroke_preview = []
        if result is None:
            return True
        kind, where = result
        if kind == "click":
            ground = self.window.screen_to_ground(*where)
            if ground is not None:
                self.pending.append({"click": [float(ground[0]), float(ground[1])]})
        elif self._takes_paths():
            points = [g for g in (self.window.screen_to_ground(px, py) for px, py in where) if g is not None]
            if len(points) >= 2:
                self.pending.append({"path": [[float(gx), float(gz)] for gx, gz in points]})
        return True

    def on_close(self):
        self.quit()  # and let the window close itself

    def quit(self) -> None:
        self.quit_requested = True
        try:
            import pyglet

            pyglet.app.exit()
        except Exception:  # noqa: BLE001 - outside pyglet.app.run there is no loop to stop
            pass

    # ---- the loop -----------------------------------------------------------------------------------------
    def live_input(self) -> StepInput:
        pad = self._pad
        held = Held(tuple(sorted(self.held)), (float(pad.stick[0]), float(pad.stick[1])), pad.run, pad.stop, pad.dash,
                    pad.strafe)
        actions, self.pending = self.pending, []
        camera = self._camera_state()
        changed = {k: v for k, v in camera.items() if self._last_camera is None or self._last_camera.get(k) != v}
        return StepInput(held, changed or None, actions)

    def step_simulation(self) -> None:
        """One simulation step with the script's input (while it lasts) or the live devices'."""
        if self.script is not None and not self.script.finished:
            step_input = self.script.next_input()
            self.pending.clear()  # live clicks and keys wait until the script is over
            if step_input.camera:
                self._apply_camera(step_input.camera)
        else:
            step_input = self.live_input()
        self._last_camera = self._camera_state()
        if self.input_recorder is not None:
            self.input_recorder.add(step_input)
        self.sim.set_view_focus(self.camera.target[::2])  # a crowd plants the feet of those nearest the view
        self.sim.step(step_input, self.azimuth())
        positions = self.sim.joint_positions()
        if self.motion_capture is not None:
            self.motion_capture.add(self.sim.joint_rotations(), positions)
        if positions.shape != self._cur.shape:
            self._cur = positions
        jumped = self.sim.teleported.numpy()
        self._prev = np.where(jumped[:, None, None], positions, self._cur)
        self._cur = positions
        if bool(jumped[0]):
            self.reset_camera()

    def frame(self, dt: float) -> None:
        """One displayed frame, ``dt`` seconds after the last: :meth:`tick` with the window drawn between the view
        and the simulation steps, then shown (``flip``). What ``play.py`` runs and the benchmarks time."""
        from pyglet import gl

        def draw() -> None:
            self.window.draw_frame()
            gl.glFlush()  # the commands go to the GL now: software GL rasterises while the simulation steps

        self.tick(dt, draw)
        self.window.flip()  # waits for the frame to be rasterised

    def tick(self, dt: float, draw=None) -> None:
        """One rendered frame's worth of work, ``dt`` seconds after the last: the camera, scene and HUD of the
        simulation as it stands (interpolated), ``draw()`` when given, then the simulation steps now due at its
        fixed rate (at most ``catch_up_steps()``). Stepping after the frame is drawn lets software GL (Mesa
        llvmpipe) rasterise it on its own threads while the simulation steps on the CPU; the frame shows the
        simulation as it stood before them, at most one step behind, as interpolating between steps does anyway."""
        dt = max(float(dt), 0.0)
        if dt > 0:
            self.fps = 1.0 / dt if self.fps == 0 else 0.9 * self.fps + 0.1 / dt
        self.frame_count += 1
        if self.gamepads is not None:
            pad = self.gamepads.read()  # sampled every frame; the next simulation step takes the latest
            if pad.next_style and not self._pad.next_style:
                self.pending.append({"style": "next"})
            self._pad = pad
        if not self.paused:
            self.accumulator = min(self.accumulator + dt, self.catch_up_steps() * self.sim.dt)
        # The interpolation runs one step behind the simulation clock: a frame between two steps shows that far
        # between the last two states; when a step is due it shows the latest, then takes the step.
        self.update_view(dt, min(self.accumulator / self.sim.dt, 1.0))
        if draw is not None:
            draw()
        steps = 0
        while not self.paused and self.accumulator >= self.sim.dt:
            began = time.perf_counter()
            self.step_simulation()
            seconds = time.perf_counter() - began
            if self.sim.step_count > WARM_UP_STEPS:
                self.step_seconds = seconds if self.step_seconds == 0 else 0.9 * self.step_seconds + 0.1 * seconds
            self.accumulator -= self.sim.dt
            steps += 1
        if dt > 0 and not self.paused:
            self.sim_hz = 0.95 * self.sim_hz + 0.05 * steps / dt

    def catch_up_steps(self) -> int:
        """Steps one tick may run: ``MAX_STEPS_PER_TICK``, fewer where steps take so long (a big crowd on a slow
        processor) that catching up would hold frames below ``MIN_FRAME_HZ``; at least one. Time beyond that is
        dropped: the simulation runs slower than real time (the HUD shows its rate) while the window keeps drawing a
        frame for every step, rather than keeping time at a few frames a second (a crowd of 1,000 on a 2-core AVX2
        processor that steps it in 28-35 ms: 8 frames a second with four steps to a frame, 14-16 with one)."""
        if self.step_seconds <= 0.0:
            return MAX_STEPS_PER_TICK
        return max(1, min(MAX_STEPS_PER_TICK, int(1.0 / (MIN_FRAME_HZ * self.step_seconds))))

    def update_view(self, dt: float, alpha: float) -> None:
        """Scene (positions interpolated ``alpha`` of the way from the previous to the current step), camera, HUD."""
        from viewer.scene import Characters, Polyline, SceneFrame

        positions = self._prev + alpha * (self._cur - self._prev)
        self.camera.update(dt, self.follow_point(positions))
        markers, lines, boxes = (list(items) for items in self.task_items())
        if len(self.stroke_preview) >= 2:
            pts = np.array([[x, 0.03, z] for x, z in self.stroke_preview])
            lines.append(Polyline(pts, STROKE_RGBA, LINE_WIDTH * 1.5))
        if self.sim.num_characters >= CROWD_CAMERA_MIN:
            lines.append(Polyline(lead_ring(positions[0, 0]), LEAD_RGBA, LINE_WIDTH * 1.5))
        characters = Characters.from_skeleton(self.sim.skeleton, positions, rgba=self.character_rgba)
        self.window.set_scene(SceneFrame(characters=[characters], markers=markers, polylines=lines, boxes=boxes))
        self.refresh_hud()

    def task_items(self) -> tuple[list, list, list]:
        """(markers, polylines, boxes) of the task: the first character's, and the goals of the next
        ``CROWD_GOALS_DRAWN``; rebuilt after each simulation step only (nothing else changes them; frames between
        steps reuse them)."""
        key = (self.sim.step_count, id(self.sim.env))
        if self._task_items_key != key:
            markers, lines, boxes = scene_items(self.sim.draw_data(0))
            for i in range(1, min(self.sim.num_characters, CROWD_GOALS_DRAWN + 1)):
                markers.extend(scene_items(self.sim.draw_data(i), translucent=True)[0])
            self._task_items, self._task_items_key = (markers, lines, boxes), key
        return self._task_items

    def refresh_hud(self, force: bool = False) -> None:
        """Re-lay the HUD text (the lines that changed: ~0.4 ms each for pyglet): every ``HUD_REFRESH_S`` of wall time
        live, every ``HUD_RECORD_STEPS`` simulation steps when recording (so videos depend on the steps only)."""
        if not self.hud_visible:
            self.window.set_hud([])
            return
        if self.realtime:
            now = time.perf_counter()
            due = now - self._hud_time >= HUD_REFRESH_S
        else:
            due = self.sim.step_count % HUD_RECORD_STEPS == 0 or self._hud_time < 0
        if due or force or self._hud_dirty:
            self.window.set_hud(self.hud_lines())
            self._hud_time = time.perf_counter() if self.realtime else 0.0
            self._hud_dirty = False

    def hud_lines(self) -> list[str]:
        lines = simulation_lines(self.sim)
        if self.realtime:
            sim = self.sim
            behind = self.sim_hz < 0.9 * sim.fps  # the processor cannot keep real time (catch_up_steps)
            rate = f"{self.sim_hz:.0f} of {sim.fps:.0f}" if behind else f"{sim.fps:.0f}"
            lines.insert(0, f"fps {self.fps:5.1f}   sim {rate} Hz   inference {sim.act_ms + sim.decode_ms:5.2f} ms "
                            f"(controller {sim.act_ms:.2f} + decoder {sim.decode_ms:.2f})")
        if self.paused:
            lines.append("PAUSED (P)")
        if self.script is not None and not self.script.finished:
            lines.append(f"replaying input script: step {self.script.step} of {self.script.script.steps}")
        lines.extend(note if len(note) <= NOTE_CHARS else note[:NOTE_CHARS - 3] + "..." for note in self.sim.notes[-1:])
        pad = f"{self.gamepads.status}   " if self.gamepads is not None else ""
        lines.append(f"{pad}F1 help   H hide HUD   {self.foot_locking_label()}")
        return lines

    def foot_locking_label(self) -> str:
        if self.sim.foot_locker is None:
            return f"{KEY_FOOT_LOCK} foot locking unavailable"
        channels = " (contact channels)" if self.sim.foot_locking and self.sim.contact_channels else ""
        return f"{KEY_FOOT_LOCK} foot locking {'on' if self.sim.foot_locking else 'off'}{channels}"

    def run(self) -> None:
        """Interactive: pyglet's event loop, rendering as fast as the display allows."""
        import pyglet

        pyglet.clock.schedule(self.frame)
        try:
            pyglet.app.run(interval=None)  # self.frame draws and flips the window itself
        finally:
            pyglet.clock.unschedule(self.frame)

    def record_video(self, path, steps: int):
        """Render ``steps`` simulation steps, one video frame each, into ``path`` (.mp4 / .gif) -> the file's path."""
        from viewer.recorder import VideoRecorder

        if steps < 1:
            raise ValueError(f"nothing to record: {steps} steps (use --seconds > 0)")
        with VideoRecorder(path, fps=self.sim.fps, size=self.window.get_framebuffer_size()) as recorder:
            for _ in range(steps):
                self.step_simulation()
                self.update_view(self.sim.dt, alpha=1.0)
                recorder.append(self.window.render_to_array())
        return Path(path)

    # ---- planted feet -----------------------------------------------------------------------------------------
    def toggle_foot_locking(self) -> None:
        """Key L: planted feet off / on; the pose shown changes at once (also while paused)."""
        self.sim.set_foot_locking(not self.sim.foot_locking)
        self._prev = self._cur = self.sim.joint_positions()

    # ---- BVH capture -----------------------------------------------------------------------------------------
    def toggle_capture(self) -> None:
        """Key B: start capturing the followed character, or write what was captured."""
        if self.motion_capture is not None:
            self.finish_capture()
            return
        self.capture_path = self.capture_path or next_free_path(Path("capture.bvh"))
        self.motion_capture = MotionCapture(self.sim.skeleton, self.sim.fps, characters=[0])
        self.sim.notes.append(f"capturing motion to {self.capture_path} (B again to write it)")

    def finish_capture(self) -> list[Path]:
        """Write the capture (if any) and stop; a capture that cannot be written becomes a note."""
        capture, self.motion_capture = self.motion_capture, None
        if capture is None:
            return []
        try:
            written = capture.save(self.capture_path)
        except (ValueError, OSError) as e:
            self.sim.notes.append(f"motion capture not written: {e}")
            return []
        self.sim.notes.append(f"wrote {capture.steps} frames of motion to {', '.join(map(str, written[:3]))}"
                              + (f" and {len(written) - 3} more" if len(written) > 3 else ""))
        self.capture_path = next_free_path(self.capture_path)  # a second capture does not overwrite the first
        return written

    def close(self) -> None:
        if self.gamepads is not None:
            self.gamepads.close()
        if self._torch_threads is not None:
            import torch

            torch.set_num_threads(self._torch_threads)
        self.window.remove_handlers(self)
