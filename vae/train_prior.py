"""``python -m vae.train_prior``: train a code prior (:mod:`vae.prior`) over a VQ Motion VAE's codes.

Usage::

    python -m vae.train_prior --vae VQ.pt --data DATA.npz --out PRIOR.pt [--epochs N] [--resume PRIOR.pt] ...

Every option is a field of :class:`PriorTrainConfig` (``--help`` lists them with their docstrings). What it does:

1. Codes: every clip of ``--data`` is encoded by the VQ model with teacher forcing (the true condition frames of
   every transition): transition ``t`` of a clip, from condition window ``t`` to the next F frames, becomes code
   ``k_t`` (:func:`encode_clips`). The clips are split into training and held-out ones as ``vae.train`` splits
   them (``--holdout-every``, a motion and its mirrored copy together).
2. Windows: one per transition, the W positions ending at it (:func:`code_windows`). Position ``t`` holds
   (``k_{t-1}``, condition window ``t``) and its target is ``k_t``; positions before the clip's start hold (PAD,
   the clip's first condition window) and no target, as a rollout's first steps do (see :mod:`vae.prior`).
3. Loss: next-code cross-entropy over every position with a target (teacher forcing). AdamW (weight decay on the
   matrices only), the learning rate decaying linearly to 0 over all steps, gradients clipped at norm 1. Each
   epoch reports the training and held-out cross-entropy in nats, the held-out perplexity exp(CE) and accuracy;
   the unigram cross-entropy of the training codes (what a prior that ignores context and pose reaches) is logged
   once beside them.
4. Files: the prior (:func:`vae.prior.save_prior`, atomic) after every epoch, with the VQ model's fingerprint and,
   in ``extra``, ``train_config``, ``epoch``, ``optimizer``, ``history``, ``unigram_ce`` and ``interrupted``;
   ``metrics.csv`` in ``--log-dir``. Ctrl-C writes the prior (marked ``interrupted``) before exiting;
   ``--resume PRIOR`` continues at its epoch. Every epoch reseeds from ``(seed, epoch)``, so a run resumed from an
   end-of-epoch file reaches the weights of an uninterrupted one.
"""

from __future__ import annotations

import csv
import logging
import math
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from common.dataclass_cli import dataclass_parser
from common.paths import output_file, portable_path
from mocap.dataset import MotionDataset
from vae.checkpoint import load_manifold
from vae.data import holdout_split
from vae.metrics import code_usage
from vae.prior import (
    IGNORE,
    STEP_CONTEXT_TOLERANCE,
    CodePrior,
    PriorConfig,
    prior_config_for,
    read_prior,
    save_prior,
    vae_fingerprint,
)
from vae.train import default_log_dir, epoch_seed, to_cpu

logger = logging.getLogger("vae.train_prior")

ENCODE_BATCH = 4096
CSV_FIELDS = ["epoch", "lr", "train_ce", "heldout_ce", "heldout_perplexity", "heldout_accuracy", "seconds"]
# Flags that may change on --resume without changing what is trained.
RESUME_FREE_FLAGS = ("out", "resume", "stop_after_epoch", "progress", "log_dir", "threads")


@dataclass
class PriorTrainConfig:
    """Everything that decides a prior's training run (saved in the prior file as ``extra["train_config"]``)."""

    vae: str = ""
    """VQ Motion VAE checkpoint (`python -m vae.train --model vq`) whose codes the prior learns. Required."""

    data: str = ""
    """Prepared dataset (.npz from `python -m mocap.prepare`) of the VQ model's skeleton, usually its training data
    (with its styles when the VQ model has styles). Required."""

    out: str = ""
    """Prior file to write (.pt; atomically after every epoch and on Ctrl-C). Required."""

    context: int = 16
    """W, the (code, pose) pairs one step sees."""

    embed_size: int = 128
    """E, the transformer's width."""

    num_layers: int = 3
    """Transformer blocks (3 x 128 wide: about 0.34 ms per step at batch 1 in ONNX Runtime on one CPU thread)."""

    num_heads: int = 4
    """Attention heads."""

    dropout: float = 0.1
    """Dropout while training (embeddings, attention, residual branches)."""

    epochs: int = 20
    """Passes over every training window."""

    batch_size: int = 256
    """Windows per optimiser step."""

    learning_rate: float = 1e-3
    """Initial AdamW learning rate; decays linearly to 0 over training."""

    weight_decay: float = 0.01
    """AdamW weight decay of the weight matrices (not of biases, LayerNorms, embeddings)."""

    holdout_every: int = 10
    """Hold out every k-th motion (with its mirrored copy) to measure the held-out cross-entropy (0: none); 10 is
    vae.train's default, so the held-out clips are the VQ model's own."""

    seed: int = 1
    """Seed of the initial weights, the window order and dropout."""

    threads: int = 0
    """torch CPU threads (0: torch's default)."""

    log_dir: str = ""
    """metrics.csv (appended to across resumes) (default: beside --out, "<out stem>_logs")."""

    resume: str = ""
    """Prior file to continue from (its epoch, weights and optimiser); usually the same as --out. The model flags,
    --vae and --data must be those of its run."""

    stop_after_epoch: int = 0
    """Stop (with the prior written) once this many epochs are done, keeping the full schedule (0: run to the end)."""

    progress: bool = True
    """Show tqdm progress bars."""

    def prior_sizes(self) -> dict:
        return {"context": self.context, "embed_size": self.embed_size, "num_layers": self.num_layers,
                "num_heads": self.num_heads, "dropout": self.dropout}


def check_config(cfg: PriorTrainConfig) -> None:
    """Raise ValueError naming the flag for any value that cannot work."""
    problems = []
    for name, what in (("vae", "VQ.pt (a VQ Motion VAE from `python -m vae.train --model vq`)"),
                       ("data", "DATA.npz (a dataset from `python -m mocap.prepare`)"),
                       ("out", "PRIOR.pt (where to write the prior)")):
        if not getattr(cfg, name):
            problems.append(f"--{name} {what} is required")
    for name in ("context", "embed_size", "num_layers", "num_heads", "epochs", "batch_size"):
        if getattr(cfg, name) < 1:
            problems.append(f"--{name.replace('_', '-')} must be >= 1, got {getattr(cfg, name)}")
    for name in ("holdout_every", "seed", "threads", "stop_after_epoch"):
        if getattr(cfg, name) < 0:
            problems.append(f"--{name.replace('_', '-')} must be >= 0, got {getattr(cfg, name)}")
    if cfg.embed_size >= 1 and cfg.num_heads >= 1 and cfg.embed_size % cfg.num_heads:
        problems.append(f"--embed-size {cfg.embed_size} must be a multiple of --num-heads {cfg.num_heads}")
    if not (cfg.learning_rate > 0 and math.isfinite(cfg.learning_rate)):
        problems.append(f"--learning-rate must be a positive number, got {cfg.learning_rate}")
    if not (0 <= cfg.dropout < 1):
        problems.append(f"--dropout must be in [0, 1), got {cfg.dropout}")
    if not (cfg.weight_decay >= 0 and math.isfinite(cfg.weight_decay)):
        problems.append(f"--weight-decay must be >= 0, got {cfg.weight_decay}")
    if problems:
        raise ValueError("; ".join(problems))


# ---- the VQ model and the data ----------------------------------------------------------------------------

def load_vq(path: str):
    """The VQ manifold of ``--vae`` in eval mode; a Gaussian model or another file is an error naming the flag."""
    if not Path(path).is_file():
        raise FileNotFoundError(f"--vae {path}: no such file; train a VQ Motion VAE with "
                                f"`python -m vae.train --model vq --data DATA.npz --out {path}`")
    try:
        manifold = load_manifold(path)
    except ValueError as e:
        raise ValueError(f"--vae {e}") from None
    if not manifold.discrete:
        raise ValueError(f"--vae {path}: a Gaussian Motion VAE (model {manifold.config.model!r}) has no codes to "
                         f"learn a prior over; pass a VQ model (`python -m vae.train --model vq --data DATA.npz "
                         f"--out VQ.pt`)")
    return manifold


def load_matching_data(path: str, manifold, vae_path: str) -> MotionDataset:
    """``--data``, checked to be of the VQ model's skeleton (and styles); errors name both files."""
    if not Path(path).exists():
        raise FileNotFoundError(f"--data {path}: no such file; create it with `python -m mocap.prepare INPUT "
                                f"--out {path}`")
    try:
        dataset = MotionDataset.load(path)
    except ValueError as e:
        raise ValueError(f"--data {e}") from None
    d, joints = int(dataset.data.shape[1]), dataset.skeleton.num_joints
    if d != manifold.frame_size:
        raise ValueError(f"--data {path}: frames of {d} features ({joints} joints) but --vae {vae_path} was trained "
                         f"on frames of {manifold.frame_size}: another skeleton; use data prepared from the VQ "
                         f"model's skeleton")
    names = list(manifold.skeleton.joint_names) if manifold.skeleton is not None else None
    if names is not None and list(dataset.skeleton.joint_names) != names:
        raise ValueError(f"--data {path}: its joints {list(dataset.skeleton.joint_names)[:4]}... differ from those of "
                         f"--vae {vae_path} ({names[:4]}...): another skeleton of the same size")
    if manifold.num_styles:
        if dataset.num_styles != manifold.num_styles or (
                manifold.style_names and list(dataset.style_names) != list(manifold.style_names)):
            raise ValueError(f"--data {path}: styles {dataset.style_names or 'none'} but --vae {vae_path} was trained "
                             f"with {manifold.num_styles} styles {manifold.style_names}; prepare the data with the "
                             f"same `mocap.prepare --styles` pattern")
    if dataset.fingerprint() != manifold.dataset_fingerprint:
        logger.warning("--data %s is not the data --vae %s was trained on (fingerprints %s vs %s): the prior "
                       "learns the codes the VQ model gives this data", path, vae_path, dataset.fingerprint(),
                       manifold.dataset_fingerprint)
    return dataset


@dataclass(frozen=True)
class ClipCodes:
    """One clip encoded: ``codes`` (M,) int64 and the normalised condition window of each, ``conds`` (M, CD)."""

    codes: torch.Tensor
    conds: torch.Tensor
    style: int
    """The clip's style index (0 without styles)."""


@torch.no_grad()
def encode_clips(manifold, dataset: MotionDataset, clips: np.ndarray) -> list[ClipCodes]:
    """Each clip's transitions encoded with teacher forcing: code ``k_t`` from condition window ``t`` (frames
    ``t .. t+C-1``) to the next F frames. A clip of N frames has M = N - C - F + 1 codes (none when shorter)."""
    c, f, d = manifold.num_condition_frames, manifold.num_future_predictions, manifold.frame_size
    out = []
    for clip in clips:
        frames = torch.from_numpy(dataset.clip(int(clip))).float()  # (N, D)
        m = frames.shape[0] - c - f + 1
        if m < 1:
            continue
        norm = manifold.normalize(frames)  # (N, D)
        steps = torch.arange(m)[:, None]  # (M, 1)
        conds = norm[steps + torch.arange(c)].reshape(m, c * d)  # (M, C, D) -> (M, C*D)
        nexts = norm[steps + c + torch.arange(f)].reshape(m, f * d)  # (M, F, D) -> (M, F*D)
        style = int(dataset.clip_styles[int(clip)]) if manifold.num_styles else 0
        codes = torch.cat([
            manifold.encode(nexts[i:i + ENCODE_BATCH], conds[i:i + ENCODE_BATCH],
                            style=torch.full((len(conds[i:i + ENCODE_BATCH]),), style) if manifold.num_styles
                            else None)["indices"]
            for i in range(0, m, ENCODE_BATCH)])  # (M,)
        out.append(ClipCodes(codes.long(), conds, style))
    return out


@dataclass(frozen=True)
class CodeWindows:
    """Every training window of a set of clips, gathered by :meth:`batch` with one indexing operation.

    The clips' positions are laid end to end, each clip preceded by W - 1 padding positions, so the window ending at
    any transition is the W slots before it (``ends``)."""

    inputs: torch.Tensor
    """(P,) int64 input code of every slot: the previous code, or PAD."""
    conds: torch.Tensor
    """(P, CD) the slot's normalised condition window."""
    targets: torch.Tensor
    """(P,) int64 the code to predict, or IGNORE on padding."""
    styles: torch.Tensor
    """(P,) int64 the slot's clip style."""
    ends: torch.Tensor
    """(N,) int64 the last slot of every window (one window per transition)."""
    context: int

    def __len__(self) -> int:
        return int(self.ends.shape[0])

    def batch(self, which: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Windows ``which`` (B,) -> codes (B, W), conds (B, W, CD), targets (B, W), style (B,)."""
        slots = self.ends[which][:, None] - self.context + 1 + torch.arange(self.context)  # (B, W)
        return self.inputs[slots], self.conds[slots], self.targets[slots], self.styles[slots[:, -1]]


def code_windows(clips: list[ClipCodes], context: int, pad_code: int) -> CodeWindows:
    """The windows of ``clips`` (see :class:`CodeWindows`): slot ``t`` of a clip holds (k_{t-1} or PAD, condition
    window t) with target k_t; the W - 1 padding slots before it hold (PAD, condition window 0) without a target."""
    inputs, conds, targets, styles, ends = [], [], [], [], []
    offset = 0
    for clip in clips:
        m, pad = clip.codes.shape[0], context - 1
        previous = torch.cat((torch.tensor([pad_code]), clip.codes[:-1]))  # (M,)
        inputs.append(torch.cat((torch.full((pad,), pad_code), previous)))  # (W-1+M,)
        conds.append(torch.cat((clip.conds[:1].expand(pad, -1), clip.conds)))  # (W-1+M, CD)
        targets.append(torch.cat((torch.full((pad,), IGNORE), clip.codes)))  # (W-1+M,)
        styles.append(torch.full((pad + m,), clip.style))
        ends.append(offset + pad + torch.arange(m))
        offset += pad + m
    if not clips:
        return CodeWindows(torch.zeros(0, dtype=torch.long), torch.zeros(0, 0), torch.zeros(0, dtype=torch.long),
                           torch.zeros(0, dtype=torch.long), torch.zeros(0, dtype=torch.long), context)
    return CodeWindows(torch.cat(inputs).long(), torch.cat(conds), torch.cat(targets).long(),
                       torch.cat(styles).long(), torch.cat(ends).long(), context)


# ---- training ---------------------------------------------------------------------------------------------

def make_optimizer(prior: CodePrior, cfg: PriorTrainConfig) -> torch.optim.Optimizer:
    """AdamW with weight decay on the weight matrices only (decaying embeddings and norms only hurts)."""
    decay = [p for n, p in prior.named_parameters() if p.dim() >= 2 and "embedding" not in n]
    keep = [p for n, p in prior.named_parameters() if not (p.dim() >= 2 and "embedding" not in n)]
    return torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                              {"params": keep, "weight_decay": 0.0}], lr=cfg.learning_rate)


def window_loss(prior: CodePrior, windows: CodeWindows, which: torch.Tensor, styled: bool) -> tuple[torch.Tensor, ...]:
    """(mean cross-entropy over the positions with a target, their count, correct argmax predictions)."""
    codes, conds, targets, style = windows.batch(which)
    logits = prior(codes, conds, style if styled else None)  # (B, W, K)
    flat_targets = targets.reshape(-1)  # (B*W,)
    loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), flat_targets, ignore_index=IGNORE)
    valid = flat_targets != IGNORE
    correct = (logits.reshape(-1, logits.shape[-1]).argmax(-1) == flat_targets)[valid].sum()
    return loss, valid.sum(), correct


@torch.no_grad()
def evaluate(prior: CodePrior, windows: CodeWindows, batch_size: int, styled: bool) -> dict:
    """Held-out cross-entropy (nats per code), perplexity and accuracy, in eval mode (no dropout)."""
    if len(windows) == 0:
        return {"heldout_ce": float("nan"), "heldout_perplexity": float("nan"), "heldout_accuracy": float("nan")}
    was_training = prior.training
    prior.eval()
    total, count, correct = 0.0, 0, 0
    for start in range(0, len(windows), batch_size):
        which = torch.arange(start, min(start + batch_size, len(windows)))
        loss, n, right = window_loss(prior, windows, which, styled)
        total += float(loss) * int(n)
        count += int(n)
        correct += int(right)
    prior.train(was_training)
    ce = total / count
    return {"heldout_ce": ce, "heldout_perplexity": math.exp(ce), "heldout_accuracy": correct / count}


@torch.no_grad()
def context_curve(prior: CodePrior, windows: CodeWindows, batch_size: int, styled: bool) -> dict[int, float]:
    """Held-out cross-entropy of the next code (nats) as a rollout step sees it, from only the last w pairs, for w = 1,
    2, 4 ... W: a window's last w slots are exactly the w-pair window (both are padded the same way before a clip)."""
    was_training = prior.training
    prior.eval()
    widths = sorted({min(2 ** i, prior.context) for i in range(prior.context.bit_length() + 1)})
    curve = {}
    for w in widths:
        total = 0.0
        for start in range(0, len(windows), batch_size):
            which = torch.arange(start, min(start + batch_size, len(windows)))
            codes, conds, targets, style = windows.batch(which)
            logits = prior.step_logits(codes[:, -w:], conds[:, -w:], style if styled else None)  # (B, K)
            total += float(F.cross_entropy(logits, targets[:, -1], reduction="sum"))
        curve[w] = total / max(len(windows), 1)
    prior.train(was_training)
    return curve


def choose_step_context(curve: dict[int, float], context: int) -> int:
    """The shortest context whose cross-entropy is within STEP_CONTEXT_TOLERANCE of the whole window's."""
    if not curve:
        return context
    return min(w for w, ce in curve.items() if ce <= curve[context] + STEP_CONTEXT_TOLERANCE)


@dataclass
class PriorRun:
    """What a training run carries from epoch to epoch."""

    cfg: PriorTrainConfig
    prior: CodePrior
    optimizer: torch.optim.Optimizer
    train_windows: CodeWindows
    heldout_windows: CodeWindows
    vae: dict
    style_names: list
    unigram_ce: float
    history: list
    context_ce: dict | None = None  # {w: held-out CE from the last w pairs} of the finished prior

    @property
    def batches_per_epoch(self) -> int:
        return math.ceil(len(self.train_windows) / self.cfg.batch_size)

    @property
    def styled(self) -> bool:
        return self.prior.config.num_styles > 0


def run_epoch(run: PriorRun, epoch: int, show: bool) -> float:
    """One pass over the training windows in a seeded order; returns the mean training cross-entropy."""
    cfg, prior = run.cfg, run.prior
    torch.manual_seed(epoch_seed(cfg.seed, epoch, 0))  # the window order and dropout of this epoch
    order = torch.randperm(len(run.train_windows))
    total_steps = cfg.epochs * run.batches_per_epoch
    prior.train()
    total, count = 0.0, 0
    bar = tqdm(range(run.batches_per_epoch), desc=f"epoch {epoch + 1}", leave=False, disable=not show,
               dynamic_ncols=True)
    for b in bar:
        step = epoch * run.batches_per_epoch + b
        for group in run.optimizer.param_groups:
            group["lr"] = cfg.learning_rate * (1.0 - step / total_steps)
        loss, n, _ = window_loss(prior, run.train_windows, order[b * cfg.batch_size:(b + 1) * cfg.batch_size],
                                 run.styled)
        run.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(prior.parameters(), 1.0)
        run.optimizer.step()
        total += float(loss.detach()) * int(n)
        count += int(n)
        if show and b % 20 == 0:
            bar.set_postfix(ce=f"{float(loss.detach()):.3f}")
    return total / max(count, 1)


def save_run(run: PriorRun, path: Path, epochs_done: int, interrupted: bool) -> None:
    """The prior file, with in ``extra`` what ``--resume`` needs (see the module docstring)."""
    extra = {
        "train_config": {k: portable_path(v) for k, v in asdict(run.cfg).items()},
        "epoch": epochs_done,
        "optimizer": to_cpu(run.optimizer.state_dict()),
        "history": run.history,
        "unigram_ce": run.unigram_ce,
        "interrupted": interrupted,
    }
    if run.context_ce:
        extra["context_ce"] = {str(w): ce for w, ce in run.context_ce.items()}
        extra["step_context"] = choose_step_context(run.context_ce, run.prior.context)
    save_prior(path, run.prior, vae=run.vae, style_names=run.style_names, extra=extra)


def resume_from(cfg: PriorTrainConfig, run: PriorRun) -> tuple[int, bool]:
    """Weights, optimiser and progress from ``--resume``; returns (completed epochs, whether it was interrupted)."""
    ckpt = read_prior(cfg.resume)
    extra = ckpt.get("extra", {})
    if "optimizer" not in extra:
        raise ValueError(f"--resume {cfg.resume}: a prior without the optimiser state a resume needs")
    saved = PriorConfig.from_dict(ckpt["config"])
    if saved != run.prior.config:
        diff = {k: (v, getattr(run.prior.config, k)) for k, v in saved.to_dict().items()
                if getattr(run.prior.config, k) != v}
        raise ValueError(f"--resume {cfg.resume}: its model differs from the flags (field: (file, flags)) {diff}; "
                         "use the model flags of its run")
    if ckpt["vae"].get("weights") != run.vae["weights"]:
        raise ValueError(f"--resume {cfg.resume}: trained on the codes of another VQ model than --vae {cfg.vae}")
    run.prior.load_state_dict(ckpt["state_dict"])
    run.optimizer.load_state_dict(extra["optimizer"])
    run.history[:] = list(extra.get("history", []))
    old = extra.get("train_config", {})
    changed = {k: (old[k], v) for k, v in asdict(cfg).items()
               if k in old and old[k] != portable_path(v) and k not in RESUME_FREE_FLAGS}
    if changed:
        logger.warning("resume: flags differ from the prior's run (old, new): %s", changed)
    return int(extra["epoch"]), bool(extra.get("interrupted", False))


def open_csv(log_dir: Path):
    log_dir.mkdir(parents=True, exist_ok=True)
    path = log_dir / "metrics.csv"
    new = not path.exists() or path.stat().st_size == 0
    handle = open(path, "a", newline="")
    writer = csv.DictWriter(handle, fieldnames=CSV_FIELDS, extrasaction="ignore")
    if new:
        writer.writeheader()
    return handle, writer


def prepare_run(cfg: PriorTrainConfig) -> PriorRun:
    """The VQ model, the data's code windows, a fresh prior (seeded) and its optimiser."""
    manifold = load_vq(cfg.vae)
    dataset = load_matching_data(cfg.data, manifold, cfg.vae)
    train_clips, heldout_clips = holdout_split(dataset.clip_names, cfg.holdout_every)
    torch.manual_seed(cfg.seed)
    prior = CodePrior(prior_config_for(manifold, **cfg.prior_sizes()))
    pad = prior.config.pad_code
    train_codes = encode_clips(manifold, dataset, train_clips)
    if not train_codes:
        raise ValueError(f"--data {cfg.data}: no training clip is longer than the {manifold.num_condition_frames} "
                         "condition frames the VQ model needs; use longer clips")
    train_windows = code_windows(train_codes, cfg.context, pad)
    heldout_windows = code_windows(encode_clips(manifold, dataset, heldout_clips), cfg.context, pad)
    perplexity, used = code_usage(torch.cat([c.codes for c in train_codes]), manifold.num_codes)
    logger.info("codes: %d training windows, %d held out; the data uses %d of %d codes (perplexity %.1f, unigram "
                "cross-entropy %.3f nats)", len(train_windows), len(heldout_windows), used, manifold.num_codes,
                perplexity, math.log(perplexity))
    return PriorRun(cfg, prior, make_optimizer(prior, cfg), train_windows, heldout_windows, vae_fingerprint(manifold),
                    list(manifold.style_names), math.log(perplexity), [])


def train_prior(cfg: PriorTrainConfig) -> Path:
    """Run the training described by ``cfg``; returns the prior's path (see the module docstring)."""
    check_config(cfg)
    out_path = output_file(cfg.out, "--out", (".pt",))
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    run = prepare_run(cfg)
    start, _ = resume_from(cfg, run) if cfg.resume else (0, False)
    last = cfg.epochs if cfg.stop_after_epoch <= 0 else min(cfg.epochs, cfg.stop_after_epoch)
    handle, writer = open_csv(Path(cfg.log_dir) if cfg.log_dir else default_log_dir(cfg.out))
    done = start
    with handle, tqdm(range(start, last), desc="epochs", disable=not cfg.progress, initial=start, total=last,
                      dynamic_ncols=True) as epochs:
        try:
            for epoch in epochs:
                t0 = time.perf_counter()
                lr = cfg.learning_rate * (1.0 - epoch / cfg.epochs)  # at the epoch's first step
                train_ce = run_epoch(run, epoch, cfg.progress)
                row = {"epoch": epoch + 1, "lr": lr, "train_ce": train_ce,
                       **evaluate(run.prior, run.heldout_windows, cfg.batch_size, run.styled),
                       "seconds": time.perf_counter() - t0}
                run.history.append(row)
                writer.writerow(row)
                handle.flush()
                heldout = ("no held-out clips" if len(run.heldout_windows) == 0 else
                           f"held-out CE {row['heldout_ce']:.3f} (perplexity {row['heldout_perplexity']:.1f}, "
                           f"accuracy {100 * row['heldout_accuracy']:.1f}%)")
                logger.info("epoch %d/%d: train CE %.3f, %s; unigram CE %.3f; %.1f s", epoch + 1, cfg.epochs,
                            train_ce, heldout, run.unigram_ce, row["seconds"])
                epochs.set_postfix(ce=f"{train_ce:.3f}", heldout=f"{row['heldout_ce']:.3f}")
                done = epoch + 1
                if done == cfg.epochs:
                    finish(run)
                save_run(run, out_path, done, interrupted=False)
        except KeyboardInterrupt:
            save_run(run, out_path, done, interrupted=True)
            logger.warning("interrupted: the prior so far written to %s (%d epochs complete); continue with "
                           "--resume %s", out_path, done, out_path)
            raise
    if start >= last:
        if start >= cfg.epochs:
            finish(run)
        save_run(run, out_path, start, interrupted=False)
    return out_path


def finish(run: PriorRun) -> None:
    """Measure the context a rollout step needs (``step_context``, stored in the file)."""
    if len(run.heldout_windows) == 0:
        return
    run.context_ce = context_curve(run.prior, run.heldout_windows, run.cfg.batch_size, run.styled)
    chosen = choose_step_context(run.context_ce, run.prior.context)
    logger.info("held-out CE from the last w pairs: %s; rollout steps use the last %d",
                ", ".join(f"w={w} {ce:.3f}" for w, ce in run.context_ce.items()), chosen)


def main(argv: list[str] | None = None) -> int:
    parser = dataclass_parser(PriorTrainConfig, prog="python -m vae.train_prior",
                              description="Train a transformer prior over a VQ Motion VAE's codes.")
    cfg = PriorTrainConfig(**vars(parser.parse_args(argv)))
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        path = train_prior(cfg)
    except (FileNotFoundError, ValueError) as e:
        print(f"vae.train_prior: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    print(f"prior: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
