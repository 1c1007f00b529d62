"""play.py's app speed: rendered frames per second, inference per frame, and the largest crowd at 30 Hz.

Prints one JSON line:

* ``app_fps``: frames per second of the whole app loop (``App.tick``: fixed-rate simulation steps of the
  joystick task with W held, interpolation, camera, scene, HUD; then draw, ``glFinish``, ``flip``) in a real
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
  ``crowd_env_only_*``: the same for the random-walk task (prior samples, no controller), the ceiling for a
  controller that costs nothing.

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
    p.add_argument("--threads", type=int, default=1, help="torch threads (the app's default is torch's)")
    return p.parse_args(argv)


def held_w():
    from app.input_script import Held, StepInput

    return StepInput(Held(("W",)))


def median(values) -> float:
    return round(statistics.median(values), 4)


def make_sim(args, backend_name: str, characters: int = 1, backend=None, task: str = "joystick"):
    from app.simulation import AppConfig, Simulation

    config = AppConfig(vae=args.vae, task=task, characters=characters, backend=backend_name,
                       policies_dir=args.policies, seed=0)
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


def crowd_step_ms(args, backend, n: int, task: str) -> list[float]:
    sim = make_sim(args, "auto", n, backend, task)
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
    for name, task in (("joystick", "joystick"), ("env_only", "random_walk")):
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


def app_fps(args) -> dict:
    from viewer.display import VirtualDisplay, configure_pyglet, display_available

    with contextlib.ExitStack() as stack:
        if not display_available():
            stack.enter_context(VirtualDisplay(WIDTH, HEIGHT))
        configure_pyglet(headless=False)
        from pyglet import gl
        from pyglet.window import key

        from app.interactive import App
        from viewer.window import ViewerWindow

        sim = make_sim(args, "auto")
        window = ViewerWindow(WIDTH, HEIGHT, visible=True, vsync=False)
        app = App(sim, window)
        window.dispatch_event("on_key_press", key.W, 0)
        window.dispatch_events()
        rates = []
        last = time.perf_counter()
        for _ in range(3):
            start = time.perf_counter()
            for _ in range(args.frames):
                now = time.perf_counter()
                app.tick(now - last)
                last = now
                window.dispatch_events()
                window.draw_frame()
                gl.glFinish()
                window.flip()
            rates.append(args.frames / (time.perf_counter() - start))
        steps = sim.step_count
        app.close()
        window.close()
        sim.close()
    return {"app_fps": round(statistics.median(rates), 1), "app_fps_min": round(min(rates), 1),
            "sim_steps_during_fps": steps}


def main(argv=None) -> int:
    args = parse_args(argv)
    if not args.vae.is_file():
        print(f"bench_play: no model file {args.vae}; pass --vae CKPT", file=sys.stderr)
        return 2
    torch.set_num_threads(args.threads)
    result = {"bench": "play", "size": f"{WIDTH}x{HEIGHT}", "cpus": os.cpu_count(), "torch_threads": args.threads}
    torch_ms, label = inference(args, "torch")
    onnx_ms, _ = inference(args, "onnx")
    result["controller"] = label
    result["inference_ms_b1"] = {"torch": torch_ms, "onnx": onnx_ms}
    result["onnx_speedup"] = {k: round(torch_ms[k] / onnx_ms[k], 2) if onnx_ms[k] > 0 else math.nan
                              for k in ("decoder", "controller", "total")}
    result.update(crowd(args))
    result.update(app_fps(args))
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
