"""``python -m vae.train``: train a Motion VAE (Ling et al. 2020) on a prepared dataset.

Usage::

    python -m vae.train --data DATA.npz --out CKPT.pt [--model mixture|vae|vq] [--epochs options] ...
    torchrun --nproc_per_node 2 -m vae.train --data DATA.npz --out CKPT.pt ...   # DistributedDataParallel

Every option is a field of :class:`TrainConfig` (``--help`` lists them with their docstrings). :func:`train` reads
top to bottom, one function per stage: processes (:func:`start_processes`), data (:func:`load_data`), the log file,
model and optimiser, the starting point (:func:`resume_training` / :func:`init_weights_from`), then per epoch
:func:`run_epoch`, :func:`epoch_metrics`, :func:`report_epoch` and the checkpoint (:func:`save_run`). What it does:

1. Data: the dataset (``mocap.prepare``) is split into training and held-out clips (``--holdout-every``,
   :func:`vae.data.holdout_split`); normalisation statistics (mean/std per feature over the training frames) go
   into the model's buffers, and all frames are normalised once. A sample is a window of ``C`` condition frames
   followed by an ``L``-step rollout (``L = --rollout-steps``, 8 as in the paper), each step predicting ``F``
   frames; windows never cross a clip boundary (:mod:`vae.data`).
2. Scheduled sampling, as in the paper: ``teacher_epochs`` of teacher forcing (the condition of every rollout
   step is the ground truth), ``ramping_epochs`` in which the probability of feeding back the model's own
   prediction rises linearly (epoch i of R uses (i+1)/(R+1)), then ``student_epochs`` that always feed back the
   prediction. As in the reference code the choice is one coin per rollout step for the whole batch, and the
   fed-back prediction is detached: no gradient flows through the feedback.
3. Loss per rollout step: ``recon + beta * kl`` (Gaussian models) or ``recon + vq_loss`` (VQ), where ``recon`` is
   the mean squared error per element of the normalised frames and ``kl`` is KL(q(z|x) || N(0, I)) in nats *per
   latent dim* (batch mean of each dim, clamped from below at ``free_bits``, then averaged over dims). This is the
   reference code's normalisation (MSE mean, KL sum / numel, kl_beta = 1). Against an ELBO with unit-variance
   Gaussian frames it weighs the KL by about D / (2 Z) more, which is what makes the reference prone to posterior
   collapse; ``kl_warmup_epochs`` (beta rises linearly from 0) and ``free_bits`` (no pressure on a dim below that
   many nats) keep the latent in use. As in the reference, Adam steps after every rollout step (the graph of a
   step ends at the detached fed-back prediction, so each step's backward is independent);
   ``--no-update-every-step`` accumulates the L steps' gradients and steps once per rollout instead.
4. Adam, learning rate decaying linearly to 0 over all optimiser steps.
   Optional VQGAN-style adversarial term (``--adversarial-weight W`` > 0, one process only, :mod:`vae.adversarial`):
   from ``--adversarial-start-epoch`` on, at every rollout step k >= T - 1 (``T = --adversarial-window``) the last
   T frames the model decoded in this rollout (the first T - 1 detached: their graphs ended with their own steps)
   form a fake window, the data frames at the same places a real one; the model's loss gains ``W * g_loss`` of a
   window discriminator, which then takes its own Adam step (betas 0.5, 0.9, constant learning rate) on
   ``d_loss``. Its weights and optimiser go into the checkpoint as ``extra["adversarial"]`` for ``--resume``,
   never into the model's state dict.
5. Each epoch: KL per latent dim, active units (dims whose posterior mean varies across samples by more than
   0.01, Burda et al.), VQ perplexity; a loud warning when fewer than half the dims are active or the total KL
   is below 0.1 nats (posterior collapse: the decoder ignores z, a random walk just replays the mean motion).
   Progress with tqdm; every loss term to TensorBoard and ``metrics.csv`` in ``--log-dir``; a random-walk preview
   BVH every ``--preview-every`` epochs; a checkpoint every ``--checkpoint-every`` epochs and at the end.

Checkpoints (:func:`vae.checkpoint.save_checkpoint`, atomic, ``torch.load(weights_only=True)``) carry in ``extra``:
``train_config``, ``epoch`` (completed epochs), ``optimizer``, ``rng_state``, ``start_frames`` (S <= 512, C, D raw
condition windows from the training clips; environments start characters from them), ``data_quality`` (the
training clips' METRICS.md figures, :mod:`mocap.quality`), ``feature_envelope`` ((D,)
largest |normalised value| of each feature on the training frames: environments call a character diverged far
beyond it), ``history`` (per-epoch
metrics), ``holdout`` (the split) and ``interrupted``; a finished run's checkpoint also holds the foot contact
channels fitted after the last epoch (``--contact-epochs``, :mod:`vae.contacts`). ``--resume CKPT`` continues from the checkpoint's epoch with
the weights, optimiser state and learning-rate schedule restored. Every epoch reseeds the random generators from
``(seed, epoch, rank)``, so a run resumed from an end-of-epoch checkpoint reaches the same weights as an
uninterrupted one. Ctrl-C saves a checkpoint (marked ``interrupted``: the epoch in progress counts as not done)
before exiting. A shipped checkpoint (``python -m vae.ship``) has no optimiser or generator state and cannot be
resumed; ``--init-from CKPT`` starts a new run (epoch 0, fresh optimiser and schedule) from its weights and
normalisation instead.

DistributedDataParallel: under ``torchrun`` (``WORLD_SIZE`` > 1) ``batch_size`` is the global batch; each rank
trains on its contiguous share of every global batch one process would see (:class:`vae.data.WindowSampler`),
gradients are averaged by DDP (gloo on CPU, nccl on CUDA), every rank flips the same scheduled-sampling coin, the
VQ codebook's EMA statistics are all-reduced by the model itself, epoch metrics are summed across ranks, and rank 0
alone logs, previews and writes checkpoints. So N ranks take the optimiser steps one process would, except for what
is drawn or clamped per rank: the latent noise and the feedback latent noise (each rank's own generator), the
free-bits clamp (applied to each rank's batch mean) and the VQ codebook's random initialisation and resets (from rank 0's share).
"""

from __future__ import annotations

import contextlib
import csv
import logging
import math
import os
import sys
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from tqdm.auto import tqdm

from common.dataclass_cli import dataclass_parser
from common.paths import output_file
from common.processes import Processes, join_processes
from mocap.dataset import MotionDataset
from mocap.features import frames_to_world
from mocap.quality import quality_over, toe_joints
from vae.adversarial import GAN_LOSSES, WindowDiscriminator, discriminator_accuracy
from vae.checkpoint import TRAINING_ONLY_KEYS, build_model, read_checkpoint, save_checkpoint
from vae.config import MODELS, VAEConfig
from vae.contacts import fit_contacts
from vae.data import (
    WindowDataset,
    WindowSampler,
    clip_frame_indices,
    frame_statistics,
    holdout_split,
    valid_window_starts,
    window_length,
)
from vae.manifold import MotionManifold
from vae.metrics import active_units, gaussian_kl_per_dim, variance_from_moments

logger = logging.getLogger("vae.train")

MAX_START_FRAMES = 512
# Flags that may change on --resume without changing what is trained.
RESUME_FREE_FLAGS = ("out", "resume", "init_from", "stop_after_epoch", "progress", "log_dir", "threads", "device",
                     "preview_every", "preview_frames", "checkpoint_every")
COLLAPSE_KL_NATS = 0.1
HELD_CHECK_PER_LEVEL = 16
POSTERIOR_WINDOWS = 32768
HELD_CHECK_MAX = 0.02


@dataclass
class TrainConfig:
    """Everything that decides a training run (saved in the checkpoint as ``extra["train_config"]``)."""

    data: str = ""
    """Prepared dataset (.npz from `python -m mocap.prepare`). Required."""

    out: str = ""
    """Checkpoint path to write (atomically, every --checkpoint-every epochs and at the end). Required."""

    model: str = "mixture"
    """Manifold: "mixture" (PoseMixtureVAE, the paper's), "vae" (single-MLP decoder) or "vq" (discrete codes)."""

    latent_size: int = 32
    """Z, latent size (Gaussian) or code vector size (VQ)."""

    hidden_size: int = 256
    """Width of the encoder and decoder hidden layers."""

    num_experts: int = 6
    """Experts of the mixture decoder ("mixture" and "vq")."""

    num_codes: int = 512
    """K, codebook size ("vq")."""

    num_condition_frames: int = 1
    """C, past frames the decoder is conditioned on."""

    num_future_predictions: int = 1
    """F, frames predicted per step (the first is fed back)."""

    rollout_steps: int = 8
    """L, autoregressive steps per training sample (8 in the paper)."""

    teacher_epochs: int = 20
    """Epochs of teacher forcing (paper: 20)."""

    ramping_epochs: int = 20
    """Epochs in which the probability of feeding back the prediction rises linearly from 0 to 1 (paper: 20)."""

    student_epochs: int = 100
    """Epochs that always feed back the model's prediction (paper: 100)."""

    feedback_latent_noise: float = 1.5
    """In student steps, the prediction fed back as the next condition is decoded from the posterior latent plus
    Gaussian noise of this std (a latent pushed off the posterior, as a policy pushes it); the following steps
    learn to lead it back to the data. Measured on Bandai-Namco (11 epochs, seed 0, 128 characters per level): with
    1.5, characters holding a 2-sigma latent for 30 s diverged 1.6 % of the time against 13 % without (0: off, the
    paper's training)."""

    condition_noise: float = 0.0
    """Std of Gaussian noise added to the (normalised) condition frames the model sees while training; the targets
    stay clean, so the decoder learns to lead slightly-off poses back to the data (0: off)."""

    batch_size: int = 256
    """Windows per optimiser step, over all ranks (the reference used 64; 256 trains several times faster per
    frame on CPU and reaches a similar loss with the default learning rate)."""

    learning_rate: float = 3e-4
    """Initial Adam learning rate; decays linearly to 0 over training (reference: 1e-4 at batch 64)."""

    kl_beta: float = 1.0
    """Weight of the KL term (nats per latent dim) against the per-element MSE; the reference used 1.0."""

    kl_warmup_epochs: float = 5.0
    """Epochs over which beta rises linearly from 0 to kl_beta (0: no warm-up)."""

    free_bits: float = 0.1
    """Free bits, nats per latent dim: a dim's batch-mean KL below this is not penalised (0: off)."""

    update_every_step: bool = True
    """Adam step after every rollout step, as the reference (default); --no-update-every-step accumulates the L
    steps' gradients and steps once per rollout (8x fewer updates: on Bandai-Namco it reached recon 0.153 after
    2 epochs against 0.022 with per-step updates, at the same frames/s since a fused Adam step costs ~0.5 ms)."""

    holdout_every: int = 10
    """Hold out every k-th motion (with its mirrored copy) for evaluation (0: train on all clips)."""

    seed: int = 1
    """Seed of the initial weights, the window order, scheduled sampling and the latent noise."""

    device: str = "cpu"
    """Torch device: "cpu", "cuda" or "cuda:N" (under torchrun with CUDA each rank uses cuda:LOCAL_RANK)."""

    threads: int = 0
    """torch CPU threads per process (0: torch's default)."""

    log_dir: str = ""
    """TensorBoard events, metrics.csv, train.log and preview BVHs (default: beside --out, "<out stem>_logs")."""

    checkpoint_every: int = 1
    """Write the checkpoint every this many epochs (and always at the end)."""

    preview_every: int = 10
    """Write a random-walk preview BVH every this many epochs (0: never)."""

    preview_frames: int = 300
    """Frames in each preview random walk."""

    resume: str = ""
    """Checkpoint to continue from (its epoch, weights, optimiser and schedule); usually the same as --out. The
    model flags must match; other training flags should (a warning lists differences): e.g. more
    --student-epochs extends a finished run, the learning rate and sampling then following the longer schedule."""

    init_from: str = ""
    """Start from the weights and normalisation of this Motion VAE checkpoint (any, including a shipped one from
    `python -m vae.ship`) with a fresh optimiser and learning-rate schedule from epoch 0, e.g. to fine-tune on other
    data of the same skeleton. The data's frame size and the model flags must match the checkpoint's."""

    stop_after_epoch: int = 0
    """Stop (with a checkpoint) once this many epochs are done, keeping the full schedule (0: run to the end)."""

    styles: bool = True
    """Condition the model on the data's clip styles when it has them (`mocap.prepare --styles`); --no-styles
    trains one style-less model on all of them."""

    progress: bool = True
    """Show tqdm progress bars."""

    final_checks: bool = True
    """After the last epoch, hold latents for 30 s on a sample of characters and warn if they leave the data."""

    contact_epochs: int = 8
    """After the last epoch, fit foot contact channels (:mod:`vae.contacts`) to the data's contact labels for this many
    epochs, the model frozen (0: none; the foot locker then reads contacts from the poses)."""

    adversarial_weight: float = 0.0
    """W, weight of a VQGAN-style adversarial term (:mod:`vae.adversarial`): a small discriminator on windows of
    --adversarial-window consecutive decoded frames of the rollout, trained against the data's windows; the model's
    loss gains W * its generator loss (0: off; one process only, not under torchrun)."""

    adversarial_window: int = 4
    """T, consecutive frames per discriminator window (2 .. --rollout-steps)."""

    adversarial_start_epoch: int = 0
    """First (0-based) epoch that trains the discriminator and adds the adversarial term (VQGAN starts it late, once
    reconstructions are reasonable)."""

    adversarial_loss: str = "hinge"
    """GAN loss: "hinge" (VQGAN's) or "bce" (non-saturating)."""

    @property
    def epochs(self) -> int:
        return self.teacher_epochs + self.ramping_epochs + self.student_epochs

    def vae_config(self, frame_size: int, num_styles: int = 0) -> VAEConfig:
        return VAEConfig(
            num_styles=num_styles if self.styles else 0,
            model=self.model,
            frame_size=frame_size,
            num_condition_frames=self.num_condition_frames,
            num_future_predictions=self.num_future_predictions,
            latent_size=self.latent_size,
            hidden_size=self.hidden_size,
            num_experts=self.num_experts,
            num_codes=self.num_codes,
        )


def check_config(cfg: TrainConfig) -> None:
    """Raise ValueError naming the flag for any value that cannot work."""
    problems = []
    if not cfg.data:
        problems.append("--data DATA.npz is required (a dataset from `python -m mocap.prepare`)")
    if not cfg.out:
        problems.append("--out CKPT is required (where to write the checkpoint)")
    if cfg.model not in MODELS:
        problems.append(f"--model {cfg.model!r}: choose one of {', '.join(MODELS)}")
    for name in ("latent_size", "hidden_size", "num_experts", "num_codes", "num_condition_frames",
                 "num_future_predictions", "rollout_steps", "batch_size", "checkpoint_every", "preview_frames"):
        if getattr(cfg, name) < 1:
            problems.append(f"--{name.replace('_', '-')} must be >= 1, got {getattr(cfg, name)}")
    for name in ("teacher_epochs", "ramping_epochs", "student_epochs", "holdout_every", "preview_every",
                 "stop_after_epoch", "threads", "contact_epochs"):
        if getattr(cfg, name) < 0:
            problems.append(f"--{name.replace('_', '-')} must be >= 0, got {getattr(cfg, name)}")
    if cfg.resume and cfg.init_from:
        problems.append("--resume and --init-from exclude each other: --resume continues a run with its optimiser "
                        "state, --init-from starts a new one from a checkpoint's weights")
    if cfg.epochs < 1:
        problems.append("--teacher-epochs + --ramping-epochs + --student-epochs must be >= 1")
    for name in ("learning_rate",):
        if not getattr(cfg, name) > 0 or not math.isfinite(getattr(cfg, name)):
            problems.append(f"--{name.replace('_', '-')} must be a positive number, got {getattr(cfg, name)}")
    for name in ("kl_beta", "kl_warmup_epochs", "free_bits", "condition_noise", "feedback_latent_noise"):
        if not getattr(cfg, name) >= 0 or not math.isfinite(getattr(cfg, name)):
            problems.append(f"--{name.replace('_', '-')} must be >= 0, got {getattr(cfg, name)}")
    problems += adversarial_problems(cfg)
    if not (cfg.device == "cpu" or cfg.device == "cuda" or cfg.device.startswith("cuda:")):
        problems.append(f"--device {cfg.device!r}: use cpu, cuda or cuda:N")
    elif cfg.device.startswith("cuda") and not torch.cuda.is_available():
        problems.append(f"--device {cfg.device}: CUDA is not available on this machine; use --device cpu")
    if problems:
        raise ValueError("; ".join(problems))


def adversarial_problems(cfg: TrainConfig) -> list[str]:
    """What is wrong with the --adversarial-* flags (nothing is checked beyond the weight when it is 0: off)."""
    if not (cfg.adversarial_weight >= 0 and math.isfinite(cfg.adversarial_weight)):
        return [f"--adversarial-weight must be >= 0 (0: off), got {cfg.adversarial_weight}"]
    if cfg.adversarial_weight == 0:
        return []
    problems = []
    if not 2 <= cfg.adversarial_window <= cfg.rollout_steps:
        problems.append(f"--adversarial-window must be between 2 and --rollout-steps ({cfg.rollout_steps}): the "
                        f"decoded frames of one rollout, got {cfg.adversarial_window}")
    if not 0 <= cfg.adversarial_start_epoch < cfg.epochs:
        problems.append(f"--adversarial-start-epoch must be in [0, {cfg.epochs}) (the run's epochs), got "
                        f"{cfg.adversarial_start_epoch}: the adversarial term would never be used")
    if cfg.adversarial_loss not in GAN_LOSSES:
        problems.append(f"--adversarial-loss {cfg.adversarial_loss!r}: choose one of {', '.join(GAN_LOSSES)}")
    return problems


def student_probability(cfg: TrainConfig, epoch: int) -> float:
    """Probability of feeding back the model's own prediction in (0-based) ``epoch``."""
    if epoch < cfg.teacher_epochs:
        return 0.0
    i = epoch - cfg.teacher_epochs
    if i < cfg.ramping_epochs:
        return (i + 1) / (cfg.ramping_epochs + 1)
    return 1.0


def kl_weight(cfg: TrainConfig, epoch_progress: float) -> float:
    """beta after ``epoch_progress`` epochs (fractional), with the linear warm-up."""
    if cfg.kl_warmup_epochs <= 0:
        return cfg.kl_beta
    return cfg.kl_beta * min(1.0, epoch_progress / cfg.kl_warmup_epochs)


def epoch_seed(seed: int, epoch: int, rank: int) -> int:
    return int(np.random.SeedSequence([seed, epoch, rank]).generate_state(1)[0])


def rng_state() -> dict:
    """The process's random generator states as tensors (``weights_only`` loadable)."""
    np_state = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "numpy_keys": torch.from_numpy(np_state[1].astype(np.int64)),
        "numpy_pos": int(np_state[2]),
    }
    if torch.cuda.is_available():
        state["cuda"] = [s for s in torch.cuda.get_rng_state_all()]
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(("MT19937", state["numpy_keys"].numpy().astype(np.uint32), state["numpy_pos"], 0, 0.0))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def to_cpu(obj):
    """Tensors inside nested dicts/lists moved to the CPU (optimizer state for the checkpoint)."""
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu()
    if isinstance(obj, dict):
        return {k: to_cpu(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(to_cpu(v) for v in obj)
    return obj


def load_training_data(cfg: TrainConfig) -> MotionDataset:
    path = Path(cfg.data)
    if not path.exists():
        raise FileNotFoundError(f"--data {path}: no such file; create a dataset with "
                                f"`python -m mocap.prepare INPUT --out {path}`")
    return MotionDataset.load(path)


def default_log_dir(out: str) -> Path:
    out_path = Path(out)
    return out_path.parent / f"{out_path.stem}_logs"


def collapse_message(kl_total: float, active: int, cfg: TrainConfig) -> str | None:
    """The posterior-collapse warning for an epoch, or None when the latent is in use."""
    if active >= cfg.latent_size / 2 and kl_total >= COLLAPSE_KL_NATS:
        return None
    return (
        f"POSTERIOR COLLAPSE: {active}/{cfg.latent_size} latent dims active, total KL {kl_total:.3g} nats. The "
        f"decoder ignores z, so random walks replay an average motion. Raise --free-bits (now {cfg.free_bits}, "
        f"e.g. {max(0.1, 2 * cfg.free_bits):g}), lengthen --kl-warmup-epochs (now {cfg.kl_warmup_epochs:g}) or "
        f"lower --kl-beta (now {cfg.kl_beta:g})."
    )


def write_preview(model, start_window: torch.Tensor, frames: int, seed: int, path: Path, skeleton, fps) -> None:
    """A random walk (z from the prior every frame) from ``start_window`` (C, D) raw, written as BVH."""
    try:
        from mocap.bvh import write_bvh
        from mocap.features import frames_to_motion
    except ImportError as e:
        logger.info("preview skipped: BVH export is unavailable (%s)", e)
        return
    gen = torch.Generator(device="cpu").manual_seed(seed)
    was_training = model.training
    model.eval()
    with torch.no_grad():
        cond = start_window[None].clone()  # (1, C, D)
        out = torch.empty(frames, cond.shape[-1], device=cond.device)
        for t in range(frames):
            nxt = model.step(model.sample_prior(1, generator=gen), cond)  # (1, D)
            out[t] = nxt[0]
            cond = torch.cat([cond[:, 1:], nxt[:, None]], dim=1)
    model.train(was_training)
    walk = torch.cat([start_window, out]).double().cpu().numpy()  # (C + T, D)
    if not np.isfinite(walk).all():
        logger.warning("preview %s not written: the random walk produced non-finite frames", path.name)
        return
    write_bvh(path, frames_to_motion(walk, skeleton, fps, name=path.stem))
    logger.info("preview written: %s", path)



# New columns go last: metrics.csv is appended to across resumes under the header it was created with.
CSV_FIELDS = ["epoch", "p_student", "beta", "lr", "loss", "recon", "kl_total", "kl_dim_min", "kl_dim_mean",
              "kl_dim_max", "active_units", "vq_loss", "commit_loss", "perplexity", "samples_per_s", "seconds",
              "adv_d_loss", "adv_g_loss", "adv_real_logit", "adv_fake_logit", "adv_d_accuracy"]


# ---- stage 1: processes ---------------------------------------------------------------------------------

def start_processes(cfg: TrainConfig, cleanup: contextlib.ExitStack) -> Processes:
    """Join the torchrun process group (``WORLD_SIZE`` > 1), pick the device, set the CPU threads."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if cfg.adversarial_weight > 0 and world_size > 1:
        # The discriminator would need its own DistributedDataParallel and a synchronised update; not worth it for
        # an experimental term, so refuse before joining the process group.
        raise ValueError(f"--adversarial-weight {cfg.adversarial_weight} is not supported under torchrun "
                         f"(WORLD_SIZE {world_size}): train with one process (`python -m vae.train`) or without "
                         "--adversarial-weight")
    procs = join_processes(torch.device(cfg.device), cleanup)
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    if cfg.batch_size % procs.world_size != 0:
        raise ValueError(f"--batch-size {cfg.batch_size} must be divisible by the {procs.world_size} processes")
    return procs


# ---- stage 2: data --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class TrainingData:
    """The dataset, its training / held-out split and the windows a training sample is cut from."""

    dataset: MotionDataset
    train_clips: np.ndarray
    heldout_clips: np.ndarray
    starts: np.ndarray
    """(S,) first frame of every training window."""
    window: int
    """W, frames per window."""

    @property
    def frame_size(self) -> int:
        return int(self.dataset.data.shape[1])

    @property
    def num_styles(self) -> int:
        return self.dataset.num_styles

    def window_styles(self, device: torch.device) -> torch.Tensor | None:
        """(S,) the style of every training window (its clip's), or None without styles."""
        frame_styles = self.dataset.frame_styles()
        return None if frame_styles is None else torch.from_numpy(frame_styles[self.starts]).to(device)

    def statistics(self) -> tuple[np.ndarray, np.ndarray]:
        """Normalisation mean and std (D,) over the training clips' frames."""
        return frame_statistics(self.dataset.data, clip_frame_indices(self.dataset.end_indices, self.train_clips))

    def start_choice(self, seed: int) -> np.ndarray:
        """Indices of the (at most MAX_START_FRAMES) training windows environments start characters from."""
        rng = np.random.default_rng([seed, 7])
        return np.sort(rng.choice(len(self.starts), size=min(MAX_START_FRAMES, len(self.starts)), replace=False))

    def start_frames(self, seed: int, num_condition_frames: int) -> torch.Tensor:
        """(S <= MAX_START_FRAMES, C, D) raw condition windows where environments start characters."""
        first = self.starts[self.start_choice(seed)][:, None] + np.arange(num_condition_frames)  # (S, C)
        return torch.from_numpy(self.dataset.data[first]).float()  # (S, C, D)

    def start_styles(self, seed: int) -> torch.Tensor | None:
        """(S,) the style of each start window (a character starting there starts in that style), or None."""
        frame_styles = self.dataset.frame_styles()
        return None if frame_styles is None else torch.from_numpy(frame_styles[self.starts[self.start_choice(seed)]])

    def feature_envelope(self, model) -> torch.Tensor:
        """(D,) the largest |normalised value| each feature takes on the training frames: the data's envelope,
        beyond which environments call a character diverged (``extra["feature_envelope"]``)."""
        mean, std = model.data_mean.cpu().numpy(), model.data_std.cpu().numpy()
        frames = self.dataset.data[clip_frame_indices(self.dataset.end_indices, self.train_clips)]
        return torch.from_numpy(np.abs((frames - mean) / std).max(axis=0)).float()  # (D,)

    def quality(self) -> dict:
        """METRICS.md figures of the training clips (:mod:`mocap.quality`): the bar generated motion is judged
        against, stored as ``extra["data_quality"]`` so evaluations of the model and its policies show it."""
        try:
            toes = toe_joints(self.dataset.skeleton)
        except ValueError:
            return {}
        clips = [frames_to_world(self.dataset.clip(int(c)).astype(np.float64))[1] for c in self.train_clips]
        return quality_over(clips, toes, self.dataset.fps)

    def normalised_windows(self, model, device: torch.device) -> WindowDataset:
        """All frames normalised once with the model's statistics (the checkpoint's when resuming)."""
        mean, std = model.data_mean.cpu().numpy(), model.data_std.cpu().numpy()
        return WindowDataset((self.dataset.data - mean) / std, self.starts, self.window, device)  # frames (N, D)


def load_data(cfg: TrainConfig) -> TrainingData:
    """Load ``--data`` and cut it into training windows; errors name the flag that fixes them."""
    dataset = load_training_data(cfg)
    c, f, steps = cfg.num_condition_frames, cfg.num_future_predictions, cfg.rollout_steps
    window = window_length(c, steps, f)
    train_clips, heldout_clips = holdout_split(dataset.clip_names, cfg.holdout_every)
    starts = valid_window_starts(dataset.end_indices, window, train_clips)
    if len(starts) == 0:
        clip_lengths = np.diff(np.concatenate([[-1], dataset.end_indices]))
        longest = int(clip_lengths[train_clips].max()) if len(train_clips) else 0
        raise ValueError(
            f"--data {cfg.data}: no training clip has the {window} frames a sample needs (C={c} condition + "
            f"{steps} rollout steps + F={f} - 1); the longest training clip has {longest} frames. Use longer "
            f"clips or lower --rollout-steps / --num-condition-frames / --num-future-predictions"
        )
    if len(starts) < cfg.batch_size:
        raise ValueError(f"--batch-size {cfg.batch_size} is larger than the {len(starts)} training windows in "
                         f"{cfg.data}; lower --batch-size")
    return TrainingData(dataset, train_clips, heldout_clips, starts, window)


# ---- stage 3: the log file ------------------------------------------------------------------------------

def open_log_file(cfg: TrainConfig, data: TrainingData, cleanup: contextlib.ExitStack) -> Path:
    """train.log in the log folder beside the console (rank 0); returns the log folder."""
    log_dir = Path(cfg.log_dir) if cfg.log_dir else default_log_dir(cfg.out)
    log_dir.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(log_dir / "train.log")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    logger.addHandler(handler)
    if logger.getEffectiveLevel() > logging.INFO:
        logger.setLevel(logging.INFO)  # the log file always gets the epoch lines
    cleanup.callback(logger.removeHandler, handler)
    cleanup.callback(handler.close)
    dataset = data.dataset
    logger.info("config:\n%s", "\n".join(f"  {k} = {v!r}" for k, v in asdict(cfg).items()))
    logger.info("data: %s; training %d clips, %d windows of %d frames; held out %d clips: %s",
                dataset.summary(), len(data.train_clips), len(data.starts), data.window, len(data.heldout_clips),
                [dataset.clip_names[i] for i in data.heldout_clips])
    return log_dir


# ---- stage 4: model and optimiser -----------------------------------------------------------------------

def build_model_and_optimizer(cfg: TrainConfig, data: TrainingData, procs: Processes):
    """A fresh model (seeded by ``--seed``) normalised with the training frames' statistics, and its Adam."""
    torch.manual_seed(cfg.seed)
    model = build_model(cfg.vae_config(data.frame_size, data.num_styles))
    model.set_normalization(*data.statistics())
    model.to(procs.device).train()
    # The fused kernel makes an Adam step ~0.5 ms instead of ~5 ms for 1.7 M parameters on CPU.
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.learning_rate, fused=True)
    if model.discrete and cfg.batch_size < cfg.num_codes and procs.main:
        logger.warning("--batch-size %d < --num-codes %d: a VQ code unused in a batch decays and is reset, so at "
                       "most about %d codes stay alive; use batches of at least K frames", cfg.batch_size,
                       cfg.num_codes, cfg.batch_size)
    return model, optimizer


@dataclass
class Adversary:
    """The discriminator of ``--adversarial-weight`` and its own Adam: training state that goes into the resume
    checkpoint (``extra["adversarial"]``), never into the model's weights."""

    discriminator: WindowDiscriminator
    optimizer: torch.optim.Optimizer

    def state_dict(self) -> dict:
        return {"discriminator": to_cpu(self.discriminator.state_dict()),
                "optimizer": to_cpu(self.optimizer.state_dict())}

    def load_state_dict(self, state: dict) -> None:
        self.discriminator.load_state_dict(state["discriminator"])
        self.optimizer.load_state_dict(state["optimizer"])


def build_adversary(cfg: TrainConfig, data: TrainingData, procs: Processes) -> Adversary | None:
    """The window discriminator and its Adam (VQGAN's betas 0.5, 0.9, a constant --learning-rate), None when off."""
    if cfg.adversarial_weight <= 0:
        return None
    discriminator = WindowDiscriminator(data.frame_size).to(procs.device).train()
    optimizer = torch.optim.Adam(discriminator.parameters(), lr=cfg.learning_rate, betas=(0.5, 0.9), fused=True)
    return Adversary(discriminator, optimizer)


# ---- stage 5: resume, or start from another checkpoint's weights ----------------------------------------

@dataclass
class StartingPoint:
    """Where the epoch loop starts: completed epochs and their metrics (non-empty when resuming)."""

    epoch: int = 0
    history: list = field(default_factory=list)
    interrupted: bool = False
    """The resumed checkpoint was written by Ctrl-C: the epoch it was in is redone."""


def check_same_model(flag: str, path: str, saved: VAEConfig, wanted: VAEConfig) -> None:
    """Raise ValueError naming the model flags that would rebuild the checkpoint's model ``saved``."""
    if saved == wanted:
        return
    diff = {k: (v, getattr(wanted, k)) for k, v in saved.to_dict().items() if getattr(wanted, k) != v}
    flag_names = {f.name for f in fields(TrainConfig)}
    flags = " ".join(f"--{k.replace('_', '-')} {v}" for k, (v, _) in diff.items() if k in flag_names)
    raise ValueError(f"{flag} {path}: the checkpoint's model differs from the flags (field: (checkpoint, flags)) "
                     f"{diff}; use the same model flags{': ' + flags if flags else ''}")


def resume_training(cfg: TrainConfig, model, optimizer, data: TrainingData, procs: Processes,
                    adversary: Adversary | None = None) -> StartingPoint:
    """Weights, optimiser, random generators and progress from ``--resume``, so the run goes on as if unbroken."""
    ckpt = read_checkpoint(cfg.resume)
    extra = ckpt["extra"]
    missing = [k for k in TRAINING_ONLY_KEYS if k not in extra]
    if missing:
        raise ValueError(f"--resume {cfg.resume}: a shipped model (`python -m vae.ship`) without the training "
                         f"state a resume needs ({', '.join(missing)}); to train on from its weights with a fresh "
                         f"optimiser and schedule use --init-from {cfg.resume}")
    check_same_model("--resume", cfg.resume, VAEConfig.from_dict(ckpt["config"]), cfg.vae_config(data.frame_size, data.num_styles))
    if ckpt["dataset_fingerprint"] != data.dataset.fingerprint():
        raise ValueError(f"--resume {cfg.resume}: the checkpoint was trained on other data than --data "
                         f"{cfg.data} (fingerprint {ckpt['dataset_fingerprint']} vs {data.dataset.fingerprint()})")
    model.load_state_dict(ckpt["state_dict"])
    optimizer.load_state_dict(extra["optimizer"])
    if adversary is not None and "adversarial" in extra:
        adversary.load_state_dict(extra["adversarial"])
    elif adversary is not None and procs.main:
        logger.warning("--resume %s has no discriminator (trained without --adversarial-weight): a fresh one starts "
                       "now", cfg.resume)
    set_rng_state(extra["rng_state"])
    start = StartingPoint(int(extra["epoch"]), list(extra.get("history", [])), bool(extra.get("interrupted", False)))
    if procs.main:
        logger.info("resumed from %s at epoch %d%s", cfg.resume, start.epoch,
                    " (it was interrupted mid-epoch: that epoch is redone)" if start.interrupted else "")
        old = extra.get("train_config", {})
        changed = {k: (old[k], v) for k, v in asdict(cfg).items()
                   if k in old and old[k] != v and k not in RESUME_FREE_FLAGS}
        if changed:
            logger.warning("resume: flags differ from the checkpoint's run (old, new): %s", changed)
    return start


def init_weights_from(cfg: TrainConfig, model, data: TrainingData, procs: Processes) -> StartingPoint:
    """Weights and normalisation from ``--init-from`` (any mvae checkpoint); optimiser and schedule start fresh."""
    ckpt = read_checkpoint(cfg.init_from)
    saved = VAEConfig.from_dict(ckpt["config"])
    if saved.frame_size != data.frame_size:
        raise ValueError(f"--init-from {cfg.init_from}: the checkpoint's frames have {saved.frame_size} features "
                         f"but --data {cfg.data} has {data.frame_size} (another skeleton); use data prepared from "
                         f"the same skeleton")
    check_same_model("--init-from", cfg.init_from, saved, cfg.vae_config(data.frame_size, data.num_styles))
    model.load_state_dict(ckpt["state_dict"])  # includes data_mean / data_std: the checkpoint's normalisation
    if procs.main:
        logger.info("weights and normalisation from %s; fresh optimiser and schedule", cfg.init_from)
    return StartingPoint()


def starting_point(cfg: TrainConfig, model, optimizer, data: TrainingData, procs: Processes,
                   adversary: Adversary | None = None) -> StartingPoint:
    """``--resume``, ``--init-from`` or a fresh start (the model as built)."""
    if cfg.resume:
        return resume_training(cfg, model, optimizer, data, procs, adversary)
    if cfg.init_from:
        return init_weights_from(cfg, model, data, procs)
    return StartingPoint()


def ddp_wrapped(model: MotionManifold, procs: Processes) -> torch.nn.Module:
    """``model`` wrapped in DistributedDataParallel under torchrun, else ``model`` itself."""
    if not procs.distributed:
        return model
    # Buffers are identical on every rank by construction (same statistics; the VQ codebook syncs itself).
    device_ids = [procs.device.index] if procs.device.type == "cuda" else None
    return torch.nn.parallel.DistributedDataParallel(model, device_ids=device_ids, forward_sync_buffers=False)


# ---- stage 6: one epoch ---------------------------------------------------------------------------------

@dataclass
class Run:
    """What one training run carries from epoch to epoch."""

    cfg: TrainConfig
    procs: Processes
    data: TrainingData
    model: MotionManifold
    net: torch.nn.Module
    """``model``, or its DistributedDataParallel wrapper: the training forward goes through it."""
    optimizer: torch.optim.Optimizer
    sampler: WindowSampler
    windows: WindowDataset
    styles: torch.Tensor | None
    """(S,) the style of every training window, None without styles."""
    start_frames: torch.Tensor
    history: list
    data_quality: dict
    action_scale: float | None = None  # the latent bound, measured after the last epoch
    adversary: Adversary | None = None  # with --adversarial-weight

    @property
    def batches_per_epoch(self) -> int:
        return len(self.sampler)

    @property
    def updates_per_batch(self) -> int:
        return self.cfg.rollout_steps if self.cfg.update_every_step else 1

    @property
    def total_updates(self) -> int:
        return self.cfg.epochs * self.batches_per_epoch * self.updates_per_batch


SUM_TERMS = 12  # EpochSums.terms, in the order of its comment


class EpochSums:
    """Sums of the loss terms over an epoch, kept on the device so the training loop never waits for the host."""

    def __init__(self, latent_size: int, device: torch.device):
        # recon, loss, vq_loss, commit_loss, perplexity, steps, then the adversarial terms: d_loss, g_loss, real logit,
        # fake logit, discriminator accuracy, adversarial steps
        self.terms = torch.zeros(SUM_TERMS, device=device)
        self.kl_dims = torch.zeros(latent_size, device=device)
        self.mu_sum = torch.zeros(latent_size, device=device)
        self.mu_sq = torch.zeros(latent_size, device=device)
        self.mu_count = 0

    @torch.no_grad()
    def add(self, recon_loss: torch.Tensor, loss: torch.Tensor, enc: dict, kl_dim: torch.Tensor | None) -> None:
        """One rollout step; ``kl_dim`` (Z,) for Gaussian models, None for VQ."""
        self.terms[0] += recon_loss.detach()
        self.terms[1] += loss.detach()
        self.terms[5] += 1
        if kl_dim is not None:
            self.kl_dims += kl_dim.detach()
            mu = enc["mu"].detach()  # (B, Z)
            self.mu_sum += mu.sum(0)
            self.mu_sq += mu.pow(2).sum(0)
            self.mu_count += mu.shape[0]
        else:
            self.terms[2] += enc["vq_loss"].detach()
            self.terms[3] += enc["commit_loss"].detach()
            self.terms[4] += enc["perplexity"].detach()

    @torch.no_grad()
    def add_adversarial(self, d_loss: torch.Tensor, g_loss: torch.Tensor, real_logits: torch.Tensor,
                        fake_logits: torch.Tensor) -> None:
        """One adversarial step: the losses and the discriminator's logits (B,) on the real and the fake windows."""
        self.terms[6] += d_loss.detach()
        self.terms[7] += g_loss.detach()
        self.terms[8] += real_logits.detach().mean()
        self.terms[9] += fake_logits.detach().mean()
        self.terms[10] += discriminator_accuracy(real_logits.detach(), fake_logits.detach())
        self.terms[11] += 1

    def total(self, distributed: bool) -> torch.Tensor:
        """All sums in one float64 CPU vector (SUM_TERMS terms, then kl_dims, mu_sum, mu_sq, mu_count), over all
        ranks."""
        count = torch.tensor([float(self.mu_count)], device=self.terms.device)
        stats = torch.cat([self.terms, self.kl_dims, self.mu_sum, self.mu_sq, count])
        if distributed:
            dist.all_reduce(stats)
        return stats.cpu().double()


def run_epoch(run: Run, epoch: int, show: bool) -> EpochSums:
    """Train one epoch (0-based): every batch of windows rolled out ``L`` steps with scheduled sampling."""
    cfg, device, model = run.cfg, run.procs.device, run.model
    c, f, d, steps = cfg.num_condition_frames, cfg.num_future_predictions, run.data.frame_size, cfg.rollout_steps
    torch.manual_seed(epoch_seed(cfg.seed, epoch, run.procs.rank))  # the latent noise differs per rank
    # One coin per rollout step for the whole global batch: every rank flips rank 0's coin.
    coin = torch.Generator().manual_seed(epoch_seed(cfg.seed, epoch, 0) + 1)
    run.sampler.set_epoch(epoch)
    p_student = student_probability(cfg, epoch)
    sums = EpochSums(cfg.latent_size, device)
    adversary = run.adversary if epoch >= cfg.adversarial_start_epoch else None
    window = cfg.adversarial_window
    d_loss_fn, g_loss_fn = GAN_LOSSES[cfg.adversarial_loss] if adversary is not None else (None, None)
    batch_bar = tqdm(run.sampler, desc=f"epoch {epoch + 1}", leave=False, disable=not show, dynamic_ncols=True)
    for b, positions in enumerate(batch_bar):
        beta = kl_weight(cfg, epoch + b / run.batches_per_epoch)
        win = run.windows.windows(positions.to(device))  # (B, W, D) normalised
        style = None if run.styles is None else run.styles[positions.to(device)]  # (B,)
        bsz = win.shape[0]
        cond = win[:, :c]  # (B, C, D)
        decoded = []  # the first predicted frame (B, D) of every step so far, detached
        for k in range(steps):
            update = (epoch * run.batches_per_epoch + b) * run.updates_per_batch + (k if cfg.update_every_step else 0)
            last_step = k == steps - 1
            target = win[:, c + k : c + k + f].reshape(bsz, f * d)  # (B, F*D)
            # Accumulating the L steps' gradients: DDP all-reduces once, at the last step.
            sync = not run.procs.distributed or cfg.update_every_step or last_step
            seen = cond if cfg.condition_noise <= 0 else cond + cfg.condition_noise * torch.randn_like(cond)
            with contextlib.nullcontext() if sync else run.net.no_sync():
                recon, enc = run.net(target, seen.reshape(bsz, c * d), style)  # cond (B, C*D)
                recon_loss = (recon - target).pow(2).mean()
                kl_dim = None
                if not model.discrete:
                    kl_dim = gaussian_kl_per_dim(enc["mu"], enc["logvar"])  # (Z,)
                    latent_loss = beta * kl_dim.clamp(min=cfg.free_bits).mean()
                else:
                    latent_loss = enc["vq_loss"]
                loss = recon_loss + latent_loss
                judged = adversary is not None and k + 1 >= window
                if judged:
                    # The earlier frames are detached: their graphs ended with their own steps' backward (and the
                    # per-step Adam update), so the term teaches this step's frame to continue them like the data.
                    earlier = torch.stack(decoded[k + 1 - window:], dim=1)  # (B, T-1, D)
                    fake = torch.cat([earlier, recon[:, None, :d]], dim=1)  # (B, T, D)
                    adversary.discriminator.requires_grad_(False)
                    g_loss = g_loss_fn(adversary.discriminator(fake))
                    adversary.discriminator.requires_grad_(True)
                    loss = loss + cfg.adversarial_weight * g_loss
                (loss if cfg.update_every_step else loss / steps).backward()
            if cfg.update_every_step or last_step:
                for group in run.optimizer.param_groups:
                    group["lr"] = cfg.learning_rate * (1.0 - update / run.total_updates)
                run.optimizer.step()
                run.optimizer.zero_grad(set_to_none=True)
            sums.add(recon_loss, loss, enc, kl_dim)
            if judged:
                real = win[:, c + k + 1 - window : c + k + 1]  # (B, T, D): the data frames the fake window predicts
                real_logits, fake_logits = adversary.discriminator(torch.cat([real, fake.detach()])).split(bsz)
                d_loss = d_loss_fn(real_logits, fake_logits)
                adversary.optimizer.zero_grad(set_to_none=True)
                d_loss.backward()
                adversary.optimizer.step()
                sums.add_adversarial(d_loss, g_loss, real_logits, fake_logits)
            decoded.append(recon[:, :d].detach())
            # Next condition: the true next frame, or (scheduled sampling) the model's own prediction,
            # detached so no gradient flows back through the feedback, as in the reference.
            use_student = p_student > 0 and bool(torch.rand((), generator=coin) < p_student)
            if use_student and cfg.feedback_latent_noise > 0 and not model.discrete:
                # Feed back what a pushed latent would have made (as a policy pushes it): the next steps learn to
                # lead such frames back to the data.
                with torch.no_grad():
                    pushed = enc["z"] + cfg.feedback_latent_noise * torch.randn_like(enc["z"])
                    recon = model.decode(pushed, seen.reshape(bsz, c * d), style=style)
            nxt = recon[:, :d].detach() if use_student else win[:, c + k]  # (B, D)
            cond = torch.cat([cond[:, 1:], nxt[:, None]], dim=1)  # (B, C, D)
        if show and b % 10 == 0:
            batch_bar.set_postfix(loss=f"{float(loss):.4f}", recon=f"{float(recon_loss):.4f}")
    return sums


def epoch_metrics(cfg: TrainConfig, stats: torch.Tensor, *, epoch: int, lr: float, seconds: float,
                  batches: int, gaussian: bool) -> dict:
    """The history / metrics.csv row of (0-based) ``epoch`` from its summed terms (:meth:`EpochSums.total`)."""
    z = cfg.latent_size
    n_steps = float(stats[5])
    row = {
        "epoch": epoch + 1,
        "p_student": student_probability(cfg, epoch),
        "beta": kl_weight(cfg, epoch + 1) if gaussian else 0.0,
        "lr": lr,
        "loss": float(stats[1] / n_steps),
        "recon": float(stats[0] / n_steps),
        "samples_per_s": batches * cfg.batch_size * cfg.rollout_steps / seconds,
        "seconds": seconds,
    }
    if gaussian:
        t = SUM_TERMS
        kl_per_dim = stats[t : t + z] / n_steps  # (Z,)
        mu_var = variance_from_moments(stats[t + z : t + 2 * z], stats[t + 2 * z : -1], float(stats[-1]))
        row.update({
            "kl_total": float(kl_per_dim.sum()),
            "kl_dim_min": float(kl_per_dim.min()),
            "kl_dim_mean": float(kl_per_dim.mean()),
            "kl_dim_max": float(kl_per_dim.max()),
            "active_units": active_units(mu_var),
            "kl_per_dim": [float(x) for x in kl_per_dim],
        })
    else:
        row.update({
            "vq_loss": float(stats[2] / n_steps),
            "commit_loss": float(stats[3] / n_steps),
            "perplexity": float(stats[4] / n_steps),
        })
    if cfg.adversarial_weight > 0:
        n_adv = float(stats[11])
        # None before --adversarial-start-epoch: no adversarial step ran (an empty metrics.csv cell).
        row.update({key: float(stats[i] / n_adv) if n_adv else None for i, key in
                    enumerate(("adv_d_loss", "adv_g_loss", "adv_real_logit", "adv_fake_logit", "adv_d_accuracy"), 6)})
    return row


# ---- stage 7: logging -----------------------------------------------------------------------------------

def epoch_summary(cfg: TrainConfig, row: dict) -> str:
    """The one console / train.log line of an epoch."""
    text = (f"epoch {row['epoch']}/{cfg.epochs} p_student {row['p_student']:.2f} loss {row['loss']:.4f} "
            f"recon {row['recon']:.4f} ")
    if "kl_total" in row:
        text += f"kl {row['kl_total']:.3f} nats active {row['active_units']}/{cfg.latent_size} "
    else:
        text += f"vq {row['vq_loss']:.4f} perplexity {row['perplexity']:.1f} "
    if row.get("adv_d_loss") is not None:
        text += (f"adv D {row['adv_d_loss']:.3f} G {row['adv_g_loss']:.3f} D accuracy "
                 f"{100 * row['adv_d_accuracy']:.0f}% ")
    return text + f"lr {row['lr']:.2e} {row['samples_per_s']:.0f} frames/s {row['seconds']:.1f}s"


class MetricSinks:
    """metrics.csv (appended to across resumes) and TensorBoard events in the log folder (rank 0)."""

    def __init__(self, log_dir: Path, cleanup: contextlib.ExitStack):
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(str(log_dir))
        cleanup.callback(self.writer.close)
        csv_path = log_dir / "metrics.csv"
        new_csv = not csv_path.exists() or csv_path.stat().st_size == 0
        self.csv_file = cleanup.enter_context(open(csv_path, "a", newline=""))
        self.csv = csv.DictWriter(self.csv_file, fieldnames=CSV_FIELDS, extrasaction="ignore")
        if new_csv:
            self.csv.writeheader()

    def write(self, row: dict) -> None:
        self.csv.writerow(row)
        self.csv_file.flush()
        step = row["epoch"]
        for key, value in row.items():
            if key != "epoch" and isinstance(value, (int, float)):
                self.writer.add_scalar(f"train/{key}", value, step)
        if "kl_per_dim" in row:
            self.writer.add_histogram("train/kl_per_dim", np.asarray(row["kl_per_dim"]), step)
        self.writer.flush()


def report_epoch(run: Run, row: dict, sinks: MetricSinks, log_dir: Path) -> None:
    """Rank 0 after every epoch: metrics, the console line, the collapse warning and the preview walk."""
    cfg = run.cfg
    sinks.write(row)
    logger.info(epoch_summary(cfg, row))
    if "kl_total" in row:
        message = collapse_message(row["kl_total"], row["active_units"], cfg)
        if message:
            logger.warning(message)
            tqdm.write(f"!!! {message}", file=sys.stderr)
    epoch = row["epoch"]
    if cfg.preview_every and epoch % cfg.preview_every == 0:
        write_preview(run.model, run.start_frames[0].to(run.procs.device), cfg.preview_frames, cfg.seed,
                      log_dir / f"preview_epoch{epoch:04d}.bvh", run.data.dataset.skeleton, run.data.dataset.fps)


# ---- stage 8: checkpoint --------------------------------------------------------------------------------

def save_run(run: Run, path: Path, epochs_done: int, interrupted: bool) -> None:
    """The checkpoint: model, plus in ``extra`` everything ``--resume`` needs (see the module docstring)."""
    data = run.data
    extra = {
        "train_config": asdict(run.cfg),
        "epoch": epochs_done,
        "optimizer": to_cpu(run.optimizer.state_dict()),
        **({"adversarial": run.adversary.state_dict()} if run.adversary is not None else {}),
        "rng_state": rng_state(),
        "start_frames": run.start_frames,
        "feature_envelope": data.feature_envelope(run.model),
        **({"style_names": list(data.dataset.style_names), "start_styles": data.start_styles(run.cfg.seed)}
           if run.model.num_styles else {}),
        **({"action_scale": run.action_scale} if run.action_scale is not None else {}),
        "data_quality": run.data_quality,
        "history": run.history,
        "holdout": {"every": run.cfg.holdout_every, "clips": [data.dataset.clip_names[i] for i in data.heldout_clips]},
        "interrupted": interrupted,
    }
    save_checkpoint(path, run.model, skeleton=data.dataset.skeleton, fps=data.dataset.fps,
                    dataset_fingerprint=data.dataset.fingerprint(), extra=extra)


# ---- the script -----------------------------------------------------------------------------------------

def train(cfg: TrainConfig, on_epoch=None) -> Path:
    """Run the training described by ``cfg``; returns the checkpoint path (see the module docstring).
    ``on_epoch(row)``: called on rank 0 after every epoch with its metrics row (e.g. a build's progress view)."""
    check_config(cfg)
    out_path = output_file(cfg.out, "--out", (".pt",))
    with contextlib.ExitStack() as cleanup:
        procs = start_processes(cfg, cleanup)
        data = load_data(cfg)
        log_dir = open_log_file(cfg, data, cleanup) if procs.main else None
        model, optimizer = build_model_and_optimizer(cfg, data, procs)
        adversary = build_adversary(cfg, data, procs)
        start = starting_point(cfg, model, optimizer, data, procs, adversary)
        run = Run(cfg, procs, data, model, ddp_wrapped(model, procs), optimizer,
                  sampler=WindowSampler(len(data.starts), cfg.batch_size // procs.world_size, cfg.seed, procs.rank,
                                        procs.world_size),
                  windows=data.normalised_windows(model, procs.device),
                  styles=data.window_styles(procs.device) if model.num_styles else None,
                  start_frames=data.start_frames(cfg.seed, cfg.num_condition_frames), history=start.history,
                  data_quality=data.quality() if procs.main else {}, adversary=adversary)
        sinks = MetricSinks(log_dir, cleanup) if procs.main else None
        last_epoch = cfg.epochs if cfg.stop_after_epoch <= 0 else min(cfg.epochs, cfg.stop_after_epoch)
        show = cfg.progress and procs.main
        epoch_bar = cleanup.enter_context(tqdm(range(start.epoch, last_epoch), desc="epochs", disable=not show,
                                               initial=start.epoch, total=last_epoch, dynamic_ncols=True))
        done = start.epoch  # completed epochs
        try:
            for epoch in epoch_bar:
                t0 = time.perf_counter()
                sums = run_epoch(run, epoch, show)
                seconds = time.perf_counter() - t0
                row = epoch_metrics(cfg, sums.total(procs.distributed), epoch=epoch,
                                    lr=optimizer.param_groups[0]["lr"], seconds=seconds,
                                    batches=run.batches_per_epoch, gaussian=not model.discrete)
                run.history.append(row)
                if procs.main:
                    report_epoch(run, row, sinks, log_dir)
                    epoch_bar.set_postfix(loss=f"{row['loss']:.4f}", recon=f"{row['recon']:.4f}")
                    if (epoch + 1) % cfg.checkpoint_every == 0 or epoch + 1 == last_epoch:
                        save_run(run, out_path, epoch + 1, interrupted=False)
                    if on_epoch is not None:
                        on_epoch(row)
                done = epoch + 1
        except KeyboardInterrupt:
            if procs.main:
                save_run(run, out_path, done, interrupted=True)
                logger.warning("interrupted: checkpoint of the weights so far written to %s (%d epochs complete); "
                               "continue with --resume %s", out_path, done, out_path)
            raise
        if procs.main and start.epoch >= last_epoch:
            save_run(run, out_path, start.epoch, start.interrupted)
        if procs.main and done == cfg.epochs and not model.discrete:
            run.action_scale = measure_latent_bound(run)
            save_run(run, out_path, done, interrupted=False)  # now with the latent bound
        if procs.main and done == cfg.epochs and cfg.contact_epochs > 0 and data.dataset.foot_contacts.shape[1]:
            run.model.set_contacts(fit_contacts(run.model.eval(), data.dataset, epochs=cfg.contact_epochs,
                                                seed=cfg.seed, log=logger.info))
            save_run(run, out_path, done, interrupted=False)  # now with the contact channels
        if procs.main and done == cfg.epochs and cfg.final_checks:
            warn_if_unstable(run)
    return out_path


def measure_latent_bound(run: Run) -> float:
    """The latent bound policies use (``extra["action_scale"]``): from the aggregate posterior of the training
    windows (:func:`vae.stability.latent_action_scale`); the model clamps its latent to it from then on."""
    from vae.stability import aggregate_posterior, latent_action_scale

    c, f, d = run.cfg.num_condition_frames, run.cfg.num_future_predictions, run.data.frame_size
    model = run.model.eval()
    generator = torch.Generator().manual_seed(run.cfg.seed)
    pick = torch.randperm(len(run.windows), generator=generator)[:POSTERIOR_WINDOWS]
    windows = run.windows.windows(pick.to(run.procs.device))  # (N, W, D) normalised
    n = windows.shape[0]
    styles = None if run.styles is None else run.styles[pick.to(run.styles.device)]  # (N,)
    posterior = aggregate_posterior(model, windows[:, :c].reshape(n, c * d), windows[:, c:c + f].reshape(n, f * d),
                                    styles=styles)
    scale = latent_action_scale(posterior)
    model.extra = {**model.extra, "action_scale": scale}
    logger.info(f"latent bound for policies (action_scale): {scale:.3f} ({int(posterior['active'].sum())} active dims)")
    return scale


def warn_if_unstable(run: Run) -> None:
    """The held-latent gate of ``characters.build`` on a quick sample: a loud warning when characters holding one
    latent leave the data (what a policy's latent does to a VAE a random walk never shows)."""
    from envs.manifold_source import divergence_limits
    from vae.stability import held_latent_stability

    model = run.model.eval()
    model.extra = {**model.extra, "feature_envelope": run.data.feature_envelope(model),
                   **({"start_styles": run.data.start_styles(run.cfg.seed)} if model.num_styles else {})}
    model.fps = run.data.dataset.fps
    held = held_latent_stability(model, run.start_frames, limits=divergence_limits(model, run.procs.device),
                                 per_level=HELD_CHECK_PER_LEVEL, generator=torch.Generator().manual_seed(run.cfg.seed))
    share = held["diverged_share_all"]
    if share > HELD_CHECK_MAX:
        logger.warning(f"HELD LATENTS: {100 * share:.1f}% of {held['characters']} characters holding one latent left "
                       f"the data within {held['seconds']:.0f} s (per level {held['diverged_share']}); policies would "
                       "drive this VAE off its data. Train longer (--student-epochs) or with more "
                       "--feedback-latent-noise; "
                       "check with `python -m vae.evaluate`")
    else:
        logger.info(f"held latents: {100 * share:.1f}% of {held['characters']} characters diverged in "
                    f"{held['seconds']:.0f} s")


def main(argv: list[str] | None = None) -> int:
    parser = dataclass_parser(TrainConfig, prog="python -m vae.train",
                              description="Train a Motion VAE on a prepared dataset.")
    cfg = TrainConfig(**vars(parser.parse_args(argv)))
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if int(os.environ.get("RANK", "0")) != 0:
        logging.getLogger().setLevel(logging.WARNING)
    try:
        path = train(cfg)
    except (FileNotFoundError, ValueError) as e:
        print(f"vae.train: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    if int(os.environ.get("RANK", "0")) == 0:
        print(f"checkpoint: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
