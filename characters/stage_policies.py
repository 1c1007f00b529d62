"""Build stage 3, policies: one policy per task (``--algo``: PPO, APG, or by default APG for the joystick and PPO
for the rest), each within its share of the budget, judged against the scripted baseline.

Each task trains with ``train_policy.py``'s defaults on the bundle's ``vae.pt`` (its action scale: the latent bound
from the aggregate posterior) for the stage's minutes: the first update measures the environment-steps per second,
and the learning-rate schedule is set to end with the budget. The run folder ``<bundle>/build/<algo>_<task>`` holds the
training checkpoint, so an interrupted build resumes the task. Then ``policies.evaluate`` runs the policy and the
scripted baseline on ``--eval-episodes`` episodes each; the policy gates compare them (and the METRICS.md figures
against the data's). The policy goes to ``<bundle>/policies/<task>.pt``.

A VQ build (``--manifold vq``) trains every task with PPO through the bundle's code prior (``prior.pt``, from the
prior stage; ``TrainArgs.prior``): prior-residual policies, whose logits are the prior's next-code log-probabilities
plus a learned residual. The environments of the evaluation keep the prior's context too (``code_prior``), so the
policy sees the log-probabilities it was trained on and the scripted baseline draws its candidates from the prior.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from characters.gates import policy_gates
from characters.stage_data import figures

PLANNED_STEPS_PER_S = 15000  # until the first update has measured this machine


def policy_path(ctx, task: str) -> Path:
    return ctx.out / "policies" / f"{task}.pt"


STAND_SHARE = 0.02  # data with this share of standing frames can be asked to stand
SIDEWAYS_SHARE = 0.05  # data with this share of sideways / backward travel can be asked to strafe
STAND_PROBABILITY = 0.2
STRAFE_PROBABILITY = 0.3


def task_options(task: str, data: dict, repertoire: bool = True) -> dict:
    """Environment options of ``task`` fitted to the data (the stage data's figures): with ``repertoire`` (the
    build's ``--joystick-repertoire``) the joystick commands speeds from standing to the data's dash, standing where
    the data stands, and strafing (a facing command) where the data steps sideways or back. Otherwise, and for
    other tasks: their defaults."""
    if task != "joystick" or not repertoire:
        return {}
    options = {"min_speed": 0.0, "max_speed": float((data.get("speeds_mps") or {}).get("dash") or 2.0)}
    if data.get("standing_share", 0.0) >= STAND_SHARE:
        options["stand_probability"] = STAND_PROBABILITY
    if data.get("sideways_share", 0.0) >= SIDEWAYS_SHARE:
        options.update(facing_command=True, strafe_probability=STRAFE_PROBABILITY)
        if data.get("sideways_speed_mps"):
            options["strafe_max_speed"] = float(data["sideways_speed_mps"])
    return options


def settings(ctx) -> tuple[dict, list[Path]]:
    cfg = ctx.cfg
    data = figures(ctx)
    settings_ = {"tasks": cfg.task_list, "algo": {t: cfg.algo_for(t) for t in cfg.task_list},
                 "minutes": round(ctx.budget.policy, 2), "seed": cfg.seed, "device": cfg.device,
                 "options": {t: task_options(t, data, cfg.joystick_repertoire) for t in cfg.task_list}}
    if not cfg.vq:  # a Gaussian build's fingerprint stays that of builds before the VQ line
        return settings_, [ctx.out / "vae.pt"]
    return {**settings_, "prior": "prior.pt"}, [ctx.out / "vae.pt", code_prior_path(ctx)]


def code_prior_path(ctx) -> Path | None:
    """The bundle's code prior (VQ builds), which the policies steer through; None for a Gaussian build."""
    return ctx.out / "prior.pt" if ctx.cfg.vq else None


def train_task(ctx, task: str, minutes: float) -> dict:
    """Train (or resume) ``task``'s policy for ``minutes`` -> its training summary."""
    from policies.train import HEADLINE, Trainer
    from policies.train_args import TrainArgs

    cfg, progress = ctx.cfg, ctx.progress
    algo = cfg.algo_for(task)
    run_dir = ctx.work / f"{algo}_{task}"
    options = task_options(task, figures(ctx), cfg.joystick_repertoire)
    if options:
        progress.figure(f"{task}: options from the data: {json.dumps(options)}")
    prior = code_prior_path(ctx)
    args = TrainArgs(task=task, algo=algo, vae=str(ctx.out / "vae.pt"), out=str(policy_path(ctx, task)),
                     prior=None if prior is None else str(prior), run_dir=str(run_dir),
                     env_options=json.dumps(options),
                     minutes=minutes, steps=int(PLANNED_STEPS_PER_S * 60 * minutes), seed=cfg.seed,
                     device=cfg.device, threads=cfg.threads, progress=False, tensorboard=False, eval_every=0,
                     resume=ctx.resuming and (run_dir / "checkpoint.pt").is_file())
    if args.resume:
        from policies.train import load_train_state, resumed_args

        args, _ = resumed_args(args, load_train_state(run_dir / "checkpoint.pt")["args"])
        progress.figure(f"{task}: resuming the interrupted training")
    trainer = Trainer(args)
    if args.resume:
        trainer.load_state(load_train_state(run_dir / "checkpoint.pt"))
    else:
        trainer.start()
    def on_update(metrics: dict) -> None:
        if metrics["update"] == 1:
            # The learning rate decays over --steps: make it end with the budget at the measured speed.
            trainer.args.steps = int(metrics["env_steps_per_s"] * 60.0 * minutes)
        if metrics["update"] % 20 == 0:
            key = HEADLINE.get(task)
            figure = f", {key} {metrics[key]:.3g}" if key in metrics else ""
            progress.figure(f"{task}: update {metrics['update']}, {metrics['minutes']:.1f} of {minutes:.1f} min, "
                            f"return {metrics.get('episode_return', float('nan')):.3g}{figure}")

    trainer.on_update = on_update
    return trainer.run()


def evaluate_task(ctx, task: str) -> tuple[dict, dict]:
    """(policy figures, scripted baseline figures) of ``policies.evaluate`` on EVAL_EPISODES episodes."""
    from policies.checkpoint import load_policy
    from policies.controllers import PolicyController, SamplingController
    from policies.evaluate import data_quality, evaluate
    from vae.checkpoint import load_manifold

    policy = load_policy(policy_path(ctx, task))
    manifold = load_manifold(ctx.out / "vae.pt")
    episodes = ctx.cfg.eval_episodes
    options = task_options(task, figures(ctx), ctx.cfg.joystick_repertoire)
    if code_prior_path(ctx) is not None:
        from policies.checkpoint import check_prior_matches
        from vae.prior import load_prior

        options["code_prior"] = load_prior(code_prior_path(ctx), manifold)
        check_prior_matches(policy, options["code_prior"])
    common = {"task": task, "vae": manifold, "episodes": episodes, "seed": ctx.cfg.seed, "batch_size": episodes,
              "action_scale": policy.action_scale, "env_options": options}
    trained = evaluate(lambda env: PolicyController(policy), **common)
    scripted = evaluate(lambda env: SamplingController.for_env(env, seed=ctx.cfg.seed), **common)
    quality = data_quality(manifold)
    return {**trained, **quality}, {**scripted, **quality}


def run(ctx):
    from characters.budget import remaining_policy_minutes

    tasks = ctx.cfg.task_list
    results, gates = {}, []
    for k, task in enumerate(tasks):
        minutes = remaining_policy_minutes(ctx.budget, ctx.progress.elapsed_s / 60.0, len(tasks) - k)
        ctx.progress.stage("policies", f"{task}: {ctx.cfg.algo_for(task).upper()} for {minutes:.1f} min")
        started = time.perf_counter()
        summary = train_task(ctx, task, minutes)
        ctx.progress.figure(f"{task}: evaluating the policy and the scripted baseline ({ctx.cfg.eval_episodes} "
                            "episodes each)")
        trained, scripted = evaluate_task(ctx, task)
        results[task] = {"policy": trained, "scripted": scripted,
                         "train_minutes": (time.perf_counter() - started) / 60.0,
                         "updates": summary.get("update"), "env_steps": summary.get("global_step")}
        gates += policy_gates(task, trained, scripted)
    return results, gates
