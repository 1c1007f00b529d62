"""One step of a code prior as an ONNX graph, checked against torch and timed at batch 1.

    python -m vae.prior_onnx PRIOR.pt --vae VQ.pt --out prior_step.onnx

``prior_step.onnx``: (``codes`` (B, W) int64 in [0, K] (K: PAD), ``cond_raw`` (B, W, C*D) float32 raw condition
windows, and for a model with styles ``style`` (B, S) float32 blend weights) -> ``logits`` (B, K) of the next code:
the last W' (code, pose) pairs of :mod:`vae.prior` with a fixed W' (the prior's ``step_context``), the condition normalised inside with the VQ
model's statistics (raw frames in, as every graph of :mod:`controller.graphs`). A fixed window recomputes W
positions per step instead of keeping a KV cache: at W = 16 that is one small matmul per layer, and the graph
stays one input shape with no state to carry.

Exported as :func:`controller.export.export_graph` does (TorchScript tracer, dynamic batch axis, opset 17),
checked with ``onnx.checker`` and against torch at batches 1 and 3 (max abs difference <= 1e-4).
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from common.paths import output_file
from controller.export import OPSET, PARITY_TOL, export_graph, graph_signature, write_atomic
from controller.sessions import DEFAULT_THREADS, open_session
from vae.prior import CodePrior, check_prior_fits


class PriorStepGraph(nn.Module):
    """(codes (B, W), cond_raw (B, W, C*D)[, style (B, S)]) -> logits (B, K): one prior step as a traceable module."""

    def __init__(self, prior: CodePrior, manifold):
        super().__init__()
        self.prior = prior
        c = manifold.num_condition_frames
        # A condition window is C frames flattened oldest first: tile the per-frame statistics.
        self.register_buffer("cond_mean", manifold.data_mean.detach().cpu().float().repeat(c))  # (C*D,)
        self.register_buffer("cond_std", manifold.data_std.detach().cpu().float().repeat(c))  # (C*D,)

    def forward(self, codes: torch.Tensor, cond_raw: torch.Tensor, style: torch.Tensor | None = None) -> torch.Tensor:
        cond_norm = (cond_raw - self.cond_mean) / self.cond_std  # (B, W, C*D)
        return self.prior.step_logits(codes, cond_norm, style)  # (B, K)


def step_inputs(prior: CodePrior, manifold, batch: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
    """Realistic raw inputs of one step: codes (PAD included), condition windows around the data mean, and blend
    weights of mostly one style."""
    cfg = prior.config
    c = manifold.num_condition_frames
    mean = manifold.data_mean.detach().cpu().float().repeat(c)  # (C*D,)
    std = manifold.data_std.detach().cpu().float().repeat(c)  # (C*D,)
    inputs = {
        "codes": torch.randint(cfg.num_codes + 1, (batch, prior.step_context), generator=generator),  # (B, W')
        "cond_raw": mean + std * torch.randn(batch, prior.step_context, cfg.cond_size, generator=generator),  # (B, W', CD)
    }
    if cfg.num_styles:
        weights = torch.rand(batch, cfg.num_styles, generator=generator) ** 4  # (B, S)
        inputs["style"] = weights / weights.sum(dim=1, keepdim=True)
    return inputs


def export_prior_step(prior: CodePrior, manifold, path, *, opset: int = OPSET, seed: int = 0) -> dict:
    """Write ``path`` (atomically) and return its signature and ``parity_max_error`` (max |onnx - torch| of the
    logits at batches 1 and 3). Raises ValueError for a prior of another VQ model, RuntimeError on a parity miss."""
    check_prior_fits(prior, manifold, "export_prior_step")
    # A copy: tracing needs eval mode on the CPU, and the caller's module keeps its own mode and device.
    graph = PriorStepGraph(copy.deepcopy(prior).cpu(), manifold).eval()
    generator = torch.Generator().manual_seed(seed)
    example = step_inputs(prior, manifold, 2, generator)
    names = list(example)
    data = export_graph(graph, tuple(example.values()), names, ["logits"], opset)
    signature = graph_signature(data, str(path))
    write_atomic(Path(path), data)
    session = open_session(Path(path), "cpu")
    worst = 0.0
    for batch in (1, 3):
        x = step_inputs(prior, manifold, batch, generator)
        with torch.no_grad():
            expected = graph(*x.values()).numpy()
        got = session.run(["logits"], {n: t.numpy() for n, t in x.items()})[0]
        worst = max(worst, float(np.abs(got - expected).max()))
    if not worst <= PARITY_TOL:
        raise RuntimeError(f"{path}: ONNX Runtime differs from torch by {worst:.3g} (> {PARITY_TOL}); the export is "
                           "wrong")
    return {**signature, "parity_max_error": worst, "opset": opset}


def step_latency_ms(path, prior: CodePrior, manifold, *, calls: int = 200, repeats: int = 5,
                    threads: int = DEFAULT_THREADS) -> float:
    """Median milliseconds of one ``prior_step.onnx`` call at batch 1 on the CPU (median of ``repeats`` medians)."""
    session = open_session(Path(path), "cpu", threads)
    feed = {n: t.numpy() for n, t in step_inputs(prior, manifold, 1, torch.Generator().manual_seed(1)).items()}
    for _ in range(20):  # warm-up: allocations and the first-run graph work
        session.run(None, feed)
    medians = []
    for _ in range(repeats):
        times = []
        for _ in range(calls):
            start = time.perf_counter()
            session.run(None, feed)
            times.append((time.perf_counter() - start) * 1e3)
        medians.append(statistics.median(times))
    return statistics.median(medians)


def main(argv: list[str] | None = None) -> int:
    from vae.checkpoint import load_manifold
    from vae.prior import load_prior

    parser = argparse.ArgumentParser(prog="python -m vae.prior_onnx", description=__doc__.splitlines()[0])
    parser.add_argument("prior", help="code prior from `python -m vae.train_prior`")
    parser.add_argument("--vae", required=True, help="the VQ Motion VAE checkpoint the prior was trained on")
    parser.add_argument("--out", required=True, help="ONNX file to write (.onnx)")
    parser.add_argument("--threads", type=int, default=DEFAULT_THREADS, help="ONNX Runtime threads for the timing")
    args = parser.parse_args(argv)
    try:
        out = output_file(args.out, "--out", (".onnx",))
        manifold = load_manifold(args.vae)
        prior = load_prior(args.prior, manifold)
        info = export_prior_step(prior, manifold, out)
        ms = step_latency_ms(out, prior, manifold, threads=args.threads)
    except (FileNotFoundError, ValueError, RuntimeError, ImportError) as e:
        print(f"vae.prior_onnx: error: {e}", file=sys.stderr)
        return 2
    ins = ", ".join(f"{i['name']} {i['shape']}" for i in info["inputs"])
    print(f"{out}: ({ins}) -> logits {info['outputs'][0]['shape']}; parity {info['parity_max_error']:.2g}; "
          f"step {ms:.3f} ms at batch 1 ({args.threads} thread)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
