"""int8 weights (controller.quantize, ``make_backend(precision="int8")``, ``play.py --precision int8``): the layout
ONNX Runtime reads, the graphs' outputs next to float32's, and what a user sees: a policy steering the shipped
character through the int8 graphs keeps its heading error, speed error and foot sliding."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from controller import quantize
from controller.runtime import make_backend

ROOT = Path(__file__).resolve().parents[1]
CHARACTER = ROOT / "assets" / "characters" / "bandai-namco"
VAE = CHARACTER / "vae.pt"
JOYSTICK = CHARACTER / "policies" / "joystick.pt"


def test_blocks_round_trip_within_half_a_step():
    rng = np.random.default_rng(0)
    w = rng.standard_normal((70, 24)).astype(np.float32)  # K = 70: not a whole number of blocks
    w[:, 3] = 0.0  # an all-zero column keeps a finite scale
    codes, scales = quantize.quantize_blocks(w)
    blocks = -(-70 // quantize.BLOCK)
    assert codes.shape == (24, blocks, quantize.BLOCK) and codes.dtype == np.uint8
    assert scales.shape == (24, blocks) and np.isfinite(scales).all()
    back = quantize.dequantize_blocks(codes, scales, 70)
    assert back.shape == w.shape
    step = np.repeat(scales.T, quantize.BLOCK, axis=0)[:70]  # (K, N): each weight's block scale
    assert (np.abs(back - w) <= 0.5 * step + 1e-7).all()
    assert np.abs(back[:, 3]).max() == 0.0


@pytest.fixture(scope="module")
def backends():
    fp32 = make_backend(str(VAE), policy=str(JOYSTICK), backend="onnx", device="cpu", verbose=False)
    int8 = make_backend(str(VAE), policy=str(JOYSTICK), backend="onnx", device="cpu", precision="int8",
                        verbose=False)
    return fp32, int8


def test_the_big_matmuls_are_8_bit_and_the_frames_stay_close(backends, joystick_inputs):
    import onnx

    fp32, int8 = backends
    model = onnx.load(str(fp32.export_dir / fp32.manifest["files"]["controller"]))
    quantized, converted = quantize.int8_weights(model)
    ops = [node.op_type for node in quantized.graph.node]
    assert converted == ops.count("MatMulNBits") >= 3  # at least the decoder's three expert layers
    big = sum(i.raw_data.__len__() for i in quantized.graph.initializer if i.name.endswith("_int8"))
    assert big >= 1_000_000  # the experts' weights, one byte each

    obs, cond, style = joystick_inputs(fp32, 64)
    frames, actions = fp32.control(obs, cond, style)
    frames8, actions8 = int8.control(obs, cond, style)
    spread = fp32.manifold.data_std.float()  # per feature: differences in units of the data's own spread
    assert ((frames8 - frames).abs() / spread).max() < 0.1
    assert ((frames8 - frames).abs() / spread).mean() < 0.01
    assert (actions8 - actions).abs().max() < 0.08  # actions in [-1, 1] (measured 0.04); training explored with std 0.1
    one, _ = int8.control(obs[:1], cond[:1], style[:1])  # batch 1 (one thread) and 64 (the crowd sessions) agree
    assert (one - frames8[:1]).abs().max() < 1e-3


def test_a_policy_steers_the_int8_character_as_well(backends, steers_alike):
    """64 joystick episodes of the shipped policy, run by each backend: heading and speed errors, foot sliding and
    jitter of the int8 run next to the float32 run (differences measured across seeds: 0.3 deg, 0.02 m/s, 5 %)."""
    steers_alike(*backends)


def test_int8_needs_the_onnx_backend_on_the_cpu():
    with pytest.raises(ValueError, match="precision"):
        make_backend(str(VAE), backend="torch", precision="int8", verbose=False)
    with pytest.raises(ValueError, match="fp32, int8"):
        make_backend(str(VAE), backend="onnx", precision="int4", verbose=False)
    with pytest.raises(ValueError, match="CPU provider"):
        make_backend(str(VAE), backend="onnx", device="cuda", precision="int8", verbose=False)


def test_an_old_onnxruntime_is_named(monkeypatch):
    import onnxruntime

    monkeypatch.setattr(onnxruntime, "__version__", "1.20.1")
    with pytest.raises(ValueError, match=r"onnxruntime >= 1\.22"):
        quantize.check_runtime()


def test_play_precision_flag_reaches_the_hud(backends):
    from app.hud import simulation_lines
    from app.simulation import AppConfig, Simulation

    sim = Simulation(AppConfig(character=str(CHARACTER), task="joystick", precision="int8"), verbose=False)
    assert sim.backend.precision == "int8"
    assert "int8 weights" in " ".join(simulation_lines(sim))
    sim.step()
    with pytest.raises(ValueError, match="--precision int8"):
        AppConfig(character=str(CHARACTER), backend="torch", precision="int8").check()
