"""Evaluate a policy (or a baseline) on its task: batched episodes, task metrics, one JSON line last on stdout.

Usage::

    python -m policies.evaluate POLICY.pt --episodes 100 --json [--vae CKPT] [--seed S]
    python -m policies.evaluate --character deepmimic --task target --json       # a bundle's policy
    python -m policies.evaluate --policy random --task target --episodes 100 --json
    python -m policies.evaluate --policy scripted --task joystick --episodes 100 --json

A policy file remembers the VAE it was trained with and its task options: they are used unless ``--vae`` /
``--env-options`` say otherwise (the trainer's own options, such as a shorter ``max_episode_steps``, are not: every
policy is evaluated on the task's standard episodes), and a VAE it was not trained on is refused (sizes) or warned
about (weights).

``random`` steers with latents drawn from the VAE's prior (the paper's random walk; uniform actions in the
[-1, 1] box would be latents of up to 4 sigma the VAE never saw); ``scripted`` is
:class:`policies.sampling_controller.SamplingController`. A policy file runs its deterministic action.

Each of the ``--episodes`` characters runs one episode of the task's length (``max_episode_steps``, 30 s by
default) in one batched environment without autoreset (batches of ``--batch-size`` characters). Metrics:

=============== ===================================================================================
all tasks       ``nonfinite_frames`` (frames with a NaN / inf state), ``foot_skate_cm_per_frame``
                (mean ground slide of a foot joint in contact, per frame, cm: vae.metrics
                ``foot_contact_displacements`` over each episode; feet by name, else the two lowest
                joints (mocap.features.default_foot_indices); contact = below the foot's lowest
                height in the VAE's start poses + 5 cm; null for a manifold without a skeleton),
                ``episode_return``, ``minutes`` (simulated); ``diverged_per_minute`` (characters reset for
                leaving the data's manifold, see the environments); ``action_saturation`` (share of latent
                action components at the bound, |a| >= 0.99: how much the policy exploits the edge of the latent
                space; Gaussian policies); ``foot_sliding``, ``skating_ratio``, ``coherence``, ``jitter``
                (METRICS.md, :mod:`mocap.quality`, over each episode) next to ``data_*``, the same metrics of
                the VAE's training data (stored in its checkpoint by vae.train; null for older checkpoints);
                ``foot_sliding_ik``: the same motion as the app shows it, with foot locking
                (:mod:`mocap.foot_locking`)
target          a target not reached within ``--target-timeout`` (10 s) counts as failed and is
                replaced (placed like the task's). ``success_rate`` = targets reached within 10 s /
                targets given (reached + failed; the one pending at the end is not counted),
                ``targets_per_minute``, ``mean_time_to_target_s``
timed_target    the task's own deadlines (at most 9 s with the default options): ``success_rate`` =
                reached in time / (reached + missed), ``targets_per_minute``, ``mean_time_to_target_s``
joystick        ``heading_error_deg`` (facing against the commanded facing), ``speed_error_mps``: means over
                the frames at least ``--settle-seconds`` (1 s) after each command change (and after the
                start), i.e. once the character had time to respond; ``*_all`` versions over every frame;
                ``travel_error_deg`` (ground velocity against the commanded direction, while moving);
                ``facing_error_deg`` (facing error while strafing); ``by_speed_band``: the errors per
                commanded-speed band (standing < 0.2, walk < 1.5, run < 2.8 m/s, dash); METRICS.md
                responsiveness: ``turn_response_s`` (from a facing change of >= 120 deg until the facing
                error stays under 20 deg for 0.5 s) and ``stop_time_s`` (from a command of speed 0 until
                the ground speed stays under 0.2 m/s for 0.5 s), with their counts
path_follow     ``path_error_mean_m``, ``path_error_p95_m``: distance from the root to the moving path
                point over every frame. Evaluated with ``max_distance`` = 1e6 (the task option, whatever
                the policy trained with), so a character that falls behind is not ended early and its error
                counts in full; ``lost_fraction`` = episodes that were ever more than 4 m away (the task's
                default limit)
maze            ``goals_reached`` (per episode), ``goals_per_minute``, ``collisions_per_minute``
                (with the task's default ``collision="terminate"`` an episode ends at its first collision)
=============== ===================================================================================
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
import warnings

import numpy as np
import torch
from gymnasium.vector import AutoresetMode

from envs.manifold_source import pose_layout
from envs.registry import canonical_task, task_choices, task_names
from mocap.quality import SPEED_BANDS, WINDOW_S, quality_over, toe_joints
from policies.checkpoint import (
    check_policy_fits,
    check_prior_matches,
    load_policy,
    policy_task_options,
    trained_prior,
    trained_vae,
)
from policies.controllers import PolicyController, PriorController, SamplingController
from vae.metrics import CONTACT_MARGIN_M, foot_contact_displacements

BASELINES = ("random", "scripted")
PATH_EVAL_MAX_DISTANCE = 1e6
SATURATED = 0.99  # |action| at or beyond this is at the latent bound (the environment clips to 1)
QUALITY_KEYS = ("foot_sliding", "foot_sliding_ik", "skating_ratio", "coherence", "jitter")
PATH_LOST_DISTANCE = 4.0


# ---- environments -----------------------------------------------------------------------------------
def make_eval_env(task: str, vae, num_envs: int, *, device=None, action_scale: float | None = None,
                  env_options: dict | None = None):
    """A MotionVecEnv (torch arrays, no autoreset) set up for evaluation of ``task`` (see the module docstring)."""
    from envs.vec_env import MotionVecEnv

    options = dict(env_options or {})
    if task == "path_follow":
        options["max_distance"] = PATH_EVAL_MAX_DISTANCE  # whatever limit a policy trained with: see the docstring
    return MotionVecEnv(num_envs, task, vae, device=device, array_backend="torch", action_scale=action_scale,
                        autoreset_mode=AutoresetMode.DISABLED, **options)


def floor_heights(manifold, foot_joints) -> torch.Tensor | None:
    """(F,) lowest height of each foot joint over the VAE's start poses (the contact reference), or None."""
    frames = getattr(manifold, "start_frames", None)
    if frames is None or len(foot_joints) == 0:
        return None
    from envs.manifold_source import pose_layout

    heights = pose_layout(manifold).positions(torch.as_tensor(frames).reshape(-1, manifold.frame_size))[..., 1]
    return heights[:, list(foot_joints)].min(dim=0).values.cpu()


def foot_joints_of(manifold) -> list[int]:
    """Foot joints by name (foot / ankle / toe), else the two joints lowest in the start poses; [] without those."""
    skeleton = getattr(manifold, "skeleton", None)
    frames = getattr(manifold, "start_frames", None)
    if skeleton is None or frames is None:
        return []
    from envs.manifold_source import pose_layout
    from mocap.features import default_foot_indices

    positions = pose_layout(manifold).positions(torch.as_tensor(frames).reshape(-1, manifold.frame_size))
    return [int(i) for i in default_foot_indices(skeleton, positions.cpu().numpy())]


# ---- one batch of episodes --------------------------------------------------------------------------
class _Tally:
    """Sums over a batch of episodes (tensors on the env device; read once at the end)."""

    def __init__(self):
        self.values: dict = {}
        self.samples: dict[str, list] = {}
        self.episode_quality: list[dict] = []  # one mocap.quality dict per batch of episodes

    def add(self, key: str, value) -> None:
        # Tensors stay on their device (no sync per frame); summarize() reads them once.
        self.values[key] = self.values.get(key, 0.0) + value

    def extend(self, key: str, values: torch.Tensor) -> None:
        self.samples.setdefault(key, []).append(values.detach())

    def read(self) -> dict[str, float]:
        return {k: float(v) for k, v in self.values.items()}

    def cat(self, key: str) -> torch.Tensor:
        chunks = self.samples.get(key)
        return torch.cat(chunks).cpu().to(torch.float64) if chunks else torch.zeros(0, dtype=torch.float64)


@torch.no_grad()
def run_batch(env, controller, *, seed: int, target_timeout: float = 10.0, settle_seconds: float = 1.0,
              tally: _Tally | None = None) -> _Tally:
    """Run every character of ``env`` for one episode with ``controller``; accumulate metrics into a tally."""
    tally = tally or _Tally()
    task, core = env.task, env.core
    name, dt, b = task.name, core.dt, env.num_envs
    obs, _ = env.reset(seed=seed)
    alive = torch.ones(b, dtype=torch.bool, device=env.device)
    feet = foot_joints_of(env.manifold)
    joints_track, alive_track, contacts_track = [], [], []
    age = torch.zeros(b, device=env.device)  # target: seconds the current target has been up
    joystick = JoystickTracker(task, core, settle_seconds) if name == "joystick" else None
    ever_lost = torch.zeros(b, dtype=torch.bool, device=env.device)
    missed = torch.zeros(b, dtype=torch.int64, device=env.device)  # timed_target: the task's count so far
    returns = torch.zeros(b, device=env.device)
    for _ in range(env.max_episode_steps):
        action = controller(env, obs)
        obs, reward, terminated, truncated, info = env.step(action)
        live = alive.float()
        returns += reward * live
        tally.add("frames", live.sum())
        tally.add("nonfinite_frames", (info["nonfinite"] & alive).sum())
        tally.add("diverged", (info["diverged"] & alive).sum())
        if not core.discrete:
            tally.add("saturated", ((action.abs() >= SATURATED) & alive[:, None]).sum())
            tally.add("action_values", live.sum() * action.shape[1])
        joints_track.append(core.world_joint_positions().cpu())
        contacts = core.contact_probabilities()  # (B, F) the model's contact channels, or None
        if contacts is not None:
            contacts_track.append(contacts.cpu())
        alive_track.append(alive.clone().cpu())  # alive changes in place below
        if name in ("target", "timed_target", "maze"):
            arrived = info["_time_to_target"] & alive
            tally.add("reached", arrived.sum())
            tally.extend("time_to_target", info["time_to_target"][arrived])
            if name == "target":
                age = torch.where(arrived, torch.zeros_like(age), age + dt)
                expired = (age >= target_timeout - 1e-6) & alive
                tally.add("failed", expired.sum())
                if bool(expired.any()):
                    task.replan(expired)  # a new target around where it stands
                    age = torch.where(expired, torch.zeros_like(age), age)
                    obs = env.observe()  # the policy must see the new target
            if name == "timed_target":
                tally.add("missed", ((info["targets_missed"] - missed) * alive).sum())
                missed = info["targets_missed"].clone()
            if name == "maze":
                tally.add("collisions", (info["collided"] & alive).sum())
        elif name == "joystick":
            joystick.step(info, alive, tally)
        elif name == "path_follow":
            distance = info["path_distance"]
            tally.extend("path_distance", distance[alive])
            ever_lost |= alive & (distance > PATH_LOST_DISTANCE)
        alive &= ~(terminated | truncated)
        if not bool(alive.any()):
            break
    tally.add("episodes", b)
    tally.add("return", returns.sum())
    tally.add("lost", ever_lost.sum())
    joints, alive_steps = torch.stack(joints_track), torch.stack(alive_track)  # (T, B, J, 3), (T, B)
    if feet:
        _foot_skate(tally, env.manifold, feet, joints[:, :, feet], alive_steps)
    contacts = torch.stack(contacts_track).numpy() if contacts_track else None  # (T, B, F)
    _quality(tally, env.manifold, joints, alive_steps, core.fps, contacts)
    return tally


BIG_TURN = math.radians(120.0)
TURNED_DEG = 20.0
HOLD_S = 0.5  # a response counts once the error stays under its bar this long
STOPPED_MPS = 0.2


class JoystickTracker:
    """Joystick figures beyond the mean errors: per speed band, while strafing, and the responsiveness of
    METRICS.md (turn response after a facing change of >= 120 deg; stop time after a command of speed 0)."""

    def __init__(self, task, core, settle_seconds: float):
        self.task, self.core, self.settle = task, core, settle_seconds
        b, dev = core.num_envs, core.device
        self.since_change = torch.zeros(b, device=dev)
        self.command = self._command()
        self.turning = torch.zeros(b, dtype=torch.bool, device=dev)  # waiting for a big turn to finish
        self.stopping = torch.zeros(b, dtype=torch.bool, device=dev)  # waiting for a stop
        self.below = torch.full((b,), -1.0, device=dev)  # since when (s after the change) the bar holds; -1: not

    def _command(self) -> torch.Tensor:
        t = self.task
        return torch.cat((t.command_direction, t.command_facing, t.command_speed[:, None]), dim=1).clone()

    def step(self, info: dict, alive: torch.Tensor, tally: _Tally) -> None:
        dt = self.core.dt
        self.since_change = self.since_change + dt
        live = alive.float()
        settled = alive & (self.since_change >= self.settle - 1e-6)
        heading, speed_error = info["heading_error_deg"], info["speed_error"]
        tally.add("settled_frames", settled.sum())
        tally.add("heading_error_settled", (heading * settled).sum())
        tally.add("speed_error_settled", (speed_error * settled).sum())
        tally.add("heading_error_all", (heading * live).sum())
        tally.add("speed_error_all", (speed_error * live).sum())
        moving = settled & (info["travel_error_deg"] > 0)
        tally.add("travel_frames", moving.sum())
        tally.add("travel_error_settled", (info["travel_error_deg"] * moving).sum())
        strafing = settled & info["strafing"]
        tally.add("strafe_frames", strafing.sum())
        tally.add("facing_error_strafing", (heading * strafing).sum())
        command_speed = info["command_speed"]
        for band, low, high in SPEED_BANDS:
            inside = settled & (command_speed >= low) & (command_speed < high)
            tally.add(f"band_{band}_frames", inside.sum())
            tally.add(f"band_{band}_heading", (heading * inside).sum())
            tally.add(f"band_{band}_speed", (speed_error * inside).sum())
        self._responses(info, alive, tally)
        now = self._command()
        changed = (now != self.command).any(dim=1)
        if bool(changed.any()):
            self._new_command(changed, now)
        self.command = now

    def _responses(self, info: dict, alive: torch.Tensor, tally: _Tally) -> None:
        """Turn response and stop time of the commands in progress (their clocks are ``since_change``)."""
        t = self.since_change
        ok = torch.where(self.turning, info["heading_error_deg"] < TURNED_DEG, info["speed"] < STOPPED_MPS)
        waiting = (self.turning | self.stopping) & alive
        self.below = torch.where(waiting & ok & (self.below < 0), t, self.below)
        self.below = torch.where(waiting & ~ok, torch.full_like(self.below, -1.0), self.below)
        done = waiting & (self.below >= 0) & (t - self.below >= HOLD_S - 1e-6)
        if bool(done.any()):
            turned, stopped = done & self.turning, done & self.stopping
            tally.extend("turn_response", (self.below - self.core.dt)[turned])  # the clock started a step late
            tally.extend("stop_time", (self.below - self.core.dt)[stopped])
            self.turning, self.stopping = self.turning & ~done, self.stopping & ~done

    def _new_command(self, changed: torch.Tensor, now: torch.Tensor) -> None:
        old_facing, new_facing = self.command[:, 2:4], now[:, 2:4]
        turn = torch.acos((old_facing * new_facing).sum(dim=1).clamp(-1.0, 1.0))
        stop = (now[:, 4] == 0) & (self.core.speed() > STOPPED_MPS)
        self.turning = torch.where(changed, turn >= BIG_TURN, self.turning)
        self.stopping = torch.where(changed, stop & ~(turn >= BIG_TURN), self.stopping)
        self.below = torch.where(changed, torch.full_like(self.below, -1.0), self.below)
        self.since_change = torch.where(changed, torch.zeros_like(self.since_change), self.since_change)


def _quality(tally: _Tally, manifold, joints: torch.Tensor, alive: torch.Tensor, fps: float,
             contacts: np.ndarray | None = None) -> None:
    """METRICS.md metrics of every episode (its frames while alive), pooled per episode; ``contacts`` (T, B, F): the
    model's contact channels at each frame, which the foot locking of ``foot_sliding_ik`` then follows."""
    skeleton = getattr(manifold, "skeleton", None)
    if skeleton is None:
        return
    try:
        toes = toe_joints(skeleton)
    except ValueError:
        return
    episodes = [joints[alive[:, i], i].double().numpy() for i in range(joints.shape[1])]
    quality = quality_over(episodes, toes, fps, window_s=WINDOW_S)
    locked = locked_motion(manifold, joints.double().numpy(), fps, contacts)
    if locked is not None:
        episodes = [locked[alive[:, i].numpy(), i] for i in range(joints.shape[1])]
        quality["foot_sliding_ik"] = quality_over(episodes, toes, fps, window_s=WINDOW_S)["foot_sliding"]
    tally.episode_quality.append(quality)


def locked_motion(manifold, world_pos: np.ndarray, fps: float, contacts: np.ndarray | None = None) -> np.ndarray | None:
    """The rollout (T, B, J, 3) as the app shows it with foot locking (:mod:`mocap.foot_locking`; with the model's
    contact channels ``contacts`` (T, B, F) where it has them, as the app), or None for a skeleton without legs."""
    from mocap.foot_locking import FootLocker, channel_contacts, channel_sides, leg_chains

    try:
        chains = leg_chains(manifold.skeleton)
    except ValueError:
        return None
    frames = getattr(manifold, "start_frames", None)
    poses = None
    if frames is not None:
        frames = np.asarray(torch.as_tensor(frames).cpu(), dtype=np.float64)
        poses = pose_layout(manifold).positions(frames.reshape(-1, frames.shape[-1]))  # (N, J, 3)
    locker = FootLocker.from_data(chains, world_pos.shape[1], fps, poses)
    head = getattr(manifold, "contacts", None)
    sides = None if contacts is None or head is None else channel_sides(chains, manifold.skeleton, head.joints)
    if sides is None:
        return np.stack([locker.step(pose)[0] for pose in world_pos])  # (T, B, J, 3)
    sided = channel_contacts(contacts, sides)  # (T, B, 2)
    return np.stack([locker.step(pose, predicted=c)[0] for pose, c in zip(world_pos, sided, strict=True)])


def _foot_skate(tally: _Tally, manifold, feet: list[int], positions: torch.Tensor, alive: torch.Tensor) -> None:
    """positions (T, B, F, 3) world feet, alive (T, B): pool vae.metrics foot displacements per episode."""
    floors = floor_heights(manifold, feet)
    if floors is None:
        return
    local = list(range(len(feet)))
    for i in range(positions.shape[1]):
        frames = positions[alive[:, i], i]  # (T_i, F, 3) one continuous episode
        if frames.shape[0] < 2:
            continue
        disp, steps = foot_contact_displacements(frames, local, floors, CONTACT_MARGIN_M)
        tally.add("skate_sum", disp.sum())
        tally.add("skate_count", disp.numel())
        tally.add("foot_steps", steps)


def summarize(tally: _Tally, task: str) -> dict:
    """Tally -> the metrics of the module docstring (plain floats)."""
    v = tally.read()
    frames = v.get("frames", 0.0)
    minutes = frames / v.get("fps", 30.0) / 60.0
    out = {
        "episodes": int(v.get("episodes", 0)),
        "minutes": minutes,
        "episode_return": v.get("return", 0.0) / max(v.get("episodes", 1), 1),
        "nonfinite_frames": int(v.get("nonfinite_frames", 0)),
        "foot_skate_cm_per_frame": (100.0 * v["skate_sum"] / v["skate_count"]) if v.get("skate_count") else None,
        "diverged_per_minute": v.get("diverged", 0.0) / minutes if minutes > 0 else 0.0,
        "action_saturation": v["saturated"] / v["action_values"] if v.get("action_values") else None,
    }
    for key in QUALITY_KEYS:
        values = [q[key] for q in tally.episode_quality if q.get(key) is not None]
        out[key] = float(sum(values) / len(values)) if values else None
    times = tally.cat("time_to_target")
    per_min = (lambda count: count / minutes if minutes > 0 else 0.0)  # noqa: E731
    if task in ("target", "timed_target"):
        reached = v.get("reached", 0.0)
        failed = v.get("failed", 0.0) if task == "target" else v.get("missed", 0.0)
        out["success_rate"] = reached / (reached + failed) if reached + failed > 0 else 0.0
        out["targets_reached"] = int(reached)
        out["targets_failed"] = int(failed)
        out["targets_per_minute"] = per_min(reached)
        out["mean_time_to_target_s"] = float(times.mean()) if times.numel() else None
    elif task == "joystick":
        settled = max(v.get("settled_frames", 0.0), 1.0)
        out["heading_error_deg"] = v.get("heading_error_settled", 0.0) / settled
        out["speed_error_mps"] = v.get("speed_error_settled", 0.0) / settled
        out["heading_error_deg_all"] = v.get("heading_error_all", 0.0) / max(frames, 1.0)
        out["speed_error_mps_all"] = v.get("speed_error_all", 0.0) / max(frames, 1.0)
        ratio = (lambda key, count: v[key] / v[count] if v.get(count) else None)  # noqa: E731
        out["travel_error_deg"] = ratio("travel_error_settled", "travel_frames")
        out["facing_error_deg"] = ratio("facing_error_strafing", "strafe_frames")
        out["by_speed_band"] = {band: {"heading_error_deg": ratio(f"band_{band}_heading", f"band_{band}_frames"),
                                       "speed_error_mps": ratio(f"band_{band}_speed", f"band_{band}_frames"),
                                       "seconds": v.get(f"band_{band}_frames", 0.0) / v.get("fps", 30.0)}
                               for band, _, _ in SPEED_BANDS}
        for key in ("turn_response", "stop_time"):
            samples = tally.cat(key)
            out[f"{key}_s"] = float(samples.mean()) if samples.numel() else None
            out[f"{key}_count"] = int(samples.numel())
    elif task == "path_follow":
        d = tally.cat("path_distance")
        out["path_error_mean_m"] = float(d.mean()) if d.numel() else None
        out["path_error_p95_m"] = float(torch.quantile(d, 0.95)) if d.numel() else None
        out["lost_fraction"] = v.get("lost", 0.0) / max(v.get("episodes", 1), 1)
    elif task == "maze":
        out["goals_reached"] = v.get("reached", 0.0) / max(v.get("episodes", 1), 1)
        out["goals_per_minute"] = per_min(v.get("reached", 0.0))
        out["collisions_per_minute"] = per_min(v.get("collisions", 0.0))
        out["mean_time_to_target_s"] = float(times.mean()) if times.numel() else None
    return out


def evaluate(make_controller, *, task: str, vae, episodes: int, seed: int = 0, batch_size: int = 256,
             device=None, action_scale: float | None = None, env_options: dict | None = None,
             target_timeout: float = 10.0,
             settle_seconds: float = 1.0, env=None) -> dict:
    """Run ``episodes`` episodes in batches; ``make_controller(env)`` -> controller(env, obs). Returns summarize()."""
    if episodes < 1:
        raise ValueError(f"--episodes must be >= 1, got {episodes}")
    tally = _Tally()
    done, batch_index = 0, 0
    while done < episodes:
        n = min(batch_size, episodes - done)
        batch_env = env if env is not None and env.num_envs == n else make_eval_env(
            task, vae, n, device=device, action_scale=action_scale, env_options=env_options)
        tally.values["fps"] = batch_env.core.fps
        run_batch(batch_env, make_controller(batch_env), seed=seed + batch_index, target_timeout=target_timeout,
                  settle_seconds=settle_seconds, tally=tally)
        if batch_env is not env:
            batch_env.close()
        done += n
        batch_index += 1
    return summarize(tally, task)


# ---- command line -----------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m policies.evaluate", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("policy_file", nargs="?", help="policy file from train_policy.py (it remembers its VAE and "
                   "task options)")
    p.add_argument("--character", help="character bundle: evaluate its policy for --task (or a baseline on its VAE)")
    p.add_argument("--policy", choices=BASELINES, help="a baseline instead of a policy file")
    p.add_argument("--task", choices=task_choices(), metavar="TASK",
                   help=f"task: {', '.join(task_names())} (default: the policy's; required for baselines)")
    p.add_argument("--vae", help="VAE checkpoint (default: the policy's own, else --character's, else the default "
                   "character's); 'toy' = envs.ToyManifold")
    p.add_argument("--prior", help="code prior of a VQ VAE (default: a prior-residual policy's own, else --character's "
                   "when its VAE is used); RandomWalk and the baselines then draw codes from it")
    p.add_argument("--episodes", type=int, default=100, help="episodes (characters), each one task episode long")
    p.add_argument("--batch-size", type=int, default=256, help="characters simulated together")
    p.add_argument("--seed", type=int, default=0, help="seed of the environments and the baselines")
    p.add_argument("--device", default="cpu", help="torch device")
    p.add_argument("--candidates", type=int, default=32, help="scripted: prior samples per character per frame")
    p.add_argument("--target-timeout", type=float, default=10.0, help="target: seconds before a target counts failed")
    p.add_argument("--settle-seconds", type=float, default=1.0, help="joystick: seconds after a command change "
                   "before errors count")
    p.add_argument("--env-options", default="{}", help="JSON dict of extra environment options")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: default)")
    p.add_argument("--json", action="store_true", help="print only the JSON line")
    return p


def resolve_vae(vae: str | None, device):
    """'toy' -> a ToyManifold on ``device``; a path / None -> resolved by the environments."""
    if vae == "toy":
        from envs.toy_manifold import ToyManifold

        return ToyManifold().to(device)
    from envs.manifold_source import resolve_manifold

    return resolve_manifold(vae, device)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    say = (lambda *a: None) if args.json else (lambda *a: print(*a, file=sys.stderr))  # noqa: E731
    try:
        options = json.loads(args.env_options)
        if not isinstance(options, dict):
            raise ValueError("--env-options must be a JSON object")
        policy_file, vae, scale, prior = args.policy_file, args.vae, None, args.prior
        bundle = None
        if args.character is not None:
            from characters.bundle import load_character

            bundle = load_character(args.character)
            if vae is None and prior is None and bundle.prior is not None:
                prior = str(bundle.prior)
            vae = vae or str(bundle.vae)
            scale = bundle.action_scale
            if policy_file is None and args.policy is None:
                if args.task is None:
                    raise ValueError(f"--character {args.character} needs --task (its tasks: "
                                     f"{', '.join(bundle.tasks)}) or a baseline --policy random|scripted")
                policy_file = bundle.policy(args.task)
                if policy_file is None:
                    raise ValueError(f"--character {args.character} has no {args.task} policy (its tasks: "
                                     f"{', '.join(bundle.tasks)})")
        if (policy_file is None) == (args.policy is None):
            raise ValueError("give either a policy file (or --character with --task) or --policy random|scripted")
        policy = None
        if policy_file is not None:
            policy = load_policy(policy_file, device=args.device)
            if args.task is not None and canonical_task(args.task) != policy.task:
                raise ValueError(f"{policy_file} was trained for task {policy.task!r}, not --task {args.task!r}")
            task = policy.task
            vae = vae or str(trained_vae(policy))  # the VAE it was trained with, unless told otherwise
            scale = policy.action_scale
            options = {**policy_task_options(policy), **options}
            recorded = trained_prior(policy) if prior is None else None
            prior = str(recorded) if recorded is not None else prior
        else:
            if args.task is None:
                raise ValueError(f"--policy {args.policy} needs --task ({', '.join(task_names())})")
            task = canonical_task(args.task)
        manifold = resolve_vae(vae, args.device)
        if prior is not None:
            from envs.manifold_source import resolve_code_prior

            options["code_prior"] = resolve_code_prior(prior, manifold)
        if policy is not None:
            check_prior_matches(policy, options.get("code_prior"))
            probe = make_eval_env(task, manifold, 1, action_scale=scale, env_options=options)
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                check_policy_fits(policy, manifold, probe.single_observation_space.shape[0])
            for w in caught:
                print(f"warning: {w.message}", file=sys.stderr)
            probe.close()
    except (ValueError, FileNotFoundError, TypeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2

    def make_controller(env):
        if policy is not None:
            return PolicyController(policy)
        if args.policy == "random":
            return PriorController(env, seed=args.seed)
        return SamplingController.for_env(env, num_candidates=args.candidates, seed=args.seed)

    start = time.perf_counter()
    metrics = evaluate(make_controller, task=task, vae=manifold, episodes=args.episodes, seed=args.seed,
                       batch_size=args.batch_size, action_scale=scale, env_options=options,
                       target_timeout=args.target_timeout, settle_seconds=args.settle_seconds)
    metrics.update(data_quality(manifold))
    result = {"task": task, "episodes": metrics.pop("episodes"),
              "policy": str(policy_file) if policy is not None else args.policy, "seed": args.seed, **metrics,
              "wall_s": round(time.perf_counter() - start, 2)}
    for key, value in result.items():
        say(f"  {key:<26} {value}")
    print(json.dumps(_finite(result)))
    return 0


def data_quality(manifold) -> dict:
    """``data_*`` METRICS.md figures of the VAE's training data, as vae.train stored them (else None)."""
    extra = getattr(manifold, "extra", None)
    stored = extra.get("data_quality", {}) if isinstance(extra, dict) else {}
    return {f"data_{key}": stored.get(key) for key in QUALITY_KEYS}


def _finite(d: dict) -> dict:
    """NaN / inf -> None so the line is strict JSON."""
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in d.items()}


if __name__ == "__main__":
    raise SystemExit(main())
