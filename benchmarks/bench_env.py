"""Environment step throughput: the natively batched envs against the reference formulation, same run.

For Target and Joystick at B = 1, 64, 256, 1024 characters, with a full-size PoseMixtureVAE (22 joints,
D = 267, Z = 32, 6 experts; untrained weights: timing does not depend on them), it measures env-steps/s
(B / seconds per ``MotionVecEnv.step``) with three decoders in the same environment:

* ``ours``: the manifold's decoder as shipped (all experts of a layer in one matmul, outputs blended);
* ``reference``: the reference code's formulation, per-sample blended weights, written as that code does
  it: expert weights stored (E, in, out), ``W_b = coef @ W.view(E, -1)``, then a batched matmul;
* ``decode_reference``: ``vae.reference.ReferenceMixtureDecoder`` (the same maths on the model's (in, E, out)
  weight layout, through ``einsum``; slower than the reference code at small B, so the speedup against
  ``reference`` is the honest one).

It also times, at B = 1, the single-character Gymnasium wrapper (``MotionEnv.step``) against the batched
env's step (``MotionVecEnv.step``, torch backend) and against the bare character core (``MotionCore.step``:
decode + root integration, no task).

The formulations are measured interleaved, repeat after repeat, so a busy spell on a shared machine hits
them alike; each figure is min / median / max over the repeats, and ratios are given for the best
(least disturbed) and the median repeats. Prints ONE JSON line, with the thread count and the load average::

    .venv/bin/python -m benchmarks.bench_env [--threads 2] [--device cpu] [--batches 1 64 256 1024]
        [--tasks target joystick] [--formulations ours reference decode_reference] [--no-single] [--vae CKPT]

``--vae assets/characters/deepmimic/vae.pt`` times the shipped character's model (D = 183) in place of the
untrained 22-joint one.

On a GPU (``--device cuda --batches 4096 16384 --formulations ours --no-single``) the reference formulations would
materialise (B, in, out) blended weights per layer (5 GB at B = 16,384), so only ours is timed there.
"""

from __future__ import annotations

import argparse
import statistics

import numpy as np
import torch
import torch.nn.functional as F

from benchmarks.common import context, emit, interleaved, spread
from envs.motion_core import MotionCore
from envs.single_env import MotionEnv
from envs.vec_env import MotionVecEnv
from vae import VAEConfig, build_model, load_manifold
from vae.reference import ReferenceMixtureDecoder

JOINTS = 22
TASKS = ("target", "joystick")
FORMULATIONS = ("ours", "reference", "decode_reference")


def reference_decoder(decoder):
    """decode(z, cond) the way the reference code runs its mixture decoder: blend weights, then bmm."""
    weights = [w.detach().permute(1, 0, 2).contiguous() for w in decoder.weights]  # (E, in, out) each
    biases = [b.detach() for b in decoder.biases]  # (E, out)
    last = len(weights) - 1

    def decode(z: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        coef = decoder.coefficients(z, cond)  # (B, E)
        h = cond
        for i, (w, b) in enumerate(zip(weights, biases, strict=True)):
            e, n_in, n_out = w.shape
            x = torch.cat((z, h), dim=1).unsqueeze(1)  # (B, 1, in)
            mixed_w = (coef @ w.view(e, -1)).view(-1, n_in, n_out)  # (B, in, out)
            mixed_b = (coef @ b).unsqueeze(1)  # (B, 1, out)
            h = torch.baddbmm(mixed_b, x, mixed_w).squeeze(1)
            if i < last:
                h = F.elu(h)
        return h

    return decode


def full_size_manifold(device: str, formulation: str = "ours", vae: str | None = None):
    """An untrained 22-joint PoseMixtureVAE (the paper's sizes), or the checkpoint ``vae``, decoding with
    ``formulation``."""
    torch.manual_seed(0)
    if vae is not None:
        manifold = load_manifold(vae, device).eval()
    else:
        manifold = build_model(VAEConfig(model="mixture", frame_size=3 + 12 * JOINTS)).to(device).eval()
        manifold.fps = 30.0
    # An instance attribute shadows the method: manifold.step then decodes the chosen way (style is None: no styles).
    decode = {"reference": reference_decoder, "decode_reference": ReferenceMixtureDecoder}.get(formulation)
    if decode is not None:
        decode = decode(manifold.decoder)
        manifold.decode = lambda z, cond, style=None: decode(z, cond)
    return manifold


def start_frames(frame_size: int) -> torch.Tensor:
    return torch.randn(64, 1, frame_size, generator=torch.Generator().manual_seed(1))  # (S, C, D)


def sync_for(device: str):
    """What makes a timing wait for the device: the CUDA queue's end, nothing on the CPU."""
    return torch.cuda.synchronize if device.startswith("cuda") else None


def throughput(task: str, b: int, device: str, seconds: float, repeats: int,
               formulations: tuple[str, ...] = FORMULATIONS, vae: str | None = None) -> dict:
    # The checkpoint starts from its own start frames; the untrained model from random ones.
    frames = None if vae is not None else start_frames(3 + 12 * JOINTS)
    actions = (torch.rand(b, 32, generator=torch.Generator().manual_seed(2)) * 2 - 1).to(device)
    envs = {}
    for formulation in formulations:
        env = MotionVecEnv(b, task, full_size_manifold(device, formulation, vae), start_frames=frames,
                           array_backend="torch")
        env.reset(seed=0)
        envs[formulation] = env
    per_step = interleaved({f: (lambda env=env: env.step(actions)) for f, env in envs.items()}, repeats,
                           seconds=seconds, sync=sync_for(device))
    rates = {f: [b / s for s in v] for f, v in per_step.items()}
    row = {f"{f}_steps_per_s": spread(r, 0) for f, r in rates.items()}
    for ref in ("reference", "decode_reference"):
        if ref not in rates:
            continue
        row[f"speedup_vs_{ref}"] = {"best": max(rates["ours"]) / max(rates[ref]),
                                    "median": statistics.median(rates["ours"]) / statistics.median(rates[ref])}
    return row


def wrapper_overhead(task: str, device: str, seconds: float, repeats: int) -> dict:
    manifold = full_size_manifold(device)
    frames = start_frames(manifold.frame_size)
    single = MotionEnv(task, manifold, start_frames=frames, max_episode_steps=10**9)
    single.reset(seed=0)
    action = np.random.default_rng(2).uniform(-1, 1, manifold.latent_size).astype(np.float32)
    vec = MotionVecEnv(1, task, manifold, start_frames=frames, array_backend="torch", max_episode_steps=10**9)
    vec.reset(seed=0)
    batch = torch.as_tensor(action[None]).to(device)
    core = MotionCore(manifold, 1, start_frames=frames)
    core.seed(0)
    core.reset()
    latent = batch * vec.action_scale
    times = interleaved({"core": lambda: core.step(latent), "vec": lambda: vec.step(batch),
                         "single": lambda: single.step(action)}, repeats, seconds=seconds, sync=sync_for(device))
    best = {k: min(v) for k, v in times.items()}
    med = {k: statistics.median(v) for k, v in times.items()}
    return {
        **{f"{k}_ms": spread([1e3 * x for x in v]) for k, v in times.items()},
        # The Gymnasium single-env layer alone (MotionEnv over the batched env):
        "wrapper_over_vec": {"best": best["single"] / best["vec"] - 1.0, "median": med["single"] / med["vec"] - 1.0},
        # Everything a step adds to decoding + root integration: action checks, task, observation, info:
        "single_over_core": {"best": best["single"] / best["core"] - 1.0, "median": med["single"] / med["core"] - 1.0},
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads (default 2)")
    parser.add_argument("--device", default="cpu", help="torch device (default cpu)")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 64, 256, 1024])
    parser.add_argument("--tasks", nargs="+", default=list(TASKS), choices=TASKS)
    parser.add_argument("--formulations", nargs="+", default=list(FORMULATIONS), choices=FORMULATIONS)
    parser.add_argument("--no-single", action="store_true", help="skip the one-character wrapper overhead")
    parser.add_argument("--seconds", type=float, default=0.25, help="length of one timed repeat (default 0.25 s)")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--vae", default=None, help="time this checkpoint (e.g. assets/characters/deepmimic/vae.pt) "
                                                    "instead of the untrained 22-joint model")
    args = parser.parse_args(argv)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit(f"--device {args.device}: torch sees no CUDA device (a CPU build of torch, or no GPU)")
    torch.set_num_threads(args.threads)
    formulations = tuple(args.formulations)
    results = {task: {str(b): throughput(task, b, args.device, args.seconds, args.repeats, formulations, args.vae)
                      for b in args.batches} for task in args.tasks}
    vae = {"model": "mixture", "joints": JOINTS, "frame_size": 3 + 12 * JOINTS, "latent": 32, "experts": 6}
    if args.vae is not None:
        config = load_manifold(args.vae).config
        vae = {"checkpoint": args.vae, "frame_size": config.frame_size, "latent": config.latent_size,
               "experts": config.num_experts}
    result = {"benchmark": "env_step", "device": args.device, "vae": vae,
              "env_steps_per_s": results}
    if not args.no_single:
        result["single_env_b1"] = {task: wrapper_overhead(task, args.device, args.seconds / 2, 3 * args.repeats)
                                   for task in args.tasks}
    result.update(context())
    emit(result)


if __name__ == "__main__":
    main()
