"""What the controller runs: a motion manifold and optionally a policy, from checkpoint files or modules.

``resolve_vae(vae)`` accepts a checkpoint path (loaded with ``vae.load_manifold``) or a manifold module;
``resolve_policy(policy, manifold)`` a policy checkpoint path (loaded with ``policies.load_policy``, imported
only here, so the controller works without the policies package until a policy is asked for) or a policy
module following the policy contract: ``obs_size``, ``action_size``, ``discrete``, ``num_actions`` and
``forward(obs_raw (B, O)) -> action`` ((B, A) float in [-1, 1], or (B,) int64 codes for discrete policies).

A Gaussian policy's action is scaled into a latent by ``action_scale``: taken from the argument, else the
module's ``action_scale`` attribute, else the policy checkpoint's ``config["action_scale"]``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from common.fingerprint import file_fingerprint, weights_fingerprint

POLICY_HINT = "train one with the policies package (PPO on an envs task), which writes an mvae-policy checkpoint"


@dataclass
class Source:
    """A loaded module and where it came from."""

    module: nn.Module
    path: Path | None  # the checkpoint file, None for an in-memory module
    file: dict | None  # controller.fingerprint.file_fingerprint of the file
    weights: str  # controller.fingerprint.weights_fingerprint of the module

    def describe(self) -> dict:
        return {"file": self.file, "weights_sha256": self.weights}


def _is_path(x) -> bool:
    return isinstance(x, (str, os.PathLike))


def resolve_vae(vae, device: str | torch.device = "cpu") -> Source:
    """A checkpoint path or a manifold module -> Source (module in eval mode)."""
    if _is_path(vae):
        from vae import load_manifold  # errors name the file and how to train one

        path = Path(vae)
        manifold = load_manifold(path, device=device)
        return Source(manifold, path, file_fingerprint(path), weights_fingerprint(manifold))
    missing = [a for a in ("frame_size", "latent_size", "discrete", "num_condition_frames", "data_mean", "decode")
               if not hasattr(vae, a)]
    if missing or not isinstance(vae, nn.Module):
        raise TypeError(f"vae= is a {type(vae).__name__} lacking {missing or 'nn.Module'}; pass a checkpoint path "
                        "or a vae.MotionManifold")
    return Source(vae.eval(), None, None, weights_fingerprint(vae))


def _load_policy_file(path: Path, device) -> nn.Module:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such policy checkpoint; {POLICY_HINT}")
    try:
        from policies import load_policy
    except ImportError as e:
        raise ImportError(
            f"a policy ({path}) was given, but policies.load_policy cannot be imported ({e}); the policies package "
            "is missing or incomplete in this installation: export/run without a policy, or install it"
        ) from None
    return load_policy(path, device=device)


def _checkpoint_action_scale(path: Path) -> float | None:
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    config = ckpt.get("config") if isinstance(ckpt, dict) else None
    value = config.get("action_scale") if isinstance(config, dict) else None
    return None if value is None else float(value)


def resolve_policy(policy, manifold, action_scale: float | None = None,
                   device: str | torch.device = "cpu") -> tuple[Source, float | None]:
    """A policy checkpoint path or module -> (Source, action_scale); action_scale is None for discrete policies."""
    path = Path(policy) if _is_path(policy) else None
    module = _load_policy_file(path, device) if path is not None else policy
    if not isinstance(module, nn.Module):
        raise TypeError(f"policy= is a {type(module).__name__}; pass a policy checkpoint path or an nn.Module")
    where = str(path) if path is not None else "policy"
    missing = [a for a in ("obs_size", "discrete") if not hasattr(module, a)]
    if missing:
        raise TypeError(f"{where}: the policy lacks {missing} (see the policy contract: obs_size, action_size, "
                        "discrete, num_actions)")
    from policies.checkpoint import check_policy_fits, expected_obs_size

    if not hasattr(module, "source"):
        module.source = where
    check_policy_fits(module, manifold, expected_obs_size(module, manifold), strict=True)
    module.eval()
    if manifold.discrete:
        scale = None
    else:
        scale = action_scale if action_scale is not None else getattr(module, "action_scale", None)
        if scale is None and path is not None:
            scale = _checkpoint_action_scale(path)
        if scale is None:
            raise ValueError(f"{where}: no action_scale (the latent is action * action_scale): the policy "
                             "checkpoint's config lacks 'action_scale'; pass it explicitly (--action-scale / "
                             "action_scale=)")
        scale = float(scale)
        if not scale > 0:
            raise ValueError(f"{where}: action_scale must be positive, got {scale}")
    fingerprint = file_fingerprint(path) if path is not None else None
    return Source(module, path, fingerprint, weights_fingerprint(module)), scale
