"""Build stage 3, policies: one policy per task (``--algo``: PPO, APG, or by default APG for the joystick and PPO
for the rest), each within its share of the budget, judged against the scripted baseline.

Each task trains with ``train_policy.py``'s defaults on the bundle's ``vae.pt`` (its action scale: the latent bound
from the aggregate posterior) for the stage's minutes: the first update measures the environment-steps per second,
and the learning-rate schedule is set to end with the budget. The run folder ``<bundle>/build/<algo>_<task>`` holds the
training checkpoint, so an interrupted build resumes the task. Each task has its own fingerprint (its settings and the
model files, :func:`task_settings`): a task already trained and evaluated with the same one keeps its policy and
figures when the stage reruns (e.g. ``--tasks`` gained a task); the fingerprint holds the reward's foot-slide
definition (``envs.foot_slide.FOOT_SLIDE_DEFINITION``), so a policy trained on another one trains again. Then
``policies.evaluate`` runs the policy and the scripted baseline on ``--eval-episodes`` episodes each; the policy gates
compare them (and the METRICS.md figures against the data's). The policy goes to ``<bundle>/policies/<task>.pt``.

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
    """The stage's settings (each task's own, :func:`task_settings`: a change to any reruns the stage, which then
    keeps the tasks whose settings did not change) and files."""
    settings_ = {"tasks": {task: task_settings(ctx, task) for task in ctx.cfg.task_list}}
    files = [p for p in (ctx.out / "vae.pt", code_prior_path(ctx)) if p is not None]
    return settings_, files


def code_prior_path(ctx) -> Path | None:
    """The bundle's code prior (VQ builds), which the policies steer through; None for a Gaussian build."""
    return ctx.out / "prior.pt" if ctx.cfg.vq else None


def train_task(ctx, task: str, minutes: float, resume: bool = False) -> dict:
    """Train ``task``'s policy for ``minutes`` (``resume``: continue its interrupted run with the same settings) ->
    its training summary."""
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
                     resume=resume and (run_dir / "checkpoint.pt").is_file())
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


# Training arguments that do not change what a policy learns (or that the task settings state on their own).
RUN_ONLY_ARGS = ("task", "character", "vae", "out", "run_dir", "steps", "minutes", "stop_after_update", "env_options",
                 "device", "threads", "seed", "checkpoint_every", "eval_every", "eval_envs", "eval_seconds", "resume",
                 "tensorboard", "progress")
PRIOR_ARGS = ("prior", "prior_kl", "residual")  # a Gaussian build's policies have no code prior


def recipe(train_args: dict, vq: bool) -> dict:
    """The training arguments of ``train_args`` (a ``TrainArgs.to_dict()``) that shape the policy."""
    drop = RUN_ONLY_ARGS + (() if vq else PRIOR_ARGS)
    return {k: v for k, v in train_args.items() if k not in drop}


def default_recipe(task: str, algo: str, vq: bool) -> dict:
    """``train_policy.py``'s defaults for ``task`` with ``algo``, resolved as training resolves them (a new default
    retrains the task's policy)."""
    from policies.train_args import TrainArgs

    args = TrainArgs(task=task, algo=algo)
    args.validate()
    return recipe(args.to_dict(), vq)


def task_settings(ctx, task: str) -> dict:
    """What ``task``'s policy depends on besides the bundle's model files: its own fingerprint (``run``)."""
    from envs.foot_slide import FOOT_SLIDE_DEFINITION

    cfg = ctx.cfg
    algo = cfg.algo_for(task)
    settings_ = {"task": task, "algo": algo, "minutes": round(ctx.budget.policy, 2), "seed": cfg.seed,
                 "device": cfg.device, "options": task_options(task, figures(ctx), cfg.joystick_repertoire),
                 "recipe": default_recipe(task, algo, cfg.vq), "foot_slide": FOOT_SLIDE_DEFINITION}
    return {**settings_, "prior": "prior.pt"} if cfg.vq else settings_


def kept_task(ctx, task: str, print_: str) -> dict | None:
    """The record of ``task`` when its policy was trained and evaluated with this fingerprint and its file is the one
    that run wrote; else None."""
    from common.fingerprint import file_fingerprint

    record = ctx.state.task_record(task)
    path = policy_path(ctx, task)
    if not (record.get("done") and record.get("fingerprint") == print_ and path.is_file()):
        return None
    return record if file_fingerprint(path)["sha256"] == record.get("policy_sha256") else None


def run(ctx):
    from characters.budget import remaining_policy_minutes
    from characters.build_state import fingerprint
    from characters.gates import Gate
    from common.fingerprint import file_fingerprint

    tasks = ctx.cfg.task_list
    files = [p for p in (ctx.out / "vae.pt", code_prior_path(ctx)) if p is not None]
    prints = {task: fingerprint(task_settings(ctx, task), files) for task in tasks}
    kept = {task: kept_task(ctx, task, prints[task]) for task in tasks}
    results, gates = {}, []
    to_train = [task for task in tasks if kept[task] is None]
    for task in tasks:
        if kept[task] is not None:
            ctx.progress.stage("policies", f"{task}: already trained (same model and settings): kept")
            results[task] = kept[task]["result"]
            gates += [Gate(**g) for g in kept[task]["gates"]]
            continue
        k = to_train.index(task)
        minutes = remaining_policy_minutes(ctx.budget, ctx.progress.elapsed_s / 60.0, len(to_train) - k)
        ctx.progress.stage("policies", f"{task}: {ctx.cfg.algo_for(task).upper()} for {minutes:.1f} min")
        record = ctx.state.task_record(task)
        resume = record.get("fingerprint") == prints[task] and not record.get("done")
        ctx.state.set_task_record(task, {"fingerprint": prints[task], "done": False})
        started = time.perf_counter()
        summary = train_task(ctx, task, minutes, resume)
        ctx.progress.figure(f"{task}: evaluating the policy and the scripted baseline ({ctx.cfg.eval_episodes} "
                            "episodes each)")
        trained, scripted = evaluate_task(ctx, task)
        results[task] = {"policy": trained, "scripted": scripted,
                         # The trainer's own minutes (a resumed run's include those before the interruption).
                         "train_minutes": summary.get("train_minutes", (time.perf_counter() - started) / 60.0),
                         "updates": summary.get("update"), "env_steps": summary.get("global_step")}
        task_gates = policy_gates(task, trained, scripted)
        gates += task_gates
        ctx.state.set_task_record(task, {"fingerprint": prints[task], "done": True, "result": results[task],
                                         "gates": [g.as_dict() for g in task_gates],
                                         "policy_sha256": file_fingerprint(policy_path(ctx, task))["sha256"]})
    return results, gates
