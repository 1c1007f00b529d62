"""The foot-sliding reward term (envs.foot_slide): centimetres the toes in contact slide per frame, and how the
environments scale rewards by it."""

from __future__ import annotations

import math

import pytest
import torch

from characters.bundle import load_character
from envs.foot_slide import CONTACT_HEIGHT_M, contact_slide_cm
from envs.vec_env import MotionVecEnv
from mocap.pose_layout import PoseLayout


def frames_with_toes(heights, speeds, num_joints: int = 3) -> torch.Tensor:
    """(B, D) raw frames whose joints 1 and 2 (the "toes") stand at ``heights`` (B, 2) m and slide along x at
    ``speeds`` (B, 2) m/s."""
    layout = PoseLayout(num_joints)
    frames = torch.zeros(len(heights), layout.frame_size)
    pos = layout.positions(frames)  # (B, J, 3) view into frames
    vel = layout.velocities(frames)
    pos[:, 1:, 1] = torch.as_tensor(heights, dtype=torch.float32)
    vel[:, 1:, 0] = torch.as_tensor(speeds, dtype=torch.float32)
    return frames


def test_slide_counts_toes_on_the_floor_and_fades_out_by_five_centimetres():
    layout = PoseLayout(3)
    toes, floor = torch.tensor([1, 2]), torch.zeros(2)
    half = CONTACT_HEIGHT_M / 2
    frames = frames_with_toes([[0.0, 0.0], [half, half], [0.06, 0.06], [0.0, 0.1]],
                              [[0.3, 0.3], [0.3, 0.3], [0.3, 0.3], [0.3, 3.0]])
    slide = contact_slide_cm(frames, layout, toes, floor, fps=30.0)  # 0.3 m/s at 30 fps = 1 cm per frame
    torch.testing.assert_close(slide, torch.tensor([1.0, 0.5, 0.0, 0.5]))


def test_the_env_scales_positive_rewards_by_the_slide():
    vae = load_character("deepmimic").vae
    plain = MotionVecEnv(16, "joystick", vae, array_backend="torch")
    sliding = MotionVecEnv(16, "joystick", vae, array_backend="torch", foot_slide_weight=0.5)
    plain.reset(seed=3)
    sliding.reset(seed=3)
    weight, toes, floor = sliding._foot_slide
    generator = torch.Generator().manual_seed(0)
    for _ in range(20):
        action = (torch.randn(16, plain.core.latent_size, generator=generator) * 0.5).clamp(-1, 1)
        reward = plain.step(action)[1]
        penalised = sliding.step(action)[1]
        slide = contact_slide_cm(sliding.core.frame, sliding.core.layout, toes, floor, sliding.core.fps)
        torch.testing.assert_close(penalised, torch.where(reward > 0, reward * torch.exp(-0.5 * slide), reward))
    assert weight == 0.5 and math.isfinite(float(floor.sum()))
    with pytest.raises(ValueError, match="foot_slide_weight must be >= 0"):
        MotionVecEnv(2, "joystick", vae, foot_slide_weight=-1.0)


def test_a_skeleton_without_toes_is_refused_by_name():
    from envs.toy_manifold import ToyManifold

    with pytest.raises(ValueError, match="foot_slide_weight: no left toe, foot or ankle joint"):
        MotionVecEnv(2, "target", ToyManifold(), foot_slide_weight=0.3)
