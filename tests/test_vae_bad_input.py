"""Bad input to the Motion VAE tools gives one line naming the file or flag and what to do, never a traceback.

Output paths are checked before any work (``vae.train --out``, ``vae.ship --out``); a shipped checkpoint cannot be
resumed; files of the wrong kind (random bytes, a policy file, a BVH) are named for what they are. Tests run as
root, so unwritable folders cannot be produced with permission bits: a folder and a file's sub-path stand in.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from policies import PolicyModule, make_config, save_policy
from vae import load_manifold
from vae.evaluate import main as evaluate_main
from vae.ship import main as ship_main
from vae.train import TrainConfig, train
from vae.train import main as train_main

TINY = ["--hidden-size", "32", "--latent-size", "8", "--num-experts", "2", "--batch-size", "64",
        "--teacher-epochs", "1", "--ramping-epochs", "0", "--student-epochs", "1", "--holdout-every", "3",
        "--preview-every", "0", "--no-progress"]


@pytest.fixture(scope="module")
def trained(tiny_data, tmp_path_factory) -> str:
    out = tmp_path_factory.mktemp("runs") / "mvae.pt"
    train(TrainConfig(data=tiny_data, out=str(out), hidden_size=32, latent_size=8, num_experts=2, batch_size=64,
                      teacher_epochs=1, ramping_epochs=0, student_epochs=1, holdout_every=3, preview_every=0,
                      progress=False))
    return str(out)


def one_error_line(capsys, prefix: str) -> str:
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith(prefix) and "Traceback" not in captured.err
    return lines[0]


# ---- output paths, checked before the work -------------------------------------------------------------

@pytest.fixture
def no_data_loading(monkeypatch):
    """Fail the test if vae.train gets as far as loading the data."""
    import vae.train as vt

    def refuse(cfg):
        raise AssertionError("the data was loaded before --out was checked")

    monkeypatch.setattr(vt, "load_data", refuse)


@pytest.mark.parametrize("where", ["folder", "under_a_file"])
def test_train_checks_out_before_loading_the_data(tiny_data, tmp_path, capsys, no_data_loading, where):
    (tmp_path / "notes.txt").write_text("a file")
    out = {"folder": tmp_path, "under_a_file": tmp_path / "notes.txt" / "m.pt"}[where]
    assert train_main(["--data", tiny_data, "--out", str(out), *TINY]) == 2
    line = one_error_line(capsys, "vae.train: error: --out")
    assert str(out) in line
    assert ("is a folder; give a file path" in line) if where == "folder" else ("notes.txt is a file" in line)


def test_train_out_must_be_a_pt_file(tiny_data, tmp_path, capsys, no_data_loading):
    assert train_main(["--data", tiny_data, "--out", str(tmp_path / "m.ckpt"), *TINY]) == 2
    assert "must end in .pt" in one_error_line(capsys, "vae.train: error: --out")


@pytest.mark.parametrize("where", ["folder", "under_a_file"])
def test_ship_checks_out(trained, tmp_path, capsys, where):
    (tmp_path / "notes.txt").write_text("a file")
    out = {"folder": tmp_path, "under_a_file": tmp_path / "notes.txt" / "slim.pt"}[where]
    assert ship_main([trained, "--out", str(out)]) == 2
    line = one_error_line(capsys, "vae.ship: error: --out")
    assert ("is a folder" in line) if where == "folder" else ("is a file" in line)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


# ---- resume -------------------------------------------------------------------------------------------

def test_resume_from_a_shipped_checkpoint_points_to_init_from(tiny_data, trained, tmp_path, capsys):
    slim = tmp_path / "slim.pt"
    assert ship_main([trained, "--out", str(slim)]) == 0
    capsys.readouterr()
    out = tmp_path / "more.pt"
    assert train_main(["--data", tiny_data, "--out", str(out), "--resume", str(slim), *TINY]) == 2
    line = one_error_line(capsys, f"vae.train: error: --resume {slim}: a shipped model")
    assert f"--init-from {slim}" in line
    assert not out.exists()


def test_resume_and_init_from_exclude_each_other(tiny_data, trained, tmp_path, capsys):
    argv = ["--data", tiny_data, "--out", str(tmp_path / "m.pt"), "--resume", trained, "--init-from", trained]
    assert train_main(argv + TINY) == 2
    assert "--resume and --init-from exclude each other" in one_error_line(capsys, "vae.train: error:")


# ---- files of the wrong kind --------------------------------------------------------------------------

def test_random_bytes_are_not_a_pytorch_checkpoint(tiny_data, tmp_path, capsys):
    noise = tmp_path / "noise.pt"
    noise.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    with pytest.raises(ValueError, match="not a PyTorch checkpoint file") as info:
        load_manifold(noise)
    assert "pickled" not in str(info.value)
    assert evaluate_main([str(noise), "--data", tiny_data]) == 2
    line = one_error_line(capsys, f"vae.evaluate: error: {noise}: not a PyTorch checkpoint file")
    assert "python -m vae.train" in line


def test_a_policy_file_is_named_as_one(tiny_data, tmp_path, capsys, small_vq_manifold):
    manifold = small_vq_manifold()
    config = make_config(obs_size=20, latent_size=8, discrete=True, num_actions=16, task="target",
                         hidden_sizes=(8,), critic_hidden_sizes=(8,))
    policy = tmp_path / "policy.pt"
    save_policy(policy, PolicyModule(config), manifold=manifold)
    with pytest.raises(ValueError, match="a policy file .*not a Motion VAE checkpoint; pass the VAE checkpoint"):
        load_manifold(policy)
    assert evaluate_main([str(policy), "--data", tiny_data]) == 2
    line = one_error_line(capsys, f"vae.evaluate: error: {policy}: a policy file")
    assert "bare state_dict" not in line


def test_a_bvh_as_data_says_to_prepare_it(tmp_path, capsys):
    bvh = tmp_path / "walk.bvh"
    bvh.write_text("HIERARCHY\nROOT Hips\n{\n  OFFSET 0 0 0\n  CHANNELS 3 Xposition Yposition Zposition\n"
                   "  End Site\n  {\n    OFFSET 0 1 0\n  }\n}\nMOTION\nFrames: 1\nFrame Time: 0.0333\n0 0 0\n")
    assert train_main(["--data", str(bvh), "--out", str(tmp_path / "m.pt"), *TINY]) == 2
    line = one_error_line(capsys, f"vae.train: error: {bvh}: a BVH motion file")
    assert f"python -m mocap.prepare {bvh} --out data.npz" in line and "pickled" not in line


def test_a_folder_or_other_file_as_data(tmp_path, capsys):
    notes = tmp_path / "notes.npz"
    notes.write_text("not an archive")
    for data, said in ((tmp_path, "is a folder, not a prepared dataset"), (notes, "not a zip archive")):
        assert train_main(["--data", str(data), "--out", str(tmp_path / "m.pt"), *TINY]) == 2
        line = one_error_line(capsys, f"vae.train: error: {data}")
        assert said in line and "python -m mocap.prepare" in line and "pickled" not in line
    assert not os.path.exists(tmp_path / "m.pt")


def test_init_from_needs_data_of_the_same_frame_size(tiny_data, tmp_path, capsys):
    from mocap.skeleton import Skeleton
    from vae import VAEConfig, build_model, save_checkpoint

    joints = 4
    skeleton = Skeleton(["Hips"] + [f"J{i}" for i in range(1, joints)], list(range(-1, joints - 1)),
                        np.full((joints, 3), 0.1))
    other = tmp_path / "other.pt"
    save_checkpoint(other, build_model(VAEConfig(frame_size=3 + 12 * joints, hidden_size=32, latent_size=8,
                                                 num_experts=2)),
                    skeleton=skeleton, fps=30.0, dataset_fingerprint="x")
    assert train_main(["--data", tiny_data, "--out", str(tmp_path / "m.pt"), "--init-from", str(other), *TINY]) == 2
    line = one_error_line(capsys, f"vae.train: error: --init-from {other}")
    assert "51 features" in line and "183" in line
    assert not (tmp_path / "m.pt").exists()


def test_init_from_names_the_model_flags_to_use(tiny_data, trained, tmp_path, capsys):
    argv = ["--data", tiny_data, "--out", str(tmp_path / "m.pt"), "--init-from", trained, *TINY, "--hidden-size", "64"]
    assert train_main(argv) == 2
    line = one_error_line(capsys, f"vae.train: error: --init-from {trained}: the checkpoint's model differs")
    assert "--hidden-size 32" in line
    assert torch.load(trained, weights_only=True)["config"]["hidden_size"] == 32
