"""Motion VAE training throughput: this trainer against the reference formulation, measured in the same run.

Prints ONE JSON line. Throughput is in frame predictions per second (one rollout step of one window = one
prediction). Both sides train the mixture model (D = 267, 22 joints, 1.70 M parameters) on a synthetic dataset
(sinusoids + noise at 30 Hz, clips of 300 frames; ``--data`` takes a prepared one), with the same torch threads:

- ``reference``: the paper code's formulation, **measured here every run**: batch 64, the decoder blending expert
  *weights* per sample (:class:`vae.reference.ReferenceMixtureDecoder`), an Adam step (unfused) after every one of
  the 8 rollout steps, a per-step Python rollout; ``--ref-batches`` batches per turn.
- ``trainer_b64`` and ``trainer_b256``: one epoch of :func:`vae.train.train` (student phase, the defaults otherwise)
  at batch 64 and at 256 (our default), as a user runs it; the epoch's own frames/s.

The three take turns ``--rounds`` times (a busy spell on a shared machine hits them alike); every figure is
min / median / max over the rounds and every ratio is given at the best and the median round:

- ``implementation_speedup_b64`` = trainer_b64 / reference: the implementation alone, at the reference's batch;
- ``batch_size_speedup_b256_vs_b64`` = trainer_b256 / trainer_b64: what the larger batch adds (frames/s only).

A larger batch is only a gain if it learns as well per second, so ``equal_wall_time`` trains both batch sizes
again, each with its own recipe (batch 64 at the reference's learning rate 1e-4, batch 256 at our default 3e-4),
for about ``--equal-seconds`` of training each (whole student epochs on the ``--loss-frames`` set, the number of
epochs from the measured speeds; each run's own schedule ends there), and reports the loss each reaches on the
held-out clips (every 10th: teacher-forced and 8-step rollout MSE, :func:`vae.evaluate.reconstruction_errors`)
next to its training seconds. On the synthetic set this compares learning speed, not motion quality.

Usage: ``python -m benchmarks.bench_vae_train [--threads 2] [--rounds 3] [--ref-batches 10] [--speed-frames 1500]
[--equal-seconds 60] [--loss-frames 6000] [--data DATA.npz]``
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from benchmarks.common import context, emit, ratio, spread
from mocap.dataset import MotionDataset
from mocap.pose_layout import PoseLayout
from mocap.skeleton import Skeleton
from vae import VAEConfig, build_model, load_manifold
from vae.data import WindowDataset, WindowSampler, holdout_split, valid_window_starts, window_length
from vae.evaluate import reconstruction_errors
from vae.reference import ReferenceMixtureDecoder
from vae.train import TrainConfig, train

ROLLOUT = 8
JOINTS = 22
FPS = 30.0
REFERENCE_BATCH = 64
RECIPES = {64: 1e-4, 256: 3e-4}  # batch size -> learning rate: the reference's recipe, ours


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


def trainer_epoch(data_path: Path, tmp: str, batch_size: int) -> float:
    """One student epoch of vae.train at ``batch_size`` (defaults otherwise): the epoch's frame predictions/s."""
    cfg = TrainConfig(data=str(data_path), out=str(Path(tmp) / f"speed{batch_size}.pt"), batch_size=batch_size,
                      teacher_epochs=0, ramping_epochs=0, student_epochs=1, holdout_every=0, preview_every=0,
                      progress=False, final_checks=False)
    train(cfg)
    return float(torch.load(cfg.out, weights_only=True)["extra"]["history"][-1]["samples_per_s"])


def speeds(dataset: MotionDataset, data_path: Path, tmp: str, rounds: int, ref_batches: int) -> dict[str, list]:
    """Frame predictions/s of the reference (batch 64) and the trainer at 64 and 256, taking turns ``rounds`` times."""
    out: dict[str, list[float]] = {"reference": [], "trainer_b64": [], "trainer_b256": []}
    for r in range(rounds):
        out["reference"].append(REFERENCE_BATCH * ROLLOUT * ref_batches / sum(reference_batches(dataset, ref_batches, r)))
        out["trainer_b64"].append(trainer_epoch(data_path, tmp, 64))
        out["trainer_b256"].append(trainer_epoch(data_path, tmp, 256))
    return out


def heldout_losses(model_path: Path, dataset: MotionDataset) -> dict:
    """Teacher-forced and 8-step rollout MSE (normalised units) on the held-out clips (every 10th)."""
    model = load_manifold(model_path)
    _, heldout = holdout_split(dataset.clip_names, 10)
    frames = model.normalize(torch.as_tensor(dataset.data, dtype=torch.float32))
    with torch.no_grad():
        errors = reconstruction_errors(model, frames, dataset.end_indices, heldout, torch.Generator().manual_seed(0))
    return {"heldout_recon_teacher": round(errors["recon_error_teacher"], 5),
            "heldout_recon_rollout8": round(errors["recon_error_rollout8"], 5)}


def equal_wall_time(data_path: Path, dataset: MotionDataset, tmp: str, seconds: float, fps: dict[int, float]) -> dict:
    """Each batch size trained with its recipe for about ``seconds`` (whole epochs) -> its held-out losses."""
    windows = len(valid_window_starts(dataset.end_indices, window_length(1, ROLLOUT, 1)))
    out = {}
    for batch, lr in RECIPES.items():
        epoch_s = windows * 0.9 * ROLLOUT / fps[batch]  # 90 %: the held-out clips do not train
        epochs = max(1, round(seconds / epoch_s))
        cfg = TrainConfig(data=str(data_path), out=str(Path(tmp) / f"loss{batch}.pt"), batch_size=batch,
                          learning_rate=lr, teacher_epochs=0, ramping_epochs=0, student_epochs=epochs,
                          holdout_every=10, preview_every=0, progress=False, final_checks=False)
        train(cfg)
        history = torch.load(cfg.out, weights_only=True)["extra"]["history"]
        out[f"b{batch}"] = {"learning_rate": lr, "epochs": epochs,
                            "train_seconds": round(sum(row["seconds"] for row in history), 1),
                            "train_recon_last_epoch": round(history[-1]["recon"], 5),
                            **heldout_losses(Path(cfg.out), dataset)}
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3, help="turns of reference, trainer b64 and trainer b256")
    parser.add_argument("--ref-batches", type=int, default=10, help="reference batches (of 64 x 8 steps) per turn")
    parser.add_argument("--speed-frames", type=int, default=1500, help="synthetic frames of the speed runs")
    parser.add_argument("--equal-seconds", type=float, default=60.0, help="training seconds of each equal-time run "
                        "(0: skip them)")
    parser.add_argument("--loss-frames", type=int, default=6000, help="synthetic frames of the equal-time runs")
    parser.add_argument("--data", default="", help="a prepared dataset for every run instead of the synthetic ones")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    with tempfile.TemporaryDirectory() as tmp:
        paths = {}
        for name, frames in (("speed", args.speed_frames), ("loss", args.loss_frames)):
            paths[name] = Path(args.data) if args.data else Path(tmp) / f"{name}.npz"
            if not args.data:
                synthetic_dataset(frames).save(paths[name])
        speed_data = MotionDataset.load(paths["speed"])
        measured = speeds(speed_data, paths["speed"], tmp, args.rounds, args.ref_batches)
        result = {
            "benchmark": "vae_train",
            "speed_dataset_frames": int(speed_data.num_frames),
            "frame_size": int(speed_data.data.shape[1]),
            **{f"{k}_frames_per_s": spread(v, 0) for k, v in measured.items()},
            "implementation_speedup_b64": ratio(measured["trainer_b64"], measured["reference"]),
            "batch_size_speedup_b256_vs_b64": ratio(measured["trainer_b256"], measured["trainer_b64"]),
        }
        if args.equal_seconds > 0:
            loss_data = MotionDataset.load(paths["loss"])
            fps = {64: statistics.median(measured["trainer_b64"]), 256: statistics.median(measured["trainer_b256"])}
            result["loss_dataset_frames"] = int(loss_data.num_frames)
            result["equal_wall_time"] = equal_wall_time(paths["loss"], loss_data, tmp, args.equal_seconds, fps)
    result.update(context())
    emit(result)


if __name__ == "__main__":
    main()
