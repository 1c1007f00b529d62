"""Motion VAE training throughput: this trainer vs the reference formulation, measured in the same run.

Prints ONE JSON line. Throughput is in frame predictions per second (one rollout step of one window = one
prediction). Both sides train the mixture model (D = 267, 22 joints, 1.70 M parameters) on the same synthetic
10-minute dataset (18,000 frames at 30 Hz, 60 clips of 300 frames), with the same number of torch threads:

- ``reference``: the paper code's formulation - batch 64, the decoder blending expert *weights* per sample
  (:class:`vae.reference.ReferenceMixtureDecoder`), an Adam step (unfused) after every one of the 8 rollout steps, a per-step Python rollout.
  Timed per batch of 8 steps (min / median / max), before and after the trainer so drift from other load shows.
- ``trainer``: one epoch of :func:`vae.train.train` with its defaults (one pass over every window of the set,
  student phase), as a user runs it; ``seconds_per_epoch`` is that epoch's wall time. ``trainer_by_batch_size``
  repeats it for other batch sizes (``--batch-sizes``), the same trainer otherwise.

Usage: ``python benchmarks/bench_vae_train.py [--threads 2] [--ref-batches 20] [--batch-sizes 64,256,1024]
[--data DATA.npz]``
(FACTS: the reference does ~2,125 frame predictions/s on this kind of 2-core machine.)
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from mocap.dataset import MotionDataset
from mocap.pose_layout import PoseLayout
from mocap.skeleton import Skeleton
from vae import VAEConfig, build_model
from vae.data import WindowDataset, WindowSampler, valid_window_starts, window_length
from vae.reference import ReferenceMixtureDecoder
from vae.train import TrainConfig, train

ROLLOUT = 8
JOINTS = 22
FPS = 30.0


def synthetic_dataset(frames: int = 18000, clip_frames: int = 300, seed: int = 0) -> MotionDataset:
    """Smooth random frames of a 22-joint skeleton (D = 267); timings do not depend on the values."""
    rng = np.random.default_rng(seed)
    layout = PoseLayout(JOINTS)
    t = np.arange(frames)[:, None] / FPS
    freq = rng.uniform(0.5, 3.0, size=(1, layout.frame_size))
    phase = rng.uniform(0, 2 * np.pi, size=(1, layout.frame_size))
    noise = 0.05 * rng.normal(size=(frames, layout.frame_size))
    data = (np.sin(2 * np.pi * freq * t + phase) + noise).astype(np.float32)  # (N, D)
    names = ["Hips"] + [f"Joint{i}" for i in range(1, JOINTS)]
    skeleton = Skeleton(names, np.arange(JOINTS) - 1, rng.normal(size=(JOINTS, 3)) * 0.1)
    ends = np.arange(clip_frames - 1, frames, clip_frames, dtype=np.int64)
    return MotionDataset(data, ends, FPS, skeleton, [f"clip{i}" for i in range(len(ends))], np.array([1, 2]),
                         np.zeros((frames, 2), bool), np.zeros(2, np.float32))


def reference_batches(dataset: MotionDataset, batches: int, seed: int = 0) -> list[float]:
    """Seconds per batch of 64 windows x 8 steps in the reference formulation."""
    torch.manual_seed(seed)
    d = dataset.data.shape[1]
    model = build_model(VAEConfig(model="mixture", frame_size=d)).train()
    decode = ReferenceMixtureDecoder(model.decoder)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    mean, std = dataset.data.mean(0), dataset.data.std(0) + 1e-6
    w = window_length(1, ROLLOUT, 1)
    windows = WindowDataset((dataset.data - mean) / std, valid_window_starts(dataset.end_indices, w), w)
    sampler = WindowSampler(len(windows), 64, seed)
    times = []
    for b, positions in enumerate(sampler):
        if b >= batches:
            break
        t0 = time.perf_counter()
        win = windows.windows(positions)  # (64, W, D)
        cond = win[:, 0]
        for k in range(ROLLOUT):
            target = win[:, 1 + k]
            mu, logvar = model.encoder(target, cond).chunk(2, dim=1)
            z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
            recon = decode(z, cond)
            kl = -0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum().clamp(max=0) / logvar.numel()
            loss = (recon - target).pow(2).mean() + kl
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            cond = recon.detach()  # student feedback
        times.append(time.perf_counter() - t0)
    return times


def summary(times: list[float], predictions_per_batch: int) -> dict:
    return {
        "frames_per_s_median": round(predictions_per_batch / statistics.median(times), 1),
        "frames_per_s_min": round(predictions_per_batch / max(times), 1),
        "frames_per_s_max": round(predictions_per_batch / min(times), 1),
        "ms_per_batch_median": round(1000 * statistics.median(times), 2),
        "batches": len(times),
    }


def trainer_epoch(data_path: Path, tmp: str, batch_size: int) -> dict:
    """One epoch of vae.train with its defaults except the batch size: frames/s and seconds per epoch."""
    cfg = TrainConfig(data=str(data_path), out=str(Path(tmp) / f"bench{batch_size}.pt"), batch_size=batch_size,
                      teacher_epochs=0, ramping_epochs=0, student_epochs=1, holdout_every=0, preview_every=0,
                      progress=False)
    t0 = time.perf_counter()
    train(cfg)
    wall = time.perf_counter() - t0
    epoch = torch.load(cfg.out, weights_only=True)["extra"]["history"][-1]
    return {
        "batch_size": batch_size,
        "update_every_step": cfg.update_every_step,
        "frames_per_s": round(epoch["samples_per_s"], 1),
        "seconds_per_epoch": round(epoch["seconds"], 2),
        "wall_seconds_incl_setup_and_checkpoint": round(wall, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--ref-batches", type=int, default=20, help="reference batches timed before and after")
    parser.add_argument("--batch-sizes", default="64,256,1024", help="trainer batch sizes to time, one epoch each")
    parser.add_argument("--data", default="", help="a prepared dataset instead of the synthetic 18k-frame one")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    default_batch = TrainConfig().batch_size
    sizes = sorted({int(b) for b in args.batch_sizes.split(",")} | {default_batch})

    with tempfile.TemporaryDirectory() as tmp:
        data_path = Path(args.data) if args.data else Path(tmp) / "synthetic.npz"
        if not args.data:
            synthetic_dataset().save(data_path)
        dataset = MotionDataset.load(data_path)
        ref_before = reference_batches(dataset, args.ref_batches)
        trainer = [trainer_epoch(data_path, tmp, b) for b in sizes]
        ref_after = reference_batches(dataset, args.ref_batches, seed=1)

    ref = summary(ref_before + ref_after, 64 * ROLLOUT)
    default = next(t for t in trainer if t["batch_size"] == default_batch)
    print(json.dumps({
        "benchmark": "vae_train",
        "threads": args.threads,
        "dataset_frames": int(dataset.num_frames),
        "frame_size": int(dataset.data.shape[1]),
        "reference": {**ref, "before": summary(ref_before, 64 * ROLLOUT)["frames_per_s_median"],
                      "after": summary(ref_after, 64 * ROLLOUT)["frames_per_s_median"]},
        "trainer": default,
        "trainer_by_batch_size": trainer,
        "speedup_vs_reference": round(default["frames_per_s"] / ref["frames_per_s_median"], 2),
        "speedup_vs_reference_by_batch_size": {t["batch_size"]: round(t["frames_per_s"] / ref["frames_per_s_median"], 2)
                                               for t in trainer},
        "facts_reference_frames_per_s": 2125,
    }))


if __name__ == "__main__":
    main()
