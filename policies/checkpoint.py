"""The policy file: what ``train_policy.py`` writes and ``load_policy`` reads (``torch.load(weights_only=True)``).

Layout (plain types and tensors only)::

    format            "mvae-policy"
    version           1
    task              str, the environment task it was trained on ("target", "joystick", ...)
    config            policies.network.make_config(...) dict (sizes, discrete, action_scale, ...)
    state_dict        PolicyModule.state_dict() (actor, critic, log_std, obs_rms.{mean,var,count}), CPU tensors
    obs_mean, obs_var (O,) the observation normalisation (also inside state_dict; here for other readers)
    vae_fingerprint   str, the manifold's ``dataset_fingerprint`` (which data its latent space was learnt from)
    vae_weights       str, sha256 prefix of the manifold's weights (which VAE exactly: latents differ per training)
    vae_path          str or None, the VAE checkpoint it was trained with, relative to the policy file's folder
                      (inside a character bundle ``../vae.pt``); tools use it when no VAE is given
    prior_path        str or None, a prior-residual policy's code prior file (vae.prior), relative like vae_path
    prior_weights     str, sha256 prefix of that prior's weights ("" without)
    train_args        dict, the TrainArgs of the run
    stats             dict, training summary (steps, wall time, last metrics)

A policy only steers the VAE it was trained with: sizes that do not fit are an error
(:func:`check_policy_fits`); the same sizes but another VAE (fingerprint / weights differ) is a warning,
or an error with ``strict=True``.
"""

from __future__ import annotations

import json
import os
import pickle
import warnings
from pathlib import Path

import torch

from common.atomic import atomic_write
from common.fingerprint import weights_fingerprint
from common.paths import portable_path
from policies.network import CONFIG_KEYS, PolicyModule

# Environment options that are the trainer's business, not the task's (the app and the evaluation keep their own):
# a policy trained on 10-second episodes, or on PathFollow's offset starts, is evaluated on the task's standard ones
# like any other.
TRAINING_ONLY_OPTIONS = ("max_episode_steps", "autoreset_mode", "array_backend", "action_scale", "style_change_s",
                         "foot_slide_weight", "divergence_penalty", "device", "start_offset")
FORMAT = "mvae-policy"
VERSION = 1
TRAIN_HINT = "python train_policy.py --task TASK --vae VAE.pt --out POLICY.pt"


class PolicyMismatchWarning(UserWarning):
    """The policy was trained on another VAE than the one it is asked to drive."""


def manifold_fingerprint(manifold) -> str:
    """The manifold's dataset fingerprint, or a name for hand-built stand-ins (e.g. "ToyManifold")."""
    value = getattr(manifold, "dataset_fingerprint", None)
    return str(value) if value else type(manifold).__name__


def save_policy(path, policy: PolicyModule, *, manifold, train_args: dict | None = None,
                stats: dict | None = None, vae_path=None, code_prior=None, prior_path=None) -> None:
    """Write the policy file atomically (temp file in the same folder, fsync, os.replace). ``vae_path``: the VAE
    checkpoint file it steers, ``prior_path`` the code prior file (``code_prior`` the loaded prior) of a
    prior-residual policy (both recorded relative to the policy's folder; no machine paths)."""
    state = {k: v.detach().cpu().clone() for k, v in policy.state_dict().items()}
    payload = {
        "format": FORMAT,
        "version": VERSION,
        "task": policy.task,
        "config": dict(policy.config),
        "state_dict": state,
        "obs_mean": state["obs_rms.mean"],
        "obs_var": state["obs_rms.var"],
        "vae_fingerprint": manifold_fingerprint(manifold),
        "vae_weights": weights_fingerprint(manifold),
        "train_args": {k: portable_path(v) for k, v in (train_args or {}).items()},
        "stats": dict(stats or {}),
        "vae_path": _relative(vae_path, path),
        "prior_path": _relative(prior_path, path),
        "prior_weights": weights_fingerprint(code_prior) if isinstance(code_prior, torch.nn.Module) else "",
    }
    atomic_torch_save(payload, path)


def _relative(target, policy_path) -> str | None:
    """``target`` relative to the policy file's folder (None stays None)."""
    if target is None:
        return None
    return os.path.relpath(Path(target).resolve(), Path(policy_path).resolve().parent)


def atomic_torch_save(payload: dict, path) -> None:
    """``torch.save`` all at once or not at all (see :mod:`common.atomic`)."""
    with atomic_write(path) as f:
        torch.save(payload, f)


def read_policy_checkpoint(path) -> dict:
    """The validated policy dict (see the module docstring), tensors on the CPU."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such policy file; train one with `{TRAIN_HINT}`")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        if "Unsupported global" in str(e):
            raise ValueError(f"{path}: holds pickled Python objects (e.g. a whole module saved with torch.save); "
                             f"policies load with weights_only=True only: write it with `{TRAIN_HINT}`") from None
        raise ValueError(f"{path}: not a readable PyTorch file; expected a policy from `{TRAIN_HINT}`") from None
    except Exception as e:  # noqa: BLE001 - any reader error means the same thing to the user
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise ValueError(f"{path}: not a readable PyTorch file ({first}); expected a policy from `{TRAIN_HINT}`") \
            from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        kind = "a Motion VAE checkpoint" if isinstance(ckpt, dict) and ckpt.get("format") == "mvae-checkpoint" \
            else "not an mvae-policy file"
        raise ValueError(f"{path}: {kind} (no 'format': '{FORMAT}' entry); pass a policy written by `{TRAIN_HINT}`")
    if ckpt.get("version") != VERSION:
        raise ValueError(f"{path}: policy file version {ckpt.get('version')!r}; this code reads version {VERSION}")
    missing = [k for k in ("task", "config", "state_dict", "vae_fingerprint") if k not in ckpt]
    if missing:
        raise ValueError(f"{path}: the policy file lacks {missing}; it is truncated or from another tool")
    config = ckpt["config"]
    missing = [k for k in CONFIG_KEYS if not isinstance(config, dict) or k not in config]
    if missing:
        raise ValueError(f"{path}: the policy config lacks {missing}")
    return ckpt


def load_policy(path, device: str | torch.device = "cpu") -> PolicyModule:
    """A policy file -> PolicyModule in eval mode on ``device`` (see the module docstring for errors)."""
    ckpt = read_policy_checkpoint(path)
    try:
        policy = PolicyModule(ckpt["config"])
        policy.load_state_dict(ckpt["state_dict"])
    except (RuntimeError, ValueError, TypeError) as e:
        raise ValueError(f"{path}: the weights do not fit the policy config ({str(e).splitlines()[0]})") from None
    policy.vae_fingerprint = str(ckpt["vae_fingerprint"])
    policy.vae_weights = str(ckpt.get("vae_weights", ""))
    policy.train_args = dict(ckpt.get("train_args", {}))
    policy.source = str(path)
    folder = Path(path).resolve().parent
    recorded = ckpt.get("vae_path")
    policy.vae_path = None if not recorded else (folder / recorded).resolve()
    recorded = ckpt.get("prior_path")
    policy.prior_path = None if not recorded else (folder / recorded).resolve()
    policy.prior_weights = str(ckpt.get("prior_weights", ""))
    return policy.to(device).eval()


def trained_vae(policy) -> Path:
    """The VAE checkpoint a loaded policy was trained with (its ``vae_path``); a clear error when the file
    records none (older files) or it is not there any more."""
    where = getattr(policy, "source", "policy")
    path = getattr(policy, "vae_path", None)
    if path is None:
        raise FileNotFoundError(f"{where} does not record the VAE it was trained with (made by an older version); "
                                "pass the VAE checkpoint explicitly (--vae CKPT)")
    if not Path(path).is_file():
        raise FileNotFoundError(f"{where} was trained with the VAE {path}, which is not there any more; pass the "
                                "VAE checkpoint explicitly (--vae CKPT)")
    return Path(path)


def trained_prior(policy) -> Path | None:
    """The code prior file a prior-residual policy was trained with (None for other policies); a clear error when
    it is not there any more."""
    if not getattr(policy, "prior_residual", False):
        return None
    where = getattr(policy, "source", "policy")
    path = getattr(policy, "prior_path", None)
    if path is None or not Path(path).is_file():
        raise FileNotFoundError(f"{where} steers through a code prior ({path or 'not recorded'}) that is not there; "
                                "pass the prior file explicitly (--prior PRIOR.pt)")
    return Path(path)


def check_prior_matches(policy, code_prior) -> None:
    """Raise ValueError when a prior-residual policy gets no prior, another prior, or a plain policy gets one."""
    where = getattr(policy, "source", "policy")
    if not getattr(policy, "prior_residual", False):
        return
    if code_prior is None:
        raise ValueError(f"{where}: a prior-residual policy needs its code prior (--prior PRIOR.pt, or the character's "
                         "prior.pt)")
    recorded = getattr(policy, "prior_weights", "")
    if recorded and isinstance(code_prior, torch.nn.Module) and weights_fingerprint(code_prior) != recorded:
        raise ValueError(f"{where}: trained through another code prior (weights {recorded}, this one's "
                         f"{weights_fingerprint(code_prior)}); its residual means nothing over this prior's logits: "
                         f"retrain it ({TRAIN_HINT} --prior PRIOR.pt)")


def policy_env_options(policy) -> dict:
    """The environment options the policy was trained with (its TrainArgs ``env_options``), as a dict."""
    options = getattr(policy, "train_args", {}).get("env_options", "{}")
    return json.loads(options) if isinstance(options, str) else dict(options or {})


def policy_task_options(policy) -> dict:
    """The task options of the policy's training (:func:`policy_env_options`) without the trainer's own
    (``TRAINING_ONLY_OPTIONS``): what the app and the evaluation set up, keeping their own episode length."""
    return {k: v for k, v in policy_env_options(policy).items() if k not in TRAINING_ONLY_OPTIONS}


def expected_obs_size(policy, manifold) -> int | None:
    """The observation size the policy's task (with its training options) has on ``manifold``; None for a
    module that names no task of the registry (a hand-made module following the policy contract)."""
    from envs.registry import task_names
    from envs.vec_env import observation_size

    task = getattr(policy, "task", None)
    if task not in task_names():
        return None
    prior_logits = policy.num_actions if getattr(policy, "prior_residual", False) else 0  # the prior's K log-probs
    return observation_size(manifold, task, policy_env_options(policy)) + prior_logits


def check_policy_fits(policy: PolicyModule, manifold, obs_size: int | None = None, *, strict: bool = False) -> None:
    """Raise ValueError when the policy cannot drive ``manifold`` (sizes); warn (or raise, strict) on another VAE.

    ``obs_size``: the environment's observation size (condition frames + task features), when known.
    """
    where = getattr(policy, "source", "policy")
    discrete = bool(getattr(manifold, "discrete", False))
    if policy.discrete != discrete:
        kinds = {True: "discrete (VQ code indices)", False: "Gaussian (latent vectors)"}
        raise ValueError(f"{where}: the policy is {kinds[policy.discrete]} but the VAE is {kinds[discrete]}; "
                         f"use a policy trained on this VAE ({TRAIN_HINT})")
    if discrete and policy.num_actions != int(manifold.num_codes):
        raise ValueError(f"{where}: the policy chooses among {policy.num_actions} codes but the VAE has "
                         f"{manifold.num_codes}; use a policy trained on this VAE ({TRAIN_HINT})")
    if not discrete and policy.action_size != int(manifold.latent_size):
        raise ValueError(f"{where}: the policy's action_size {policy.action_size} differs from the VAE's latent_size "
                         f"{manifold.latent_size}; use a policy trained on this VAE ({TRAIN_HINT})")
    if obs_size is not None and policy.obs_size != int(obs_size):
        raise ValueError(f"{where}: the policy expects observations of size {policy.obs_size} but the "
                         f"'{policy.task}' environment on this VAE gives {obs_size} (another task, task options or "
                         f"frame size); use a policy trained for it ({TRAIN_HINT})")
    trained_on = getattr(policy, "vae_fingerprint", None)
    weights = getattr(policy, "vae_weights", "")
    current, current_weights = manifold_fingerprint(manifold), weights_fingerprint(manifold)
    problem = None
    if trained_on is not None and trained_on != current:
        problem = (f"the policy was trained on a VAE of other data (dataset fingerprint {trained_on}, this VAE's is "
                   f"{current})")
    elif weights and current_weights and weights != current_weights:
        problem = (f"the policy was trained on another VAE (weights {weights}, this one {current_weights}); "
                   "each VAE training gives its latents other meanings")
    if problem:
        message = f"{where}: {problem}; it will steer this one poorly - retrain it ({TRAIN_HINT})"
        if strict:
            raise ValueError(message)
        warnings.warn(message, PolicyMismatchWarning, stacklevel=2)
