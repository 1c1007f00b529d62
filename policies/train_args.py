"""TrainArgs: every setting of a policy training run, one dataclass field each, documented where it is declared.

The docstring under each field is its ``--help`` text: :func:`build_parser` reads them from this module's
source (:mod:`common.dataclass_cli`), so the documentation and the command line cannot drift apart. Field ``num_envs`` is the flag
``--num-envs``; booleans get ``--flag`` / ``--no-flag``; tuples take several values. The whole dataclass is
printed when a run starts and saved in the policy file (``train_args``) and the training checkpoint.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
from dataclasses import dataclass

from common.dataclass_cli import dataclass_parser
from envs.registry import canonical_task, task_choices
from policies.network import RESIDUALS

ALGORITHMS = ("ppo", "apg")
DEFAULT_LEARNING_RATE = {"ppo": 3e-4, "apg": 1e-3}
DEFAULT_NUM_ENVS = {"ppo": 512, "apg": 256}  # apg: more, shorter updates learn faster per minute
# APG follows the term's gradient itself: at 0.3 its Bandai-Namco joystick slid 0.73 (0.29 with foot locking), at 0.6
# 0.66 (0.17) with heading errors under 10 deg in every speed band, at 1.0 0.53 (0.12) but 23 deg (16-minute runs).
DEFAULT_FOOT_SLIDE_WEIGHT = {"ppo": 0.3, "apg": 0.6}


@dataclass
class TrainArgs:
    task: str = "target"
    """Environment task: target, timed_target, joystick, path_follow (path), maze (envs.registry)."""
    character: str | None = None
    """Character bundle (folder from `python -m characters.build`, or a shipped name) whose VAE and action scale
    the policy steers."""
    vae: str | None = None
    """Motion VAE checkpoint the policy steers (default: --character's, else the default character's); 'toy' is
    envs.ToyManifold."""
    prior: str | None = None
    """Code prior of a VQ VAE (python -m vae.train_prior; default: --character's own prior.pt when it steers the
    character's VAE; 'none': no prior). With one the policy is prior-residual: its logits are the prior's next-code
    log-probabilities plus a learned residual, and the PPO loss adds prior_kl x KL(policy || prior)."""
    prior_kl: float = 0.02
    """Weight of KL(policy || code prior) per frame in the PPO loss of a prior-residual policy (0: none; larger
    keeps the motion closer to what the prior would do, smaller lets the task pull harder)."""
    residual: str = "latent"
    """What a prior-residual policy adds to the prior's logits: latent (a direction q in the latent space, code k
    gets e_k . q from its code vector e_k, so codes that decode alike gain alike) or codes (one free logit per
    code)."""
    out: str = "policy.pt"
    """Where the policy file goes (rewritten at every checkpoint and at the end; load it with policies.load_policy)."""
    run_dir: str | None = None
    """Folder for the training checkpoint, CSV and TensorBoard logs (default: runs/policy_<task>)."""
    algo: str = "ppo"
    """Learning algorithm: ppo (model-free; any manifold, torchrun) or apg (analytic policy gradients: the reward's
    gradient back through the Motion VAE's decoder over rollout_steps frames, policies.apg; Gaussian manifolds, one
    process; Bandai-Namco's joystick: 14 deg / 0.10 m/s after 10 minutes, PPO 37 deg / 0.51 m/s after 21)."""
    num_envs: int | None = None
    """Characters simulated together (one batched environment; under torchrun, per process; default: 512 for ppo,
    256 for apg)."""
    steps: int = 20_000_000
    """Total environment steps (characters x frames, all processes together) to train for; --resume continues up
    to it."""
    minutes: float = 0.0
    """Stop after this much training wall time (0: no limit); the policy is saved as at any end."""
    stop_after_update: int = 0
    """Stop after this update as if interrupted (checkpoint written; --resume goes on; the schedule is unchanged)."""
    rollout_steps: int = 32
    """Frames each character runs per update (an update learns from processes x num_envs x rollout_steps samples;
    for apg, the window the gradient flows back through)."""
    minibatch_size: int = 4096
    """Samples per gradient step (under torchrun, per process: the ranks' gradients are averaged)."""
    epochs: int = 4
    """Passes over each rollout."""
    learning_rate: float | None = None
    """Adam learning rate at the start (default: 3e-4 for ppo, 1e-3 for apg)."""
    final_lr_fraction: float = 0.1
    """The learning rate falls linearly to this fraction of learning_rate at `steps`."""
    gamma: float = 0.99
    """Discount per frame (0.99 at 30 fps: a horizon of about 3 s)."""
    gae_lambda: float = 0.95
    """GAE lambda."""
    clip_coef: float = 0.2
    """PPO ratio clip."""
    ent_coef: float = 0.0
    """Entropy bonus weight."""
    vf_coef: float = 0.5
    """Value loss weight."""
    max_grad_norm: float = 0.5
    """Gradient norm clip."""
    exploration_std: float = 0.1
    """apg: std of the noise added to the actor's action (in action units) while it learns."""
    latent_penalty: float = 0.02
    """apg: weight of mean z^2 (the latent in prior stds) in the loss; keeps the latent where the decoder was
    trained."""
    smoothness_penalty: float = 0.5
    """apg: weight of the mean squared change of the actor's latent from one frame to the next (prior stds); damps
    jitter."""
    target_kl: float = 0.0
    """Stop an update's epochs early when the approximate KL passes this (0: never)."""
    stagger_episodes: bool = True
    """Start the characters at random points of their first episode, so episode ends spread over the updates."""
    normalize_reward: bool = True
    """Scale rewards by the running std of the discounted return (values and advantages stay O(1))."""
    hidden_sizes: tuple[int, ...] = (128, 128)
    """Actor hidden layers (the reference's 256, 256, 256 learns ~3.6x slower per sample on a CPU)."""
    critic_hidden_sizes: tuple[int, ...] = (128, 128)
    """Critic hidden layers."""
    init_action_std: float = 0.5
    """Initial exploration std in action units (the latent's std is action_scale times this)."""
    action_scale: float | None = None
    """Latent = action_scale x action (action in [-1, 1]); stored in the policy for the app and ONNX export.
    Default: the character's, else the VAE's own bound (measured where its decoder was trained), else 4."""
    env_options: str = "{}"
    """JSON dict of extra environment options, e.g. '{"max_speed": 1.5, "max_episode_steps": 600}'."""
    env_schedule: str = "{}"
    """JSON dict of task options that change as training goes on (a curriculum in one run): option -> [[fraction of
    --steps, value], ...], linear between the points and held before the first and after the last, e.g. the maze's
    '{"collision_penalty": [[0.5, 1], [0.9, 30]]}'. Each must be a number the task reads at every step; its value is
    logged as env_<option>. Training only: the evaluation and the app run the task with its --env-options."""
    foot_slide_weight: float | None = None
    """Foot-sliding reward term (envs.foot_slide): positive rewards are scaled by exp(-w x cm the toes in contact
    slide per frame); 0 turns it off. Default: 0.3 for PPO, 0.6 for APG. Needs a model whose skeleton names its toes
    or feet."""
    style_change_s: float = 5.0
    """With a VAE that has styles: each character switches to a random style on average this often (seconds; 0:
    never), so the policy keeps working when a user switches styles live."""
    device: str = "cpu"
    """Torch device for the environment, the VAE and the networks (cpu, cuda, cuda:1 ...; under torchrun with cuda
    each process uses cuda:LOCAL_RANK)."""
    threads: int = 0
    """torch CPU threads (0: torch's default). On a shared 2-core machine use the free cores, e.g. 1."""
    seed: int = 0
    """Seed of everything random (environment, action noise, minibatches): a seed reproduces a run (under torchrun
    each process adds its rank x 1,000,003)."""
    checkpoint_every: int = 10
    """Write the training checkpoint (and the policy) every this many updates."""
    eval_every: int = 10
    """Evaluate the deterministic policy every this many updates (0: never); logged as eval/*."""
    eval_envs: int = 64
    """Characters in each periodic evaluation."""
    eval_seconds: float = 20.0
    """Simulated seconds of each periodic evaluation."""
    resume: bool = False
    """Continue the run in run_dir from its checkpoint (optimizer, normalisers, RNG and environment state)."""
    init_from: str | None = None
    """Start a new run from this policy file's weights and observation normaliser (a shipped policy included) instead
    of fresh ones: fine-tuning, e.g. with other --env-options. The optimizer, learning-rate schedule and return
    normaliser start anew. The policy must be for the same task, VAE and network sizes."""
    tensorboard: bool = True
    """Write TensorBoard logs to run_dir (CSV logs are always written)."""
    progress: bool = True
    """Show a tqdm progress bar with env-steps/s."""

    def __post_init__(self):
        self.hidden_sizes = tuple(int(h) for h in self.hidden_sizes)
        self.critic_hidden_sizes = tuple(int(h) for h in self.critic_hidden_sizes)

    def env_option_dict(self) -> dict:
        try:
            options = json.loads(self.env_options)
        except json.JSONDecodeError as e:
            raise ValueError(f"--env-options is not valid JSON ({e}): pass e.g. '{{\"max_speed\": 1.5}}'") from None
        if not isinstance(options, dict):
            raise ValueError(f"--env-options must be a JSON object (dict), got {self.env_options!r}")
        return options

    def env_schedule_dict(self) -> dict[str, list[tuple[float, float]]]:
        """--env-schedule as {option: [(fraction, value), ...]}, checked; ValueError naming the flag otherwise."""
        try:
            schedule = json.loads(self.env_schedule)
        except json.JSONDecodeError as e:
            raise ValueError(f"--env-schedule is not valid JSON ({e}): pass e.g. "
                             "'{\"collision_penalty\": [[0.5, 1], [0.9, 30]]}'") from None
        if not isinstance(schedule, dict):
            raise ValueError(f"--env-schedule must be a JSON object (dict), got {self.env_schedule!r}")
        result = {}
        for name, points in schedule.items():
            where = f"--env-schedule {name!r}"
            if not isinstance(points, list) or not points or not all(
                    isinstance(p, list) and len(p) == 2 and all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                                               and math.isfinite(v) for v in p) for p in points):
                raise ValueError(f"{where}: give a list of [fraction of --steps, value] pairs of numbers, "
                                 f"e.g. [[0.5, 1], [0.9, 30]]; got {points!r}")
            fractions = [float(f) for f, _ in points]
            increasing = all(a < b for a, b in zip(fractions, fractions[1:], strict=False))
            if not increasing or any(not 0.0 <= f <= 1.0 for f in fractions):
                raise ValueError(f"{where}: the fractions of --steps must lie in [0, 1] and increase; got {fractions}")
            if name in self.env_option_dict():
                raise ValueError(f"{where}: the option is in --env-options too; give it in one of the two")
            result[name] = [(float(f), float(v)) for f, v in points]
        return result

    def validate(self) -> None:
        self.task = canonical_task(self.task, "--task")
        if self.algo not in ALGORITHMS:
            raise ValueError(f"--algo {self.algo!r}: choose one of {', '.join(ALGORITHMS)}")
        if self.learning_rate is None:
            self.learning_rate = DEFAULT_LEARNING_RATE[self.algo]
        if self.foot_slide_weight is None:
            self.foot_slide_weight = DEFAULT_FOOT_SLIDE_WEIGHT[self.algo]
        if self.num_envs is None:
            self.num_envs = DEFAULT_NUM_ENVS[self.algo]
        positive = ("num_envs", "steps", "rollout_steps", "minibatch_size", "epochs", "checkpoint_every")
        bad = [f"--{name.replace('_', '-')} {getattr(self, name)}" for name in positive if getattr(self, name) < 1]
        if bad:
            raise ValueError(f"{', '.join(bad)}: must be at least 1")
        if not 0 < self.gamma <= 1 or not 0 <= self.gae_lambda <= 1:
            raise ValueError(f"--gamma {self.gamma} must lie in (0, 1] and --gae-lambda {self.gae_lambda} in [0, 1]")
        if self.exploration_std < 0 or self.latent_penalty < 0 or self.smoothness_penalty < 0:
            raise ValueError("--exploration-std, --latent-penalty and --smoothness-penalty must be >= 0")
        if self.learning_rate <= 0 or not 0 <= self.final_lr_fraction <= 1:
            raise ValueError("--learning-rate must be positive and --final-lr-fraction in [0, 1]")
        if self.residual not in RESIDUALS:
            raise ValueError(f"--residual {self.residual!r}: choose one of {', '.join(RESIDUALS)}")
        if not 0 <= self.prior_kl < float("inf"):
            raise ValueError(f"--prior-kl {self.prior_kl}: must be >= 0 (0: no KL term)")
        if self.minutes < 0 or self.eval_every < 0 or self.threads < 0 or self.stop_after_update < 0:
            raise ValueError("--minutes, --stop-after-update, --eval-every and --threads must be >= 0")
        self.env_option_dict()
        self.env_schedule_dict()

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["hidden_sizes"] = list(self.hidden_sizes)
        d["critic_hidden_sizes"] = list(self.critic_hidden_sizes)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> TrainArgs:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown training argument(s) {unknown}")
        return cls(**d)


def build_parser(description: str | None = None) -> argparse.ArgumentParser:
    """argparse parser with one flag per TrainArgs field, its docstring as help and its default."""
    return dataclass_parser(TrainArgs, description=description, choices={"task": task_choices(), "algo": ALGORITHMS,
                                                                     "residual": RESIDUALS})


def parse_args(argv: list[str] | None = None, description: str | None = None) -> TrainArgs:
    parsed = build_parser(description=description).parse_args(argv)
    return TrainArgs(**vars(parsed))


def format_args(args: TrainArgs) -> str:
    """One line per field, aligned, for the start of a run."""
    d = args.to_dict()
    width = max(len(k) for k in d)
    return "\n".join(f"  {k:<{width}}  {v}" for k, v in d.items())


__all__ = ["TrainArgs", "build_parser", "parse_args", "format_args"]
