"""PPO training throughput (env-steps/s, update included): our trainer against the reference's implementation and
settings, and against SB3, measured in the same run.

Trainers on the same Target environment and Motion VAE, each for a few PPO updates after a warm-up:

* ``ours``: :mod:`policies.train` with the settings we train with (``--num-envs``, ``--rollout-steps``,
  ``--minibatch-size``, ``--epochs``, ``--hidden``), the manifold's own decoder;
* ``reference_decoder``: the same trainer and the same settings, with the reference decoder formulation
  (per-sample blended expert weights: ``vae.reference.ReferenceMixtureDecoder``) swapped in. ``ours`` and it take
  turns update by update; ``speedup_vs_reference_decoder_equal_settings`` is the **implementation** ratio at equal
  settings;
* ``reference_settings``: the reference code's hyperparameters and decoder: 100 envs x 1,200 steps per update,
  minibatch 1,000, 10 epochs, actor and critic 256-256-256. Its update holds 120,000 samples and takes 1,200
  gradient steps (120 minibatches x 10 epochs) against our 16 (512 x 32 = 16,384 samples: 4 minibatches x 4
  epochs), so ``speedup_vs_reference_settings`` (the README's 9.5x) compares the reference's **hyperparameters and
  implementation together** with ours: most of it is the 75x fewer gradient steps per sample, which our settings
  learn with (the shipped policies), not a faster implementation. ``gradient_steps_per_update`` gives both;
* ``sb3``: Stable-Baselines3 PPO (``MlpPolicy``, separate actor / critic of our hidden sizes, ReLU,
  ``VecNormalize`` for observations and rewards as ours normalises both) on the same environment through
  :class:`policies.sb3_vec_env.SB3VecEnv`, with our sizes (envs, rollout, minibatch, epochs); ours and SB3 take
  turns update by update.

Each trainer's figure is env-steps / wall second over whole updates (rollout + learning), min / median / max over
the measured updates; ratios at the best and the median update. ``reference_settings`` is measured after the
others (one of its updates takes about a minute: ``--reference-updates 0`` skips it). The VAE is ``--vae``
(default the DeepMimic character's) or, when absent, an untrained PoseMixtureVAE of the shipped character's size
(timings do not depend on the weights). Prints ONE JSON line with the thread count and the load average::

    .venv/bin/python -m benchmarks.bench_ppo [--threads 1] [--updates 6] [--reference-updates 2]
"""

from __future__ import annotations

import argparse
import copy
import statistics
import tempfile
import time
from pathlib import Path

import torch

from benchmarks.common import context, emit, ratio, spread
from policies.train import Trainer
from policies.train_args import TrainArgs
from vae.reference import ReferenceMixtureDecoder

REPO = Path(__file__).resolve().parents[1]
REFERENCE = {"num_envs": 100, "rollout_steps": 1200, "minibatch_size": 1000, "epochs": 10,
             "hidden_sizes": (256, 256, 256), "critic_hidden_sizes": (256, 256, 256)}


def load_vae(path: str | None, device: str):
    from vae import VAEConfig, build_model, load_manifold

    if path is not None and Path(path).is_file():
        return load_manifold(path, device=device), str(path)
    torch.manual_seed(0)
    manifold = build_model(VAEConfig(model="mixture", frame_size=3 + 12 * 15)).to(device).eval()
    manifold.fps = 30.0
    manifold.extra = {"start_frames": torch.randn(16, 1, manifold.frame_size) * 0.1}
    return manifold, "untrained 15-joint PoseMixtureVAE"


def summary(rates: list[float], rollout: list[float] | None = None, learn: list[float] | None = None) -> dict:
    """Env-steps/s over updates (min / median / max) and, for our trainer, the median rollout and learning seconds."""
    out = {"env_steps_per_s": spread(rates, 0)}
    if rollout:
        out.update(rollout_s=round(statistics.median(rollout), 3), learn_s=round(statistics.median(learn), 3))
    return out


def gradient_steps(args: TrainArgs) -> int:
    """Optimiser steps of one update: full minibatches per epoch x epochs (no early KL stop in these runs)."""
    return (args.num_envs * args.rollout_steps // args.minibatch_size) * args.epochs


def with_reference_decoder(manifold):
    """A copy of ``manifold`` whose ``step`` decodes the reference way (an instance attribute shadows ``decode``)."""
    reference = copy.deepcopy(manifold)
    decode = ReferenceMixtureDecoder(reference.decoder)
    reference.decode = lambda z, cond, style=None: decode(z, cond)  # an unstyled model: step passes style=None
    return reference


class Ours:
    """One of our trainers, an update at a time (``train_update`` reports its own env-steps/s)."""

    def __init__(self, manifold, args: TrainArgs):
        self.trainer = Trainer(args, manifold)
        self.trainer.start()
        self.rates, self.rollout, self.learn = [], [], []

    def update(self, record: bool = True) -> None:
        m = self.trainer.train_update()
        if record:
            self.rates.append(m["env_steps_per_s"])
            self.rollout.append(m["rollout_s"])
            self.learn.append(m["learn_s"])

    def summary(self) -> dict:
        self.trainer.env.close()
        return summary(self.rates, self.rollout, self.learn)


class SB3:
    """SB3 PPO on the same environment and sizes (see the module docstring), an update at a time."""

    def __init__(self, manifold, args: TrainArgs):
        from stable_baselines3 import PPO
        from stable_baselines3.common.vec_env import VecNormalize

        from envs.vec_env import MotionVecEnv
        from policies.sb3_vec_env import SB3VecEnv

        env = MotionVecEnv(args.num_envs, args.task, manifold, array_backend="torch", action_scale=args.action_scale)
        venv = VecNormalize(SB3VecEnv(env), gamma=args.gamma)
        hidden = list(args.hidden_sizes)
        self.model = PPO("MlpPolicy", venv, n_steps=args.rollout_steps, batch_size=args.minibatch_size,
                         n_epochs=args.epochs, learning_rate=args.learning_rate, gamma=args.gamma,
                         gae_lambda=args.gae_lambda, device=args.device, seed=0, verbose=0,
                         policy_kwargs={"net_arch": {"pi": hidden, "vf": hidden}, "activation_fn": torch.nn.ReLU})
        self.per_update = args.num_envs * args.rollout_steps
        self.rates: list[float] = []
        self.started = False

    def update(self, record: bool = True) -> None:
        start = time.perf_counter()
        self.model.learn(total_timesteps=self.per_update, reset_num_timesteps=not self.started)  # exactly one update
        self.started = True
        if record:
            self.rates.append(self.per_update / (time.perf_counter() - start))

    def summary(self) -> dict:
        self.model.get_env().close()
        return summary(self.rates)


def alternate(sides: dict, updates: int) -> dict:
    """A warm-up update of every side, then ``updates`` measured updates of each, taking turns."""
    for side in sides.values():
        side.update(record=False)
    for _ in range(updates):
        for side in sides.values():
            side.update()
    return {name: side.summary() for name, side in sides.items()}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--vae", default=str(REPO / "assets" / "characters" / "deepmimic" / "vae.pt"))
    p.add_argument("--task", default="target")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--updates", type=int, default=6, help="measured updates of each side of a pair, taking turns "
                   "(after a warm-up each)")
    p.add_argument("--reference-updates", type=int, default=2, help="measured updates at the reference settings "
                   "(0: skip them, about a minute each)")
    p.add_argument("--num-envs", type=int, default=512)
    p.add_argument("--rollout-steps", type=int, default=32)
    p.add_argument("--minibatch-size", type=int, default=4096)
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--hidden", type=int, nargs="+", default=[128, 128])
    p.add_argument("--skip-sb3", action="store_true")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="bench_ppo_") as scratch:  # the trainers' output paths: a folder removed at the end
        return measure(args, Path(scratch))


def measure(args: argparse.Namespace, scratch: Path) -> int:
    manifold, vae_name = load_vae(args.vae, args.device)
    common = {"task": args.task, "device": args.device, "progress": False, "tensorboard": False, "eval_every": 0,
              "threads": args.threads, "out": str(scratch / "policy.pt"), "run_dir": str(scratch / "run")}
    ours_args = TrainArgs(num_envs=args.num_envs, rollout_steps=args.rollout_steps, minibatch_size=args.minibatch_size,
                          epochs=args.epochs, hidden_sizes=tuple(args.hidden), critic_hidden_sizes=tuple(args.hidden),
                          **common)
    reference_args = TrainArgs(**REFERENCE, **common)
    result = {"bench": "ppo", "task": args.task, "vae": vae_name, "device": args.device,
              "settings": {"ours": {k: getattr(ours_args, k) for k in REFERENCE}, "reference": REFERENCE},
              "gradient_steps_per_update": {"ours": gradient_steps(ours_args),
                                            "reference_settings": gradient_steps(reference_args)}}
    sides = {"ours": Ours(manifold, ours_args),
             "reference_decoder": Ours(with_reference_decoder(manifold), ours_args)}
    if not args.skip_sb3:
        sides["sb3"] = SB3(manifold, ours_args)
    result.update(alternate(sides, args.updates))
    ours = result["ours"]["env_steps_per_s"]
    rates = {name: side.rates for name, side in sides.items()}
    result["speedup_vs_reference_decoder_equal_settings"] = ratio(rates["ours"], rates["reference_decoder"])
    if "sb3" in rates:
        result["speedup_vs_sb3"] = ratio(rates["ours"], rates["sb3"])
    if args.reference_updates > 0:
        reference = Ours(with_reference_decoder(manifold), reference_args)
        for _ in range(args.reference_updates):  # no warm-up: first-call costs are negligible at this size
            reference.update()
        result["reference_settings"] = reference.summary()
        result["speedup_vs_reference_settings"] = {
            "median": round(ours["median"] / result["reference_settings"]["env_steps_per_s"]["median"], 2),
            "what": "reference hyperparameters and decoder vs ours (see gradient_steps_per_update)"}
    result.update(context())
    emit(result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
