"""Checkpoints: save -> load (weights_only) reproduces the model; bad files give clear errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mocap.skeleton import Skeleton
from vae import PoseMixtureVAE, PoseVQVAE, VAEConfig, build_model, load_manifold, save_checkpoint

J = 4
D = 3 + 12 * J


def _skeleton(joints: int = J) -> Skeleton:
    names = ["Hips"] + [f"Joint{i}" for i in range(1, joints)]
    return Skeleton(names, [-1] + list(range(joints - 1)), np.full((joints, 3), 0.1))


def _config(model: str) -> VAEConfig:
    return VAEConfig(model=model, frame_size=D, latent_size=8, hidden_size=32, num_experts=3, gate_hidden_size=16,
                     num_codes=16)


@pytest.mark.parametrize("kind", ["mixture", "vae", "vq"])
def test_save_load_gives_identical_outputs(tmp_path, kind):
    torch.manual_seed(0)
    model = build_model(_config(kind))
    model.set_normalization(torch.randn(D), torch.rand(D) + 0.5)
    if kind == "vq":
        model.train()(torch.randn(64, D), torch.randn(64, D))  # move the codebook off its initial values
    model.eval()
    path = tmp_path / "sub" / "model.pt"
    save_checkpoint(path, model, skeleton=_skeleton(), fps=30.0, dataset_fingerprint="abc123", extra={"epoch": 3})
    assert [p.name for p in path.parent.iterdir()] == ["model.pt"]  # no temp file left behind
    raw = torch.load(path, weights_only=True)
    assert raw["format"] == "mvae-checkpoint" and raw["version"] == 1

    loaded = load_manifold(path)
    assert type(loaded) is type(model) and not loaded.training
    assert loaded.config == model.config
    assert loaded.skeleton.joint_names == _skeleton().joint_names
    assert loaded.fps == 30.0 and loaded.dataset_fingerprint == "abc123" and loaded.extra == {"epoch": 3}
    action = model.sample_prior(5, generator=torch.Generator().manual_seed(1))
    cond = torch.randn(5, 1, D)
    assert torch.equal(loaded.step(action, cond), model.step(action, cond))


def test_missing_file_says_how_to_train(tmp_path):
    with pytest.raises(FileNotFoundError, match="python -m vae.train"):
        load_manifold(tmp_path / "nope.pt")


def test_not_a_checkpoint(tmp_path):
    text = tmp_path / "notes.pt"
    text.write_text("hello")
    with pytest.raises(ValueError, match="not a .*PyTorch checkpoint"):
        load_manifold(text)
    bare = tmp_path / "bare.pt"
    torch.save(PoseMixtureVAE(_config("mixture")).state_dict(), bare)
    with pytest.raises(ValueError, match="not an mvae-checkpoint"):
        load_manifold(bare)


def test_pickled_module_is_refused_with_a_clear_message(tmp_path):
    path = tmp_path / "ea_reference.pt"
    torch.save(PoseVQVAE(_config("vq")), path)  # what the EA reference code does: the whole module
    with pytest.raises(ValueError, match="pickled Python objects.*retrain"):
        load_manifold(path)


def test_skeleton_mismatch(tmp_path):
    model = build_model(_config("mixture"))
    with pytest.raises(ValueError, match="has 5"):
        save_checkpoint(tmp_path / "m.pt", model, skeleton=_skeleton(5), fps=30, dataset_fingerprint="x")
    save_checkpoint(tmp_path / "m.pt", model, skeleton=_skeleton(), fps=30, dataset_fingerprint="x")
    raw = torch.load(tmp_path / "m.pt", weights_only=True)
    raw["skeleton"] = _skeleton(5).to_dict()
    torch.save(raw, tmp_path / "bad.pt")
    with pytest.raises(ValueError, match="do not belong together"):
        load_manifold(tmp_path / "bad.pt")


def test_extra_must_be_plain(tmp_path):
    model = build_model(_config("vae"))
    with pytest.raises(TypeError, match="plain types"):
        save_checkpoint(tmp_path / "m.pt", model, skeleton=_skeleton(), fps=30, dataset_fingerprint="x",
                        extra={"optimizer": object()})
