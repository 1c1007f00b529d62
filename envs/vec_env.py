"""MotionVecEnv: B characters of one task stepped together in torch, as a Gymnasium 1.x ``VectorEnv``.

Spaces (one character; the batched spaces add a leading B):

* observation: ``Box(-inf, inf, (C*D + S + F,), float32)``: the condition frames normalised with the
  manifold's statistics, flattened oldest first, then the S style weights of a manifold with styles (none
  otherwise; see ``envs.motion_core``), then the task's F features (see each task's docstring;
  ``observation_layout`` names the slices ``condition``, ``style`` and ``task``), then, with a code prior
  (``code_prior``, VQ manifolds), the K log-probabilities the prior gives each next code (slice ``prior``);
* action: ``Box(-1, 1, (Z,), float32)`` for a Gaussian manifold: the latent is ``action_scale * action``
  (default: the character's / model's own bound, measured from where its decoder was trained
  (:func:`envs.manifold_source.action_scale_of`), else 4.0, the prior's +-4 sigma; values outside [-1, 1] are
  clipped), or
  ``Discrete(K)`` for a discrete (VQ) manifold: the code index.

``step`` returns ``(obs (B, O) float32, reward (B,) float32, terminated (B,) bool, truncated (B,) bool, info)``
as numpy arrays, or as torch tensors on the environment's device with ``array_backend="torch"`` (actions
may then be tensors too). Truncation: an episode ends after ``max_episode_steps`` steps (each task has a
default).

Foot sliding: with ``foot_slide_weight`` w > 0 the positive part of every reward is scaled by ``exp(-w * slide)``,
``slide`` the centimetres the toes in contact slide over the step in the world plus those the lower toe floats above
the contact height (:mod:`envs.foot_slide`).

Code prior: ``code_prior=`` (a :class:`vae.prior.CodePrior` of this VQ model, a path to its file, or a stand-in with
the same ``step_logits``; a character bundle's own ``prior.pt`` by default) makes the environment keep each
character's context of codes (:mod:`envs.motion_core`), observe the prior's next-code log-probabilities, and makes
RandomWalk draw its codes from the prior instead of uniformly. Prior-residual policies (:mod:`policies.network`) add
their logits to these.

Styles: with ``style_change_s`` > 0 every character of a model with styles switches to a random style on average
every ``style_change_s`` seconds (faded in; policies train this way so that a live switch does not throw them).

Divergence guard: a character that leaves the data's manifold is terminated with reward ``-divergence_penalty``
(1.0) and flagged, so a policy learns to stay away and training never sees NaN: ``info["nonfinite"]`` where its
state or reward became NaN / inf, ``info["diverged"]`` where a feature of its pose went beyond the data's envelope
(:func:`envs.manifold_source.divergence_limits`: 3 x the largest value the feature takes in the training data
+ 10 standard deviations, e.g. the root flying off at 20 m/s) or its reward beyond +-1000 (also where non-finite).
Observations are always finite: NaN and inf are replaced (and values clamped to +-1e6) before they are returned.

Besides the Gymnasium API, for tools that steer characters live (the app) and for exact resume:

* ``observe()`` -> the current observations (no state change);
* ``place(mask=None, root_xz=, yaw=, cond=)`` -> observations: moves characters (where ``mask`` is set), then
  the task re-plans their goals from where they stand (``Task.replan``); the maze refuses it;
* ``task.set_goal / set_path / set_command`` for what the task ``accepts`` (see ``envs.tasks.base``);
* ``set_style(style, mask=None, blend_s=None)``: a style by name, index or weights, faded in (models with styles;
  ``style_names`` lists them);
* ``state_dict()`` / ``load_state_dict(state)``: every changing tensor of the environment, its characters
  and its task, and the random generator.

Autoreset (``metadata["autoreset_mode"]``): ``AutoresetMode.SAME_STEP`` by default: a finished
character restarts inside the step that ended its episode; the observation returned for it is the
first of its new episode, and the last one of the old episode is in ``info["final_obs"]`` (what
Stable-Baselines3 needs). ``AutoresetMode.NEXT_STEP`` (``autoreset_mode="NextStep"``, Gymnasium's default
and what its stateful vector wrappers such as ``NormalizeObservation`` require): the step that ends an
episode returns its last observation, and the next step restarts that character, ignoring its action
and returning its first observation with reward 0, not terminated, not truncated.
``AutoresetMode.DISABLED`` (``autoreset_mode="Disabled"``) never restarts by itself: call
``reset(options={"reset_mask": mask})``.

``info`` follows Gymnasium's vector convention: every key holds an array over the B characters and
``"_key"`` a bool mask of where it is valid.

=================== ============================== ====================================================
key                 values                         mask / when present
=================== ============================== ====================================================
task metrics        (B,) e.g. ``targets_reached``  per task (see its docstring); event metrics such as
                                                   ``time_to_target`` are masked to the steps they happen.
                                                   They describe the step just taken, also for characters
                                                   then restarted by SAME_STEP autoreset
``nonfinite``       (B,) bool                      all True
``diverged``        (B,) bool                      all True
``final_obs``       (B, O) float32                 SAME_STEP only, on steps where an episode ended;
                                                   rows valid where ``_final_obs`` (others: the new obs)
``final_info``      dict: the task metrics and     SAME_STEP only, with ``_final_info``: the finished
                    ``nonfinite``, ``diverged``    characters
                    of those steps
``episode_stats``   ``{"r": return (B,) f32,       on steps where an episode ended, with
                    "l": steps (B,) i64,           ``_episode_stats``: the finished characters (every
                    "seconds": (B,) f32}``         autoreset mode)
=================== ============================== ====================================================

(``episode_stats`` is not named ``episode`` so that Gymnasium's ``RecordEpisodeStatistics`` can be
added on top.) Under NEXT_STEP the metrics of a character restarted in a step describe its new state.

(``final_obs`` is one dense array rather than Gymnasium's object array, so it stays a tensor with the
torch backend.) Stable-Baselines3's VecEnv wants per-env ``terminal_observation`` and
``TimeLimit.truncated``: an adapter takes them from ``info["final_obs"][i]`` and
``truncated[i] and not terminated[i]`` for each ``i`` in ``info["_final_obs"]``.

Reset with ``reset(seed=s)`` seeds the one ``torch.Generator`` behind every random choice (start poses,
yaw, goals, prior samples), so a seed gives identical trajectories for identical actions.
"""

from __future__ import annotations

from typing import NamedTuple

import gymnasium
import numpy as np
import torch
from gymnasium import spaces
from gymnasium.vector import AutoresetMode
from gymnasium.vector.utils import batch_space

from envs import manifold_source
from envs.foot_slide import contact_slide_cm, hover_cm, toe_floor_heights, world_toes
from envs.motion_core import MotionCore
from envs.tasks import make_task

ARRAY_BACKENDS = ("numpy", "torch")
MAX_ACTION_SCALE = 100.0  # latent = action * scale; beyond +-100 sigma of the prior a VAE has learned nothing
MAX_SEED = 2**63
REWARD_LIMIT = 1000.0  # |reward| beyond this is a diverged character, not a task event
OBS_LIMIT = 1e6


class StepTensors(NamedTuple):
    """One step of every character, as tensors, before any autoreset."""

    obs: torch.Tensor  # (B, O) float32
    reward: torch.Tensor  # (B,) float32
    terminated: torch.Tensor  # (B,) bool
    truncated: torch.Tensor  # (B,) bool
    nonfinite: torch.Tensor  # (B,) bool
    diverged: torch.Tensor  # (B,) bool (includes nonfinite)
    metrics: dict  # name -> (values (B,), mask (B,) bool or None = valid everywhere)


def observation_size(manifold, task: str, task_options: dict | None = None) -> int:
    """The observation size (C*D + task features) of ``task`` with ``task_options`` on ``manifold``."""
    c, d = manifold_source.num_condition_frames(manifold), int(manifold.frame_size)
    env = MotionVecEnv(1, task, manifold, start_frames=torch.zeros(1, c, d),
                       fps=getattr(manifold, "fps", None) or 30.0, **(task_options or {}))
    try:
        return int(env.single_observation_space.shape[0])
    finally:
        env.close()


def _autoreset_mode(mode) -> AutoresetMode:
    try:
        mode = AutoresetMode(mode) if not isinstance(mode, AutoresetMode) else mode
    except ValueError:
        mode = None
    if mode is None:
        raise ValueError("autoreset_mode must be an AutoresetMode: SAME_STEP ('SameStep'), NEXT_STEP ('NextStep') or "
                         "DISABLED ('Disabled')")
    return mode


class MotionVecEnv(gymnasium.vector.VectorEnv):
    """B characters of one task (see the module docstring for the API, each task module for its spec)."""

    metadata = {"autoreset_mode": AutoresetMode.SAME_STEP, "render_modes": []}

    def __init__(self, num_envs: int = 1, task: str = "target", vae=None, *, character=None, device=None,
                 array_backend: str = "numpy", action_scale: float | None = None,
                 max_episode_steps: int | None = None, start_frames=None, fps: float | None = None,
                 autoreset_mode=AutoresetMode.SAME_STEP, divergence_penalty: float = 1.0,
                 style_change_s: float = 0.0, foot_slide_weight: float = 0.0, code_prior=None, **task_options):
        if array_backend not in ARRAY_BACKENDS:
            raise ValueError(f"array_backend={array_backend!r}; choose one of {', '.join(ARRAY_BACKENDS)}")
        if character is not None:
            from characters.bundle import load_character

            bundle = load_character(character)
            own_vae = vae is None
            vae = bundle.vae if own_vae else vae
            action_scale = bundle.action_scale if action_scale is None else action_scale
            code_prior = bundle.prior if code_prior is None and own_vae else code_prior
        self.manifold = manifold_source.resolve_manifold(vae, device)
        if action_scale is None:
            action_scale = manifold_source.action_scale_of(self.manifold)
        if not 0 < action_scale <= MAX_ACTION_SCALE:
            raise ValueError(f"action_scale must be in (0, {MAX_ACTION_SCALE:g}] (the latent is action * action_scale, "
                             f"in standard deviations of the prior), got {action_scale}")
        self.autoreset_mode = _autoreset_mode(autoreset_mode)
        self.metadata = {**type(self).metadata, "autoreset_mode": self.autoreset_mode}
        self.array_backend = array_backend
        self.core = MotionCore(self.manifold, num_envs, start_frames=start_frames, fps=fps,
                               code_prior=manifold_source.resolve_code_prior(code_prior, self.manifold))
        self.task = make_task(task, self.core, task_options)
        self.task.action_scale = float(action_scale)
        self.action_scale = float(action_scale)
        if not 0 <= divergence_penalty < REWARD_LIMIT:
            raise ValueError(f"divergence_penalty must be in [0, {REWARD_LIMIT:g}), got {divergence_penalty}")
        self.divergence_penalty = float(divergence_penalty)
        if not (0.0 <= style_change_s < float("inf")):
            raise ValueError(f"style_change_s must be >= 0 seconds (0: no random style changes), got {style_change_s}")
        self.style_change_s = float(style_change_s) if self.core.num_styles else 0.0
        self.divergence_limits = manifold_source.divergence_limits(self.manifold, self.core.device)  # (D,)
        self.num_envs = self.core.num_envs
        self.device = self.core.device
        self._foot_slide = self._foot_slide_term(foot_slide_weight)
        steps = self.task.default_max_episode_steps if max_episode_steps is None else max_episode_steps
        if not isinstance(steps, (int, np.integer)) or isinstance(steps, bool) or steps < 1:
            raise ValueError(f"max_episode_steps must be a positive integer, got {max_episode_steps!r}")
        self.max_episode_steps = int(steps)

        cond_size = self.core.num_condition_frames * self.core.frame_size
        style_end = cond_size + self.core.num_styles
        task_end = style_end + self.task.feature_size
        obs_size = task_end + (self.core.num_codes if self.core.code_prior is not None else 0)
        self.observation_layout = {"condition": slice(0, cond_size), "style": slice(cond_size, style_end),
                                   "task": slice(style_end, task_end), "prior": slice(task_end, obs_size)}
        self._current_frame = slice(cond_size - self.core.frame_size, cond_size)  # normalised, in the observation
        self.single_observation_space = spaces.Box(-np.inf, np.inf, (obs_size,), np.float32)
        if self.core.discrete:
            self.single_action_space = spaces.Discrete(self.core.num_codes)
        else:
            self.single_action_space = spaces.Box(-1.0, 1.0, (self.core.latent_size,), np.float32)
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)

        self._needs_reset = True
        self._seeded = False
        self._pending = torch.zeros(self.num_envs, dtype=torch.bool, device=self.device)  # NEXT_STEP restarts
        self._returns = torch.zeros(self.num_envs, device=self.device)

    # ---- reset ------------------------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        """Restart every character (or those in ``options["reset_mask"]``, a (B,) bool array) -> (obs, info)."""
        self._seed(seed)
        mask = self._reset_mask(options)
        if mask is not None and self._needs_reset:
            raise RuntimeError("reset(options={'reset_mask': ...}) restarts some characters; call reset() without a "
                               "mask first to start all of them")
        with torch.no_grad():
            self._restart(mask)
            self._pending = torch.zeros_like(self._pending) if mask is None else self._pending & ~mask
            obs = self._observe()
            metrics = self.task.metrics()
        clean = torch.zeros(self.num_envs, dtype=torch.bool, device=self.device)
        self._needs_reset = False
        return self._out(obs), self._info(metrics, clean, clean)

    def _seed(self, seed) -> None:
        if seed is not None:
            if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or not 0 <= seed < MAX_SEED:
                raise ValueError(f"seed must be one integer in [0, 2**63) (it seeds every character), got {seed!r}")
            super().reset(seed=int(seed))
            self.core.seed(int(seed))
            self._seeded = True
        elif not self._seeded:
            self.core.seed(int(self.np_random.integers(2**63 - 1)))
            self._seeded = True

    def _reset_mask(self, options) -> torch.Tensor | None:
        if not options:
            return None
        unknown = sorted(set(options) - {"reset_mask"})
        if unknown:
            raise ValueError(f"unknown reset option(s) {unknown}; the only option is 'reset_mask' ((B,) bool)")
        return self._mask(options["reset_mask"], "options['reset_mask']")

    def _mask(self, mask, what: str) -> torch.Tensor:
        mask = mask.to(self.device) if isinstance(mask, torch.Tensor) else torch.as_tensor(np.asarray(mask),
                                                                                          device=self.device)
        if mask.dtype != torch.bool or tuple(mask.shape) != (self.num_envs,):
            raise ValueError(f"{what} must be a bool array of shape ({self.num_envs},), got "
                             f"{mask.dtype} {tuple(mask.shape)}")
        return mask

    def _restart(self, mask: torch.Tensor | None) -> None:
        self.task.reset(mask)
        self._returns = self.task.where(mask, torch.zeros_like(self._returns), self._returns)

    # ---- step -------------------------------------------------------------------------------------
    def step(self, actions):
        """One frame for every character -> (obs, reward, terminated, truncated, info); see the module docstring."""
        out = self.step_tensors(actions)
        if self.autoreset_mode is AutoresetMode.NEXT_STEP:
            out = self._next_step_autoreset(out)
        obs, done = out.obs, out.terminated | out.truncated
        info = self._info(out.metrics, out.nonfinite, out.diverged)
        if bool(done.any()):
            lengths = self.core.steps.clone()
            info["episode_stats"] = {"r": self._out(self._returns.clone()), "l": self._out(lengths),
                                     "seconds": self._out(lengths.to(torch.float32) * self.core.dt)}
            info["_episode_stats"] = self._out(done.clone())
            if self.autoreset_mode is AutoresetMode.SAME_STEP:
                info["final_obs"] = self._out(obs)
                info["_final_obs"] = self._out(done)
                final = self._info(out.metrics, out.nonfinite, out.diverged, done)
                info["final_info"], info["_final_info"] = final, self._out(done.clone())
                with torch.no_grad():
                    self._restart(done)
                    obs = self._observe()
        return self._out(obs), self._out(out.reward), self._out(out.terminated), self._out(out.truncated), info

    def _next_step_autoreset(self, out: StepTensors) -> StepTensors:
        """Restart the characters whose episode ended on the previous step, overriding this step's results."""
        restart, self._pending = self._pending, out.terminated | out.truncated
        if not bool(restart.any()):
            return out
        with torch.no_grad():
            self._restart(restart)
            self._pending = self._pending & ~restart
            keep = ~restart
            return StepTensors(self._observe(), torch.where(restart, torch.zeros_like(out.reward), out.reward),
                               out.terminated & keep, out.truncated & keep, out.nonfinite & keep, out.diverged & keep,
                               self.task.metrics())

    def step_tensors(self, actions) -> StepTensors:
        """Validate ``actions`` and advance every character one frame, with no autoreset and no info packing."""
        if self._needs_reset:
            raise RuntimeError("step() called before reset(): call env.reset() (optionally with seed=...) first")
        action = self._action_tensor(actions)
        with torch.no_grad():
            return self._advance(action)

    def step_differentiable(self, action: torch.Tensor) -> StepTensors:
        """One frame for analytic policy gradients (:mod:`policies.apg`): ``action`` (B, Z) float tensor (clipped to
        [-1, 1]; Gaussian manifolds only). The returned obs and reward keep the graph back through the task, the root
        and the manifold to ``action`` and to the states of earlier steps, until ``detach_state()``. Finished
        characters restart within the step (SAME_STEP: their obs is the first of the new episode); no info dict, but on
        a step that ends episodes ``metrics`` also holds ``episode_return`` and ``episode_length`` (masked to them)."""
        if self._needs_reset:
            raise RuntimeError("step_differentiable() called before reset(): call env.reset() first")
        if self.core.discrete:
            raise ValueError("step_differentiable needs a Gaussian manifold (a VQ manifold's codes have no gradient)")
        with torch.enable_grad():
            out = self._advance(action.to(device=self.device, dtype=torch.float32).clamp(-1.0, 1.0))
            done = out.terminated | out.truncated
            if bool(done.any()):
                metrics = {**out.metrics, "episode_return": (self._returns.clone(), done),
                           "episode_length": (self.core.steps.clone(), done)}
                self._restart(done)  # torch.where keeps the graph of the characters that go on
                out = out._replace(obs=self._observe(), metrics=metrics)
        return out

    def detach_state(self) -> None:
        """Cut the graph that ``step_differentiable`` recorded: the state stays, its history is forgotten."""
        for owner, names in ((self.core, self.core.state_names), (self.task, self.task.state_names)):
            for name in names:
                setattr(owner, name, getattr(owner, name).detach())
        self._returns = self._returns.detach()

    def _advance(self, action: torch.Tensor) -> StepTensors:
        """The step itself on a checked action; records the graph only where the caller enables grad."""
        if self.style_change_s > 0:
            self._random_style_changes()
        core = self.core
        if self._foot_slide is not None:
            weight, toes, floor = self._foot_slide
            toes_before = world_toes(core.frame, core.layout, toes, core.root_xz, core.rotation)  # (B, F, 3)
        core.differentiable_step(self.task.latent(action))
        reward, terminated = self.task.update()
        if self._foot_slide is not None:
            toes_after = world_toes(core.frame, core.layout, toes, core.root_xz, core.rotation)  # (B, F, 3)
            slide = contact_slide_cm(toes_before, toes_after, floor) + hover_cm(toes_after, floor)  # (B,) cm
            reward = torch.where(reward > 0, reward * torch.exp(-weight * slide), reward)
        obs = self._observe()
        nonfinite = self.core.nonfinite() | torch.isnan(reward - reward)  # NaN exactly where reward is NaN / inf
        # NaN compares False, so non-finite rows are caught by the line above, not this one.
        diverged = nonfinite | (obs[:, self._current_frame].abs() > self.divergence_limits).any(dim=1)
        diverged = diverged | (reward.abs() > REWARD_LIMIT)
        if bool(diverged.any()):
            reward = torch.where(diverged, torch.full_like(reward, -self.divergence_penalty), reward)
            terminated = terminated | diverged
            obs = torch.nan_to_num(obs, nan=0.0, posinf=OBS_LIMIT, neginf=-OBS_LIMIT).clamp(-OBS_LIMIT, OBS_LIMIT)
        reward = reward.to(torch.float32)
        truncated = (self.core.steps >= self.max_episode_steps) & ~terminated
        self._returns = self._returns + reward.detach()
        metrics = self.task.metrics()
        return StepTensors(obs, reward, terminated, truncated, nonfinite, diverged, metrics)

    def _foot_slide_term(self, weight: float):
        """(weight, toes (F,), floor (F,)) of the foot-sliding reward term, or None when it is off."""
        if not 0.0 <= weight < float("inf"):
            raise ValueError(f"foot_slide_weight must be >= 0 (per cm the toes slide per frame), got {weight}")
        if weight == 0.0:
            return None
        from mocap.quality import toe_joints

        skeleton = getattr(self.manifold, "skeleton", None)
        if skeleton is None:
            raise ValueError("foot_slide_weight needs a model with a skeleton (named toes or feet); this one has none: "
                             "pass foot_slide_weight=0")
        try:
            toes = torch.as_tensor(toe_joints(skeleton), device=self.device)
        except ValueError as e:
            raise ValueError(f"foot_slide_weight: {e}; or pass foot_slide_weight=0") from None
        floor = toe_floor_heights(self.core.start_frames[:, -1], self.core.layout, toes)
        return float(weight), toes, floor

    def _random_style_changes(self) -> None:
        """Each character switches to a random style with probability dt / style_change_s (what a user does live)."""
        core, b = self.core, self.num_envs
        change = torch.rand(b, generator=core.generator, device=self.device) < core.dt / self.style_change_s
        style = torch.randint(core.num_styles, (b,), generator=core.generator, device=self.device)
        if bool(change.any()):
            core.set_style(style, change)

    def _observe(self) -> torch.Tensor:
        parts = [self.core.normalized_condition()]  # (B, C*D)
        if self.core.num_styles:
            parts.append(self.core.style)  # (B, S)
        parts.append(self.task.features())  # (B, F)
        if self.core.code_prior is not None:
            parts.append(self.core.prior_log_probs())  # (B, K)
        return torch.cat(parts, dim=1)  # (B, O)

    def observation_feature_name(self, index: int) -> str:
        """A readable name for observation feature ``index``, e.g. ``"frame 1/1 joint_vel[LeftHand].y"``."""
        c, d = self.core.num_condition_frames, self.core.frame_size
        style = self.observation_layout["style"]
        if style.start <= index < style.stop:
            return f"style[{self.core.style_names[index - style.start]}]"
        prior = self.observation_layout["prior"]
        if prior.start <= index < prior.stop:
            return f"prior log-probability of code {index - prior.start}"
        if index >= style.stop:
            return f"task feature {index - style.stop} ({self.task.name})"
        frame, i = divmod(index, d)
        layout = self.core.layout
        skeleton = getattr(self.manifold, "skeleton", None)
        names = skeleton.joint_names if skeleton is not None else [f"joint {j}" for j in range(layout.num_joints)]
        where = f"frame {frame + 1}/{c}"
        if i < layout.joint_pos.start:
            return f"{where} root_delta[{('dx', 'dz', 'dyaw')[i]}]"
        for part, width, axes in (("joint_pos", 3, "xyz"), ("joint_vel", 3, "xyz"), ("joint_rot6d", 6, "abcdef")):
            block = getattr(layout, part)
            if block.start <= i < block.stop:
                joint, axis = divmod(i - block.start, width)
                return f"{where} {part}[{names[joint]}].{axes[axis]}"
        return f"{where} feature {i}"

    # ---- live steering and state ------------------------------------------------------------------
    def observe(self):
        """The current observations (B, O), as ``step`` returns them; changes nothing."""
        if self._needs_reset:
            raise RuntimeError("observe() called before reset(): call env.reset() first")
        with torch.no_grad():
            return self._out(self._observe())

    def place(self, mask=None, *, root_xz=None, yaw=None, cond=None):
        """Move characters (see the module docstring) -> their new observations."""
        if self._needs_reset:
            raise RuntimeError("place() called before reset(): call env.reset() first")
        if not self.task.placeable:
            raise ValueError(f"the {self.task.name} task places its characters itself; they cannot be moved in")
        mask = self._mask(mask, "place: mask") if mask is not None else None
        with torch.no_grad():
            self.core.place(mask, root_xz=root_xz, yaw=yaw, cond=cond)
            self.task.replan(mask)
        return self.observe()

    @property
    def style_names(self) -> list[str]:
        """The styles of the model (empty without styles)."""
        return list(self.core.style_names)

    def set_style(self, style, mask=None, blend_s: float | None = None):
        """Ask the characters where ``mask`` (B,) bool is set (all when None) for ``style``: a name, an index, (B,)
        indices or (B, S) weights; it fades in over ``blend_s`` seconds (0.5 by default; 0: at once) ->
        observations."""
        if self._needs_reset:
            raise RuntimeError("set_style() called before reset(): call env.reset() first")
        mask = self._mask(mask, "set_style: mask") if mask is not None else None
        with torch.no_grad():
            self.core.set_style(style, mask, blend_s)
        return self.observe()

    def state_dict(self) -> dict:
        """Everything that changes while the environment runs (CPU tensors), for ``load_state_dict``."""
        return {"task_name": self.task.name, "num_envs": self.num_envs, "core": self.core.state_dict(),
                "task": self.task.state_dict(), "returns": self._returns.cpu().clone(),
                "pending": self._pending.cpu().clone(), "needs_reset": self._needs_reset, "seeded": self._seeded}

    def load_state_dict(self, state: dict) -> None:
        """Put back a ``state_dict()`` of an environment made the same way (task, options, characters, model)."""
        if state.get("task_name") != self.task.name or state.get("num_envs") != self.num_envs:
            raise ValueError(f"environment state of task {state.get('task_name')!r} with {state.get('num_envs')} "
                             f"characters; this environment runs {self.task.name!r} with {self.num_envs}")
        self.core.load_state_dict(state["core"])
        self.task.load_state_dict(state["task"])
        self._returns = state["returns"].to(self.device)
        self._pending = state["pending"].to(self.device)
        self._needs_reset, self._seeded = bool(state["needs_reset"]), bool(state["seeded"])

    # ---- actions ----------------------------------------------------------------------------------
    def _action_tensor(self, actions) -> torch.Tensor:
        """Checked actions as a tensor on the device: (B, Z) float32 in [-1, 1], or (B,) int64 codes."""
        b = self.num_envs
        if isinstance(actions, torch.Tensor):
            a = actions.detach()
            is_float = a.dtype.is_floating_point
            is_int = not is_float and not a.dtype.is_complex and a.dtype != torch.bool
        else:
            try:
                a = np.asarray(actions)
            except ValueError as e:
                raise ValueError(f"actions could not be read as one array ({e}); pass a ({b}, ...) array") from None
            is_float, is_int = a.dtype.kind == "f", a.dtype.kind in "iu"
        shape = tuple(a.shape)
        if self.core.discrete:
            k = self.core.num_codes
            if shape != (b,) or not is_int:
                raise ValueError(f"actions are {a.dtype} with shape {shape}; this manifold is discrete (VQ): pass "
                                 f"integer code indices of shape ({b},), each in [0, {k})")
            a = torch.as_tensor(a, device=self.device).to(torch.int64)
            if bool(((a < 0) | (a >= k)).any()):
                raise ValueError(f"action code indices must lie in [0, {k}); got {a.min().item()}..{a.max().item()}")
            return a
        z = self.core.latent_size
        if shape != (b, z) or not (is_float or is_int):
            raise ValueError(f"actions are {a.dtype} with shape {shape}; pass a float array of shape ({b}, {z}) "
                             f"(num_envs x latent size) with values in [-1, 1]")
        if isinstance(a, np.ndarray):
            finite = bool(np.isfinite(a).all())  # checked in numpy: cheaper than torch for small batches
            a = torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32)).to(self.device)
        else:
            a = a.to(device=self.device, dtype=torch.float32)
            finite = bool(torch.isfinite(a).all())
        if not finite:
            rows = (~torch.isfinite(a).all(dim=1)).nonzero()[:, 0].tolist()
            raise ValueError(f"actions contain NaN or inf (environments {rows[:10]}{'...' if len(rows) > 10 else ''}); "
                             "check the policy's output")
        return a.clamp(-1.0, 1.0)

    # ---- outputs ----------------------------------------------------------------------------------
    def _out(self, x: torch.Tensor):
        return x.cpu().numpy() if self.array_backend == "numpy" else x

    def _info(self, metrics: dict, nonfinite: torch.Tensor, diverged: torch.Tensor,
              where: torch.Tensor | None = None) -> dict:
        """Gymnasium vector info: ``key`` (B,) values and ``_key`` (B,) masks, restricted to ``where`` if given."""
        info = {}
        entries = dict(metrics)
        entries["nonfinite"] = (nonfinite, None)
        entries["diverged"] = (diverged, None)
        for key, (values, mask) in entries.items():
            if mask is None:
                mask = torch.ones(self.num_envs, dtype=torch.bool, device=self.device) if where is None else where
            elif where is not None:
                mask = mask & where
            info[key] = self._out(values.clone())
            info["_" + key] = self._out(mask.clone())
        return info

    # ---- everything else --------------------------------------------------------------------------
    def draw_data(self, index: int) -> dict:
        """What a viewer draws for character ``index`` besides the character (see envs.tasks.base)."""
        return self.task.draw_data(index)

    def render(self):
        raise NotImplementedError(
            "the environments do not render; draw env.core.world_joint_positions() and env.draw_data(i) "
            "with the viewer package"
        )

    def close_extras(self, **kwargs) -> None:
        self.task.close()
