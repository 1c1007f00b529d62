"""``python -m vae.compare_manifolds``: the autonomous-motion table, Gaussian Motion VAE against VQ motion tokens.

Usage::

    python -m vae.compare_manifolds --gaussian G.pt --vq VQ.pt --prior PRIOR.pt --data DATA.npz [--json]
        [--vq-adversarial VQ_ADV.pt --prior-adversarial PRIOR_ADV.pt]

Rows: the Gaussian MVAE with z ~ N(0, I) every frame (the random walk of ``vae.evaluate``), the VQ model with
uniformly random codes, the VQ model with codes from its transformer prior (:mod:`vae.prior_walk`), optionally a
second VQ model trained with ``vae.train --adversarial-weight`` walking with codes from its own prior (measured as the
VQ + prior row), and the data.
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
- ``train_minutes``: wall minutes the model's training took (its recorded epochs), plus its prior's for the prior rows.
- With ``--target ROW=POLICY.pt,...`` / ``--joystick ROW=POLICY.pt,...`` (a policy trained on that row's model; a
  prior-residual policy steers through the row's prior), each evaluated with ``policies.evaluate`` on
  ``--policy-episodes`` episodes: ``target_success`` (share of targets reached within 10 s), ``joystick_heading_deg``
  and ``joystick_speed_mps`` (errors after 1 s settling), and each policy's training minutes
  (``target_minutes``, ``joystick_minutes``, from its file).

Prints a markdown table (unless ``--json``) and ONE JSON line last: ``{"rows": {"gaussian", "vq_uniform",
"vq_prior"[, "vq_adv_prior"]: {column: value}}, "data": {...}, "settings": {...}, "seconds": s}``. The three
rows are drawn from the seed in the same order with or without the optional row, so adding it leaves their values
unchanged.
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
from vae.prior_walk import CodePicker, code_walk, prior_picker, uniform_picker

logger = logging.getLogger("vae.compare_manifolds")

ROWS = {"gaussian": "Gaussian MVAE, z ~ N(0, I)", "vq_uniform": "VQ + uniform codes",
        "vq_prior": "VQ + transformer prior"}
# Present only with --vq-adversarial and --prior-adversarial.
OPTIONAL_ROWS = {"vq_adv_prior": "VQ + prior + adversarial"}
COLUMNS = ("recon_teacher", "recon_rollout8", "foot_sliding", "jitter", "speed_w1_mps", "turn_w1_deg_s",
           "pose_diversity", "nonfinite_frames", "walk_frames", "diverged_walks", "codes_used", "code_perplexity",
           "step_ms", "train_minutes", "target_success", "target_minutes", "joystick_heading_deg",
           "joystick_speed_mps", "joystick_minutes")
POLICY_TASKS = ("target", "joystick")
LATENCY_REPEATS = 3
LATENCY_WARMUP = 10
# Pose features (in data stds) the prior sees at most: far beyond vae.metrics.DIVERGENCE_STD, where a walk is cut.
PRIOR_COND_LIMIT = 1e4


@dataclass
class CompareConfig:
    """Everything that decides the comparison (printed in the JSON line as ``settings``)."""

    gaussian: str = ""
    """Gaussian Motion VAE checkpoint (`python -m vae.train`, model mixture or vae). Required."""

    vq: str = ""
    """VQ Motion VAE checkpoint (`python -m vae.train --model vq`) on the same skeleton. Required."""

    prior: str = ""
    """Code prior of the --vq model (`python -m vae.train_prior`). Required."""

    vq_adversarial: str = ""
    """Optional: a VQ Motion VAE trained with `python -m vae.train --adversarial-weight W` (needs
    --prior-adversarial): adds the row "VQ + prior + adversarial"."""

    prior_adversarial: str = ""
    """Code prior of the --vq-adversarial model (`python -m vae.train_prior`)."""

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

    target: str = ""
    """Target policies to evaluate per row: comma-separated ROW=POLICY.pt (rows: gaussian, vq_uniform, vq_prior,
    vq_adv_prior), each trained on that row's model."""

    joystick: str = ""
    """Joystick policies to evaluate per row, as --target."""

    policy_episodes: int = 64
    """Episodes each policy is evaluated on."""


def policy_specs(cfg: CompareConfig) -> dict[str, dict[str, str]]:
    """{task: {row: policy file}} from --target / --joystick; a ValueError naming the flag for a bad entry."""
    specs: dict[str, dict[str, str]] = {}
    for task in POLICY_TASKS:
        specs[task] = {}
        for entry in filter(None, (e.strip() for e in getattr(cfg, task).split(","))):
            row, sep, path = entry.partition("=")
            if not sep or row not in {**ROWS, **OPTIONAL_ROWS}:
                raise ValueError(f"--{task} {entry!r}: write ROW=POLICY.pt with ROW one of "
                                 f"{', '.join({**ROWS, **OPTIONAL_ROWS})}")
            if row == "vq_adv_prior" and not cfg.vq_adversarial:
                raise ValueError(f"--{task} {entry!r}: the row vq_adv_prior needs --vq-adversarial")
            if not Path(path).is_file():
                raise FileNotFoundError(f"--{task} {entry!r}: no such policy file {path}")
            specs[task][row] = path
    return specs


def check_config(cfg: CompareConfig) -> None:
    """Raise ValueError naming the flag of every value that cannot work."""
    problems = [f"--{name} is required" for name in ("gaussian", "vq", "prior", "data") if not getattr(cfg, name)]
    if bool(cfg.vq_adversarial) != bool(cfg.prior_adversarial):
        problems.append("--vq-adversarial and --prior-adversarial go together (the adversarial VQ model and its prior)")
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


def load_code_prior(path: str, flag: str, vq, vq_flag: str, vq_path: str):
    """The code prior of ``--flag path``, checked against the VQ model of ``--vq_flag``; errors name the flag."""
    if not Path(path).is_file():
        raise FileNotFoundError(f"--{flag} {path}: no such file; train one with `python -m vae.train_prior`")
    try:
        prior = load_prior(path)
        check_prior_fits(prior, vq, f"--{flag} {path} (for --{vq_flag} {vq_path})")
    except ValueError as e:
        raise ValueError(str(e) if str(e).startswith(f"--{flag}") else f"--{flag} {e}") from None
    return prior


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


def finite_conditions(pick: CodePicker) -> CodePicker:
    """``pick`` seeing a non-finite pose feature as 0 and the others clamped to +-PRIOR_COND_LIMIT: only a character
    that diverged has such poses (its walk is measured up to the divergence), and the NaN logits they would give
    stop every character's walk in the prior's multinomial draw."""
    def pick_finite(codes: torch.Tensor, conds: torch.Tensor) -> torch.Tensor:
        safe = torch.where(torch.isfinite(conds), conds, torch.zeros_like(conds))
        return pick(codes, safe.clamp(-PRIOR_COND_LIMIT, PRIOR_COND_LIMIT))
    return pick_finite


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
    policy_specs(cfg)  # bad --target / --joystick entries fail now, not after the walks
    t_start = time.perf_counter()
    gaussian = load_model(cfg.gaussian, "gaussian", discrete=False)
    vq = load_model(cfg.vq, "vq", discrete=True)
    prior = load_code_prior(cfg.prior, "prior", vq, "vq", cfg.vq)
    # The optional row: (row key, VQ model, its prior).
    vq_models = [("vq_prior", vq, prior)]
    if cfg.vq_adversarial:
        vq_adv = load_model(cfg.vq_adversarial, "vq-adversarial", discrete=True)
        prior_adv = load_code_prior(cfg.prior_adversarial, "prior-adversarial", vq_adv, "vq-adversarial",
                                    cfg.vq_adversarial)
        vq_models.append(("vq_adv_prior", vq_adv, prior_adv))
    dataset = load_data(cfg.data, {"gaussian": gaussian, "vq": vq,
                                   **({"vq-adversarial": vq_models[1][1]} if len(vq_models) > 1 else {})})
    generator = torch.Generator().manual_seed(cfg.seed)

    data_row, data_moves = data_metrics(dataset, generator)
    windows, styles = start_windows(dataset, (gaussian, *(m for _, m, _ in vq_models)), cfg.characters, generator)
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
               "vq_prior": (finite_conditions(prior_picker(prior, generator, v_style, cfg.temperature, cfg.top_k)),
                            prior.step_context,
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

    for key, model, model_prior in vq_models[1:]:
        t0 = time.perf_counter()
        logger.info("%s: reconstruction and %d x %d frames", OPTIONAL_ROWS[key], cfg.characters, cfg.steps)
        start = windows[:, windows.shape[1] - model.num_condition_frames:]  # (B, C, D)
        style = styles if model.num_styles else None
        pick = finite_conditions(prior_picker(model_prior, generator, style, cfg.temperature, cfg.top_k))
        frames, codes = code_walk(model, start, cfg.steps, pick, style, model_prior.step_context,
                                  model_prior.config.pad_code)  # (B, T, D), (B, T)
        walks = torch.cat((start, frames), dim=1)  # (B, C + T, D)
        perplexity, used = code_usage(codes, model.num_codes)
        rows[key] = {**reconstruction(model, dataset, cfg.holdout_every, cfg.seed),
                     **walk_metrics(model, walks, dataset, data_moves, generator),
                     "codes_used": used, "code_perplexity": perplexity}
        del frames, walks
        logger.info("%s done in %.0f s", OPTIONAL_ROWS[key], time.perf_counter() - t0)

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
        lambda n: code_walk(vq, v_start[:1], n, prior_pick1, v_style1, prior.step_context, prior.config.pad_code),
        cfg.latency_steps)
    for key, model, model_prior in vq_models[1:]:
        start1 = windows[:1, windows.shape[1] - model.num_condition_frames:]  # (1, C, D)
        style1 = styles[:1] if styles is not None and model.num_styles else None
        pick1 = prior_picker(model_prior, latency, style1, cfg.temperature, cfg.top_k)
        rows[key]["step_ms"] = step_ms(
            lambda n, m=model, s=start1, p=pick1, st=style1, mp=model_prior: code_walk(
                m, s, n, p, st, mp.step_context, mp.config.pad_code), cfg.latency_steps)

    # What each row cost to train, and its policies.
    models = {"gaussian": (gaussian, None), "vq_uniform": (vq, None), "vq_prior": (vq, prior)}
    models.update({key: (model, model_prior) for key, model, model_prior in vq_models[1:]})
    for key, (model, model_prior) in models.items():
        rows[key]["train_minutes"] = training_minutes(model, *([model_prior] if model_prior is not None else []))
    for task, entries in policy_specs(cfg).items():
        for key, path in entries.items():
            t0 = time.perf_counter()
            model, model_prior = models[key]
            rows[key].update(policy_metrics(task, path, model, model_prior, cfg.policy_episodes, cfg.seed))
            logger.info("%s: %s policy %s evaluated in %.0f s", key, task, path, time.perf_counter() - t0)

    settings = asdict(cfg)
    settings.update({"fps": dataset.fps, "vq_codes": vq.num_codes, "prior_context": prior.step_context,
                     "gaussian_epochs": gaussian.extra.get("epoch"), "vq_epochs": vq.extra.get("epoch"),
                     "prior_epochs": prior.extra.get("epoch"), "threads_used": torch.get_num_threads()})
    if len(vq_models) > 1:
        settings.update({"vq_adversarial_epochs": vq_models[1][1].extra.get("epoch"),
                         "prior_adversarial_epochs": vq_models[1][2].extra.get("epoch")})
    return {"rows": {key: {col: rows[key].get(col) for col in COLUMNS} for key in rows}, "data": data_row,
            "settings": settings, "seconds": round(time.perf_counter() - t_start, 1)}


def training_minutes(*files) -> float | None:
    """Wall minutes of the recorded epochs of a model (and of its prior): their ``extra["history"]`` seconds."""
    total = 0.0
    for module in files:
        history = getattr(module, "extra", {}).get("history") or []
        if not history:
            return None
        total += sum(float(row.get("seconds", 0.0)) for row in history)
    return total / 60.0


def policy_metrics(task: str, path: str, model, prior, episodes: int, seed: int) -> dict:
    """``task``'s columns for the policy file ``path`` driving ``model`` (through ``prior`` if prior-residual)."""
    from policies.checkpoint import (
        check_policy_fits,
        check_prior_matches,
        load_policy,
        policy_task_options,
        read_policy_checkpoint,
    )
    from policies.controllers import PolicyController
    from policies.evaluate import evaluate

    policy = load_policy(path)
    if policy.task != task:
        raise ValueError(f"--{task} {path}: a {policy.task} policy, not a {task} one")
    code_prior = prior if policy.prior_residual else None
    try:
        check_policy_fits(policy, model, strict=True)
        check_prior_matches(policy, code_prior)
    except ValueError as e:
        raise ValueError(f"--{task} {e}") from None
    options = {**policy_task_options(policy), "code_prior": code_prior}
    result = evaluate(lambda env: PolicyController(policy), task=task, vae=model, episodes=episodes, seed=seed,
                      batch_size=episodes, action_scale=policy.action_scale, env_options=options)
    minutes = read_policy_checkpoint(path).get("stats", {}).get("train_minutes")
    if task == "target":
        return {"target_success": result.get("success_rate"), "target_minutes": minutes}
    return {"joystick_heading_deg": result.get("heading_error_deg"),
            "joystick_speed_mps": result.get("speed_error_mps"), "joystick_minutes": minutes}


def _fmt(value, digits: int) -> str:
    if value is None:
        return "—"
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:.{digits}f}"


def _policy_cell(row: dict, task: str) -> str:
    """The Target or Joystick cell of a row: its policy's figures and training minutes, or a dash."""
    if task == "target":
        value = row.get("target_success")
        text = None if value is None else f"{100 * value:.1f} %"
    else:
        heading, speed = row.get("joystick_heading_deg"), row.get("joystick_speed_mps")
        text = None if heading is None else f"{heading:.1f} / {_fmt(speed, 2)}"
    if text is None:
        return "—"
    minutes = row.get(f"{task}_minutes")
    return text if minutes is None else f"{text} ({minutes:.0f})"


def markdown_table(result: dict) -> str:
    """The table users read: one row per manifold and one for the data."""
    head = ("| manifold | recon (teacher) | recon (8-step) | foot sliding | jitter m/s² | speed W1 m/s | "
            "turn W1 deg/s | pose diversity m | codes used | non-finite frames | step ms (B=1) | training min | "
            "Target success (policy min) | Joystick heading deg / speed m/s (policy min) |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for key, name in {**ROWS, **OPTIONAL_ROWS}.items():
        if key not in result["rows"]:
            continue
        r = result["rows"][key]
        nonfinite = f"{_fmt(r['nonfinite_frames'], 0)} of {_fmt(r['walk_frames'], 0)}"
        lines.append(f"| {name} | {_fmt(r['recon_teacher'], 4)} | {_fmt(r['recon_rollout8'], 4)} | "
                     f"{_fmt(r['foot_sliding'], 3)} | {_fmt(r['jitter'], 1)} | {_fmt(r['speed_w1_mps'], 3)} | "
                     f"{_fmt(r['turn_w1_deg_s'], 1)} | {_fmt(r['pose_diversity'], 3)} | {_fmt(r['codes_used'], 0)} | "
                     f"{nonfinite} | {_fmt(r['step_ms'], 3)} | {_fmt(r.get('train_minutes'), 1)} | "
                     f"{_policy_cell(r, 'target')} | {_policy_cell(r, 'joystick')} |")
    d = result["data"]
    lines.append(f"| data | — | — | {_fmt(d['foot_sliding'], 3)} | {_fmt(d['jitter'], 1)} | 0 | 0 | "
                 f"{_fmt(d['pose_diversity'], 3)} | — | — | — | — | — | — |")
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
