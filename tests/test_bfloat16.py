"""The decoder in bfloat16 (controller.bfloat16, ``make_backend(precision="bf16")``, ``play.py --precision bf16``):
frames next to float32's, the caller's model untouched, and what a user sees: the shipped joystick policy steers the
bfloat16 character as well; flags that cannot go together are refused with the flag's name."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from controller import bfloat16
from controller.runtime import make_backend

ROOT = Path(__file__).resolve().parents[1]
CHARACTER = ROOT / "assets" / "characters" / "bandai-namco"
VAE = CHARACTER / "vae.pt"
JOYSTICK = CHARACTER / "policies" / "joystick.pt"

needs_bf16 = pytest.mark.skipif(not bfloat16.native_bfloat16("cpu"),
                                reason="this CPU has no bfloat16 matmul instructions (AVX512-BF16 or AMX)")


@pytest.fixture(scope="module")
def backends():
    fp32 = make_backend(str(VAE), policy=str(JOYSTICK), backend="torch", device="cpu", verbose=False)
    bf16 = make_backend(str(VAE), policy=str(JOYSTICK), device="cpu", precision="bf16", verbose=False)
    return fp32, bf16


@needs_bf16
def test_frames_stay_close_to_float32_and_the_model_given_is_untouched(backends, joystick_inputs):
    fp32, bf16 = backends
    assert bf16.name == "torch" and bf16.precision == "bf16" and "bf16 decoder" in bf16.summary
    assert next(bf16._stepper.decoder.parameters()).dtype == torch.bfloat16
    assert all(p.dtype == torch.float32 for p in bf16.manifold.parameters())  # the model given, untouched

    obs, cond, style = joystick_inputs(fp32, 256)
    frames, actions = fp32.control(obs, cond, style)
    frames16, actions16 = bf16.control(obs, cond, style)
    assert frames16.dtype == torch.float32 and frames16.shape == frames.shape
    torch.testing.assert_close(actions16, actions)  # the policy stays float32
    error = (frames16 - frames).abs() / fp32.manifold.data_std.float()  # in units of the data's own spread
    assert error.max() < 0.1
    assert error.mean() < 0.01


@needs_bf16
def test_a_policy_steers_the_bfloat16_character_as_well(backends, steers_alike):
    """64 joystick episodes of the shipped policy, run by each backend: heading and speed errors, foot sliding and
    jitter of the bfloat16 run next to the float32 run (the bars of the int8 test)."""
    steers_alike(*backends)


def test_bfloat16_refuses_onnx_and_processors_that_would_emulate_it(monkeypatch):
    from app.simulation import AppConfig

    with pytest.raises(ValueError, match="backend='torch' or 'auto'"):
        make_backend(str(VAE), backend="onnx", precision="bf16", verbose=False)
    with pytest.raises(ValueError, match="--backend onnx"):
        AppConfig(character=str(CHARACTER), backend="onnx", precision="bf16").check()
    monkeypatch.setattr(bfloat16, "native_bfloat16", lambda device="cpu": False)
    with pytest.raises(ValueError, match="--precision fp32"):
        make_backend(str(VAE), precision="bf16", verbose=False)
    with pytest.raises(ValueError, match="no bfloat16 matmul instructions"):
        AppConfig(character=str(CHARACTER), precision="bf16").check()


@needs_bf16
def test_play_precision_flag_reaches_the_hud():
    from app.hud import simulation_lines
    from app.simulation import AppConfig, Simulation

    sim = Simulation(AppConfig(character=str(CHARACTER), task="joystick", characters=8, precision="bf16"),
                     verbose=False)
    assert sim.backend.precision == "bf16"
    assert "bf16 decoder" in " ".join(simulation_lines(sim))
    sim.step()
    assert sim.controller.label.startswith("policy"), sim.notes  # the character's policy fits the bfloat16 model
    assert np.isfinite(sim.model_joint_positions()).all()


@needs_bf16
def test_a_crowd_runs_bf16_by_default_and_a_float32_crowd_is_told_about_it():
    from app.simulation import BF16_CROWD_CHARACTERS, AppConfig, Simulation

    crowd = AppConfig(character=str(CHARACTER), task="target", characters=BF16_CROWD_CHARACTERS)
    sim = Simulation(crowd, verbose=False)
    assert crowd.precision == "bf16" and sim.backend.precision == "bf16"
    assert any("decoder runs in bfloat16" in note and "--precision fp32" in note for note in sim.notes)
    sim.close()
    small = AppConfig(character=str(CHARACTER), task="target", characters=BF16_CROWD_CHARACTERS - 1)
    small.check()
    assert small.precision == "fp32", "below a crowd one character's float32 graph on ONNX Runtime is faster"
    sim = Simulation(AppConfig(character=str(CHARACTER), task="target", characters=BF16_CROWD_CHARACTERS,
                               precision="fp32"), verbose=False)
    assert sim.backend.precision == "fp32"
    assert any("--precision bf16" in note for note in sim.notes)
    sim.close()
