"""Inference on a GPU: ONNX Runtime's CUDA provider against torch on CUDA (and ONNX Runtime on the CPU), same run.

The model of ``benchmarks.bench_inference`` (full-size PoseMixtureVAE, paper-size policy, random weights), exported
once; per backend (``controller.make_backend``: what the app and a library user call, CPU tensors in and out for ONNX
Runtime, CUDA tensors for torch), ms per ``control`` (policy + decode) call at batch 1 and 1,024, the backends
taking turns ``--repeats`` times; min / median / max. Prints ONE JSON line; without a CUDA device, or without the
CUDA provider in the installed ONNX Runtime (``onnxruntime-gpu``), it prints ``{"error": ...}`` saying which and
exits with status 3::

    .venv/bin/python -m benchmarks.bench_gpu_inference [--repeats 10] [--calls 100]
"""

from __future__ import annotations

import argparse
import tempfile

import torch

from benchmarks.bench_inference import ACTION_SCALE, OBS, D, ReferencePolicy
from benchmarks.common import context, emit, interleaved, spread
from controller.export import export_onnx
from controller.runtime import make_backend
from vae import PoseMixtureVAE, VAEConfig

BATCHES = (1, 1024)


def unavailable() -> str | None:
    """Why this cannot run here, or None."""
    if not torch.cuda.is_available():
        return (f"torch {torch.__version__} sees no CUDA device (a CPU build of torch, or no GPU): install a CUDA "
                "build of torch into .venv on a machine with a GPU")
    from controller.sessions import CUDA, providers_for

    try:
        providers_for("cuda")
    except (RuntimeError, ImportError) as e:
        return f"ONNX Runtime has no {CUDA}: {e}"
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=10, help="turns of every backend")
    parser.add_argument("--calls", type=int, default=100, help="calls per turn")
    args = parser.parse_args(argv)
    why = unavailable()
    if why is not None:
        emit({"benchmark": "gpu_inference", "error": why})
        return 3
    torch.manual_seed(0)
    manifold = PoseMixtureVAE(VAEConfig(frame_size=D)).eval()
    data = torch.randn(1000, D) * torch.rand(D) * 2 + torch.randn(D)
    manifold.set_normalization(data.mean(0), data.std(0))
    policy = ReferencePolicy().eval()
    result: dict = {"benchmark": "gpu_inference", "gpu": torch.cuda.get_device_name(), "action_scale": ACTION_SCALE}
    with tempfile.TemporaryDirectory() as folder:
        export_onnx(manifold, folder, policy, timing=False)
        quiet = {"export_dir": folder, "verbose": False}
        backends = {"onnx_cuda": make_backend(manifold, policy, backend="onnx", device="cuda", **quiet),
                    "onnx_cpu": make_backend(manifold, policy, backend="onnx", device="cpu", **quiet)}
        result["providers"] = {name: b.provider for name, b in backends.items()}
        backends["torch_cuda"] = make_backend(manifold.to("cuda"), policy.to("cuda"), backend="torch", device="cuda",
                                              verbose=False)
        for b in BATCHES:
            obs, cond = torch.randn(b, OBS), data[torch.arange(b) % len(data)].contiguous()
            inputs = {name: (obs.cuda(), cond.cuda()) if name.startswith("torch") else (obs, cond) for name in backends}
            fns = {name: (lambda backend=backend, x=inputs[name]: backend.control(*x)) for name, backend in backends.items()}
            seconds = interleaved(fns, args.repeats, calls=args.calls, sync=torch.cuda.synchronize)
            for name, values in seconds.items():
                result[f"control_b{b}_ms_{name}"] = spread([1e3 * s for s in values])
    result.update(context())
    emit(result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
