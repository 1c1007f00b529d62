"""SamplingController: a gradient-free controller that steers a Motion VAE by sampling its prior.

Every frame, for each of the B characters, it draws K latents from the manifold's prior, decodes all B*K
candidate next frames in ONE batched ``manifold.step`` call, and keeps the candidate whose root motion best
matches what the task wants now: a turn rate toward the desired direction and a ground speed. No training,
no loops over characters; it works for every manifold the environments accept (Gaussian: it returns the
latent as an action ``z / action_scale``; discrete VQ: the chosen code, its candidates drawn from the environment's
code prior given each character's context where it has one, else uniformly).

The desired motion is the task's own (:meth:`envs.tasks.base.Task.desired_motion`: a world direction and a
speed, e.g. toward the target, the joystick's command, the path's look-ahead point, the free way through the
maze); each task module's docstring says what it is.

Score of a candidate (higher is better): ``-|turn rate - desired turn rate| / 1 rad/s - |speed - desired|
/ 1 m/s``, the desired turn rate being ``TURN_GAIN * theta`` clipped to ``MAX_TURN_RATE`` (``theta``: the angle
from the character's facing to the desired direction): a proportional heading controller, so candidates
compete on comparable units whatever the heading error.
"""

from __future__ import annotations

import torch

from envs.manifold_source import pose_layout

TURN_GAIN = 2.5  # 1/s: desired turn rate per radian of heading error
MAX_TURN_RATE = 4.0  # rad/s


class SamplingController:
    """See the module docstring. ``controller(env, obs)`` -> actions for ``env.step``."""

    def __init__(self, manifold, *, num_candidates: int = 32, action_scale: float = 4.0, seed: int = 0):
        if int(num_candidates) < 1:
            raise ValueError(f"num_candidates must be >= 1, got {num_candidates}")
        self.manifold = manifold
        self.num_candidates = int(num_candidates)
        self.action_scale = float(action_scale)
        self.layout = pose_layout(manifold)
        self.fps = float(getattr(manifold, "fps", None) or 30.0)
        self.discrete = bool(getattr(manifold, "discrete", False))
        self.device = torch.device(getattr(manifold, "device", "cpu"))
        self.generator = torch.Generator(device=self.device).manual_seed(int(seed))

    @classmethod
    def for_env(cls, env, **kwargs) -> SamplingController:
        """A controller for a MotionVecEnv's manifold and action scale."""
        return cls(env.manifold, **{"action_scale": env.action_scale, **kwargs})

    def __call__(self, env, obs=None) -> torch.Tensor:
        direction, speed = env.task.desired_motion()  # (B, 2) world, (B,) m/s
        char = env.core.vectors_to_char(direction[:, None])[:, 0]  # (B, 2): (sin theta, cos theta)
        theta = torch.atan2(char[:, 0], char[:, 1])
        code_probs = env.core.prior_log_probs().exp() if env.core.code_prior is not None else None  # (B, K)
        return self.act(env.core.cond, theta.to(self.device), speed.to(self.device), code_probs)

    # ---- sampling -----------------------------------------------------------------------------------
    @torch.no_grad()
    def act(self, cond_raw: torch.Tensor, theta: torch.Tensor, speed: torch.Tensor,
            code_probs: torch.Tensor | None = None) -> torch.Tensor:
        """Raw condition windows (B, C, D), desired direction ``theta`` (B,) rad from the facing (+ left) and speed
        (B,) m/s -> actions (B, Z) in [-1, 1] or codes (B,); ``code_probs`` (B, codes): a code prior's next-code
        probabilities to draw the candidates from (VQ)."""
        b, k = cond_raw.shape[0], self.num_candidates
        if code_probs is not None:
            drawn = torch.multinomial(code_probs.to(self.device), k, replacement=True, generator=self.generator)
            candidates = drawn.reshape(b * k)  # (B, K) -> (B*K,)
        else:
            candidates = self.manifold.sample_prior(b * k, generator=self.generator)  # (B*K, Z) or (B*K,)
        if hasattr(candidates, "to"):
            candidates = candidates.to(self.device)
        cond = cond_raw.repeat_interleave(k, dim=0)  # (B*K, C, D)
        nxt = self.manifold.step(candidates, cond).to(torch.float32)  # (B*K, D)
        delta = self.layout.root_deltas(nxt).reshape(b, k, -1)  # (B, K, 3)
        cand_speed = torch.linalg.vector_norm(delta[..., self.layout.root_dxdz], dim=-1) * self.fps  # (B, K)
        cand_turn = delta[..., self.layout.root_dyaw] * self.fps  # (B, K) rad/s
        want_turn = (TURN_GAIN * theta).clamp(-MAX_TURN_RATE, MAX_TURN_RATE)  # (B,)
        score = -(cand_turn - want_turn[:, None]).abs() - (cand_speed - speed[:, None]).abs()
        best = score.argmax(dim=1)  # (B,)
        rows = torch.arange(b, device=best.device) * k + best
        chosen = candidates[rows]
        if self.discrete:
            return chosen.long()
        return (chosen / self.action_scale).clamp(-1.0, 1.0)
