"""Mixture-of-experts decoder speed: the fast formulation (one matmul per layer for all experts, blend the
outputs) against the reference one (blend the weights per sample, then bmm), measured in the same run.

Both formulations decode the same untrained full-size PoseMixtureVAE (D = 267, Z = 32, 6 experts) in turns,
``--repeats`` times (:func:`benchmarks.common.interleaved`), so a busy spell on a shared machine hits both alike.
Prints ONE JSON line: batch-1 latency in microseconds and throughput in frames/s at batch 64 and 1024, each as
min / median / max over the repeats, the fast / reference ratios at the best and the median repeat, the torch
threads and the load average.

    .venv/bin/python -m benchmarks.bench_decoder [--threads 2] [--repeats 7] [--calls 100] [--seconds 0.3]
"""

from __future__ import annotations

import argparse

import torch

from benchmarks.common import context, emit, interleaved, ratio, spread, time_ratio
from vae import PoseMixtureVAE, VAEConfig
from vae.reference import ReferenceMixtureDecoder

BATCHES = (64, 1024)


def decoding(formulations: dict, batch: int) -> dict:
    """One call per formulation that decodes the same random batch of ``batch`` latents and conditions."""
    z, cond = torch.randn(batch, 32), torch.randn(batch, 267)
    return {name: (lambda fn=fn: fn(z, cond)) for name, fn in formulations.items()}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--repeats", type=int, default=7, help="turns of each formulation")
    parser.add_argument("--calls", type=int, default=100, help="batch-1 calls per turn")
    parser.add_argument("--seconds", type=float, default=0.3, help="length of one throughput turn")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = PoseMixtureVAE(VAEConfig(frame_size=267)).eval()
    formulations = {"fast": model.decode, "reference": ReferenceMixtureDecoder(model.decoder)}
    result: dict = {"bench": "mixture_decoder", "frame_size": 267, "latent": 32, "experts": 6, "device": "cpu"}
    with torch.inference_mode():
        seconds = interleaved(decoding(formulations, 1), args.repeats, calls=args.calls)
        micros = {k: [1e6 * s for s in v] for k, v in seconds.items()}
        for name, values in micros.items():
            result[f"{name}_b1_us"] = spread(values, 1)
        result["speedup_b1"] = time_ratio(micros["fast"], micros["reference"])
        for batch in BATCHES:
            seconds = interleaved(decoding(formulations, batch), args.repeats, seconds=args.seconds)
            fps = {k: [batch / s for s in v] for k, v in seconds.items()}
            for name, values in fps.items():
                result[f"{name}_b{batch}_fps"] = spread(values, 0)
            result[f"speedup_b{batch}"] = ratio(fps["fast"], fps["reference"])
    result.update(context())
    emit(result)


if __name__ == "__main__":
    main()
