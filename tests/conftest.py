"""Shared test fixtures: one torch thread (2-core machine), paths to optional mocap data."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_MOCAP = REPO.parent / "shared" / "mocap"


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread():
    try:
        import torch
    except ImportError:
        yield
        return
    torch.set_num_threads(1)
    yield


@pytest.fixture(scope="session")
def shared_mocap() -> Path:
    """../shared/mocap, or skip the test where it is absent (it is never committed)."""
    if not SHARED_MOCAP.is_dir():
        pytest.skip("../shared/mocap is not present beside the checkout")
    return SHARED_MOCAP
