"""Autonomous motion of a VQ Motion VAE: characters walking on their own, one code per frame.

A PoseVQVAE moves a character one frame per code (:mod:`vae.vq_vae`). Who picks the code decides how the motion
looks: uniformly random codes ignore which codes suit the current pose and which follow which; the transformer
prior (:mod:`vae.prior`) picks them as the data would. Both walks here run the same loop, :func:`code_walk`, with a
different picker, so a comparison isolates the choice of codes::

    prior_walk(manifold, prior, start (B, C, D) raw, T, generator, style=, temperature=, top_k=) -> (B, T, D) raw
    uniform_walk(manifold, start (B, C, D) raw, T, generator, style=)                            -> (B, T, D) raw
    code_walk(manifold, start, T, pick, style=, context=)               -> (frames (B, T, D) raw, codes (B, T))

The loop keeps the prior's context, the last W (code, condition window) pairs, as (B, W) codes and (B, W, CD)
normalised windows, starting from W copies of (PAD, the start window) (:meth:`vae.prior.CodePrior.start_context`),
exactly as the prior was trained. Conditions stay normalised between steps: a rollout never goes through raw units
and back, so the prior sees the windows the decoder produced. Pure functions of tensors; the same generator state
gives the same walk.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from vae.prior import CodePrior, check_prior_fits, push_context

# pick(codes (B, W), conds (B, W, CD)) -> (B,) int64 next codes
CodePicker = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def prior_picker(prior: CodePrior, generator: torch.Generator, style=None, temperature: float = 1.0,
                 top_k: int | None = None) -> CodePicker:
    """Codes drawn from the prior's next-code distribution given the context (temperature, top-k)."""
    def pick(codes: torch.Tensor, conds: torch.Tensor) -> torch.Tensor:
        return prior.sample_next(codes, conds, style, temperature=temperature, top_k=top_k, generator=generator)
    return pick


def uniform_picker(num_codes: int, generator: torch.Generator) -> CodePicker:
    """Codes drawn uniformly from the K codes, whatever the context."""
    def pick(codes: torch.Tensor, conds: torch.Tensor) -> torch.Tensor:
        where = generator.device
        return torch.randint(num_codes, (codes.shape[0],), generator=generator, device=where).to(codes.device)
    return pick


@torch.no_grad()
def code_walk(manifold, start_windows: torch.Tensor, steps: int, pick: CodePicker, style=None,
              context: int = 1, pad_code: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Roll ``manifold`` (a PoseVQVAE) ``steps`` frames from raw condition windows ``start_windows`` (B, C, D),
    each frame's code from ``pick`` given the last ``context`` (code, condition) pairs; ``style`` (B,) indices or
    (B, S) weights (models with styles). Returns (raw frames (B, T, D), codes taken (B, T) int64)."""
    if not getattr(manifold, "discrete", False):
        raise ValueError("code_walk drives a VQ Motion VAE (model 'vq'); this one is Gaussian")
    c, d = manifold.num_condition_frames, manifold.frame_size
    start_windows = torch.as_tensor(start_windows, dtype=manifold.data_mean.dtype, device=manifold.device)
    if start_windows.dim() != 3 or tuple(start_windows.shape[1:]) != (c, d):
        raise ValueError(f"start windows have shape {tuple(start_windows.shape)}; expected (B, {c}, {d})")
    b = start_windows.shape[0]
    cond = manifold.normalize(start_windows.reshape(b, c * d))  # (B, C*D), oldest frame first
    pad = manifold.num_codes if pad_code is None else pad_code
    codes = torch.full((b, context), pad, dtype=torch.long, device=manifold.device)  # (B, W): no code yet
    conds = cond.unsqueeze(1).expand(b, context, c * d).clone()  # (B, W, C*D)
    frames = torch.empty(b, steps, d, dtype=cond.dtype, device=manifold.device)
    taken = torch.empty(b, steps, dtype=torch.long, device=manifold.device)
    for t in range(steps):
        code = pick(codes, conds)  # (B,)
        nxt = manifold.decode(manifold.latent_from_action(code), cond, style=style)[:, :d]  # (B, D) first future frame
        cond = torch.cat((cond[:, d:], nxt), dim=1)  # (B, C*D): drop the oldest frame, append the new one
        codes, conds = push_context(codes, conds, code, cond)
        frames[:, t] = nxt
        taken[:, t] = code
    return manifold.denormalize(frames), taken


def prior_walk(manifold, prior: CodePrior, start_windows: torch.Tensor, steps: int, generator: torch.Generator,
               style=None, temperature: float = 1.0, top_k: int | None = None) -> torch.Tensor:
    """(B, T, D) raw frames of ``manifold`` driven by its ``prior`` from ``start_windows`` (B, C, D) raw."""
    check_prior_fits(prior, manifold)
    pick = prior_picker(prior, generator, style, temperature, top_k)
    frames, _ = code_walk(manifold, start_windows, steps, pick, style, prior.step_context, prior.config.pad_code)
    return frames


def uniform_walk(manifold, start_windows: torch.Tensor, steps: int, generator: torch.Generator,
                 style=None) -> torch.Tensor:
    """(B, T, D) raw frames of ``manifold`` driven by uniformly random codes from ``start_windows`` (B, C, D) raw."""
    frames, _ = code_walk(manifold, start_windows, steps, uniform_picker(manifold.num_codes, generator), style)
    return frames
