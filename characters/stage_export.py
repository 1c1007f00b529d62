"""Build stage 4, export: the bundle's ``character.json`` and ``LICENSE.txt``, and the ONNX graphs of every policy
(decoder, policy, fused controller; checked against torch) written where ``play.py`` and
``controller.make_backend`` look for them (``policies/<task>.pt.onnx/``, :mod:`controller.cache`: keyed on
content, so the app reuses them as they are). A VQ build also records its code prior in ``character.json``
(``"prior": "prior.pt"``) and exports the prior's rollout step where ``controller.prior_session`` looks for it
(``prior.pt.onnx/prior_step.onnx``, checked against torch)."""

from __future__ import annotations

from pathlib import Path

from characters.stage_data import figures

LICENCE_NAMES = ("LICENSE", "LICENSE.txt", "LICENSE.md", "LICENCE", "COPYING")


def settings(ctx) -> tuple[dict, list[Path]]:
    from characters.stage_policies import policy_path

    tasks = ctx.cfg.task_list
    cfg = ctx.cfg
    data = figures(ctx)  # character.json carries them
    files = [ctx.out / "vae.pt", *(policy_path(ctx, t) for t in tasks)]
    if cfg.vq:  # a Gaussian build's fingerprint stays that of builds before the VQ line
        files.append(ctx.out / "prior.pt")
    return ({"tasks": tasks, "name": cfg.name, "title": cfg.title, "licence": cfg.licence,
             "attribution": cfg.attribution, "speeds_mps": data.get("speeds_mps"),
             "figures_version": data.get("figures_version")}, files)


def data_licence_file(inputs: list[str]) -> Path | None:
    """A licence file in (or beside) an input folder, e.g. Bandai-Namco's ``LICENSE``."""
    for item in inputs:
        folder = Path(item) if Path(item).is_dir() else Path(item).parent
        for name in LICENCE_NAMES:
            if (folder / name).is_file():
                return folder / name
    return None


def write_licence(ctx) -> dict:
    """LICENSE.txt of the weights: they carry the data's licence (and its attribution) -> the licence entry."""
    cfg = ctx.cfg
    found = data_licence_file(ctx.inputs)
    named = next((line.strip() for line in found.read_text(errors="replace").splitlines() if line.strip()), "") \
        if found else ""
    licence = cfg.licence or (f"{named} (the motion data's {found.name}, copied below)" if found
                              else "unknown: give --licence (the weights carry the motion data's licence)")
    lines = [f"{cfg.title or cfg.name}: Motion VAE and policy weights", "",
             f"The weights were trained on motion capture and carry its licence: {licence}.", ""]
    if cfg.attribution:
        lines += [f"Attribution: {cfg.attribution}", ""]
    if found is not None:
        lines += [f"---- {found.name} of the motion data ----", found.read_text(errors="replace")]
    from common.atomic import atomic_write

    with atomic_write(ctx.out / "LICENSE.txt", "w") as f:
        f.write("\n".join(lines) + "\n")
    return {"weights": licence, "data": licence, "attribution": cfg.attribution, "file": "LICENSE.txt"}


def write_meta(ctx) -> None:
    """``character.json`` from the build's figures (see :mod:`characters.bundle`)."""
    from characters.bundle import write_character
    from characters.stage_policies import policy_path
    from vae.checkpoint import load_manifold

    cfg, data, vae = ctx.cfg, figures(ctx), ctx.results["vae"]
    model = load_manifold(ctx.out / "vae.pt")
    tasks = {}
    for task in cfg.task_list:
        measured = ctx.results.get("policies", {}).get(task, {})
        tasks[task] = {"policy": str(policy_path(ctx, task).relative_to(ctx.out)),
                       "train_minutes": round(measured.get("train_minutes", 0.0), 2),
                       "evaluation": {k: v for k, v in measured.get("policy", {}).items()
                                      if isinstance(v, (int, float)) and not isinstance(v, bool)}}
    code_prior = {"prior": "prior.pt"} if model.discrete and (ctx.out / "prior.pt").is_file() else {}
    build = {"minutes": cfg.minutes, "vae_epochs": vae.get("epochs"),
             "vae_minutes": round(vae.get("train_minutes", 0.0), 2)}
    if code_prior:
        prior = ctx.results.get("prior", {})
        build.update({"prior_epochs": prior.get("epochs"), "prior_minutes": round(prior.get("train_minutes", 0.0), 2)})
    write_character(ctx.out, {
        "name": cfg.name,
        "title": cfg.title or cfg.name,
        "manifold": "vq" if model.discrete else "gaussian",
        "vae": "vae.pt",
        **code_prior,
        "action_scale": vae.get("action_scale"),
        "fps": float(model.fps),
        "skeleton": {"joints": int(model.skeleton.num_joints), "joint_names": list(model.skeleton.joint_names)},
        "speed_range_mps": data.get("speed_range_mps"),
        "speeds_mps": data.get("speeds_mps"),
        "styles": list(model.style_names),
        "tasks": tasks,
        "data": {"inputs": [Path(i).name for i in ctx.inputs], "clips": data.get("clips"),
                 "seconds": round(data.get("seconds", 0.0), 1), "mirror": cfg.mirror,
                 "graph_seconds": data.get("graph_seconds", 0.0)},
        "licence": write_licence(ctx),
        "build": build,
    })


def run(ctx):
    from characters.stage_policies import policy_path
    from controller.cache import cached_export
    from controller.export import read_manifest

    write_meta(ctx)
    results = {}
    for task in ctx.cfg.task_list:
        ctx.progress.stage("export", f"{task}: ONNX graphs")
        handle = cached_export(ctx.out / "vae.pt", policy_path(ctx, task))
        manifest = read_manifest(handle.path)
        timing = manifest.get("timing") or {}
        results[task] = {"parity_max_error": max(manifest["parity_max_error"].values()),
                         "batch1_fused_ms": (timing.get("b1") or {}).get("fused_ms")}
        ctx.progress.figure(f"{task}: largest ONNX / torch difference {results[task]['parity_max_error']:.2g}, "
                            f"policy + decoder at batch 1 {results[task]['batch1_fused_ms']} ms")
    if ctx.cfg.vq:
        results["code_prior"] = export_prior(ctx)
    return results, []


def export_prior(ctx) -> dict:
    """The code prior's step graph beside ``prior.pt`` -> its parity and batch-1 time."""
    from controller.cache import cached_prior_export
    from controller.export import read_prior_manifest

    ctx.progress.stage("export", "code prior: ONNX step graph")
    handle = cached_prior_export(ctx.out / "vae.pt", ctx.out / "prior.pt")
    manifest = read_prior_manifest(handle.path)
    result = {"parity_max_error": manifest["parity_max_error"], "step_context": manifest["step_context"],
              "batch1_ms": (manifest.get("timing") or {}).get("b1_ms")}
    ctx.progress.figure(f"code prior: largest ONNX / torch difference {result['parity_max_error']:.2g}, one step "
                        f"({result['step_context']} pairs) at batch 1 {result['batch1_ms']} ms")
    return result
