"""Fingerprints that tie exported ONNX graphs to the checkpoints and weights they came from.

``file_fingerprint(path)`` describes a checkpoint file (sha256 of its bytes, size, mtime): the export cache
reuses graphs only while all of these match. ``weights_fingerprint(module)`` hashes a module's state
(names, dtypes, shapes and values, in state_dict order), so graphs exported from an in-memory model can be
matched against it too.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch

_CHUNK = 1 << 20


def file_fingerprint(path) -> dict:
    """{"path", "sha256", "size", "mtime_ns"} of a file."""
    path = Path(path)
    stat = path.stat()
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(_CHUNK), b""):
            h.update(block)
    return {"path": str(path.resolve()), "sha256": h.hexdigest(), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def same_file(recorded: dict | None, current: dict) -> bool:
    """True when a recorded file fingerprint still describes the file (content, size and mtime)."""
    if not recorded:
        return False
    return all(recorded.get(k) == current[k] for k in ("sha256", "size", "mtime_ns"))


def weights_fingerprint(module: torch.nn.Module) -> str:
    """Short sha256 over a module's state_dict (names, dtypes, shapes, values)."""
    h = hashlib.sha256()
    for name, value in module.state_dict().items():
        value = value.detach().cpu().contiguous()
        h.update(f"{name}|{value.dtype}|{tuple(value.shape)}|".encode())
        h.update(value.reshape(-1).view(torch.uint8).numpy().tobytes() if value.numel() else b"")  # 0-d tensors too
    return h.hexdigest()[:16]
