"""Build stage 2, the Motion VAE: trained within its share of the budget, evaluated, shipped as ``vae.pt``.

The model: the mixture-of-experts Gaussian Motion VAE (``vae.train``'s default), or with ``--manifold vq`` a
PoseVQVAE (``model="vq"``: discrete codes, every other setting ``vae.train``'s default).

Epochs: a short calibration run measures this machine's training speed on this data (frame predictions per
second), and the schedule gets as many epochs as fit the stage's minutes (at least ``MIN_EPOCHS``): 15 % teacher
forcing, 15 % ramp, the rest student (the held-latent stability a policy needs comes from the student epochs).
The training checkpoint lives in ``<bundle>/build/vae_train.pt``; an interrupted build resumes it.

Then ``vae.evaluate`` (held-out reconstruction, a random walk, the METRICS.md figures next to the data's, held
latents, steerability) feeds the VAE gates, and the slim checkpoint ``<bundle>/vae.pt`` records the latent bound
the policies use (``extra["action_scale"]``, from the aggregate posterior; a VQ model has no latent to bound: its
policies pick codes).
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import torch

from characters.gates import vae_gates

MIN_EPOCHS = 4
TEACHER_SHARE, RAMP_SHARE = 0.15, 0.15
CALIBRATION_BATCHES = 12
EVAL_FRAMES = 9000  # 5 minutes of random walk (vae.evaluate's default is 10)


def train_path(ctx) -> Path:
    return ctx.work / "vae_train.pt"


RUN_ONLY = ("data", "out", "log_dir", "resume", "init_from", "progress", "threads", "device", "seed")


def settings(ctx) -> tuple[dict, list[Path]]:
    """The budget, the seed and every training default (a new default retrains), and the data."""
    from dataclasses import asdict

    from characters.stage_data import data_path
    from vae.train import TrainConfig

    cfg = ctx.cfg
    recipe = {k: v for k, v in asdict(TrainConfig(**model_flags(cfg))).items() if k not in RUN_ONLY}
    if not recipe["adversarial_weight"]:  # off: its settings change nothing (and builds made before it stay done)
        recipe = {k: v for k, v in recipe.items() if not k.startswith("adversarial_")}
    return ({"minutes": round(ctx.budget.vae, 2), "seed": cfg.seed, "device": cfg.device, "recipe": recipe},
            [data_path(ctx)])


def model_flags(cfg) -> dict:
    """The TrainConfig fields the build's ``--manifold`` sets (none for the Gaussian default, so its recipe and
    fingerprint stay those of earlier builds)."""
    return {"model": "vq"} if cfg.vq else {}


def step_loss(model, recon: torch.Tensor, target: torch.Tensor, enc: dict) -> torch.Tensor:
    """One rollout step's loss as ``vae.train`` forms it (its KL weight and free bits aside, which cost nothing):
    reconstruction plus the KL of a Gaussian model or the VQ commitment loss."""
    recon_loss = (recon - target).pow(2).mean()
    if model.discrete:
        return recon_loss + enc["vq_loss"]
    return recon_loss + 0.5 * (enc["mu"].pow(2) + enc["logvar"].exp() - enc["logvar"]).mean()


def schedule(epochs: int) -> tuple[int, int, int]:
    """(teacher, ramping, student) epochs for a total of ``epochs``."""
    teacher = max(1, round(TEACHER_SHARE * epochs))
    ramp = max(1, round(RAMP_SHARE * epochs))
    return teacher, ramp, max(1, epochs - teacher - ramp)


def calibrate(base, minutes: float, progress) -> int:
    """Epochs that fit in ``minutes``: time ``CALIBRATION_BATCHES`` batches of the training step (forward, loss,
    backward, Adam, for every rollout step) on windows of the real data, with the run's settings."""
    from vae.checkpoint import build_model
    from vae.train import load_data

    data = load_data(base)
    if base.threads > 0:
        torch.set_num_threads(base.threads)
    d = data.frame_size
    model = build_model(base.vae_config(d)).to(base.device).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=base.learning_rate)
    mean, std = data.statistics()
    frames = torch.from_numpy((data.dataset.data - mean) / std).float().to(base.device)  # (N, D)
    generator = torch.Generator().manual_seed(base.seed)
    c, steps, b = base.num_condition_frames, base.rollout_steps, base.batch_size
    started, seen = None, 0
    for batch in range(CALIBRATION_BATCHES + 2):  # the first two warm up
        if batch == 2:
            started = time.perf_counter()
        first = torch.from_numpy(data.starts)[torch.randint(len(data.starts), (b,), generator=generator)]
        win = frames[first[:, None] + torch.arange(c + steps)]  # (B, C + L, D)
        cond = win[:, :c].reshape(b, c * d)
        for k in range(steps):
            recon, enc = model(win[:, c + k], cond)
            loss = step_loss(model, recon, win[:, c + k], enc)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            cond = torch.cat([cond[:, d:], recon.detach()], dim=1) if c > 1 else recon.detach()
        seen += b * steps if batch >= 2 else 0
    rate = seen / (time.perf_counter() - started)  # frame predictions per second
    epoch_s = len(data.starts) * steps / rate
    epochs = max(MIN_EPOCHS, math.floor(60.0 * minutes / epoch_s))
    progress.figure(f"training speed {rate:.0f} frame predictions/s on {len(data.starts)} windows: "
                    f"{epoch_s:.0f} s per epoch -> {epochs} epochs in {minutes:.1f} min")
    return epochs


def run(ctx):
    from characters.stage_data import data_path
    from common.paths import portable_path
    from envs.manifold_source import DEFAULT_ACTION_SCALE
    from vae.checkpoint import load_manifold, slim_checkpoint
    from vae.evaluate import evaluate
    from vae.train import TrainConfig, train

    cfg, progress = ctx.cfg, ctx.progress
    progress.stage("vae", f"Motion VAE: {ctx.budget.vae:.1f} min")
    base = TrainConfig(data=str(data_path(ctx)), out=str(train_path(ctx)), seed=cfg.seed, device=cfg.device,
                       threads=cfg.threads, progress=False, preview_every=0, log_dir=str(ctx.work / "vae_logs"),
                       **model_flags(cfg))
    resume = ctx.resuming and train_path(ctx).is_file()
    if resume:
        saved = torch.load(train_path(ctx), map_location="cpu", weights_only=True)["extra"]["train_config"]
        teacher, ramp, student = saved["teacher_epochs"], saved["ramping_epochs"], saved["student_epochs"]
        progress.figure(f"resuming the interrupted training ({teacher + ramp + student} epochs)")
    else:
        teacher, ramp, student = schedule(calibrate(base, ctx.budget.vae, progress))
    train_cfg = TrainConfig(**{**base.__dict__, "teacher_epochs": teacher, "ramping_epochs": ramp,
                               "student_epochs": student, "resume": str(train_path(ctx)) if resume else ""})
    total = teacher + ramp + student

    def on_epoch(row: dict) -> None:
        latent = (f"KL {row['kl_total']:.2f} nats, {row['active_units']:.0f} active dims" if "kl_total" in row
                  else f"VQ loss {row['vq_loss']:.4f}, code perplexity {row['perplexity']:.1f}")
        progress.figure(f"epoch {row['epoch']}/{total}: recon {row['recon']:.4f}, {latent}, "
                        f"{row['samples_per_s']:.0f} predictions/s")

    started = time.perf_counter()
    train(train_cfg, on_epoch=on_epoch)
    train_minutes = (time.perf_counter() - started) / 60.0

    progress.figure("evaluating: held-out reconstruction, a 5-minute random walk, held latents, steerability")
    model = load_manifold(train_path(ctx))
    result = evaluate(model, str(data_path(ctx)), frames=EVAL_FRAMES, seed=cfg.seed)
    if model.contacts is not None:
        accuracy = model.contacts.metrics.get("accuracy", [])
        result["contact_accuracy"] = min(accuracy) if accuracy else None
        progress.figure(f"contact channels ({', '.join(model.contacts.joints)}): held-out accuracy "
                        f"{', '.join(f'{a:.3f}' for a in accuracy)}")
    if model.discrete:
        slim_checkpoint(train_path(ctx), ctx.out / "vae.pt")
    else:
        scale = result.get("action_scale") or DEFAULT_ACTION_SCALE
        slim_checkpoint(train_path(ctx), ctx.out / "vae.pt", extra={"action_scale": scale})
    result["train_minutes"] = train_minutes
    result["epochs"] = total
    result["checkpoint"] = portable_path(str(ctx.out / "vae.pt"))
    return result, vae_gates(result)
