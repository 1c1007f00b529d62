"""Viewer speed at 1280x720: one character, a crowd of 256, and the recording loop; prints one JSON line.

Measured in a real (visible) pyglet window under Xvfb (started here when $DISPLAY is unset), or with
``--headless`` in pyglet's headless EGL mode. A frame is what a user waits for: build the scene, draw,
``glFinish`` (software GL renders asynchronously), ``flip``. The recording loop adds ``read_pixels``
and H.264 encoding (``VideoRecorder``, preset veryfast) to a temporary MP4.

Characters are DeepMimic-humanoid-like (15 joints, its joint names and proportions) walking in place
with swinging limbs, so every frame has new positions. Reference, measured in the same run: pybullet's
TinyRenderer (``getCameraImage``, DIRECT mode) drawing a plane and the DeepMimic humanoid at 1280x720.

    python benchmarks/bench_viewer.py [--frames 120] [--headless] [--screenshot shot.png]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import statistics
import sys
import tempfile
import time

import numpy as np

from viewer.display import VirtualDisplay, configure_pyglet, display_available

WIDTH, HEIGHT = 1280, 720
CROWD = 256
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


def timed_frames(window, scene_at, frames: int, after=None) -> list[float]:
    """Seconds per frame for ``frames`` frames (after 5 warm-up frames)."""
    from pyglet import gl

    times = []
    for i in range(frames + 5):
        t0 = time.perf_counter()
        window.dispatch_events()
        window.set_scene(scene_at(i))
        window.draw_frame()
        if after is not None:
            after()
        gl.glFinish()
        window.flip()
        if i >= 5:
            times.append(time.perf_counter() - t0)
    return times


def summary(times: list[float]) -> dict:
    ms = sorted(t * 1000 for t in times)
    return {"fps": round(1000 / statistics.median(ms), 1), "ms_min": round(ms[0], 2),
            "ms_median": round(statistics.median(ms), 2), "ms_max": round(ms[-1], 2), "frames": len(ms)}


@contextlib.contextmanager
def quiet_stdout():
    """Silence C-level prints (pybullet's URDF warnings) so stdout carries only the JSON line."""
    sys.stdout.flush()
    saved = os.dup(1)
    with open(os.devnull, "w") as devnull:
        os.dup2(devnull.fileno(), 1)
        try:
            yield
        finally:
            os.dup2(saved, 1)
            os.close(saved)


def pybullet_reference(frames: int) -> dict:
    with quiet_stdout():
        import pybullet as p
        import pybullet_data

        client = p.connect(p.DIRECT)
    try:
        with quiet_stdout():
            p.setAdditionalSearchPath(pybullet_data.getDataPath(), physicsClientId=client)
            p.loadURDF("plane.urdf", physicsClientId=client)
            # pybullet is z-up; the humanoid's URDF is y-up: turn it upright.
            p.loadURDF("humanoid/humanoid.urdf", [0, 0, 0.9], p.getQuaternionFromEuler([math.pi / 2, 0, 0]),
                       globalScaling=0.25, useFixedBase=True, physicsClientId=client)
        view = p.computeViewMatrix([3.0, 3.0, 1.5], [0, 0, 0.9], [0, 0, 1])
        proj = p.computeProjectionMatrixFOV(45, WIDTH / HEIGHT, 0.05, 100)
        times = []
        for _ in range(frames):
            t0 = time.perf_counter()
            p.getCameraImage(WIDTH, HEIGHT, view, proj, renderer=p.ER_TINY_RENDERER, physicsClientId=client)
            times.append(time.perf_counter() - t0)
        return summary(times)
    finally:
        p.disconnect(client)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=120, help="timed frames for one character (crowd: a quarter)")
    ap.add_argument("--headless", action="store_true", help="pyglet headless EGL instead of a window under Xvfb")
    ap.add_argument("--screenshot", help="also save a PNG of the single-character scene here")
    args = ap.parse_args()

    xvfb = None
    if not args.headless and not display_available():
        xvfb = VirtualDisplay(WIDTH, HEIGHT).start()
    configure_pyglet(headless=args.headless)
    from pyglet.gl import gl_info

    from viewer.camera import Camera
    from viewer.recorder import VideoRecorder
    from viewer.scene import Characters, Marker, Polyline, SceneFrame
    from viewer.window import ViewerWindow

    try:
        window = ViewerWindow(WIDTH, HEIGHT, visible=not args.headless, resizable=False)
        window.set_hud(["Motion VAE viewer benchmark", "1 character", "speed 1.30 m/s"])
        # A path from the character to a target, away from the default follow camera.
        u = np.linspace(0, 1, 30)
        path = np.stack([-5 * u + 0.8 * np.sin(3 * u), np.full(30, 0.02), -4 * u], -1)  # (30, 3)

        def single(i: int) -> SceneFrame:
            pose = walking_poses(np.array([0.15 * i]))
            return SceneFrame(characters=[Characters(pose, PARENTS, NAMES)],
                              markers=[Marker(path[-1] + (0, 0.13, 0), 0.15, (0.9, 0.15, 0.15))],
                              polylines=[Polyline(path, (0.2, 0.5, 0.95), 0.03, True)])

        window.camera = Camera(mode="follow", target=(0, 0.9, 0))
        single_times = timed_frames(window, single, args.frames)
        if args.screenshot:
            window.set_scene(single(10))
            import imageio.v3 as iio

            iio.imwrite(args.screenshot, window.render_to_array())

        side = int(math.ceil(math.sqrt(CROWD)))
        grid = np.array([[2.0 * (k % side), 0.0, 2.0 * (k // side)] for k in range(CROWD)])  # (CROWD, 3)
        phases = np.random.default_rng(0).uniform(0, 2 * np.pi, CROWD)
        rgba = np.random.default_rng(1).uniform(0.25, 0.9, (CROWD, 3))

        def crowd(i: int) -> SceneFrame:
            poses = walking_poses(phases + 0.15 * i) + grid[:, None, :]  # (CROWD, 15, 3)
            return SceneFrame(characters=[Characters(poses, PARENTS, NAMES, rgba)])

        centre = grid.mean(axis=0) + (0, 0.9, 0)
        window.camera = Camera(mode="orbit", target=centre, distance=30.0, azimuth=0.6, elevation=0.45)
        window.set_hud(["Motion VAE viewer benchmark", f"crowd of {CROWD}"])
        crowd_times = timed_frames(window, crowd, max(args.frames // 4, 10))
        capsules = window.renderer.last_counts["capsules"]

        window.camera = Camera(mode="follow", target=(0, 0.9, 0))
        window.set_hud(["recording"])
        with tempfile.TemporaryDirectory() as tmp:
            with VideoRecorder(os.path.join(tmp, "bench.mp4"), fps=30, size=window.get_framebuffer_size()) as rec:
                record_times = timed_frames(window, single, args.frames, after=lambda: rec.append(window.read_pixels()))
                encoded = rec.frame_count
            # Closing waits for ffmpeg to finish the frames still queued: part of the recording cost.
        renderer = gl_info.get_renderer()
        window.close()
    finally:
        if xvfb is not None:
            xvfb.stop()

    reference = pybullet_reference(frames=3)
    one = summary(single_times)
    result = {
        "benchmark": "viewer",
        "size": f"{WIDTH}x{HEIGHT}",
        "backend": "headless EGL" if args.headless else ("Xvfb window" if xvfb is not None else "X window"),
        "gl_renderer": renderer,
        "single_character": one,
        "crowd": {**summary(crowd_times), "characters": CROWD, "capsules": capsules},
        "recording_loop": {**summary(record_times), "encoded_frames": encoded},
        "reference_pybullet_tinyrenderer": reference,
        "single_vs_pybullet": round(one["fps"] / reference["fps"], 1),
        "recording_vs_pybullet": round(summary(record_times)["fps"] / reference["fps"], 1),
        "goal_single_60fps_met": one["fps"] >= 60,
        "load_average_1min": round(os.getloadavg()[0], 2),
        "cpu_count": os.cpu_count(),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
