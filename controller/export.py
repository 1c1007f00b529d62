"""Export a motion manifold (and optionally a policy) to ONNX graphs that work on raw frames.

    python -m controller.export --vae CKPT [--policy POLICY] [--action-scale S] --out DIR
    python -m controller.export --policy POLICY --out DIR          # the VAE the policy was trained with
    python -m controller.export --character NAME [--task TASK] --out DIR   # a bundle: DIR/<task>/ per policy
                                                                            # (and DIR/prior/ for a VQ one's prior)

Writes into DIR:

* ``decoder.onnx``: (``z`` (B, Z) float32 — ``code`` (B,) int64 for a VQ manifold —, ``cond_raw`` (B, C*D)
  float32, and for a model with styles ``style`` (B, S) float32 blend weights) -> ``next_raw`` (B, D): normalise,
  decode (the fast mixture formulation), denormalise the first future frame (controller.graphs.DecoderGraph).
* with a policy: ``policy.onnx``: ``obs_raw`` (B, O) -> ``action`` (B, A) float32 | (B,) int64, and the fused
  ``controller.onnx``: (``obs_raw``, ``cond_raw``) -> (``next_raw``, ``action``), which scales Gaussian actions
  by ``action_scale`` before decoding.
* ``manifest.json`` (written last, atomically; removed first, so a half-finished export has none): format,
  graph files with input/output names, shapes and dtypes, frame/latent sizes, discrete, action scale, source
  fingerprints (checkpoint sha256 and size, weights hash; no paths or times), opset, torch/onnx/onnxruntime versions, the
  parity error of every graph, and with a policy the fused-vs-separate timing at batch 1 and 256 and the
  faster choice per batch size (``timing.choice``), which the runtime follows.

A VQ model's code prior (:mod:`vae.prior`) is exported by :func:`export_prior_onnx` into a folder of its own:

* ``prior_step.onnx``: (``codes`` (B, W') int64 in [0, K] (K: PAD), ``cond_norm`` (B, W', C*D) float32 normalised
  condition windows[, ``style`` (B, S) float32]) -> ``logits`` (B, K): one rollout step, ``CodePrior.step_logits`` on
  the last W' = ``step_context`` pairs. Unlike the graphs above it takes normalised windows, because that is what the
  environments keep in a prior's context (``envs.motion_core``'s ``prior_conds``): de-normalising them for a
  raw-input graph (``vae.prior_onnx``) and normalising them again inside loses precision on features of tiny std
  (a std of 1e-6 turns float32 rounding into errors of 0.1).
* ``manifest.json`` (format ``mvae-onnx-prior-export``): the graph's signature, the prior's config and
  ``step_context``, source fingerprints of the VQ model and the prior, parity, and the step's time at batch 1.

Every graph is exported with a batch of 2 and a dynamic batch axis (a batch-1 example can freeze it), checked
with ``onnx.checker``, checked to have a symbolic batch dimension, and run once in ONNX Runtime against torch
(batches 1 and 3): the export fails if they differ by more than 1e-4 (relative to the output scale beyond 1).
Exports are deterministic: the same weights give byte-identical graphs.
"""

from __future__ import annotations

import argparse
import copy
import io
import json
import statistics
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from common.atomic import atomic_write
from common.paths import output_dir
from controller.graphs import ControllerGraph, DecoderGraph, PolicyGraph
from controller.sessions import DEFAULT_THREADS, open_session
from controller.sources import resolve_policy, resolve_vae

FORMAT = "mvae-onnx-export"
VERSION = 2  # 2: the decoder graphs end in raw units (denormalisation folded in); older exports are made again
OPSET = 17
PARITY_TOL = 1e-4
MANIFEST = "manifest.json"
FILES = {"decoder": "decoder.onnx", "policy": "policy.onnx", "controller": "controller.onnx"}
PRIOR_FORMAT = "mvae-onnx-prior-export"
PRIOR_FILES = {"prior_step": "prior_step.onnx"}
EXPORTER = "torch.onnx.export (TorchScript tracer, dynamo=False)"
TIMING_BATCHES = (1, 256)


# ---- files ------------------------------------------------------------------------------------------
def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` all at once or not at all."""
    with atomic_write(path) as f:
        f.write(data)


def read_manifest(directory, kind: str = FORMAT) -> dict | None:
    """The manifest of an export folder of ``kind`` (a model's graphs, or ``PRIOR_FORMAT``: a code prior's step), or
    None when there is none (or it is not one of ours)."""
    path = Path(directory) / MANIFEST
    if not path.is_file():
        return None
    try:
        manifest = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    if not isinstance(manifest, dict) or manifest.get("format") != kind or manifest.get("version") != VERSION:
        return None
    return manifest


# ---- one graph --------------------------------------------------------------------------------------
def export_graph(module: torch.nn.Module, args: tuple, input_names: list[str], output_names: list[str],
                 opset: int = OPSET) -> bytes:
    """Trace ``module`` on ``args`` (batch 2) into ONNX bytes with a dynamic ``batch`` axis on every tensor."""
    dynamic = {name: {0: "batch"} for name in (*input_names, *output_names)}
    buffer = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        # The tracer warns about the legacy exporter and about Python values frozen into the trace; our graphs
        # have no data-dependent branches, and the parity check below would catch a frozen one.
        warnings.simplefilter("ignore", category=DeprecationWarning)
        warnings.simplefilter("ignore", category=FutureWarning)
        warnings.simplefilter("ignore", category=torch.jit.TracerWarning)
        kwargs = dict(input_names=input_names, output_names=output_names, dynamic_axes=dynamic,
                      opset_version=opset, do_constant_folding=True, export_params=True)
        try:
            torch.onnx.export(module, args, buffer, dynamo=False, **kwargs)
        except TypeError:  # torch without the dynamo switch: the TorchScript exporter is the only one
            torch.onnx.export(module, args, buffer, **kwargs)
        outputs = module(*args)
    outputs = outputs if isinstance(outputs, tuple) else (outputs,)
    return _fix_output_dims(buffer.getvalue(), [tuple(o.shape[1:]) for o in outputs])


def _fix_output_dims(data: bytes, feature_shapes: list[tuple[int, ...]]) -> bytes:
    """Write the known non-batch output sizes into the graph (the tracer leaves sliced sizes symbolic)."""
    import onnx

    model = onnx.load_from_string(data)
    for value, shape in zip(model.graph.output, feature_shapes, strict=True):
        dims = value.type.tensor_type.shape.dim
        for dim, size in zip(dims[1:], shape, strict=True):
            dim.Clear()
            dim.dim_value = size
    return model.SerializeToString()


_DTYPES = {1: "float32", 7: "int64", 11: "float64", 6: "int32", 9: "bool"}


def graph_signature(data: bytes, what: str) -> dict:
    """Check the model with onnx.checker and describe its inputs/outputs; the batch axis must be symbolic."""
    import onnx

    model = onnx.load_from_string(data)
    onnx.checker.check_model(model, full_check=True)

    def describe(values):
        out = []
        for v in values:
            dims = [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim]
            if not dims or not isinstance(dims[0], str):
                raise RuntimeError(f"{what}: the batch axis of {v.name!r} was frozen to {dims[:1]} by the tracer; "
                                   "export with a batch of 2 and dynamic axes")
            out.append({"name": v.name, "shape": dims,
                        "dtype": _DTYPES.get(v.type.tensor_type.elem_type, str(v.type.tensor_type.elem_type))})
        return out

    return {"inputs": describe(model.graph.input), "outputs": describe(model.graph.output)}


# ---- example inputs ---------------------------------------------------------------------------------
def example_inputs(manifold, batch: int, generator: torch.Generator, obs_size: int | None = None) -> dict:
    """Realistic raw inputs: condition frames around the data mean, prior latents/codes, unit observations."""
    c = manifold.num_condition_frames
    mean = manifold.data_mean.detach().cpu().float().repeat(c)
    std = manifold.data_std.detach().cpu().float().repeat(c)
    cond = mean + std * torch.randn(batch, c * manifold.frame_size, generator=generator)  # (B, C*D)
    if manifold.discrete:
        action = torch.randint(int(manifold.num_codes), (batch,), generator=generator)  # (B,)
    else:
        action = torch.randn(batch, manifold.latent_size, generator=generator)  # (B, Z)
    inputs = {"action": action, "cond_raw": cond}
    if getattr(manifold, "num_styles", 0):
        weights = torch.rand(batch, manifold.num_styles, generator=generator) ** 4  # (B, S) mostly one style
        inputs["style"] = weights / weights.sum(dim=1, keepdim=True)
    if obs_size is not None:
        inputs["obs_raw"] = torch.randn(batch, obs_size, generator=generator)
    return inputs


def _max_error(ort_out: np.ndarray, torch_out: torch.Tensor) -> float:
    expected = torch_out.detach().cpu().numpy()
    if expected.dtype.kind in "iu":
        return float((ort_out != expected).any())
    scale = max(1.0, float(np.abs(expected).max()))
    return float(np.abs(ort_out - expected).max()) / scale


def _median_ms(fn, calls: int) -> float:
    times = []
    for _ in range(calls):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1e3)
    return statistics.median(times)


def time_fused_vs_separate(out_dir: Path, manifold, obs_size: int, action_scale: float | None,
                           generator: torch.Generator, threads: int = DEFAULT_THREADS) -> dict:
    """Median ms per frame at batch 1 and 256: policy.onnx then decoder.onnx (two sessions) vs controller.onnx."""
    decoder = open_session(out_dir / FILES["decoder"], "cpu", threads)
    policy = open_session(out_dir / FILES["policy"], "cpu", threads)
    fused = open_session(out_dir / FILES["controller"], "cpu", threads)
    latent_name = decoder.get_inputs()[0].name
    result: dict = {"provider": "CPUExecutionProvider", "threads": threads, "choice": {}}
    for batch in TIMING_BATCHES:
        x = example_inputs(manifold, batch, generator, obs_size)
        obs, cond = x["obs_raw"].numpy(), x["cond_raw"].numpy()
        styles = {"style": x["style"].numpy()} if "style" in x else {}

        def separate(obs=obs, cond=cond, styles=styles):
            action = policy.run(None, {"obs_raw": obs})[0]
            latent = action if action_scale is None else action * np.float32(action_scale)
            return decoder.run(None, {latent_name: latent, "cond_raw": cond, **styles})

        def together(obs=obs, cond=cond, styles=styles):
            return fused.run(None, {"obs_raw": obs, "cond_raw": cond, **styles})

        calls = 60 if batch == 1 else 4
        runs = {"separate": [], "fused": []}
        for fn in (separate, together):
            fn()  # warm-up
        for _ in range(5):  # interleaved, so background load hits both alike
            runs["separate"].append(_median_ms(separate, calls))
            runs["fused"].append(_median_ms(together, calls))
        sep, fus = statistics.median(runs["separate"]), statistics.median(runs["fused"])
        result[f"b{batch}"] = {"separate_ms": round(sep, 4), "fused_ms": round(fus, 4)}
        result["choice"][f"b{batch}"] = "fused" if fus <= sep else "separate"
    return result


# ---- the whole export -------------------------------------------------------------------------------
def _versions() -> dict:
    import onnx

    versions = {"torch": torch.__version__, "onnx": onnx.__version__}
    try:
        import onnxruntime

        versions["onnxruntime"] = onnxruntime.__version__
    except ImportError:
        versions["onnxruntime"] = None
    return versions


def export_onnx(vae, out_dir, policy=None, *, action_scale: float | None = None, opset: int = OPSET,
                timing: bool = True, seed: int = 0) -> dict:
    """Export ``vae`` (checkpoint path or manifold) [+ ``policy`` (path or module)] into ``out_dir``.

    Returns the manifest (also written to ``out_dir/manifest.json``). Raises FileNotFoundError / ValueError /
    ImportError / TypeError with a message naming the bad input, RuntimeError if a graph fails its checks.
    Modules passed in are traced in eval mode and handed back in the train/eval mode they came in.
    """
    modes = [(m, m.training) for m in (vae, policy) if isinstance(m, torch.nn.Module)]
    try:
        return _export(vae, Path(out_dir), policy, action_scale, opset, timing, seed)
    finally:
        for module, training in modes:
            module.train(training)


def _on_cpu(module: torch.nn.Module) -> torch.nn.Module:
    """The module in eval mode on the CPU (a copy when it lives elsewhere; the traced graph is the same)."""
    if any(t.device.type != "cpu" for t in (*module.parameters(), *module.buffers())):
        module = copy.deepcopy(module).cpu()
    return module.eval()


def _export(vae, out_dir: Path, policy, action_scale, opset, timing, seed) -> dict:
    vae_src = resolve_vae(vae)
    manifold = _on_cpu(vae_src.module)
    pol_src, scale = (None, None) if policy is None else resolve_policy(policy, manifold, action_scale)
    pol_module = None if pol_src is None else _on_cpu(pol_src.module)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / MANIFEST).unlink(missing_ok=True)

    generator = torch.Generator().manual_seed(seed)
    latent_name = "code" if manifold.discrete else "z"
    obs_size = None if pol_src is None else int(pol_module.obs_size)
    example = example_inputs(manifold, 2, generator, obs_size)
    style = ["style"] if "style" in example else []  # models with styles take their blend weights
    graphs: dict[str, tuple] = {
        "decoder": (DecoderGraph(manifold), tuple(example[n] for n in ["action", "cond_raw", *style]),
                    [latent_name, "cond_raw", *style], ["next_raw"]),
    }
    if pol_module is not None:
        graphs["policy"] = (PolicyGraph(pol_module), (example["obs_raw"],), ["obs_raw"], ["action"])
        graphs["controller"] = (ControllerGraph(pol_module, manifold, scale),
                                tuple(example[n] for n in ["obs_raw", "cond_raw", *style]),
                                ["obs_raw", "cond_raw", *style], ["next_raw", "action"])

    for name, file in FILES.items():  # graphs of an earlier export that this one does not make
        if name not in graphs:
            (out_dir / file).unlink(missing_ok=True)
    entries, parity = {}, {}
    for name, (module, args, inputs, outputs) in graphs.items():
        module.eval()
        data = export_graph(module, args, inputs, outputs, opset)
        entry = {"file": FILES[name], **graph_signature(data, f"{out_dir / FILES[name]}")}
        write_atomic(out_dir / FILES[name], data)
        session = open_session(out_dir / FILES[name], "cpu")
        worst = 0.0
        for batch in (1, 3):
            x = example_inputs(manifold, batch, generator, obs_size)
            feed_args = [x["action"] if n == latent_name else x[n] for n in inputs]
            with torch.no_grad():
                expected = module(*feed_args)
            expected = expected if isinstance(expected, tuple) else (expected,)
            got = session.run(outputs, {n: a.numpy() for n, a in zip(inputs, feed_args, strict=True)})
            worst = max(worst, *(_max_error(g, e) for g, e in zip(got, expected, strict=True)))
        if not worst <= PARITY_TOL:
            raise RuntimeError(f"{out_dir / FILES[name]}: ONNX Runtime differs from torch by {worst:.3g} "
                               f"(> {PARITY_TOL}); the export is wrong")
        entries[name], parity[name] = entry, worst

    config = getattr(manifold, "config", None)
    manifest = {
        "format": FORMAT,
        "version": VERSION,
        "files": {name: FILES[name] for name in graphs},
        "graphs": entries,
        "model": getattr(config, "model", None),
        "frame_size": int(manifold.frame_size),
        "latent_size": int(manifold.latent_size),
        "num_condition_frames": int(manifold.num_condition_frames),
        "discrete": bool(manifold.discrete),
        "num_codes": None if manifold.num_codes is None else int(manifold.num_codes),
        "latent_input": latent_name,
        "num_styles": int(getattr(manifold, "num_styles", 0)),
        "style_names": list(getattr(manifold, "style_names", []) or []),
        "policy": None if pol_src is None else {
            "obs_size": obs_size,
            "action_size": None if manifold.discrete else int(pol_src.module.action_size),
            "task": getattr(pol_src.module, "task", None),
        },
        "action_scale": scale,
        "sources": {
            "vae": {**vae_src.describe(), "dataset_fingerprint": getattr(manifold, "dataset_fingerprint", None)},
            "policy": None if pol_src is None else {
                **pol_src.describe(), "vae_fingerprint": getattr(pol_src.module, "vae_fingerprint", None)},
        },
        "opset": opset,
        "exporter": EXPORTER,
        "versions": _versions(),
        "parity_max_error": parity,
        "timing": None,
    }
    if pol_src is not None and timing:
        manifest["timing"] = time_fused_vs_separate(out_dir, manifold, obs_size, scale, generator)
    write_atomic(out_dir / MANIFEST, (json.dumps(manifest, indent=2) + "\n").encode())
    return manifest


# ---- the code prior ---------------------------------------------------------------------------------------
def read_prior_manifest(directory) -> dict | None:
    """The manifest of a prior export folder, or None when there is none (or it is not one of ours)."""
    return read_manifest(directory, PRIOR_FORMAT)


def prior_step_inputs(prior, batch: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
    """Inputs of one prior step: codes (PAD included), normalised windows, blend weights of mostly one style."""
    cfg = prior.config
    w = prior.step_context
    inputs = {"codes": torch.randint(cfg.num_codes + 1, (batch, w), generator=generator),  # (B, W')
              "cond_norm": torch.randn(batch, w, cfg.cond_size, generator=generator)}  # (B, W', C*D)
    if cfg.num_styles:
        weights = torch.rand(batch, cfg.num_styles, generator=generator) ** 4  # (B, S)
        inputs["style"] = weights / weights.sum(dim=1, keepdim=True)
    return inputs


def export_prior_onnx(vae, prior, out_dir, *, opset: int = OPSET, timing: bool = True, seed: int = 0) -> dict:
    """Export the code ``prior`` (a prior file or a CodePrior) of the VQ model ``vae`` (checkpoint path or manifold)
    into ``out_dir`` (see the module docstring) -> the manifest. ValueError for a Gaussian model or a prior of another
    VQ model, RuntimeError when ONNX Runtime differs from ``CodePrior.step_logits`` by more than ``PARITY_TOL``."""
    from controller.prior_session import resolve_prior
    from vae.prior_onnx import PriorStepGraph

    out_dir = Path(out_dir)
    vae_src = resolve_vae(vae)
    manifold = _on_cpu(vae_src.module)
    prior_src = resolve_prior(prior, manifold)
    module = copy.deepcopy(prior_src.module).cpu().eval()  # the caller's prior keeps its device and mode
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / MANIFEST).unlink(missing_ok=True)

    graph = PriorStepGraph(module, manifold).eval()
    # Identity statistics: the graph takes the normalised windows the environments keep (module docstring).
    graph.cond_mean.zero_()
    graph.cond_std.fill_(1.0)
    generator = torch.Generator().manual_seed(seed)
    example = prior_step_inputs(module, 2, generator)
    names = list(example)
    names[1] = "cond_norm"
    path = out_dir / PRIOR_FILES["prior_step"]
    data = export_graph(graph, tuple(example.values()), names, ["logits"], opset)
    signature = graph_signature(data, str(path))
    write_atomic(path, data)
    session = open_session(path, "cpu")
    worst = 0.0
    for batch in (1, 3):
        x = prior_step_inputs(module, batch, generator)
        with torch.no_grad():
            expected = module.step_logits(*x.values())  # (B, K)
        got = session.run(["logits"], {n: t.numpy() for n, t in zip(names, x.values(), strict=True)})[0]
        worst = max(worst, _max_error(got, expected))
    if not worst <= PARITY_TOL:
        raise RuntimeError(f"{path}: ONNX Runtime differs from CodePrior.step_logits by {worst:.3g} (> {PARITY_TOL}); "
                           "the export is wrong")
    manifest = {
        "format": PRIOR_FORMAT,
        "version": VERSION,
        "files": dict(PRIOR_FILES),
        "graph": signature,
        "config": module.config.to_dict(),
        "step_context": int(module.step_context),
        "style_names": list(module.style_names),
        "sources": {"vae": vae_src.describe(), "prior": prior_src.describe()},
        "opset": opset,
        "exporter": EXPORTER,
        "versions": _versions(),
        "parity_max_error": worst,
        "timing": None,
    }
    if timing:
        feed = {n: t.numpy() for n, t in zip(names, prior_step_inputs(module, 1, generator).values(), strict=True)}
        session.run(None, feed)  # warm-up
        manifest["timing"] = {"b1_ms": round(statistics.median(
            _median_ms(lambda: session.run(None, feed), 40) for _ in range(3)), 4)}
    write_atomic(out_dir / MANIFEST, (json.dumps(manifest, indent=2) + "\n").encode())
    return manifest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m controller.export", description=__doc__.splitlines()[0])
    parser.add_argument("--vae", help="Motion VAE checkpoint (default: the policy's own, or --character's)")
    parser.add_argument("--policy", help="policy checkpoint (from the policies package); adds policy.onnx and "
                                         "the fused controller.onnx")
    parser.add_argument("--character", help="character bundle: its VAE and policies (one export per task)")
    parser.add_argument("--task", help="with --character: only this task's policy")
    parser.add_argument("--action-scale", type=float, default=None,
                        help="latent = action * scale for Gaussian policies (default: the policy checkpoint's)")
    parser.add_argument("--out", required=True, help="folder to write the graphs and manifest.json into")
    parser.add_argument("--opset", type=int, default=OPSET, help=f"ONNX opset (default {OPSET})")
    parser.add_argument("--no-timing", action="store_true", help="skip the fused-vs-separate timing")
    args = parser.parse_args(argv)
    try:
        output_dir(args.out, "--out")
        jobs = export_jobs(args)
        for vae, policy, out in jobs:
            manifest = export_onnx(vae, out, policy, action_scale=args.action_scale, opset=args.opset,
                                   timing=not args.no_timing)
            print_manifest(manifest, out)
        prior = bundle_prior(args)
        if prior is not None:
            out = Path(args.out) / "prior"
            manifest = export_prior_onnx(args.vae or prior[0], prior[1], out, opset=args.opset,
                                         timing=not args.no_timing)
            print(f"{out / manifest['files']['prior_step']}: code prior step (W' = {manifest['step_context']}); "
                  f"parity {manifest['parity_max_error']:.2g}")
    except (FileNotFoundError, ValueError, TypeError, ImportError, RuntimeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


def export_jobs(args) -> list[tuple]:
    """(vae, policy, out folder) per export the command line asks for."""
    if args.character is not None:
        from characters.bundle import load_character

        bundle = load_character(args.character)
        tasks = [args.task] if args.task is not None else bundle.tasks
        jobs = []
        for task in tasks:
            policy = bundle.policy(task)
            if policy is None:
                raise ValueError(f"--character {args.character} has no {task} policy (its tasks: "
                                 f"{', '.join(bundle.tasks)})")
            jobs.append((args.vae or bundle.vae, policy, Path(args.out) / task))
        return jobs or [(args.vae or bundle.vae, None, Path(args.out))]
    vae = args.vae
    if vae is None:
        if args.policy is None:
            raise ValueError("--vae CKPT is required without --policy or --character")
        from policies.checkpoint import load_policy, trained_vae

        vae = trained_vae(load_policy(args.policy))  # the VAE it was trained with
    return [(vae, args.policy, Path(args.out))]


def bundle_prior(args) -> tuple[Path, Path] | None:
    """(the bundle's VAE, its code prior) of a VQ ``--character`` exported whole (no ``--task``), else None."""
    if args.character is None or args.task is not None:
        return None
    from characters.bundle import load_character

    bundle = load_character(args.character)
    return None if bundle.prior is None else (bundle.vae, bundle.prior)


def print_manifest(manifest: dict, out: Path) -> None:
    for name, entry in manifest["graphs"].items():
        ins = ", ".join(f"{i['name']} {i['shape']}" for i in entry["inputs"])
        outs = ", ".join(f"{o['name']} {o['shape']}" for o in entry["outputs"])
        print(f"{Path(out) / entry['file']}: ({ins}) -> ({outs}); parity {manifest['parity_max_error'][name]:.2g}")
    if manifest["timing"]:
        t = manifest["timing"]
        for batch in TIMING_BATCHES:
            row = t[f"b{batch}"]
            print(f"batch {batch}: separate {row['separate_ms']:.3f} ms, fused {row['fused_ms']:.3f} ms -> "
                  f"{t['choice'][f'b{batch}']}")
    print(f"{Path(out) / MANIFEST}")


if __name__ == "__main__":
    sys.exit(main())
