"""PPO training of a task policy on the natively batched environment (the code behind ``train_policy.py``).

One run (``Trainer.run``): make the environment (``envs.MotionVecEnv``, torch arrays on ``--device``), then
repeat until ``--steps`` (or ``--minutes``): collect ``rollout_steps`` frames of all ``num_envs`` characters
(:mod:`policies.ppo` storage), compute GAE advantages, run the clipped PPO epochs, log, and every
``checkpoint_every`` updates write the training checkpoint and the policy file atomically. ``--env-schedule`` moves
task options with the fraction of ``--steps`` done (a curriculum in one run: the maze's collision penalty from 1 to
30), set before each update and logged as ``env_<option>``.

Files in ``run_dir`` (default ``runs/policy_<task>``):

* ``checkpoint.pt``: everything to continue exactly: TrainArgs, update / step counters, wall time, policy
  (with its observation normaliser), optimizer, return normaliser, the trainer's random generators, the
  environment's state (``MotionVecEnv.state_dict``) and the current observations. Written atomically; on
  Ctrl-C the state as of the last finished update is written before exiting, so ``--resume`` continues as
  if never interrupted (same seed: same result, up to float nondeterminism of the device).
* ``progress.csv``: one row per update: steps, minutes, env-steps/s, episode return and length, PPO
  statistics, the task's info metrics (means over the rollout; ``*_per_min`` rates of event metrics such as
  ``time_to_target``; ``final_*`` values at episode ends) and the periodic evaluation (``eval_*``).
* ``tb/``: the same scalars for TensorBoard (x axis: environment steps).

Robustness: the environment resets characters that leave the data's manifold (with a penalty, counted as
``diverged`` in the metrics) and never returns NaN; a minibatch with a non-finite loss or gradient is skipped
(``ppo_skipped``, with a warning); an update that still leaves non-finite weights is undone (the learner's last good
state is restored, ``bad_updates``); ``MAX_BAD_UPDATES`` of those in a row stop the run with
:class:`TrainingDiverged`, whose message names the worst observation feature and character, after saving the last
good state.

Several processes (DistributedDataParallel, as multi-GPU PPO implementations do)::

    torchrun --nproc_per_node 2 train_policy.py --task target --num-envs 512 ...

Each rank steps its own batch of ``--num-envs`` characters with its own seed (``--seed`` + ``RANK_SEED_STRIDE`` x
rank; rank 0 is the one-process run), runs the PPO epochs on its own rollout, and the gradients are all-reduced
(averaged) by DistributedDataParallel, so every rank holds the same weights; the observation and return normalisers
merge every rank's samples (all-gathered, in rank order); the early-stopping KL, the stop decision and the logged
metrics are reduced over the ranks. An update therefore learns from ``processes x num_envs x rollout_steps``
samples (``samples_per_update`` in ``progress.csv``, with ``processes`` and ``envs_per_process``), and ``--steps``
counts all of them. gloo on the CPU, NCCL on CUDA (rank r on ``cuda:LOCAL_RANK``). Rank 0 alone logs, evaluates and
writes the checkpoint and the policy; the checkpoint holds every rank's environment, generators and observations, so
``--resume`` continues exactly with the same number of processes (and refuses another).

Why not Stable-Baselines3: see ``benchmarks/bench_ppo.py`` (it measures SB3 PPO through a VecEnv adapter
against this trainer on the same environment and sizes). This trainer keeps rollouts in torch on the
environment's device and never converts to numpy in the loop.
"""

from __future__ import annotations

import contextlib
import copy
import csv
import inspect
import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist

from common.paths import output_dir, output_file
from common.processes import Processes
from common.processes import join_processes as join
from envs.registry import canonical_task
from policies.apg import apg_update
from policies.checkpoint import atomic_torch_save, manifold_fingerprint, save_policy
from policies.network import PolicyModule, make_config
from policies.normalizer import RunningMeanVar
from policies.ppo import Rollout, compute_gae, ppo_update
from policies.train_args import TrainArgs, format_args, parse_args

STATE_FORMAT = "mvae-policy-train-state"
STATE_VERSION = 1
# Fields a resumed run takes from the command line; all others come from the checkpoint.
RUN_CONTROL = ("steps", "minutes", "stop_after_update", "out", "run_dir", "resume", "tensorboard", "progress", "threads",
               "checkpoint_every", "eval_every", "eval_envs", "eval_seconds")
# What an --init-from policy must share with the run beyond what check_policy_fits checks against the VAE: its
# weights only fit (and only mean the same) with these.
INIT_ARCHITECTURE = {"obs_size": "--task / --env-options", "hidden_sizes": "--hidden-sizes",
                     "critic_hidden_sizes": "--critic-hidden-sizes", "action_scale": "--action-scale",
                     "prior_residual": "--prior", "residual": "--residual"}
INFO_SKIP = ("episode_stats", "final_obs", "final_info")
MAX_BAD_UPDATES = 3
RANK_SEED_STRIDE = 1_000_003  # rank r seeds its environment and generators with --seed + r x this
RANK_STATE = ("generator", "cpu_generator", "env", "obs", "running_return")  # what differs between ranks


class TrainingDiverged(RuntimeError):
    """Training kept producing non-finite weights; the message says where the data went wrong."""


def vae_source(args: TrainArgs) -> str | None:
    """The VAE the run steers: --vae, else --character's, else None (the default character's)."""
    if args.vae is not None or args.character is None:
        return args.vae
    from characters.bundle import load_character

    return str(load_character(args.character).vae)


def action_scale_for(args: TrainArgs) -> float | None:
    """--action-scale, else --character's (None: the environment takes the VAE's own)."""
    if args.action_scale is not None or args.character is None:
        return args.action_scale
    from characters.bundle import load_character

    return load_character(args.character).action_scale


def prior_source(args: TrainArgs) -> str | None:
    """The code prior the run steers through: --prior, else --character's own when the VAE is its own, else None."""
    if args.prior is not None:
        return None if args.prior.lower() == "none" else args.prior
    if args.character is None or args.vae is not None:
        return None
    from characters.bundle import load_character

    prior = load_character(args.character).prior
    return None if prior is None else str(prior)


def make_manifold(vae: str | None, device: torch.device):
    """``'toy'`` -> envs.ToyManifold; a path or None (the default character's VAE) -> the manifold on ``device``."""
    if vae == "toy":
        from envs.toy_manifold import ToyManifold

        return ToyManifold().to(device)
    from envs.manifold_source import resolve_manifold

    return resolve_manifold(vae, device)


def make_env(args: TrainArgs, manifold, num_envs: int, code_prior=None, **overrides):
    from envs.vec_env import MotionVecEnv

    slide = args.foot_slide_weight
    if slide > 0:
        from mocap.quality import toe_joints

        try:
            toe_joints(getattr(manifold, "skeleton", None))
        except (AttributeError, ValueError):
            print(f"note: --foot-slide-weight {slide:g} ignored: this model's skeleton names no toes or feet",
                  file=sys.stderr)
            slide = 0.0
    options = {"style_change_s": args.style_change_s, "foot_slide_weight": slide, **args.env_option_dict(),
               **overrides}
    return MotionVecEnv(num_envs, args.task, manifold, array_backend="torch", action_scale=action_scale_for(args),
                        code_prior=code_prior, **options)


# ---- processes (torchrun) ---------------------------------------------------------------------------------
def cuda_device(device: torch.device) -> torch.device:
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda was asked but torch sees no CUDA device; use --device cpu")
    return device


def join_processes(args: TrainArgs, cleanup: contextlib.ExitStack) -> Processes:
    """This process's rank and device under torchrun, or one process on ``--device``."""
    return join(cuda_device(torch.device(args.device)), cleanup)


def all_ranks(x: torch.Tensor, procs: Processes) -> torch.Tensor:
    """Every rank's ``x`` (same shape on all) concatenated along dim 0 in rank order; ``x`` in one process."""
    if not procs.distributed:
        return x
    parts = [torch.empty_like(x) for _ in range(procs.world_size)]
    dist.all_gather(parts, x.contiguous())
    return torch.cat(parts)


def all_objects(obj, procs: Processes) -> list:
    """[every rank's ``obj``] in rank order (picklable objects); ``[obj]`` in one process."""
    if not procs.distributed:
        return [obj]
    out = [None] * procs.world_size
    dist.all_gather_object(out, obj)
    return out


def all_agree(flag: bool, procs: Processes) -> bool:
    """True when ``flag`` is true on every rank (so all ranks leave the loop after the same update)."""
    if not procs.distributed:
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=procs.device)
    dist.all_reduce(t, op=dist.ReduceOp.MIN)
    return bool(t.item() > 0.5)


def schedule_value(points: list[tuple[float, float]], fraction: float) -> float:
    """The value of an --env-schedule at ``fraction`` of training: linear between its (fraction, value) points,
    the first value before them and the last after."""
    return float(np.interp(fraction, [f for f, _ in points], [v for _, v in points]))


def check_schedulable(task, schedule: dict) -> None:
    """ValueError unless every --env-schedule option is a numeric option of ``task``'s constructor that it keeps
    as an attribute of that name (what it reads at every step)."""
    def numeric(name: str) -> bool:
        value = getattr(task, name, None)
        return isinstance(value, (int, float)) and not isinstance(value, bool)

    options = inspect.signature(type(task).__init__).parameters
    for name in schedule:
        if name not in options or not numeric(name):
            numeric_options = sorted(filter(numeric, options))
            raise ValueError(f"--env-schedule {name!r}: task {task.name} has no numeric option of that name "
                             f"(it has: {', '.join(numeric_options) or 'none'})")


class _ActionScorer(torch.nn.Module):
    """``policy.evaluate_actions`` as a forward: DistributedDataParallel all-reduces the gradients of what its
    wrapped module's forward ran, and the PPO loss scores stored actions, not ``policy.forward``."""

    def __init__(self, policy: PolicyModule):
        super().__init__()
        self.policy = policy

    def forward(self, x: torch.Tensor, actions: torch.Tensor):
        return self.policy.evaluate_actions(x, actions)


class Trainer:
    """State of one training run (see the module docstring); ``procs`` places it among torchrun's processes."""

    def __init__(self, args: TrainArgs, manifold=None, procs: Processes | None = None):
        args.validate()
        if args.threads:
            torch.set_num_threads(args.threads)
        self.args = args
        self.procs = procs if procs is not None else Processes(0, 1, cuda_device(torch.device(args.device)))
        self.device = self.procs.device
        self.seed = args.seed + RANK_SEED_STRIDE * self.procs.rank  # this rank's environment and generators
        self.run_dir = Path(args.run_dir or f"runs/policy_{args.task}")
        vae = vae_source(args)
        self.manifold = manifold if manifold is not None else make_manifold(vae, self.device)
        self.vae_file = None  # the checkpoint file the policy steers (recorded in the policy file)
        if manifold is None and vae != "toy":
            from envs.manifold_source import DEFAULT_VAE

            self.vae_file = Path(vae) if vae is not None else DEFAULT_VAE
        self.prior_file = prior_source(args)  # recorded in the policy file, like the VAE
        self.code_prior = None
        if self.prior_file is not None:
            from envs.manifold_source import resolve_code_prior

            self.code_prior = resolve_code_prior(self.prior_file, self.manifold)
        self.env = make_env(args, self.manifold, args.num_envs, code_prior=self.code_prior)
        self.env_schedule = args.env_schedule_dict()
        check_schedulable(self.env.task, self.env_schedule)
        torch.manual_seed(args.seed)  # network initialisation
        obs_size = int(self.env.single_observation_space.shape[0])
        discrete = bool(self.env.core.discrete)
        config = make_config(obs_size=obs_size, latent_size=self.env.core.latent_size, discrete=discrete,
                             num_actions=self.env.core.num_codes, task=args.task, hidden_sizes=args.hidden_sizes,
                             critic_hidden_sizes=args.critic_hidden_sizes, init_action_std=args.init_action_std,
                             action_scale=self.env.action_scale, prior_residual=self.code_prior is not None,
                             residual=args.residual)
        self.policy = PolicyModule(config).to(self.device)
        if self.policy.codebook is not None:
            self.policy.set_codebook(self.manifold.codebook)
        self.apg = args.algo == "apg"
        if self.apg:
            if self.procs.distributed:
                raise ValueError("--algo apg runs in one process; start it without torchrun (or use --algo ppo)")
            if discrete:
                raise ValueError("--algo apg needs a Gaussian manifold: a VQ manifold's codes have no gradient; use "
                                 "--algo ppo")
            with torch.no_grad():  # the saved policy's distribution is the one it learned under
                self.policy.log_std.fill_(math.log(max(args.exploration_std, 1e-6)))
            if isinstance(self.env.manifold, torch.nn.Module):
                self.env.manifold.requires_grad_(False)  # gradients flow through the decoder, never into it
        self.scorer = None  # the PPO loss scores through it under torchrun (its backward all-reduces the gradients)
        if self.procs.distributed:
            # Buffers are synced once, at construction; after that the observation normaliser is merged over the
            # ranks explicitly (update_normalizer), not broadcast from rank 0 at every forward.
            device_ids = [self.device.index] if self.device.type == "cuda" else None
            self.scorer = torch.nn.parallel.DistributedDataParallel(_ActionScorer(self.policy), device_ids=device_ids,
                                                                    forward_sync_buffers=False)
        learned = self.policy.actor.parameters() if self.apg else self.policy.parameters()
        self.optimizer = torch.optim.Adam(learned, lr=args.learning_rate, eps=1e-5)
        self.return_rms = RunningMeanVar(1).to(self.device)
        self.generator = torch.Generator(device=self.device).manual_seed(self.seed)  # action noise
        self.cpu_generator = torch.Generator().manual_seed(self.seed + 1)  # minibatch order
        action_shape = () if discrete else (self.env.core.latent_size,)
        self.rollout = Rollout(args.rollout_steps, args.num_envs, obs_size, action_shape,
                               torch.long if discrete else torch.float32, self.device)
        self.update = 0
        self.global_step = 0
        self.elapsed_s = 0.0
        self.obs: torch.Tensor | None = None
        self.running_return = torch.zeros(args.num_envs, device=self.device)
        self.eval_env = None
        self.last_metrics: dict = {}
        self._snapshot: dict | None = None
        self.on_update = None  # callback(metrics) after every update
        self.bad_updates = 0  # consecutive updates undone for non-finite weights
        self.skipped_total = 0

    # ---- state ----------------------------------------------------------------------------------------
    def start(self) -> None:
        """Reset the environment and prime the observation normaliser with the first observations (after loading
        ``--init-from``'s weights and normaliser, when given)."""
        if self.args.init_from:
            self.load_initial_policy(self.args.init_from)
        obs, _ = self.env.reset(seed=self.seed)
        if self.args.stagger_episodes:
            # Characters that all start together also end together: every rollout would see the same episode
            # phase. Random elapsed-step counters spread the first episode's length (truncation reads them).
            limit = self.env.max_episode_steps
            steps = torch.randint(0, limit, (self.args.num_envs,), generator=self.cpu_generator)
            self.env.core.steps = steps.to(self.env.core.steps)
        self.obs = obs
        self.update_normalizer(self.policy.obs_rms, self.policy.features(obs))
        self._snapshot = self.state()

    def load_initial_policy(self, path: str) -> None:
        """``--init-from``: the actor, critic and observation normaliser of a policy file trained for this task on
        this VAE with the same network sizes; anything else is refused with the flag to change."""
        from policies.checkpoint import check_policy_fits, load_policy

        start = load_policy(path, self.device)
        where = f"--init-from {path}"
        if start.task != self.args.task:
            raise ValueError(f"{where}: a policy for the {start.task!r} task; this run trains {self.args.task!r} "
                             f"(pass --task {start.task} or another policy)")
        check_policy_fits(start, self.manifold, strict=True)
        differ = [f"{key} {start.config[key]} (this run: {self.policy.config[key]}; see {flag})"
                  for key, flag in INIT_ARCHITECTURE.items() if start.config.get(key) != self.policy.config[key]]
        if differ:
            raise ValueError(f"{where}: the policy does not fit this run: {'; '.join(differ)}")
        self.policy.load_state_dict(start.state_dict())
        if self.apg:
            with torch.no_grad():
                self.policy.log_std.fill_(math.log(max(self.args.exploration_std, 1e-6)))

    def update_normalizer(self, rms: RunningMeanVar, x: torch.Tensor) -> None:
        """Merge ``x`` (N, ...) into ``rms``; under torchrun every rank's batch, in rank order, so the normalisers stay
        identical on all ranks (and equal to one process that stepped all their characters)."""
        rms.update(all_ranks(x, self.procs))

    def state(self) -> dict:
        """The training checkpoint dict (copies: later training does not change it). Under torchrun it also holds
        ``processes`` and ``ranks``: every rank's ``RANK_STATE`` (the top-level copies are rank 0's)."""
        state = {
            "format": STATE_FORMAT,
            "version": STATE_VERSION,
            "args": self.args.to_dict(),
            "update": self.update,
            "global_step": self.global_step,
            "elapsed_s": self.elapsed_s,
            "policy": {k: v.detach().cpu().clone() for k, v in self.policy.state_dict().items()},
            "optimizer": _cpu(copy.deepcopy(self.optimizer.state_dict())),
            "return_rms": {k: v.detach().cpu().clone() for k, v in self.return_rms.state_dict().items()},
            "generator": self.generator.get_state(),
            "cpu_generator": self.cpu_generator.get_state(),
            "env": self.env.state_dict(),
            "obs": self.obs.detach().cpu().clone(),
            "running_return": self.running_return.detach().cpu().clone(),
            "vae_fingerprint": manifold_fingerprint(self.manifold),
            "last_metrics": dict(self.last_metrics),
        }
        if self.procs.distributed:
            ranks = all_objects({key: state[key] for key in RANK_STATE}, self.procs)
            state.update(ranks[0], processes=self.procs.world_size, ranks=ranks)
        return state

    def load_state(self, state: dict) -> None:
        saved = int(state.get("processes", 1))
        if saved != self.procs.world_size:
            raise ValueError(f"--resume: the checkpoint was written by {saved} process(es) and this run has "
                             f"{self.procs.world_size}; resume it with the same number (torchrun --nproc_per_node "
                             f"{saved}, or no torchrun for 1)")
        if self.procs.distributed:
            state = {**state, **state["ranks"][self.procs.rank]}
        self.update, self.global_step = int(state["update"]), int(state["global_step"])
        self.elapsed_s = float(state["elapsed_s"])
        self.policy.load_state_dict(state["policy"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.return_rms.load_state_dict(state["return_rms"])
        self.generator.set_state(state["generator"])
        self.cpu_generator.set_state(state["cpu_generator"])
        self.env.load_state_dict(state["env"])
        self.obs = state["obs"].to(self.device)
        self.running_return = state["running_return"].to(self.device)
        self.last_metrics = dict(state.get("last_metrics", {}))
        self._snapshot = state

    @property
    def checkpoint_path(self) -> Path:
        return self.run_dir / "checkpoint.pt"

    def save(self, state: dict | None = None) -> None:
        """Write the training checkpoint and the policy file (from ``state``, default: now); rank 0 only."""
        state = state or self.state()
        if not self.procs.main:
            return
        atomic_torch_save(state, self.checkpoint_path)
        policy = PolicyModule(self.policy.config)  # from the state: the live one may be mid-update
        policy.load_state_dict(state["policy"])
        stats = {"update": state["update"], "global_step": state["global_step"],
                 "train_minutes": state["elapsed_s"] / 60.0, "last_metrics": state.get("last_metrics", {})}
        save_policy(self.args.out, policy, manifold=self.manifold, train_args=self.args.to_dict(), stats=stats,
                    vae_path=self.vae_file, code_prior=self.code_prior, prior_path=self.prior_file)

    # ---- one update -----------------------------------------------------------------------------------
    @torch.no_grad()
    def collect(self) -> dict:
        """Fill the rollout; returns the rollout's metric sums (tensors)."""
        args, env, policy, ro = self.args, self.env, self.policy, self.rollout
        sums: dict[str, torch.Tensor] = {}
        counts: dict[str, torch.Tensor] = {}
        zero = torch.zeros((), device=self.device)
        returns_seen = torch.zeros(ro.steps, args.num_envs, device=self.device)
        ep_return, ep_length, episodes = zero.clone(), zero.clone(), zero.clone()
        obs = self.obs
        for t in range(ro.steps):
            x = policy.normalize(obs)
            action, logp, value = policy.sample(x, self.generator)
            next_obs, reward, terminated, truncated, info = env.step(action)
            done = terminated | truncated
            self.running_return = self.running_return * args.gamma + reward
            returns_seen[t] = self.running_return
            self.running_return = torch.where(done, torch.zeros_like(self.running_return), self.running_return)
            learn_reward = self.return_rms.scale(reward) if args.normalize_reward else reward
            if "final_obs" in info:
                # Time-limit truncation: the episode would have gone on, so bootstrap from its last observation.
                bootstrap = (truncated & ~terminated).float()
                learn_reward = learn_reward + args.gamma * policy.value(policy.normalize(info["final_obs"])) * bootstrap
                stats, mask = info["episode_stats"], info["_episode_stats"]
                ep_return += (stats["r"] * mask).sum()
                ep_length += (stats["l"] * mask).sum()
                episodes += mask.sum()
                final = info["final_info"]
                for key, values in final.items():
                    if key.startswith("_"):
                        continue
                    m = final["_" + key]
                    _accumulate(sums, counts, "final_" + key, values, m)
            for key, values in info.items():
                if key.startswith("_") or key in INFO_SKIP:
                    continue
                _accumulate(sums, counts, key, values, info["_" + key])
            ro.obs[t] = obs
            ro.actions[t] = action
            ro.log_probs[t] = logp
            ro.values[t] = value
            ro.rewards[t] = learn_reward
            ro.dones[t] = done.float()
            obs = next_obs
        last_value = policy.value(policy.normalize(obs))
        ro.advantages, ro.returns = compute_gae(ro.rewards, ro.values, ro.dones, last_value, args.gamma,
                                                args.gae_lambda)
        self.obs = obs
        if args.normalize_reward:
            self.update_normalizer(self.return_rms, returns_seen.reshape(-1))
        sums.update({"episode_return": ep_return, "episode_length": ep_length})
        counts.update({"episode_return": episodes, "episode_length": episodes})
        return {"sums": sums, "counts": counts}

    def apply_env_schedule(self) -> dict:
        """Set the --env-schedule options for the coming update, at the fraction of --steps done (the learning
        rate's clock) -> their values as metrics ``env_<option>``."""
        frac = min(self.global_step / self.args.steps, 1.0)
        values = {}
        for name, points in self.env_schedule.items():
            value = schedule_value(points, frac)
            for env in (self.env, self.eval_env):
                if env is not None:
                    setattr(env.task, name, value)
            values[f"env_{name}"] = value
        return values

    def learning_rate(self) -> float:
        frac = min(self.global_step / self.args.steps, 1.0)
        return self.args.learning_rate * (1.0 - (1.0 - self.args.final_lr_fraction) * frac)

    def apg_update(self) -> tuple[dict, dict]:
        """One analytic-policy-gradient update (:mod:`policies.apg`) -> (the window's metric sums, APG stats)."""
        args = self.args
        sums: dict[str, torch.Tensor] = {}
        counts: dict[str, torch.Tensor] = {}

        def on_step(out) -> None:
            every = torch.ones_like(out.terminated)
            for key, (values, mask) in out.metrics.items():
                _accumulate(sums, counts, key, values, every if mask is None else mask)
            _accumulate(sums, counts, "nonfinite", out.nonfinite, every)
            _accumulate(sums, counts, "diverged", out.diverged, every)

        self.obs, seen, stats = apg_update(self.policy, self.optimizer, self.env, self.obs,
                                           horizon=args.rollout_steps, exploration_std=args.exploration_std,
                                           latent_penalty=args.latent_penalty, max_grad_norm=args.max_grad_norm,
                                           smoothness_penalty=args.smoothness_penalty, generator=self.generator,
                                           on_step=on_step)
        self.rollout.obs = seen  # (T, B, O): what diagnosis() reads after a bad update
        if not stats.skipped:
            self.update_normalizer(self.policy.obs_rms, self.policy.features(seen.reshape(-1, seen.shape[-1])))
        return {"sums": sums, "counts": counts}, stats.as_dict()

    def train_update(self) -> dict:
        """Collect, learn, update the observation statistics -> metrics of this update (plain floats)."""
        args = self.args
        t0 = time.perf_counter()
        lr = self.learning_rate()
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        if self.apg:
            collected, learned = self.apg_update()  # collecting and learning are one pass
            t1 = t0
        else:
            collected = self.collect()
            t1 = time.perf_counter()
            learned = ppo_update(self.policy, self.optimizer, self.rollout, epochs=args.epochs,
                                 minibatch_size=args.minibatch_size, clip_coef=args.clip_coef, vf_coef=args.vf_coef,
                                 ent_coef=args.ent_coef, max_grad_norm=args.max_grad_norm, target_kl=args.target_kl,
                                 generator=self.cpu_generator, scorer=self.scorer, mean_across=self._mean_across,
                                 prior_kl_coef=args.prior_kl).as_dict()
        if learned["skipped"]:
            self.skipped_total += learned["skipped"]
            if self.procs.main:  # the ranks skip the same minibatches (their averaged gradients are the same)
                print(f"warning: update {self.update + 1}: {learned['skipped']} minibatch(es) with a non-finite loss "
                      f"or gradient skipped ({self.skipped_total} so far)", file=sys.stderr)
        if not all(bool(torch.isfinite(p).all()) for p in self.policy.parameters()):
            self._undo_update()
        else:
            self.bad_updates = 0
            if not self.apg:  # (apg_update merged its own)
                # The statistics move only between updates, so each update sees the inputs its actions were chosen on.
                obs = self.rollout.obs.reshape(-1, self.rollout.obs.shape[-1])  # (T*B, O)
                self.update_normalizer(self.policy.obs_rms, self.policy.features(obs))
        t2 = time.perf_counter()
        processes = self.procs.world_size
        samples = args.rollout_steps * args.num_envs * processes  # every rank's rollout
        self.update += 1
        self.global_step += samples
        self.elapsed_s += t2 - t0
        metrics = {"update": self.update, "global_step": self.global_step, "minutes": self.elapsed_s / 60.0,
                   "env_steps_per_s": samples / (t2 - t0), "rollout_s": t1 - t0, "learn_s": t2 - t1, "lr": lr,
                   "processes": processes, "envs_per_process": args.num_envs, "samples_per_update": samples}
        ranks = all_objects({"totals": _metric_totals(collected), "learned": learned}, self.procs)
        metrics.update(_rollout_metrics(_sum_totals([r["totals"] for r in ranks]), samples, self.env.core.dt))
        metrics.update({f"{args.algo}_{k}": sum(r["learned"][k] for r in ranks) / processes for k in learned})
        metrics["bad_updates"] = self.bad_updates
        if not self.policy.discrete:
            metrics["action_std"] = float(self.policy.log_std.detach().exp().mean())
        return metrics

    def _mean_across(self, t: torch.Tensor) -> torch.Tensor:
        """The mean of ``t`` over the ranks (``t`` itself in one process)."""
        if not self.procs.distributed:
            return t
        t = t.detach().clone()
        dist.all_reduce(t)
        return t / self.procs.world_size

    def _undo_update(self) -> None:
        """Restore the learner (policy, optimiser, normalisers) of the last good state; stop after too many."""
        self.bad_updates += 1
        snapshot = self._snapshot
        self.policy.load_state_dict(snapshot["policy"])
        self.optimizer.load_state_dict(snapshot["optimizer"])
        self.return_rms.load_state_dict(snapshot["return_rms"])
        if self.procs.main:
            print(f"warning: update {self.update + 1} left non-finite weights: undone, the learner is back at update "
                  f"{snapshot['update']} ({self.bad_updates} in a row)", file=sys.stderr)
        if self.bad_updates >= MAX_BAD_UPDATES:
            self.save(snapshot)
            raise TrainingDiverged(self.diagnosis())

    def diagnosis(self) -> str:
        """Where the last rollout went wrong: its most extreme pose feature (normalised) and the episode ends."""
        obs = self.rollout.obs[..., self.env.observation_layout["condition"]]  # (T, B, C*D)
        peak = obs.abs().reshape(-1)
        worst = int(peak.argmax())
        step, rest = divmod(worst, obs.shape[1] * obs.shape[2])
        character, feature = divmod(rest, obs.shape[2])
        done_share = float(self.rollout.dones.mean())
        return (f"training diverged: {MAX_BAD_UPDATES} updates in a row left non-finite weights; the last good state "
                f"(update {self._snapshot['update']}) is saved in {self.checkpoint_path} and {self.args.out}. In the "
                f"last rollout the most extreme pose feature was {float(peak[worst]):.3g} data stds "
                f"({self.env.observation_feature_name(feature)}, character {character}, step {step}) and "
                f"{100 * done_share:.1f}% of steps ended an episode. Check the VAE's held-latent stability "
                f"(`python -m vae.evaluate CKPT --data DATA`), or lower --action-scale / --learning-rate")

    def periodic_eval(self) -> dict:
        from policies.evaluate import PolicyController, evaluate

        args = self.args
        steps = max(1, int(round(args.eval_seconds * self.env.core.fps)))
        options = {**args.env_option_dict(), "max_episode_steps": steps, "code_prior": self.code_prior}
        result = evaluate(lambda env: PolicyController(self.policy), task=args.task, vae=self.manifold,
                          episodes=args.eval_envs, seed=10_000 + args.seed, batch_size=args.eval_envs,
                          action_scale=self.env.action_scale, env_options=options)
        return {"eval_" + k: v for k, v in result.items() if isinstance(v, (int, float)) and v is not None}

    # ---- the loop -------------------------------------------------------------------------------------
    def _go_on(self) -> bool:
        """Whether every rank has steps, minutes and updates left (the ranks' clocks differ slightly)."""
        args = self.args
        left = self.global_step < args.steps and (args.minutes <= 0 or self.elapsed_s < args.minutes * 60.0) \
            and (args.stop_after_update <= 0 or self.update < args.stop_after_update)
        return all_agree(left, self.procs)

    def run(self) -> dict:
        args, main = self.args, self.procs.main
        log = MetricLog(self.run_dir, tensorboard=args.tensorboard, resume_update=self.update) if main else None
        bar = _progress_bar(args, self.global_step) if main else None
        started = time.perf_counter()
        try:
            while self._go_on():
                scheduled = self.apply_env_schedule()
                metrics = {**self.train_update(), **scheduled}
                if main and args.eval_every and self.update % args.eval_every == 0:
                    t = time.perf_counter()
                    metrics.update(self.periodic_eval())
                    metrics["eval_s"] = time.perf_counter() - t
                self.last_metrics = {k: v for k, v in metrics.items() if isinstance(v, (int, float))}
                if main:
                    log.write(metrics)
                self._snapshot = self.state()
                if self.update % args.checkpoint_every == 0:
                    self.save(self._snapshot)
                if not main:
                    continue
                if self.on_update is not None:
                    self.on_update(metrics)  # the caller reports
                else:
                    _report(bar, metrics, args)
            self._snapshot = self.state()
            self.save(self._snapshot)
        except KeyboardInterrupt:
            # The update in flight is dropped: the checkpoint is the state after the last finished one.
            if main:
                print(f"\ninterrupted: saving the state after update {self._snapshot['update']} to "
                      f"{self.checkpoint_path} (continue with --resume)", file=sys.stderr)
            self.save(self._snapshot)
            raise
        finally:
            if bar is not None:
                bar.close()
            if log is not None:
                log.close()
            if self.env is not None:
                self.env.close()
        return {"update": self.update, "global_step": self.global_step, "train_minutes": self.elapsed_s / 60.0,
                "wall_s": time.perf_counter() - started, **self.last_metrics}


def _cpu(obj):
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu()
    if isinstance(obj, dict):
        return {k: _cpu(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_cpu(v) for v in obj]
    return obj


def _accumulate(sums: dict, counts: dict, key: str, values: torch.Tensor, mask: torch.Tensor) -> None:
    m = mask.to(torch.float32)
    v = values.to(torch.float32) * m
    if key in sums:
        sums[key] += v.sum()
        counts[key] += m.sum()
    else:
        sums[key], counts[key] = v.sum(), m.sum()


def _metric_totals(collected: dict) -> dict[str, tuple[float, float]]:
    """{metric: (sum, count)} of one rollout as floats (one device transfer)."""
    sums, counts = collected["sums"], collected["counts"]
    keys = list(sums)
    if not keys:
        return {}
    stacked = torch.stack([torch.stack((sums[k], counts[k])) for k in keys]).cpu().tolist()
    return {key: (total, count) for key, (total, count) in zip(keys, stacked, strict=True)}


def _sum_totals(per_rank: list[dict]) -> dict[str, tuple[float, float]]:
    """The ranks' {metric: (sum, count)} added up (a metric some rank did not see counts 0 there)."""
    out: dict[str, tuple[float, float]] = {}
    for totals in per_rank:
        for key, (total, count) in totals.items():
            old = out.get(key, (0.0, 0.0))
            out[key] = (old[0] + total, old[1] + count)
    return out


def _rollout_metrics(totals: dict[str, tuple[float, float]], samples: int, dt: float) -> dict:
    """Means over valid entries; event metrics (valid on fewer than all frames) also as a rate per minute."""
    out = {}
    minutes = samples * dt / 60.0
    for key, (total, count) in totals.items():
        if count > 0:
            out[key] = total / count
        if not key.startswith(("final_", "episode_")) and count < samples:
            out[key + "_per_min"] = count / minutes
        if key == "episode_return":
            out["episodes"] = count
    return out


def _progress_bar(args: TrainArgs, initial: int):
    if not args.progress:
        return None
    from tqdm import tqdm

    return tqdm(total=args.steps, initial=initial, unit="step", unit_scale=True, dynamic_ncols=True,
                desc=f"{args.algo.upper()} {args.task}")


HEADLINE = {"target": "time_to_target_per_min", "timed_target": "time_to_target_per_min",
            "joystick": "heading_error_deg", "path_follow": "path_distance", "maze": "time_to_target_per_min"}


def _report(bar, metrics: dict, args: TrainArgs) -> None:
    key = HEADLINE.get(args.task)
    shown = {"ret": metrics.get("episode_return"), "env-steps/s": metrics["env_steps_per_s"]}
    if key in metrics:
        shown[key] = metrics[key]
    for extra in ("eval_success_rate", "eval_heading_error_deg", "eval_speed_error_mps", "eval_path_error_mean_m"):
        if extra in metrics:
            shown[extra] = metrics[extra]
    text = {k: (f"{v:.3g}" if isinstance(v, float) else v) for k, v in shown.items() if v is not None}
    if bar is not None:
        bar.update(metrics["global_step"] - bar.n)
        bar.set_postfix(text, refresh=False)
    else:
        pairs = " ".join(f"{k} {v}" for k, v in text.items())
        print(f"update {metrics['update']} step {metrics['global_step']} min {metrics['minutes']:.2f} {pairs}",
              flush=True)


class MetricLog:
    """progress.csv (one row per update; the header grows when new metrics appear) + TensorBoard scalars."""

    def __init__(self, run_dir: Path, *, tensorboard: bool, resume_update: int):
        run_dir.mkdir(parents=True, exist_ok=True)
        self.path = run_dir / "progress.csv"
        self.rows: list[dict] = []
        if resume_update and self.path.is_file():
            with open(self.path, newline="") as f:
                # Rows logged after the checkpoint (an interrupted stretch) are dropped: they are redone.
                self.rows = [r for r in csv.DictReader(f) if int(float(r["update"])) <= resume_update]
        elif self.path.exists():
            self.path.unlink()
        self.fields: list[str] = list(self.rows[0].keys()) if self.rows else []
        self._rewrite()
        self.writer = None
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            purge = None
            if resume_update and self.rows:
                purge = int(float(self.rows[-1]["global_step"])) + 1
            self.writer = SummaryWriter(str(run_dir / "tb"), purge_step=purge)

    def _rewrite(self) -> None:
        tmp = self.path.with_suffix(".csv.tmp")
        with open(tmp, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=self.fields)
            if self.fields:
                writer.writeheader()
                writer.writerows(self.rows)
        os.replace(tmp, self.path)

    def write(self, metrics: dict) -> None:
        row = {k: v for k, v in metrics.items() if isinstance(v, (int, float))}
        self.rows.append(row)
        new = [k for k in row if k not in self.fields]
        if new:
            self.fields += new
            self._rewrite()
        else:
            with open(self.path, "a", newline="") as f:
                csv.DictWriter(f, fieldnames=self.fields).writerow(row)
        if self.writer is not None:
            step = int(metrics["global_step"])
            for key, value in row.items():
                if key not in ("update", "global_step"):
                    self.writer.add_scalar(key, value, step)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def load_train_state(path: Path) -> dict:
    if not path.is_file():
        raise FileNotFoundError(f"--resume: no training checkpoint {path}; start without --resume (or pass the "
                                "--run-dir of the run to continue)")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001
        raise ValueError(f"{path}: not a readable training checkpoint ({str(e).splitlines()[0]})") from None
    if not isinstance(state, dict) or state.get("format") != STATE_FORMAT or state.get("version") != STATE_VERSION:
        raise ValueError(f"{path}: not a {STATE_FORMAT} v{STATE_VERSION} file")
    return state


def resumed_args(cli: TrainArgs, saved: dict) -> tuple[TrainArgs, list[str]]:
    """The saved TrainArgs with the run-control fields of the command line; also the ignored differences."""
    merged = TrainArgs.from_dict(saved)
    ignored = []
    for key, value in cli.to_dict().items():
        if key in RUN_CONTROL:
            setattr(merged, key, getattr(cli, key))
        elif value != saved.get(key) and value != TrainArgs.__dataclass_fields__[key].default:
            ignored.append(f"--{key.replace('_', '-')} {value} (the run uses {saved.get(key)})")
    merged.__post_init__()
    return merged, ignored


def train(args: TrainArgs, manifold=None, quiet: bool = False, on_update=None) -> dict:
    """Train (or resume) per ``args``; returns a summary dict. ``manifold`` overrides ``args.vae`` (tests);
    ``on_update(metrics)`` is called after every update (e.g. a build's progress view). Under torchrun every rank
    runs this (see the module docstring); rank 0 alone prints."""
    with contextlib.ExitStack() as cleanup:
        procs = join_processes(args, cleanup)
        return _train(args, manifold, quiet or not procs.main, on_update, procs)


def _train(args: TrainArgs, manifold, quiet: bool, on_update, procs: Processes) -> dict:
    say = (lambda *a: None) if quiet else print  # noqa: E731
    output_file(args.out, "--out", (".pt",))  # before any work: an hour of training must not die at its first save
    output_dir(Path(args.run_dir or f"runs/policy_{canonical_task(args.task, '--task')}"), "--run-dir")
    state = None
    if args.resume and args.init_from:
        raise ValueError("--resume and --init-from exclude each other: --resume continues a run from its checkpoint, "
                         "--init-from starts a new one from a policy file")
    if args.resume:
        run_dir = Path(args.run_dir or f"runs/policy_{args.task}")
        state = load_train_state(run_dir / "checkpoint.pt")
        args, ignored = resumed_args(args, state["args"])
        for line in ignored:
            say(f"resume: ignoring {line}")
    say("TrainArgs:\n" + format_args(args))
    trainer = Trainer(args, manifold, procs)
    trainer.on_update = on_update if procs.main else None
    if state is not None:
        if state.get("vae_fingerprint") != manifold_fingerprint(trainer.manifold):
            raise ValueError(f"--resume: the checkpoint was trained on VAE data {state.get('vae_fingerprint')}, "
                             f"this VAE's is {manifold_fingerprint(trainer.manifold)}; pass the same --vae")
        trainer.load_state(state)
        say(f"resumed at update {trainer.update}, step {trainer.global_step}")
    else:
        trainer.start()
    summary = trainer.run()
    if procs.main:
        warn_if_diverging(summary, trainer.env.core.fps)
    say(json.dumps({"summary": {k: v for k, v in summary.items() if isinstance(v, (int, float))}, "out": args.out}))
    return summary


MAX_DIVERGED_PER_MINUTE = 0.1  # the policy gate of characters.build


def warn_if_diverging(summary: dict, fps: float) -> None:
    """The build's divergence gate on the last rollout: a warning when the policy keeps driving the VAE off its data."""
    share = summary.get("diverged")
    if share is not None and share * fps * 60.0 > MAX_DIVERGED_PER_MINUTE:
        print(f"warning: {share * fps * 60.0:.2f} divergence resets per character-minute in the last rollout: the "
              "policy drives the VAE off its data (check the VAE with `python -m vae.evaluate`: held latents)",
              file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv, description="PPO training of a Motion VAE task policy (see policies/train.py).")
    try:
        train(args)
    except KeyboardInterrupt:
        return 130
    except (ValueError, FileNotFoundError, TypeError, TrainingDiverged) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0
