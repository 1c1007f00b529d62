"""``python -m characters.build``: any BVH folder in, a playable character bundle out, with a verdict on its quality.

    python -m characters.build BVH_OR_FOLDER... --out characters/NAME [--minutes 40] [--tasks target,joystick]
                               [--clips REGEX] [--manifold gaussian|vq] [--device cpu|cuda] [--resume | --force]
    python play.py --character characters/NAME

Stages, each followed by its quality gates (:mod:`characters.gates`; a failed gate stops the build with the reason,
``--accept-failed-gates`` goes on):

1. ``data``: ``mocap.prepare`` (mirrored where the skeleton pairs left and right); seconds, clips, feet, how much
   nearby poses branch; motion-graph transitions added where the data barely branches (``stage_data``).
2. ``vae``: the Motion VAE, epochs fitted to its share of the budget; evaluated (collapse, random walks,
   held latents, bone lengths, foot sliding and jitter against the data, stuck walks); shipped slim as
   ``vae.pt`` with the latent bound its policies use (``stage_vae``). ``--manifold vq``: a PoseVQVAE (discrete
   codes) instead of the mixture-of-experts Gaussian one.
2b. ``prior`` (``--manifold vq`` only; a Gaussian build has no such stage): the code prior, a transformer over the
   VQ model's codes, within its share of the budget; shipped slim as ``prior.pt`` (``stage_prior``).
3. ``policies``: one policy per task (``--algo``), each with its share of the budget, evaluated against the scripted
   baseline (``stage_policies``); on a VQ model PPO policies that add a learned residual to the prior's logits.
4. ``export``: ONNX graphs of every policy (and of the prior's step), where ``play.py`` looks for them
   (``stage_export``).
5. ``preview``: a headless video of the character (``stage_preview``).
6. ``report``: ``report.html``: training curves, metrics next to the data's and the baselines', frames of the
   preview, every gate (:mod:`characters.report`).

``--minutes`` is the whole wall-clock budget, split by :mod:`characters.budget`. Rerunning the same command
continues where it stopped (Ctrl-C safe): each stage records a fingerprint of its inputs and settings
(:mod:`characters.build_state`); a changed input or flag reruns that stage and those after it. An ``--out`` that
holds a bundle of other inputs is refused unless ``--force``. Everything printed also goes to ``build.log``.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from characters import budget as budgets
from characters.build_state import BuildState, fingerprint
from characters.bundle import MANIFOLDS
from characters.gates import Gate, failed
from characters.progress import BuildProgress
from common.dataclass_cli import dataclass_parser
from common.paths import output_dir

STAGES = ("data", "vae", "prior", "policies", "export", "preview", "report")
VQ_ONLY_STAGES = ("prior",)
DEFAULT_TASKS = "target,joystick"
AUTO_ALGO = {"joystick": "apg"}  # --algo auto on a Gaussian VAE; every other task, and every task on VQ: ppo


@dataclass
class BuildConfig:
    """Every setting of a build (saved in the bundle's build state; the inputs are the positional arguments)."""

    out: str = ""
    """The bundle folder to write (e.g. characters/NAME). Required."""
    name: str = ""
    """Short name of the character (default: the --out folder's name)."""
    minutes: float = 40.0
    """Whole wall-clock budget of the build, split across the stages (characters/budget.py)."""
    policy_minutes: float = 0.0
    """Minutes of training for each policy (0: its share of --minutes). The VAE keeps its share of --minutes, so
    adding tasks to a built character with the same --minutes and this set to the policies' earlier minutes trains
    the new tasks only."""
    tasks: str = DEFAULT_TASKS
    """Comma-separated tasks to train a policy for (target, joystick, path_follow, maze, timed_target)."""
    clips: str = ""
    """Keep only the clips whose name matches this regular expression (default: all)."""
    fps: float = 30.0
    """Frame rate the motion is resampled to."""
    mirror: bool = True
    """Add every clip mirrored left/right (doubles the data; needs left/right joint names)."""
    graph_seconds: float = -1.0
    """Seconds of motion-graph walks to add (-1: automatic, where the data is small or barely branches; 0: none)."""
    styles: str = ""
    """Label each clip with a style by its name: a regular expression whose first group names the style (Bandai-Namco:
    '_([a-z-]+)_[0-9]+$'); the VAE learns the styles, the policies observe them, the app switches them live."""
    joystick_repertoire: bool = False
    """Train the joystick on the data's whole repertoire: speeds from standing to its dash, stops where the data
    stands, strafes (a facing command) where it steps sideways. Measured on Bandai-Namco with 15 styles: APG (--algo
    auto) reaches 12 deg / 0.07 m/s in 19 minutes, PPO 37 deg / 0.51 m/s in 21."""
    algo: str = "auto"
    """How the policies learn: ppo, apg (analytic policy gradients through the VAE's decoder, policies.apg), or auto:
    apg where it was measured ahead of PPO (the joystick, on Bandai-Namco and DeepMimic; README, section 5) and ppo
    for the other tasks."""
    manifold: str = "gaussian"
    """The motion manifold: gaussian (the mixture-of-experts Motion VAE) or vq (a PoseVQVAE of discrete codes, with a
    code prior, a transformer over its codes, trained after it; its policies are PPO policies that add a learned
    residual to the prior's logits, and play.py drives it through the prior)."""
    title: str = ""
    """A human title for the character (default: the name)."""
    licence: str = ""
    """Licence of the motion data, and so of the weights (default: the LICENSE file beside the inputs, if any)."""
    attribution: str = ""
    """Attribution the data's licence asks for (shipped in LICENSE.txt and character.json)."""
    device: str = "cpu"
    """Torch device for training: cpu or cuda."""
    threads: int = 0
    """Torch CPU threads (0: torch's default)."""
    seed: int = 0
    """Seed of every stage."""
    resume: bool = False
    """Continue a build in --out even when its recorded inputs differ (e.g. files were moved)."""
    force: bool = False
    """Overwrite a bundle in --out that was built from other inputs."""
    accept_failed_gates: bool = False
    """Go on past a failed quality gate (the report still shows it failed)."""
    eval_episodes: int = 64
    """Episodes each policy and its scripted baseline are evaluated on."""
    skip_preview: bool = False
    """Do not render the preview video (machines without OpenGL)."""

    def algo_for(self, task: str) -> str:
        """The learning algorithm of ``task``'s policy (``--algo``; auto: apg for the joystick on a Gaussian VAE,
        else ppo: APG differentiates through the decoder's latent, which a VQ model's codes do not have)."""
        if self.algo == "auto":
            return "ppo" if self.vq else AUTO_ALGO.get(task, "ppo")
        return self.algo

    @property
    def vq(self) -> bool:
        return self.manifold == "vq"

    @property
    def stages(self) -> list[str]:
        """The stages this build runs, in order (a Gaussian build has no code prior stage)."""
        return [s for s in STAGES if self.vq or s not in VQ_ONLY_STAGES]

    def check(self) -> None:
        """BuildError naming the flags for settings that cannot work together (before any work)."""
        if self.manifold not in MANIFOLDS:
            raise BuildError(f"--manifold {self.manifold!r}: choose one of {', '.join(MANIFOLDS)}")
        if self.vq and self.algo == "apg":
            raise BuildError("--algo apg cannot train policies for --manifold vq: APG differentiates through the "
                             "decoder's continuous latent and a VQ model takes discrete codes; use --algo ppo or "
                             "--algo auto (ppo for every task on a VQ model)")

    @property
    def task_list(self) -> list[str]:
        from envs.registry import canonical_task

        return [canonical_task(t.strip(), "--tasks") for t in self.tasks.split(",") if t.strip()]


@dataclass
class BuildContext:
    """What every stage reads: the inputs, the settings, where to write, the budget, the progress view."""

    inputs: list[str]
    cfg: BuildConfig
    out: Path
    budget: budgets.Budget
    progress: BuildProgress
    state: BuildState
    results: dict = field(default_factory=dict)  # stage -> its figures, as the later stages need them
    resuming: bool = False  # the current stage was interrupted with these same inputs: continue its checkpoints

    @property
    def work(self) -> Path:
        """Intermediate files (datasets, training checkpoints and logs): ``<bundle>/build``."""
        return self.out / "build"


class BuildError(ValueError):
    """A build that cannot go on; the message says why and what to do."""


def check_out(cfg: BuildConfig, inputs_print: str, state: BuildState) -> None:
    """Refuse an --out that holds a bundle of other inputs (unless --resume / --force)."""
    if state.inputs is None or state.inputs == inputs_print or cfg.resume or cfg.force:
        return
    raise BuildError(f"--out {cfg.out} holds a character built from other inputs; pass --force to replace it, "
                     "--resume to continue it anyway, or choose another --out")


def inputs_fingerprint(inputs: list[str], cfg: BuildConfig) -> str:
    from characters.stage_data import input_files

    return fingerprint({"inputs": sorted(str(Path(i).resolve()) for i in inputs), "clips": cfg.clips},
                       input_files(inputs))


def run_stage(ctx: BuildContext, name: str, module) -> None:
    """Run one stage unless it already finished with the same fingerprint; then its gates."""
    settings, files = module.settings(ctx)
    print_ = fingerprint(settings, files)
    if ctx.state.done(name, print_):
        ctx.results[name] = ctx.state.record(name).get("metrics", {})
        ctx.progress.stage(name, "already done (same inputs and settings): skipped")
        gates = [Gate(**g) for g in ctx.state.record(name).get("gates", [])]
    else:
        ctx.resuming = ctx.state.record(name).get("fingerprint") == print_
        if not ctx.resuming:
            # This stage and every later one (their fingerprints chain) start over: what their earlier runs spent is
            # no longer spent (else a rerun with a changed policy flag would find its budget used up).
            stages = ctx.cfg.stages
            ctx.progress.give_back(ctx.state.forget(stages[stages.index(name):]))
        ctx.state.start(name, print_)
        started = time.perf_counter()
        try:
            metrics, gates = module.run(ctx)
        except BaseException:
            ctx.state.add_seconds(name, time.perf_counter() - started)
            raise
        ctx.results[name] = metrics
        ctx.state.finish(name, time.perf_counter() - started, metrics, [g.as_dict() for g in gates])
    for gate in gates:
        ctx.progress.figure(gate.line())
    stopped = failed(gates)
    if stopped and not ctx.cfg.accept_failed_gates:
        raise BuildError(f"stage {name}: {len(stopped)} quality gate(s) failed: "
                         + "; ".join(f"{g.name} = {g.value} (bar {g.bar}): {g.advice}" for g in stopped)
                         + ". Fix the input, or go on with --accept-failed-gates")


def build(inputs: list[str], cfg: BuildConfig) -> Path:
    """Build the bundle (see the module docstring) -> its folder."""
    from characters import report, stage_data, stage_export, stage_policies, stage_preview, stage_prior, stage_vae

    if not cfg.out:
        raise BuildError("--out characters/NAME is required (the bundle folder to write)")
    if not inputs:
        raise BuildError("give the BVH files or folders to build from (python -m characters.build FOLDER --out ...)")
    cfg.check()
    out = output_dir(cfg.out, "--out")
    cfg.name = cfg.name or out.resolve().name
    tasks = cfg.task_list
    try:
        plan = budgets.split(cfg.minutes, tasks, prior=cfg.vq, policy_minutes=cfg.policy_minutes)
    except ValueError as e:
        raise BuildError(str(e)) from None
    state = BuildState(out / "build")
    inputs_print = inputs_fingerprint(inputs, cfg)
    check_out(cfg, inputs_print, state)
    if state.inputs != inputs_print:
        state.set_inputs(inputs_print)
    progress = BuildProgress(out / "build.log", plan.total, cfg.stages, spent_s=state.spent_seconds())
    ctx = BuildContext(list(inputs), cfg, out, plan, progress, state)
    with progress.captured():
        progress.stage("data", f"building {cfg.name!r} into {out}: {plan.describe(tasks)}")
        modules = {"data": stage_data, "vae": stage_vae, "prior": stage_prior, "policies": stage_policies,
                   "export": stage_export, "preview": stage_preview, "report": report}
        for name in cfg.stages:
            if name == "preview" and cfg.skip_preview:
                continue
            run_stage(ctx, name, modules[name])
        progress.stage("report", f"done in {progress.elapsed_s / 60:.1f} min: play it with "
                                 f"`python play.py --character {out}`; report: {out / 'report.html'}")
    return out


def build_parser() -> argparse.ArgumentParser:
    from policies.train_args import ALGORITHMS

    parser = dataclass_parser(BuildConfig, prog="python -m characters.build",
                              choices={"algo": ("auto", *ALGORITHMS), "manifold": MANIFOLDS},
                              description="Build a playable character bundle from BVH motion capture.")
    parser.add_argument("inputs", nargs="*", metavar="BVH_OR_FOLDER", help="BVH files or folders of them")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = vars(build_parser().parse_args(argv))
    inputs = args.pop("inputs")
    try:
        build(inputs, BuildConfig(**args))
    except KeyboardInterrupt:
        print("characters.build: interrupted; run the same command again to continue where it stopped",
              file=sys.stderr)
        return 130
    except (ValueError, FileNotFoundError, OSError) as e:  # BuildError, CharacterError, PrepareError, BVHError, ...
        print(f"characters.build: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
