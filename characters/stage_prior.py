"""Build stage ``prior`` (``--manifold vq`` only): the code prior over the VQ Motion VAE's codes, trained within its
share of the budget, shipped slim as ``prior.pt``.

The prior is :mod:`vae.prior`'s causal transformer, trained by :func:`vae.train_prior.train_prior` on the codes the
bundle's ``vae.pt`` gives the build's data, with every setting ``vae.train_prior``'s default but the seed and the
epochs. Epochs: a short calibration (``CALIBRATION_BATCHES`` optimiser steps on real code windows, after two to warm
up) measures this machine's seconds per epoch, and the run gets as many epochs as fit the stage's minutes (at least
``MIN_EPOCHS``, at most ``MAX_EPOCHS``). The training file ``<bundle>/build/prior_train.pt`` (weights and optimiser)
is written after every epoch; an interrupted build resumes it.

Figures: the last epoch's held-out cross-entropy (nats per code), perplexity and accuracy, the unigram
cross-entropy (what code frequencies alone reach), the step context W' a rollout step uses (chosen by
``vae.train_prior``), the epochs and minutes. Gate: :func:`characters.gates.prior_gates`.

``<bundle>/prior.pt`` is the prior without its optimiser (:func:`vae.prior.save_prior`): weights, the VQ model's
fingerprint, its styles, and a small ``extra`` (``step_context``, ``context_ce``, ``unigram_ce``, ``heldout_ce``,
``epochs``).
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from dataclasses import asdict, replace
from pathlib import Path

import torch

from characters.gates import prior_gates

MIN_EPOCHS, MAX_EPOCHS = 2, 200
CALIBRATION_BATCHES = 8
EVAL_COST = 1.0 / 3.0  # a held-out batch (forward only) costs about a third of a training step
# PriorTrainConfig fields that say where and how to run, not what is trained (the epochs follow from the budget).
RUN_ONLY = ("vae", "data", "out", "log_dir", "resume", "stop_after_epoch", "progress", "threads", "seed", "epochs")


def train_path(ctx) -> Path:
    return ctx.work / "prior_train.pt"


def prior_path(ctx) -> Path:
    return ctx.out / "prior.pt"


def settings(ctx) -> tuple[dict, list[Path]]:
    """The budget, the seed and every training default (a new default retrains), the data and the VQ model."""
    from characters.stage_data import data_path
    from vae.train_prior import PriorTrainConfig

    recipe = {k: v for k, v in asdict(PriorTrainConfig()).items() if k not in RUN_ONLY}
    return ({"minutes": round(ctx.budget.prior, 2), "seed": ctx.cfg.seed, "recipe": recipe},
            [data_path(ctx), ctx.out / "vae.pt"])


def calibrate(base, minutes: float, progress) -> int:
    """Epochs that fit in ``minutes``: time ``CALIBRATION_BATCHES`` training steps (forward, loss, backward, clip,
    AdamW) on the data's code windows with the run's settings, on a throwaway copy of the run."""
    from vae.train_prior import prepare_run, window_loss

    if base.threads > 0:
        torch.set_num_threads(base.threads)
    run = prepare_run(base)
    generator = torch.Generator().manual_seed(base.seed)
    started = None
    for batch in range(CALIBRATION_BATCHES + 2):  # the first two warm up
        if batch == 2:
            started = time.perf_counter()
        which = torch.randint(len(run.train_windows), (base.batch_size,), generator=generator)  # (B,)
        loss, _, _ = window_loss(run.prior, run.train_windows, which, run.styled)
        run.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(run.prior.parameters(), 1.0)
        run.optimizer.step()
    step_s = (time.perf_counter() - started) / CALIBRATION_BATCHES
    heldout_batches = math.ceil(len(run.heldout_windows) / base.batch_size)
    epoch_s = step_s * (run.batches_per_epoch + EVAL_COST * heldout_batches)
    epochs = min(MAX_EPOCHS, max(MIN_EPOCHS, math.floor(60.0 * minutes / epoch_s)))
    progress.figure(f"code prior: {len(run.train_windows)} training windows, {1e3 * step_s:.0f} ms per batch of "
                    f"{base.batch_size}: {epoch_s:.1f} s per epoch -> {epochs} epochs in {minutes:.1f} min")
    return epochs


class _ToProgress(logging.Handler):
    """``vae.train_prior``'s per-epoch log lines as progress figures."""

    def __init__(self, progress):
        super().__init__(logging.INFO)
        self.progress = progress

    def emit(self, record: logging.LogRecord) -> None:
        self.progress.figure(f"code prior: {record.getMessage()}")


@contextlib.contextmanager
def _epochs_shown(progress):
    """Route the trainer's log lines (epochs, the chosen step context) into the build's progress view."""
    logger = logging.getLogger("vae.train_prior")
    handler, level, propagate = _ToProgress(progress), logger.level, logger.propagate
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False  # shown once, here, whatever the root logger does
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
        logger.propagate = propagate


def run(ctx):
    from characters.stage_data import data_path
    from common.paths import portable_path
    from vae.checkpoint import load_manifold
    from vae.prior import load_prior, read_prior, save_prior
    from vae.train_prior import PriorTrainConfig, train_prior

    cfg, progress = ctx.cfg, ctx.progress
    progress.stage("prior", f"code prior over the VQ codes: {ctx.budget.prior:.1f} min")
    base = PriorTrainConfig(vae=str(ctx.out / "vae.pt"), data=str(data_path(ctx)), out=str(train_path(ctx)),
                            seed=cfg.seed, threads=cfg.threads, progress=False, log_dir=str(ctx.work / "prior_logs"))
    resume = ctx.resuming and train_path(ctx).is_file()
    if resume:
        epochs = int(read_prior(train_path(ctx))["extra"]["train_config"]["epochs"])
        progress.figure(f"resuming the interrupted training ({epochs} epochs)")
    else:
        epochs = calibrate(base, ctx.budget.prior, progress)
    started = time.perf_counter()
    with _epochs_shown(progress):
        train_prior(replace(base, epochs=epochs, resume=str(train_path(ctx)) if resume else ""))
    train_minutes = (time.perf_counter() - started) / 60.0

    prior = load_prior(train_path(ctx), load_manifold(ctx.out / "vae.pt"))
    extra = prior.extra
    last = (extra.get("history") or [{}])[-1]
    shipped = {"step_context": prior.step_context, "context_ce": extra.get("context_ce", {}),
               "unigram_ce": extra.get("unigram_ce"), "heldout_ce": last.get("heldout_ce"),
               "epochs": extra.get("epoch")}
    save_prior(prior_path(ctx), prior, vae=prior.vae_fingerprint, style_names=prior.style_names, extra=shipped)
    result = {"heldout_ce": last.get("heldout_ce"), "heldout_perplexity": last.get("heldout_perplexity"),
              "heldout_accuracy": last.get("heldout_accuracy"), "train_ce": last.get("train_ce"),
              "unigram_ce": extra.get("unigram_ce"), "step_context": prior.step_context,
              "context": prior.context, "num_codes": prior.num_codes, "context_ce": extra.get("context_ce", {}),
              "epochs": extra.get("epoch"), "train_minutes": train_minutes,
              "checkpoint": portable_path(str(prior_path(ctx)))}
    progress.figure(f"code prior: held-out CE {_nats(result['heldout_ce'])} nats per code (unigram "
                    f"{_nats(result['unigram_ce'])}); a rollout step looks at the last {prior.step_context} of "
                    f"{prior.context} (code, pose) pairs")
    return result, prior_gates(result)


def _nats(value) -> str:
    return "n/a" if value is None or value != value else f"{value:.3f}"
