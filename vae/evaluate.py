"""``python -m vae.evaluate CKPT --data DATA.npz --json``: how good is a trained Motion VAE?

Prints ONE JSON object as the last line of stdout (scripts read it). Keys:

- ``eval_clips``, ``eval_clips_seen_in_training``: the held-out clips used for the reconstruction errors. They
  are the checkpoint's own held-out clips (``extra["holdout"]``, from ``vae.train --holdout-every``); when the
  training used every clip, every ``--holdout-every``-th motion is used instead and the flag says it was seen.
- ``recon_error_teacher``: MSE per element of the normalised next frame, condition = ground truth, z = posterior
  mean (the code for VQ), over every window of the evaluation clips.
- ``recon_error_rollout8``: the same after an 8-step student rollout (each step conditioned on the model's own
  previous prediction, z from the encoder given the true next frame); ``recon_error_rollout8_mean`` averages
  the 8 steps.
- Random walks: ``--walks`` characters (default 8) of ``--frames / --walks`` frames each, started from the
  checkpoint's ``start_frames``, z drawn from the prior every frame, root integrated to world positions.
  ``rollout_frames`` (generated frames in all), ``nonfinite_frames``; ``diverged_walks``, ``diverged_frames`` and
  ``first_divergence_frame``: walks that blew up (a frame non-finite or a feature beyond 100 data standard
  deviations) and the frames from there on. The motion metrics below use each walk up to that frame.
- ``bone_length_error_cm``: mean |distance(joint, parent) - skeleton bone length| over generated frames and
  non-root joints; ``data_bone_length_error_cm`` is the same on the dataset (non-zero where the capture
  animates joint offsets).
- ``root_height_range_m`` / ``data_root_height_range_m``: [min, max] root joint height.
- ``foot_skate_cm_per_frame`` / ``data_foot_skate_cm_per_frame``: mean horizontal displacement per frame of a
  foot joint in contact (below its ``floor_heights`` + 5 cm at both frames; the dataset's ``foot_joints``), with
  ``foot_contact_fraction`` / ``data_foot_contact_fraction`` (share of foot-frames in contact).
- ``pose_diversity`` / ``data_pose_diversity``: mean pairwise pose distance in metres (RMS over joints,
  character frame) of 1000 poses sampled from the walks / the dataset.
- ``foot_sliding``, ``skating_ratio``, ``coherence``, ``jitter`` and their ``data_*`` twins: the field's metrics
  (``../shared/docs/METRICS.md``: CAMDM foot sliding, A-MDM skating ratio, CAMDM coherence, mean joint
  acceleration m/s^2; :mod:`mocap.quality`) over the random walks and over the dataset's clips.
- ``latent_output_std``: std across 16 prior draws of z of the decoded (normalised) next frame, averaged over
  features and 256 evaluation conditions: how much the latent steers the motion (near 0: posterior collapse).
- ``steerability``: ``turn_spread_deg_s`` and ``speed_spread_mps``, the spread across prior draws of z of the next
  step's turn rate and speed, medians over the evaluation conditions (:func:`vae.stability.steerability`).
- ``held_latent``: what a policy does, hold one z: 256 characters hold z = level * N(0, I) (levels 0.5, 1, 2, 3
  prior stds; the model clamps it to its latent bound) for 30 s; ``diverged_share`` per level and
  ``diverged_share_all`` (a pose feature beyond the data's envelope, as the environments reset)
  (:func:`vae.stability.held_latent_stability`).
- ``speed_transitions``: per pair of speed bands (standing, walk, run, dash; :data:`mocap.quality.SPEED_BANDS`)
  ``"from->to"``, the share of 16 start windows of the first band a greedy latent search brings into the second
  within 3 s (``reached``) and the median time (``median_s``); ``reached_all`` over the pairs
  (:func:`vae.stability.speed_transitions`).
- Gaussian models: ``action_scale``: the latent bound for policies (stored by vae.train from the aggregate
  posterior; measured here for older models, :func:`vae.stability.latent_action_scale`).
- Gaussian models: ``kl_per_dim`` (nats, on the evaluation windows), ``kl_total``, ``active_latent_dims`` (posterior
  mean variance > 0.01). VQ: ``perplexity`` and ``codes_used`` (encoder codes on the evaluation windows),
  ``num_codes``.
- ``seconds``: wall time of the evaluation.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np
import torch

from envs.manifold_source import divergence_limits
from mocap.dataset import MotionDataset
from mocap.pose_layout import PoseLayout
from mocap.quality import SPEED_BANDS, WINDOW_S, quality_over, toe_joints
from vae.checkpoint import load_manifold
from vae.data import WindowDataset, holdout_split, valid_window_starts, window_length
from vae.metrics import (
    active_units,
    bone_length_errors,
    code_usage,
    divergence_frame,
    foot_contact_displacements,
    gaussian_kl_per_dim,
    nonfinite_frames,
    pose_diversity,
    root_height_range,
    world_positions,
)
from vae.stability import (
    aggregate_posterior,
    held_latent_stability,
    latent_action_scale,
    speed_transitions,
    start_styles_of,
    steerability,
)

ROLLOUT_STEPS = 8
DEFAULT_FRAMES = 18000  # 10 minutes at 30 Hz
DEFAULT_WALKS = 8
DEFAULT_HOLDOUT_EVERY = 10
MAX_EVAL_WINDOWS = 8192
EVAL_BATCH = 1024
DIVERSITY_SAMPLES = 1000
LATENT_PROBE_CONDITIONS = 256
LATENT_PROBE_SAMPLES = 16
HELD_PER_LEVEL = 64


def _posterior(model, target: torch.Tensor, cond: torch.Tensor, style=None) -> dict:
    """Encoder output with a deterministic latent: the posterior mean (Gaussian) or the nearest code (VQ)."""
    if model.discrete:
        return model.encode(target, cond, style=style)
    return model.encode(target, cond, sample=False, style=style)


def _window_styles(frame_styles: torch.Tensor | None, windows: WindowDataset, positions: torch.Tensor):
    """(B,) the styles of windows ``positions`` (their first frame's), None without styles."""
    return None if frame_styles is None else frame_styles[windows.starts[positions].cpu()].to(windows.frames.device)


@torch.no_grad()
def reconstruction_errors(model, frames_norm: torch.Tensor, end_indices, clips, generator,
                          frame_styles: torch.Tensor | None = None) -> dict:
    """Teacher-forced and 8-step student-rollout MSE on normalised frames, plus latent statistics; windows are
    decoded in their clip's style (``frame_styles`` (N,), models with styles)."""
    c, f, d = model.num_condition_frames, model.num_future_predictions, model.frame_size
    results: dict = {}
    # Teacher forcing: every window of C + F frames.
    starts = valid_window_starts(end_indices, c + f, clips)
    if len(starts) > MAX_EVAL_WINDOWS:
        rng = np.random.default_rng(int(generator.initial_seed()))
        starts = np.sort(starts[rng.choice(len(starts), MAX_EVAL_WINDOWS, replace=False)])
    teacher = WindowDataset(frames_norm, starts, c + f, frames_norm.device)
    sq_sum, count, mus, logvars, codes = 0.0, 0, [], [], []
    for i in range(0, len(teacher), EVAL_BATCH):
        positions = torch.arange(i, min(i + EVAL_BATCH, len(teacher)), device=frames_norm.device)
        win = teacher.windows(positions)
        style = _window_styles(frame_styles, teacher, positions)
        b = win.shape[0]
        cond, target = win[:, :c].reshape(b, c * d), win[:, c:].reshape(b, f * d)
        enc = _posterior(model, target, cond, style)
        recon = model.decode(enc["z"], cond, style=style)
        sq_sum += float((recon - target).pow(2).sum())
        count += recon.numel()
        if model.discrete:
            codes.append(enc["indices"])
        else:
            mus.append(enc["mu"])
            logvars.append(enc["logvar"])
    results["recon_error_teacher"] = sq_sum / max(count, 1)
    results["teacher_windows"] = len(teacher)
    spread = torch.linspace(0, len(teacher) - 1, min(LATENT_PROBE_CONDITIONS, len(teacher))).long()
    probe = teacher.windows(spread.to(frames_norm.device))  # (P, C + F, D) across all evaluation clips
    results["latent_output_std"] = latent_output_std(model, probe[:, :c].reshape(-1, c * d), LATENT_PROBE_SAMPLES,
                                                     generator)
    if model.discrete:
        perplexity, used = code_usage(torch.cat(codes), model.num_codes)
        results.update({"perplexity": perplexity, "codes_used": used, "num_codes": int(model.num_codes)})
    else:
        mu, logvar = torch.cat(mus), torch.cat(logvars)
        kl = gaussian_kl_per_dim(mu, logvar)
        results.update({
            "kl_per_dim": [round(float(x), 5) for x in kl],
            "kl_total": float(kl.sum()),
            "active_latent_dims": active_units(mu.var(dim=0, unbiased=False)),
            "latent_size": int(model.latent_size),
        })

    # Student rollout of 8 steps.
    window = window_length(c, ROLLOUT_STEPS, f)
    starts = valid_window_starts(end_indices, window, clips)
    if len(starts) > MAX_EVAL_WINDOWS:
        rng = np.random.default_rng(int(generator.initial_seed()) + 1)
        starts = np.sort(starts[rng.choice(len(starts), MAX_EVAL_WINDOWS, replace=False)])
    rollout = WindowDataset(frames_norm, starts, window, frames_norm.device)
    step_sq = torch.zeros(ROLLOUT_STEPS, dtype=torch.float64)
    count = 0
    for i in range(0, len(rollout), EVAL_BATCH):
        positions = torch.arange(i, min(i + EVAL_BATCH, len(rollout)), device=frames_norm.device)
        win = rollout.windows(positions)
        style = _window_styles(frame_styles, rollout, positions)
        b = win.shape[0]
        cond = win[:, :c]  # (B, C, D)
        for k in range(ROLLOUT_STEPS):
            target = win[:, c + k : c + k + f].reshape(b, f * d)
            enc = _posterior(model, target, cond.reshape(b, c * d), style)
            recon = model.decode(enc["z"], cond.reshape(b, c * d), style=style)
            step_sq[k] += float((recon - target).pow(2).sum())
            cond = torch.cat([cond[:, 1:], recon[:, None, :d]], dim=1)
        count += b * f * d
    results["recon_error_rollout8"] = float(step_sq[-1] / max(count, 1)) if len(rollout) else None
    results["recon_error_rollout8_mean"] = float(step_sq.mean() / max(count, 1)) if len(rollout) else None
    results["rollout_windows"] = len(rollout)
    return results


@torch.no_grad()
def latent_output_std(model, cond_norm: torch.Tensor, samples: int, generator) -> float:
    """How much the decoded next frame depends on z: the std across ``samples`` prior draws of the decoded
    (normalised) next frame, averaged over features and the conditions cond_norm (B, C*D). Near 0: collapse."""
    b = cond_norm.shape[0]
    z = model.latent_from_action(model.sample_prior(b * samples, generator=generator))  # (S*B, Z)
    out = model.decode(z, cond_norm.repeat(samples, 1)).reshape(samples, b, -1)  # (S, B, F*D)
    return float(out.std(dim=0).mean())


@torch.no_grad()
def random_walks(model, start_windows: torch.Tensor, frames_per_walk: int, generator,
                 styles: torch.Tensor | None = None) -> torch.Tensor:
    """Walks (W, C + T, D) raw: the start windows (W, C, D) (in their ``styles`` (W,)), then T frames with z
    from the prior each frame."""
    cond = start_windows.to(model.device)
    w, c, d = cond.shape
    out = torch.empty(w, c + frames_per_walk, d, device=model.device)
    out[:, :c] = cond
    for t in range(frames_per_walk):
        nxt = model.step(model.sample_prior(w, generator=generator), cond, style=styles)  # (W, D)
        out[:, c + t] = nxt
        cond = out[:, t + 1 : t + 1 + c]
    return out


def motion_metrics(motions: list[torch.Tensor], skeleton, foot_joints, floor_heights, generator) -> dict:
    """Bone lengths, root height, foot skating and pose diversity over continuous motions (T_i, D) raw."""
    motions = [m.double() for m in motions if m.shape[0] >= 2]
    if not motions:
        return {}
    bone_lengths = skeleton.bone_lengths()
    bone_err, heights, skates, foot_steps, poses = [], [], [], 0, []
    for m in motions:
        world = world_positions(m)  # (T, J, 3)
        bone_err.append(bone_length_errors(world, skeleton.parents, bone_lengths).reshape(-1))
        heights.append(root_height_range(world))
        if len(foot_joints):
            disp, steps = foot_contact_displacements(world, foot_joints, floor_heights)
            skates.append(disp)
            foot_steps += steps
        poses.append(PoseLayout.from_frame_size(m.shape[-1]).positions(m))
    all_skate = torch.cat(skates) if skates else torch.zeros(0, dtype=torch.float64)
    return {
        "bone_length_error_cm": 100.0 * float(torch.cat(bone_err).mean()),
        "root_height_range_m": [round(min(h[0] for h in heights), 4), round(max(h[1] for h in heights), 4)],
        "foot_skate_cm_per_frame": 100.0 * float(all_skate.mean()) if len(all_skate) else (0.0 if skates else None),
        "foot_contact_fraction": len(all_skate) / foot_steps if foot_steps else None,
        "pose_diversity": pose_diversity(torch.cat(poses), DIVERSITY_SAMPLES, generator),
    }


def evaluate(
    checkpoint,
    data,
    frames: int = DEFAULT_FRAMES,
    walks: int = DEFAULT_WALKS,
    seed: int = 0,
    holdout_every: int = DEFAULT_HOLDOUT_EVERY,
    device: str = "cpu",
    held_per_level: int = HELD_PER_LEVEL,
) -> dict:
    """All metrics of the module docstring as a JSON-ready dict. ``checkpoint`` / ``data``: paths, or a loaded
    manifold / MotionDataset."""
    if frames < walks or walks < 1:
        raise ValueError(f"--frames {frames} must be >= --walks {walks} >= 1")
    t0 = time.perf_counter()
    model = checkpoint if isinstance(checkpoint, torch.nn.Module) else load_manifold(checkpoint, device)
    dataset = data if isinstance(data, MotionDataset) else MotionDataset.load(data)
    if dataset.data.shape[1] != model.frame_size:
        raise ValueError(f"--data {data}: frames have D={dataset.data.shape[1]} but the checkpoint's model expects "
                         f"D={model.frame_size}; evaluate on the dataset the model was trained on")
    extra = getattr(model, "extra", {}) or {}
    generator = torch.Generator().manual_seed(seed)

    # Held-out clips: the checkpoint's own, else every k-th motion (seen in training).
    saved = extra.get("holdout", {})
    held = [i for i, n in enumerate(dataset.clip_names) if n in set(saved.get("clips", []))]
    seen = not held
    if seen:
        _, held_arr = holdout_split(dataset.clip_names, holdout_every)
        held = held_arr.tolist() or list(range(dataset.num_clips))
    clips = np.asarray(held, dtype=np.int64)
    train_clips = np.setdiff1d(np.arange(dataset.num_clips), clips) if not seen else np.arange(dataset.num_clips)

    result: dict = {
        "checkpoint": str(checkpoint) if not isinstance(checkpoint, torch.nn.Module) else "(in memory)",
        "model": model.config.model,
        "epochs_trained": extra.get("epoch"),
        "same_data_as_training": model.dataset_fingerprint == dataset.fingerprint(),
        "eval_clips": [dataset.clip_names[i] for i in clips],
        "eval_clips_seen_in_training": seen,
    }
    mean, std = model.data_mean.cpu().numpy(), model.data_std.cpu().numpy()
    frames_norm = torch.from_numpy((dataset.data - mean) / std).float().to(model.device)  # (N, D)
    frame_styles = dataset.frame_styles() if model.num_styles else None
    frame_styles = None if frame_styles is None else torch.from_numpy(frame_styles)
    result.update(reconstruction_errors(model, frames_norm, dataset.end_indices, clips, generator, frame_styles))

    # Random walks from the checkpoint's start windows (else windows of the training clips).
    start_frames = extra.get("start_frames")
    c = model.num_condition_frames
    if start_frames is None:
        starts = valid_window_starts(dataset.end_indices, c, train_clips)
        start_frames = torch.from_numpy(dataset.data[starts[:, None] + np.arange(c)]).float()
    pick = torch.randint(len(start_frames), (walks,), generator=generator)
    per_walk = frames // walks
    walk_frames = random_walks(model, start_frames[pick], per_walk, generator,
                               start_styles_of(model, pick)).cpu()  # (W, C + T, D)
    generated = walk_frames[:, c:]
    result["rollout_frames"] = int(generated.shape[0] * generated.shape[1])
    result["walks"] = walks
    result["nonfinite_frames"] = int(nonfinite_frames(generated).sum())
    # Metrics use each walk up to the frame where it blew up (non-finite or > 100 std from the data mean).
    cut = [divergence_frame(model.normalize(w.to(model.device)).cpu()) for w in generated]
    result["diverged_walks"] = sum(k < per_walk for k in cut)
    result["diverged_frames"] = int(sum(per_walk - k for k in cut))
    result["first_divergence_frame"] = min(cut) if min(cut) < per_walk else None
    walks_ok = [w[: c + k] for w, k in zip(walk_frames, cut, strict=True)]
    metrics = motion_metrics(walks_ok, dataset.skeleton, dataset.foot_joints, dataset.floor_heights, generator)
    result.update(metrics)
    toes = toe_joints(dataset.skeleton)
    result.update(quality_over([world_positions(w.double()).numpy() for w in walks_ok], toes, dataset.fps,
                               window_s=WINDOW_S))

    clips_data = [torch.from_numpy(dataset.clip(i)) for i in range(dataset.num_clips)]
    data_metrics = motion_metrics(clips_data, dataset.skeleton, dataset.foot_joints, dataset.floor_heights, generator)
    data_metrics.update(quality_over([world_positions(c.double()).numpy() for c in clips_data], toes, dataset.fps))
    result.update({f"data_{k}": v for k, v in data_metrics.items()})

    if not model.discrete:
        # The latent is bounded where the decoder was trained (vae.train stores the bound; older models get it here).
        if model.latent_bound is None:
            posterior = aggregate_posterior_of(model, frames_norm, dataset, train_clips, frame_styles)
            model.extra = {**model.extra, "action_scale": latent_action_scale(posterior)}
        result["action_scale"] = model.latent_bound
    limits = divergence_limits(model, model.device)
    result["held_latent"] = held_latent_stability(model, torch.as_tensor(start_frames), limits=limits,
                                                  per_level=held_per_level, generator=generator)
    probe = torch.randint(len(start_frames), (LATENT_PROBE_CONDITIONS,), generator=generator)
    result["steerability"] = steerability(model, torch.as_tensor(start_frames)[probe], generator=generator,
                                          styles=start_styles_of(model, probe))
    result["speed_transitions"] = speed_transitions(model, torch.as_tensor(start_frames), SPEED_BANDS,
                                                    action_scale=None if model.discrete else model.latent_bound,
                                                    generator=generator)
    result["seconds"] = round(time.perf_counter() - t0, 2)
    return result


def aggregate_posterior_of(model, frames_norm: torch.Tensor, dataset: MotionDataset, clips,
                           frame_styles: torch.Tensor | None = None) -> dict:
    """The aggregate posterior over every one-step window of ``clips`` (at most MAX_EVAL_WINDOWS * 4)."""
    c, f, d = model.num_condition_frames, model.num_future_predictions, model.frame_size
    starts = valid_window_starts(dataset.end_indices, c + f, clips)
    if len(starts) > 4 * MAX_EVAL_WINDOWS:
        starts = np.sort(starts[np.random.default_rng(0).choice(len(starts), 4 * MAX_EVAL_WINDOWS, replace=False)])
    windows = WindowDataset(frames_norm, starts, c + f, frames_norm.device).windows(
        torch.arange(len(starts), device=frames_norm.device))  # (N, C + F, D)
    n = windows.shape[0]
    styles = None if frame_styles is None else frame_styles[starts]
    return aggregate_posterior(model, windows[:, :c].reshape(n, c * d), windows[:, c:].reshape(n, f * d),
                               styles=styles)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m vae.evaluate", description=__doc__.split("\n\n")[0])
    p.add_argument("checkpoint", help="checkpoint from `python -m vae.train`")
    p.add_argument("--data", required=True, help="the prepared dataset (.npz) the model was trained on")
    p.add_argument("--json", action="store_true", help="print only the JSON line (else also a readable summary)")
    p.add_argument("--frames", type=int, default=DEFAULT_FRAMES, help="random-walk frames in all (default 18000)")
    p.add_argument("--walks", type=int, default=DEFAULT_WALKS, help="characters walked in parallel (default 8)")
    p.add_argument("--seed", type=int, default=0, help="seed of the walks and of window subsampling")
    p.add_argument("--holdout-every", type=int, default=DEFAULT_HOLDOUT_EVERY,
                   help="when the checkpoint held nothing out: evaluate on every k-th motion (default 10)")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: default)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    try:
        result = evaluate(args.checkpoint, args.data, args.frames, args.walks, args.seed, args.holdout_every,
                          args.device)
    except (FileNotFoundError, ValueError) as e:
        print(f"vae.evaluate: error: {e}", file=sys.stderr)
        return 2
    if not args.json:
        for key, value in result.items():
            if key not in ("kl_per_dim", "eval_clips"):
                print(f"{key:32s} {value}")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
