"""Build stage 5, preview: a headless video of the character (``play.py --record``, the joystick tour on the
bundle's own policies) and a strip of its frames for the report. Runs ``play.py`` in its own process: pyglet fixes
its platform (window or headless EGL) once per process."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SECONDS = 12.0
SIZE = "640x360"
STRIP_FRAMES = 6


def settings(ctx) -> tuple[dict, list[Path]]:
    from characters.stage_policies import policy_path

    return ({"seconds": SECONDS, "size": SIZE, "seed": ctx.cfg.seed},
            [ctx.out / "vae.pt", *(policy_path(ctx, t) for t in ctx.cfg.task_list)])


def run(ctx):
    from matplotlib.image import imsave

    from viewer.recorder import read_video

    video = ctx.out / "preview.mp4"
    ctx.progress.stage("preview", f"recording {SECONDS:g} s of the joystick tour to {video}")
    task = "joystick" if "joystick" in ctx.cfg.task_list else (ctx.cfg.task_list or ["random_walk"])[0]
    command = [sys.executable, str(REPO / "play.py"), "--character", str(ctx.out), "--record", str(video),
               "--seconds", str(SECONDS), "--size", SIZE, "--headless", "--seed", str(ctx.cfg.seed)]
    if task == "joystick":
        command += ["--input-script", str(REPO / "assets" / "demos" / "joystick_tour.json")]
    else:
        command += ["--task", task]
    done = subprocess.run(command, capture_output=True, text=True, cwd=ctx.out)
    if done.returncode != 0:
        raise RuntimeError(f"the preview video could not be recorded ({done.stderr.strip().splitlines()[-1:]}); "
                           "rerun with --skip-preview on a machine without OpenGL")
    frames = read_video(video)
    picks = np.linspace(0, len(frames) - 1, STRIP_FRAMES).round().astype(int)
    strip = np.concatenate([frames[i] for i in picks], axis=1)  # (H, STRIP_FRAMES * W, 3)
    imsave(ctx.work / "preview_strip.png", strip)
    return {"video": video.name, "frames": int(len(frames)), "strip": "build/preview_strip.png"}, []
