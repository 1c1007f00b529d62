"""play.py, the real-time app: a real window under Xvfb, injected keys and clicks, recordings, replays, errors.

Window tests are marked ``display``; they start their own Xvfb when no display is reachable. The steering
tests need a controllable character: the shipped ``assets/characters/deepmimic/vae.pt`` (``MVAE_TEST_VAE`` may name another
checkpoint) driven by the sampling fallback controller (no policies folder), so they do not depend on which
policies have been trained. The no-display test runs play.py in a subprocess (pyglet picks its platform once
per process).
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import imageio.v3 as iio
import imageio_ffmpeg
import numpy as np
import pytest

from app.hud import simulation_lines
from app.input_script import InputRecorder, InputScript
from app.simulation import AppConfig, Simulation
from viewer.display import egl_available

REPO = Path(__file__).resolve().parents[1]
VAE = Path(os.environ.get("MVAE_TEST_VAE", REPO / "assets" / "characters" / "deepmimic" / "vae.pt"))
DEMO = REPO / "assets" / "demos" / "joystick_tour.json"
SIZE = (320, 240)


@pytest.fixture(scope="module")
def vae_path() -> Path:
    assert VAE.is_file(), f"{VAE} is absent: the shipped VAE is part of the repository"
    return VAE


@pytest.fixture(scope="module")
def backend(vae_path):
    from controller.runtime import make_backend

    return make_backend(str(vae_path), verbose=False)


def make_sim(backend, vae_path, task="joystick", seed=0, characters=1) -> Simulation:
    config = AppConfig(vae=vae_path, task=task, seed=seed, characters=characters, policies_dir=None)
    return Simulation(config, backend=backend, verbose=False)


@pytest.fixture
def make_app(window_app, backend, vae_path):
    def make(task="joystick", seed=0, characters=1, visible=False, size=SIZE, **app_kwargs):
        return window_app(make_sim(backend, vae_path, task, seed, characters), size=size, visible=visible,
                          **app_kwargs)

    return make


def press(window, *symbols, release=False):
    for symbol in symbols:
        window.dispatch_event("on_key_release" if release else "on_key_press", symbol, 0)
    window.dispatch_events()


def unwrapped_yaw_change(app, steps: int) -> float:
    """Tick the app one simulation step at a time; the total yaw change (rad, + = counter-clockwise from above)."""
    core = app.sim.env.core
    total, last = 0.0, float(core.yaw[0])
    for _ in range(steps):
        app.tick(app.sim.dt)
        yaw = float(core.yaw[0])
        total += math.atan2(math.sin(yaw - last), math.cos(yaw - last))
        last = yaw
    return total


def orange(img: np.ndarray) -> np.ndarray:
    """The lead character's pixels (orange: much redder than blue)."""
    return (img[..., 0].astype(int) - img[..., 2]) > 60


# ---- a real window --------------------------------------------------------------------------------------
@pytest.mark.display
def test_window_shows_the_character_and_the_hud(make_app):
    from pyglet.window import key

    app = make_app(visible=True, size=(640, 360))
    app.tick(app.sim.dt)
    hud = " ".join(app.hud_lines())
    for words in ("fps", "inference", "ms", "onnx on", "task joystick", "sampling fallback", "command:",
                  "actual:", "gamepad"):
        assert words in hud
    if not Path("/dev/input").exists():
        assert "no gamepad (this machine has no /dev/input)" in hud, "no gamepad: said in words, no error"
    with_hud = app.window.render_to_array()
    press(app.window, key.H)  # hide the HUD: the whole character shows
    app.tick(app.sim.dt)
    img = app.window.render_to_array()
    assert img.shape == (360, 640, 3)
    assert len(np.unique(img.reshape(-1, 3), axis=0)) > 100, "a lit scene, not a flat fill"
    body = orange(img)
    assert body.mean() > 0.005, "the character is on screen"
    rows, cols = np.nonzero(body)
    assert abs(cols.mean() - 320) < 100 and abs(rows.mean() - 180) < 100, "the follow camera keeps it central"
    assert np.abs(with_hud[:40, :200].astype(int) - img[:40, :200]).mean() > 5, "the HUD was drawn top left"


@pytest.mark.display
def test_slow_steps_slow_the_simulation_down_instead_of_the_frame_rate(make_app, monkeypatch):
    """Where a step takes 40 ms (a big crowd on a slow processor), a frame catches up one step, not four: the window
    keeps drawing a frame per step while the simulation falls behind real time, and the HUD shows the rate it
    reaches. Quick steps still catch up several to a frame."""
    import time

    app = make_app()
    for _ in range(5):  # past the warm-up steps, which are not timed
        app.tick(app.sim.dt)
    assert app.catch_up_steps() == 4, "a quick step: a late frame catches up four"
    step = app.sim.step

    def slow_step(*args, **kwargs):
        time.sleep(0.04)
        return step(*args, **kwargs)

    monkeypatch.setattr(app.sim, "step", slow_step)
    for _ in range(30):
        before, allowed = app.sim.step_count, app.catch_up_steps()
        app.tick(0.1)  # a late frame: three steps due
        assert 1 <= app.sim.step_count - before <= allowed
    assert app.catch_up_steps() == 1 and app.sim.step_count - before == 1
    assert app.sim_hz < 15.0
    hud = app.hud_lines()[0]
    assert f"of {app.sim.fps:.0f} Hz" in hud, hud


@pytest.mark.display
@pytest.mark.parametrize("letter, sign", [("A", 1.0), ("D", -1.0)])
def test_holding_a_turns_left_and_d_turns_right(make_app, letter, sign):
    from pyglet.window import key

    app = make_app()
    press(app.window, getattr(key, letter))
    assert app.held == {letter}
    change = unwrapped_yaw_change(app, round(2 * app.sim.fps))  # 2 s of simulation
    assert sign * change > 0.5, f"holding {letter} for 2 s changed the heading by {math.degrees(change):+.0f} deg"
    heading, speed = app.sim.commanded()
    assert speed == pytest.approx(app.sim.config.speeds["walk"])
    press(app.window, getattr(key, letter), release=True)
    assert app.held == set()


@pytest.mark.display
def test_click_on_the_ground_places_a_target_the_character_walks_to(make_app):
    app = make_app(task="joystick")
    core = app.sim.env.core
    root, facing = core.root_xz[0].numpy(), core.facing()[0].numpy()
    goal = root + 3.0 * facing  # 3 m ahead: on screen, in front of the camera behind the character
    x, y = app.camera.world_to_screen(np.array([[goal[0], 0.0, goal[1]]]), app.window.width, app.window.height)[0]
    app.window.dispatch_event("on_mouse_press", x, y, 1, 0)  # 1 = left button
    app.window.dispatch_event("on_mouse_release", x, y, 1, 0)
    app.window.dispatch_events()
    app.tick(app.sim.dt)
    assert app.sim.task_name == "target", "a click switches the joystick task to the target task"
    placed = app.sim.env.task.target[0].numpy()
    assert np.linalg.norm(placed - goal) < 0.1, f"target at {placed}, clicked at {goal}"
    assert not app.sim.teleported[0], "the character stays where it was"
    core = app.sim.env.core  # the target task's
    start = np.linalg.norm(core.root_xz[0].numpy() - placed)
    for _ in range(round(2.5 * app.sim.fps)):
        app.tick(app.sim.dt)
    reached = int(app.sim.metrics["targets_reached"][0][0])
    now = np.linalg.norm(core.root_xz[0].numpy() - placed)
    assert reached >= 1 or now < start - 1.0, f"distance {start:.2f} -> {now:.2f} m in 2.5 s"


@pytest.mark.display
def test_task_keys_pause_and_reset(make_app):
    from pyglet.window import key

    app = make_app(task="joystick")
    press(app.window, key._4)
    app.tick(app.sim.dt)
    assert app.sim.task_name == "path_follow" and not app.sim.teleported[0]
    before = app.sim.step_count
    press(app.window, key.P)
    for _ in range(5):
        app.tick(app.sim.dt)
    assert app.sim.step_count == before, "paused: no simulation steps"
    press(app.window, key.P, key.R)
    app.tick(app.sim.dt)
    assert app.sim.task_name == "path_follow" and app.sim.teleported[0], "R restarts the characters"
    press(app.window, key.F1)
    assert app.window.help_visible


# ---- recording and replay -------------------------------------------------------------------------------
def read_video(path: Path) -> np.ndarray:
    return iio.imread(path, index=None)


@pytest.mark.display
def test_recording_writes_one_frame_per_simulation_step(make_app, tmp_path):
    app = make_app(script=InputScript.load(DEMO).player(), realtime=False)
    path = app.record_video(tmp_path / "clip.mp4", 45)
    frames = read_video(path)
    assert frames.shape == (45, SIZE[1], SIZE[0], 3)
    assert imageio_ffmpeg.count_frames_and_secs(str(path)) == (45, 1.5)
    assert np.abs(frames[0].astype(int) - frames[-1]).mean() > 0.5, "the character walks: frames change"
    assert [p.name for p in tmp_path.iterdir()] == ["clip.mp4"]


@pytest.mark.display
def test_live_inputs_recorded_then_replayed_give_the_same_motion_and_identical_videos(make_app, tmp_path):
    from pyglet.window import key

    # A live session: keys and a click injected as window events, inputs recorded per step.
    recorder = InputRecorder(seed=3, task="joystick", characters=2, fps=30.0)
    live = make_app(seed=3, characters=2, input_recorder=recorder)
    trajectory = []
    for step in range(40):
        if step == 2:
            press(live.window, key.W)
        if step == 12:
            press(live.window, key.A)
        if step == 25:
            press(live.window, key.A, key.W, release=True)
            live.window.dispatch_event("on_mouse_press", 200, 60, 1, 0)
            live.window.dispatch_event("on_mouse_release", 200, 60, 1, 0)
            live.window.dispatch_events()
        live.step_simulation()
        trajectory.append(live.sim.env.core.root_xz.numpy().copy())
    script_path = recorder.save(tmp_path / "inputs.json")
    assert live.sim.task_name == "target"

    videos = []
    for name in ("a.mp4", "b.mp4"):
        script = InputScript.load(script_path)
        app = make_app(seed=script.seed, characters=script.characters, script=script.player(), realtime=False)
        if name == "a.mp4":  # the replay moves the characters exactly as the live session did
            replayed = []
            for _ in range(script.steps):
                app.step_simulation()
                replayed.append(app.sim.env.core.root_xz.numpy().copy())
            np.testing.assert_array_equal(np.stack(replayed), np.stack(trajectory))
            app = make_app(seed=script.seed, characters=script.characters, script=InputScript.load(script_path).player(),
                           realtime=False)
        videos.append(app.record_video(tmp_path / name, script.steps))
    a, b = read_video(videos[0]), read_video(videos[1])
    assert a.shape == (40, SIZE[1], SIZE[0], 3)
    np.testing.assert_array_equal(a, b)
    assert videos[0].read_bytes() == videos[1].read_bytes()


# ---- play.py itself ------------------------------------------------------------------------------------
def run_play(args, cwd, env_changes=None, timeout=180):
    env = {k: v for k, v in os.environ.items()}
    env.update(env_changes or {})
    env = {k: v for k, v in env.items() if v is not None}
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.run([sys.executable, str(REPO / "play.py"), *args], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=timeout)


def test_missing_model_file_is_one_clear_line(tmp_path):
    out = run_play(["--vae", str(tmp_path / "absent.pt"), "--record", str(tmp_path / "x.mp4")], tmp_path)
    assert out.returncode == 2
    assert "no model file" in out.stderr and "absent.pt" in out.stderr and "vae.train" in out.stderr
    assert "Traceback" not in out.stderr + out.stdout
    assert not (tmp_path / "x.mp4").exists()


def test_bad_input_script_is_one_clear_line(tmp_path, vae_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"format": "mvae-play-input", "version": 1, "seed": 0, "task": "fly", "steps": 1,
                               "events": []}))
    out = run_play(["--vae", str(vae_path), "--input-script", str(bad), "--record", str(tmp_path / "x.mp4")],
                   tmp_path)
    assert out.returncode == 2 and "bad.json" in out.stderr and "'task'" in out.stderr
    assert "Traceback" not in out.stderr


def test_without_a_display_play_says_so_and_records_the_demo(tmp_path, vae_path):
    if not egl_available():
        pytest.skip("no EGL library on this machine (apt install libegl1 libgl1-mesa-dri)")
    out = run_play(["--vae", str(vae_path), "--seconds", "1", "--size", "320x240"], tmp_path,
                   {"DISPLAY": None, "WAYLAND_DISPLAY": None})
    assert out.returncode == 0, out.stderr[-2000:]
    first = out.stdout.strip().splitlines()[0]
    assert "no display" in first and "demo.mp4" in first
    video = tmp_path / "demo.mp4"
    assert video.is_file() and str(video) in out.stdout
    assert imageio_ffmpeg.count_frames_and_secs(str(video))[0] == 30
    assert "Traceback" not in out.stderr


# ---- policies ---------------------------------------------------------------------------------------------
def test_a_policy_file_drives_its_task_and_unfit_ones_fall_back_with_a_reason(tmp_path, backend, vae_path):
    import torch

    from policies import PolicyModule, make_config, save_policy

    probe = make_sim(backend, vae_path, "joystick")
    obs_size = int(probe.env.single_observation_space.shape[0])
    manifold = backend.manifold
    config = make_config(obs_size=obs_size, latent_size=manifold.latent_size, discrete=False, num_actions=None,
                         task="joystick", hidden_sizes=(16,), critic_hidden_sizes=(16,), action_scale=2.0)
    torch.manual_seed(0)
    save_policy(tmp_path / "joystick.pt", PolicyModule(config), manifold=manifold)
    wrong = make_config(obs_size=obs_size + 1, latent_size=manifold.latent_size, discrete=False, num_actions=None,
                        task="target", hidden_sizes=(16,), critic_hidden_sizes=(16,))
    save_policy(tmp_path / "target.pt", PolicyModule(wrong), manifold=manifold)

    sim = Simulation(AppConfig(vae=vae_path, task="joystick", policies_dir=tmp_path), backend=backend, verbose=False)
    controller = sim.controller
    assert "joystick.pt" in controller.label and "policy joystick.pt" in " ".join(simulation_lines(sim))
    actions = controller(sim.env, sim.obs)
    expected = controller.policy(sim.obs) * (2.0 / sim.env.action_scale)  # the policy's scale, the env's latent
    torch.testing.assert_close(actions, expected)
    sim.step()
    sim.switch_task("target")
    assert "sampling fallback" in sim.controller.label and "observations of size" in sim.controller.label
    assert any("target.pt not used" in note for note in sim.notes)
    sim.close()
    probe.close()


# ---- motion out as BVH -----------------------------------------------------------------------------------
@pytest.mark.display
def test_record_bvh_writes_the_motion_that_was_drawn(make_app, tmp_path):
    """The session's BVH, read back through forward kinematics, puts the joints where the app drew them."""
    from pyglet.window import key

    from app.motion_capture import MotionCapture
    from mocap.bvh import read_bvh
    from mocap.kinematics import motion_world

    app = make_app()
    capture = MotionCapture(app.sim.skeleton, app.sim.fps)
    app.motion_capture, app.capture_path = capture, tmp_path / "session.bvh"
    press(app.window, key.W)
    drawn = []
    for _ in range(60):
        app.tick(app.sim.dt)
        drawn.append(app.sim.joint_positions()[0])
    written = app.finish_capture()
    assert written == [tmp_path / "session.bvh"] and app.motion_capture is None
    motion = read_bvh(written[0])
    assert motion.fps == pytest.approx(app.sim.fps) and motion.num_frames == 60
    assert sorted(motion.skeleton.joint_names) == sorted(app.sim.skeleton.joint_names)
    _, world = motion_world(motion)
    order = [motion.skeleton.joint_names.index(n) for n in app.sim.skeleton.joint_names]  # BVH: depth first
    error = np.linalg.norm(world[:, order] - np.array(drawn), axis=-1)  # (T, J) m
    travelled = np.linalg.norm(drawn[-1][0] - drawn[0][0])
    assert travelled > 0.5, "the character walked while captured"
    assert error.mean() < 0.01 and error.max() < 0.03, f"BVH joints {error.mean() * 100:.2f} cm from the drawn ones"


@pytest.mark.display
def test_key_b_starts_and_stops_a_capture_without_overwriting(make_app, tmp_path, monkeypatch):
    from pyglet.window import key

    monkeypatch.chdir(tmp_path)
    app = make_app()
    for _ in range(2):
        press(app.window, key.B)
        assert app.motion_capture is not None
        for _ in range(10):
            app.step_simulation()
        press(app.window, key.B)
        assert app.motion_capture is None
    assert sorted(p.name for p in tmp_path.glob("*.bvh")) == ["capture.bvh", "capture_2.bvh"]
    assert "wrote 10 frames" in app.sim.notes[-1]


def test_play_record_bvh_all_writes_one_file_per_character(tmp_path, vae_path):
    out = run_play(["--vae", str(vae_path), "--task", "target", "--characters", "3", "--seconds", "1", "--size",
                    "64x64", "--record", str(tmp_path / "crowd.mp4"), "--record-bvh", str(tmp_path / "crowd.bvh"),
                    "--record-bvh-all", "--headless"], tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    assert sorted(p.name for p in tmp_path.glob("*.bvh")) == ["crowd_0000.bvh", "crowd_0001.bvh", "crowd_0002.bvh"]
    assert "wrote 30 frames" in out.stdout


# ---- bad input ----------------------------------------------------------------------------------------
def test_output_paths_are_checked_before_any_work(tmp_path, vae_path):
    (tmp_path / "file").write_text("x")
    for flag, name in (("--record-input", "in.json"), ("--record-bvh", "m.bvh"), ("--record", "v.mp4")):
        out = run_play(["--vae", str(vae_path), flag, str(tmp_path / "file" / name), "--headless"], tmp_path)
        assert out.returncode == 2 and flag in out.stderr and "is a file, not a folder" in out.stderr, out.stderr
        assert "Traceback" not in out.stderr and "controller:" not in out.stdout, "refused before loading anything"


def test_absurd_sizes_and_crowds_are_refused_or_warned(tmp_path, vae_path):
    out = run_play(["--vae", str(vae_path), "--size", "99998x99998", "--record", str(tmp_path / "x.mp4")], tmp_path)
    assert out.returncode == 2 and "at most 7680x4320" in out.stderr and "Traceback" not in out.stderr
    out = run_play(["--vae", str(vae_path), "--characters", "1000000", "--record", str(tmp_path / "x.mp4")],
                   tmp_path)
    assert out.returncode == 2 and "--characters must be an integer in [1, 100000]" in out.stderr


def test_headless_demo_never_overwrites_an_earlier_one(tmp_path, vae_path):
    if not egl_available():
        pytest.skip("no EGL library on this machine (apt install libegl1 libgl1-mesa-dri)")
    (tmp_path / "demo.mp4").write_bytes(b"an earlier take")
    out = run_play(["--vae", str(vae_path), "--seconds", "0.2", "--size", "64x64"], tmp_path, {"DISPLAY": None})
    assert out.returncode == 0, out.stderr[-2000:]
    assert (tmp_path / "demo.mp4").read_bytes() == b"an earlier take"
    assert "demo_2.mp4" in out.stdout and (tmp_path / "demo_2.mp4").stat().st_size > 0


def test_ctrl_c_during_a_recording_says_what_happened(tmp_path, vae_path):
    if not egl_available():
        pytest.skip("no EGL library on this machine (apt install libegl1 libgl1-mesa-dri)")
    env = {k: v for k, v in os.environ.items() if k != "DISPLAY"}
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.Popen([sys.executable, str(REPO / "play.py"), "--vae", str(vae_path), "--seconds", "600",
                             "--size", "64x64", "--record", str(tmp_path / "long.mp4"), "--headless",
                             "--record-input", str(tmp_path / "in.json")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path, env=env)
    try:
        for line in proc.stdout:
            if line.startswith("play: task"):  # the simulation runs: the recording starts now
                break
        time.sleep(2.0)
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130 and "Traceback" not in stderr
    assert "interrupted after" in stderr and "long.mp4 was not written" in stderr
    assert not (tmp_path / "long.mp4").exists() and (tmp_path / "in.json").is_file(), "the input is kept"


# ---- planted feet -----------------------------------------------------------------------------------------
def toe_drift_per_contact(drawn: np.ndarray, model: np.ndarray, chains, floor: np.ndarray, fps: float) -> np.ndarray:
    """For each contact interval of either foot (detected on the model's motion (T, J, 3) by the locker's own
    detector), the largest horizontal distance (m) of the drawn toe (T, J, 3) from where it was at the start."""
    from mocap.foot_locking import detect_contacts

    contacts = detect_contacts(model[1:], model[:-1], chains, floor, fps)  # (T-1, 2): frames 1 .. T-1
    drift = []
    for side in range(2):
        edges = np.diff(np.concatenate([[0], contacts[:, side].astype(int), [0]]))
        for start, end in zip(np.nonzero(edges == 1)[0] + 1, np.nonzero(edges == -1)[0] + 1, strict=True):
            toe = drawn[start:end, chains.toe[side]][:, ::2]  # (K, 2) ground x, z
            drift.append(np.linalg.norm(toe - toe[0], axis=-1).max())
    return np.array(drift)


@pytest.mark.display
def test_foot_locking_plants_the_drawn_toes_of_the_joystick_demo_and_key_l_turns_it_off(make_app, tmp_path):
    """The 20 s joystick tour as drawn and captured to BVH, with foot locking (the default) and after pressing L:
    planted toes hold within 1 cm with it, slide without it, in the window and in the BVH; CAMDM foot sliding of
    the drawn motion drops; the model's motion is the same either way (locking is on what is shown only)."""
    from pyglet.window import key

    from app.motion_capture import MotionCapture
    from mocap.bvh import read_bvh
    from mocap.kinematics import motion_world
    from mocap.quality import WINDOW_S, quality_over, toe_joints

    runs, bvh = {}, {}
    for locking in (True, False):
        app = make_app(script=InputScript.load(DEMO).player(), realtime=False, capture_path=tmp_path / f"{locking}.bvh")
        app.motion_capture = MotionCapture(app.sim.skeleton, app.sim.fps)
        assert app.sim.foot_locking and "L foot locking on (contact channels)" in " ".join(app.hud_lines())
        if not locking:
            press(app.window, key.L)
            assert not app.sim.foot_locking and "L foot locking off" in " ".join(app.hud_lines())
        press(app.window, key.H)  # no HUD text to lay out: 600 steps stay quick
        drawn, model = [], []
        for _ in range(app.script.script.steps):
            app.step_simulation()
            app.update_view(app.sim.dt, alpha=1.0)
            drawn.append(np.array(app.window.scene.characters[0].positions[0]))  # (J, 3) as the window draws it
            model.append(app.sim.model_joint_positions()[0])
        assert app.window.render_to_array().shape == (SIZE[1], SIZE[0], 3)
        runs[locking] = np.stack(drawn), np.stack(model)
        motion = read_bvh(app.finish_capture()[0])
        order = [motion.skeleton.joint_names.index(n) for n in app.sim.skeleton.joint_names]  # BVH: depth first
        bvh[locking] = motion_world(motion)[1][:, order]  # (T, J, 3) through forward kinematics
    locker, skeleton, fps = app.sim.foot_locker, app.sim.skeleton, app.sim.fps
    (drawn_on, model), (drawn_off, model_off) = runs[True], runs[False]
    np.testing.assert_array_equal(model, model_off)
    np.testing.assert_array_equal(drawn_off, model)

    bones = lambda pos: np.linalg.norm(pos[:, 1:] - pos[:, skeleton.parents[1:]], axis=-1)  # noqa: E731
    np.testing.assert_allclose(bones(drawn_on), bones(model), atol=1e-9)
    drift_on = toe_drift_per_contact(drawn_on, model, locker.chains, locker.floor, fps)
    drift_off = toe_drift_per_contact(drawn_off, model, locker.chains, locker.floor, fps)
    toes = toe_joints(skeleton)
    sliding_on = quality_over([drawn_on], toes, fps, WINDOW_S)["foot_sliding"]
    sliding_off = quality_over([drawn_off], toes, fps, WINDOW_S)["foot_sliding"]
    bvh_on = toe_drift_per_contact(bvh[True], model, locker.chains, locker.floor, fps)
    bvh_off = toe_drift_per_contact(bvh[False], model, locker.chains, locker.floor, fps)
    print(f"\n{len(drift_on)} contacts: toe drift per contact, locking on: mean {drift_on.mean() * 100:.2f} cm, max "
          f"{drift_on.max() * 100:.2f} cm; off: mean {drift_off.mean() * 100:.2f} cm, max {drift_off.max() * 100:.2f} cm."
          f"  CAMDM foot sliding: on {sliding_on:.3f}, off {sliding_off:.3f}.  BVH toe drift: on mean "
          f"{bvh_on.mean() * 100:.2f} cm, max {bvh_on.max() * 100:.2f} cm; off mean {bvh_off.mean() * 100:.2f} cm")
    assert len(drift_on) >= 40, "the tour walks: dozens of footsteps"
    assert drift_on.max() < 0.01, f"a planted toe drifted {drift_on.max() * 100:.1f} cm with foot locking on"
    assert drift_off.mean() > 0.01 and drift_off.max() > 0.05, "without locking the model's feet slide"
    assert sliding_on < 0.5 * sliding_off
    # The BVH's forward kinematics holds the locks too, up to the model's own rotation / position mismatch (about
    # 0.6 cm on average, as without locking).
    assert bvh_on.mean() < 0.25 * bvh_off.mean() and np.median(bvh_on) < 0.005
    assert np.linalg.norm(bvh[True] - drawn_on, axis=-1).mean() < 0.01
