"""vae.train and vae.data: windows inside clips, checkpoints, resume, posterior-collapse guard, bad input.

Runs on a real but tiny dataset: the DeepMimic walk/run clips shipped with pybullet (mirrored), a tiny model
(hidden 32) and 1-4 short epochs.
"""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch

from common.dataclass_cli import field_docs
from mocap.bvh import read_bvh
from mocap.dataset import MotionDataset
from vae import load_manifold
from vae.data import (
    WindowDataset,
    WindowSampler,
    holdout_split,
    valid_window_starts,
    window_length,
)
from vae.train import TrainConfig, main, train

TINY = dict(hidden_size=32, latent_size=8, num_experts=2, num_codes=16, batch_size=64, teacher_epochs=1,
            ramping_epochs=1, student_epochs=1, preview_every=0, progress=False, holdout_every=3)


def tiny_config(data: str, out, **overrides) -> TrainConfig:
    return TrainConfig(data=data, out=str(out), **{**TINY, **overrides})


# ---- vae.data ------------------------------------------------------------------------------------

def test_windows_never_cross_clip_boundaries():
    ends = np.array([9, 12, 30])  # clips of 10, 3 and 18 frames
    w = window_length(1, 8, 1)
    starts = valid_window_starts(ends, w)
    assert w == 9
    assert starts.tolist() == [0, 1] + list(range(13, 23))
    clip_of = np.searchsorted(ends, np.arange(31))
    assert all(clip_of[s] == clip_of[s + w - 1] for s in starts)
    assert valid_window_starts(ends, w, clips=np.array([1])).size == 0


def test_holdout_keeps_a_motion_and_its_mirror_together():
    names = ["a", "a:mirror", "b", "b:mirror", "c", "c:mirror", "d"]
    train_clips, held = holdout_split(names, 2)
    assert [names[i] for i in held] == ["b", "b:mirror", "d"]
    assert sorted(train_clips.tolist() + held.tolist()) == list(range(7))
    assert holdout_split(names, 0)[1].size == 0
    assert holdout_split(names, 10)[1].size == 0  # fewer motions than k: nothing held out


def test_sampler_splits_each_epoch_across_ranks_and_reshuffles():
    ranks = [WindowSampler(103, 10, seed=3, rank=r, world_size=2) for r in range(2)]
    assert len(ranks[0]) == len(ranks[1]) == 5
    for s in ranks:
        s.set_epoch(1)
    seen = [torch.cat(list(s)) for s in ranks]
    assert not set(seen[0].tolist()) & set(seen[1].tolist())
    ranks[0].set_epoch(2)
    assert not torch.equal(torch.cat(list(ranks[0])), seen[0])


def test_ranks_share_the_global_batches_of_one_process():
    # 109 windows, global batch 20: one process sees 5 batches; two ranks of 10 must see the same 5, split.
    one = WindowSampler(109, 20, seed=3)
    ranks = [WindowSampler(109, 10, seed=3, rank=r, world_size=2) for r in range(2)]
    for s in (one, *ranks):
        s.set_epoch(4)
    assert len(one) == len(ranks[0]) == len(ranks[1]) == 5
    for whole, *shares in zip(one, *ranks, strict=True):
        assert torch.equal(torch.cat(shares), whole)


def test_window_dataset_gathers_consecutive_frames():
    frames = np.arange(40, dtype=np.float32).reshape(20, 2)
    ds = WindowDataset(frames, np.array([0, 5, 11]), 4)
    batch = ds.windows(torch.tensor([2, 0]))
    assert batch.shape == (2, 4, 2)
    assert batch[0, :, 0].tolist() == [22.0, 24.0, 26.0, 28.0]
    assert torch.equal(ds[1], torch.from_numpy(frames[5:9]))


# ---- training ------------------------------------------------------------------------------------

def test_train_writes_checkpoint_logs_and_preview(tiny_data, tmp_path):
    out = tmp_path / "mvae.pt"
    train(tiny_config(tiny_data, out, preview_every=3, preview_frames=20))
    raw = torch.load(out, weights_only=True)
    extra = raw["extra"]
    assert extra["epoch"] == 3 and not extra["interrupted"]
    assert extra["train_config"]["hidden_size"] == 32
    assert extra["start_frames"].shape[1:] == (1, 183) and 0 < extra["start_frames"].shape[0] <= 512
    assert [h["epoch"] for h in extra["history"]] == [1, 2, 3]
    assert [h["p_student"] for h in extra["history"]] == [0.0, 0.5, 1.0]
    assert extra["holdout"]["clips"] == ["0walk_forward", "0walk_forward:mirror"]
    assert {"optimizer", "rng_state"} <= set(extra)
    assert extra["feature_envelope"].shape == (183,) and 0 < extra["action_scale"] < 10

    model = load_manifold(out)
    assert model.latent_bound == extra["action_scale"]
    z = torch.full((2, model.latent_size), 50.0)  # far beyond the bound: the decoder sees the bound
    cond = model.start_frames[:2]
    with torch.no_grad():
        assert torch.equal(model.step(z, cond), model.step(torch.full_like(z, model.latent_bound), cond))
    data = MotionDataset.load(tiny_data)
    assert torch.allclose(model.data_mean, torch.from_numpy(data.data[: data.end_indices[3] + 1].mean(0)), atol=1e-4)
    assert torch.equal(model.start_frames, extra["start_frames"])
    # Contact channels fitted after the last epoch (vae.contacts): one per labelled foot joint.
    assert model.contacts.joints == [data.skeleton.joint_names[j] for j in data.foot_joints]
    assert len(raw["contacts"]["metrics"]["accuracy"]) == len(data.foot_joints)

    logs = tmp_path / "mvae_logs"
    rows = list(csv.DictReader(open(logs / "metrics.csv")))
    assert [r["epoch"] for r in rows] == ["1", "2", "3"]
    assert float(rows[-1]["recon"]) > 0 and int(rows[-1]["active_units"]) >= 0
    assert list(logs.glob("events.out.tfevents*"))
    preview = read_bvh(logs / "preview_epoch0003.bvh", scale=0.01)  # written in centimetres
    assert preview.num_frames == 21 and sorted(preview.skeleton.joint_names) == sorted(data.skeleton.joint_names)
    assert np.isfinite(preview.local_pos).all()


@pytest.mark.parametrize("model", ["mixture", "vq"])
def test_resume_reaches_the_same_weights(tiny_data, tmp_path, model):
    epochs = dict(teacher_epochs=1, ramping_epochs=2, student_epochs=1, model=model, checkpoint_every=2)
    straight = tmp_path / "straight.pt"
    train(tiny_config(tiny_data, straight, **epochs))
    split = tmp_path / "split.pt"
    train(tiny_config(tiny_data, split, stop_after_epoch=2, **epochs))
    assert torch.load(split, weights_only=True)["extra"]["epoch"] == 2
    train(tiny_config(tiny_data, split, resume=str(split), **epochs))

    a = torch.load(straight, weights_only=True)
    b = torch.load(split, weights_only=True)
    assert b["extra"]["epoch"] == 4 and len(b["extra"]["history"]) == 4
    for name, tensor in a["state_dict"].items():
        assert torch.allclose(tensor.float(), b["state_dict"][name].float(), atol=1e-6), name


def test_huge_beta_collapses_and_warns(tiny_data, tmp_path, caplog):
    cfg = tiny_config(tiny_data, tmp_path / "c.pt", model="vae", kl_beta=50.0, kl_warmup_epochs=0.0, free_bits=0.0,
                      teacher_epochs=12, ramping_epochs=0, student_epochs=0, batch_size=32, learning_rate=3e-3)
    with caplog.at_level("WARNING", logger="vae.train"):
        train(cfg)
    assert "POSTERIOR COLLAPSE" in caplog.text
    last = torch.load(tmp_path / "c.pt", weights_only=True)["extra"]["history"][-1]
    assert last["active_units"] < 4 and last["kl_total"] < 0.1


def test_free_bits_and_warmup_keep_the_latent_in_use(tiny_data, tmp_path):
    """The reference's loss (beta 1, no warm-up, no free bits) collapses here; warm-up + free bits does not."""
    common = dict(model="vae", kl_beta=1.0, teacher_epochs=20, ramping_epochs=0, student_epochs=0, batch_size=32,
                  learning_rate=3e-3)
    train(tiny_config(tiny_data, tmp_path / "plain.pt", kl_warmup_epochs=0.0, free_bits=0.0, **common))
    train(tiny_config(tiny_data, tmp_path / "kept.pt", kl_warmup_epochs=5.0, free_bits=0.25, **common))
    plain = torch.load(tmp_path / "plain.pt", weights_only=True)["extra"]["history"][-1]
    kept = torch.load(tmp_path / "kept.pt", weights_only=True)["extra"]["history"][-1]
    assert plain["active_units"] < 4 and plain["kl_total"] < 0.1  # collapsed: the warning's condition
    assert kept["active_units"] == 8 and kept["kl_total"] > 1.0
    assert kept["recon"] < plain["recon"]  # the latent carries information about the next frame


def test_ctrl_c_saves_a_checkpoint(tiny_data, tmp_path, monkeypatch):
    import vae.train as vt

    calls = {"n": 0}
    real = vt.kl_weight

    def interrupt_in_epoch_two(cfg, progress):
        calls["n"] += 1
        if progress >= 1.5:
            raise KeyboardInterrupt
        return real(cfg, progress)

    monkeypatch.setattr(vt, "kl_weight", interrupt_in_epoch_two)
    out = tmp_path / "i.pt"
    with pytest.raises(KeyboardInterrupt):
        train(tiny_config(tiny_data, out))
    extra = torch.load(out, weights_only=True)["extra"]
    assert extra["interrupted"] and extra["epoch"] == 1


def test_cli_flags_come_from_the_dataclass(tiny_data, tmp_path, capsys):
    docs = field_docs(TrainConfig)
    assert "teacher forcing" in docs["teacher_epochs"] and "Free bits" in docs["free_bits"]
    rc = main(["--data", tiny_data, "--out", str(tmp_path / "m.pt"), "--model", "vae", "--hidden-size", "16",
               "--teacher-epochs", "1", "--ramping-epochs", "0", "--student-epochs", "0", "--batch-size", "32",
               "--no-progress", "--preview-every", "0", "--no-update-every-step"])
    assert rc == 0
    cfg = torch.load(tmp_path / "m.pt", weights_only=True)["extra"]["train_config"]
    assert cfg["update_every_step"] is False and cfg["hidden_size"] == 16 and cfg["batch_size"] == 32


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--data", "{tmp}/missing.npz"], "no such file"),
        (["--data", "{tmp}/garbage.npz"], "not a readable .npz dataset"),
        (["--data", "{data}", "--rollout-steps", "500"], "no training clip has the 501 frames"),
        (["--data", "{data}", "--batch-size", "0"], "--batch-size must be >= 1"),
        (["--data", "{data}", "--learning-rate", "-1"], "--learning-rate must be a positive number"),
        (["--data", "{data}", "--model", "gan"], "--model 'gan'"),
        (["--data", "{data}", "--device", "tpu"], "--device 'tpu'"),
        (["--data", "{data}", "--batch-size", "100000"], "larger than the"),
    ],
)
def test_bad_input_gives_a_clear_error(tiny_data, tmp_path, capsys, flags, message):
    (tmp_path / "garbage.npz").write_bytes(b"not a zip file")
    argv = [f.format(tmp=tmp_path, data=tiny_data) for f in flags] + ["--out", str(tmp_path / "x.pt"), "--no-progress"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("vae.train: error:") and message in err
    assert not (tmp_path / "x.pt").exists() and not (tmp_path / "x_logs").exists()


def test_resume_refuses_another_model(tiny_data, tmp_path, capsys):
    out = tmp_path / "m.pt"
    train(tiny_config(tiny_data, out, teacher_epochs=1, ramping_epochs=0, student_epochs=1, stop_after_epoch=1))
    assert main(["--data", tiny_data, "--out", str(out), "--resume", str(out), "--hidden-size", "64",
                 "--batch-size", "64", "--no-progress"]) == 2
    assert "the checkpoint's model differs" in capsys.readouterr().err


def test_init_from_starts_a_new_run_from_a_shipped_models_weights(tiny_data, tmp_path):
    from vae.ship import main as ship_main

    source = tmp_path / "source.pt"
    train(tiny_config(tiny_data, source, teacher_epochs=1, ramping_epochs=0, student_epochs=1))
    slim = tmp_path / "slim.pt"
    assert ship_main([str(source), "--out", str(slim)]) == 0
    # Other held-out clips give other training statistics: the checkpoint's normalisation must win.
    out = tmp_path / "tuned.pt"
    train(tiny_config(tiny_data, out, init_from=str(slim), holdout_every=0, teacher_epochs=1, ramping_epochs=0,
                      student_epochs=0, learning_rate=1e-9))
    shipped = torch.load(slim, weights_only=True)
    tuned = torch.load(out, weights_only=True)
    assert "optimizer" not in shipped["extra"]
    extra = tuned["extra"]
    assert extra["epoch"] == 1 and [h["epoch"] for h in extra["history"]] == [1]  # a new run, from epoch 0
    assert extra["train_config"]["init_from"] == str(slim)
    assert extra["optimizer"]["state"][0]["step"] == 16  # fresh Adam: one epoch of 2 batches x 8 steps
    assert extra["history"][0]["lr"] < 1e-9  # a fresh schedule, decayed over this run only
    for name, weight in shipped["state_dict"].items():
        assert torch.allclose(tuned["state_dict"][name], weight, atol=1e-6), name  # lr 1e-9: the weights stayed
    all_frames_mean = torch.from_numpy(MotionDataset.load(tiny_data).data.mean(0))
    assert not torch.allclose(all_frames_mean, shipped["state_dict"]["data_mean"], atol=1e-3)
    assert torch.equal(tuned["state_dict"]["data_mean"], shipped["state_dict"]["data_mean"])
