"""MotionCore: B characters driven by a motion manifold, stepped together in torch on one device.

State (all on ``device``, float32 unless noted):

=============== =========== =================================================================
attribute       shape       meaning
=============== =========== =================================================================
cond            (B, C, D)   raw condition frames, oldest first; ``cond[:, -1]`` is the current pose
root_xz         (B, 2)      root position on the ground, world metres
yaw             (B,)        facing, radians in (-pi, pi]; 0 faces +z (setting it updates ``rotation``)
rotation        (B, 2, 2)   ``[[cos, sin], [-sin, cos]]`` of yaw: ground vectors character -> world
steps           (B,) int64  frames since the character's last reset
style           (B, S)      the style weights the manifold is stepped with (S = 0 without styles); each row
                            blends ``style_from`` into ``style_to`` as ``style_progress`` (B,) goes 0 -> 1
prior_codes     (B, W) i64  a code prior's context (VQ manifold with ``code_prior`` only): the last W codes taken, PAD
                            (= K) before the first; ``prior_conds`` (B, W, C*D) the normalised condition window
                            each led to
=============== =========== =================================================================

Code prior (``code_prior``, a VQ manifold only: a :class:`vae.prior.CodePrior` or anything with its ``context``,
``config.pad_code`` and ``step_logits(codes, conds, style)``): the core keeps the prior's context of every character
(restarted with W copies of (PAD, the start window) wherever a character restarts or is placed in a new pose, one
(code, new window) pair pushed per step) and gives the next code's log-probabilities (``prior_log_probs``, computed
once per state) and samples (``sample_prior``) from it.

Styles (a manifold with ``num_styles`` S > 0): a restart takes the style of its start window (a random one where
the windows' styles are unknown); ``set_style`` asks for another, which fades in linearly over ``blend_s``
seconds (0.5 s by default: a cross-fade of the style embeddings, no pop).

One step: ``next = manifold.step(latent, cond, style=style)``; the root moves exactly as
:func:`mocap.features.integrate_root` integrates a clip (the frame's displacement is expressed in
the *previous* facing frame, then the facing changes by the frame's dyaw); the window shifts by one.
Nothing here loops over B in Python. All randomness comes from ``generator`` (a ``torch.Generator``
on ``device``), so a seed fixes every trajectory.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from envs import manifold_source
from envs.geometry import heading_vector, rot6d_to_matrix, yaw_matrix
from mocap.root_motion import char_to_world, char_to_world_xz, step_root
from vae.prior import push_context

DEFAULT_STYLE_BLEND_S = 0.5


class MotionCore:
    """Batched character state + manifold stepping (no task, no Gymnasium)."""

    def __init__(self, manifold, num_envs: int, *, start_frames=None, fps: float | None = None, code_prior=None):
        if not isinstance(num_envs, (int, np.integer)) or isinstance(num_envs, bool) or num_envs < 1:
            raise ValueError(f"num_envs must be a positive integer, got {num_envs!r}")
        num_envs = int(num_envs)
        self.manifold = manifold
        self.num_envs = num_envs
        self.device = manifold_source.manifold_device(manifold)
        self.layout = manifold_source.pose_layout(manifold)
        self.fps = manifold_source.frames_per_second(manifold, fps)
        self.dt = 1.0 / self.fps
        self.start_frames = manifold_source.start_frames(manifold, start_frames, self.device)  # (S, C, D)
        self.discrete = bool(getattr(manifold, "discrete", False))
        self.latent_size = int(manifold.latent_size)
        self.num_codes = int(manifold.num_codes) if self.discrete else None
        self.generator = torch.Generator(device=self.device)
        b, (_, c, d) = num_envs, self.start_frames.shape
        self.cond = torch.zeros(b, c, d, device=self.device)
        self.root_xz = torch.zeros(b, 2, device=self.device)
        self.yaw = torch.zeros(b, device=self.device)
        self.steps = torch.zeros(b, dtype=torch.int64, device=self.device)
        self.num_styles = manifold_source.num_styles(manifold)
        self._step_inputs: tuple | None = None
        self.style_names = manifold_source.style_names(manifold)
        self.start_styles = manifold_source.start_styles(manifold, self.start_frames, start_frames, self.device)
        self.style_from = torch.zeros(b, self.num_styles, device=self.device)  # (B, S)
        self.style_to = torch.zeros(b, self.num_styles, device=self.device)  # (B, S)
        self.style_progress = torch.ones(b, device=self.device)  # (B,)
        self.style_blend_s = torch.full((b,), DEFAULT_STYLE_BLEND_S, device=self.device)  # (B,) s, each row's fade
        self.default_style_blend_s = DEFAULT_STYLE_BLEND_S
        self.code_prior = code_prior
        if code_prior is not None:
            if not self.discrete:
                raise ValueError("code_prior drives a VQ Motion VAE (model 'vq'); this manifold is Gaussian")
            w = int(code_prior.step_context)
            self.prior_codes = torch.zeros(b, w, dtype=torch.int64, device=self.device)  # (B, W)
            self.prior_conds = torch.zeros(b, w, c * d, device=self.device)  # (B, W, C*D)
        self._prior_log_probs: torch.Tensor | None = None  # (B, K) of the current state, computed on demand

    @property
    def yaw(self) -> torch.Tensor:
        return self._yaw

    @yaw.setter
    def yaw(self, value: torch.Tensor) -> None:
        # The rotation is cached: the step, the observations and the tasks all need it.
        self._yaw = value
        self._set_rotation(torch.cos(value), torch.sin(value))

    def _set_rotation(self, c: torch.Tensor, s: torch.Tensor) -> None:
        self.rotation = torch.stack((c, s, -s, c), dim=1).view(-1, 2, 2)  # (B, 2, 2)

    @property
    def num_condition_frames(self) -> int:
        return int(self.cond.shape[1])

    @property
    def frame_size(self) -> int:
        return int(self.cond.shape[2])

    def seed(self, seed: int) -> None:
        self.generator.manual_seed(int(seed))

    # ---- reset ----------------------------------------------------------------------------------
    def reset(self, mask: torch.Tensor | None = None, root_xz: torch.Tensor | None = None,
              yaw: torch.Tensor | None = None) -> None:
        """Restart the characters where ``mask`` (B,) bool is set (all when None).

        Each gets a random start window and, unless given, yaw uniform in [-pi, pi) and the root at
        the origin. ``root_xz`` (B, 2) / ``yaw`` (B,) are read only at the masked rows. Random numbers
        are drawn for all B characters whatever the mask, so the stream does not depend on it.
        """
        b = self.num_envs
        pick = torch.randint(self.start_frames.shape[0], (b,), generator=self.generator, device=self.device)
        new_yaw = (torch.rand(b, generator=self.generator, device=self.device) * 2.0 - 1.0) * math.pi
        if yaw is not None:
            new_yaw = yaw.to(self.yaw)
        new_xz = torch.zeros_like(self.root_xz) if root_xz is None else root_xz.to(self.root_xz)
        new_cond = self.start_frames[pick]  # (B, C, D)
        if self.num_styles:
            drawn = torch.randint(self.num_styles, (b,), generator=self.generator, device=self.device)
            style = drawn if self.start_styles is None else self.start_styles[pick]  # (B,)
            self.set_style(style, mask, blend_s=0.0)
        if mask is None:
            self.cond, self.root_xz, self.yaw = new_cond, new_xz.clone(), new_yaw.clone()
            self.steps = torch.zeros_like(self.steps)
        else:
            self.cond = torch.where(mask[:, None, None], new_cond, self.cond)
            self.root_xz = torch.where(mask[:, None], new_xz, self.root_xz)
            self.yaw = torch.where(mask, new_yaw, self.yaw)
            self.steps = torch.where(mask, torch.zeros_like(self.steps), self.steps)
        self._restart_prior_context(mask)

    # ---- styles ----------------------------------------------------------------------------------
    @property
    def style(self) -> torch.Tensor:
        """(B, S) the style weights of the next step (rows sum to 1)."""
        t = self.style_progress[:, None]
        return self.style_from + (self.style_to - self.style_from) * t

    def style_weights(self, style) -> torch.Tensor:
        """(B, S) weights of ``style``: a name, an index, (B,) indices or (B, S) weights (rows normalised)."""
        b, s = self.num_envs, self.num_styles
        if not s:
            raise ValueError("this model has no styles (train one on data prepared with `mocap.prepare --styles`)")
        if isinstance(style, str):
            if style not in self.style_names:
                raise ValueError(f"unknown style {style!r}; this model knows {', '.join(self.style_names)}")
            style = self.style_names.index(style)
        style = torch.as_tensor(style, device=self.device)
        if style.dtype.is_floating_point:
            if tuple(style.shape) != (b, s) or not bool(torch.isfinite(style).all()) or bool((style < 0).any()):
                raise ValueError(f"style weights must be ({b}, {s}) finite and >= 0, got shape {tuple(style.shape)}")
            total = style.sum(dim=1, keepdim=True)
            if bool((total <= 0).any()):
                raise ValueError("style weights: every row needs a positive weight")
            return (style / total).to(torch.float32)
        style = style.expand(b) if style.dim() == 0 else style
        if tuple(style.shape) != (b,) or bool(((style < 0) | (style >= s)).any()):
            raise ValueError(f"style indices must be one or ({b},) integers in [0, {s}) (styles: "
                             f"{', '.join(self.style_names)})")
        return torch.nn.functional.one_hot(style.long(), s).to(torch.float32)

    def set_style(self, style, mask: torch.Tensor | None = None, blend_s: float | None = None) -> None:
        """Ask the characters where ``mask`` (B,) is set (all when None) for ``style`` (see ``style_weights``); it
        fades in from their current blend over ``blend_s`` seconds (default ``default_style_blend_s``; 0: at once)."""
        target = self.style_weights(style)  # (B, S)
        duration = self.default_style_blend_s if blend_s is None else float(blend_s)
        if not 0.0 <= duration <= 60.0:
            raise ValueError(f"style blend time must be in [0, 60] s, got {duration}")
        current = self.style  # (B, S)
        progress = torch.full_like(self.style_progress, 1.0 if duration == 0.0 else 0.0)
        duration_b = torch.full_like(self.style_blend_s, duration)
        if mask is None:
            self.style_from, self.style_to, self.style_progress, self.style_blend_s = current, target, progress, duration_b
            return
        self.style_from = torch.where(mask[:, None], current, self.style_from)
        self.style_to = torch.where(mask[:, None], target, self.style_to)
        self.style_progress = torch.where(mask, progress, self.style_progress)
        self.style_blend_s = torch.where(mask, duration_b, self.style_blend_s)
        self._prior_log_probs = None

    def current_style(self) -> torch.Tensor:
        """(B,) int64 the style each character is heading to (the largest target weight)."""
        return self.style_to.argmax(dim=1)

    def place(self, mask: torch.Tensor | None = None, *, root_xz: torch.Tensor | None = None,
              yaw: torch.Tensor | None = None, cond: torch.Tensor | None = None) -> None:
        """Move the characters where ``mask`` (B,) is set (all when None): ``root_xz`` (B, 2) world m, ``yaw`` (B,)
        rad, ``cond`` (B, C, D) raw condition frames (their pose); what is not given stays. Step counters go on."""
        b, c, d = self.cond.shape
        given = {"root_xz": (root_xz, (b, 2)), "yaw": (yaw, (b,)), "cond": (cond, (b, c, d))}
        for name, (value, shape) in given.items():
            if value is None:
                continue
            value = torch.as_tensor(value, dtype=torch.float32, device=self.device)
            if tuple(value.shape) != shape:
                raise ValueError(f"place: {name} has shape {tuple(value.shape)}; expected {shape}")
            if not bool(torch.isfinite(value).all()):
                raise ValueError(f"place: {name} holds NaN or infinite values")
            old = getattr(self, name)
            keep = mask.reshape(mask.shape + (1,) * (old.dim() - 1)) if mask is not None else None
            setattr(self, name, value.clone() if keep is None else torch.where(keep, value, old))
        if cond is not None:  # a new pose: the codes that led to the old one no longer apply
            self._restart_prior_context(mask)

    # ---- the code prior ----------------------------------------------------------------------------
    def _restart_prior_context(self, mask: torch.Tensor | None) -> None:
        """W copies of (PAD, the current window) where ``mask`` is set (all when None), as the prior was trained."""
        self._prior_log_probs = None
        if self.code_prior is None:
            return
        b, w = self.num_envs, self.prior_codes.shape[1]
        pad = torch.full_like(self.prior_codes, int(self.code_prior.config.pad_code))  # (B, W)
        conds = self.normalized_condition().unsqueeze(1).expand(b, w, -1)  # (B, W, C*D)
        if mask is None:
            self.prior_codes, self.prior_conds = pad, conds.clone()
            return
        self.prior_codes = torch.where(mask[:, None], pad, self.prior_codes)
        self.prior_conds = torch.where(mask[:, None, None], conds, self.prior_conds)

    def prior_log_probs(self) -> torch.Tensor:
        """(B, K) log-probabilities of each character's next code under the code prior (computed once per state)."""
        if self.code_prior is None:
            raise ValueError("this environment has no code prior (pass code_prior= with a VQ model's prior)")
        if self._prior_log_probs is None:
            style = self.style if self.num_styles else None
            with torch.no_grad():
                logits = self.code_prior.step_logits(self.prior_codes, self.prior_conds, style)  # (B, K)
            self._prior_log_probs = torch.log_softmax(logits.to(torch.float32), dim=1)
        return self._prior_log_probs

    # ---- state -----------------------------------------------------------------------------------
    STATE_NAMES = ("cond", "root_xz", "yaw", "steps", "style_from", "style_to", "style_progress", "style_blend_s")
    PRIOR_STATE_NAMES = ("prior_codes", "prior_conds")

    @property
    def state_names(self) -> tuple[str, ...]:
        """The names of every changing state tensor (with a code prior, its context too)."""
        return self.STATE_NAMES + (self.PRIOR_STATE_NAMES if self.code_prior is not None else ())

    def state_dict(self) -> dict:
        """The characters' state (CPU tensors) and the generator's: what ``load_state_dict`` puts back exactly."""
        state = {name: getattr(self, name).detach().cpu().clone() for name in self.state_names}
        state["generator"] = self.generator.get_state()
        return state

    def load_state_dict(self, state: dict) -> None:
        missing = [k for k in (*self.state_names, "generator") if k not in state]
        if missing:
            raise ValueError(f"character state lacks {missing}; it was not written by MotionCore.state_dict (with a "
                             "code prior, by one with a code prior)")
        self._prior_log_probs = None
        for name in self.state_names:
            old, new = getattr(self, name), state[name]
            if tuple(old.shape) != tuple(new.shape):
                raise ValueError(f"character state {name} has shape {tuple(new.shape)}, this environment "
                                 f"{tuple(old.shape)}: another number of characters or another model")
            setattr(self, name, new.to(device=self.device, dtype=old.dtype))
        self.generator.set_state(state["generator"])

    # ---- step -----------------------------------------------------------------------------------
    def sample_prior(self, generator: torch.Generator | None = None) -> torch.Tensor:
        """(B, Z) standard-normal latents, or (B,) codes for a discrete manifold (drawn from the code prior given each
        character's context where there is one, else uniformly), from ``generator`` (default: the core's)."""
        generator = self.generator if generator is None else generator
        if self.code_prior is not None:
            probs = self.prior_log_probs().exp()  # (B, K)
            return torch.multinomial(probs, 1, generator=generator)[:, 0]  # (B,)
        return self.manifold.sample_prior(self.num_envs, generator=generator)

    @torch.no_grad()
    def step(self, latent: torch.Tensor) -> torch.Tensor:
        """Advance every character by one frame with ``latent`` (B, Z) float or (B,) long codes -> new frame (B, D)."""
        return self.differentiable_step(latent)

    def differentiable_step(self, latent: torch.Tensor) -> torch.Tensor:
        """``step`` that records the graph when grad mode is on: the new frame, root and facing are differentiable
        functions of ``latent`` and of the state before (analytic policy gradients, :mod:`policies.apg`)."""
        style = self.style if self.num_styles else None  # (B, S): computed once, for the step and the channels
        # What the contact channels read (contact_probabilities): the latent, the condition and the style of this step.
        self._step_inputs = (latent.detach(), self.cond, style)
        if self.num_styles:
            nxt = self.manifold.step(latent, self.cond, style=style).to(torch.float32)  # (B, D)
            self.style_progress = (self.style_progress + self.dt / self.style_blend_s.clamp_min(1e-6)).clamp(max=1.0)
        else:
            nxt = self.manifold.step(latent, self.cond).to(torch.float32)  # (B, D)
        # Displacement in the previous facing frame (the cached rotation still holds the previous yaw), then the turn.
        self.root_xz, yaw = step_root(self.root_xz, self._yaw, nxt, rotation=self.rotation)  # reads nxt's root delta
        c, s = torch.cos(yaw), torch.sin(yaw)
        self._yaw = torch.atan2(s, c)  # wrapped to (-pi, pi] at no extra cost
        self._set_rotation(c, s)
        # (B, C, D): drop the oldest frame, append the new one.
        self.cond = nxt[:, None] if self.cond.shape[1] == 1 else torch.cat((self.cond[:, 1:], nxt[:, None]), dim=1)
        self.steps = self.steps + 1
        self._prior_log_probs = None
        if self.code_prior is not None:
            self.prior_codes, self.prior_conds = push_context(self.prior_codes, self.prior_conds, latent,
                                                              self.normalized_condition())
        return nxt

    # ---- views ----------------------------------------------------------------------------------
    def contact_probabilities(self, rows=None) -> torch.Tensor | None:
        """(B, F) the manifold's foot contact channels for the frame the last step made (the probability that each
        joint of ``manifold.contacts.joints`` touches the ground; :mod:`vae.contacts`), or (L, F) for ``rows`` (L,)
        indices; None for a manifold without them or before the first step."""
        if getattr(self.manifold, "contacts", None) is None or self._step_inputs is None:
            return None
        latent, cond, style = self._step_inputs
        if rows is not None:
            rows = torch.as_tensor(rows, device=latent.device)
            latent, cond, style = latent[rows], cond[rows], None if style is None else style[rows]
        return self.manifold.contact_probabilities(latent, cond, style=style)

    @property
    def frame(self) -> torch.Tensor:
        """(B, D) the current raw frame."""
        return self.cond[:, -1]

    def normalized_condition(self) -> torch.Tensor:
        """(B, C*D) the condition window normalised with the manifold's data statistics."""
        b = self.num_envs
        return self.manifold.normalize(self.cond.reshape(b, -1)).to(torch.float32)  # (B, C*D)

    def facing(self) -> torch.Tensor:
        """(B, 2) unit facing direction on the ground, world."""
        return heading_vector(self.yaw)

    def to_char(self, points: torch.Tensor) -> torch.Tensor:
        """World ground points (B, K, 2) -> each character's frame (B, K, 2) (m; +z ahead, +x to the left)."""
        return (points - self.root_xz[:, None, :]) @ self.rotation

    def vectors_to_char(self, vectors: torch.Tensor) -> torch.Tensor:
        """World ground directions (B, K, 2) -> each character's frame (B, K, 2) (rotation only)."""
        return vectors @ self.rotation

    def root_velocity(self) -> torch.Tensor:
        """(B, 2) world ground velocity (m/s) of the last step: the current frame's delta, in the previous facing."""
        delta = self.layout.root_deltas(self.frame)  # (B, 3)
        prev_yaw = self.yaw - delta[:, self.layout.root_dyaw]
        return char_to_world_xz(delta[:, self.layout.root_dxdz], prev_yaw) * self.fps

    def speed(self) -> torch.Tensor:
        """(B,) ground speed of the root (m/s) over the last step."""
        return torch.linalg.vector_norm(self.frame[:, self.layout.root_dxdz], dim=1) * self.fps

    def world_joint_positions(self) -> torch.Tensor:
        """(B, J, 3) world joint positions (m): character-frame positions turned by yaw, plus the root on the ground."""
        return char_to_world(self.layout.positions(self.frame), self.root_xz, rotation=self.rotation)  # (B, J, 3)

    def world_joint_rotations(self) -> torch.Tensor:
        """(B, J, 3, 3) world joint orientations: yaw times the frame's character-frame orientations."""
        rot = rot6d_to_matrix(self.layout.rotations6d(self.frame))  # (B, J, 3, 3)
        return yaw_matrix(self.yaw)[:, None] @ rot

    def nonfinite(self) -> torch.Tensor:
        """(B,) bool: the character's state holds a NaN or an inf."""
        # NaN and inf survive a sum, and x - x is NaN exactly for them (isfinite costs several kernels).
        total = self.frame.sum(dim=1) + self._yaw + self.root_xz.sum(dim=1)
        return torch.isnan(total - total)
