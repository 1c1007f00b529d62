"""Viewer: geometry, camera, scene validation, real windows under Xvfb, headless EGL, video files.

Window tests are marked ``display``; they start their own Xvfb when no display is reachable (and skip
when Xvfb is not installed). The headless test runs in a subprocess because pyglet fixes its platform
(X11 or EGL) once per process.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import imageio.v3 as iio
import imageio_ffmpeg
import numpy as np
import pytest

from viewer.body import HEAD_RADIUS, TORSO_RADIUS, body_capsules, body_plan
from viewer.camera import Camera
from viewer.display import configure_pyglet, egl_available
from viewer.recorder import VideoRecorder
from viewer.scene import Characters, Marker, Polyline, SceneFrame
from viewer.shapes import box_mesh, capsule_proxies, capsule_ray_hits

REPO = Path(__file__).resolve().parents[1]

# A small upright skeleton facing +z (its left side towards +x), feet on the ground.
NAMES = ["hips", "spine", "head", "left_hip", "left_knee", "left_foot", "right_hip", "right_knee", "right_foot",
         "left_shoulder", "left_hand", "right_shoulder", "right_hand"]
PARENTS = [-1, 0, 1, 0, 3, 4, 0, 6, 7, 1, 9, 1, 11]
STANDING = np.array([
    [0.0, 0.95, 0.0], [0.0, 1.4, 0.0], [0.0, 1.58, 0.0],
    [0.1, 0.9, 0.0], [0.1, 0.5, 0.0], [0.1, 0.08, 0.0],
    [-0.1, 0.9, 0.0], [-0.1, 0.5, 0.0], [-0.1, 0.08, 0.0],
    [0.2, 1.38, 0.0], [0.26, 0.85, 0.0], [-0.2, 1.38, 0.0], [-0.26, 0.85, 0.0],
])


def character(offset=(0.0, 0.0, 0.0), rgba=(0.85, 0.45, 0.2, 1.0)) -> Characters:
    return Characters(STANDING + np.asarray(offset), PARENTS, NAMES, rgba)


# --- pure geometry -------------------------------------------------------------------------------------
def test_box_mesh_faces_point_outwards():
    mesh = box_mesh()
    tri = mesh.positions[mesh.indices.reshape(-1, 3)]  # (12, 3, 3)
    face_normal = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    centroid = tri.mean(axis=1)
    assert np.all(np.einsum("kc,kc->k", face_normal, centroid) > 0), "triangles must wind CCW seen from outside"


def test_capsule_proxy_encloses_capsule_and_ray_cast_hits_its_surface():
    rng = np.random.default_rng(0)
    a, b, r = np.array([0.2, 1.0, -0.3]), np.array([0.5, 0.4, 0.1]), 0.07
    model = capsule_proxies(np.array([[a, b]]), np.array([r]))[0]
    # Points on the capsule surface: along the axis plus r in random directions (clipped to the surface).
    s = rng.uniform(0, 1, 500)[:, None]
    d = rng.normal(size=(500, 3))
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    surface = a + s * (b - a) + r * d
    local = np.linalg.solve(model[:3, :3], (surface - model[:3, 3]).T).T
    assert np.all(np.abs(local) <= 1.0 + 1e-9), "the proxy box must contain the whole capsule"

    # Rays from outside straight at the axis midpoint hit the surface r before the axis.
    mid = 0.5 * (a + b)
    axis = (b - a) / np.linalg.norm(b - a)
    side = np.cross(axis, [0.0, 0.0, 1.0])
    side /= np.linalg.norm(side)
    origins = mid + np.outer([1.0, 2.0, 3.0], side)
    t = capsule_ray_hits(origins, np.broadcast_to(-side, origins.shape), a, b, r)
    np.testing.assert_allclose(t, [1.0 - r, 2.0 - r, 3.0 - r], atol=1e-9)
    # A ray passing 2 r beside the capsule misses; a ray down onto the end cap hits the sphere.
    beside = origins[:1] + np.cross(side, axis) * 2 * r  # passes the axis 2 r away
    assert np.isinf(capsule_ray_hits(beside, -side[None], a, b, r)[0])
    top = capsule_ray_hits(a + np.array([[0.0, 1.0, 0.0]]), np.array([[0.0, -1.0, 0.0]]), a, b, r)
    assert abs(top[0] - (1.0 - r)) < 1e-9


def test_body_plan_gives_deepmimic_humanoid_a_head_hands_feet_and_a_thick_torso():
    names = ["root", "chest", "neck", "right_hip", "right_knee", "right_ankle", "right_shoulder", "right_elbow",
             "right_wrist", "left_hip", "left_knee", "left_ankle", "left_shoulder", "left_elbow", "left_wrist"]
    parents = [-1, 0, 1, 0, 3, 4, 1, 6, 7, 0, 9, 10, 1, 12, 13]
    plan = body_plan(names, parents)
    assert [names[i] for i in plan.head_joint] == ["neck"]
    assert sorted(names[i] for i in plan.foot_joint) == ["left_ankle", "right_ankle"]
    assert sorted(names[i] for i in plan.hand_joint) == ["left_wrist", "right_wrist"]
    radius = dict(zip((names[c] for c in plan.bone_child), plan.bone_radius, strict=True))
    assert radius["chest"] == TORSO_RADIUS and radius["right_knee"] < TORSO_RADIUS  # torso vs thigh
    assert radius["right_knee"] > radius["right_ankle"] > radius["right_wrist"]  # thigh > shin > forearm
    pos = np.random.default_rng(1).normal(size=(3, 15, 3))
    ends, radii, rgba = body_capsules(plan, pos, np.ones((3, 4), dtype=np.float32))
    assert ends.shape == (3 * plan.capsules_per_body, 2, 3) and radii.shape == rgba.shape[:1] == ends.shape[:1]
    assert HEAD_RADIUS in radii


def test_unnamed_skeleton_gets_length_scaled_bones_and_radii_override_hides_bones():
    pos = np.array([[0.0, 1.0, 0.0], [0.0, 1.5, 0.0], [0.0, 1.52, 0.0]])
    plan = body_plan(["a", "b", "c"], [-1, 0, 1])
    _, radii, _ = body_capsules(plan, pos[None], np.ones((1, 4), dtype=np.float32))
    assert radii[0] == pytest.approx(0.06) and radii[1] == pytest.approx(0.015)  # clipped to the range
    hidden = body_plan(["a", "b", "c"], [-1, 0, 1], joint_radii=[0.0, 0.0, 0.05])
    assert list(hidden.bone_child) == [2]


def test_scene_rejects_bad_input_with_the_field_name():
    with pytest.raises(ValueError, match="positions"):
        Characters(np.zeros((2, 5)), [-1, 0, 1, 2, 3])
    with pytest.raises(ValueError, match="parents"):
        Characters(np.zeros((3, 3)), [-1, 0])
    with pytest.raises(ValueError, match="joint_radii"):
        Characters(np.zeros((3, 3)), [-1, 0, 1], joint_radii=[0.1, -0.1, 0.1])
    with pytest.raises(ValueError, match="0-255"):
        Characters(np.zeros((3, 3)), [-1, 0, 1], rgba=(200, 100, 50))
    with pytest.raises(ValueError, match=r"markers\[0\]"):
        SceneFrame(markers=[((0, 0), 0.1, (1, 0, 0))])
    with pytest.raises(ValueError, match=r"polylines\[0\]"):
        SceneFrame(polylines=[(np.zeros((1, 3)), (1, 0, 0), 0.02)])
    # Plain tuples work like the named tuples.
    scene = SceneFrame(markers=[((1, 0, 2), 0.2, (1, 0, 0))], polylines=[(np.zeros((2, 3)), (0, 0, 1), 0.02)],
                       boxes=[((0, 0.5, 0), (1, 0.5, 0.1), 0.3, (0.5, 0.5, 0.5))])
    assert scene.markers[0].radius == 0.2 and scene.boxes[0].rgba.shape == (4,)


# --- camera ----------------------------------------------------------------------------------------------
def test_screen_to_ground_inverts_the_projection_within_a_centimetre():
    rng = np.random.default_rng(2)
    for mode in ("follow", "fixed"):
        cam = Camera(mode=mode, target=(1.0, 0.9, -2.0), distance=6.0, azimuth=0.7, elevation=0.4)
        ground = np.column_stack([rng.uniform(-3, 5, 200), np.zeros(200), rng.uniform(-6, 2, 200)])
        pixels = cam.world_to_screen(ground, 1280, 720)
        on_screen = (pixels[:, 0] >= 0) & (pixels[:, 0] <= 1280) & (pixels[:, 1] >= 0) & (pixels[:, 1] <= 720)
        assert on_screen.sum() > 50
        for p, (px, py) in zip(ground[on_screen], pixels[on_screen], strict=True):
            x, z = cam.screen_to_ground(px, py, 1280, 720)
            assert math.hypot(x - p[0], z - p[2]) < 0.01
    assert Camera(elevation=0.2).screen_to_ground(640, 719, 1280, 720) is None  # the sky


def test_follow_camera_converges_smoothly_without_overshoot_and_modes_cycle():
    cam = Camera(mode="follow", target=(0.0, 0.9, 0.0), smoothing_time=0.4)
    goal = np.array([3.0, 0.9, 0.0])
    xs = []
    for _ in range(90):  # 1.5 s at 60 Hz
        cam.update(1 / 60, goal)
        xs.append(cam.target[0])
    assert np.all(np.diff(xs) >= -1e-12) and max(xs) <= 3.0 + 1e-9  # monotone, no overshoot
    assert abs(xs[int(0.4 * 60) - 1] - 3.0) < 0.35  # ~90 % there after smoothing_time
    assert abs(xs[-1] - 3.0) < 0.01
    assert [cam.cycle_mode() for _ in range(3)] == ["orbit", "fixed", "follow"]
    cam.mode = "fixed"
    before = cam.eye()
    cam.orbit(50, 20)
    cam.zoom(3)
    np.testing.assert_allclose(cam.eye(), before)


# --- video files (no display needed) ---------------------------------------------------------------------
def _moving_frames(n: int, w: int, h: int) -> list[np.ndarray]:
    frames = []
    for i in range(n):
        f = np.full((h, w, 3), 40, dtype=np.uint8)
        f[h // 4: h // 2, 5 * i % w: 5 * i % w + 30] = (230, 120, 30)
        frames.append(f)
    return frames


def _mp4_frames(path: Path) -> tuple[dict, list[np.ndarray]]:
    reader = imageio_ffmpeg.read_frames(str(path))
    meta = next(reader)
    w, h = meta["size"]
    frames = [np.frombuffer(f, dtype=np.uint8).reshape(h, w, 3) for f in reader]
    return meta, frames


def test_gif_records_every_frame(tmp_path):
    path = tmp_path / "clip.gif"
    with VideoRecorder(path, fps=30, size=(160, 120)) as rec:
        for f in _moving_frames(12, 160, 120):
            rec.append(f)
    frames = iio.imread(path, index=None)
    assert frames.shape[:3] == (12, 120, 160)
    assert [p.name for p in tmp_path.iterdir()] == ["clip.gif"]


def test_recorder_refuses_missing_directory_odd_size_and_wrong_frames(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        VideoRecorder(tmp_path / "missing" / "clip.mp4", size=(320, 240))
    with pytest.raises(ValueError, match="even"):
        VideoRecorder(tmp_path / "clip.mp4", size=(321, 240))
    with pytest.raises(ValueError, match=r"\.mp4 or \.gif"):
        VideoRecorder(tmp_path / "clip.avi", size=(320, 240))
    with VideoRecorder(tmp_path / "clip.mp4", size=(320, 240)) as rec:
        with pytest.raises(ValueError, match=r"\(240, 320, 3\) uint8"):
            rec.append(np.zeros((240, 321, 3), dtype=np.uint8))
        rec.append(np.zeros((240, 320, 3), dtype=np.uint8))
    assert (tmp_path / "clip.mp4").is_file()


def test_exception_inside_recording_leaves_no_partial_file(tmp_path):
    target = tmp_path / "clip.mp4"
    target.write_bytes(b"previous take")
    with pytest.raises(RuntimeError, match="simulated"):
        with VideoRecorder(target, fps=30, size=(64, 48)) as rec:
            for f in _moving_frames(5, 64, 48):
                rec.append(f)
            raise RuntimeError("simulated crash")
    assert target.read_bytes() == b"previous take"
    assert [p.name for p in tmp_path.iterdir()] == ["clip.mp4"]


# --- real windows ----------------------------------------------------------------------------------------
@pytest.fixture
def make_window(x_display):
    configure_pyglet(headless=False)  # raises if a test imported pyglet's window module headless: our bug
    from viewer.window import ViewerWindow

    windows = []

    def make(width: int, height: int, **kwargs):
        w = ViewerWindow(width, height, visible=False, **kwargs)
        windows.append(w)
        return w

    yield make
    for w in windows:
        w.close()


def _changed(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.abs(a.astype(np.int16) - b.astype(np.int16)).sum(axis=-1) > 24


@pytest.mark.display
def test_window_draws_a_lit_character_where_the_camera_projects_it(make_window):
    w = make_window(640, 360)
    w.camera.snap(STANDING[0])
    w.set_scene(SceneFrame())
    empty = w.render_to_array()
    w.set_scene(SceneFrame(characters=[character()]))
    img = w.render_to_array()
    assert img.shape == (360, 640, 3) and img.dtype == np.uint8
    assert len(np.unique(img.reshape(-1, 3), axis=0)) > 100, "a lit scene has many shades, not a flat fill"
    body = _changed(img, empty)
    assert 0.01 < body.mean() < 0.5
    # Every joint's projection (pixel rows top-down) lies on or right beside changed pixels.
    px = w.camera.world_to_screen(STANDING, 640, 360)
    for x, y in px:
        row, col = int(round(360 - y)), int(round(x))
        assert body[max(row - 3, 0): row + 4, max(col - 3, 0): col + 4].any()
    # The character is orange: many changed pixels are much redder than blue; elsewhere (grey ground,
    # blue sky, grey shadow) none are.
    orange = (img[..., 0].astype(int) - img[..., 2]) > 60
    assert orange[body].mean() > 0.3 and orange[~body].mean() < 0.001


@pytest.mark.display
def test_moving_character_changes_the_image_and_follow_recentres_it(make_window):
    w = make_window(640, 360)
    w.camera.snap(STANDING[0])
    w.set_scene(SceneFrame())
    empty = w.render_to_array()
    w.set_scene(SceneFrame(characters=[character()]))
    first = w.render_to_array()
    moved = character(offset=(2.5, 0.0, 1.5))
    w.set_scene(SceneFrame(characters=[moved]))
    second = w.render_to_array()
    assert _changed(first, second).mean() > 0.005
    for _ in range(120):  # 2 s of follow at 60 Hz
        w.camera.update(1 / 60, moved.positions[0, 0])
    w.set_scene(SceneFrame())
    empty = w.render_to_array()
    w.set_scene(SceneFrame(characters=[moved]))
    rows, cols = np.nonzero(_changed(w.render_to_array(), empty))
    assert abs(cols.mean() - 320) < 0.1 * 640 and abs(rows.mean() - 180) < 0.2 * 360


@pytest.mark.display
def test_marker_is_drawn_where_screen_to_ground_points(make_window):
    w = make_window(640, 360)
    w.camera = Camera(mode="fixed", fixed_target=(0.0, 0.0, 0.0), fixed_distance=8.0)
    # What a click at pixel (420, 130) would place, drawn as a small flat marker there.
    ground = w.screen_to_ground(420, 130)
    assert ground is not None
    w.set_scene(SceneFrame(markers=[Marker((ground[0], 0.0, ground[1]), 0.08, (0.1, 0.2, 0.9))]))
    img = w.render_to_array().astype(int)
    rows, cols = np.nonzero(img[..., 2] - img[..., 0] > 80)  # the blue marker, not its grey shadow
    assert abs(cols.mean() - 420) < 4 and abs((360 - rows.mean()) - 130) < 4


@pytest.mark.display
def test_hud_help_and_scene_items_show(make_window):
    w = make_window(640, 360)
    w.set_scene(SceneFrame(characters=[character()]))
    plain = w.render_to_array()
    w.set_hud(["speed 1.20 m/s", "target: 3.0 m"])
    with_hud = w.render_to_array()
    assert _changed(plain[:60, :200], with_hud[:60, :200]).mean() > 0.05  # top-left text block
    w.set_help(["H  help", "C  camera"])
    w.help_visible = True
    assert _changed(with_hud[120:240, 220:420], w.render_to_array()[120:240, 220:420]).mean() > 0.05
    w.help_visible = False
    items = SceneFrame(characters=[character()],
                       polylines=[Polyline(np.array([[0, 0.02, 0.5], [1.0, 0.02, 1.5]]), (0.1, 0.4, 0.9), 0.05, True)],
                       boxes=[((-1.2, 0.5, 0.0), (0.1, 0.5, 1.0), 0.2, (0.5, 0.5, 0.55, 1.0))])
    w.set_scene(items)
    assert _changed(with_hud, w.render_to_array()).mean() > 0.01


@pytest.mark.display
def test_the_hud_lays_out_only_the_lines_that_changed_and_wraps_long_ones(make_window):
    w = make_window(640, 360)
    w.set_scene(SceneFrame(characters=[character()]))
    w.set_hud(["fps 30.0", "task joystick", "command: 1.2 m/s"])
    first = list(w._hud.labels)
    before = w.render_to_array()
    w.set_hud(["fps 31.5", "task joystick", "command: 1.2 m/s"])  # a live HUD: only the figures change
    assert w._hud.labels == first and first[0].text == "fps 31.5" and first[1].text == "task joystick"
    assert _changed(before[:30, :120], w.render_to_array()[:30, :120]).any(), "the changed line is drawn anew"
    three = w._hud.size()
    w.set_hud(["fps 31.5"])  # fewer lines: the panel shrinks to them
    one = w._hud.size()
    assert len(w._hud.labels) == 1 and one[1] < 0.6 * three[1]
    w.set_hud(["x " * 400])  # longer than the window is wide: wrapped inside it
    width, height = w._hud.size()
    assert width <= 640 and height > 2 * one[1]
    w.set_hud([])
    assert w._hud.size() == (0.0, 0.0) and w.render_to_array().shape == (360, 640, 3)


@pytest.mark.display
def test_recording_thirty_window_frames_gives_a_thirty_frame_mp4(make_window, tmp_path):
    w = make_window(320, 240)
    w.camera = Camera(mode="fixed", fixed_target=(0.5, 0.8, 0.0), fixed_distance=5.0, fixed_elevation=0.3)
    path = tmp_path / "walk.mp4"
    with VideoRecorder(path, fps=30, size=w.get_framebuffer_size()) as rec:
        for i in range(30):
            w.set_scene(SceneFrame(characters=[character(offset=(0.05 * i, 0.0, 0.0))]))
            rec.append(w.render_to_array())
        assert rec.frame_count == 30
    meta, frames = _mp4_frames(path)
    assert len(frames) == 30 and meta["size"] == (320, 240) and meta["fps"] == 30
    assert imageio_ffmpeg.count_frames_and_secs(str(path))[0] == 30
    assert np.abs(frames[0].astype(int) - frames[-1]).mean() > 0.5, "the character walks: frames must differ"
    assert [p.name for p in tmp_path.iterdir()] == ["walk.mp4"]


# --- headless EGL (own process: pyglet picks its platform once) -----------------------------------------
_HEADLESS_SCRIPT = """
import json, sys
import numpy as np
from viewer.display import configure_pyglet
configure_pyglet(headless=True)
from viewer.window import ViewerWindow
w = ViewerWindow(320, 240, visible=False)
from viewer.scene import Characters, SceneFrame
pos = np.array(json.loads(sys.argv[1]))
parents = json.loads(sys.argv[2])
w.camera.snap(pos[0])
empty = w.render_to_array()
w.set_scene(SceneFrame(characters=[Characters(pos, parents)]))
img = w.render_to_array()
changed = (np.abs(img.astype(int) - empty).sum(-1) > 24).mean()
print(json.dumps({"shape": img.shape, "colours": len(np.unique(img.reshape(-1, 3), axis=0)), "changed": changed}))
"""


def test_headless_egl_renders_offscreen_without_any_display():
    if not egl_available():
        pytest.skip("no EGL library on this machine (apt install libegl1 libgl1-mesa-dri)")
    env = {k: v for k, v in os.environ.items() if k != "DISPLAY"}
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    out = subprocess.run([sys.executable, "-c", _HEADLESS_SCRIPT, json.dumps(STANDING.tolist()), json.dumps(PARENTS)],
                         capture_output=True, text=True, env=env, cwd=REPO, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["shape"] == [240, 320, 3]
    assert result["colours"] > 50 and result["changed"] > 0.01
