"""The export cache: ONNX graphs kept beside the checkpoint they came from, reused while it is unchanged.

``cached_export(vae_path, policy_path)`` returns a folder holding ``manifest.json`` and the graphs of
``controller.export``. The folder is ``<checkpoint>.onnx/`` beside the policy checkpoint when there is one
(a policy belongs to one manifold), else beside the VAE checkpoint. It is reused when its manifest records
the same export format and, for every source checkpoint, the same content (sha256 and size: never paths or
times, so a fresh clone reuses a shipped export); otherwise the
graphs are exported into a fresh temporary folder beside it, which then replaces the old one with renames
(never a half-written cache folder, and a concurrent reader keeps a complete one). Where the checkpoint's
folder is not writable the graphs go to a temporary folder instead, removed when the returned handle is
garbage collected.

A VQ model's code prior has its own cache, ``cached_prior_export(vae_path, prior_path)``: ``<prior>.onnx/`` beside
the prior file (``controller.export.export_prior_onnx``: ``prior_step.onnx`` and its manifest), reused while the
manifest records the content of both files, replaced the same way.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import controller.export as exporter
from common.atomic import default_mode
from common.fingerprint import file_fingerprint, same_file


def cache_dir_for(vae_path, policy_path=None) -> Path:
    source = Path(policy_path if policy_path is not None else vae_path)
    return source.with_name(source.name + ".onnx")


def cache_is_valid(directory: Path, vae_path, policy_path=None, action_scale: float | None = None) -> bool:
    """True when ``directory`` holds a complete export of exactly these checkpoint files (and action scale)."""
    manifest = exporter.read_manifest(directory)
    if manifest is None:
        return False
    if action_scale is not None and manifest.get("action_scale") != float(action_scale):
        return False
    sources = manifest.get("sources") or {}
    vae_rec = (sources.get("vae") or {}).get("file")
    if not same_file(vae_rec, file_fingerprint(vae_path)):
        return False
    pol_rec = (sources.get("policy") or {}).get("file") if sources.get("policy") else None
    if policy_path is None:
        if pol_rec is not None:
            return False
    elif not same_file(pol_rec, file_fingerprint(policy_path)):
        return False
    return all((directory / f).is_file() for f in manifest.get("files", {}).values())


def _swap_in(fresh: Path, target: Path) -> None:
    """Rename ``fresh`` to ``target``, moving an old ``target`` aside first (renames only)."""
    old = None
    if target.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old.", dir=target.parent))
        os.replace(target, old / "export")
    try:
        os.replace(fresh, target)
    except OSError:
        if not target.exists():  # put the old export back rather than leave nothing
            if old is not None:
                os.replace(old / "export", target)
            raise
        # another process swapped a folder in at the same moment: keep theirs
        shutil.rmtree(fresh, ignore_errors=True)
    finally:
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)


class ExportHandle:
    """The folder with the graphs; owns (and removes) it when it is a temporary one."""

    def __init__(self, path: Path, temporary: tempfile.TemporaryDirectory | None = None, reused: bool = False):
        self.path = Path(path)
        self.reused = reused
        self._temporary = temporary

    def __repr__(self) -> str:
        return f"ExportHandle({str(self.path)!r}, reused={self.reused}, temporary={self._temporary is not None})"


def temporary_export(vae, policy=None, action_scale: float | None = None) -> ExportHandle:
    """Export into a fresh temporary folder (for in-memory models, or where nothing beside the file is writable)."""
    return _temporary(lambda folder: exporter.export_onnx(vae, folder, policy, action_scale=action_scale))


def cached_export(vae_path, policy_path=None, action_scale: float | None = None) -> ExportHandle:
    """The cache folder for these checkpoints, (re)exported when stale (see the module docstring)."""
    vae_path = Path(vae_path)
    target = cache_dir_for(vae_path, policy_path)
    if cache_is_valid(target, vae_path, policy_path, action_scale):
        return ExportHandle(target, reused=True)
    return _export_into(target, lambda folder: exporter.export_onnx(vae_path, folder, policy_path,
                                                                     action_scale=action_scale))


def _export_into(target: Path, export) -> ExportHandle:
    """``export(folder)`` into a fresh folder beside ``target`` swapped in for it; into a temporary folder where
    nothing beside it can be written."""
    try:
        fresh = Path(tempfile.mkdtemp(prefix=f".{target.name}.new.", dir=target.parent))
    except OSError:
        return _temporary(export)
    try:
        os.chmod(fresh, default_mode(directory=True))
        export(fresh)
        _swap_in(fresh, target)
    except OSError:
        shutil.rmtree(fresh, ignore_errors=True)
        return _temporary(export)
    except BaseException:
        shutil.rmtree(fresh, ignore_errors=True)
        raise
    return ExportHandle(target)


def _temporary(export) -> ExportHandle:
    tmp = tempfile.TemporaryDirectory(prefix="mvae-onnx-")
    export(tmp.name)
    return ExportHandle(Path(tmp.name), temporary=tmp)


# ---- the code prior ---------------------------------------------------------------------------------------
def prior_cache_dir_for(prior_path) -> Path:
    source = Path(prior_path)
    return source.with_name(source.name + ".onnx")


def prior_cache_is_valid(directory: Path, vae_path, prior_path) -> bool:
    """True when ``directory`` holds a complete prior export of exactly these two files."""
    manifest = exporter.read_prior_manifest(directory)
    if manifest is None:
        return False
    sources = manifest.get("sources") or {}
    for name, path in (("vae", vae_path), ("prior", prior_path)):
        if not same_file((sources.get(name) or {}).get("file"), file_fingerprint(path)):
            return False
    return all((directory / f).is_file() for f in manifest.get("files", {}).values())


def cached_prior_export(vae_path, prior_path) -> ExportHandle:
    """The prior's cache folder, (re)exported when stale (see the module docstring)."""
    target = prior_cache_dir_for(prior_path)
    if prior_cache_is_valid(target, vae_path, prior_path):
        return ExportHandle(target, reused=True)
    return _export_into(target, lambda folder: exporter.export_prior_onnx(vae_path, prior_path, folder))


def temporary_prior_export(vae, prior) -> ExportHandle:
    """A prior export into a fresh temporary folder (in-memory models)."""
    return _temporary(lambda folder: exporter.export_prior_onnx(vae, prior, folder))
