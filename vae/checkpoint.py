"""The Motion VAE checkpoint file: config + weights + normalisation + skeleton, plain types only.

Layout (a dict written with ``torch.save``, read with ``torch.load(weights_only=True)``)::

    format              "mvae-checkpoint"
    version             1
    config              VAEConfig.to_dict()
    state_dict          model.state_dict() (includes the data_mean / data_std normalisation buffers)
    skeleton            Skeleton.to_dict()
    fps                 float, frames per second of the training data
    dataset_fingerprint str, MotionDataset.fingerprint() of the training data
    extra               dict of plain types (trainer metadata: epochs, losses, arguments ...)
    contacts            (optional) the foot contact channels, vae.contacts.ContactHead.to_dict()
"""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path

import torch

from common.atomic import atomic_write
from common.paths import portable_path
from mocap.pose_layout import PoseLayout
from mocap.skeleton import Skeleton
from vae.config import VAEConfig
from vae.contacts import ContactHead
from vae.manifold import MotionManifold
from vae.mixture_vae import PoseMixtureVAE
from vae.pose_vae import PoseVAE
from vae.vq_vae import PoseVQVAE

FORMAT = "mvae-checkpoint"
# What policies.checkpoint writes; named here (not imported) so the VAE package does not depend on policies.
POLICY_FORMAT = "mvae-policy"
VERSION = 1
MODEL_CLASSES: dict[str, type[MotionManifold]] = {"mixture": PoseMixtureVAE, "vae": PoseVAE, "vq": PoseVQVAE}
_PLAIN = (str, int, float, bool, type(None), torch.Tensor)
TRAIN_HINT = "python -m vae.train --data DATA.npz --out CKPT"


def build_model(config: VAEConfig) -> MotionManifold:
    """A fresh (randomly initialised) manifold of the kind ``config.model`` names."""
    return MODEL_CLASSES[config.model](config)


def _check_plain(value, where: str) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            if not isinstance(k, (str, int)):
                raise TypeError(f"{where}: key {k!r} is not a str/int; checkpoints hold plain types only")
            _check_plain(v, f"{where}[{k!r}]")
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            _check_plain(v, f"{where}[{i}]")
    elif not isinstance(value, _PLAIN):
        raise TypeError(
            f"{where} is a {type(value).__name__}; checkpoints hold plain types only "
            "(dict, list, str, int, float, bool, None, tensors) so they load with weights_only=True"
        )


def _check_skeleton(config: VAEConfig, skeleton: Skeleton, where: str) -> None:
    try:
        joints = PoseLayout.from_frame_size(config.frame_size).num_joints
    except ValueError as e:
        raise ValueError(f"{where}: {e}") from None
    if joints != skeleton.num_joints:
        raise ValueError(
            f"{where}: the model's frame_size {config.frame_size} means {joints} joints but the skeleton has "
            f"{skeleton.num_joints}; the model and the dataset do not belong together"
        )


def save_checkpoint(path, model: MotionManifold, *, skeleton: Skeleton, fps: float, dataset_fingerprint: str,
                    extra: dict | None = None) -> None:
    """Write a checkpoint atomically (temp file in the same folder, fsync, rename over ``path``)."""
    path = Path(path)
    _check_skeleton(model.config, skeleton, str(path))
    extra = dict(extra or {})
    _check_plain(extra, "extra")
    payload = {
        "format": FORMAT,
        "version": VERSION,
        "config": model.config.to_dict(),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "skeleton": skeleton.to_dict(),
        "fps": float(fps),
        "dataset_fingerprint": str(dataset_fingerprint),
        "extra": extra,
    }
    head = getattr(model, "contacts", None)
    if head is not None:
        payload["contacts"] = head.to_dict()
    with atomic_write(path) as f:
        torch.save(payload, f)


def write_contacts(ckpt: dict, head: ContactHead, path) -> None:
    """Write the checkpoint dict ``ckpt`` (from :func:`read_checkpoint`) with the contact channels ``head``, atomically."""
    ckpt = {**ckpt, "contacts": head.to_dict()}
    with atomic_write(Path(path)) as f:
        torch.save(ckpt, f)


def read_checkpoint(path) -> dict:
    """The validated checkpoint dict (see the module docstring), tensors on the CPU."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such checkpoint; train one with `{TRAIN_HINT}`")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        # The weights-only unpickler names a class it refused as an "Unsupported global"; any other complaint
        # (an unknown opcode, a truncated stream) means the bytes are not a torch.save file at all.
        if "Unsupported global" in str(e):
            raise ValueError(
                f"{path}: holds pickled Python objects (e.g. a whole nn.Module saved by the EA reference code "
                f"with torch.save(model)), which are not loaded for safety. Convert it to an mvae-checkpoint "
                f"(state_dict + config) or retrain with `{TRAIN_HINT}`"
            ) from None
        raise ValueError(f"{path}: not a PyTorch checkpoint file; pass a Motion VAE checkpoint written by "
                         f"`{TRAIN_HINT}`") from None
    except Exception as e:  # noqa: BLE001 - any reader error means the same thing to the user
        # torch.save writes a zip archive: the reader's complaint helps only when the file is one (damaged).
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        detail = f" (a damaged archive: {first.split('. ')[0]})" if zipfile.is_zipfile(path) else ""
        raise ValueError(f"{path}: not a PyTorch checkpoint file{detail}; pass a Motion VAE checkpoint written "
                         f"by `{TRAIN_HINT}`") from None
    if isinstance(ckpt, dict) and ckpt.get("format") == POLICY_FORMAT:
        raise ValueError(f"{path}: a policy file ({POLICY_FORMAT}), not a Motion VAE checkpoint; pass the VAE "
                         f"checkpoint the policy drives (e.g. a character's vae.pt, or one from `{TRAIN_HINT}`)")
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise ValueError(
            f"{path}: not an mvae-checkpoint (no 'format': '{FORMAT}' entry); if it is a bare state_dict or a "
            f"model from the EA reference code, retrain with `{TRAIN_HINT}`"
        )
    if ckpt.get("version") != VERSION:
        raise ValueError(f"{path}: checkpoint version {ckpt.get('version')!r}; this code reads version {VERSION}")
    missing = [k for k in ("config", "state_dict", "skeleton", "fps", "dataset_fingerprint") if k not in ckpt]
    if missing:
        raise ValueError(f"{path}: checkpoint lacks {missing}; it is damaged, retrain with `{TRAIN_HINT}`")
    return ckpt


def load_manifold(path, device: str | torch.device = "cpu") -> MotionManifold:
    """Rebuild the saved manifold in eval mode with ``skeleton``, ``fps``, ``dataset_fingerprint``, ``extra`` set."""
    path = Path(path)
    ckpt = read_checkpoint(path)
    try:
        config = VAEConfig.from_dict(ckpt["config"])
    except (TypeError, ValueError) as e:
        raise ValueError(f"{path}: bad config: {e}") from None
    skeleton = Skeleton.from_dict(ckpt["skeleton"])
    _check_skeleton(config, skeleton, str(path))
    model = build_model(config)
    try:
        model.load_state_dict(ckpt["state_dict"])
    except RuntimeError as e:
        raise ValueError(f"{path}: weights do not fit the saved config ({str(e).splitlines()[0]}); "
                         "the checkpoint is damaged") from None
    model.skeleton = skeleton
    model.fps = float(ckpt["fps"])
    model.dataset_fingerprint = str(ckpt["dataset_fingerprint"])
    model.extra = ckpt.get("extra", {})
    model.style_names = [str(s) for s in model.extra.get("style_names", [])]
    if ckpt.get("contacts") is not None:
        condition_size = config.num_condition_frames * config.frame_size
        model.set_contacts(ContactHead.from_dict(ckpt["contacts"], config.decoder_latent_size, condition_size,
                                                 str(path)))
    return model.to(device).eval()


# Training-only state that a shipped model does not need (Adam moments are twice the weights' size).
TRAINING_ONLY_KEYS = ("optimizer", "rng_state")
# Not needed to run the model either, but only present in runs with the adversarial loss (so not a resume requirement).
SHIP_DROPS = (*TRAINING_ONLY_KEYS, "adversarial")


def slim_checkpoint(src, dst, extra: dict | None = None) -> dict:
    """Copy a checkpoint without its training-only state (a shipped model), adding ``extra`` entries (e.g. the
    measured ``action_scale``); returns the sizes in bytes."""
    ckpt = read_checkpoint(src)
    ckpt["extra"] = {k: v for k, v in ckpt["extra"].items() if k not in SHIP_DROPS}
    ckpt["extra"].update(extra or {})
    ckpt["extra"]["slimmed_from"] = portable_path(str(src))
    config = ckpt["extra"].get("train_config")
    if isinstance(config, dict):  # no machine paths in a shipped file
        ckpt["extra"]["train_config"] = {k: portable_path(v) for k, v in config.items()}
    with atomic_write(dst) as f:
        torch.save(ckpt, f)
    return {"src_bytes": Path(src).stat().st_size, "dst_bytes": Path(dst).stat().st_size}

