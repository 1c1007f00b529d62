"""ONNX Runtime sessions: which execution provider, and options tuned for batch-1 latency on a CPU.

Provider choice: ``device="cuda"`` needs ``CUDAExecutionProvider`` (the ``onnxruntime-gpu`` package and a
GPU); ``"cpu"`` uses ``CPUExecutionProvider``; ``"auto"`` tries CUDA when the installed ONNX Runtime offers
it and keeps whatever the session really got (ONNX Runtime falls back to the CPU when no GPU can be used).
``onnxruntime`` and ``onnxruntime-gpu`` share one folder: install exactly one (the GPU one also runs on CPUs).

CPU options: one intra-op thread by default (measured on a 2-core machine: the mixture decoder takes
~0.09 ms at batch 1 with 1 or 2 threads, and a second thread spins against the app's own work), sequential
execution, every graph optimisation.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

CPU = "CPUExecutionProvider"
CUDA = "CUDAExecutionProvider"
DEVICES = ("auto", "cpu", "cuda")
DEFAULT_THREADS = 1


def onnxruntime_available() -> bool:
    return importlib.util.find_spec("onnxruntime") is not None


def _ort():
    try:
        import onnxruntime
    except ImportError as e:
        raise ImportError(
            f"onnxruntime cannot be imported ({e}); install `onnxruntime` (CPU) or `onnxruntime-gpu` (CUDA) — "
            "exactly one of them — or use backend='torch'"
        ) from None
    return onnxruntime


def session_options(threads: int = DEFAULT_THREADS):
    """SessionOptions for low-latency inference on ``threads`` intra-op threads."""
    ort = _ort()
    if not isinstance(threads, int) or threads < 1:
        raise ValueError(f"threads must be a positive integer, got {threads!r}")
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return options


def providers_for(device: str) -> list[str]:
    """The providers to ask for on ``device`` ("auto" | "cpu" | "cuda")."""
    if device not in DEVICES:
        raise ValueError(f"device must be one of {', '.join(DEVICES)}, got {device!r}")
    available = _ort().get_available_providers()
    if device == "cpu":
        return [CPU]
    if CUDA in available:
        return [CUDA, CPU]
    if device == "cuda":
        raise RuntimeError(
            f"device='cuda' but this ONNX Runtime offers only {available}: install `onnxruntime-gpu` in place of "
            "`onnxruntime` (uninstall it first; they share one folder), or use device='cpu' or backend='torch'"
        )
    return [CPU]


def open_session(path: Path, device: str = "auto", threads: int = DEFAULT_THREADS):
    """An InferenceSession on ``path``; ``session.get_providers()[0]`` is the provider it really runs on."""
    ort = _ort()
    providers = providers_for(device)
    session = ort.InferenceSession(str(path), sess_options=session_options(threads), providers=providers)
    if device == "cuda" and session.get_providers()[0] != CUDA:
        raise RuntimeError(f"{path}: ONNX Runtime could not use the GPU (providers {session.get_providers()}); "
                           "check the CUDA/cuDNN libraries of onnxruntime-gpu, or use device='cpu'")
    return session
