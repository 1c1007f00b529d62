"""The real-time app behind ``play.py``: Motion VAE characters steered live, drawn with the viewer, recorded.

Two layers, so tests and benchmarks can drive either without ``pyglet.app.run``:

* :class:`Simulation` (no pyglet): the batched environment of the current task (``envs.MotionVecEnv`` on an
  inference backend from :func:`controller.make_backend`), the controller that picks its actions (the task's
  policy ``assets/policies/{target,joystick,pathfollow,maze}.pt`` when it exists and fits this VAE (sizes,
  and trained on these VAE weights), run by the same kind of backend, or by its torch module where the
  backend cannot load it; else ``policies.SamplingController``: K prior samples decoded
  in one batch, the best matching the wanted direction and speed; K = 32, fewer in crowds so that a step
  decodes about ``CANDIDATE_BUDGET`` candidates in all, at least 4 each), live task switching, and the user's
  commands. ``step(step_input, azimuth)`` advances every character one frame (1 / the VAE's fps).
* :class:`App` (pyglet): a :class:`viewer.ViewerWindow`, input devices (keyboard, gamepad, mouse; bindings in
  :mod:`controller.inputs`), the fixed-rate loop and recording. ``tick(dt)`` runs the simulation at its
  fixed rate from wall time (at most ``MAX_STEPS_PER_TICK`` steps per call), interpolates joint positions
  between the last two states for rendering, and updates the camera and HUD; ``step_simulation()`` runs one
  step; ``record_video(path, steps)`` renders one video frame per simulation step (simulation time, never
  wall time), so a seed and an input script (:mod:`controller.input_script`) reproduce a video exactly.

Task names (``play.py --task``, keys 1-5): ``random_walk``, ``target``, ``joystick``, ``path`` (the
environments' ``path_follow``), ``maze``. Interactive characters never time out (no truncation); a character
that fails its task (lost the path, hit a maze wall) restarts alone, as in the environments. Switching task
keeps the characters where they are (except into the maze, which has its own start cells) and gives them
goals near where they stand.

Mouse: a left click places the target of the target task (from random walk or joystick the app switches to
the target task first) or, in the maze, picks the goal cell; a left drag in the path task draws a path that
starts at the character (``PathFollow.set_path``). Joystick: the held direction (keys / stick, relative to
the camera) becomes the command with ``hold_seconds=inf``; released keys keep the last command (Space
stops); before any input the task's own random commands run.

The HUD shows fps, inference milliseconds (the controller's action plus the decoder step, from the backend's
meters), backend and provider, task, controller, commanded and actual speed and heading (degrees, 0 = +z,
counter-clockwise seen from above), and task metrics. Recordings leave out the wall-clock figures (fps,
milliseconds) so that identical inputs give identical frames.
"""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from controller.input_script import Held, InputRecorder, ScriptPlayer, StepInput
from controller.inputs import (
    KEY_HELP,
    MOVE_KEYS,
    TASK_KEYS,
    Control,
    Gamepads,
    MouseGesture,
    combine,
    command_speed,
    world_direction,
)

REPO = Path(__file__).resolve().parents[1]
DEFAULT_VAE = REPO / "assets" / "vae.pt"
DEFAULT_POLICIES = REPO / "assets" / "policies"
TASK_ENV = {"random_walk": "random_walk", "target": "target", "joystick": "joystick", "path": "path_follow",
            "maze": "maze"}
TASK_KEY_LABEL = {"random_walk": "1", "target": "2", "joystick": "3", "path": "4", "maze": "5"}
POLICY_FILES = {"target": "target.pt", "joystick": "joystick.pt", "path": "pathfollow.pt", "maze": "maze.pt"}
WALK_SPEED = 1.0  # m/s commanded by a full move
RUN_SPEED = 1.8  # m/s with Shift / the trigger (the character goes as fast as the model's data allows)
NUM_CANDIDATES = 32  # prior samples per character per step for the sampling fallback (at most)
CANDIDATE_BUDGET = 512  # decoded candidates per step for the whole crowd: big crowds get fewer each
MIN_CANDIDATES = 4
EPISODE_STEPS = 10**12  # interactive characters never time out
SEED_STRIDE = 7919  # each environment made in a session gets seed + k * SEED_STRIDE
FOLLOW_HEIGHT = 0.9  # m: the camera looks at the character's hips, not its feet
CAMERA_BEHIND_OFFSET = math.radians(25.0)  # start behind the character, a little to its right
CAMERA_DISTANCE = 5.5
CAMERA_ELEVATION = math.radians(15.0)
MAZE_CAMERA_DISTANCE = 9.0
MAZE_CAMERA_ELEVATION = math.radians(50.0)
MAX_STEPS_PER_TICK = 4  # a slow frame catches up at most this many steps (no spiral of death)
CROWD_GOALS_DRAWN = 16  # goal markers of characters 1.. drawn besides the first one's full draw data
LEAD_RGBA = (0.86, 0.56, 0.32, 1.0)
CROWD_RGBA = (0.45, 0.6, 0.8, 1.0)
LINE_WIDTH = 0.03
STROKE_RGBA = (0.2, 0.75, 0.35, 1.0)
NOTE_CHARS = 110  # longer console notes are cut in the HUD
HUD_REFRESH_S = 0.25  # live HUD text refresh period (laying out text costs pyglet tens of ms)
HUD_RECORD_STEPS = 3  # recordings refresh the HUD every this many simulation steps


def env_task_name(task: str) -> str:
    if task not in TASK_ENV:
        raise ValueError(f"task {task!r}; choose one of {', '.join(TASK_ENV)}")
    return TASK_ENV[task]


def heading_deg(dx: float, dz: float) -> float:
    """A ground direction -> heading in degrees (0 = +z, counter-clockwise seen from above positive)."""
    return math.degrees(math.atan2(dx, dz))


@dataclass
class AppConfig:
    """What the app runs (``play.py`` fills it from its flags)."""

    vae: Path = DEFAULT_VAE
    task: str = "joystick"
    characters: int = 1
    backend: str = "auto"
    device: str = "auto"
    seed: int = 0
    policies_dir: Path | None = DEFAULT_POLICIES
    walk_speed: float = WALK_SPEED
    run_speed: float = RUN_SPEED
    num_candidates: int = NUM_CANDIDATES

    def check(self) -> None:
        env_task_name(self.task)
        if not isinstance(self.characters, int) or self.characters < 1:
            raise ValueError(f"--characters must be a positive integer, got {self.characters!r}")
        if not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"--seed must be an integer >= 0, got {self.seed!r}")
        if not Path(self.vae).is_file():
            from envs.manifold_source import TRAIN_HINT

            raise FileNotFoundError(f"no model file {self.vae}: pass --vae CKPT (a checkpoint written by vae.train), "
                                    f"or {TRAIN_HINT}")


# ---- controllers --------------------------------------------------------------------------------------------
class PolicyController:
    """A trained policy: ``(env, obs) -> actions``, run by an inference backend (``backend.act``) or, where the
    backend cannot run it, by the torch module itself. Gaussian actions are rescaled from the policy's
    ``action_scale`` to the environment's (the latent is action * scale)."""

    def __init__(self, path: Path, policy, backend=None, why_torch: str = ""):
        self.policy = policy
        self.backend = backend
        self.scale = float(getattr(policy, "action_scale", 1.0))
        where = f"{backend.name} on {backend.provider}" if backend is not None else f"torch ({why_torch})"
        self.label = f"policy {path} ({where})"
        self.short_label = f"policy {path.name}" + ("" if backend is not None else " (torch)")

    @torch.no_grad()
    def __call__(self, env, obs: torch.Tensor) -> torch.Tensor:
        if self.backend is not None:
            action = self.backend.act(obs)
        else:
            action = self.policy(obs.to(next(self.policy.parameters()).device))
        action = action.to(env.device)
        if env.core.discrete or self.scale == env.action_scale:
            return action
        return (action * (self.scale / env.action_scale)).clamp(-1.0, 1.0)


class FallbackController:
    """``policies.SamplingController`` on the environment's manifold (the backend): no training needed."""

    def __init__(self, env, seed: int, num_candidates: int, why: str):
        from policies.sampling_controller import SamplingController

        self.sampler = SamplingController.for_env(env, seed=seed, num_candidates=num_candidates)
        self.label = f"sampling fallback (K={num_candidates} prior samples; {why})"
        self.short_label = f"sampling fallback, K={num_candidates} (no usable policy)"

    def __call__(self, env, obs: torch.Tensor) -> torch.Tensor:
        return self.sampler(env, obs)


class PriorController:
    """Random walk: the task decodes prior samples itself and ignores the action."""

    label = short_label = "prior samples (random walk ignores actions)"

    def __call__(self, env, obs: torch.Tensor) -> torch.Tensor:
        return torch.zeros((env.num_envs,) + env.single_action_space.shape, device=env.device,
                           dtype=torch.int64 if env.core.discrete else torch.float32)


# ---- the simulation -----------------------------------------------------------------------------------------
class Simulation:
    """The characters, their task and controller, and the user's commands (see the module docstring)."""

    def __init__(self, config: AppConfig, *, backend=None, verbose: bool = True):
        config.check()
        self.config = config
        self.verbose = verbose
        if backend is None:
            from controller.runtime import make_backend

            backend = make_backend(str(config.vae), backend=config.backend, device=config.device, verbose=verbose)
        self.backend = backend
        self.fps = float(backend.fps)
        self.dt = 1.0 / self.fps
        self.skeleton = backend.skeleton
        self.num_characters = config.characters
        self.step_count = 0
        self.env = None
        self.task_name = config.task
        self._env_count = 0
        self._policies: dict[str, PolicyController | str] = {}  # per task: the controller, or why there is none
        self.notes: list[str] = []  # one-line messages for the console / HUD (e.g. a policy that was refused)
        self.user_command = None  # (direction (2,), speed) of the joystick once the user steered
        self.teleported = torch.ones(self.num_characters, dtype=torch.bool)  # rows whose motion jumped this step
        self.act_ms = self.decode_ms = 0.0
        self.metrics: dict = {}
        self._switch(config.task, carry=False)

    # ---- tasks ------------------------------------------------------------------------------------------
    def _make_env(self, task: str):
        from envs.vec_env import MotionVecEnv

        env = MotionVecEnv(self.num_characters, env_task_name(task), self.backend, array_backend="torch",
                           max_episode_steps=EPISODE_STEPS, autoreset_mode="Disabled")
        obs, _ = env.reset(seed=self.config.seed + SEED_STRIDE * self._env_count)
        self._env_count += 1
        return env, obs

    def _switch(self, task: str, carry: bool) -> None:
        old = self.env
        env, obs = self._make_env(task)
        carry = carry and old is not None and task != "maze"
        if carry:
            core, prev = env.core, old.core
            core.cond, core.root_xz, core.yaw = prev.cond.clone(), prev.root_xz.clone(), prev.yaw.clone()
            obs = self._goals_near_characters(env, task)
        if old is not None:
            old.close()
        self.env, self.obs, self.task_name = env, obs, task
        self.teleported = torch.full((self.num_characters,), not carry, dtype=torch.bool)
        self.controller = self._controller_for(task)
        self.metrics = {}
        if self.verbose:
            print(f"play: task {task}: {self.controller.label}", flush=True)

    def _goals_near_characters(self, env, task: str) -> torch.Tensor:
        """After moving characters into a fresh environment: goals relative to where they stand -> observations."""
        t, core = env.task, env.core
        if task == "target":
            from envs.tasks.target import sample_targets

            t.set_targets(sample_targets(t, core.root_xz, t.min_distance, t.max_distance, t.half_arena))
        elif task == "path":
            t.set_path(t.path - t.path[:, :1] + core.root_xz[:, None])  # the same loops, starting at the characters
        elif task == "joystick" and self.user_command is not None:
            direction, speed = self.user_command
            t.set_command(direction, torch.full((self.num_characters,), speed))
        nobody = torch.zeros(self.num_characters, dtype=torch.bool)
        obs, _ = env.reset(options={"reset_mask": nobody})  # re-observe: restarts nobody
        return obs

    def _controller_for(self, task: str):
        """The task's policy when its file exists and fits this VAE, else the sampling fallback (saying why)."""
        if task == "random_walk":
            return PriorController()
        why = "no policies folder given"
        if self.config.policies_dir is not None:
            path = Path(self.config.policies_dir) / POLICY_FILES[task]
            why = f"no policy file {path}"
            if path.is_file():
                controller = self._policy_controller(task, path)
                if not isinstance(controller, str):
                    return controller
                why = controller
        seed = self.config.seed + SEED_STRIDE * self._env_count
        return FallbackController(self.env, seed, self.candidates_per_character(), why)

    def _policy_controller(self, task: str, path: Path):
        """A PolicyController for the policy at ``path``, or (a str) why it cannot steer this VAE."""
        if task in self._policies:
            return self._policies[task]
        try:
            from policies import check_policy_fits, load_policy

            with warnings.catch_warnings():
                warnings.simplefilter("error")  # trained on another VAE: it would steer this one poorly
                policy = load_policy(path, device=self.env.device)
                obs_size = int(self.env.single_observation_space.shape[0])
                check_policy_fits(policy, getattr(self.backend, "manifold", self.backend), obs_size, strict=True)
        except Exception as e:  # noqa: BLE001 - any unusable policy falls back, and says why
            self._policies[task] = f"policy {path} not used: {_first_line(e)}"
            self._note(self._policies[task])
            return self._policies[task]
        try:
            from controller.runtime import make_backend

            backend = make_backend(str(self.config.vae), policy=str(path), backend=self.config.backend,
                                   device=self.config.device, verbose=self.verbose)
            self._policies[task] = PolicyController(path, policy, backend)
        except Exception as e:  # noqa: BLE001 - the policy itself is fine: run it in torch
            self._note(f"policy {path}: the {self.config.backend} backend cannot run it ({_first_line(e)}); "
                       "running it in torch")
            self._policies[task] = PolicyController(path, policy, None,
                                                    why_torch=f"the {self.config.backend} backend could not load it")
        return self._policies[task]

    def candidates_per_character(self) -> int:
        """K of the sampling fallback: ``num_candidates``, fewer in big crowds (``CANDIDATE_BUDGET`` per step)."""
        share = CANDIDATE_BUDGET // self.num_characters
        return max(MIN_CANDIDATES, min(self.config.num_candidates, share))

    def _note(self, message: str) -> None:
        self.notes.append(message)
        if self.verbose:
            print(f"play: {message}", flush=True)

    # ---- stepping -----------------------------------------------------------------------------------------
    def step(self, step_input: StepInput | None = None, azimuth: float = 0.0) -> None:
        """Apply the user's input (actions first, then the held controls) and advance every character one frame."""
        step_input = step_input if step_input is not None else StepInput()
        self.teleported = torch.zeros(self.num_characters, dtype=torch.bool)
        for action in step_input.actions:
            self.apply_action(action)
        held = step_input.held
        self.apply_control(combine(held.keys, held.stick, held.pad_run, held.pad_stop), azimuth)
        start = time.perf_counter()
        actions = self.controller(self.env, self.obs)
        self.act_ms = (time.perf_counter() - start) * 1e3
        out = self.env.step_tensors(actions)
        self.decode_ms = self.backend.meters["step"].last_ms
        self.metrics = out.metrics
        self.obs = out.obs
        done = out.terminated | out.truncated
        if bool(done.any()):
            self.obs, _ = self.env.reset(options={"reset_mask": done})
            self.teleported = self.teleported | done.cpu()
        self.step_count += 1

    def apply_action(self, action: dict) -> None:
        """One-off input: {"task": name} | {"reset": True} | {"click": (x, z)} | {"path": [(x, z), ...]}."""
        if "task" in action:
            if action["task"] != self.task_name:
                self.switch_task(action["task"])
        elif "reset" in action:
            self.reset()
        elif "click" in action:
            self.click(action["click"])
        elif "path" in action:
            self.draw_path(action["path"])
        else:
            raise ValueError(f"unknown input action {action!r}")

    def switch_task(self, task: str) -> None:
        env_task_name(task)
        self._switch(task, carry=True)

    def reset(self) -> None:
        """Restart every character (new start poses and goals) and forget the user's joystick command."""
        self.user_command = None
        self._switch(self.task_name, carry=False)

    def click(self, point) -> None:
        """A click on the ground at ``point`` (x, z) m: the target there (maze: that goal cell)."""
        xz = torch.tensor([[float(point[0]), float(point[1])]])
        if self.task_name == "maze":
            self.env.task.set_goals(self.env.task.cell_of(xz).expand(self.num_characters))
        elif self.task_name == "path":
            return  # the path task takes strokes, not clicks
        else:
            if self.task_name != "target":
                self.switch_task("target")
            self.env.task.set_targets(xz)
        self.obs = self._reobserve()

    def draw_path(self, points) -> None:
        """A stroke on the ground: the path task follows it from each character's position, then loops back."""
        stroke = torch.as_tensor(np.asarray(points, dtype=np.float32)).reshape(-1, 2)
        if len(stroke) < 2:
            return
        if self.task_name != "path":
            self.switch_task("path")
        start = self.env.core.root_xz[:, None]  # (B, 1, 2)
        self.env.task.set_path(torch.cat((start, stroke[None].expand(self.num_characters, -1, -1)), dim=1))
        self.obs = self._reobserve()

    def _reobserve(self) -> torch.Tensor:
        obs, _ = self.env.reset(options={"reset_mask": torch.zeros(self.num_characters, dtype=torch.bool)})
        return obs

    def apply_control(self, control: Control, azimuth: float) -> None:
        """Held direction / run / stop -> the joystick command (other tasks take clicks and strokes instead)."""
        if self.task_name != "joystick" or not control.active:
            return
        speed = command_speed(control, self.config.walk_speed, self.config.run_speed)
        direction = world_direction(control.move, azimuth)
        if direction is None:  # stopping without a direction: keep facing where each character faces
            facing = self.env.core.facing()
            self.env.task.set_command(facing, torch.full((self.num_characters,), speed))
            self.user_command = (facing[0].tolist(), speed)
            return
        self.env.task.set_command(torch.tensor([direction]), torch.full((self.num_characters,), speed))
        self.user_command = (list(direction), speed)

    # ---- what to draw and show --------------------------------------------------------------------------------
    def joint_positions(self) -> np.ndarray:
        """(B, J, 3) world joint positions, metres."""
        return self.env.core.world_joint_positions().cpu().numpy().astype(np.float64)

    def draw_data(self, index: int = 0) -> dict:
        return self.env.draw_data(index)

    def commanded(self) -> tuple[float | None, float | None]:
        """(heading deg, speed m/s) the first character is asked for now; None where the task sets none."""
        t, core = self.env.task, self.env.core
        root = core.root_xz[0]
        if self.task_name == "joystick":
            d = t.command_direction[0]
            return heading_deg(float(d[0]), float(d[1])), float(t.command_speed[0])
        goal = None
        if self.task_name == "target":
            goal = t.target[0]
        elif self.task_name == "path":
            goal = t.lookahead()[0, 0]
        elif self.task_name == "maze":
            goal = t.cell_centers[t.goal[0]]
        if goal is None:
            return None, None
        d = goal - root
        return heading_deg(float(d[0]), float(d[1])), None

    def actual(self) -> tuple[float, float]:
        """(heading deg, ground speed m/s) of the first character."""
        return math.degrees(float(self.env.core.yaw[0])), float(self.env.core.speed()[0])

    def hud_lines(self) -> list[str]:
        """Task, controller, backend, commanded vs actual motion and metrics (no wall-clock figures)."""
        name = self.task_name
        want_heading, want_speed = self.commanded()
        heading, speed = self.actual()
        want = "command: -" if want_heading is None else f"command: heading {want_heading:+4.0f} deg" + (
            "" if want_speed is None else f" {want_speed:.2f} m/s")
        lines = [f"task {name} [{TASK_KEY_LABEL[name]}]   {self.num_characters} character"
                 f"{'s' if self.num_characters > 1 else ''}   t {self.step_count * self.dt:.1f} s   "
                 f"{self.backend.name} on {self.backend.provider}",
                 f"controller: {self.controller.short_label}",
                 f"{want}   actual: heading {heading:+4.0f} deg {speed:.2f} m/s"]
        metrics = self.metric_summary()
        if metrics:
            lines.append(metrics)
        return lines

    def metric_summary(self) -> str:
        """The task's metrics of the last step, for the first character (and the crowd mean when B > 1)."""
        parts = []
        for key, (values, mask) in self.metrics.items():
            if mask is not None or key in ("command_speed", "speed", "collided"):
                continue  # event metrics flicker; speeds are on the command line
            fmt = ".2f" if values.dtype.is_floating_point else "d"
            text = f"{key} {_scalar(values[0]):{fmt}}"
            if self.num_characters > 1:
                text += f" (mean {float(values.float().mean()):.2f})"
            parts.append(text)
        return "   ".join(parts)

    def close(self) -> None:
        if self.env is not None:
            self.env.close()


def _first_line(e: BaseException) -> str:
    return str(e).splitlines()[0] if str(e) else type(e).__name__


def _scalar(x: torch.Tensor):
    return float(x) if x.dtype.is_floating_point else int(x)


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


class App:
    """The window, the devices and the loop around a :class:`Simulation` (see the module docstring).

    ``realtime=False`` (recording): no live devices, and the HUD leaves out wall-clock figures. ``script``: a
    :class:`controller.input_script.ScriptPlayer` that feeds the steps first (live input takes over after
    it ends); ``input_recorder``: an :class:`controller.input_script.InputRecorder` that receives every step.
    """

    def __init__(self, sim: Simulation, window, *, script: ScriptPlayer | None = None,
                 input_recorder: InputRecorder | None = None, realtime: bool = True):
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
        self._pad = ((0.0, 0.0), False, False)
        self.accumulator = 0.0
        self.fps = 0.0
        self.frame_count = 0
        self._last_camera: dict | None = None
        self._prev = self._cur = sim.joint_positions()
        self.lead_rgba = np.array([LEAD_RGBA] + [CROWD_RGBA] * (sim.num_characters - 1))
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
        """Look at the first character from behind it, a little to its right (from higher up in the maze)."""
        self.camera.snap(self.follow_point(self._cur))
        self.camera.azimuth = float(self.sim.env.core.yaw[0]) + math.pi + CAMERA_BEHIND_OFFSET
        high = self.sim.task_name == "maze"  # look over the walls
        self.camera.elevation = MAZE_CAMERA_ELEVATION if high else CAMERA_ELEVATION
        self.camera.distance = MAZE_CAMERA_DISTANCE if high else CAMERA_DISTANCE

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
        if buttons & self._mouse.LEFT:
            if self.gesture.drag(x, y) and self.sim.task_name == "path":
                ground = self.window.screen_to_ground(x, y)
                if ground is not None:
                    self.stroke_preview.append(ground)
        elif buttons & self._mouse.RIGHT:
            self.camera.orbit(dx, dy)
        elif buttons & self._mouse.MIDDLE:
            self.camera.pan(dx, dy)
        return True  # the viewer's own left-drag orbit would fight the path stroke

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
        elif self.sim.task_name == "path":
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
        stick, pad_run, pad_stop = self._pad
        held = Held(tuple(sorted(self.held)), (float(stick[0]), float(stick[1])), bool(pad_run), bool(pad_stop))
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
        self.sim.step(step_input, self.azimuth())
        positions = self.sim.joint_positions()
        if positions.shape != self._cur.shape:
            self._cur = positions
        jumped = self.sim.teleported.numpy()
        self._prev = np.where(jumped[:, None, None], positions, self._cur)
        self._cur = positions
        if bool(jumped[0]):
            self.reset_camera()

    def tick(self, dt: float) -> None:
        """One rendered frame's worth of work: the simulation at its fixed rate, the camera, scene and HUD."""
        dt = max(float(dt), 0.0)
        if dt > 0:
            self.fps = 1.0 / dt if self.fps == 0 else 0.9 * self.fps + 0.1 / dt
        self.frame_count += 1
        if self.gamepads is not None:
            self._pad = self.gamepads.read()  # sampled every frame; the next simulation step takes the latest
        alpha = 1.0
        if not self.paused:
            self.accumulator = min(self.accumulator + dt, MAX_STEPS_PER_TICK * self.sim.dt)
            while self.accumulator >= self.sim.dt:
                self.step_simulation()
                self.accumulator -= self.sim.dt
            alpha = self.accumulator / self.sim.dt
        self.update_view(dt, alpha)

    def update_view(self, dt: float, alpha: float) -> None:
        """Scene (positions interpolated ``alpha`` of the way from the previous to the current step), camera, HUD."""
        from viewer.scene import Characters, Polyline, SceneFrame

        positions = self._prev + alpha * (self._cur - self._prev)
        self.camera.update(dt, self.follow_point(positions))
        markers, lines, boxes = scene_items(self.sim.draw_data(0))
        for i in range(1, min(self.sim.num_characters, CROWD_GOALS_DRAWN + 1)):
            m, _, _ = scene_items(self.sim.draw_data(i), translucent=True)
            markers.extend(m)
        if len(self.stroke_preview) >= 2:
            pts = np.array([[x, 0.03, z] for x, z in self.stroke_preview])
            lines.append(Polyline(pts, STROKE_RGBA, LINE_WIDTH * 1.5))
        characters = Characters.from_skeleton(self.sim.skeleton, positions, rgba=self.lead_rgba)
        self.window.set_scene(SceneFrame(characters=[characters], markers=markers, polylines=lines, boxes=boxes))
        self.refresh_hud()

    def refresh_hud(self, force: bool = False) -> None:
        """Re-lay the HUD text (pyglet takes tens of ms per text block): every ``HUD_REFRESH_S`` of wall time
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
        lines = self.sim.hud_lines()
        if self.realtime:
            sim = self.sim
            lines.insert(0, f"fps {self.fps:5.1f}   sim {sim.fps:.0f} Hz   inference {sim.act_ms + sim.decode_ms:5.2f} ms "
                            f"(controller {sim.act_ms:.2f} + decoder {sim.decode_ms:.2f})")
        if self.paused:
            lines.append("PAUSED (P)")
        if self.script is not None and not self.script.finished:
            lines.append(f"replaying input script: step {self.script.step} of {self.script.script.steps}")
        lines.extend(note if len(note) <= NOTE_CHARS else note[:NOTE_CHARS - 3] + "..." for note in self.sim.notes[-1:])
        pad = f"{self.gamepads.status}   " if self.gamepads is not None else ""
        lines.append(f"{pad}F1 help   H hide HUD")
        return lines

    def run(self) -> None:
        """Interactive: pyglet's event loop, rendering as fast as the display allows."""
        import pyglet

        pyglet.clock.schedule(self.tick)
        try:
            pyglet.app.run(interval=0)
        finally:
            pyglet.clock.unschedule(self.tick)

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

    def close(self) -> None:
        if self.gamepads is not None:
            self.gamepads.close()
        self.window.remove_handlers(self)
