"""Where an environment's motion manifold comes from, and the checks that it can drive a character.

``vae=`` of every environment accepts:

* ``None``: the default character's model (``assets/characters/deepmimic/vae.pt``; see :mod:`characters.bundle`);
* a path (``str`` / ``os.PathLike``) to a checkpoint written by ``vae.train`` (loaded with ``vae.load_manifold``);
* a manifold object: a :class:`vae.MotionManifold` or anything with the same interface, namely
  ``frame_size`` (D), ``latent_size`` (Z), ``discrete`` (bool), ``num_codes`` (K, discrete only),
  ``num_condition_frames`` (C, or ``config.num_condition_frames``), ``step(action, cond_raw (B, C, D)) -> (B, D)``,
  ``sample_prior(B, generator=None)``, ``normalize((B, C*D)) -> (B, C*D)``, and optionally ``device``,
  ``fps``, ``skeleton`` and ``start_frames`` (S, C, D) (else ``extra["start_frames"]``).

Characters start from ``start_frames``: raw condition windows sampled from the training data, stored in
the checkpoint by the trainer. A hand-built manifold has none; pass ``start_frames=`` to the environment.
"""

from __future__ import annotations

import os

import numpy as np
import torch

from characters.bundle import DEFAULT_CHARACTER, SHIPPED
from mocap.pose_layout import PoseLayout

DEFAULT_VAE = SHIPPED / DEFAULT_CHARACTER / "vae.pt"
TRAIN_HINT = (
    "build a character with `python -m characters.build <bvh folder> --out characters/NAME`, or train a VAE with "
    "`python -m mocap.prepare <bvh folder> --out data/mocap.npz` then "
    "`python -m vae.train --data data/mocap.npz --out runs/vae.pt`"
)
DEFAULT_ACTION_SCALE = 4.0  # +-4 prior stds: models that do not record their own (older checkpoints)
_REQUIRED = ("frame_size", "latent_size", "step", "sample_prior", "normalize")


def check_device(device) -> None:
    """A clear error for a device this machine cannot run (instead of torch's)."""
    if device is None:
        return
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f"device={device!r} is not a torch device; use 'cpu' or 'cuda'") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={device!r} but torch sees no CUDA GPU (a CPU build of torch, or no GPU); "
                         "use device='cpu'")


def resolve_manifold(vae, device: str | torch.device | None):
    """``vae`` (None, a path or a manifold) -> a manifold on ``device`` (default: where it already is / cpu)."""
    check_device(device)
    if vae is None:
        if not DEFAULT_VAE.is_file():
            raise FileNotFoundError(
                f"no vae= was given and the shipped model {DEFAULT_VAE} is absent; pass vae='path/to/vae.pt' "
                f"(a checkpoint from vae.train) or a MotionManifold, or {TRAIN_HINT}"
            )
        vae = DEFAULT_VAE
    if isinstance(vae, (str, os.PathLike)):
        from vae import load_manifold  # torch-heavy; imported only when a path is given

        return load_manifold(vae, device=device or "cpu")
    missing = [name for name in _REQUIRED if not hasattr(vae, name)]
    if missing:
        raise TypeError(
            f"vae= is a {type(vae).__name__}, which lacks {missing}; pass a checkpoint path or a MotionManifold "
            "(vae.load_manifold / vae.build_model)"
        )
    where = manifold_device(vae)
    if device is not None and torch.device(device) != where:
        raise ValueError(
            f"the manifold lives on {where} but device={device!r} was asked; move it first "
            f"(manifold.to({str(device)!r})) or pass the checkpoint path so it loads there"
        )
    return vae


def resolve_code_prior(code_prior, manifold):
    """``code_prior`` (None, a prior file's path, a :class:`vae.prior.CodePrior` or a stand-in with its
    ``step_logits``) -> the prior on the manifold's device, checked to belong to ``manifold``; None stays None."""
    if code_prior is None:
        return None
    if not getattr(manifold, "discrete", False):
        raise ValueError("code_prior= drives a VQ Motion VAE (model 'vq'); this model is Gaussian: drop code_prior")
    from vae.prior import CodePrior, check_prior_fits, load_prior

    if isinstance(code_prior, (str, os.PathLike)):
        return load_prior(code_prior, manifold if isinstance(manifold, torch.nn.Module) else None,
                          device=manifold_device(manifold))
    missing = [name for name in ("step_context", "config", "step_logits") if not hasattr(code_prior, name)]
    if missing:
        raise TypeError(f"code_prior= is a {type(code_prior).__name__}, which lacks {missing}; pass a prior file "
                        "(python -m vae.train_prior) or a vae.prior.CodePrior")
    if isinstance(code_prior, CodePrior) and isinstance(manifold, torch.nn.Module):
        check_prior_fits(code_prior, manifold, "code_prior")
    return code_prior


def manifold_device(manifold) -> torch.device:
    device = getattr(manifold, "device", None)
    return torch.device(device) if device is not None else torch.device("cpu")


def num_condition_frames(manifold) -> int:
    if hasattr(manifold, "num_condition_frames"):
        return int(manifold.num_condition_frames)
    return int(manifold.config.num_condition_frames)


def pose_layout(manifold) -> PoseLayout:
    """The frame layout of the manifold, checked against its skeleton (when it has one)."""
    try:
        layout = PoseLayout.from_frame_size(int(manifold.frame_size))
    except ValueError as e:
        raise ValueError(f"the manifold's frame_size does not describe a character: {e}") from None
    skeleton = getattr(manifold, "skeleton", None)
    if skeleton is not None and skeleton.num_joints != layout.num_joints:
        raise ValueError(
            f"the manifold's frame_size {manifold.frame_size} means {layout.num_joints} joints but its skeleton has "
            f"{skeleton.num_joints}; the model and its skeleton do not belong together (retrain, or fix the checkpoint)"
        )
    return layout


def start_frames(manifold, given, device: torch.device) -> torch.Tensor:
    """(S, C, D) float32 raw condition windows on ``device``: ``given``, else the manifold's own."""
    frames = given
    if frames is None:
        frames = getattr(manifold, "start_frames", None)
    if frames is None:
        extra = getattr(manifold, "extra", None)
        frames = extra.get("start_frames") if isinstance(extra, dict) else None
    if frames is None:
        raise ValueError(
            "the manifold carries no start_frames (a hand-built model has none): pass start_frames= as an array of "
            "raw condition windows (S, C, D) taken from the training data, or load a checkpoint written by vae.train"
        )
    frames = torch.as_tensor(np.asarray(frames) if not isinstance(frames, torch.Tensor) else frames)
    c, d = num_condition_frames(manifold), int(manifold.frame_size)
    if frames.dim() == 2 and c == 1:
        frames = frames[:, None, :]  # (S, 1, D)
    if frames.dim() != 3 or tuple(frames.shape[1:]) != (c, d) or frames.shape[0] == 0:
        raise ValueError(
            f"start_frames have shape {tuple(frames.shape)}; the manifold needs (S, {c}, {d}) raw condition windows "
            f"(num_condition_frames={c}, frame_size={d}) with S >= 1"
        )
    frames = frames.to(device=device, dtype=torch.float32)
    if not bool(torch.isfinite(frames).all()):
        raise ValueError("start_frames contain NaN or infinite values; rebuild them from the training data")
    return frames


def num_styles(manifold) -> int:
    """S, the styles a manifold is conditioned on (0: none)."""
    return int(getattr(manifold, "num_styles", 0) or 0)


def style_names(manifold) -> list[str]:
    """The names of the manifold's styles (``style_names``, else ``extra["style_names"]``, else "style k")."""
    names = list(getattr(manifold, "style_names", None) or [])
    if not names:
        extra = getattr(manifold, "extra", None)
        names = [str(n) for n in (extra.get("style_names", []) if isinstance(extra, dict) else [])]
    s = num_styles(manifold)
    return names if len(names) == s else [f"style {k}" for k in range(s)]


def start_styles(manifold, starts: torch.Tensor, given_frames, device: torch.device) -> torch.Tensor | None:
    """(S,) int64 the style of each start window ``starts`` (S, C, D): the manifold's ``start_styles`` when the
    windows are its own, else None (a restart then draws a style at random)."""
    if not num_styles(manifold) or given_frames is not None:
        return None
    styles = getattr(manifold, "start_styles", None)
    if styles is None:
        extra = getattr(manifold, "extra", None)
        styles = extra.get("start_styles") if isinstance(extra, dict) else None
    if styles is None:
        return None
    styles = torch.as_tensor(np.asarray(styles) if not isinstance(styles, torch.Tensor) else styles)
    if tuple(styles.shape) != (starts.shape[0],):
        return None
    return styles.to(device=device, dtype=torch.int64).clamp(0, num_styles(manifold) - 1)


DIVERGENCE_SCALE = 3.0  # a feature diverged beyond 3 x the data's envelope + DIVERGENCE_MARGIN_STD stds
DIVERGENCE_MARGIN_STD = 10.0
DIVERGENCE_FALLBACK_STD = 50.0  # models without a stored envelope (older checkpoints, hand-built manifolds)


def action_scale_of(manifold) -> float:
    """The latent bound a model's policies use (``extra["action_scale"]``, measured from its aggregate posterior
    by ``python -m characters.build`` / ``vae.stability``), else ``DEFAULT_ACTION_SCALE``."""
    extra = getattr(manifold, "extra", None)
    value = extra.get("action_scale") if isinstance(extra, dict) else None
    return DEFAULT_ACTION_SCALE if value is None else float(value)


def divergence_limits(manifold, device: torch.device) -> torch.Tensor:
    """(D,) |normalised feature| beyond which a character has left the data's manifold: 3 x the largest value the
    feature takes in the training data (``extra["feature_envelope"]``) + 10 standard deviations. The data's own
    tails (some features reach 20+ std in real mocap) stay well inside, and so do the brief excursions of a
    character holding an unusual latent (measured on Bandai-Namco: up to 1.35 x half this limit, then back); a
    runaway rollout grows without bound and crosses it within a few frames."""
    extra = getattr(manifold, "extra", None)
    envelope = extra.get("feature_envelope") if isinstance(extra, dict) else None
    d = int(manifold.frame_size)
    if envelope is None:
        return torch.full((d,), DIVERGENCE_FALLBACK_STD, device=device)
    envelope = torch.as_tensor(envelope, dtype=torch.float32, device=device).reshape(-1)
    if envelope.shape[0] != d:
        raise ValueError(f"the model's feature_envelope has {envelope.shape[0]} values for frames of {d}; the "
                         "checkpoint is damaged (retrain it)")
    return DIVERGENCE_SCALE * envelope + DIVERGENCE_MARGIN_STD


def frames_per_second(manifold, given: float | None) -> float:
    fps = given if given is not None else getattr(manifold, "fps", None)
    if fps is None:
        raise ValueError(
            "the manifold has no fps (a hand-built model does not know its data's frame rate): pass fps= "
            "to the environment (e.g. fps=30)"
        )
    fps = float(fps)
    if not fps > 0:
        raise ValueError(f"fps must be positive, got {fps}")
    return fps
