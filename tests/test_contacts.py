"""Foot contact channels (vae/contacts.py): fitted to the data's labels with the VAE frozen, saved in the checkpoint
beside (not inside) its state_dict, followed by the foot locker in the app and in policies.evaluate."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from common.fingerprint import weights_fingerprint
from mocap.dataset import MotionDataset
from mocap.foot_locking import FootLocker, channel_contacts, channel_sides, leg_chains
from mocap.prepare import prepare
from vae.checkpoint import load_manifold, save_checkpoint
from vae.contacts import fit_contacts, main

REPO = Path(__file__).resolve().parents[1]
DEEPMIMIC = REPO / "assets" / "characters" / "deepmimic"
BANDAI_NAMCO = REPO / "assets" / "characters" / "bandai-namco"


@pytest.fixture(scope="module")
def walk_data(tmp_path_factory) -> Path:
    """The DeepMimic walks and turns of the pybullet wheel, prepared as the shipped DeepMimic character's data."""
    out = tmp_path_factory.mktemp("contacts") / "walk.npz"
    prepare(["pybullet"], str(out), mirror=True, clips="walk|turn", graph_seconds=120, progress=False)
    return out


def bare_manifold():
    """The shipped DeepMimic VAE without its contact channels (trained on frames made with the facing from every
    left/right pair, before the hips and shoulders: on today's frames of the same clips its channels reach 0.84-0.95
    instead of 0.95)."""
    manifold = load_manifold(DEEPMIMIC / "vae.pt")
    manifold.set_contacts(None)
    return manifold


def test_contact_channels_learn_the_datas_labels_and_leave_the_motion_alone(walk_data):
    manifold = bare_manifold()
    weights = weights_fingerprint(manifold)
    cond = manifold.start_frames[:8]
    z = torch.randn(8, manifold.latent_size, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        before = manifold.step(z, cond)
    dataset = MotionDataset.load(walk_data)
    head = fit_contacts(manifold, dataset, epochs=4, log=lambda _: None)
    assert head.joints == ["right_ankle", "left_ankle"]
    # Held-out clips: far better than always guessing the commoner label (contact in about half the frames).
    majority = np.maximum(head.metrics["label_rate"], 1 - np.asarray(head.metrics["label_rate"]))
    assert min(head.metrics["accuracy"]) > 0.8 and (np.asarray(head.metrics["accuracy"]) > majority + 0.2).all()
    again = fit_contacts(manifold, dataset, epochs=4, log=lambda _: None)
    pairs = zip(head.state_dict().values(), again.state_dict().values(), strict=True)
    assert all(torch.equal(a, b) for a, b in pairs)  # reproducible from the seed
    manifold.set_contacts(head)
    assert weights_fingerprint(manifold) == weights  # policies trained on the model still fit it
    with torch.no_grad():
        assert torch.equal(manifold.step(z, cond), before)
    p = manifold.contact_probabilities(z, cond)
    assert p.shape == (8, 2) and ((p >= 0) & (p <= 1)).all()


def test_contact_channels_round_trip_through_a_weights_only_checkpoint(tmp_path, walk_data):
    manifold = bare_manifold()
    manifold.set_contacts(fit_contacts(manifold, MotionDataset.load(walk_data), epochs=1, log=lambda _: None))
    path = tmp_path / "vae.pt"
    save_checkpoint(path, manifold, skeleton=manifold.skeleton, fps=manifold.fps,
                    dataset_fingerprint=manifold.dataset_fingerprint, extra=manifold.extra)
    raw = torch.load(path, weights_only=True)
    assert not any(k.startswith("contacts") for k in raw["state_dict"])  # beside the motion's weights, not in them
    loaded = load_manifold(path)
    cond, z = manifold.start_frames[:4], torch.zeros(4, manifold.latent_size)
    assert torch.equal(loaded.contact_probabilities(z, cond), manifold.contact_probabilities(z, cond))
    assert loaded.contacts.metrics == manifold.contacts.metrics
    # A checkpoint written before contact channels existed loads without them.
    assert bare_manifold().contacts is None and bare_manifold().contact_probabilities(z, cond) is None


def test_the_command_adds_channels_to_a_checkpoint_and_refuses_other_data(tmp_path, walk_data, capsys):
    vae = tmp_path / "vae.pt"
    manifold = bare_manifold()
    save_checkpoint(vae, manifold, skeleton=manifold.skeleton, fps=manifold.fps,
                    dataset_fingerprint=MotionDataset.load(walk_data).fingerprint(), extra=manifold.extra)
    assert main([str(vae), "--data", str(walk_data), "--epochs", "1", "--out", str(tmp_path / "with.pt")]) == 0
    assert load_manifold(tmp_path / "with.pt").contacts.joints == ["right_ankle", "left_ankle"]
    assert load_manifold(vae).contacts is None  # --out leaves the input as it was

    other = tmp_path / "other.npz"
    prepare(["pybullet"], str(other), clips="walk", progress=False)
    assert main([str(vae), "--data", str(other)]) == 2
    err = capsys.readouterr().err
    assert "--data" in err and "not the data" in err and "Traceback" not in err
    assert main([str(tmp_path / "missing.pt"), "--data", str(walk_data)]) == 2
    assert "no such checkpoint" in capsys.readouterr().err


def test_channels_map_to_the_legs_by_joint_name():
    manifold = bare_manifold()
    chains = leg_chains(manifold.skeleton)
    sides = channel_sides(chains, manifold.skeleton, ["right_ankle", "left_ankle"])
    left = manifold.skeleton.joint_names[chains.contact_joints[0][0]]
    assert sides.tolist() == ([1, 0] if left == "left_ankle" else [0, 1])
    assert channel_sides(chains, manifold.skeleton, ["right_ankle"]) is None  # one leg without a channel
    p = np.array([[0.9, 0.2], [0.4, 0.6]])
    assert channel_contacts(p, sides)[:, sides].tolist() == [[True, False], [False, True]]


def test_a_channel_in_contact_holds_a_foot_the_poses_call_sliding():
    """A stance foot the model drags at 1.5 m/s (faster than any contact read from the poses) is held where it landed
    while the channels say contact, until it trails the model's toe by the leash."""
    from mocap.foot_locking import LEASH_M
    from tests.test_foot_locking import FPS, drawn_toes, floor_of, walk

    skeleton, _, world_pos = walk(np.full(20, 1.5))
    chains = leg_chains(skeleton)
    floor = floor_of(world_pos[:, 0], chains)
    model_toe = world_pos[:, 0, chains.toe[0]][:, ::2]  # (T, 2)
    from_poses, _ = drawn_toes(FootLocker(chains, 1, FPS, floor), world_pos)
    from_channels, _ = drawn_toes(FootLocker(chains, 1, FPS, floor), world_pos,
                                  predicted=np.ones((20, 1, 2), dtype=bool))
    np.testing.assert_allclose(from_poses, model_toe, atol=1e-9)  # never locked: it slides with the model
    held = round(LEASH_M * FPS / 1.5)  # steps until the model's toe is a leash ahead
    np.testing.assert_allclose(from_channels[1:held + 1], from_channels[[1]].repeat(held, axis=0), atol=1e-9)
    assert np.linalg.norm(model_toe[-1] - from_channels[-1]) == pytest.approx(LEASH_M, abs=1e-6)


def test_the_app_locks_feet_where_the_model_says_contact():
    """Each foot the channels call in contact is in contact for the app's locker (which adds the feet its poses
    plant)."""
    from app.simulation import AppConfig, Simulation

    sim = Simulation(AppConfig(vae=DEEPMIMIC / "vae.pt", task="target", characters=3, policies_dir=None, seed=0),
                     verbose=False)
    try:
        assert sim.contact_channels
        for _ in range(5):
            sim.step()
        predicted = channel_contacts(sim.env.core.contact_probabilities().numpy(), sim._contact_sides)
        assert predicted.any() and not (predicted & ~sim.foot_locker.contacts).any()  # each one locks
    finally:
        sim.close()


def test_the_default_characters_channels_keep_its_feet_planted_better_than_its_poses():
    """policies.evaluate's foot_sliding_ik follows the contact channels, as the app does: on the shipped Bandai-Namco
    joystick policy they leave well under the sliding that contacts read from the poses leave."""
    from policies.checkpoint import load_policy, policy_env_options, trained_vae
    from policies.controllers import PolicyController
    from policies.evaluate import evaluate, resolve_vae

    policy = load_policy(BANDAI_NAMCO / "policies" / "joystick.pt", device="cpu")
    manifold = resolve_vae(str(trained_vae(policy)), "cpu")
    assert manifold.contacts is not None

    def sliding() -> float:
        result = evaluate(lambda env: PolicyController(policy), task="joystick", vae=manifold, episodes=48, seed=0,
                          action_scale=policy.action_scale, env_options=policy_env_options(policy))
        return result["foot_sliding_ik"]

    with_channels = sliding()
    manifold.set_contacts(None)
    from_poses = sliding()
    assert with_channels < 0.75 * from_poses  # 48 episodes: 0.114 against 0.165 (100: 0.101 against 0.225)
