"""The foot-sliding reward term (envs.foot_slide): centimetres the toes in contact slide per frame, and how the
environments scale rewards by it."""

from __future__ import annotations

import math

import pytest
import torch

from characters.bundle import load_character
from envs.foot_slide import CONTACT_HEIGHT_M, HOVER_HEIGHT_M, contact_slide_cm, hover_cm, world_toes
from envs.vec_env import MotionVecEnv
from mocap.pose_layout import PoseLayout


def test_slide_counts_toes_on_the_floor_and_fades_out_by_five_centimetres():
    floor = torch.zeros(2)
    half = CONTACT_HEIGHT_M / 2
    heights = torch.tensor([[0.0, 0.0], [half, half], [0.06, 0.06], [0.0, 0.1]])
    moved_m = torch.tensor([[0.01, 0.01], [0.01, 0.01], [0.01, 0.01], [0.01, 0.1]])  # along x
    before = torch.zeros(4, 2, 3)
    before[..., 1] = heights
    after = before.clone()
    after[..., 0] += moved_m
    torch.testing.assert_close(contact_slide_cm(before, after, floor), torch.tensor([1.0, 0.5, 0.0, 0.5]))


def test_floating_with_both_feet_up_costs_what_the_lower_toe_floats_above_the_hover_height():
    floor = torch.full((2,), 0.04)
    toes = torch.zeros(3, 2, 3)
    toes[..., 1] = torch.tensor([[0.04, 0.30], [0.04 + HOVER_HEIGHT_M, 0.2], [0.12 + HOVER_HEIGHT_M, 0.2]])
    torch.testing.assert_close(hover_cm(toes, floor), torch.tensor([0.0, 0.0, 8.0]))


def test_no_toe_height_lets_both_feet_slide_for_free():
    """A policy held its toes just under 5 cm while both terms started there, and glided: every height from the
    floor to 10 cm must cost something for two toes sliding 3 cm a frame (0.9 m/s)."""
    floor = torch.zeros(2)
    heights = torch.linspace(0.0, 2 * CONTACT_HEIGHT_M, 101)  # (N,) m
    before = torch.zeros(len(heights), 2, 3)
    before[..., 1] = heights[:, None]
    after = before.clone()
    after[..., 0] += 0.03
    penalty_cm = contact_slide_cm(before, after, floor) + hover_cm(after, floor)  # (N,)
    assert float(penalty_cm.min()) > 1.0


def test_toes_are_placed_in_the_world_by_the_root():
    layout = PoseLayout(3)
    frame = torch.zeros(1, layout.frame_size)
    layout.positions(frame)[:, 1] = torch.tensor([0.1, 0.0, 0.2])  # 10 cm left of the root, 20 cm ahead
    yaw = torch.tensor([math.pi / 2])
    rotation = torch.stack((torch.cos(yaw), torch.sin(yaw), -torch.sin(yaw), torch.cos(yaw)), dim=1).view(1, 2, 2)
    toes = world_toes(frame, layout, torch.tensor([1]), torch.tensor([[1.0, 2.0]]), rotation)
    # Facing +x (yaw 90 deg): ahead is +x, the character's left is -z.
    torch.testing.assert_close(toes, torch.tensor([[[1.2, 0.0, 1.9]]]), atol=1e-6, rtol=0)


def test_the_env_scales_positive_rewards_by_the_slide():
    vae = load_character("deepmimic").vae
    plain = MotionVecEnv(16, "joystick", vae, array_backend="torch")
    sliding = MotionVecEnv(16, "joystick", vae, array_backend="torch", foot_slide_weight=0.5)
    plain.reset(seed=3)
    sliding.reset(seed=3)
    weight, toes, floor = sliding._foot_slide
    generator = torch.Generator().manual_seed(0)
    core = sliding.core
    for _ in range(20):
        action = (torch.randn(16, plain.core.latent_size, generator=generator) * 0.5).clamp(-1, 1)
        before = world_toes(core.frame, core.layout, toes, core.root_xz, core.rotation)
        reward = plain.step(action)[1]
        penalised = sliding.step(action)[1]
        after = world_toes(core.frame, core.layout, toes, core.root_xz, core.rotation)
        slide = contact_slide_cm(before, after, floor) + hover_cm(after, floor)
        torch.testing.assert_close(penalised, torch.where(reward > 0, reward * torch.exp(-0.5 * slide), reward))
    assert weight == 0.5 and math.isfinite(float(floor.sum()))
    with pytest.raises(ValueError, match="foot_slide_weight must be >= 0"):
        MotionVecEnv(2, "joystick", vae, foot_slide_weight=-1.0)


def test_a_skeleton_without_toes_is_refused_by_name():
    from envs.toy_manifold import ToyManifold

    with pytest.raises(ValueError, match="foot_slide_weight: no left toe, foot or ankle joint"):
        MotionVecEnv(2, "target", ToyManifold(), foot_slide_weight=0.3)
