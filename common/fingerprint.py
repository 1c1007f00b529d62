"""Fingerprints: what a file or a module's weights are, by content only (never paths or times).

``file_fingerprint(path)`` (sha256 and size of the bytes) ties exported ONNX graphs to the checkpoint they came
from, so a fresh clone reuses a shipped export; ``weights_fingerprint(module)`` hashes a module's state (names,
dtypes, shapes and values, in state_dict order; "" for an object without one), so a policy remembers exactly
which VAE it was trained on.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch

_CHUNK = 1 << 20


def file_fingerprint(path) -> dict:
    """{"sha256", "size"} of a file's bytes."""
    path = Path(path)
    h = hashlib.sha256()
    size = 0
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(_CHUNK), b""):
            h.update(block)
            size += len(block)
    return {"sha256": h.hexdigest(), "size": size}


def same_file(recorded: dict | None, current: dict) -> bool:
    """True when a recorded file fingerprint still describes the file's content."""
    if not recorded:
        return False
    return all(recorded.get(k) == current[k] for k in ("sha256", "size"))


def weights_fingerprint(module) -> str:
    """Short sha256 over a module's state_dict (names, dtypes, shapes, values); "" without a state_dict."""
    state_dict = getattr(module, "state_dict", None)
    if state_dict is None:
        return ""
    h = hashlib.sha256()
    for name, value in state_dict().items():
        value = value.detach().cpu().contiguous()
        h.update(f"{name}|{value.dtype}|{tuple(value.shape)}|".encode())
        h.update(value.reshape(-1).view(torch.uint8).numpy().tobytes() if value.numel() else b"")  # 0-d too
    return h.hexdigest()[:16]

