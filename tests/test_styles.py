"""Motion styles: clips labelled by name (mocap.prepare --styles), a style-conditioned VAE, and what a user
sees: the same start and latent walk or run depending on the style asked for.

Trained on the DeepMimic walk / run clips shipped with pybullet (styles "run" and "walk" from their names).
"""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mocap.dataset import MotionDataset
from mocap.pose_layout import PoseLayout
from mocap.prepare import PrepareError, clip_styles, prepare
from vae import VAEConfig, build_model, load_manifold
from vae.train import TrainConfig, train


@pytest.fixture(scope="module")
def style_vae(tmp_path_factory):
    """(path of a VAE trained on walk / run with styles, its dataset path). ~15 s on one CPU thread."""
    root = tmp_path_factory.mktemp("styles")
    data = root / "walk_run.npz"
    prepare(["pybullet"], str(data), clips="walk|run", mirror=True, progress=False, styles="(run|walk)")
    out = root / "vae.pt"
    train(TrainConfig(data=str(data), out=str(out), hidden_size=64, latent_size=8, num_experts=2, batch_size=64,
                      teacher_epochs=20, ramping_epochs=5, student_epochs=5, progress=False, preview_every=0,
                      holdout_every=0, final_checks=False))
    return out, data


def rollout_speed(model, style, frames: int = 90) -> float:
    """Median root speed (m/s) over the last 2 s of every start window held at the zero latent in ``style``."""
    layout = PoseLayout.from_frame_size(model.frame_size)
    cond = model.start_frames.clone()  # (B, C, D)
    b = cond.shape[0]
    speeds = []
    with torch.no_grad():
        for _ in range(frames):
            nxt = model.step(torch.zeros(b, model.latent_size), cond, style=style(b))  # (B, D)
            cond = torch.cat([cond[:, 1:], nxt[:, None]], dim=1)
            speeds.append(torch.linalg.vector_norm(layout.root_deltas(nxt)[:, layout.root_dxdz], dim=1) * model.fps)
    return float(torch.stack(speeds)[-60:].median())


def test_prepare_labels_clips_and_their_mirrors_from_names(style_vae):
    data = MotionDataset.load(style_vae[1])
    assert data.style_names == ["run", "walk"]
    assert [data.style_names[s] for s in data.clip_styles] == [
        "run" if "run" in n else "walk" for n in data.clip_names]
    frame_styles = data.frame_styles()
    assert frame_styles.shape == (data.num_frames,)
    assert frame_styles[data.end_indices].tolist() == data.clip_styles.tolist()


def test_the_style_changes_the_motion_from_the_same_start_and_latent(style_vae):
    model = load_manifold(style_vae[0])
    assert model.style_names == ["run", "walk"] and model.num_styles == 2
    run = rollout_speed(model, lambda b: torch.zeros(b, dtype=torch.long))
    walk = rollout_speed(model, lambda b: torch.ones(b, dtype=torch.long))
    assert run > 2.0 * walk, (run, walk)
    assert 0.5 < walk < 1.6 and run > 2.0  # DeepMimic walks at ~1 m/s and runs at ~3.5 m/s


def test_style_weights_blend_and_indices_equal_one_hot(style_vae):
    model = load_manifold(style_vae[0])
    cond = model.start_frames[:6]
    z = torch.randn(6, model.latent_size, generator=torch.Generator().manual_seed(0))
    index = torch.tensor([0, 1, 0, 1, 0, 1])
    with torch.no_grad():
        by_index = model.step(z, cond, style=index)
        by_weights = model.step(z, cond, style=F.one_hot(index, 2).float())
        average = model.step(z, cond)
        half = model.step(z, cond, style=torch.full((6, 2), 0.5))
    torch.testing.assert_close(by_index, by_weights)
    torch.testing.assert_close(average, half)  # no style = the average style
    blended = rollout_speed(model, lambda b: torch.full((b, 2), 0.5))
    run = rollout_speed(model, lambda b: torch.zeros(b, dtype=torch.long))
    walk = rollout_speed(model, lambda b: torch.ones(b, dtype=torch.long))
    assert walk < blended < run


def test_start_styles_match_the_start_windows(style_vae):
    model = load_manifold(style_vae[0])
    assert model.start_styles.shape == (model.start_frames.shape[0],)
    layout = PoseLayout.from_frame_size(model.frame_size)
    speed = torch.linalg.vector_norm(layout.root_deltas(model.start_frames[:, -1])[:, layout.root_dxdz], dim=1)
    speed = speed * model.fps  # (S,) m/s of each start window's last frame
    assert float(speed[model.start_styles == 0].median()) > 2.0 * float(speed[model.start_styles == 1].median())


@pytest.mark.parametrize("style, message", [
    (torch.tensor([0, 2]), "integers in [0, 2)"),
    (torch.tensor([0]), "got shape (1,)"),
    (torch.ones(2, 3), "expected (2, 2)"),
])
def test_a_bad_style_says_what_is_expected(style, message):
    model = build_model(VAEConfig(frame_size=27, latent_size=4, hidden_size=16, num_experts=2, num_styles=2))
    with pytest.raises(ValueError, match=re.escape(message)):
        model.step(torch.zeros(2, 4), torch.zeros(2, 1, 27), style=style)


def test_a_model_without_styles_is_the_papers_model():
    plain = build_model(VAEConfig(frame_size=27, latent_size=4, hidden_size=16, num_experts=2))
    assert not any("style" in k for k in plain.state_dict())
    torch.manual_seed(0)
    out = plain.step(torch.zeros(2, 4), torch.zeros(2, 1, 27), style=torch.tensor([0, 1]))  # ignored
    torch.testing.assert_close(out, plain.step(torch.zeros(2, 4), torch.zeros(2, 1, 27)))


def test_style_pattern_errors_name_the_flag_and_the_clip():
    indices, names = clip_styles(["dataset-1_walk_angry_001", "dataset-1_run_happy_002:mirror"],
                                 "_([a-z-]+)_[0-9]+$")
    assert names == ["angry", "happy"] and indices.tolist() == [0, 1]
    with pytest.raises(PrepareError, match="needs a group"):
        clip_styles(["a"], "a")
    with pytest.raises(PrepareError, match="not a regular expression"):
        clip_styles(["a"], "(")
    with pytest.raises(PrepareError, match="no style in the clip name 'jump_01'"):
        clip_styles(["walk_01", "jump_01"], "(walk|run)")
    assert np.array_equal(clip_styles(["x_run", "y_walk", "z_run"], "(run|walk)")[0], [0, 1, 0])


# ---- the environment -------------------------------------------------------------------------------------

def test_the_env_observes_the_style_and_fades_a_switch_in(style_vae):
    from envs.vec_env import MotionVecEnv

    model = load_manifold(style_vae[0])
    env = MotionVecEnv(4, "joystick", model, array_backend="torch")
    obs, _ = env.reset(seed=0)
    style = env.observation_layout["style"]
    assert env.style_names == ["run", "walk"] and style.stop - style.start == 2
    assert env.observation_feature_name(style.start) == "style[run]"
    # A restart takes its start window's style.
    torch.testing.assert_close(obs[:, style], F.one_hot(env.core.current_style(), 2).float())
    env.set_style("walk", blend_s=0.0)
    env.set_style("run")  # fades in over 0.5 s = 15 frames at 30 fps
    weights = []
    for _ in range(16):
        obs, *_ = env.step(torch.zeros(4, model.latent_size))
        weights.append(float(obs[0, style.start]))
    steps = np.diff([0.0] + weights)
    assert weights[-1] == pytest.approx(1.0) and weights[6] == pytest.approx(7 / 15, abs=1e-5)
    assert steps.max() <= 1 / 15 + 1e-6  # no jump: at most 1/15 of the way per frame


def test_style_state_round_trips_and_bad_styles_are_named(style_vae):
    from envs.vec_env import MotionVecEnv

    model = load_manifold(style_vae[0])
    env = MotionVecEnv(3, "target", model, array_backend="torch")
    env.reset(seed=1)
    env.set_style(torch.tensor([0, 1, 0]), blend_s=1.0)
    env.step(torch.zeros(3, model.latent_size))
    state = env.state_dict()
    after = env.step(torch.zeros(3, model.latent_size))[0]
    env.load_state_dict(state)
    torch.testing.assert_close(env.step(torch.zeros(3, model.latent_size))[0], after)
    with pytest.raises(ValueError, match="unknown style 'angry'; this model knows run, walk"):
        env.set_style("angry")
    with pytest.raises(ValueError, match=r"integers in \[0, 2\)"):
        env.set_style(5)


def test_training_envs_switch_styles_at_random(style_vae):
    from envs.vec_env import MotionVecEnv

    model = load_manifold(style_vae[0])
    env = MotionVecEnv(64, "joystick", model, array_backend="torch", style_change_s=1.0)
    env.reset(seed=0)
    first = env.core.style_to.clone()
    for _ in range(30):  # 1 s: about 63 % of the characters asked for a new random style, half of them another
        env.step(torch.zeros(64, model.latent_size))
    changed = (env.core.style_to != first).any(dim=1).float().mean()
    assert 0.1 < float(changed) < 0.6
    with pytest.raises(ValueError, match="style_change_s"):
        MotionVecEnv(2, "joystick", model, style_change_s=-1.0)


def test_a_model_without_styles_observes_no_style():
    from envs.toy_manifold import ToyManifold
    from envs.vec_env import MotionVecEnv

    env = MotionVecEnv(2, "target", ToyManifold())
    env.reset(seed=0)
    layout = env.observation_layout
    assert layout["style"].start == layout["style"].stop == layout["task"].start
    with pytest.raises(ValueError, match="has no styles"):
        env.set_style(0)


# ---- inference and the app ---------------------------------------------------------------------------------

def test_onnx_decoder_takes_the_style(style_vae, tmp_path):
    from controller.export import export_onnx
    from controller.runtime import make_backend

    model = load_manifold(style_vae[0])
    manifest = export_onnx(style_vae[0], tmp_path / "export", timing=False)
    assert manifest["num_styles"] == 2 and manifest["style_names"] == ["run", "walk"]
    assert [i["name"] for i in manifest["graphs"]["decoder"]["inputs"]] == ["z", "cond_raw", "style"]
    backend = make_backend(style_vae[0], backend="onnx", export_dir=tmp_path / "export", verbose=False)
    cond = model.start_frames[:4]
    z = torch.randn(4, model.latent_size, generator=torch.Generator().manual_seed(1))
    for style in (None, torch.tensor([0, 1, 1, 0]), torch.tensor([[0.25, 0.75]] * 4)):
        with torch.no_grad():
            expected = model.step(z, cond, style=style)
        torch.testing.assert_close(backend.step(z, cond, style=style), expected, atol=1e-4, rtol=1e-4)
    with pytest.raises(ValueError, match=r"integers in \[0, 2\)"):
        backend.step(z, cond, style=torch.tensor([0, 1, 2, 0]))


def test_the_app_starts_in_a_style_switches_it_and_keeps_it_across_tasks(style_vae):
    from app.hud import simulation_lines
    from app.simulation import AppConfig, Simulation

    sim = Simulation(AppConfig(vae=style_vae[0], policies_dir=None, style="walk", backend="torch"), verbose=False)
    assert sim.style_name() == "walk"
    assert "style walk [T]   (2 of 2)" in simulation_lines(sim)
    sim.apply_action({"style": "next"})
    assert sim.style_name() == "run"
    sim.switch_task("target")
    assert sim.style_name() == "run"
    sim.reset()
    assert sim.style_name() == "run"  # the user's pick outlives a reset
    sim.apply_action({"style": "tired"})
    assert sim.notes[-1] == "unknown style 'tired'; the styles are run, walk"
    with pytest.raises(ValueError, match="--style 'tired': unknown style; the model's styles: run, walk"):
        Simulation(AppConfig(vae=style_vae[0], policies_dir=None, style="tired", backend="torch"), verbose=False)


def test_input_scripts_carry_style_changes():
    from app.input_script import InputScript, ScriptError

    base = {"format": "mvae-play-input", "version": 1, "seed": 0, "task": "joystick", "steps": 10}
    script = InputScript.from_dict({**base, "events": [{"step": 3, "style": "next"}]})
    player = script.player()
    actions = [player.next_input().actions for _ in range(5)]
    assert actions[3] == [{"style": "next"}] and not any(actions[:3])
    with pytest.raises(ScriptError, match=r"events\[0\]\.style must be a style name"):
        InputScript.from_dict({**base, "events": [{"step": 0, "style": 3}]})


def test_the_build_asks_the_joystick_for_what_the_data_shows(style_vae):
    from characters.stage_data import locomotion_speeds, motion_repertoire
    from characters.stage_policies import task_options

    data = MotionDataset.load(style_vae[1])  # DeepMimic walks and runs: no standing, no sidesteps
    figures = {"speeds_mps": locomotion_speeds(data), **motion_repertoire(data)}
    assert figures["standing_share"] < 0.02 and figures["sideways_share"] < 0.05
    assert task_options("joystick", figures) == {"min_speed": 0.0, "max_speed": figures["speeds_mps"]["dash"]}
    bandai_like = {"speeds_mps": {"dash": 3.85}, "standing_share": 0.2, "sideways_share": 0.25}
    assert task_options("joystick", bandai_like) == {"min_speed": 0.0, "max_speed": 3.85, "stand_probability": 0.2,
                                                      "facing_command": True, "strafe_probability": 0.3}
    assert task_options("target", bandai_like) == {}
    assert task_options("joystick", bandai_like, repertoire=False) == {}  # the build's default
