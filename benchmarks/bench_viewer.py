"""Viewer speed at 1280x720: one character, a crowd of 1,000 step by step, the recording loops; one JSON line.

Measured in a real (visible) pyglet window under Xvfb (started here when $DISPLAY is unset), or with
``--headless`` in pyglet's headless EGL mode. A frame is what a user waits for: build the scene, draw,
``glFinish`` (software GL renders asynchronously), ``flip``. The recording loops add ``read_pixels`` and H.264
encoding (``VideoRecorder``, preset veryfast) to a temporary MP4.

Characters are DeepMimic-humanoid-like (15 joints, its joint names and proportions) walking in place with
swinging limbs, so every frame has new positions. The crowd stands at random in the Target task's 40 m arena
and is seen from the app's crowd camera (16 m from a character in the middle, 32 degrees up) and from an
overview of the whole arena. Its steps, measured frame by frame in turn (each on the same load): ``exact``
(every character ray-cast with its exact shadow: the renderer before crowds), ``culling`` (frustum culling),
``impostors`` (characters beyond the nearest as camera-facing capsule quads with blob shadows, every capsule),
``lod`` (the default levels of detail: fewer capsules for far and tiny characters).

Reference, measured in the same run in turns with ours: pybullet's OpenGL renderer (``getCameraImage`` with
``ER_BULLET_HARDWARE_OPENGL``, through its EGL renderer plugin in DIRECT mode: the same Mesa driver, no window)
drawing a plane and the DeepMimic humanoid, once and 1,000 times at the same places (standing still: it is given
no poses), at the same size and from the same camera (in a subprocess: it owns its own GL context). Without the plugin the ratios are left out and
``reference_pybullet_opengl`` says why.

    python -m benchmarks.bench_viewer [--frames 60] [--headless] [--screenshot shot.png]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

from viewer.display import VirtualDisplay, configure_pyglet, display_available

WIDTH, HEIGHT = 1280, 720
CROWD = 1000
ARENA = 20.0  # m: half the side of the Target task's arena
NAMES = ["root", "chest", "neck", "right_hip", "right_knee", "right_ankle", "right_shoulder", "right_elbow",
         "right_wrist", "left_hip", "left_knee", "left_ankle", "left_shoulder", "left_elbow", "left_wrist"]
PARENTS = [-1, 0, 1, 0, 3, 4, 1, 6, 7, 0, 9, 10, 1, 12, 13]
# Rest offsets from the parent (m) of the DeepMimic humanoid (its URDF at scale 0.25), turned to face +z.
OFFSETS = np.array([
    [0, 0, 0], [0, 0.236, 0], [0, 0.224, 0],
    [-0.085, 0, 0], [0, -0.422, 0], [0, -0.410, 0], [-0.183, 0.244, -0.024], [0, -0.275, 0], [0, -0.259, 0],
    [0.085, 0, 0], [0, -0.422, 0], [0, -0.410, 0], [0.183, 0.244, -0.024], [0, -0.275, 0], [0, -0.259, 0],
])
ROOT_HEIGHT = 0.92
SWING = {"right_hip": 1.0, "left_hip": -1.0, "right_shoulder": -0.7, "left_shoulder": 0.7}
# Renderer settings of each step of the crowd work (attributes of viewer.renderer.Renderer).
CROWD_STEPS = {
    "exact": {"cull": False, "near_pixels": 0.0, "max_near": 10**9},
    "culling": {"cull": True, "near_pixels": 0.0, "max_near": 10**9},
    "impostors": {"cull": True, "mid_pixels": 0.0, "tiny_pixels": 0.0},
    "lod": {},
}


def walking_poses(phase: np.ndarray) -> np.ndarray:
    """World joint positions (N, 15, 3) of characters at gait phases (N,) radians, standing at the origin."""
    n = len(phase)
    pos = np.zeros((n, len(NAMES), 3))
    pos[:, 0, 1] = ROOT_HEIGHT + 0.02 * np.cos(2 * phase)
    swing = np.zeros((n, len(NAMES)))
    for name, sign in SWING.items():
        swing[:, NAMES.index(name)] = sign * 0.45 * np.sin(phase)
    angle = np.zeros((n, len(NAMES)))
    for j in range(1, len(NAMES)):
        p = PARENTS[j]
        angle[:, j] = angle[:, p] + swing[:, p]  # limbs inherit the swing of their hip / shoulder
        c, s = np.cos(angle[:, j]), np.sin(angle[:, j])
        off = OFFSETS[j]
        # Rotate the offset about x (forward/back swing in the y-z plane).
        pos[:, j] = pos[:, p] + np.stack([np.full(n, off[0]), c * off[1] - s * off[2], s * off[1] + c * off[2]], -1)
    return pos


def crowd_places(n: int = CROWD, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(ground offsets (n, 3) m, gait phases (n,), colours (n, 3)) of a crowd spread over the arena."""
    rng = np.random.default_rng(seed)
    xz = rng.uniform(-ARENA, ARENA, (n, 2))
    return (np.stack([xz[:, 0], np.zeros(n), xz[:, 1]], axis=-1), rng.uniform(0, 2 * np.pi, n),
            rng.uniform(0.25, 0.9, (n, 3)))


def cameras() -> dict:
    from viewer.camera import Camera

    return {
        "single": Camera(mode="follow", target=(0, 0.9, 0)),
        "crowd_camera": Camera(mode="orbit", target=(0, 0.9, 0), distance=16.0, azimuth=0.6,
                               elevation=math.radians(32.0)),
        "overview": Camera(mode="orbit", target=(0, 0.9, 0), distance=45.0, azimuth=0.6, elevation=math.radians(40)),
    }


def frame_ms(window, scene) -> float:
    """Milliseconds of one frame: set the scene, draw, wait for the rasteriser, flip."""
    from pyglet import gl

    t0 = time.perf_counter()
    window.dispatch_events()
    window.set_scene(scene)
    window.draw_frame()
    gl.glFinish()
    window.flip()
    return (time.perf_counter() - t0) * 1e3


def summary(ms: list[float]) -> dict:
    ms = sorted(ms)
    median = statistics.median(ms)
    return {"fps": round(1000 / median, 1), "fps_min": round(1000 / ms[-1], 1), "fps_max": round(1000 / ms[0], 1),
            "ms_min": round(ms[0], 2), "ms_median": round(median, 2), "ms_max": round(ms[-1], 2), "frames": len(ms)}


# --- reference: pybullet's OpenGL renderer through its EGL plugin, in its own process -----------------------
_PYBULLET_SERVER = r"""
import json, math, os, pkgutil, sys, time
out = os.dup(1)
os.dup2(os.open(os.devnull, os.O_WRONLY), 1)  # pybullet prints to stdout: keep it for the replies
import numpy as np
import pybullet as p
import pybullet_data
setup = json.loads(sys.argv[1])
egl = pkgutil.get_loader("eglRenderer")
if egl is None:
    os.write(out, b'{"error": "pybullet has no eglRenderer plugin"}\n')
    sys.exit(0)
client = p.connect(p.DIRECT)
if p.loadPlugin(egl.get_filename(), "_eglRendererPlugin", physicsClientId=client) < 0:
    os.write(out, b'{"error": "pybullet could not load its eglRenderer plugin"}\n')
    sys.exit(0)
p.setAdditionalSearchPath(pybullet_data.getDataPath(), physicsClientId=client)
# Our world is y-up: turn the z-up plane; the humanoid's URDF is y-up already.
p.loadURDF("plane.urdf", [0, 0, 0], p.getQuaternionFromEuler([-math.pi / 2, 0, 0]), physicsClientId=client)
for x, z in setup["places"]:
    p.loadURDF("humanoid/humanoid.urdf", [x, setup["root_height"], z], globalScaling=0.25, useFixedBase=True,
               flags=p.URDF_ENABLE_CACHED_GRAPHICS_SHAPES, physicsClientId=client)
view = p.computeViewMatrix(setup["eye"], setup["target"], [0, 1, 0])
proj = p.computeProjectionMatrixFOV(setup["fov_deg"], setup["width"] / setup["height"], 0.05, 400.0)
def draw():
    p.getCameraImage(setup["width"], setup["height"], view, proj, renderer=p.ER_BULLET_HARDWARE_OPENGL,
                     flags=p.ER_NO_SEGMENTATION_MASK, physicsClientId=client)
draw()  # warm-up: the first frame uploads every mesh
os.write(out, (json.dumps({"ready": True}) + "\n").encode())
for line in sys.stdin:
    ms = []
    for _ in range(int(line)):
        t0 = time.perf_counter()
        draw()
        ms.append((time.perf_counter() - t0) * 1e3)
    os.write(out, (json.dumps({"ms": ms}) + "\n").encode())
"""


class PybulletReference:
    """pybullet drawing a plane and humanoids at ``places`` (K, 2) seen by ``camera``, in a subprocess that renders
    on request, so that its frames interleave with ours; ``error`` says why it cannot (then ``frames`` is empty)."""

    def __init__(self, places: np.ndarray, camera) -> None:
        setup = {"places": np.asarray(places, dtype=float).tolist(), "root_height": ROOT_HEIGHT,
                 "eye": camera.eye().tolist(), "target": camera.look_target().tolist(),
                 "fov_deg": math.degrees(camera.fov_y), "width": WIDTH, "height": HEIGHT}
        env = {k: v for k, v in os.environ.items() if k != "DISPLAY"}  # EGL, no X: like a headless server
        self.error = None
        self._proc = subprocess.Popen([sys.executable, "-c", _PYBULLET_SERVER, json.dumps(setup)], stdin=subprocess.PIPE,
                                      stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
        reply = self._reply()
        if "error" in reply:
            self.error = reply["error"]

    def _reply(self) -> dict:
        line = self._proc.stdout.readline()
        if not line:
            return {"error": f"pybullet reference exited with status {self._proc.wait()}"}
        return json.loads(line)

    def frames(self, count: int) -> list[float]:
        if self.error is not None:
            return []
        self._proc.stdin.write(f"{count}\n")
        self._proc.stdin.flush()
        reply = self._reply()
        if "error" in reply:
            self.error = reply["error"]
            return []
        return reply["ms"]

    def close(self) -> None:
        if self._proc.poll() is None:
            self._proc.stdin.close()
            try:
                self._proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()


# --- ours ---------------------------------------------------------------------------------------------------
def configure(renderer, settings: dict, defaults: dict) -> None:
    for name, value in {**defaults, **settings}.items():
        setattr(renderer, name, value)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=60, help="timed frames of the single character (crowd steps: "
                                                           "a quarter each, at least 8)")
    ap.add_argument("--reference-frames", type=int, default=3, help="timed pybullet frames per scene")
    ap.add_argument("--headless", action="store_true", help="pyglet headless EGL instead of a window under Xvfb")
    ap.add_argument("--screenshot", help="also save PNGs of the single character and the crowd views here "
                                         "(NAME.png, NAME_crowd_camera.png, NAME_overview.png)")
    args = ap.parse_args()
    crowd_frames = max(args.frames // 4, 8)

    xvfb = None
    if not args.headless and not display_available():
        xvfb = VirtualDisplay(WIDTH, HEIGHT).start()
    configure_pyglet(headless=args.headless)
    from pyglet.gl import gl_info

    from viewer.recorder import VideoRecorder
    from viewer.scene import Characters, Marker, Polyline, SceneFrame
    from viewer.window import ViewerWindow

    views = cameras()
    offsets, phases, rgba = crowd_places()
    references = {"single": PybulletReference(np.zeros((1, 2)), views["single"]),
                  "crowd_camera": PybulletReference(offsets[:, [0, 2]], views["crowd_camera"])}
    ref_ms: dict[str, list[float]] = {name: [] for name in references}
    try:
        window = ViewerWindow(WIDTH, HEIGHT, visible=not args.headless, resizable=False)
        renderer = window.renderer
        defaults = {name: getattr(renderer, name) for settings in CROWD_STEPS.values() for name in settings}
        u = np.linspace(0, 1, 30)
        path = np.stack([-5 * u + 0.8 * np.sin(3 * u), np.full(30, 0.02), -4 * u], -1)  # (30, 3)

        def single(i: int) -> SceneFrame:
            pose = walking_poses(np.array([0.15 * i]))
            return SceneFrame(characters=[Characters(pose, PARENTS, NAMES)],
                              markers=[Marker(path[-1] + (0, 0.13, 0), 0.15, (0.9, 0.15, 0.15))],
                              polylines=[Polyline(path, (0.2, 0.5, 0.95), 0.03, True)])

        def crowd(i: int) -> SceneFrame:
            poses = walking_poses(phases + 0.15 * i) + offsets[:, None, :]  # (CROWD, 15, 3)
            return SceneFrame(characters=[Characters(poses, PARENTS, NAMES, rgba)])

        rounds = 3  # ours and the reference take turns, so that both meet the same load
        single_ms, steps_ms, counts = [], {v: {s: [] for s in CROWD_STEPS} for v in ("crowd_camera", "overview")}, {}
        window.set_hud(["Motion VAE viewer benchmark"])
        for r in range(rounds):
            window.camera = views["single"]
            configure(renderer, {}, defaults)
            for i in range(args.frames // rounds + (2 if r == 0 else 0)):
                ms = frame_ms(window, single(i))
                if r > 0 or i >= 2:  # warm-up: first frames compile shaders
                    single_ms.append(ms)
            ref_ms["single"] += references["single"].frames(max(args.reference_frames // rounds, 1))
            for view in ("crowd_camera", "overview"):
                window.camera = views[view]
                for i in range(crowd_frames // rounds + (1 if r == 0 else 0)):
                    for step, settings in CROWD_STEPS.items():  # frame by frame in turn
                        configure(renderer, settings, defaults)
                        ms = frame_ms(window, crowd(i))
                        if r > 0 or i >= 1:
                            steps_ms[view][step].append(ms)
                        counts[(view, step)] = dict(renderer.last_counts)
            ref_ms["crowd_camera"] += references["crowd_camera"].frames(max(args.reference_frames // rounds, 1))
        configure(renderer, {}, defaults)

        if args.screenshot:
            import imageio.v3 as iio

            stem = os.path.splitext(args.screenshot)[0]
            window.camera = views["single"]
            window.set_scene(single(10))
            iio.imwrite(args.screenshot, window.render_to_array())
            for view in ("crowd_camera", "overview"):
                window.camera = views[view]
                window.set_scene(crowd(10))
                iio.imwrite(f"{stem}_{view}.png", window.render_to_array())

        recording = {}
        with tempfile.TemporaryDirectory() as tmp:
            for name, camera, scene_at, frames in (("single", views["single"], single, args.frames),
                                                   ("crowd_camera", views["crowd_camera"], crowd, crowd_frames)):
                window.camera = camera
                with VideoRecorder(os.path.join(tmp, f"{name}.mp4"), fps=30, size=window.get_framebuffer_size()) as rec:
                    ms = []
                    for i in range(frames):
                        t0 = time.perf_counter()
                        window.set_scene(scene_at(i))
                        rec.append(window.render_to_array())
                        ms.append((time.perf_counter() - t0) * 1e3)
                    encoded = rec.frame_count
                # Closing waits for ffmpeg to finish the frames still queued: part of the recording cost.
                recording[name] = {**summary(ms), "encoded_frames": encoded}
        gl_renderer = gl_info.get_renderer()
        window.close()
    finally:
        for reference in references.values():
            reference.close()
        if xvfb is not None:
            xvfb.stop()

    one = summary(single_ms)
    crowd_out = {"characters": CROWD}
    for view, steps in steps_ms.items():
        crowd_out[view] = {step: {**summary(ms), "counts": counts[(view, step)]} for step, ms in steps.items()}
        crowd_out[view]["lod_vs_exact"] = round(crowd_out[view]["lod"]["fps"] / crowd_out[view]["exact"]["fps"], 1)
    result = {
        "benchmark": "viewer",
        "size": f"{WIDTH}x{HEIGHT}",
        "backend": "headless EGL" if args.headless else ("Xvfb window" if xvfb is not None else "X window"),
        "gl_renderer": gl_renderer,
        "threads": {"cpus": os.cpu_count(), "llvmpipe": int(os.environ.get("LP_NUM_THREADS", os.cpu_count()))},
        "single_character": one,
        "crowd": crowd_out,
        "recording_loop": recording,
    }
    error = next((r.error for r in references.values() if r.error is not None), None)
    if error is None:
        ref_single, ref_crowd = summary(ref_ms["single"]), summary(ref_ms["crowd_camera"])
        result["reference_pybullet_opengl"] = {
            "renderer": "ER_BULLET_HARDWARE_OPENGL through pybullet's eglRenderer plugin (DIRECT mode)",
            "single": ref_single, "crowd_camera": {**ref_crowd, "characters": CROWD}}
        result["single_vs_pybullet"] = round(one["fps"] / ref_single["fps"], 1)
        result["crowd_vs_pybullet"] = round(crowd_out["crowd_camera"]["lod"]["fps"] / ref_crowd["fps"], 1)
    else:
        result["reference_pybullet_opengl"] = {"unavailable": error}
    result["goal_crowd_30fps_met"] = crowd_out["crowd_camera"]["lod"]["fps"] >= 30
    result["load_avg_1min"] = round(os.getloadavg()[0], 2)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
