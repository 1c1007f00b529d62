"""Run every benchmark, print every JSON line, then the markdown table the README's "Benchmarks" table comes from.

    .venv/bin/python -m benchmarks.all            # quick settings: minutes, figures noisier than the README's
    .venv/bin/python -m benchmarks.all --full     # the README's settings (long: the PPO reference alone ~5 min)
    .venv/bin/python -m benchmarks.all --only bench_env bench_inference

Each benchmark runs in its own process (``python -m benchmarks.NAME``, so one cannot slow or break the next) with the
flags of ``QUICK`` or ``FULL``; its JSON line is printed as it finishes (a benchmark that fails or cannot run here,
e.g. without ``../shared/mocap`` or a display, prints ``{"benchmark": NAME, "error": ...}`` and the others go on).
Then one markdown table: a row per figure, ours against the reference measured in the same run, median (and the
range over repeats where the benchmark gives one), with the threads and the load average the run saw, since on a
shared 2-core machine a busy neighbour slows the absolute figures while the in-run ratios hold.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

QUICK: dict[str, list[str]] = {
    "bench_prepare": ["--repeats", "2"],
    "bench_decoder": ["--repeats", "5", "--calls", "50", "--seconds", "0.2"],
    "bench_vae_train": ["--threads", "1", "--rounds", "2", "--ref-batches", "4", "--speed-frames", "1200",
                        "--equal-seconds", "20", "--loss-frames", "3000"],
    "bench_env": ["--threads", "2", "--batches", "1", "64", "1024", "--tasks", "target", "--repeats", "5",
                  "--seconds", "0.15", "--no-single"],
    "bench_ppo": ["--updates", "2", "--reference-updates", "0"],
    "bench_inference": [],  # its own settings (50 s): shorter turns put the batch-1 figures several us higher
    "bench_motion_graph": ["--repeats", "1", "--old-frames", "1500"],
    "bench_viewer": ["--frames", "30"],
    "bench_play": ["--frames", "30", "--steps", "60"],
}
FULL: dict[str, list[str]] = {
    "bench_prepare": ["--repeats", "3"],
    "bench_decoder": ["--threads", "2"],
    "bench_vae_train": ["--threads", "1", "--rounds", "3", "--ref-batches", "20", "--speed-frames", "18000",
                        "--equal-seconds", "300", "--loss-frames", "18000"],
    "bench_env": ["--threads", "2"],
    "bench_ppo": ["--updates", "6", "--reference-updates", "2"],
    "bench_inference": ["--repeats", "20", "--calls", "500"],
    "bench_motion_graph": [],
    "bench_viewer": [],
    "bench_play": [],
}


def run_one(name: str, flags: list[str], timeout: float) -> dict:
    """Run ``python -m benchmarks.NAME FLAGS``; its last JSON line (with ``wall_s``), or an ``error`` entry."""
    start = time.perf_counter()
    try:
        done = subprocess.run([sys.executable, "-m", f"benchmarks.{name}", *flags], cwd=REPO, capture_output=True,
                              text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"benchmark": name, "error": f"timed out after {timeout:.0f} s (raise --timeout)"}
    wall = round(time.perf_counter() - start, 1)
    for line in reversed(done.stdout.splitlines()):
        try:
            result = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(result, dict):
            if done.returncode != 0:
                return {"benchmark": name, "error": f"exit status {done.returncode}", **result}
            return {**result, "wall_s": wall}
    tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
    return {"benchmark": name, "error": f"exit status {done.returncode}: {tail[0][:300]}"}


# ---- the table ------------------------------------------------------------------------------------------------
def dig(d: dict, *keys, default=None):
    """``d[k1][k2]...`` or ``default`` where a key is missing (benchmarks change; the table must not crash)."""
    for key in keys:
        if not isinstance(d, dict) or key not in d:
            return default
        d = d[key]
    return d


def num(x, digits: int = 0, unit: str = "") -> str:
    if x is None:
        return "–"
    text = f"{x:,.{digits}f}" if isinstance(x, (int, float)) else str(x)
    return text + unit


def rng(s: dict | None, digits: int = 0, unit: str = "") -> str:
    """``median (min–max)`` of a :func:`benchmarks.common.spread` dict."""
    if not isinstance(s, dict) or "median" not in s:
        return "–"
    return f"{num(s['median'], digits)} ({num(s['min'], digits)}–{num(s['max'], digits)}){unit}"


def times(r: dict | None) -> str:
    """``median× (best: x×)`` of a :func:`benchmarks.common.ratio` dict."""
    if not isinstance(r, dict) or "median" not in r:
        return "–"
    best = f" (best {r['best']:.1f}×)" if isinstance(r.get("best"), (int, float)) else ""
    return f"{r['median']:.1f}×{best}"


def setting(r: dict) -> str:
    return f"{r.get('threads', '?')} thread(s), load {r.get('load_avg_1min', '?')}"


def rows_prepare(r: dict) -> list[list[str]]:
    return [[f"`bench_prepare`: {r.get('files')} BVH files with `--mirror` ({setting(r)})",
             f"{rng(r.get('prepare_mirror_s'), 2, ' s')}; import {rng(r.get('import_frames_per_s'))} frames/s",
             f"naive per-frame Python importer, same {len(r.get('same_files', []))} files: "
             f"{rng(r.get('same_files_naive_importer_frames_per_s'))} frames/s (ours there: "
             f"{rng(r.get('same_files_ours_frames_per_s'))})",
             times(r.get("speedup_vs_naive_importer_same_files"))]]


def rows_decoder(r: dict) -> list[list[str]]:
    return [[f"`bench_decoder`: mixture decoder, batch 1 latency ({setting(r)})", rng(r.get("fast_b1_us"), 0, " µs"),
             f"weight blending: {rng(r.get('reference_b1_us'), 0, ' µs')}", times(r.get("speedup_b1"))]] + [
            [f"`bench_decoder`: throughput at batch {b}", rng(r.get(f"fast_b{b}_fps"), 0, " frames/s"),
             rng(r.get(f"reference_b{b}_fps"), 0, " frames/s"), times(r.get(f"speedup_b{b}"))] for b in (64, 1024)]


def rows_vae_train(r: dict) -> list[list[str]]:
    out = [[f"`bench_vae_train`: training at batch 64, frame predictions/s ({setting(r)})",
            rng(r.get("trainer_b64_frames_per_s")),
            f"batch 64, weight blending, step per rollout step: {rng(r.get('reference_frames_per_s'))}",
            times(r.get("implementation_speedup_b64"))],
           ["`bench_vae_train`: batch 256 (ours) against batch 64, same trainer", rng(r.get("trainer_b256_frames_per_s")),
            f"batch 64: {rng(r.get('trainer_b64_frames_per_s'))}", times(r.get("batch_size_speedup_b256_vs_b64"))]]
    equal = r.get("equal_wall_time")
    if isinstance(equal, dict):
        b64, b256 = equal.get("b64", {}), equal.get("b256", {})
        out.append(["`bench_vae_train`: held-out 8-step loss after equal training time",
                    f"batch 256: {num(b256.get('heldout_recon_rollout8'), 4)} in {num(b256.get('train_seconds'), 0)} s",
                    f"batch 64: {num(b64.get('heldout_recon_rollout8'), 4)} in {num(b64.get('train_seconds'), 0)} s",
                    "–"])
    return out


def rows_env(r: dict) -> list[list[str]]:
    out = []
    for task, per_batch in (r.get("env_steps_per_s") or {}).items():
        for b, row in per_batch.items():
            out.append([f"`bench_env`: {task} env-steps/s at B = {b} ({setting(r)}, {r.get('device')})",
                        rng(row.get("ours_steps_per_s")),
                        f"per-sample weight blending: {rng(row.get('reference_steps_per_s'))}",
                        times(row.get("speedup_vs_reference"))])
    return out


def rows_ppo(r: dict) -> list[list[str]]:
    out = [[f"`bench_ppo`: PPO env-steps/s, update included ({setting(r)})", rng(dig(r, "ours", "env_steps_per_s")),
            f"same trainer and settings, reference decoder: {rng(dig(r, 'reference_decoder', 'env_steps_per_s'))}",
            times(r.get("speedup_vs_reference_decoder_equal_settings"))]]
    if "sb3" in r:
        out.append(["`bench_ppo`: against SB3 PPO on the same env and sizes", rng(dig(r, "ours", "env_steps_per_s")),
                    f"SB3: {rng(dig(r, 'sb3', 'env_steps_per_s'))}", times(r.get("speedup_vs_sb3"))])
    if "reference_settings" in r:
        steps = r.get("gradient_steps_per_update", {})
        out.append([f"`bench_ppo`: our settings ({steps.get('ours')} gradient steps per update) against the "
                    f"reference's ({steps.get('reference_settings')})", rng(dig(r, "ours", "env_steps_per_s")),
                    f"reference settings and decoder: {rng(dig(r, 'reference_settings', 'env_steps_per_s'))}",
                    f"{num(dig(r, 'speedup_vs_reference_settings', 'median'), 1)}×"])
    return out


def rows_inference(r: dict) -> list[list[str]]:
    return [[f"`bench_inference`: policy + decoder per frame, 1 character, warm ({setting(r)})",
             f"ONNX Runtime through the backend {rng(r.get('frame_b1_ms_backend'), 3, ' ms')}; bare session "
             f"{rng(r.get('frame_b1_ms_ort_fused'), 3, ' ms')}",
             f"torch eager {rng(r.get('frame_b1_ms_torch_eager'), 3, ' ms')}",
             times(r.get("speedup_frame_b1_backend_vs_eager"))],
            ["`bench_inference`: the same on int8 weights (`--precision int8`; frames within "
             f"{num(r.get('int8_max_error'), 4)} of float32's, whose spread is {num(r.get('int8_frame_std'), 2)})",
             f"through the backend {rng(r.get('frame_b1_ms_backend_int8'), 3, ' ms')}; bare session "
             f"{rng(r.get('frame_b1_ms_ort_fused_int8'), 3, ' ms')}",
             f"float32 bare session {rng(r.get('frame_b1_ms_ort_fused'), 3, ' ms')} ({num(r.get('weights_mb'), 1)} MB "
             f"of weights read at {num(r.get('read_gb_s_ort_fused'), 0)} GB/s)",
             times(r.get("speedup_frame_b1_int8_vs_fp32"))],
            ["`bench_inference`: the same after 32 MB of other memory traffic (a drawn frame)",
             f"fused {rng(r.get('frame_b1_ms_backend_cold'), 3, ' ms')}",
             f"act then step, two sessions {rng(r.get('frame_b1_ms_backend_act_step_cold'), 3, ' ms')}; int8 "
             f"weights, fused {rng(r.get('frame_b1_ms_backend_int8_cold'), 3, ' ms')}", "–"]]


def rows_motion_graph(r: dict) -> list[list[str]]:
    return [[f"`bench_motion_graph`: transition search, {num(r.get('frames'))} frames ({setting(r)})",
             rng(r.get("ours_s"), 1, " s"), "–", "–"],
            [f"`bench_motion_graph`: same {num(r.get('subset_frames'))} frames for both",
             rng(r.get("subset_ours_frames_per_s"), 0, " frames/s"),
             f"loop search {rng(r.get('subset_old_frames_per_s'), 0, ' frames/s')}", times(r.get("subset_speedup"))]]


def rows_viewer(r: dict) -> list[list[str]]:
    return [[f"`bench_viewer`: 1 character, {r.get('size')}, {r.get('backend')}",
             f"{num(dig(r, 'single_character', 'fps'), 0)} fps", "pybullet: "
             f"{num(dig(r, 'reference_pybullet_opengl', 'single', 'fps'), 1)} fps", "–"]]


def rows_play(r: dict) -> list[list[str]]:
    onnx, torch_ms = dig(r, "inference_ms_b1", "onnx", "total"), dig(r, "inference_ms_b1", "torch", "total")
    rows = [[f"`bench_play`: the app at {r.get('size')}", f"{num(r.get('app_fps'), 0)} fps", "–", "–"],
            ["`bench_play`: per-frame inference in the app, 1 character", f"ONNX Runtime {num(onnx, 3)} ms",
             f"torch {num(torch_ms, 3)} ms", f"{num(dig(r, 'onnx_speedup', 'total'), 2)}×"]]
    # Crowds: frame rates with their min-max over frames, and what was drawn (levels of detail, culled).
    for key, what in (("crowd_render_fps", "drawn only, as the app starts it"),
                      ("crowd_render_fps_spread", "drawn only, spread over the arena")):
        c, drawn = r.get(key) or {}, dig(r, key, "drawn") or {}
        levels = ", ".join(f"{drawn[k]} {k}" for k in ("near", "mid", "far", "tiny", "culled") if drawn.get(k))
        rows.append([f"`bench_play`: crowd of {num(c.get('characters'))}, {what}",
                     f"{num(c.get('fps'), 1)} fps ({num(c.get('fps_min'), 1)}–{num(c.get('fps_max'), 1)}); drawn: "
                     f"{levels or '–'}, {num(drawn.get('draw_calls'))} draw calls", "–", "–"])
    app = r.get("crowd_app_fps") or {}
    for key in ("crowd_app_fps", "crowd_app_fps_default_character"):
        c = r.get(key)
        if c:
            who = f" of the default character ({c['character']})" if c.get("character") else ""
            rows.append([f"`bench_play`: crowd of {num(c.get('characters'))}{who}, the whole app loop "
                         f"(`--precision auto`: {c.get('precision', '–')})",
                         f"{num(c.get('fps'), 1)} fps median frame ({num(c.get('fps_min'), 1)}–"
                         f"{num(c.get('fps_max'), 1)}), {num(c.get('fps_overall'), 1)} frames/s overall, simulation "
                         f"{num(c.get('sim_hz'), 1)} Hz", "–", "–"])
    fp32 = r.get("crowd_app_fps_fp32")
    if fp32:
        size = str(max((int(k) for k in (r.get("crowd_target_bf16_step_ms") or {}) if k.isdigit()), default=0))
        fp32_step = dig(r, "crowd_target_step_ms", size, "median_ms")
        bf16_step = dig(r, "crowd_target_bf16_step_ms", size, "median_ms")
        ratio = app["fps"] / fp32["fps"] if fp32.get("fps") and app.get("fps") else None
        rows.append([f"`bench_play`: bfloat16 against float32: a step of {num(int(size))} characters (torch "
                     f"{num(dig(r, 'crowd_target_bf16_step_ms', 'torch_threads'))} threads) and the whole loop",
                     f"bf16: a step {num(bf16_step, 1)} ms; {num(app.get('fps'), 1)} fps",
                     f"`--precision fp32` (ONNX Runtime): a step {num(fp32_step, 1)} ms; {num(fp32.get('fps'), 1)} fps "
                     f"({num(fp32.get('fps_min'), 1)}–{num(fp32.get('fps_max'), 1)})", f"{num(ratio, 2)}×"])
    rows.append(["`bench_play`: largest crowd stepped at 30 Hz (joystick / target / env only)",
                 " / ".join(num(r.get(f"max_crowd_30hz_{k}")) for k in ("joystick", "target", "env_only")),
                 "–", "–"])
    return rows


ROWS: dict[str, Callable[[dict], list[list[str]]]] = {
    "bench_prepare": rows_prepare, "bench_decoder": rows_decoder, "bench_vae_train": rows_vae_train,
    "bench_env": rows_env, "bench_ppo": rows_ppo, "bench_inference": rows_inference,
    "bench_motion_graph": rows_motion_graph, "bench_viewer": rows_viewer, "bench_play": rows_play,
}


def markdown(results: dict[str, dict]) -> str:
    lines = ["| benchmark | ours | reference (same run) | ratio (median; best) |", "|---|---|---|---|"]
    for name, result in results.items():
        if "error" in result:
            lines.append(f"| `{name}` | not run: {result['error']} | | |")
            continue
        try:
            rows = ROWS[name](result)
        except (KeyError, TypeError, ValueError, AttributeError) as e:  # a changed JSON layout: say so, go on
            rows = [[f"`{name}`", f"table row failed ({type(e).__name__}: {e}); see its JSON line", "", ""]]
        lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="the README's settings (long)")
    parser.add_argument("--only", nargs="+", choices=sorted(QUICK), help="run only these benchmarks")
    parser.add_argument("--timeout", type=float, default=3600.0, help="seconds one benchmark may take")
    args = parser.parse_args(argv)
    settings = FULL if args.full else QUICK
    names = [n for n in settings if args.only is None or n in args.only]
    results = {}
    for name in names:
        results[name] = run_one(name, settings[name], args.timeout)
        print(json.dumps(results[name]), flush=True)
    print()
    print(markdown(results))
    return 0 if all("error" not in r for r in results.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
