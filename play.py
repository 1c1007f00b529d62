"""Play with a Motion VAE character in real time, or render a video of it.

    python play.py                                    # interactive: joystick task, WASD / gamepad / mouse
    python play.py --character characters/mine       # a character built with `python -m characters.build`
    python play.py --vae vq.pt --prior prior.pt       # a bare VQ model driven through its code prior
    python play.py --task target --characters 64      # a crowd, each with its own target
    python play.py --input-script assets/demos/tour.json --record demo.mp4   # the scripted demo video
    python play.py --record-input mine.json           # save what you do, replay it with --input-script
    python play.py --record-bvh session.bvh           # the followed character's motion as BVH, for Blender

Without a display (no $DISPLAY, or one that cannot be reached) and without ``--record``, it says so in one
line and renders ``demo.mp4`` (the shipped scripted tour, 32 s, or ``--seconds``) offscreen instead.
Recording is offscreen (a hidden window, or pyglet's headless EGL without a display), one video frame per
simulation step at the VAE's frame rate: a seed plus an input script give the same video every time.
Keys and mouse: see ``app/inputs.py`` (F1 in the app). The app itself: the ``app`` package.

Errors (missing model, bad flags, no way to render) are one line on stderr and exit status 2; ``--debug``
shows the traceback instead.
"""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent
DEMO_SCRIPT = REPO / "assets" / "demos" / "tour.json"
DEFAULT_SECONDS = 10.0
NO_DISPLAY_VIDEO = "demo.mp4"
MAX_SIZE = (7680, 4320)  # 8K: beyond it software GL runs out of framebuffer


class UsageError(Exception):
    """A problem the user can fix; printed as one line."""


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="play.py", description="Real-time Motion VAE character controller.")
    p.add_argument("--character", default=None,
                   help="character bundle: a folder from `python -m characters.build` or a shipped name (default: "
                        "deepmimic); its VAE and policies drive the app")
    p.add_argument("--vae", type=Path, default=None, help="VAE checkpoint (default: the character's)")
    p.add_argument("--prior", type=Path, default=None,
                   help="code prior of a VQ VAE (python -m vae.train_prior; default: the character's prior.pt when its "
                        "own VAE is used): codes are drawn from it, and prior-residual policies steer through it")
    p.add_argument("--task", default=None, help="starting task: random_walk, target, joystick, path_follow (path), "
                   "maze (default joystick, or the script's)")
    p.add_argument("--characters", type=int, default=None, help="characters stepped in one batch (default 1)")
    p.add_argument("--backend", choices=("auto", "onnx", "torch"), default="auto",
                   help="inference: ONNX Runtime (auto when installed) or torch")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    p.add_argument("--precision", choices=("auto", "fp32", "int8", "bf16"), default="auto",
                   help="int8: ONNX Runtime on 8-bit weights (CPU only; policy + decoder of one character in 0.072 "
                        "instead of 0.121 ms); bf16: the decoder in bfloat16 through torch, for crowds on processors "
                        "with bfloat16 instructions; auto (default): bf16 for 256 characters or more where it is "
                        "native, else fp32 (README, section 6)")
    p.add_argument("--policies", type=Path, default=None,
                   help="folder of task policies <task>.pt, e.g. target.pt, path_follow.pt (default: the character's; "
                        "missing: sampling fallback)")
    p.add_argument("--record", type=Path, default=None, help="render offscreen into this .mp4 / .gif and exit")
    p.add_argument("--seconds", type=float, default=None,
                   help=f"length of --record in simulation seconds (default: the input script's, else "
                        f"{DEFAULT_SECONDS:g})")
    p.add_argument("--size", default="1280x720", help="window / video size WxH (default 1280x720)")
    p.add_argument("--record-input", type=Path, default=None, help="save your inputs per simulation step (JSON)")
    p.add_argument("--input-script", type=Path, default=None, help="replay inputs saved with --record-input")
    p.add_argument("--record-bvh", type=Path, default=None,
                   help="write the followed character's motion of the whole session to this .bvh (key B also "
                        "starts / stops a capture)")
    p.add_argument("--no-foot-locking", action="store_true",
                   help="draw, record and export the model's raw feet (key L toggles it live)")
    p.add_argument("--record-bvh-all", action="store_true",
                   help="with --record-bvh: every character, one file each (<stem>_0000.bvh, ...)")
    p.add_argument("--style", default=None,
                   help="start in this motion style (a character built with --styles; T cycles them live)")
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
    if w > MAX_SIZE[0] or h > MAX_SIZE[1]:
        raise UsageError(f"--size {text!r}: at most {MAX_SIZE[0]}x{MAX_SIZE[1]} pixels")
    return w, h


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        return run(args)
    except KeyboardInterrupt:
        print("play.py: interrupted", file=sys.stderr)
        return 130
    except (UsageError, FileNotFoundError, PermissionError, ValueError, RuntimeError, ImportError, OSError) as e:
        if args.debug:
            raise
        print(f"play.py: error: {e}", file=sys.stderr)
        return 2


def run(args: argparse.Namespace) -> int:
    from app.input_script import InputRecorder, InputScript
    from app.interactive import App, next_free_path
    from app.motion_capture import MotionCapture
    from app.simulation import BUNDLE_POLICIES, AppConfig, Simulation
    from common.paths import output_file
    from viewer.display import configure_pyglet, display_available

    size = parse_size(args.size)
    if args.record_bvh_all and args.record_bvh is None:
        raise UsageError("--record-bvh-all needs --record-bvh PATH (the files are PATH's stem + _0000.bvh, ...)")
    for flag, path, suffixes in (("--record-input", args.record_input, (".json",)),
                                 ("--record-bvh", args.record_bvh, (".bvh",))):
        if path is not None:
            output_file(path, flag, suffixes)  # before any work: a session's input must not be lost at exit
    script = InputScript.load(args.input_script) if args.input_script is not None else None
    headless = args.headless or not display_available()
    record = args.record
    if record is None and headless:
        why = "--headless was given" if args.headless else "no display ($DISPLAY is unset or cannot be reached)"
        if script is None:
            script = InputScript.load(DEMO_SCRIPT)
        record = next_free_path(Path(NO_DISPLAY_VIDEO))  # never overwrite an earlier demo
        seconds = args.seconds if args.seconds is not None else (
            script.steps / script.fps if script.steps > 0 else DEFAULT_SECONDS)  # the whole tour by default
        print(f"play.py: {why}: recording {seconds:g} s of the scripted demo to {record.resolve()} instead "
              "(run with a display for the interactive app)", flush=True)
        args.seconds = seconds
    if record is not None:
        output_file(record, "--record", (".mp4", ".gif"))
    if record is not None and record.suffix.lower() == ".mp4" and (size[0] % 2 or size[1] % 2):
        raise UsageError(f"--size {size[0]}x{size[1]}: an MP4 (H.264, yuv420p) needs an even width and height; "
                         f"use {size[0] + size[0] % 2}x{size[1] + size[1] % 2}, or record a .gif")

    config = AppConfig(
        character=args.character, vae=args.vae,
        task=args.task or (script.task if script else "joystick"),
        characters=args.characters if args.characters is not None else (script.characters if script else 1),
        backend=args.backend, device=args.device, precision=args.precision,
        seed=args.seed if args.seed is not None else (script.seed if script else 0),
        policies_dir=args.policies if args.policies is not None else BUNDLE_POLICIES,
        foot_locking=not args.no_foot_locking, style=args.style, prior=args.prior, prior_flag=args.prior is not None,
        foot_lock_nearest=0 if args.record_bvh_all else AppConfig.foot_lock_nearest,  # every exported file planted
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
    capture = None
    if args.record_bvh is not None:
        capture = MotionCapture(sim.skeleton, sim.fps, characters=None if args.record_bvh_all else [0])
    app = App(sim, window, script=script.player() if script else None, input_recorder=recorder,
              realtime=record is None, motion_capture=capture, capture_path=args.record_bvh)
    if app.gamepads is not None:
        print(f"play.py: {app.gamepads.status}", flush=True)
    try:
        if record is not None:
            if args.seconds is not None:
                steps = round(args.seconds * sim.fps)
            else:
                steps = script.steps if script is not None and script.steps > 0 else round(DEFAULT_SECONDS * sim.fps)
            try:
                path = app.record_video(record, steps)
            except KeyboardInterrupt:
                print(f"play.py: interrupted after {app.sim.step_count} of {steps} frames: {record} was not "
                      "written (videos are written whole or not at all)", file=sys.stderr, flush=True)
                raise
            print(f"play.py: wrote {path.resolve()} ({steps} frames, {window.get_framebuffer_size()[0]}x"
                  f"{window.get_framebuffer_size()[1]}, {sim.fps:g} fps; inference {sim.backend.summary})", flush=True)
        else:
            # A polite kill (SIGTERM) ends the loop like Esc does, so --record-input is still saved.
            signal.signal(signal.SIGTERM, _exit_on_terminate)
            app.run()
    finally:
        noted = len(sim.notes)
        app.finish_capture()
        for note in sim.notes[noted:]:
            print(f"play.py: {note}", flush=True)
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
        import pyglet.gl
        import pyglet.window

        from viewer.window import ViewerWindow
    except (ImportError, OSError) as e:  # no GL library, or none pyglet can load
        raise _window_error(e, headless) from None
    # What pyglet raises for a missing or unusable GL / display (anything else is a bug: let it show).
    platform_errors = (ImportError, OSError, RuntimeError, pyglet.window.WindowException, pyglet.gl.ContextException,
                       pyglet.gl.ConfigException)
    try:
        return ViewerWindow(size[0], size[1], caption="Motion VAE controller", visible=visible,
                            resizable=visible, vsync=visible)
    except platform_errors as e:
        raise _window_error(e, headless) from None


def _window_error(e: BaseException, headless: bool) -> UsageError:
    first = str(e).splitlines()[0] if str(e) else type(e).__name__
    if headless:
        return UsageError(f"cannot render offscreen with pyglet's headless EGL ({type(e).__name__}: {first}); "
                          "install Mesa's EGL (libegl1 libgl1-mesa-dri) or run under a virtual display: "
                          "xvfb-run -a python play.py ...")
    return UsageError(f"cannot open a window ({type(e).__name__}: {first}); check $DISPLAY and OpenGL "
                      "(Mesa: libgl1-mesa-dri libglx-mesa0), or record offscreen with --headless --record out.mp4")


if __name__ == "__main__":
    sys.exit(main())
