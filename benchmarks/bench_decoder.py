"""Mixture-of-experts decoder speed: the fast formulation (one matmul per layer for all experts, blend the
outputs) against the reference one (blend the weights per sample, then bmm), measured in the same run.

Prints ONE JSON line: batch-1 latency (min/median/max microseconds over many calls) and throughput
(frames/s) at batch 64 and 1024, for both formulations, and fast/reference ratios.

    .venv/bin/python -m benchmarks.bench_decoder [--threads 2] [--calls 500]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

from vae import PoseMixtureVAE, VAEConfig
from vae.reference import ReferenceMixtureDecoder


def _latencies(fn, z, cond, calls: int) -> list[float]:
    for _ in range(20):
        fn(z, cond)
    out = []
    for _ in range(calls):
        t = time.perf_counter()
        fn(z, cond)
        out.append((time.perf_counter() - t) * 1e6)
    return out


def _throughput(fn, z, cond, seconds: float) -> float:
    for _ in range(3):
        fn(z, cond)
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        fn(z, cond)
        n += 1
    return n * z.shape[0] / (time.perf_counter() - t0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--calls", type=int, default=500, help="timed batch-1 calls per formulation")
    parser.add_argument("--seconds", type=float, default=1.5, help="time per throughput measurement")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    config = VAEConfig(frame_size=267)
    model = PoseMixtureVAE(config).eval()
    impls = {"fast": model.decode, "reference": ReferenceMixtureDecoder(model.decoder)}
    result: dict = {"bench": "mixture_decoder", "frame_size": 267, "latent": 32, "experts": 6,
                    "threads": args.threads, "device": "cpu"}
    with torch.inference_mode():
        z, cond = torch.randn(1, 32), torch.randn(1, 267)
        # interleave the two so background load hits both alike
        lat = {k: [] for k in impls}
        for _ in range(5):
            for name, fn in impls.items():
                lat[name] += _latencies(fn, z, cond, args.calls // 5)
        for name, values in lat.items():
            result[f"{name}_b1_us"] = {"min": round(min(values), 1), "median": round(statistics.median(values), 1),
                                       "max": round(max(values), 1)}
        for batch in (64, 1024):
            z, cond = torch.randn(batch, 32), torch.randn(batch, 267)
            for name, fn in impls.items():
                result[f"{name}_b{batch}_fps"] = round(_throughput(fn, z, cond, args.seconds))
    result["speedup_b1_median"] = round(result["reference_b1_us"]["median"] / result["fast_b1_us"]["median"], 2)
    for batch in (64, 1024):
        result[f"speedup_b{batch}"] = round(result[f"fast_b{batch}_fps"] / result[f"reference_b{batch}_fps"], 2)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
