"""Runtime inference speed: one frame of policy + decoder (raw observation and condition in, raw frame out),
with torch eager, torch.jit.trace+freeze and ONNX Runtime on the CPU, measured in the same run.

Model: the full-size PoseMixtureVAE (D=267, Z=32, 6 experts) and a reference-size policy stand-in
(269 -> 256 -> 256 -> 256 -> 32 MLP with observation normalisation and tanh, as the paper's actor); the weights
are random (timing does not depend on them). Per implementation:

* ``*_b1_ms``: ms per call at one character (min / median / max over many calls, implementations interleaved
  so background load hits all alike): ``frame`` = policy + decode with (de)normalisation, ``decoder`` =
  decode only (``step``);
* ``*_b256_fps``: frames per second at 256 characters.

ONNX Runtime rows: ``ort_fused`` (controller.onnx), ``ort_separate`` (policy.onnx then decoder.onnx),
``backend`` (``controller.make_backend(...).control`` / ``.step``: what the app sees, conversions included),
and ``ort_fused_2threads``. The goal is ``backend`` frame <= 0.3 ms. Prints ONE JSON line.

    .venv/bin/python -m benchmarks.bench_inference [--threads 1] [--calls 2000]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
import warnings

import numpy as np
import torch
from torch import nn

from controller.export import export_onnx
from controller.graphs import ControllerGraph, DecoderGraph
from controller.runtime import make_backend
from controller.sessions import open_session
from vae import PoseMixtureVAE, VAEConfig

OBS, HIDDEN, Z, D = 269, 256, 32, 267
ACTION_SCALE = 4.0


class ReferencePolicy(nn.Module):
    """The paper's actor size, following the policy contract (normalisation inside, tanh mean action)."""

    def __init__(self):
        super().__init__()
        self.obs_size, self.action_size, self.discrete, self.num_actions, self.task = OBS, Z, False, None, "bench"
        self.action_scale = ACTION_SCALE
        self.register_buffer("obs_mean", torch.randn(OBS))
        self.register_buffer("obs_var", torch.rand(OBS) + 0.5)
        self.net = nn.Sequential(nn.Linear(OBS, HIDDEN), nn.ReLU(), nn.Linear(HIDDEN, HIDDEN), nn.ReLU(),
                                 nn.Linear(HIDDEN, HIDDEN), nn.ReLU(), nn.Linear(HIDDEN, Z))

    def forward(self, obs_raw: torch.Tensor) -> torch.Tensor:
        x = ((obs_raw - self.obs_mean) / torch.sqrt(self.obs_var + 1e-8)).clamp(-10.0, 10.0)
        return torch.tanh(self.net(x))


def _stats(values: list[float]) -> dict:
    return {"min": round(min(values), 4), "median": round(statistics.median(values), 4), "max": round(max(values), 4)}


def _latencies(impls: dict, calls: int, rounds: int = 10) -> dict:
    for fn in impls.values():
        for _ in range(30):
            fn()
    out = {k: [] for k in impls}
    for _ in range(rounds):
        for name, fn in impls.items():
            for _ in range(calls // rounds):
                t = time.perf_counter()
                fn()
                out[name].append((time.perf_counter() - t) * 1e3)
    return {k: _stats(v) for k, v in out.items()}


def _throughput(impls: dict, batch: int, seconds: float, rounds: int = 3) -> dict:
    for fn in impls.values():
        fn()
    best = {k: 0.0 for k in impls}
    for _ in range(rounds):
        for name, fn in impls.items():
            n, t0 = 0, time.perf_counter()
            while time.perf_counter() - t0 < seconds / rounds:
                fn()
                n += 1
            best[name] = max(best[name], n * batch / (time.perf_counter() - t0))
    return {k: round(v) for k, v in best.items()}


def _implementations(manifold, policy, backend, sessions: dict, traced: dict, obs, cond, z) -> tuple[dict, dict]:
    """(frame implementations, decoder-only implementations) for one batch of inputs."""
    obs_np, cond_np, z_np = obs.numpy(), cond.numpy(), z.numpy()
    dec, pol, fused, fused2 = sessions["decoder"], sessions["policy"], sessions["controller"], sessions["controller2"]
    scale = np.float32(ACTION_SCALE)

    def torch_frame():
        with torch.inference_mode():
            return manifold.step(policy(obs) * ACTION_SCALE, cond)

    def torch_decoder():
        with torch.inference_mode():
            return manifold.step(z, cond)

    def jit_frame():
        with torch.inference_mode():
            return traced["controller"](obs, cond)

    def jit_decoder():
        with torch.inference_mode():
            return traced["decoder"](z, cond)

    frame = {
        "torch_eager": torch_frame,
        "torch_jit": jit_frame,
        "ort_fused": lambda: fused.run(None, {"obs_raw": obs_np, "cond_raw": cond_np}),
        "ort_separate": lambda: dec.run(None, {"z": pol.run(None, {"obs_raw": obs_np})[0] * scale,
                                               "cond_raw": cond_np}),
        "ort_fused_2threads": lambda: fused2.run(None, {"obs_raw": obs_np, "cond_raw": cond_np}),
        "backend": lambda: backend.control(obs, cond),
    }
    decoder = {
        "torch_eager": torch_decoder,
        "torch_jit": jit_decoder,
        "ort": lambda: dec.run(None, {"z": z_np, "cond_raw": cond_np}),
        "backend": lambda: backend.step(z, cond),
    }
    return frame, decoder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1, help="torch threads and ONNX Runtime intra-op threads")
    parser.add_argument("--calls", type=int, default=2000, help="timed batch-1 calls per implementation")
    parser.add_argument("--seconds", type=float, default=1.5, help="time per batch-256 throughput measurement")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    manifold = PoseMixtureVAE(VAEConfig(frame_size=D)).eval()
    data = torch.randn(1000, D) * torch.rand(D) * 2 + torch.randn(D)
    manifold.set_normalization(data.mean(0), data.std(0))
    policy = ReferencePolicy().eval()

    with tempfile.TemporaryDirectory() as folder:
        t0 = time.perf_counter()
        manifest = export_onnx(manifold, folder, policy, timing=False)
        export_s = time.perf_counter() - t0
        sessions = {name: open_session(f"{folder}/{name}.onnx", "cpu", args.threads)
                    for name in ("decoder", "policy", "controller")}
        sessions["controller2"] = open_session(f"{folder}/controller.onnx", "cpu", 2)
        backend = make_backend(manifold, policy, backend="onnx", export_dir=folder, threads=args.threads,
                               verbose=False)
        backend.fused_choice = {1: True, 256: True}  # the fused graph: ort_fused vs backend = wrapper overhead
        with warnings.catch_warnings(), torch.inference_mode():
            warnings.simplefilter("ignore")
            example = (torch.randn(2, OBS), data[:2])
            traced = {
                "controller": torch.jit.freeze(torch.jit.trace(ControllerGraph(policy, manifold, ACTION_SCALE).eval(),
                                                               example)),
                "decoder": torch.jit.freeze(torch.jit.trace(DecoderGraph(manifold).eval(),
                                                            (torch.randn(2, Z), data[:2]))),
            }

        result: dict = {"bench": "inference", "frame_size": D, "latent": Z, "experts": 6,
                        "policy": f"{OBS}-{HIDDEN}x3-{Z}", "threads": args.threads, "device": "cpu",
                        "export_s": round(export_s, 2), "onnx_parity": manifest["parity_max_error"]}
        inputs = {b: (torch.randn(b, OBS), data[torch.arange(b) % len(data)].contiguous(), torch.randn(b, Z))
                  for b in (1, 256)}
        frame, decoder = _implementations(manifold, policy, backend, sessions, traced, *inputs[1])
        for name, stats in _latencies(frame, args.calls).items():
            result[f"frame_b1_ms_{name}"] = stats
        for name, stats in _latencies(decoder, args.calls).items():
            result[f"decoder_b1_ms_{name}"] = stats
        frame, decoder = _implementations(manifold, policy, backend, sessions, traced, *inputs[256])
        for name, fps in _throughput(frame, 256, args.seconds).items():
            result[f"frame_b256_fps_{name}"] = fps
        for name, fps in _throughput(decoder, 256, args.seconds).items():
            result[f"decoder_b256_fps_{name}"] = fps

    eager = result["frame_b1_ms_torch_eager"]["median"]
    for name in ("ort_fused", "backend", "torch_jit"):
        result[f"speedup_frame_b1_median_{name}_vs_eager"] = round(eager / result[f"frame_b1_ms_{name}"]["median"], 2)
    result["speedup_frame_b256_ort_fused_vs_eager"] = round(
        result["frame_b256_fps_ort_fused"] / result["frame_b256_fps_torch_eager"], 2)
    result["goal_backend_frame_b1_ms"] = 0.3
    result["goal_met_min"] = result["frame_b1_ms_backend"]["min"] <= 0.3
    result["goal_met_median"] = result["frame_b1_ms_backend"]["median"] <= 0.3
    print(json.dumps(result))


if __name__ == "__main__":
    main()
