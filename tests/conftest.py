"""Shared test fixtures: one torch thread (2-core machine), paths to optional mocap data, an X display for
the window tests, a small VQ manifold."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_MOCAP = REPO.parent / "shared" / "mocap"


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread():
    try:
        import torch
    except ImportError:
        yield
        return
    torch.set_num_threads(1)
    yield


@pytest.fixture(scope="session")
def shared_mocap() -> Path:
    """../shared/mocap, or skip the test where it is absent (it is never committed)."""
    if not SHARED_MOCAP.is_dir():
        pytest.skip("../shared/mocap is not present beside the checkout")
    return SHARED_MOCAP


@pytest.fixture(scope="session")
def x_display():
    """A reachable X display: $DISPLAY if it works, else our own Xvfb for the session (shared by every
    window test: pyglet cannot switch displays once its window module is imported)."""
    from viewer.display import VirtualDisplay, display_available

    if display_available():
        yield os.environ["DISPLAY"]
        return
    if "pyglet.window" in sys.modules:
        pytest.skip("pyglet.window was imported before an X display existed; run the window tests on their own")
    if shutil.which("Xvfb") is None:
        pytest.skip("no X display and Xvfb is not installed (apt install xvfb libgl1-mesa-dri)")
    with VirtualDisplay(1280, 720) as vd:
        yield vd.display


@pytest.fixture
def window_app(x_display):
    """``window_app(sim, size=(320, 240), visible=False, **app_kwargs)`` -> the app over ``sim`` in a real (hidden)
    window; every app, window and simulation made is closed after the test."""
    from viewer.display import configure_pyglet

    configure_pyglet(headless=False)  # raises if a test imported pyglet's window module headless: our bug
    from app.interactive import App
    from viewer.window import ViewerWindow

    made = []

    def make(sim, size=(320, 240), visible=False, **app_kwargs):
        window = ViewerWindow(*size, visible=visible)
        app = App(sim, window, **app_kwargs)
        made.append((app, window, sim))
        return app

    yield make
    for app, window, sim in made:
        app.close()
        window.close()
        sim.close()


@pytest.fixture
def interrupt_on_call(monkeypatch):
    """``interrupt_on_call(owner, name, call)`` makes method ``owner.name`` raise KeyboardInterrupt on its ``call``-th
    call (Ctrl-C in the middle of a run) -> the original, to put back with ``monkeypatch.setattr``."""

    def patch(owner, name: str, call: int):
        original = getattr(owner, name)
        calls = {"n": 0}

        def interrupted(self, *args, **kwargs):
            calls["n"] += 1
            if calls["n"] == call:
                raise KeyboardInterrupt
            return original(self, *args, **kwargs)

        monkeypatch.setattr(owner, name, interrupted)
        return original

    return patch


@pytest.fixture
def small_vq_manifold():
    """A factory of small untrained PoseVQVAE manifolds (normalised, with start frames), the same every call."""
    import torch

    from vae import VAEConfig, build_model

    def make(frame_size: int = 27, codes: int = 16):
        torch.manual_seed(0)
        manifold = build_model(VAEConfig(model="vq", frame_size=frame_size, latent_size=8, hidden_size=32,
                                         gate_hidden_size=16, num_experts=3, num_codes=codes)).eval()
        data = torch.randn(64, frame_size) * 0.1
        manifold.set_normalization(data.mean(0), data.std(0))
        manifold.extra = {"start_frames": data[:8, None, :].clone()}
        manifold.fps = 30.0
        return manifold

    return make


TINY_VAE = dict(hidden_size=32, latent_size=8, num_experts=2, batch_size=64, teacher_epochs=1, ramping_epochs=0,
                student_epochs=0, preview_every=0, progress=False, holdout_every=3, final_checks=False)
TINY_PRIOR_CONTEXT = 8


@pytest.fixture(scope="session")
def tiny_vq_paths(tmp_path_factory) -> dict:
    """Paths of the data, a VQ model (16 codes), its code prior (context 8) and a Gaussian model, each trained briefly
    on the pybullet DeepMimic walk and run clips (read only)."""
    from mocap.prepare import prepare
    from vae.train import TrainConfig, train
    from vae.train_prior import PriorTrainConfig, train_prior

    root = tmp_path_factory.mktemp("walk")
    paths = {name: str(root / f"{name}.npz" if name == "data" else root / f"{name}.pt")
             for name in ("data", "vq", "prior", "gaussian")}
    prepare(["pybullet"], paths["data"], clips="walk|run", mirror=True, progress=False)
    train(TrainConfig(data=paths["data"], out=paths["vq"], model="vq", num_codes=16, **TINY_VAE))
    train(TrainConfig(data=paths["data"], out=paths["gaussian"], model="mixture", **TINY_VAE))
    train_prior(PriorTrainConfig(vae=paths["vq"], data=paths["data"], out=paths["prior"], context=TINY_PRIOR_CONTEXT,
                                 embed_size=32, num_layers=2, num_heads=4, epochs=2, batch_size=64,
                                 learning_rate=3e-3, holdout_every=3, progress=False))
    return paths


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory) -> str:
    """The pybullet DeepMimic walk and run clips, mirrored, prepared once for the whole session (read only)."""
    from mocap.prepare import prepare

    path = tmp_path_factory.mktemp("data") / "walk.npz"
    prepare(["pybullet"], str(path), clips="walk|run", mirror=True, progress=False)
    return str(path)


@pytest.fixture
def steers_alike():
    """A check that a backend steers the shipped Bandai-Namco character as well as a reference backend: 64 joystick
    episodes of its joystick policy through each (one thread), then heading and speed errors, foot sliding and jitter
    of ``other`` next to ``reference``'s (differences measured across seeds: 0.3 deg, 0.02 m/s, 5 %)."""

    def check(reference, other) -> None:
        import json

        import torch

        from policies.checkpoint import load_policy
        from policies.controllers import PolicyController
        from policies.evaluate import evaluate

        torch.set_num_threads(1)
        policy = load_policy(REPO / "assets" / "characters" / "bandai-namco" / "policies" / "joystick.pt")
        options = json.loads(policy.train_args.get("env_options") or "{}")
        base, new = (evaluate(lambda env, b=backend: PolicyController(policy, backend=b), task="joystick", vae=backend,
                              episodes=64, seed=0, batch_size=64, action_scale=policy.action_scale,
                              env_options=options) for backend in (reference, other))
        assert abs(new["heading_error_deg"] - base["heading_error_deg"]) < 1.5
        assert abs(new["speed_error_mps"] - base["speed_error_mps"]) < 0.03
        assert new["foot_sliding"] < 1.15 * base["foot_sliding"]
        assert new["jitter"] < 1.1 * base["jitter"]

    return check


@pytest.fixture
def joystick_inputs():
    """A function ``(backend, batch, seed=0)`` -> (observations, condition windows, styles) of real start poses of the
    shipped Bandai-Namco character: the first step of a joystick episode with its joystick policy's options."""

    def inputs(backend, batch: int, seed: int = 0):
        import json

        import torch

        from envs import MotionVecEnv
        from policies.checkpoint import load_policy

        policy = load_policy(REPO / "assets" / "characters" / "bandai-namco" / "policies" / "joystick.pt")
        options = json.loads(policy.train_args.get("env_options") or "{}")
        env = MotionVecEnv(batch, "joystick", backend, array_backend="torch", **options)
        obs, _ = env.reset(seed=seed)
        return torch.as_tensor(obs, dtype=torch.float32), env.core.cond.clone(), env.core.style.clone()

    return inputs
