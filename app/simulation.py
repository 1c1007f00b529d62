"""The simulation behind ``play.py`` (no pyglet): characters, their task and controller, and the user's commands.

:class:`Simulation` holds the batched environment of the current task (``envs.MotionVecEnv`` on an inference
backend from :func:`controller.make_backend`) and the controller that picks its actions: the task's policy
``<policies>/<task>.pt`` (the file name :mod:`envs.registry` gives each task) when it exists and fits this VAE
(sizes, and trained on these VAE weights), run by the same kind of backend, or by its torch module where the
backend cannot load it; else ``policies.SamplingController`` (K prior samples decoded in one batch, the best
matching what the task wants; K = 32, fewer in crowds so that a step decodes about ``CANDIDATE_BUDGET``
candidates in all, at least 4 each). ``step(step_input, azimuth)`` advances every character one frame
(1 / the VAE's fps).

Code prior (a VQ model): the character's ``prior.pt`` when its own VAE drives the app, or ``AppConfig.prior``
(``play.py --prior``). It runs on the same kind of inference as the backend
(:func:`controller.prior_session.make_code_prior`: its rollout step on ONNX Runtime, or the torch module) and is
every environment's ``code_prior``: the characters keep its context, the observations end with its log-probabilities
(what prior-residual policies add their residual to), RandomWalk and the sampling fallback draw codes from it. The
controller's label says so (console and HUD).

The user talks to the task only through the environments' public API (``envs.tasks.base``): a click is
``task.set_goal`` for tasks that accept a goal (from one that does not, the app switches to the target task
first), a stroke is ``task.set_path`` (switching to the path task), the held keys / stick are
``task.set_command`` (tasks that accept a command). Switching task keeps the characters where they are
(``env.place``: the new task re-plans their goals around them), except into tasks that place their
characters themselves (the maze). Several characters start spread around the first one (``crowd_start_xz``: a
jittered grid ``CROWD_SPACING_M`` apart, closer where the task's arena is too small), not on top of each other.
Interactive characters never time out; a character that fails its task (lost the path, hit a maze wall) restarts
alone, as in the environments (a crowd member at its own start spot).

Joystick: the held direction (keys / stick, relative to the camera) becomes the command with
``hold_seconds=inf``; released keys keep the last command (Space stops); before any input the task's own
random commands run.

Planted feet (on by default, ``set_foot_locking``; key L in the app): a :class:`mocap.foot_locking.FootLocker`
steps with the characters and holds each foot in contact where it landed with two-bone IK, so
``joint_positions()`` / ``joint_rotations()`` are the pose as drawn, recorded and exported to BVH (feet locked), and
``model_joint_positions()`` the model's own. Contacts come from kinematics against the floor of the model's start
frames (its training data); teleported characters (``teleported``) start without locks. A crowd locks the feet of the
``foot_lock_nearest`` characters nearest the view (``set_view_focus``; the app passes its camera's target) and draws
the others as the model made them: beyond a few dozen characters the rest are drawn as capsule impostors whose feet
nobody sees, and locking 1,024 characters took 5 of a 15 ms step. A character that comes near starts without locks.
"""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from app.input_script import StepInput
from app.inputs import Control, combine, command_speed, world_direction
from envs.registry import canonical_task, task_spec
from mocap.foot_locking import channel_contacts
from policies.controllers import PolicyController, PriorController, SamplingController

BUNDLE_POLICIES = "bundle"  # AppConfig.policies_dir: the character's own policies folder
GOAL_TASK = "target"  # where a click goes from a task that takes no goal
PATH_TASK = "path_follow"  # where a stroke goes
DEFAULT_SPEEDS = {"walk": 1.0, "run": 1.8, "dash": 2.5}  # m/s, for a bare --vae without a bundle's speeds_mps
NUM_CANDIDATES = 32  # prior samples per character per step for the sampling fallback (at most)
CANDIDATE_BUDGET = 512  # decoded candidates per step for the whole crowd: big crowds get fewer each
MIN_CANDIDATES = 4
EPISODE_STEPS = 10**12  # interactive characters never time out
SEED_STRIDE = 7919  # each environment made in a session gets seed + k * SEED_STRIDE
CROWD_WARNING = 2048  # characters beyond which a crowd costs seconds per step on a laptop CPU
BF16_CROWD_CHARACTERS = 256  # from this crowd size --precision auto runs the decoder in bfloat16 where it is native
MAX_CHARACTERS = 100_000
CROWD_SPACING_M = 2.0  # several characters start this far apart (less where the task's arena is too small for them)
CROWD_JITTER = 0.25  # of the spacing: start spots off the grid, so that a crowd does not march in ranks


def crowd_start_xz(count: int, spacing: float, half_arena: float | None, seed: int) -> torch.Tensor:
    """(count, 2) world metres where ``count`` characters start: the first at the origin, the others on a square
    grid of ``spacing`` around it, nearest cells first (a round crowd for any count), each moved by up to
    ``CROWD_JITTER`` of the spacing; closer where ``count`` cells of ``spacing`` would not fit in the square arena of
    half side ``half_arena`` m (None: no arena), and inside it."""
    side = math.ceil(math.sqrt(count))
    if half_arena is not None:
        spacing = min(spacing, 2.0 * half_arena / side)
    index = torch.arange(side, dtype=torch.float64) - (side - 1) / 2.0
    cells = torch.stack(torch.meshgrid(index, index, indexing="ij"), dim=-1).reshape(-1, 2)  # (side^2, 2)
    cells = cells[torch.argsort(cells.norm(dim=1), stable=True)][:count]  # (count, 2) nearest the middle first
    generator = torch.Generator().manual_seed(seed)
    jitter = (torch.rand(count, 2, generator=generator, dtype=torch.float64) * 2.0 - 1.0) * CROWD_JITTER
    jitter[0] = 0.0
    xz = (cells - cells[0] + jitter) * spacing
    if half_arena is not None:
        xz = xz.clamp(-half_arena, half_arena)
    return xz.float()


def heading_deg(dx: float, dz: float) -> float:
    """A ground direction -> heading in degrees (0 = +z, counter-clockwise seen from above positive)."""
    return math.degrees(math.atan2(dx, dz))


@dataclass
class AppConfig:
    """What the app runs (``play.py`` fills it from its flags). ``character``: a bundle (folder or shipped name;
    None: the default character); ``vae`` and ``policies_dir`` override the bundle's (``policies_dir=None``: no
    policies, the sampling fallback drives every task)."""

    character: str | Path | None = None
    vae: Path | None = None
    task: str = "joystick"
    characters: int = 1
    backend: str = "auto"
    device: str = "auto"
    # "int8": ONNX graphs on 8-bit weights (CPU); "bf16": the decoder in bfloat16 (torch); "auto": bf16 for a crowd of
    # BF16_CROWD_CHARACTERS or more where the device multiplies bfloat16 natively, else fp32 (``check`` resolves it)
    precision: str = "auto"
    seed: int = 0
    policies_dir: Path | str | None = BUNDLE_POLICIES
    speeds: dict | None = None  # m/s for walk / run / dash (default: the character's, speeds_mps)
    num_candidates: int = NUM_CANDIDATES
    foot_locking: bool = True  # planted feet held by IK (mocap.foot_locking); the app's key L toggles it
    foot_lock_nearest: int = 64  # a crowd locks the feet of this many characters nearest the view; 0: every one
    style: str | None = None  # a model with styles: start in this one (default: each start pose's own)
    prior: Path | None = None  # a VQ model's code prior (default: the character's, when its own VAE is used)
    prior_flag: bool = False  # ``prior`` came from the user (play.py --prior): its errors name the flag
    precision_auto: bool = False  # set by ``check``: ``precision`` was "auto" and is now what it resolved to

    def check(self) -> None:
        own_vae = self.vae is None or self.character is not None  # the character's model drives the app
        if own_vae or self.policies_dir == BUNDLE_POLICIES:
            from characters.bundle import load_character

            bundle = load_character(self.character)
            if own_vae and self.prior is None and (self.vae is None or Path(self.vae).resolve() == bundle.vae.resolve()):
                self.prior = bundle.prior
            self.vae = bundle.vae if self.vae is None else self.vae
            self.policies_dir = bundle.policies_dir if self.policies_dir == BUNDLE_POLICIES else self.policies_dir
            if self.speeds is None and own_vae:
                self.speeds = bundle.speeds
        self.speeds = self.speeds or dict(DEFAULT_SPEEDS)
        self.task = canonical_task(self.task, "--task")
        if not isinstance(self.foot_lock_nearest, int) or self.foot_lock_nearest < 0:
            raise ValueError(f"foot_lock_nearest must be an integer >= 0 (0: every character), got "
                             f"{self.foot_lock_nearest!r}")
        if not isinstance(self.characters, int) or not 1 <= self.characters <= MAX_CHARACTERS:
            raise ValueError(f"--characters must be an integer in [1, {MAX_CHARACTERS}], got {self.characters!r}")
        if self.precision not in ("auto", "fp32", "int8", "bf16"):
            raise ValueError(f"--precision must be auto, fp32, int8 or bf16, got {self.precision!r}")
        if self.precision == "auto":
            self.precision, self.precision_auto = self._auto_precision(), True
        if self.precision == "int8" and (self.backend == "torch" or self.device == "cuda"):
            raise ValueError(f"--precision int8 runs ONNX Runtime on the CPU; it cannot go with --backend {self.backend} "
                             f"--device {self.device} (use --precision fp32 there)")
        if self.precision == "bf16":
            if self.backend == "onnx":
                raise ValueError("--precision bf16 runs the decoder in torch; it cannot go with --backend onnx "
                                 "(use --backend auto or torch)")
            from controller.bfloat16 import check_supported
            from controller.runtime import torch_device

            check_supported(torch_device(self.device))  # the device the torch backend will run on
        if not isinstance(self.seed, int) or not 0 <= self.seed < 2**62:
            raise ValueError(f"--seed must be an integer in [0, 2**62), got {self.seed!r}")
        if not Path(self.vae).is_file():
            from envs.manifold_source import TRAIN_HINT

            raise FileNotFoundError(f"no model file {self.vae}: pass --vae CKPT (a checkpoint written by vae.train), "
                                    f"or {TRAIN_HINT}")
        if self.prior is not None and not Path(self.prior).is_file():
            from vae.prior import TRAIN_HINT as PRIOR_HINT

            raise FileNotFoundError(f"{'--prior ' if self.prior_flag else ''}{self.prior}: no such code prior file; "
                                    f"train one with `{PRIOR_HINT}`")

    def _auto_precision(self) -> str:
        """bf16 for a crowd where the torch device multiplies bfloat16 natively (it steps a crowd in 60-70 % of the
        float32 time), else fp32: one character's graph is faster on ONNX Runtime in float32."""
        if self.characters < BF16_CROWD_CHARACTERS or self.backend == "onnx":
            return "fp32"
        from controller.bfloat16 import native_bfloat16
        from controller.runtime import torch_device

        return "bf16" if native_bfloat16(torch_device(self.device)) else "fp32"


class Simulation:
    """The characters, their task and controller, and the user's commands (see the module docstring)."""

    def __init__(self, config: AppConfig, *, backend=None, verbose: bool = True):
        config.check()
        self.config = config
        self.verbose = verbose
        if backend is None:
            from controller.runtime import make_backend

            backend = make_backend(str(config.vae), backend=config.backend, device=config.device,
                                   precision=config.precision, verbose=verbose)
        self.backend = backend
        self.code_prior = self._make_code_prior()
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
        self._start_xz: torch.Tensor | None = None  # (B, 2) m where several characters start (None: where the task says)
        self.act_ms = self.decode_ms = 0.0
        self.metrics: dict = {}
        self.view_focus_xz: np.ndarray | None = None  # (2,) m where the view looks (None: the first character)
        self._lock_rows: np.ndarray | None = None  # (L,) the character each foot-locker row holds
        self._contact_sides: np.ndarray | None = None  # (F,) the side of each contact channel (None: none used)
        self.foot_locker, self.foot_locking_unavailable = self._make_foot_locker()
        self.foot_locking = bool(config.foot_locking) and self.foot_locker is not None
        self._shown_positions: np.ndarray | None = None  # (B, J, 3) this step's pose with feet locked
        if self.num_characters > CROWD_WARNING:
            self._note(f"{self.num_characters} characters: each step decodes them all, expect well under 30 Hz on a "
                       "laptop CPU (the largest crowd holding 30 Hz is in the README's benchmarks)")
        if config.precision_auto and config.precision == "bf16":
            self._note(f"{self.num_characters} characters: the decoder runs in bfloat16, a crowd's step in 60-70 % of "
                       "the float32 time (--precision auto; --precision fp32 keeps float32)")
        elif self.num_characters >= BF16_CROWD_CHARACTERS and config.precision == "fp32" and config.backend != "onnx":
            from controller.bfloat16 import native_bfloat16
            from controller.runtime import torch_device

            if native_bfloat16(torch_device(config.device)):
                self._note(f"{self.num_characters} characters: --precision bf16 steps a crowd in 60-70 % of the "
                           "float32 time on this device (README, section 6)")
        self.style_names = list(getattr(backend, "style_names", []) or [])
        self.style_choice: int | None = None  # the style the user picked (None: each start pose's own)
        if config.style is not None:
            if config.style not in self.style_names:
                known = ", ".join(self.style_names) if self.style_names else "none: this model has no styles"
                raise ValueError(f"--style {config.style!r}: unknown style; the model's styles: {known}")
            self.style_choice = self.style_names.index(config.style)
        self._switch(config.task, carry=False)

    def _make_code_prior(self):
        """The code prior: the backend's own (``make_backend(prior=...)``), else ``config.prior`` on the backend's
        kind of inference, else None; errors name --prior when the user gave it."""
        if getattr(self.backend, "code_prior", None) is not None:
            return self.backend.code_prior
        if self.config.prior is None:
            return None
        from controller.prior_session import make_code_prior

        kind = self.backend.name if self.backend.name in ("onnx", "torch") else "torch"
        try:
            prior = make_code_prior(str(self.config.prior), str(self.config.vae), kind, self.config.device,
                                    manifold=getattr(self.backend, "manifold", self.backend))
        except ValueError as e:
            raise ValueError(f"--prior {e}" if self.config.prior_flag else str(e)) from None
        if self.verbose:
            print(f"play: code prior {self.config.prior} on {self.prior_provider(prior)} (rollout steps look at the "
                  f"last {prior.step_context} codes)", flush=True)
        return prior

    @staticmethod
    def prior_provider(prior) -> str:
        """Where a code prior runs, in words (an OnnxCodePrior's provider, else torch on its device)."""
        provider = getattr(prior, "provider", None)
        if provider is not None:
            return f"onnx {provider}"
        return f"torch-{next(prior.parameters()).device.type}"

    # ---- tasks ------------------------------------------------------------------------------------------
    def _make_env(self, task: str):
        from envs.vec_env import MotionVecEnv

        env = MotionVecEnv(self.num_characters, task, self.backend, array_backend="torch",
                           max_episode_steps=EPISODE_STEPS, autoreset_mode="Disabled", code_prior=self.code_prior,
                           **self._task_options(task))
        obs, _ = env.reset(seed=self.config.seed + SEED_STRIDE * self._env_count)
        if self.style_names and self.style_choice is not None:
            obs = env.set_style(self.style_choice, blend_s=0.0)
        self._env_count += 1
        return env, obs

    def _task_options(self, task: str) -> dict:
        """The task options the task's policy was trained with (they shape its observation, e.g. the joystick's
        facing command); none without a policy file (an unusable one is reported when its controller is made)."""
        if self.config.policies_dir is None:
            return {}
        path = Path(self.config.policies_dir) / task_spec(task).policy_file
        if not path.is_file():
            return {}
        try:
            from policies import load_policy
            from policies.checkpoint import policy_task_options

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return policy_task_options(load_policy(path))
        except Exception:  # noqa: BLE001 - _policy_controller says why this policy is not used
            return {}

    def _switch(self, task: str, carry: bool) -> None:
        old = self.env
        env, obs = self._make_env(task)
        carry = carry and old is not None and env.task.placeable
        self._start_xz = None
        if not carry and env.task.placeable and self.num_characters > 1:
            # Several characters start spread around the first one, not on top of each other.
            self._start_xz = crowd_start_xz(self.num_characters, CROWD_SPACING_M, getattr(env.task, "half_arena", None),
                                            self.config.seed)
            obs = env.place(root_xz=self._start_xz)
        if carry:
            core = old.core
            obs = env.place(root_xz=core.root_xz, yaw=core.yaw, cond=core.cond)
            if self.style_names and self.style_choice is None:
                obs = env.set_style(core.style_to, blend_s=0.0)  # each character keeps its own style
        if old is not None:
            old.close()
        self.env, self.obs, self.task_name = env, obs, task
        if carry and self.user_command is not None and "command" in env.task.accepts:
            direction, speed = self.user_command
            env.task.set_command(direction, torch.full((self.num_characters,), speed))
            self.obs = env.observe()
        self.teleported = torch.full((self.num_characters,), not carry, dtype=torch.bool)
        self._forget_teleported_locks()
        self.controller = self._controller_for(task)
        if self.code_prior is not None and "code prior" not in self.controller.label:
            where = self.prior_provider(self.code_prior)
            self.controller.label += f"; codes through the code prior ({where})"
            self.controller.short_label = f"{getattr(self.controller, 'short_label', self.controller.label)} + prior"
        self.metrics = {}
        if self.verbose:
            print(f"play: task {task}: {self.controller.label}", flush=True)

    def _controller_for(self, task: str):
        """The task's policy when its file exists and fits this VAE, else the sampling fallback (saying why)."""
        seed = self.config.seed + SEED_STRIDE * self._env_count
        if self.env.task.ignores_action:
            controller = PriorController(self.env, seed)
            controller.label = controller.short_label = "prior samples (random walk ignores actions)"
            return controller
        why = "no policies folder given"
        if self.config.policies_dir is not None:
            path = Path(self.config.policies_dir) / task_spec(task).policy_file
            why = f"no policy file {path}"
            if path.is_file():
                controller = self._policy_controller(task, path)
                if not isinstance(controller, str):
                    return controller
                why = controller
        k = self.candidates_per_character()
        controller = SamplingController.for_env(self.env, seed=seed, num_candidates=k)
        controller.label = f"sampling fallback (K={k} prior samples; {why})"
        controller.short_label = f"sampling fallback, K={k} (no usable policy)"
        return controller

    def _policy_controller(self, task: str, path: Path):
        """A PolicyController for the policy at ``path``, or (a str) why it cannot steer this VAE."""
        if task in self._policies:
            return self._policies[task]
        try:
            from policies import check_policy_fits, load_policy
            from policies.checkpoint import check_prior_matches

            with warnings.catch_warnings():
                warnings.simplefilter("error")  # trained on another VAE: it would steer this one poorly
                policy = load_policy(path, device=self.env.device)
                obs_size = int(self.env.single_observation_space.shape[0])
                check_policy_fits(policy, getattr(self.backend, "manifold", self.backend), obs_size, strict=True)
                check_prior_matches(policy, getattr(self.code_prior, "prior", self.code_prior))
        except Exception as e:  # noqa: BLE001 - any unusable policy falls back, and says why
            self._policies[task] = f"policy {path} not used: {_first_line(e)}"
            self._note(self._policies[task])
            return self._policies[task]
        try:
            from controller.runtime import make_backend

            backend = make_backend(str(self.config.vae), policy=str(path), backend=self.config.backend,
                                   device=self.config.device, precision=self.config.precision, verbose=self.verbose)
            controller = PolicyController(policy, backend, label=f"policy {path} ({backend.name} on "
                                                                 f"{backend.provider})")
            controller.short_label = f"policy {path.name}"
        except Exception as e:  # noqa: BLE001 - the policy itself is fine: run it in torch
            self._note(f"policy {path}: the {self.config.backend} backend cannot run it ({_first_line(e)}); "
                       "running it in torch")
            controller = PolicyController(policy, None, label=f"policy {path} (torch: the {self.config.backend} "
                                                              "backend could not load it)")
            controller.short_label = f"policy {path.name} (torch)"
        self._policies[task] = controller
        return controller

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
        self.apply_control(combine(held.keys, held.stick, held.pad_run, held.pad_stop, held.pad_dash, held.pad_strafe),
                           azimuth)
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
            if self._start_xz is not None:  # a restarted crowd member goes back to its own start spot
                self.obs = self.env.place(done, root_xz=self._start_xz)
            self.teleported = self.teleported | done.cpu()
        self.step_count += 1
        self._lock_feet()

    def apply_action(self, action: dict) -> None:
        """One-off input: {"task": name} | {"reset": True} | {"click": (x, z)} | {"path": [(x, z), ...]} |
        {"style": name, "next" or "previous"}."""
        if "style" in action:
            self.change_style(action["style"])
        elif "task" in action:
            task = canonical_task(action["task"])
            if task != self.task_name:
                self.switch_task(task)
        elif "reset" in action:
            self.reset()
        elif "click" in action:
            self.click(action["click"])
        elif "path" in action:
            self.draw_path(action["path"])
        else:
            raise ValueError(f"unknown input action {action!r}")

    # ---- styles ---------------------------------------------------------------------------------------------
    def style_name(self) -> str | None:
        """The style the first character is in or fading into; None for a model without styles."""
        if not self.style_names:
            return None
        return self.style_names[int(self.env.core.current_style()[0])]

    def change_style(self, style: str) -> None:
        """Every character to ``style`` (a name, "next" or "previous"), faded in over half a second; a model
        without styles or an unknown name becomes a note."""
        if not self.style_names:
            self._note("this model has no styles (build it with --styles to switch styles live)")
            return
        if style in ("next", "previous"):
            current = int(self.env.core.current_style()[0])
            index = (current + (1 if style == "next" else -1)) % len(self.style_names)
        elif style in self.style_names:
            index = self.style_names.index(style)
        else:
            self._note(f"unknown style {style!r}; the styles are {', '.join(self.style_names)}")
            return
        self.style_choice = index
        self.obs = self.env.set_style(index)

    def switch_task(self, task: str) -> None:
        self._switch(canonical_task(task), carry=True)

    def reset(self) -> None:
        """Restart every character (new start poses and goals) and forget the user's joystick command."""
        self.user_command = None
        self._switch(self.task_name, carry=False)

    def click(self, point) -> None:
        """A click on the ground at ``point`` (x, z) m: the goal there, for tasks that take one."""
        accepts = self.env.task.accepts
        if "goal" not in accepts:
            if "path" in accepts:
                return  # the path task takes strokes, not clicks
            self.switch_task(GOAL_TASK)
        self._ask(self.env.task.set_goal, torch.tensor([[float(point[0]), float(point[1])]]))

    def draw_path(self, points) -> None:
        """A stroke on the ground: the path task follows it from each character's position, then loops back."""
        stroke = torch.as_tensor(np.asarray(points, dtype=np.float32)).reshape(-1, 2)
        if len(stroke) < 2:
            return
        if "path" not in self.env.task.accepts:
            self.switch_task(PATH_TASK)
        start = self.env.core.root_xz[:, None]  # (B, 1, 2)
        self._ask(self.env.task.set_path, torch.cat((start, stroke[None].expand(self.num_characters, -1, -1)), dim=1))

    def _ask(self, request, value) -> None:
        """Hand the task a user request; one it refuses (e.g. a goal outside the arena) becomes a note."""
        try:
            request(value)
        except ValueError as e:
            self._note(_first_line(e))
            return
        self.obs = self.env.observe()

    def apply_control(self, control: Control, azimuth: float) -> None:
        """Held direction / run / dash / stop / strafe -> the command of tasks that take one (others take clicks and
        strokes). Before any input the task's own commands run; once the user has steered, releasing every move
        key stops the character where it faces (it stands), as Space does."""
        if "command" not in self.env.task.accepts or not (control.active or self.user_command is not None):
            return
        b = self.num_characters
        direction = world_direction(control.move, azimuth) if control.moving else None
        if direction is None:  # stopping: keep facing where each character faces
            facing = self.env.core.facing()
            self.env.task.set_command(facing, torch.zeros(b))
            self.user_command = (facing[0].tolist(), 0.0)
            return
        speed = command_speed(control, self.config.speeds)
        # Strafing looks where the camera looks (its forward on the ground) while going where the keys say, no faster
        # than the policy learned to strafe (mocap sidesteps and walks back slower than it runs).
        facing = torch.tensor([world_direction((0.0, 1.0), azimuth)]) if control.strafe else None
        if control.strafe:
            speed = min(speed, float(getattr(self.env.task, "strafe_max_speed", speed)))
        self.env.task.set_command(torch.tensor([direction]), torch.full((b,), speed), facing=facing)
        self.user_command = (list(direction), speed)

    # ---- planted feet ------------------------------------------------------------------------------------------
    def _make_foot_locker(self):
        """(a FootLocker for this crowd, None) or (None, why there is none: no skeleton, or one without legs)."""
        from mocap.foot_locking import FootLocker, channel_sides, leg_chains
        from mocap.pose_layout import PoseLayout

        if self.skeleton is None:
            return None, "foot locking unavailable: this model has no skeleton"
        try:
            chains = leg_chains(self.skeleton)
        except ValueError as e:
            return None, f"foot locking unavailable: {_first_line(e)}"
        poses = None  # without the data's poses the locker takes the lowest feet it sees as the floor
        start = getattr(self.backend, "start_frames", None)
        if start is not None:
            frames = np.asarray(torch.as_tensor(start).cpu(), dtype=np.float64)
            layout = PoseLayout.from_frame_size(frames.shape[-1])
            poses = layout.positions(frames.reshape(-1, frames.shape[-1]))  # (N, J, 3): heights are world heights
        head = getattr(self.backend, "contacts", None)
        self._contact_sides = None if head is None else channel_sides(chains, self.skeleton, head.joints)
        rows = self.num_characters if not self.config.foot_lock_nearest else min(self.num_characters,
                                                                                 self.config.foot_lock_nearest)
        return FootLocker.from_data(chains, rows, self.fps, poses), None

    def set_foot_locking(self, on: bool) -> None:
        """Planted feet on or off (on starts every foot unlocked); where the skeleton has no legs, a note says so."""
        if on and self.foot_locker is None:
            self._note(self.foot_locking_unavailable)
            return
        self.foot_locking = bool(on)
        self._shown_positions = None
        if self.foot_locking:
            self.foot_locker.reset()

    def set_view_focus(self, world_xz) -> None:
        """Where the view looks (x, z in metres): a crowd locks the feet of the characters nearest it."""
        self.view_focus_xz = np.asarray(world_xz, dtype=np.float64).reshape(2)

    def _locked_characters(self, model_pos: np.ndarray) -> np.ndarray:
        """(L,) the characters the foot locker holds this step (every one when it has a row for each), in the order
        of its rows; a row whose character changed starts without locks."""
        rows = self.foot_locker.num_characters
        if rows == self.num_characters:
            chosen = np.arange(rows)
        else:
            focus = model_pos[0, 0, ::2] if self.view_focus_xz is None else self.view_focus_xz
            distance = np.linalg.norm(model_pos[:, 0, ::2] - focus, axis=-1)  # (B,) m
            nearest = np.argpartition(distance, rows - 1)[:rows]
            # Characters kept from the last step keep their rows (and locks); newcomers take the freed rows.
            chosen = nearest if self._lock_rows is None else _keep_rows(self._lock_rows, nearest)
        if self._lock_rows is not None and not np.array_equal(chosen, self._lock_rows):
            self.foot_locker.reset(chosen != self._lock_rows)
        self._lock_rows = chosen
        return chosen

    def _forget_teleported_locks(self) -> None:
        self._shown_positions = None
        if self.foot_locker is not None and self._lock_rows is not None and bool(self.teleported.any()):
            self.foot_locker.reset(self.teleported.numpy()[self._lock_rows])

    def _lock_feet(self) -> None:
        """Step the foot locker on this step's model pose (once per simulation step: contacts need the last pose)."""
        self._forget_teleported_locks()
        if self.foot_locking:
            model_pos = self.model_joint_positions()
            rows = self._locked_characters(model_pos)
            model_pos[rows] = self.foot_locker.step(model_pos[rows], predicted=self._channel_contacts(rows))[0]
            self._shown_positions = model_pos

    @property
    def contact_channels(self) -> bool:
        """Whether the foot locker follows the model's contact channels (else the contacts its poses show alone)."""
        return self._contact_sides is not None

    def _channel_contacts(self, rows: np.ndarray) -> np.ndarray | None:
        """(L, 2) contacts per side of characters ``rows`` from the model's contact channels (:mod:`vae.contacts`),
        or None (the locker reads them from the poses) for a model without them."""
        if self._contact_sides is None:
            return None
        probabilities = self.env.core.contact_probabilities(rows)  # (L, F)
        return None if probabilities is None else channel_contacts(probabilities.cpu().numpy(), self._contact_sides)

    # ---- what to draw and show --------------------------------------------------------------------------------
    def model_joint_positions(self) -> np.ndarray:
        """(B, J, 3) world joint positions, metres, as the model made them (feet not locked)."""
        return self.env.core.world_joint_positions().cpu().numpy().astype(np.float64)

    def joint_positions(self) -> np.ndarray:
        """(B, J, 3) world joint positions, metres, as drawn: feet locked while foot locking is on."""
        if not self.foot_locking:
            return self.model_joint_positions()
        if self._shown_positions is None:  # a task switch since the last step: the locks as they stand
            model_pos = self.model_joint_positions()
            rows = self._locked_characters(model_pos)
            model_pos[rows] = self.foot_locker.apply(model_pos[rows])[0]
            self._shown_positions = model_pos
        return self._shown_positions.copy()

    def joint_rotations(self) -> np.ndarray:
        """(B, J, 3, 3) world joint orientations, as drawn: with foot locking on, the hips and knees of locked legs
        turned so that forward kinematics of these rotations from the drawn root (a BVH) plants the toes too.

        The model's rotations and positions disagree by about a centimetre (they are predicted apart), so the
        legs are solved again on the pose its rotations make, lowered as the drawn body was, rather than turned as
        the drawn legs were.
        """
        world_rot = self.env.core.world_joint_rotations().cpu().numpy().astype(np.float64)
        if not self.foot_locking:
            return world_rot
        from mocap.kinematics import forward_kinematics, world_to_local_rotations

        parents = self.skeleton.parents
        model_root = self.model_joint_positions()[:, 0]  # (B, 3)
        local_pos = np.broadcast_to(self.skeleton.offsets, world_rot.shape[:-1]).copy()  # (B, J, 3)
        local_pos[:, 0] = model_root
        _, world_fk = forward_kinematics(parents, world_to_local_rotations(parents, world_rot), local_pos)
        drop = model_root[:, 1:2] - self.joint_positions()[:, 0, 1:2]  # (B, 1) m the drawn body was lowered
        rows = self._lock_rows
        world_rot[rows] = self.foot_locker.apply(world_fk[rows], world_rot[rows], drop_m=drop[rows])[1]
        return world_rot

    def draw_data(self, index: int = 0) -> dict:
        return self.env.draw_data(index)

    def commanded(self) -> tuple[float | None, float | None]:
        """(heading deg, speed m/s) the task asks of the first character now; None where it asks nothing."""
        if self.env.task.ignores_action:
            return None, None
        direction, speed = self.env.task.desired_motion()
        return heading_deg(float(direction[0, 0]), float(direction[0, 1])), float(speed[0])

    def actual(self) -> tuple[float, float]:
        """(heading deg, ground speed m/s) of the first character."""
        return math.degrees(float(self.env.core.yaw[0])), float(self.env.core.speed()[0])

    def close(self) -> None:
        if self.env is not None:
            self.env.close()


def _keep_rows(previous: np.ndarray, nearest: np.ndarray) -> np.ndarray:
    """Rows for the characters ``nearest`` (L,): each one already in ``previous`` (L,) keeps its row, the others fill
    the rows of characters no longer among them."""
    rows = previous.copy()
    stays = np.isin(previous, nearest)
    rows[~stays] = nearest[~np.isin(nearest, previous)]
    return rows


def _first_line(e: BaseException) -> str:
    return str(e).splitlines()[0] if str(e) else type(e).__name__
