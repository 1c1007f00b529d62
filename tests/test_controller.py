"""ONNX export and runtime backends: real exports, real ONNX Runtime sessions, real checkpoint files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import types

import numpy as np
import onnx
import pytest
import torch
from torch import nn

import controller.export as exporter
from controller import make_backend
from mocap.skeleton import Skeleton
from vae import VAEConfig, build_model, load_manifold, save_checkpoint

TOL = 1e-4
ROLLOUT = 1000


# ---- helpers ---------------------------------------------------------------------------------------------
class StandInPolicy(nn.Module):
    """A policy following the policy contract: raw observations normalised inside, tanh (or argmax codes) out."""

    def __init__(self, obs_size: int, latent_size: int, *, discrete: bool = False, num_actions: int | None = None,
                 hidden: tuple[int, ...] = (32, 32), action_scale: float | None = None, seed: int = 0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.obs_size, self.discrete, self.num_actions, self.task = obs_size, discrete, num_actions, "stand-in"
        self.action_size = 1 if discrete else latent_size
        if action_scale is not None:
            self.action_scale = action_scale
        self.register_buffer("obs_mean", torch.randn(obs_size, generator=g))
        self.register_buffer("obs_var", torch.rand(obs_size, generator=g) + 0.5)
        sizes = [obs_size, *hidden]
        layers: list[nn.Module] = []
        for a, b in zip(sizes[:-1], sizes[1:], strict=True):
            layers += [nn.Linear(a, b), nn.ReLU()]
        layers.append(nn.Linear(sizes[-1], num_actions if discrete else latent_size))
        self.net = nn.Sequential(*layers)

    def forward(self, obs_raw: torch.Tensor) -> torch.Tensor:
        x = ((obs_raw - self.obs_mean) / torch.sqrt(self.obs_var + 1e-8)).clamp(-10.0, 10.0)
        y = self.net(x)
        return y.argmax(dim=1) if self.discrete else torch.tanh(y)


def skeleton_for(frame_size: int) -> Skeleton:
    joints = (frame_size - 3) // 12
    names = ["Hips"] + [f"Joint{i}" for i in range(1, joints)]
    return Skeleton(names, [-1] + list(range(joints - 1)), np.full((joints, 3), 0.1))


def make_manifold(model: str = "mixture", frame_size: int = 27, seed: int = 0, **config) -> torch.nn.Module:
    """A random manifold with realistic normalisation: statistics of random data with varied feature scales."""
    torch.manual_seed(seed)
    if frame_size != 267:
        config = {"hidden_size": 32, "gate_hidden_size": 16, "num_experts": 3, "latent_size": 8, **config}
    manifold = build_model(VAEConfig(model=model, frame_size=frame_size, **config)).eval()
    g = torch.Generator().manual_seed(seed + 1)
    scale = torch.exp(torch.empty(frame_size).uniform_(-3.0, 1.0, generator=g))  # 0.05 .. 2.7
    data = torch.randn(2000, frame_size, generator=g) * scale + torch.randn(frame_size, generator=g)
    manifold.set_normalization(data.mean(0), data.std(0))
    manifold.extra = {"start_frames": data[:8].reshape(8, 1, frame_size).repeat(
        1, manifold.num_condition_frames, 1)}
    manifold.fps = 30.0
    manifold.skeleton = skeleton_for(frame_size)
    return manifold


def save(manifold, path) -> None:
    save_checkpoint(path, manifold, skeleton=skeleton_for(manifold.frame_size), fps=30.0,
                    dataset_fingerprint="test-data", extra=manifold.extra)


def start_window(manifold) -> torch.Tensor:
    return manifold.start_frames[:1].reshape(1, -1)  # (1, C*D)


def rollout(step, manifold, actions) -> torch.Tensor:
    """Autoregressive rollout feeding each predicted frame back as the newest condition frame -> (T, D)."""
    c, d = manifold.num_condition_frames, manifold.frame_size
    cond = start_window(manifold)
    frames = []
    for a in actions:
        nxt = torch.as_tensor(step(a[None], cond)).reshape(1, d)
        frames.append(nxt[0])
        cond = torch.cat((cond.reshape(1, c, d)[:, 1:], nxt[:, None]), dim=1).reshape(1, c * d)
    return torch.stack(frames)


def graph_inputs(path) -> dict:
    model = onnx.load(str(path))
    return {i.name: [d.dim_param or d.dim_value for d in i.type.tensor_type.shape.dim] for i in model.graph.input}


# ---- export: parity over long rollouts -------------------------------------------------------------------
def test_full_size_mixture_matches_torch_over_1000_frame_rollout(tmp_path):
    manifold = make_manifold("mixture", frame_size=267)
    manifest = exporter.export_onnx(manifold, tmp_path)
    assert graph_inputs(tmp_path / "decoder.onnx") == {"z": ["batch", 32], "cond_raw": ["batch", 267]}
    backend = make_backend(manifold, backend="onnx", export_dir=tmp_path, verbose=False)
    assert backend.provider == "CPUExecutionProvider" and backend.name == "onnx"
    z = torch.randn(ROLLOUT, 32, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        expected = rollout(manifold.step, manifold, z)
    got = rollout(backend.step, manifold, z)
    assert torch.isfinite(expected).all() and expected.std() > 0.01  # a rollout that moves, not a constant
    assert (got - expected).abs().max().item() <= TOL
    assert manifest["frame_size"] == 267 and manifest["latent_size"] == 32 and not manifest["discrete"]


@pytest.mark.parametrize("config", [dict(model="vq", num_codes=16), dict(model="mixture", num_condition_frames=2,
                                                                         num_future_predictions=2),
                                    dict(model="vae")], ids=["vq-codes", "mixture-C2-F2", "plain-vae"])
def test_small_manifolds_match_torch_over_1000_frame_rollout(tmp_path, config):
    manifold = make_manifold(**config)
    exporter.export_onnx(manifold, tmp_path)
    backend = make_backend(manifold, backend="onnx", export_dir=tmp_path, verbose=False)
    actions = manifold.sample_prior(ROLLOUT, generator=torch.Generator().manual_seed(4))
    if manifold.discrete:
        assert actions.dtype == torch.int64 and graph_inputs(tmp_path / "decoder.onnx")["code"] == ["batch"]
    with torch.no_grad():
        expected = rollout(manifold.step, manifold, actions)
    got = rollout(backend.step, manifold, actions)
    assert (got - expected).abs().max().item() <= TOL


def test_batched_step_matches_torch_for_any_batch_size(tmp_path):
    manifold = make_manifold()
    exporter.export_onnx(manifold, tmp_path)
    backend = make_backend(manifold, backend="onnx", export_dir=tmp_path, verbose=False)
    for batch in (1, 2, 7, 64):
        z = torch.randn(batch, 8)
        cond = manifold.start_frames[torch.arange(batch) % 8]  # (B, C, D)
        with torch.no_grad():
            assert torch.allclose(backend.step(z, cond), manifold.step(z, cond), atol=TOL)


def test_export_is_deterministic(tmp_path):
    manifold = make_manifold().train()  # e.g. exported in the middle of training
    policy = StandInPolicy(11, 8, action_scale=4.0)
    exporter.export_onnx(manifold, tmp_path / "a", policy, timing=False)
    exporter.export_onnx(manifold, tmp_path / "b", policy, timing=False)
    assert manifold.training and policy.training  # handed back as they came
    for name in ("decoder.onnx", "policy.onnx", "controller.onnx"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name


# ---- export: the CLI, the manifest, the policy graphs ----------------------------------------------------
def test_cli_exports_a_checkpoint_with_a_manifest(tmp_path):
    manifold = make_manifold()
    ckpt = tmp_path / "vae.pt"
    save(manifold, ckpt)
    out = tmp_path / "onnx"
    proc = subprocess.run([sys.executable, "-m", "controller.export", "--vae", str(ckpt), "--out", str(out)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "decoder.onnx" in proc.stdout
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["files"] == {"decoder": "decoder.onnx"}
    assert manifest["graphs"]["decoder"]["inputs"] == [
        {"name": "z", "shape": ["batch", 8], "dtype": "float32"},
        {"name": "cond_raw", "shape": ["batch", 27], "dtype": "float32"}]
    assert manifest["graphs"]["decoder"]["outputs"] == [
        {"name": "next_raw", "shape": ["batch", 27], "dtype": "float32"}]
    source = manifest["sources"]["vae"]
    assert source["file"]["size"] == ckpt.stat().st_size and set(source["file"]) == {"sha256", "size"}
    assert str(tmp_path) not in (out / "manifest.json").read_text()  # no machine paths: a clone reuses it
    assert len(source["file"]["sha256"]) == 64 and source["dataset_fingerprint"] == "test-data"
    assert manifest["opset"] == exporter.OPSET and manifest["versions"]["torch"] == torch.__version__
    assert manifest["parity_max_error"]["decoder"] <= TOL and manifest["policy"] is None
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temp files left behind


def test_cli_reports_a_missing_checkpoint_or_policy_clearly(tmp_path, capsys, monkeypatch):
    assert exporter.main(["--vae", str(tmp_path / "nope.pt"), "--out", str(tmp_path / "o")]) == 2
    assert "nope.pt" in capsys.readouterr().err
    manifold = make_manifold()
    save(manifold, tmp_path / "vae.pt")
    assert exporter.main(["--vae", str(tmp_path / "vae.pt"), "--policy", str(tmp_path / "pol.pt"),
                          "--out", str(tmp_path / "o")]) == 2
    assert "pol.pt: no such policy checkpoint" in capsys.readouterr().err
    torch.save({"format": "mvae-policy"}, tmp_path / "pol.pt")
    monkeypatch.setitem(sys.modules, "policies", None)  # the policies package absent from the installation
    assert exporter.main(["--vae", str(tmp_path / "vae.pt"), "--policy", str(tmp_path / "pol.pt"),
                          "--out", str(tmp_path / "o")]) == 2
    assert "policies.load_policy cannot be imported" in capsys.readouterr().err


def test_policy_and_fused_controller_graphs_match_torch(tmp_path):
    manifold = make_manifold()
    policy = StandInPolicy(11, 8, action_scale=3.0)
    manifest = exporter.export_onnx(manifold, tmp_path, policy)
    assert manifest["files"] == {"decoder": "decoder.onnx", "policy": "policy.onnx", "controller": "controller.onnx"}
    assert manifest["action_scale"] == 3.0 and manifest["policy"]["obs_size"] == 11
    assert graph_inputs(tmp_path / "controller.onnx") == {"obs_raw": ["batch", 11], "cond_raw": ["batch", 27]}
    timing = manifest["timing"]
    for batch in (1, 256):
        assert timing[f"b{batch}"]["fused_ms"] > 0 and timing[f"b{batch}"]["separate_ms"] > 0
        assert timing["choice"][f"b{batch}"] in ("fused", "separate")

    backend = make_backend(manifold, policy, backend="onnx", export_dir=tmp_path, verbose=False)
    obs = torch.randn(5, 11)
    cond = manifold.start_frames[:5].reshape(5, -1)
    with torch.no_grad():
        action = policy(obs)
        expected = manifold.step(action * 3.0, cond)
    assert torch.allclose(backend.act(obs), action, atol=TOL)
    for fused in (True, False):  # both ways of running policy + decoder
        backend.fused_choice = {1: fused, 256: fused}
        nxt, act = backend.control(obs, cond)
        assert torch.allclose(act, action, atol=TOL) and torch.allclose(nxt, expected, atol=TOL)
    assert backend.meters["control"].count == 2 and backend.last_ms > 0


def test_policy_checkpoint_is_loaded_with_policies_load_policy(tmp_path, monkeypatch, capsys):
    """The --policy path: policies.load_policy (a stand-in package here) and the checkpoint's action_scale."""
    config = {"obs_size": 11, "latent_size": 8, "action_scale": 2.5}

    def load_policy(path, device="cpu"):
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
        policy = StandInPolicy(ckpt["config"]["obs_size"], ckpt["config"]["latent_size"])
        policy.load_state_dict(ckpt["state_dict"])
        return policy.to(device).eval()

    monkeypatch.setitem(sys.modules, "policies", types.SimpleNamespace(load_policy=load_policy))
    manifold, policy = make_manifold(), StandInPolicy(11, 8, seed=7)
    save(manifold, tmp_path / "vae.pt")
    torch.save({"format": "mvae-policy", "version": 1, "task": "stand-in", "config": config,
                "state_dict": policy.state_dict(), "vae_fingerprint": "test"}, tmp_path / "pol.pt")
    assert exporter.main(["--vae", str(tmp_path / "vae.pt"), "--policy", str(tmp_path / "pol.pt"),
                          "--out", str(tmp_path / "out")]) == 0
    assert "controller.onnx" in capsys.readouterr().out
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["action_scale"] == 2.5 and manifest["sources"]["policy"]["file"]["size"] > 0

    backend = make_backend(tmp_path / "vae.pt", policy=tmp_path / "pol.pt", verbose=False)
    assert backend.export_dir == tmp_path / "pol.pt.onnx" and backend.action_scale == 2.5
    obs, cond = torch.randn(2, 11), manifold.start_frames[:2]
    nxt, action = backend.control(obs, cond)
    with torch.no_grad():
        assert torch.allclose(nxt, manifold.step(policy(obs) * 2.5, cond), atol=TOL)


def test_discrete_policy_drives_a_vq_manifold_through_the_fused_graph(tmp_path):
    manifold = make_manifold("vq", num_codes=16)
    policy = StandInPolicy(11, 8, discrete=True, num_actions=16)
    manifest = exporter.export_onnx(manifold, tmp_path, policy, timing=False)
    assert manifest["action_scale"] is None and manifest["graphs"]["policy"]["outputs"][0]["dtype"] == "int64"
    backend = make_backend(manifold, policy, backend="onnx", export_dir=tmp_path, verbose=False)
    obs, cond = torch.randn(6, 11), manifold.start_frames[:6]
    nxt, codes = backend.control(obs, cond)
    with torch.no_grad():
        assert torch.equal(codes, policy(obs)) and codes.dtype == torch.int64
        assert torch.allclose(nxt, manifold.step(codes, cond), atol=TOL)


def test_policy_that_does_not_fit_the_manifold_is_refused(tmp_path):
    manifold = make_manifold()
    with pytest.raises(ValueError, match="action_size 5 differs from the VAE's latent_size 8"):
        exporter.export_onnx(manifold, tmp_path, StandInPolicy(11, 5, action_scale=4.0))
    with pytest.raises(ValueError, match="no action_scale"):
        exporter.export_onnx(manifold, tmp_path, StandInPolicy(11, 8))
    with pytest.raises(ValueError, match="Gaussian"):
        exporter.export_onnx(make_manifold("vq", num_codes=16), tmp_path, StandInPolicy(11, 8, action_scale=4.0))


def test_export_refuses_a_policy_made_for_another_vae(tmp_path):
    """A policy file whose observations do not fit this VAE's task observations (another frame size), or that
    was trained on other weights, is refused before anything is exported (as play.py and evaluate do)."""
    from policies import PolicyModule, make_config, save_policy

    save(make_manifold(frame_size=39), tmp_path / "big.pt")  # 3 joints
    save(make_manifold(), tmp_path / "small.pt")  # 2 joints
    big = load_manifold(tmp_path / "big.pt")
    obs_big = big.num_condition_frames * 39 + 2  # the target task's observation on the 3-joint VAE
    config = make_config(obs_size=obs_big, latent_size=8, discrete=False, num_actions=None, task="target")
    save_policy(tmp_path / "target.pt", PolicyModule(config), manifold=big)
    out = tmp_path / "export"
    proc = subprocess.run([sys.executable, "-m", "controller.export", "--vae", str(tmp_path / "small.pt"),
                           "--policy", str(tmp_path / "target.pt"), "--out", str(out)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert f"expects observations of size {obs_big}" in proc.stderr and not (out / "manifest.json").exists()
    other = make_manifold(frame_size=39, seed=9)  # same sizes, other weights
    other.dataset_fingerprint = "test-data"
    with pytest.raises(ValueError, match="trained on another VAE"):
        exporter.export_onnx(other, tmp_path / "e2", tmp_path / "target.pt")
    manifest = exporter.export_onnx(tmp_path / "big.pt", tmp_path / "e3", tmp_path / "target.pt", timing=False)
    assert manifest["policy"]["obs_size"] == obs_big


def test_export_checks_its_output_folder_first(tmp_path):
    save(make_manifold(), tmp_path / "vae.pt")
    (tmp_path / "file").write_text("x")
    proc = subprocess.run([sys.executable, "-m", "controller.export", "--vae", str(tmp_path / "vae.pt"),
                           "--out", str(tmp_path / "file" / "export")], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "--out" in proc.stderr and "is a file" in proc.stderr
    assert "Traceback" not in proc.stderr


# ---- runtime -----------------------------------------------------------------------------------------------
def test_backend_from_a_checkpoint_caches_its_export_beside_it(tmp_path):
    manifold = make_manifold()
    ckpt = tmp_path / "vae.pt"
    save(manifold, ckpt)
    backend = make_backend(ckpt, verbose=False)
    cache = tmp_path / "vae.pt.onnx"
    assert backend.name == "onnx" and backend.export_dir == cache and (cache / "manifest.json").is_file()
    stamp = (cache / "decoder.onnx").stat().st_mtime_ns
    again = make_backend(ckpt, verbose=False)
    assert again._handle.reused and (cache / "decoder.onnx").stat().st_mtime_ns == stamp

    changed = make_manifold(seed=5)
    save(changed, ckpt)  # a retrained model at the same path: the cache must not serve the old graphs
    fresh = make_backend(ckpt, verbose=False)
    assert not fresh._handle.reused
    z, cond = torch.randn(3, 8), changed.start_frames[:3]
    with torch.no_grad():
        assert torch.allclose(fresh.step(z, cond), changed.step(z, cond), atol=TOL)
    os.utime(ckpt, ns=(time.time_ns(), time.time_ns() + 10**9))  # same bytes, new mtime (a fresh clone): reused
    assert make_backend(ckpt, verbose=False)._handle.reused
    assert sorted(p.name for p in tmp_path.iterdir()) == ["vae.pt", "vae.pt.onnx"]  # nothing half-written


def test_backends_quack_like_the_manifold_and_agree(tmp_path, capsys):
    manifold = make_manifold()
    onnx_backend = make_backend(manifold, backend="onnx")
    assert "onnx backend on CPUExecutionProvider" in capsys.readouterr().out
    torch_backend = make_backend(manifold, backend="torch", verbose=False)
    assert torch_backend.name == "torch" and torch_backend.provider == "torch-cpu"
    for b in (onnx_backend, torch_backend):
        assert (b.frame_size, b.latent_size, b.discrete, b.num_condition_frames, b.fps) == (27, 8, False, 1, 30.0)
        assert b.skeleton is manifold.skeleton and b.start_frames.shape == (8, 1, 27) and b.device.type == "cpu"
        assert b.sample_prior(4, torch.Generator().manual_seed(0)).shape == (4, 8)
    z, cond = torch.randn(4, 8), manifold.start_frames[:4]
    a, b = onnx_backend.step(z, cond), torch_backend.step(z, cond)
    assert isinstance(a, torch.Tensor) and a.shape == (4, 27) and torch.allclose(a, b, atol=TOL)
    assert onnx_backend.last_ms > 0 and onnx_backend.mean_ms > 0 and onnx_backend.meters["step"].count == 1


def test_backend_drives_the_motion_core_of_the_environments():
    import envs.motion_core as motion_core
    manifold = make_manifold()
    backend = make_backend(manifold, backend="onnx", verbose=False)
    core = motion_core.MotionCore(backend, 3)
    core.seed(0)
    core.reset()
    for _ in range(5):
        core.step(core.sample_prior())
    assert torch.isfinite(core.frame).all() and int(core.steps[0]) == 5


def test_bad_requests_get_clear_errors(tmp_path):
    manifold = make_manifold()
    with pytest.raises(ValueError, match="backend must be one of"):
        make_backend(manifold, backend="tensorrt")
    import onnxruntime

    if "CUDAExecutionProvider" not in onnxruntime.get_available_providers():
        with pytest.raises(RuntimeError, match="onnxruntime-gpu"):
            make_backend(manifold, backend="onnx", device="cuda", verbose=False)
    backend = make_backend(manifold, backend="onnx", export_dir=tmp_path, verbose=False)
    with pytest.raises(RuntimeError, match="needs a policy"):
        backend.act(torch.zeros(1, 11))
    with pytest.raises(ValueError, match=r"expected \(B, 1, 27\)"):
        backend.step(torch.zeros(1, 8), torch.zeros(1, 26))
    with pytest.raises(ValueError, match="other models"):
        make_backend(make_manifold(seed=9), backend="onnx", export_dir=tmp_path, verbose=False)
    vq = make_manifold("vq", num_codes=16)
    vq_backend = make_backend(vq, backend="onnx", verbose=False)
    with pytest.raises(ValueError, match="out of range"):
        vq_backend.step(torch.tensor([16]), vq.start_frames[:1])
    with pytest.raises(ValueError, match="integer code indices"):
        vq_backend.step(torch.zeros(1, 8), vq.start_frames[:1])


def test_weights_fingerprint_handles_scalar_buffers():
    """Policy files hold 0-d tensors (e.g. a step count); fingerprinting must not choke on them."""
    from common.fingerprint import weights_fingerprint

    a, b = torch.nn.Module(), torch.nn.Module()
    a.register_buffer("count", torch.tensor(3.0, dtype=torch.float64))
    b.register_buffer("count", torch.tensor(4.0, dtype=torch.float64))
    assert weights_fingerprint(a) != weights_fingerprint(b)


def test_bound_calls_return_arrays_the_caller_keeps_and_big_batches_agree(tmp_path):
    # Every graph and batch size runs through IO bindings after its first call: what a call returned must not change
    # on the next call, and batches from BATCH_THREADS_MIN rows (sessions with more threads) give the same frames.
    from controller.runtime import BATCH_THREADS_MIN

    manifold = make_manifold()
    policy = StandInPolicy(11, 8, action_scale=3.0)
    exporter.export_onnx(manifold, tmp_path, policy, timing=False)
    backend = make_backend(manifold, policy, backend="onnx", export_dir=tmp_path, batch_threads=2, verbose=False)
    for batch in (1, 3, BATCH_THREADS_MIN + 5):
        cond = manifold.start_frames[torch.arange(batch) % 8].reshape(batch, -1)
        kept = []
        for seed in range(3):
            obs = torch.randn(batch, 11, generator=torch.Generator().manual_seed(seed))
            z = torch.randn(batch, 8, generator=torch.Generator().manual_seed(seed))
            with torch.no_grad():
                action = policy(obs)
                expected = (manifold.step(z, cond), action, manifold.step(action * 3.0, cond))
            got = (backend.step(z, cond), backend.act(obs), backend.control(obs, cond)[0])
            kept.append((expected, got, tuple(g.clone() for g in got)))
        for expected, got, copy in kept:
            for e, g, c in zip(expected, got, copy, strict=True):
                assert torch.equal(g, c) and torch.allclose(g, e, atol=TOL)


@pytest.mark.parametrize("alpha", [1.0, 0.5])
def test_vectorised_elu_computes_elu(alpha):
    import onnxruntime
    from onnx import TensorProto, helper

    from controller.runtime import vectorised_elu

    node = helper.make_node("Elu", ["x"], ["y"], alpha=alpha)
    graph = helper.make_graph([node], "elu", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 5])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 5])])
    model = vectorised_elu(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]))
    assert "Elu" not in {n.op_type for n in model.graph.node}
    session = onnxruntime.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    x = np.linspace(-6.0, 3.0, 40, dtype=np.float32).reshape(8, 5)
    expected = torch.nn.functional.elu(torch.from_numpy(x), alpha=alpha).numpy()
    np.testing.assert_allclose(session.run(None, {"x": x})[0], expected, atol=1e-6)
