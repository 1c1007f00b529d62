"""PPO training throughput (env-steps/s, update included): our settings vs the reference's, and vs SB3, same run.

Three trainers on the same Target environment and Motion VAE, each for a few PPO updates after a warm-up:

* ``ours``: :mod:`policies.train` with the defaults we train with (``--num-envs``, ``--rollout-steps``,
  ``--minibatch-size``, ``--epochs``, ``--hidden``), the manifold's own decoder;
* ``reference_settings``: the same trainer with the reference code's settings: 100 envs x 1,200 steps per
  update, minibatch 1,000, 10 epochs, actor and critic 256-256-256, and the reference decoder formulation
  (per-sample blended expert weights: ``vae.reference.ReferenceMixtureDecoder``) swapped in for the decoder;
* ``sb3``: Stable-Baselines3 PPO (``MlpPolicy``, separate actor / critic of our hidden sizes, ReLU,
  ``VecNormalize`` for observations and rewards as ours normalises both) on the same environment through
  :class:`policies.sb3_vec_env.SB3VecEnv`, with our sizes (envs, rollout, minibatch, epochs).

Each trainer's figure is env-steps / wall second over whole updates (rollout + learning), min / median /
max over the measured updates; ours and SB3 alternate update by update, so a busy spell on a shared
machine hits both alike. The VAE is ``--vae`` (default the DeepMimic character's) or, when absent, an untrained
PoseMixtureVAE of the shipped character's size (timings do not depend on the weights). Prints ONE JSON line::

    .venv/bin/python -m benchmarks.bench_ppo [--threads 1] [--updates 3] [--reference-updates 2]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import torch

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


def summary(rates: list[float]) -> dict:
    return {"env_steps_per_s": statistics.median(rates), "min": min(rates), "max": max(rates), "updates": len(rates)}


def time_ours(manifold, args: TrainArgs, updates: int, warm_up: bool = True) -> dict:
    trainer = Trainer(args, manifold)
    trainer.start()
    if warm_up:  # allocations, first-call costs (negligible against a reference-sized update, so skipped there)
        trainer.train_update()
    rates, rollout, learn = [], [], []
    for _ in range(updates):
        m = trainer.train_update()
        rates.append(m["env_steps_per_s"])
        rollout.append(m["rollout_s"])
        learn.append(m["learn_s"])
    trainer.env.close()
    return {**summary(rates), "rollout_s": statistics.median(rollout), "learn_s": statistics.median(learn)}


def make_sb3(manifold, args: TrainArgs):
    """SB3 PPO on the same environment and sizes as ``args`` (see the module docstring)."""
    from stable_baselines3 import PPO
    from stable_baselines3.common.vec_env import VecNormalize

    from envs.vec_env import MotionVecEnv
    from policies.sb3_vec_env import SB3VecEnv

    env = MotionVecEnv(args.num_envs, args.task, manifold, array_backend="torch", action_scale=args.action_scale)
    venv = VecNormalize(SB3VecEnv(env), gamma=args.gamma)
    hidden = list(args.hidden_sizes)
    return PPO("MlpPolicy", venv, n_steps=args.rollout_steps, batch_size=args.minibatch_size, n_epochs=args.epochs,
               learning_rate=args.learning_rate, gamma=args.gamma, gae_lambda=args.gae_lambda, device=args.device,
               policy_kwargs={"net_arch": {"pi": hidden, "vf": hidden}, "activation_fn": torch.nn.ReLU}, seed=0,
               verbose=0)


def time_ours_and_sb3(manifold, args: TrainArgs, updates: int) -> tuple[dict, dict]:
    """Alternate one update of ours and one of SB3, ``updates`` times each (a busy spell hits both alike)."""
    trainer = Trainer(args, manifold)
    trainer.start()
    model = make_sb3(manifold, args)
    per_update = args.num_envs * args.rollout_steps
    trainer.train_update()  # warm-ups
    model.learn(total_timesteps=per_update)
    ours, sb3, rollout, learn = [], [], [], []
    for _ in range(updates):
        m = trainer.train_update()
        ours.append(m["env_steps_per_s"])
        rollout.append(m["rollout_s"])
        learn.append(m["learn_s"])
        start = time.perf_counter()
        model.learn(total_timesteps=per_update, reset_num_timesteps=False)  # exactly one more update
        sb3.append(per_update / (time.perf_counter() - start))
    trainer.env.close()
    model.get_env().close()
    ours_summary = {**summary(ours), "rollout_s": statistics.median(rollout), "learn_s": statistics.median(learn)}
    return ours_summary, summary(sb3)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--vae", default=str(REPO / "assets" / "characters" / "deepmimic" / "vae.pt"))
    p.add_argument("--task", default="target")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--updates", type=int, default=6, help="measured updates of ours and SB3, alternating (after a "
                   "warm-up each)")
    p.add_argument("--reference-updates", type=int, default=2, help="measured updates at the reference settings")
    p.add_argument("--num-envs", type=int, default=512)
    p.add_argument("--rollout-steps", type=int, default=32)
    p.add_argument("--minibatch-size", type=int, default=4096)
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--hidden", type=int, nargs="+", default=[128, 128])
    p.add_argument("--skip-sb3", action="store_true")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    manifold, vae_name = load_vae(args.vae, args.device)
    common = {"task": args.task, "device": args.device, "progress": False, "tensorboard": False, "eval_every": 0,
              "threads": args.threads, "out": "/dev/null", "run_dir": "/tmp/bench_ppo"}
    ours_args = TrainArgs(num_envs=args.num_envs, rollout_steps=args.rollout_steps, minibatch_size=args.minibatch_size,
                          epochs=args.epochs, hidden_sizes=tuple(args.hidden), critic_hidden_sizes=tuple(args.hidden),
                          **common)
    result = {"bench": "ppo", "task": args.task, "vae": vae_name, "device": args.device, "threads": args.threads,
              "machine": platform.machine(), "torch": torch.__version__,
              "settings": {"ours": {k: getattr(ours_args, k) for k in REFERENCE}, "reference": REFERENCE}}
    if args.skip_sb3:
        result["ours"] = time_ours(manifold, ours_args, args.updates)
    else:
        result["ours"], result["sb3"] = time_ours_and_sb3(manifold, ours_args, args.updates)
    decode = manifold.decode
    manifold.decode = ReferenceMixtureDecoder(manifold.decoder)  # instance attribute: step decodes the reference way
    result["reference_settings"] = time_ours(manifold, TrainArgs(**REFERENCE, **common), args.reference_updates,
                                             warm_up=False)
    manifold.decode = decode
    ours = result["ours"]["env_steps_per_s"]
    result["speedup_vs_reference_settings"] = ours / result["reference_settings"]["env_steps_per_s"]
    if "sb3" in result:
        result["speedup_vs_sb3"] = ours / result["sb3"]["env_steps_per_s"]
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
