"""``python -m vae.compare_manifolds``: the autonomous-motion table, Gaussian Motion VAE against VQ motion tokens.

Usage::

    python -m vae.compare_manifolds --gaussian G.pt --vq VQ.pt --prior PRIOR.pt --data DATA.npz [--json]

Rows: the Gaussian MVAE with z ~ N(0, I) every frame (the random walk of ``vae.evaluate``), the VQ model with
uniformly random codes, the VQ model with codes from its transformer prior (:mod:`vae.prior_walk`), and the data.
Every walk starts from the same data windows (in their clip's style), ``--characters`` characters of ``--steps``
frames each (16 x 18,000: ten minutes each). Columns (the JSON keys of each row):

- ``recon_teacher``, ``recon_rollout8``: MSE of the normalised next frame on the model's held-out clips, teacher
  forced and after an 8-step student rollout (:func:`vae.evaluate.reconstruction_errors`). They measure the model,
  not who picks its codes, so both VQ rows share them.
- ``foot_sliding``, ``jitter``: CAMDM foot sliding and mean joint acceleration (m/s^2) (METRICS.md,
  :func:`mocap.quality.quality_over`), walks measured in ``WINDOW_S`` windows as ``vae.evaluate`` measures them;
  the data row is the same over the dataset's clips.
- ``speed_w1_mps``, ``turn_w1_deg_s``: 1-D Wasserstein distance between the walks' per-frame root ground speed (m/s)
  and signed turn rate (deg/s) and the data's: how far the distribution of how fast and how sharply it moves is
  from the mocap's (0: the same).
- ``pose_diversity``: mean pairwise pose distance (m) of 1000 poses (:func:`vae.metrics.pose_diversity`).
- ``nonfinite_frames`` of ``walk_frames`` generated, ``diverged_walks`` (a frame non-finite or beyond 100 data
  stds; the metrics use each walk up to there, as ``vae.evaluate`` does).
- ``codes_used``, ``code_perplexity``: distinct codes the walks took and exp(entropy) of their histogram (VQ rows).
- ``step_ms``: milliseconds per frame of one character (batch 1, torch, one step of the walk's loop: the latent or
  code choice and the decoder), the median of 3 runs.

Prints a markdown table (unless ``--json``) and ONE JSON line last: ``{"rows": {"gaussian", "vq_uniform",
"vq_prior": {column: value}}, "data": {...}, "settings": {...}, "seconds": s}``.
"""

from __future__ import annotations

import json
import logging
import math
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from common.dataclass_cli import dataclass_parser
from mocap.dataset import MotionDataset
from mocap.pose_layout import PoseLayout
from mocap.quality import WINDOW_S, quality_over, toe_joints
from vae.checkpoint import load_manifold
from vae.data import holdout_split, valid_window_starts
from vae.evaluate import motion_metrics, random_walks, reconstruction_errors
from vae.metrics import code_usage, divergence_frame, nonfinite_frames, world_positions
from vae.prior import check_prior_fits, load_prior
from vae.prior_walk import code_walk, prior_picker, uniform_picker

logger = logging.getLogger("vae.compare_manifolds")

ROWS = {"gaussian": "Gaussian MVAE, z ~ N(0, I)", "vq_uniform": "VQ + uniform codes",
        "vq_prior": "VQ + transformer prior"}
COLUMNS = ("recon_teacher", "recon_rollout8", "foot_sliding", "jitter", "speed_w1_mps", "turn_w1_deg_s",
           "pose_diversity", "nonfinite_frames", "walk_frames", "diverged_walks", "codes_used", "code_perplexity",
           "step_ms")
LATENCY_REPEATS = 3
LATENCY_WARMUP = 10


@dataclass
class CompareConfig:
    """Everything that decides the comparison (printed in the JSON line as ``settings``)."""

    gaussian: str = ""
    """Gaussian Motion VAE checkpoint (`python -m vae.train`, model mixture or vae). Required."""

    vq: str = ""
    """VQ Motion VAE checkpoint (`python -m vae.train --model vq`) on the same skeleton. Required."""

    prior: str = ""
    """Code prior of the --vq model (`python -m vae.train_prior`). Required."""

    data: str = ""
    """Prepared dataset (.npz) both models were trained on: held-out clips, start windows, the data's metrics."""

    json: bool = False
    """Print only the JSON line (else the markdown table first)."""

    characters: int = 16
    """B, characters walked in parallel per row."""

    steps: int = 18000
    """T, frames each character walks (18,000: ten minutes at 30 Hz)."""

    temperature: float = 1.0
    """Softmax temperature of the prior's next-code distribution (< 1: more likely codes)."""

    top_k: int | None = None
    """Sample the prior's next code among its k most likely ones (default: all codes)."""

    seed: int = 0
    """Seed of the start windows, the walks and the subsampled evaluation windows."""

    holdout_every: int = 10
    """For a model that records no held-out clips: reconstruct every k-th motion (then seen in training)."""

    latency_steps: int = 100
    """Frames timed per run of the batch-1 latency (3 runs, the median)."""

    threads: int = 0
    """torch CPU threads (0: torch's default)."""


def check_config(cfg: CompareConfig) -> None:
    """Raise ValueError naming the flag of every value that cannot work."""
    problems = [f"--{name} is required" for name in ("gaussian", "vq", "prior", "data") if not getattr(cfg, name)]
    if cfg.characters < 1:
        problems.append(f"--characters must be >= 1, got {cfg.characters}")
    if cfg.steps < 3:
        problems.append(f"--steps must be >= 3 (jitter needs three frames), got {cfg.steps}")
    if not (cfg.temperature > 0 and math.isfinite(cfg.temperature)):
        problems.append(f"--temperature must be a positive number, got {cfg.temperature}")
    if cfg.top_k is not None and cfg.top_k < 1:
        problems.append(f"--top-k must be >= 1, got {cfg.top_k}")
    for name in ("holdout_every", "latency_steps"):
        if getattr(cfg, name) < 1:
            problems.append(f"--{name.replace('_', '-')} must be >= 1, got {getattr(cfg, name)}")
    if problems:
        raise ValueError("; ".join(problems))


# ---- inputs ---------------------------------------------------------------------------------------------------

def load_model(path: str, flag: str, discrete: bool):
    """The manifold of ``--flag path``, Gaussian or VQ as the flag wants; errors name the flag."""
    kind = "VQ" if discrete else "Gaussian"
    train = "python -m vae.train --model vq" if discrete else "python -m vae.train"
    if not Path(path).is_file():
        raise FileNotFoundError(f"--{flag} {path}: no such file; train a {kind} Motion VAE with `{train}`")
    try:
        model = load_manifold(path)
    except ValueError as e:
        raise ValueError(f"--{flag} {e}") from None
    if model.discrete != discrete:
        raise ValueError(f"--{flag} {path}: a {'VQ' if model.discrete else 'Gaussian'} Motion VAE (model "
                         f"{model.config.model!r}); --{flag} takes a {kind} one (`{train}`)")
    return model


def load_data(path: str, models: dict) -> MotionDataset:
    """``--data``, checked against every model (``{flag: model}``): same frame size, same styles."""
    if not Path(path).is_file():
        raise FileNotFoundError(f"--data {path}: no such file; create it with `python -m mocap.prepare`")
    try:
        dataset = MotionDataset.load(path)
    except ValueError as e:
        raise ValueError(f"--data {e}") from None
    for flag, model in models.items():
        if dataset.data.shape[1] != model.frame_size:
            raise ValueError(f"--data {path}: frames of {dataset.data.shape[1]} features, but --{flag} expects "
                             f"{model.frame_size}: another skeleton")
        if model.num_styles and list(dataset.style_names) != list(model.style_names):
            raise ValueError(f"--data {path}: styles {dataset.style_names or 'none'}, but --{flag} has "
                             f"{model.style_names}; prepare the data with the model's `--styles` pattern")
        if dataset.fingerprint() != model.dataset_fingerprint:
            logger.warning("--data %s is not the data --%s was trained on: its held-out clips may have been seen",
                           path, flag)
    return dataset


def heldout_clips(model, dataset: MotionDataset, holdout_every: int) -> np.ndarray:
    """The model's own held-out clips (``extra["holdout"]``), else every k-th motion, as ``vae.evaluate`` picks."""
    saved = set((getattr(model, "extra", {}) or {}).get("holdout", {}).get("clips", []))
    held = [i for i, name in enumerate(dataset.clip_names) if name in saved]
    if not held:
        held = holdout_split(dataset.clip_names, holdout_every)[1].tolist() or list(range(dataset.num_clips))
    return np.asarray(held, dtype=np.int64)


# ---- measures -------------------------------------------------------------------------------------------------

def wasserstein_1d(a: np.ndarray, b: np.ndarray) -> float:
    """W1 between the empirical distributions of samples ``a`` and ``b``: the area between their CDFs."""
    a, b = np.sort(np.asarray(a, np.float64)), np.sort(np.asarray(b, np.float64))
    values = np.sort(np.concatenate([a, b]))  # (Na + Nb,) where either CDF steps
    cdf_a = np.searchsorted(a, values[:-1], side="right") / len(a)
    cdf_b = np.searchsorted(b, values[:-1], side="right") / len(b)
    return float(np.sum(np.abs(cdf_a - cdf_b) * np.diff(values)))


def speed_and_turn(frames: torch.Tensor, fps: float) -> tuple[np.ndarray, np.ndarray]:
    """Per-frame root ground speed (m/s) and signed turn rate (deg/s) of raw frames (..., D), flattened."""
    layout = PoseLayout.from_frame_size(frames.shape[-1])
    delta = layout.root_deltas(frames.double()).reshape(-1, 3)  # (N, 3): dx, dz, dyaw per frame
    speed = torch.linalg.vector_norm(delta[:, layout.root_dxdz], dim=-1) * fps
    turn = delta[:, layout.root_dyaw] * fps * (180.0 / math.pi)
    return speed.numpy(), turn.numpy()


def reconstruction(model, dataset: MotionDataset, holdout_every: int, seed: int) -> dict:
    """Teacher-forced and 8-step reconstruction MSE on the model's held-out clips (``vae.evaluate``'s)."""
    frames_norm = model.normalize(torch.from_numpy(dataset.data).float())  # (N, D)
    styles = dataset.frame_styles() if model.num_styles else None
    styles = None if styles is None else torch.from_numpy(styles)
    errors = reconstruction_errors(model, frames_norm, dataset.end_indices,
                                   heldout_clips(model, dataset, holdout_every), torch.Generator().manual_seed(seed),
                                   styles)
    return {"recon_teacher": errors["recon_error_teacher"], "recon_rollout8": errors["recon_error_rollout8"]}


def walk_metrics(model, walks: torch.Tensor, dataset: MotionDataset, data_speed_turn, generator) -> dict:
    """Motion measures of raw walks (B, C + T, D) (their start windows first), cut where each diverged."""
    c = model.num_condition_frames
    generated = walks[:, c:]  # (B, T, D)
    per_walk = generated.shape[1]
    cut = [divergence_frame(model.normalize(w)) for w in generated]
    kept = [w[: c + k] for w, k in zip(walks, cut, strict=True)]
    toes = toe_joints(dataset.skeleton)
    quality = quality_over([world_positions(w.double()).numpy() for w in kept], toes, dataset.fps, window_s=WINDOW_S)
    moves = [speed_and_turn(w[c:], dataset.fps) for w in kept if w.shape[0] > c]
    speed = np.concatenate([m[0] for m in moves]) if moves else np.zeros(0)
    turn = np.concatenate([m[1] for m in moves]) if moves else np.zeros(0)
    metrics = motion_metrics(kept, dataset.skeleton, dataset.foot_joints, dataset.floor_heights, generator)
    return {
        "foot_sliding": quality["foot_sliding"],
        "jitter": quality["jitter"],
        "speed_w1_mps": wasserstein_1d(speed, data_speed_turn[0]) if len(speed) else None,
        "turn_w1_deg_s": wasserstein_1d(turn, data_speed_turn[1]) if len(turn) else None,
        "pose_diversity": metrics.get("pose_diversity"),
        "nonfinite_frames": int(nonfinite_frames(generated).sum()),
        "walk_frames": int(generated.shape[0] * per_walk),
        "diverged_walks": sum(k < per_walk for k in cut),
    }


def data_metrics(dataset: MotionDataset, generator) -> tuple[dict, tuple[np.ndarray, np.ndarray]]:
    """The data row (the same measures over the dataset's clips) and its per-frame (speed, turn) samples."""
    clips = [torch.from_numpy(dataset.clip(i)) for i in range(dataset.num_clips)]
    quality = quality_over([world_positions(c.double()).numpy() for c in clips], toe_joints(dataset.skeleton),
                           dataset.fps)
    # A clip's first frame has no previous frame: its root delta is not a motion.
    moves = [speed_and_turn(c[1:], dataset.fps) for c in clips if c.shape[0] > 1]
    speed, turn = np.concatenate([m[0] for m in moves]), np.concatenate([m[1] for m in moves])
    metrics = motion_metrics(clips, dataset.skeleton, dataset.foot_joints, dataset.floor_heights, generator)
    row = {"foot_sliding": quality["foot_sliding"], "jitter": quality["jitter"],
           "pose_diversity": metrics.get("pose_diversity"), "mean_speed_mps": float(speed.mean()),
           "mean_abs_turn_deg_s": float(np.abs(turn).mean()), "frames": int(dataset.num_frames)}
    return row, (speed, turn)


def start_windows(dataset: MotionDataset, models, count: int, generator) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``count`` raw data windows (B, Cmax, D) of the longest condition any model takes, and their styles (B,)."""
    c = max(m.num_condition_frames for m in models)
    starts = valid_window_starts(dataset.end_indices, c)
    pick = starts[torch.randint(len(starts), (count,), generator=generator).numpy()]  # (B,) first frames
    windows = torch.from_numpy(dataset.data[pick[:, None] + np.arange(c)]).float()  # (B, Cmax, D)
    styles = dataset.frame_styles()
    return windows, None if styles is None else torch.from_numpy(styles[pick])


def step_ms(walk, steps: int) -> float:
    """Milliseconds per frame of ``walk(frames)`` (one character), the median of 3 timed runs after a warm-up."""
    walk(LATENCY_WARMUP)
    times = []
    for _ in range(LATENCY_REPEATS):
        t0 = time.perf_counter()
        walk(steps)
        times.append((time.perf_counter() - t0) * 1000.0 / steps)
    return float(np.median(times))


# ---- the comparison -------------------------------------------------------------------------------------------

@torch.no_grad()
def compare(cfg: CompareConfig) -> dict:
    """The table as a JSON-ready dict (see the module docstring)."""
    check_config(cfg)
    t_start = time.perf_counter()
    gaussian = load_model(cfg.gaussian, "gaussian", discrete=False)
    vq = load_model(cfg.vq, "vq", discrete=True)
    if not Path(cfg.prior).is_file():
        raise FileNotFoundError(f"--prior {cfg.prior}: no such file; train one with `python -m vae.train_prior`")
    try:
        prior = load_prior(cfg.prior)
        check_prior_fits(prior, vq, f"--prior {cfg.prior} (for --vq {cfg.vq})")
    except ValueError as e:
        raise ValueError(str(e) if str(e).startswith("--prior") else f"--prior {e}") from None
    dataset = load_data(cfg.data, {"gaussian": gaussian, "vq": vq})
    generator = torch.Generator().manual_seed(cfg.seed)

    data_row, data_moves = data_metrics(dataset, generator)
    windows, styles = start_windows(dataset, (gaussian, vq), cfg.characters, generator)
    g_style = styles if gaussian.num_styles else None
    v_style = styles if vq.num_styles else None
    g_start = windows[:, windows.shape[1] - gaussian.num_condition_frames:]  # (B, C, D): the last C frames
    v_start = windows[:, windows.shape[1] - vq.num_condition_frames:]
    rows: dict = {}

    t0 = time.perf_counter()
    logger.info("Gaussian: reconstruction and %d x %d frames of random walk", cfg.characters, cfg.steps)
    walks = random_walks(gaussian, g_start, cfg.steps, generator, g_style)  # (B, C + T, D)
    rows["gaussian"] = {**reconstruction(gaussian, dataset, cfg.holdout_every, cfg.seed),
                        **walk_metrics(gaussian, walks, dataset, data_moves, generator),
                        "codes_used": None, "code_perplexity": None}
    del walks
    logger.info("Gaussian done in %.0f s", time.perf_counter() - t0)

    vq_recon = reconstruction(vq, dataset, cfg.holdout_every, cfg.seed)
    pickers = {"vq_uniform": (uniform_picker(vq.num_codes, generator), 1, vq.num_codes),
               "vq_prior": (prior_picker(prior, generator, v_style, cfg.temperature, cfg.top_k), prior.context,
                            prior.config.pad_code)}
    for key, (pick, context, pad) in pickers.items():
        t0 = time.perf_counter()
        logger.info("%s: %d x %d frames", ROWS[key], cfg.characters, cfg.steps)
        frames, codes = code_walk(vq, v_start, cfg.steps, pick, v_style, context, pad)  # (B, T, D), (B, T)
        walks = torch.cat((v_start, frames), dim=1)  # (B, C + T, D), as vae.evaluate's walks
        perplexity, used = code_usage(codes, vq.num_codes)
        rows[key] = {**vq_recon, **walk_metrics(vq, walks, dataset, data_moves, generator),
                     "codes_used": used, "code_perplexity": perplexity}
        del frames, walks
        logger.info("%s done in %.0f s", ROWS[key], time.perf_counter() - t0)

    # Latency: the first character alone (batch 1), through the same loops.
    latency = torch.Generator().manual_seed(cfg.seed)
    g_style1 = None if g_style is None else g_style[:1]
    v_style1 = None if v_style is None else v_style[:1]
    rows["gaussian"]["step_ms"] = step_ms(
        lambda n: random_walks(gaussian, g_start[:1], n, latency, g_style1), cfg.latency_steps)
    rows["vq_uniform"]["step_ms"] = step_ms(
        lambda n: code_walk(vq, v_start[:1], n, uniform_picker(vq.num_codes, latency), v_style1), cfg.latency_steps)
    prior_pick1 = prior_picker(prior, latency, v_style1, cfg.temperature, cfg.top_k)
    rows["vq_prior"]["step_ms"] = step_ms(
        lambda n: code_walk(vq, v_start[:1], n, prior_pick1, v_style1, prior.context, prior.config.pad_code),
        cfg.latency_steps)

    settings = asdict(cfg)
    settings.update({"fps": dataset.fps, "vq_codes": vq.num_codes, "prior_context": prior.context,
                     "gaussian_epochs": gaussian.extra.get("epoch"), "vq_epochs": vq.extra.get("epoch"),
                     "prior_epochs": prior.extra.get("epoch"), "threads_used": torch.get_num_threads()})
    return {"rows": {key: {col: rows[key].get(col) for col in COLUMNS} for key in ROWS}, "data": data_row,
            "settings": settings, "seconds": round(time.perf_counter() - t_start, 1)}


def _fmt(value, digits: int) -> str:
    if value is None:
        return "—"
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:.{digits}f}"


def markdown_table(result: dict) -> str:
    """The table users read: one row per manifold and one for the data."""
    head = ("| manifold | recon (teacher) | recon (8-step) | foot sliding | jitter m/s² | speed W1 m/s | "
            "turn W1 deg/s | pose diversity m | codes used | non-finite frames | step ms (B=1) |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for key, name in ROWS.items():
        r = result["rows"][key]
        nonfinite = f"{_fmt(r['nonfinite_frames'], 0)} of {_fmt(r['walk_frames'], 0)}"
        lines.append(f"| {name} | {_fmt(r['recon_teacher'], 4)} | {_fmt(r['recon_rollout8'], 4)} | "
                     f"{_fmt(r['foot_sliding'], 3)} | {_fmt(r['jitter'], 1)} | {_fmt(r['speed_w1_mps'], 3)} | "
                     f"{_fmt(r['turn_w1_deg_s'], 1)} | {_fmt(r['pose_diversity'], 3)} | {_fmt(r['codes_used'], 0)} | "
                     f"{nonfinite} | {_fmt(r['step_ms'], 3)} |")
    d = result["data"]
    lines.append(f"| data | — | — | {_fmt(d['foot_sliding'], 3)} | {_fmt(d['jitter'], 1)} | 0 | 0 | "
                 f"{_fmt(d['pose_diversity'], 3)} | — | — | — |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = dataclass_parser(CompareConfig, prog="python -m vae.compare_manifolds",
                              description="The autonomous-motion table: Gaussian MVAE, VQ + uniform codes, "
                                          "VQ + transformer prior, against the data.")
    cfg = CompareConfig(**vars(parser.parse_args(argv)))
    logging.basicConfig(level=logging.WARNING if cfg.json else logging.INFO, format="%(message)s")
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    try:
        result = compare(cfg)
    except (FileNotFoundError, ValueError) as e:
        print(f"vae.compare_manifolds: error: {' '.join(str(e).split())}", file=sys.stderr)
        return 2
    if not cfg.json:
        print(markdown_table(result))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
