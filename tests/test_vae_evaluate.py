"""vae.metrics on hand-made motions, and vae.evaluate's JSON for trained mixture, vae and vq checkpoints."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from mocap.dataset import MotionDataset
from mocap.features import frames_to_world, integrate_root
from mocap.pose_layout import PoseLayout
from mocap.skeleton import Skeleton
from vae.evaluate import main
from vae.metrics import (
    active_units,
    bone_length_errors,
    code_usage,
    divergence_frame,
    foot_contact_displacements,
    gaussian_kl_per_dim,
    nonfinite_frames,
    pose_diversity,
    root_height_range,
    variance_from_moments,
    world_positions,
)
from vae.metrics import integrate_root as integrate_root_torch
from vae.train import TrainConfig, train

# ---- metrics -------------------------------------------------------------------------------------


def test_root_integration_matches_the_mocap_features():
    rng = np.random.default_rng(0)
    frames = rng.normal(size=(50, PoseLayout(2).frame_size)) * 0.1  # (T, D), J = 2
    xz, yaw = integrate_root(frames)
    xz_t, yaw_t = (a.numpy() for a in integrate_root_torch(torch.from_numpy(frames)))
    assert np.allclose(xz, xz_t) and np.allclose(yaw, yaw_t)
    _, world = frames_to_world(frames)
    batched = world_positions(torch.from_numpy(np.stack([frames, frames])))  # (2, T, J, 3)
    assert np.allclose(batched[1].numpy(), world, atol=1e-12)


def test_walking_forward_in_a_circle_integrates_to_a_circle():
    layout = PoseLayout(1)
    frames = np.zeros((101, layout.frame_size))
    frames[:, 1] = 2 * math.pi / 100  # 1 step forward per frame, one turn in 100 frames
    frames[:, layout.root_dyaw] = 2 * math.pi / 100
    xz, yaw = (a.numpy() for a in integrate_root_torch(torch.from_numpy(frames)))
    assert abs(yaw[-1] - 2 * math.pi) < 1e-9
    assert np.linalg.norm(xz[-1]) < 1e-9  # back at the start
    assert abs(np.linalg.norm(xz, axis=1).max() - 2.0) < 0.01  # diameter of a circle of circumference 2 pi


def test_bone_length_error_of_a_stretched_chain():
    parents = [-1, 0, 1]
    lengths = [0.0, 1.0, 0.5]
    pos = torch.tensor([[[0.0, 0, 0], [0, 1.0, 0], [0, 1.5, 0]], [[0.0, 0, 0], [0, 1.2, 0], [0, 1.5, 0]]])
    err = bone_length_errors(pos, parents, lengths)  # (2, 2)
    assert torch.allclose(err, torch.tensor([[0.0, 0.0], [0.2, 0.2]]))
    assert root_height_range(pos) == (0.0, 0.0)


def test_foot_skating_counts_only_grounded_steps():
    t = 6
    world = torch.zeros(t, 2, 3, dtype=torch.float64)  # joint 1 is the foot
    world[:, 1, 0] = torch.arange(t) * 0.01  # slides 1 cm per frame
    world[:, 1, 1] = torch.tensor([0.0, 0.02, 0.04, 0.2, 0.3, 0.0])  # lifted at frames 3 and 4
    disp, steps = foot_contact_displacements(world, [1], [0.0])
    assert steps == t - 1
    assert torch.allclose(disp, torch.tensor([0.01, 0.01], dtype=torch.float64))  # steps 0->1 and 1->2


def test_pose_diversity_of_two_poses_and_of_one():
    a = torch.zeros(4, 3)
    b = torch.zeros(4, 3)
    b[:, 0] = 0.3
    assert pose_diversity(torch.stack([a, b])) == pytest.approx(0.3)
    assert pose_diversity(torch.stack([a, a, a])) == 0.0


def test_latent_statistics():
    mu = torch.tensor([[1.0, 0.0], [-1.0, 0.0]])
    logvar = torch.zeros(2, 2)
    kl = gaussian_kl_per_dim(mu, logvar)
    assert torch.allclose(kl, torch.tensor([0.5, 0.0]))
    var = variance_from_moments(mu.sum(0), mu.pow(2).sum(0), 2)
    assert torch.allclose(var, torch.tensor([1.0, 0.0]))
    assert active_units(var) == 1
    assert code_usage(torch.tensor([0, 1, 2, 3]), 8) == (pytest.approx(4.0), 4)
    assert code_usage(torch.tensor([5, 5]), 8) == (pytest.approx(1.0), 1)
    frames = torch.zeros(3, 4)
    frames[1, 2] = float("nan")
    assert nonfinite_frames(frames).tolist() == [False, True, False]


def test_divergence_is_the_first_blown_up_frame():
    walk = torch.zeros(10, 3)
    assert divergence_frame(walk) == 10
    walk[7, 1] = 150.0  # 150 standard deviations: blown up
    walk[8:] = float("inf")
    assert divergence_frame(walk) == 7
    walk[3, 0] = float("nan")
    assert divergence_frame(walk) == 3


# ---- evaluate ------------------------------------------------------------------------------------


@pytest.mark.parametrize("model", ["mixture", "vae", "vq"])
def test_train_then_evaluate_prints_the_metrics_json(tiny_data, tmp_path, capsys, model):
    out = tmp_path / f"{model}.pt"
    train(TrainConfig(data=tiny_data, out=str(out), model=model, hidden_size=32, latent_size=8, num_experts=2,
                      num_codes=16, batch_size=64, teacher_epochs=1, ramping_epochs=0, student_epochs=1,
                      preview_every=0, progress=False, holdout_every=3))
    capsys.readouterr()
    assert main([str(out), "--data", tiny_data, "--json", "--frames", "400", "--walks", "4"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1
    result = json.loads(lines[-1])
    assert result["eval_clips"] == ["0walk_forward", "0walk_forward:mirror"]
    assert result["eval_clips_seen_in_training"] is False
    assert result["rollout_frames"] == 400 and result["walks"] == 4
    for key in ("recon_error_teacher", "recon_error_rollout8", "bone_length_error_cm", "foot_skate_cm_per_frame",
                "data_foot_skate_cm_per_frame", "pose_diversity", "data_pose_diversity", "latent_output_std"):
        assert isinstance(result[key], float) and math.isfinite(result[key]) and result[key] >= 0, key
    assert result["nonfinite_frames"] == 0
    assert 0 <= result["diverged_walks"] <= 4 and result["diverged_frames"] <= 400
    lo, hi = result["data_root_height_range_m"]
    assert 0.5 < lo <= hi < 1.5  # the DeepMimic humanoid's pelvis
    assert len(result["root_height_range_m"]) == 2
    if model == "vq":
        assert 1 <= result["codes_used"] <= 16 and 1.0 <= result["perplexity"] <= 16.0
    else:
        assert len(result["kl_per_dim"]) == 8 and 0 <= result["active_latent_dims"] <= 8


def test_evaluate_names_what_is_wrong(tiny_data, tmp_path, capsys):
    assert main([str(tmp_path / "none.pt"), "--data", tiny_data, "--json"]) == 2
    assert "no such checkpoint" in capsys.readouterr().err
    out = tmp_path / "m.pt"
    train(TrainConfig(data=tiny_data, out=str(out), model="vae", hidden_size=16, latent_size=4, batch_size=64,
                      teacher_epochs=1, ramping_epochs=0, student_epochs=0, preview_every=0, progress=False,
                      holdout_every=0))
    other = tmp_path / "other.npz"
    skeleton = Skeleton(["Hips", "LeftFoot", "RightFoot"], [-1, 0, 0], np.eye(3))
    MotionDataset(np.zeros((20, PoseLayout(3).frame_size), np.float32), np.array([19]), 30.0, skeleton, ["x"],
                  np.array([1, 2]), np.zeros((20, 2), bool), np.zeros(2, np.float32)).save(other)
    assert main([str(out), "--data", str(other), "--json"]) == 2
    assert "D=39 but the checkpoint's model expects D=183" in capsys.readouterr().err
    assert main([str(out), "--data", tiny_data, "--frames", "2", "--walks", "4"]) == 2
    assert "--frames 2 must be >= --walks 4" in capsys.readouterr().err
    capsys.readouterr()
    assert main([str(out), "--data", tiny_data, "--json", "--frames", "40", "--walks", "2"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["eval_clips_seen_in_training"] is True and result["same_data_as_training"] is True
