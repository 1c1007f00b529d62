"""Play with a Motion VAE character in real time, or render a video of it.

    python play.py                                    # interactive: joystick task, WASD / gamepad / mouse
    python play.py --task target --characters 64      # a crowd, each with its own target
    python play.py --input-script assets/demos/joystick_tour.json --record demo.mp4   # the scripted demo video
    python play.py --record-input mine.json           # save what you do, replay it with --input-script

Without a display (no $DISPLAY, or one that cannot be reached) and without ``--record``, it says so in one
line and renders ``demo.mp4`` (``--seconds``, default 10 s, of the shipped scripted demo) offscreen instead.
Recording is offscreen (a hidden window, or pyglet's headless EGL without a display), one video frame per
simulation step at the VAE's frame rate: a seed plus an input script give the same video every time.
Keys and mouse: see ``controller/inputs.py`` (F1 in the app). The app itself: ``controller/app.py``.

Errors (missing model, bad flags, no way to render) are one line on stderr and exit status 2; ``--debug``
shows the traceback instead.
"""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent
DEMO_SCRIPT = REPO / "assets" / "demos" / "joystick_tour.json"
DEFAULT_SECONDS = 10.0
NO_DISPLAY_VIDEO = "demo.mp4"
TASKS = ("random_walk", "target", "joystick", "path", "maze")


class UsageError(Exception):
    """A problem the user can fix; printed as one line."""


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="play.py", description="Real-time Motion VAE character controller.")
    p.add_argument("--vae", type=Path, default=None, help="VAE checkpoint (default assets/vae.pt)")
    p.add_argument("--task", choices=TASKS, default=None, help="starting task (default joystick, or the script's)")
    p.add_argument("--characters", type=int, default=None, help="characters stepped in one batch (default 1)")
    p.add_argument("--backend", choices=("auto", "onnx", "torch"), default="auto",
                   help="inference: ONNX Runtime (auto when installed) or torch")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    p.add_argument("--policies", type=Path, default=REPO / "assets" / "policies",
                   help="folder of task policies target.pt, joystick.pt, pathfollow.pt (missing: sampling fallback)")
    p.add_argument("--record", type=Path, default=None, help="render offscreen into this .mp4 / .gif and exit")
    p.add_argument("--seconds", type=float, default=None,
                   help=f"length of --record in simulation seconds (default: the input script's, else "
                        f"{DEFAULT_SECONDS:g})")
    p.add_argument("--size", default="1280x720", help="window / video size WxH (default 1280x720)")
    p.add_argument("--record-input", type=Path, default=None, help="save your inputs per simulation step (JSON)")
    p.add_argument("--input-script", type=Path, default=None, help="replay inputs saved with --record-input")
    p.add_argument("--seed", type=int, default=None, help="seed of every random choice (default 0, or the script's)")
    p.add_argument("--headless", action="store_true", help="render with pyglet's headless EGL (no X display)")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    return p.parse_args(argv)


def parse_size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise UsageError(f"--size {text!r}: expected WIDTHxHEIGHT in pixels, e.g. 1280x720") from None
    if w < 16 or h < 16:
        raise UsageError(f"--size {text!r}: width and height must be at least 16 pixels")
    return w, h


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        return run(args)
    except KeyboardInterrupt:
        return 130
    except (UsageError, FileNotFoundError, PermissionError, ValueError, RuntimeError, ImportError, OSError) as e:
        if args.debug:
            raise
        print(f"play.py: error: {e}", file=sys.stderr)
        return 2


def run(args: argparse.Namespace) -> int:
    from controller.app import DEFAULT_VAE, App, AppConfig, Simulation
    from controller.input_script import InputRecorder, InputScript
    from viewer.display import configure_pyglet, display_available

    size = parse_size(args.size)
    script = InputScript.load(args.input_script) if args.input_script is not None else None
    headless = args.headless or not display_available()
    record = args.record
    if record is None and headless:
        why = "--headless was given" if args.headless else "no display ($DISPLAY is unset or cannot be reached)"
        if script is None:
            script = InputScript.load(DEMO_SCRIPT)
        record = Path(NO_DISPLAY_VIDEO)
        seconds = args.seconds if args.seconds is not None else DEFAULT_SECONDS
        print(f"play.py: {why}: recording {seconds:g} s of the scripted demo to {record.resolve()} instead "
              "(run with a display for the interactive app)", flush=True)
        args.seconds = seconds
    if record is not None and record.suffix.lower() not in (".mp4", ".gif"):
        raise UsageError(f"--record {record}: the file must end in .mp4 or .gif")
    if record is not None and record.suffix.lower() == ".mp4" and (size[0] % 2 or size[1] % 2):
        raise UsageError(f"--size {size[0]}x{size[1]}: an MP4 (H.264, yuv420p) needs an even width and height; "
                         f"use {size[0] + size[0] % 2}x{size[1] + size[1] % 2}, or record a .gif")

    config = AppConfig(
        vae=args.vae if args.vae is not None else DEFAULT_VAE,
        task=args.task or (script.task if script else "joystick"),
        characters=args.characters if args.characters is not None else (script.characters if script else 1),
        backend=args.backend, device=args.device,
        seed=args.seed if args.seed is not None else (script.seed if script else 0),
        policies_dir=args.policies,
    )
    sim = Simulation(config)  # loads the model first: its errors come before any window opens
    if script is not None and abs(script.fps - sim.fps) > 1e-6:
        print(f"play.py: note: the input script was made at {script.fps:g} Hz, this VAE runs at {sim.fps:g} Hz",
              flush=True)

    configure_pyglet(headless=headless)
    window = open_window(size, visible=record is None, headless=headless)
    recorder = None
    if args.record_input is not None:
        recorder = InputRecorder(seed=config.seed, task=config.task, characters=config.characters, fps=sim.fps)
    app = App(sim, window, script=script.player() if script else None, input_recorder=recorder,
              realtime=record is None)
    if app.gamepads is not None:
        print(f"play.py: {app.gamepads.status}", flush=True)
    try:
        if record is not None:
            if args.seconds is not None:
                steps = round(args.seconds * sim.fps)
            else:
                steps = script.steps if script is not None and script.steps > 0 else round(DEFAULT_SECONDS * sim.fps)
            path = app.record_video(record, steps)
            print(f"play.py: wrote {path.resolve()} ({steps} frames, {window.get_framebuffer_size()[0]}x"
                  f"{window.get_framebuffer_size()[1]}, {sim.fps:g} fps; inference {sim.backend.name} on "
                  f"{sim.backend.provider})", flush=True)
        else:
            # A polite kill (SIGTERM) ends the loop like Esc does, so --record-input is still saved.
            signal.signal(signal.SIGTERM, _exit_on_terminate)
            app.run()
    finally:
        app.close()
        window.close()
        sim.close()
        if recorder is not None:
            saved = recorder.save(args.record_input)
            print(f"play.py: saved {recorder.steps} steps of input to {saved} (replay: python play.py "
                  f"--input-script {saved})", flush=True)
    return 0


def _exit_on_terminate(signum, frame):
    raise SystemExit(128 + signum)


def open_window(size: tuple[int, int], visible: bool, headless: bool):
    """The viewer window, or a UsageError that says what to install / run instead."""
    try:
        from viewer.window import ViewerWindow

        return ViewerWindow(size[0], size[1], caption="Motion VAE controller", visible=visible,
                            resizable=visible, vsync=visible)
    except Exception as e:  # noqa: BLE001 - pyglet raises many kinds of errors for a missing GL / display
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        if headless:
            raise UsageError(f"cannot render offscreen with pyglet's headless EGL ({type(e).__name__}: {first}); "
                             "install Mesa's EGL (libegl1 libgl1-mesa-dri) or run under a virtual display: "
                             "xvfb-run -a python play.py ...") from None
        raise UsageError(f"cannot open a window ({type(e).__name__}: {first}); check $DISPLAY and OpenGL "
                         "(Mesa: libgl1-mesa-dri libglx-mesa0), or record offscreen with --headless --record out.mp4") \
            from None


if __name__ == "__main__":
    sys.exit(main())
