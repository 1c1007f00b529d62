"""play.py's app speed: rendered frames per second, inference per frame, and the largest crowd at 30 Hz.

Prints one JSON line:

* ``app_fps``: frames per second of the whole app loop (``App.frame``, what ``play.py`` runs: interpolation, camera,
  scene, HUD, the frame drawn, the fixed-rate simulation steps of the joystick task with W held, ``flip``) in a real
  1280x720 pyglet window under Xvfb (started here when $DISPLAY is unset; software GL), median over windows
  of ``--frames`` frames.
* ``inference_ms_b1``: per simulation step at one character, for the torch and the ONNX Runtime backends (from
  the backend meters): ``decoder`` (the environment's decode, ``backend.meters["step"]``), ``controller``
  (the controller's action: the sampling fallback decodes K prior samples, a policy runs its network) and
  their sum; medians over ``--steps`` steps. ``onnx_speedup`` = torch / onnx per quantity, same run.
* ``crowd_joystick_step_ms``: median step time (ms) of ``Simulation.step`` (controller + environment + task,
  no rendering) of the joystick task for N = 64, 128, 256, 512, 1024 characters until one misses the 33.3 ms
  budget of 30 Hz; ``max_crowd_30hz_joystick`` is the largest N that held it (0 when even 64 did not). The
  sampling fallback decodes K candidates per character (``fallback_candidates``: fewer in crowds).
  ``crowd_target_*``: the same for the Target task (the crowd demo's); ``crowd_env_only_*``: the random-walk
  task (prior samples, no controller), the ceiling for a controller that costs nothing.
* ``crowd_render_fps``: the app's crowd of ``--crowd`` characters (Target task, the app's controller and crowd
  camera), after ``--crowd-warmup`` simulation steps so that it has started to walk: rendering only (``App.
  update_view`` with the interpolation moving between the last two steps, draw, ``glFinish``, ``flip``; no
  simulation step), with what the renderer drew (characters per level of detail, culled, impostors, draw calls).
* ``crowd_app_fps``: the same app running its whole loop (the window's events and ``App.frame`` on wall time, as
  ``play.py`` runs it: the simulation at 30 Hz, at most 4 steps a frame, stepping while the frame rasterises) for
  ``--crowd-seconds``, at the app's default precision (``precision``: ``auto`` runs a crowd's decoder in bfloat16
  where the processor has bfloat16 instructions); ``sim_hz`` says how many steps a second the simulation managed
  (30 when it holds the rate).
* ``crowd_app_fps_default_character``: the same whole loop for ``play.py --task target --characters N`` itself,
  the default character's bundle (``character``), where ``--vae`` is another model.
* ``crowd_app_fps_fp32`` (where the app's crowd ran bfloat16): the whole loop again with ``--precision fp32`` (ONNX
  Runtime), and ``crowd_target_bf16_step_ms``: ``Simulation.step`` at 1,024 characters in bfloat16, next to
  ``crowd_target_step_ms``.
* ``crowd_render_fps_spread``: rendering only again, the crowd placed at random over the Target arena (the app
  starts every character at the origin, so its crowd is dense for its first tens of seconds; spread is what it
  becomes).

Every fps figure comes with ``fps_min`` / ``fps_max`` and the frame times behind them (``ms_min`` /
``ms_median`` / ``ms_max``), the whole loops also with ``fps_overall`` (frames / seconds); ``threads`` gives the
CPU count, torch's threads and llvmpipe's rasteriser threads (a live window on software GL leaves the simulation
half the cores: ``app.interactive``).

The controller is whatever the app would use: the character's ``policies/joystick.pt`` when it exists and fits the VAE,
else the sampling fallback (``controller`` names it).

    python -m benchmarks.bench_play [--vae VAE.pt] [--frames 90] [--steps 150]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import statistics
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
WIDTH, HEIGHT = 1280, 720
CROWDS = (64, 128, 256, 512, 1024)
BUDGET_MS = 1000.0 / 30.0


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--vae", type=Path, default=REPO / "assets" / "characters" / "deepmimic" / "vae.pt")
    p.add_argument("--policies", type=Path, default=REPO / "assets" / "characters" / "deepmimic" / "policies")
    p.add_argument("--frames", type=int, default=90, help="frames per fps window (3 windows)")
    p.add_argument("--steps", type=int, default=150, help="simulation steps per inference measurement")
    p.add_argument("--crowd-steps", type=int, default=8, help="timed steps per crowd size")
    p.add_argument("--crowd", type=int, default=1000, help="characters of the crowd drawn by the app")
    p.add_argument("--crowd-warmup", type=int, default=45, help="simulation steps before the crowd is timed")
    p.add_argument("--crowd-frames", type=int, default=60, help="timed frames of the crowd, rendering only")
    p.add_argument("--crowd-seconds", type=float, default=5.0, help="seconds of the crowd's whole app loop")
    p.add_argument("--threads", type=int, default=1, help="torch threads (the app's default is torch's)")
    return p.parse_args(argv)


def held_w():
    from app.input_script import Held, StepInput

    return StepInput(Held(("W",)))


def median(values) -> float:
    return round(statistics.median(values), 4)


def frame_summary(seconds: list[float]) -> dict:
    """fps (from the median frame) with its min / max, and the frame times in ms."""
    ms = sorted(1e3 * t for t in seconds)
    mid = statistics.median(ms)
    return {"fps": round(1e3 / mid, 1), "fps_min": round(1e3 / ms[-1], 1), "fps_max": round(1e3 / ms[0], 1),
            "ms_min": round(ms[0], 2), "ms_median": round(mid, 2), "ms_max": round(ms[-1], 2), "frames": len(ms)}


def make_sim(args, backend_name: str, characters: int = 1, backend=None, task: str = "joystick",
             precision: str = "fp32", character=None):
    """The app's simulation of ``--vae`` / ``--policies``, or of the bundle ``character`` when given."""
    from app.simulation import AppConfig, Simulation

    if character is not None:
        config = AppConfig(character=character, task=task, characters=characters, backend=backend_name, seed=0,
                           precision=precision)
    else:
        config = AppConfig(vae=args.vae, task=task, characters=characters, backend=backend_name,
                           policies_dir=args.policies, seed=0, precision=precision)
    return Simulation(config, backend=backend, verbose=False)


def inference(args, backend_name: str) -> tuple[dict, str]:
    sim = make_sim(args, backend_name)
    act, dec = [], []
    for i in range(args.steps + 10):
        sim.step(held_w(), azimuth=0.0)
        if i >= 10:  # warm-up: first calls allocate
            act.append(sim.act_ms)
            dec.append(sim.decode_ms)
    out = {"provider": sim.backend.provider, "decoder": median(dec), "controller": median(act),
           "total": median([a + d for a, d in zip(act, dec, strict=True)])}
    label = sim.controller.label
    sim.close()
    return out, label


def crowd_step_ms(args, backend, n: int, task: str, precision: str = "fp32") -> list[float]:
    sim = make_sim(args, "auto", n, backend, task, precision)
    sim.step(held_w(), 0.0)
    samples = []
    for _ in range(args.crowd_steps):
        start = time.perf_counter()
        sim.step(held_w(), 0.0)
        samples.append((time.perf_counter() - start) * 1e3)
    sim.close()
    return samples


def crowd(args) -> dict:
    """Largest N at 30 Hz for the joystick task with the app's controller, and for the environment alone
    (random walk: prior samples, no controller: the ceiling a cheap policy would approach)."""
    from controller.runtime import make_backend

    backend = make_backend(str(args.vae), verbose=False)
    out = {"budget_ms": round(BUDGET_MS, 2)}
    for name, task in (("joystick", "joystick"), ("target", "target"), ("env_only", "random_walk")):
        times, best = {}, 0
        for n in CROWDS:
            samples = crowd_step_ms(args, backend, n, task)
            times[str(n)] = {"median_ms": median(samples), "min_ms": round(min(samples), 3)}
            if statistics.median(samples) >= BUDGET_MS:
                break
            best = n
        out[f"crowd_{name}_step_ms"] = times
        out[f"max_crowd_30hz_{name}"] = best
    from app.simulation import CANDIDATE_BUDGET, MIN_CANDIDATES, NUM_CANDIDATES

    out["fallback_candidates"] = {str(n): max(MIN_CANDIDATES, min(NUM_CANDIDATES, CANDIDATE_BUDGET // n))
                                  for n in CROWDS}
    return out


def app_frame(app, window, last: float, frames: list[float]) -> float:
    """One frame of the app's whole loop on wall time (the window's events, then ``App.frame`` since ``last``: what
    ``play.py`` runs); appends its seconds to ``frames`` and returns when it started (the next frame's ``last``)."""
    now = time.perf_counter()
    window.dispatch_events()
    app.frame(now - last)
    frames.append(time.perf_counter() - now)
    return now


def app_fps(args) -> dict:
    """One character: the whole app loop with W held (see the module docstring)."""
    from pyglet.window import key

    from app.interactive import App
    from viewer.window import ViewerWindow

    sim = make_sim(args, "auto")
    window = ViewerWindow(WIDTH, HEIGHT, visible=True, vsync=False)
    app = App(sim, window)
    window.dispatch_event("on_key_press", key.W, 0)
    window.dispatch_events()
    rates, frames = [], []
    last = time.perf_counter()
    for _ in range(3):
        start = time.perf_counter()
        for _ in range(args.frames):
            last = app_frame(app, window, last, frames)
        rates.append(args.frames / (time.perf_counter() - start))
    steps = sim.step_count
    app.close()
    window.close()
    sim.close()
    return {"app_fps": round(statistics.median(rates), 1), "app_fps_min": round(min(rates), 1),
            "app_fps_max": round(max(rates), 1), "app_frame": frame_summary(frames), "sim_steps_during_fps": steps}


def render_only(app, window, frames: int) -> dict:
    """Frames of the app's current scene without simulation steps (the interpolation moves between the last two)."""
    from pyglet import gl

    times = []
    for i in range(frames + 3):
        start = time.perf_counter()
        app.update_view(1.0 / 60.0, alpha=(i % 8) / 8.0)
        window.dispatch_events()
        window.draw_frame()
        gl.glFinish()
        window.flip()
        if i >= 3:  # warm-up: the first frames allocate and compile
            times.append(time.perf_counter() - start)
    return {**frame_summary(times), "drawn": dict(window.renderer.last_counts)}


def crowd_fps(args) -> dict:
    """The app's crowd: rendering only as the app starts it and spread over the arena, then the whole loop."""
    with crowd_app(args, "auto") as app:
        sim, window = app.sim, app.window
        precision = sim.backend.precision
        out = {"crowd_render_fps": {**render_only(app, window, args.crowd_frames), "characters": args.crowd,
                                    "after_steps": sim.step_count}}
        out["crowd_app_fps"] = {**whole_loop(args, app, window), "precision": precision}

        # The app starts its crowd on a grid around the first character: at random over the arena instead, the crowd
        # is what it becomes after a minute of walking to targets.
        generator = torch.Generator().manual_seed(0)
        half = float(sim.env.task.half_arena) if hasattr(sim.env.task, "half_arena") else 20.0
        sim.obs = sim.env.place(root_xz=(torch.rand(args.crowd, 2, generator=generator) * 2.0 - 1.0) * half)
        sim.set_foot_locking(sim.foot_locking)  # planted feet start afresh where the characters now stand
        for _ in range(3):
            app.step_simulation()
        app.reset_camera()
        out["crowd_render_fps_spread"] = {**render_only(app, window, args.crowd_frames), "characters": args.crowd,
                                          "spread_m": round(2 * half, 1)}
    out.update(default_character_crowd(args))
    if precision == "bf16":
        out.update(crowd_fp32(args))
    return out


@contextlib.contextmanager
def crowd_app(args, precision: str, character=None):
    """The app over ``--crowd`` characters of the Target task in a 1280x720 window, after ``--crowd-warmup`` steps;
    closed (app, window, simulation) on exit."""
    from app.interactive import App
    from viewer.window import ViewerWindow

    sim = make_sim(args, "auto", args.crowd, task="target", precision=precision, character=character)
    window = ViewerWindow(WIDTH, HEIGHT, visible=True, vsync=False)
    app = App(sim, window)
    try:
        for _ in range(args.crowd_warmup):
            app.step_simulation()
        yield app
    finally:
        app.close()
        window.close()
        sim.close()


def default_character_crowd(args) -> dict:
    """The whole loop again for ``play.py --task target --characters N`` itself: the default character's bundle
    (its VAE and policies), where ``--vae`` is another model."""
    from characters.bundle import DEFAULT_CHARACTER, load_character

    if load_character(DEFAULT_CHARACTER).vae.resolve() == Path(args.vae).resolve():
        return {}
    with crowd_app(args, "auto", character=DEFAULT_CHARACTER) as app:
        result = {**whole_loop(args, app, app.window), "precision": app.sim.backend.precision,
                  "character": DEFAULT_CHARACTER}
    return {"crowd_app_fps_default_character": result}


def whole_loop(args, app, window) -> dict:
    """The app's whole loop for ``--crowd-seconds``: frame times and the simulation's steps per second."""
    frames, steps = [], app.sim.step_count
    begin = last = time.perf_counter()
    while time.perf_counter() - begin < args.crowd_seconds:
        last = app_frame(app, window, last, frames)
    seconds = time.perf_counter() - begin
    return {**frame_summary(frames), "fps_overall": round(len(frames) / seconds, 1), "characters": args.crowd,
            "sim_hz": round((app.sim.step_count - steps) / seconds, 1)}


def crowd_fp32(args) -> dict:
    """Where the app's crowd runs its decoder in bfloat16 (``--precision auto``): its ``Simulation.step`` at 1,024
    characters in both precisions on torch's threads as the app leaves them outside a window (every CPU), and the
    whole loop again with ``--precision fp32`` (ONNX Runtime's sessions on every CPU)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(os.cpu_count() or 1)
    try:
        samples = crowd_step_ms(args, None, CROWDS[-1], "target", "bf16")
        out = {"crowd_target_bf16_step_ms": {str(CROWDS[-1]): {"median_ms": median(samples),
                                                               "min_ms": round(min(samples), 3)},
                                             "torch_threads": torch.get_num_threads()}}
        with crowd_app(args, "fp32") as app:
            out["crowd_app_fps_fp32"] = whole_loop(args, app, app.window)
    finally:
        torch.set_num_threads(threads)
    return out


def windowed(args) -> dict:
    """The measurements that need a window, under Xvfb when no display is reachable."""
    from viewer.display import VirtualDisplay, configure_pyglet, display_available

    with contextlib.ExitStack() as stack:
        if not display_available():
            stack.enter_context(VirtualDisplay(WIDTH, HEIGHT))
        configure_pyglet(headless=False)
        return {**app_fps(args), **crowd_fps(args)}


def main(argv=None) -> int:
    args = parse_args(argv)
    if not args.vae.is_file():
        print(f"bench_play: no model file {args.vae}; pass --vae CKPT", file=sys.stderr)
        return 2
    torch.set_num_threads(args.threads)
    result = {"bench": "play", "size": f"{WIDTH}x{HEIGHT}",
              "threads": {"cpus": os.cpu_count(), "torch": args.threads,
                          "llvmpipe": int(os.environ.get("LP_NUM_THREADS", os.cpu_count()))}}
    torch_ms, label = inference(args, "torch")
    onnx_ms, _ = inference(args, "onnx")
    result["controller"] = label
    result["inference_ms_b1"] = {"torch": torch_ms, "onnx": onnx_ms}
    result["onnx_speedup"] = {k: round(torch_ms[k] / onnx_ms[k], 2) if onnx_ms[k] > 0 else math.nan
                              for k in ("decoder", "controller", "total")}
    result.update(crowd(args))
    result.update(windowed(args))
    result["load_avg_1min"] = round(os.getloadavg()[0], 2)
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
