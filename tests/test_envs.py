"""The Gymnasium environments: API conformance, batching, autoreset, seeding, the character core, bad input.

Real parts: untrained Motion VAEs from ``vae.build_model`` started from frames of a synthetic walking
clip (mocap.features), Gymnasium's own ``check_env``, ``make`` and ``make_vec``.
"""

from __future__ import annotations

import subprocess
import sys

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env
from gymnasium.vector import AutoresetMode

import envs
import vae
from envs import manifold_source
from envs.motion_core import MotionCore
from envs.toy_manifold import ToyManifold
from envs.vec_env import MotionVecEnv
from mocap.features import frames_to_world, integrate_root, motion_to_frames
from mocap.kinematics import Motion
from mocap.rotations import axis_angle_matrix, yaw_matrix
from mocap.skeleton import Skeleton

ALL_IDS = list(envs.TASK_IDS)
# check_env warns that Box(-inf, inf) observations are unbounded: they are, by design.
UNBOUNDED = pytest.mark.filterwarnings("ignore:.*observation space (minimum|maximum) value is")


def walk_motion(num_frames: int = 48, fps: float = 30.0) -> Motion:
    """A 7-joint character walking on a gentle left curve, legs swinging."""
    names = ["Hips", "LeftUpLeg", "LeftFoot", "RightUpLeg", "RightFoot", "Spine", "Head"]
    parents = [-1, 0, 1, 0, 3, 0, 5]
    offsets = np.array([[0, 0.9, 0], [0.1, 0, 0], [0, -0.85, 0], [-0.1, 0, 0], [0, -0.85, 0], [0, 0.3, 0],
                        [0, 0.3, 0]], dtype=float)
    skeleton = Skeleton(names, parents, offsets)
    time = np.arange(num_frames) / fps
    yaw = 0.3 * time
    rot = np.tile(np.eye(3), (num_frames, len(names), 1, 1))
    rot[:, 0] = yaw_matrix(yaw)
    swing = 0.4 * np.sin(2 * np.pi * time)
    rot[:, 1], rot[:, 3] = axis_angle_matrix(0, swing), axis_angle_matrix(0, -swing)
    pos = np.broadcast_to(offsets, (num_frames, len(names), 3)).copy()
    pos[:, 0, 0] = np.cumsum(1.2 * np.sin(yaw) / fps)
    pos[:, 0, 2] = np.cumsum(1.2 * np.cos(yaw) / fps)
    pos[:, 0, 1] = 0.9 + 0.02 * np.sin(4 * np.pi * time)
    return Motion("walk", skeleton, rot, pos, fps)


@pytest.fixture(scope="module")
def walk():
    motion = walk_motion()
    frames, _, _ = motion_to_frames(motion)
    return motion, frames.astype(np.float32)


def small_vae(walk, model: str = "mixture", **overrides):
    """An untrained manifold on the walk's skeleton, normalised with and started from the walk's frames."""
    motion, frames = walk
    config = vae.VAEConfig(model=model, frame_size=frames.shape[1], latent_size=8, hidden_size=32, num_experts=2,
                           gate_hidden_size=16, num_codes=16, **overrides)
    manifold = vae.build_model(config)
    manifold.set_normalization(frames.mean(0), frames.std(0))
    manifold.skeleton = motion.skeleton
    manifold.fps = motion.fps
    return manifold.eval()


@pytest.fixture(scope="module")
def mixture(walk):
    torch.manual_seed(0)
    return small_vae(walk)


@pytest.fixture(scope="module")
def start(walk):
    return walk[1][1:, None, :]  # (S, 1, D) condition windows


# ---- the character core -------------------------------------------------------------------------------
def test_core_integrates_the_root_like_mocap_features(mixture, start):
    core = MotionCore(mixture, 3, start_frames=start)
    core.seed(1)
    core.reset()
    start_xz, start_yaw = core.root_xz.clone().numpy(), core.yaw.clone().numpy()
    frames, xz, yaw = [core.frame.clone()], [core.root_xz.clone()], [core.yaw.clone()]
    latents = torch.randn(20, 3, mixture.latent_size, generator=torch.Generator().manual_seed(2))
    for z in latents:
        frames.append(core.step(z).clone())
        xz.append(core.root_xz.clone())
        yaw.append(core.yaw.clone())
    frames, xz, yaw = torch.stack(frames, 1).numpy(), torch.stack(xz, 1).numpy(), torch.stack(yaw, 1).numpy()
    for b in range(3):
        ref_xz, ref_yaw = integrate_root(frames[b].astype(np.float64), start_xz[b], float(start_yaw[b]))
        np.testing.assert_allclose(xz[b], ref_xz, atol=1e-4)
        np.testing.assert_allclose(np.cos(yaw[b]), np.cos(ref_yaw), atol=1e-4)
        np.testing.assert_allclose(np.sin(yaw[b]), np.sin(ref_yaw), atol=1e-4)
        ref_rot, ref_world = frames_to_world(frames[b].astype(np.float64), start_xz[b], float(start_yaw[b]))
        np.testing.assert_allclose(core.world_joint_positions()[b].numpy(), ref_world[-1], atol=1e-4)
        np.testing.assert_allclose(core.world_joint_rotations()[b].numpy(), ref_rot[-1], atol=1e-4)
    # Joints hang from the root: the world hips sit above the integrated root position.
    np.testing.assert_allclose(core.world_joint_positions()[:, 0, [0, 2]].numpy(), xz[:, -1], atol=0.5)


def test_core_reset_mask_touches_only_masked_characters(mixture, start):
    core = MotionCore(mixture, 4, start_frames=start)
    core.seed(0)
    core.reset()
    for _ in range(3):
        core.step(torch.zeros(4, mixture.latent_size))
    before = (core.cond.clone(), core.root_xz.clone(), core.yaw.clone(), core.steps.clone())
    mask = torch.tensor([True, False, True, False])
    core.reset(mask)
    assert core.steps.tolist() == [0, 3, 0, 3]
    assert torch.equal(core.cond[~mask], before[0][~mask]) and torch.equal(core.root_xz[~mask], before[1][~mask])
    assert torch.equal(core.yaw[~mask], before[2][~mask])
    assert torch.all(core.root_xz[mask] == 0)
    starts = start.reshape(len(start), -1)
    for row in core.cond[mask].reshape(2, -1):  # each restarted window is one of the start windows
        assert torch.isclose(torch.as_tensor(starts), row).all(dim=1).any()


# ---- Gymnasium API ----------------------------------------------------------------------------------------
@UNBOUNDED
@pytest.mark.parametrize("env_id", ALL_IDS)
def test_single_env_passes_check_env(env_id):
    env = gym.make(env_id, vae=ToyManifold())
    assert isinstance(env.unwrapped, envs.MotionEnv)
    check_env(env.unwrapped, skip_render_check=True)
    env.close()


@UNBOUNDED
def test_single_env_with_a_real_vae_passes_check_env(mixture, start):
    env = gym.make("MVAE/Joystick-v0", vae=mixture, start_frames=start)
    check_env(env.unwrapped, skip_render_check=True)
    obs, info = env.reset(seed=3)
    obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
    assert obs.dtype == np.float32 and isinstance(reward, float) and isinstance(terminated, bool)
    assert {"heading_error_deg", "speed_error", "nonfinite"} <= set(info)


@pytest.mark.parametrize("env_id", ALL_IDS)
def test_make_vec_gives_the_native_batched_env(env_id):
    b = 5
    env = gym.make_vec(env_id, num_envs=b, vae=ToyManifold())
    assert isinstance(env, MotionVecEnv) and env.num_envs == b
    assert env.metadata["autoreset_mode"] is AutoresetMode.SAME_STEP
    o = env.single_observation_space.shape[0]
    assert env.observation_space.shape == (b, o) and env.observation_space.dtype == np.float32
    assert env.action_space.shape == (b, 4) and env.single_action_space.shape == (4,)
    obs, info = env.reset(seed=0)
    assert obs.shape == (b, o) and obs.dtype == np.float32 and obs in env.observation_space
    env.action_space.seed(0)
    for _ in range(3):
        obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
    assert obs.shape == (b, o) and obs.dtype == np.float32
    assert reward.shape == (b,) and reward.dtype == np.float32
    assert terminated.dtype == bool and truncated.dtype == bool and terminated.shape == truncated.shape == (b,)
    keys = [k for k in info if not k.startswith("_")]
    assert "nonfinite" in keys
    for key in keys:
        assert info[key].shape[0] == b and info["_" + key].dtype == bool and info["_" + key].shape == (b,)
    env.close()


def test_autoreset_same_step_reports_the_final_observation_and_episode():
    env = gym.make_vec("MVAE/Target-v0", num_envs=3, vae=ToyManifold(), max_episode_steps=4)
    env.reset(seed=0)
    forward = np.tile(np.array([[1.0, 0.0, 0.0, 0.0]], dtype=np.float32), (3, 1))
    for _ in range(3):
        obs, reward, terminated, truncated, info = env.step(forward)
        assert not truncated.any() and "final_obs" not in info
    returns = np.zeros(3, dtype=np.float32)
    obs, reward, terminated, truncated, info = env.step(forward)
    assert truncated.all() and not terminated.any()
    assert info["_final_obs"].all() and info["final_obs"].shape == obs.shape
    assert not np.allclose(info["final_obs"], obs)  # the returned obs is the new episode's
    assert info["_episode_stats"].all() and (info["episode_stats"]["l"] == 4).all()
    np.testing.assert_allclose(info["episode_stats"]["seconds"], 4 / 30, rtol=1e-6)
    assert info["_final_info"].all() and "distance_to_target" in info["final_info"]
    assert (env.unwrapped.core.steps == 0).all()  # restarted inside the step
    del returns
    obs, reward, terminated, truncated, info = env.step(forward)
    assert (env.unwrapped.core.steps == 1).all() and "final_obs" not in info


def test_episode_return_sums_the_rewards():
    env = MotionVecEnv(2, "joystick", ToyManifold(), max_episode_steps=6)
    env.reset(seed=4)
    total = np.zeros(2)
    env.action_space.seed(1)
    for _ in range(6):
        _, reward, _, _, info = env.step(env.action_space.sample())
        total += reward
    np.testing.assert_allclose(info["episode_stats"]["r"], total, rtol=1e-5)


def test_autoreset_disabled_waits_for_a_masked_reset():
    env = MotionVecEnv(3, "target", ToyManifold(), max_episode_steps=2, autoreset_mode="Disabled")
    assert env.metadata["autoreset_mode"] is AutoresetMode.DISABLED
    env.reset(seed=0)
    zeros = np.zeros((3, 4), dtype=np.float32)
    env.step(zeros)
    _, _, _, truncated, info = env.step(zeros)
    assert truncated.all() and "final_obs" not in info
    assert (env.core.steps == 2).all()
    env.reset(options={"reset_mask": np.array([True, False, False])})
    assert env.core.steps.tolist() == [0, 2, 2]


def test_autoreset_next_step_restarts_on_the_following_step():
    env = MotionVecEnv(2, "target", ToyManifold(), max_episode_steps=3, autoreset_mode="NextStep")
    assert env.metadata["autoreset_mode"] is AutoresetMode.NEXT_STEP
    env.reset(seed=0)
    forward = np.tile(np.array([[1.0, 0.0, 0.0, 0.0]], dtype=np.float32), (2, 1))
    for _ in range(3):
        obs, reward, terminated, truncated, info = env.step(forward)
    assert truncated.all() and "final_obs" not in info and (info["episode_stats"]["l"] == 3).all()
    assert (env.core.steps == 3).all()  # not restarted yet: obs is the episode's last
    obs, reward, terminated, truncated, info = env.step(forward)
    assert (env.core.steps == 0).all() and (reward == 0).all() and not (terminated | truncated).any()
    np.testing.assert_array_equal(info["targets_reached"], 0)
    env.step(forward)
    assert (env.core.steps == 1).all()


@UNBOUNDED
def test_gymnasium_vector_wrappers_work_on_top():
    from gymnasium.wrappers.vector import ClipAction, NormalizeObservation, NormalizeReward, RecordEpisodeStatistics

    for mode in ("SameStep", "NextStep"):
        env = gym.make_vec("MVAE/Joystick-v0", num_envs=3, vae=ToyManifold(), max_episode_steps=4,
                           autoreset_mode=mode)
        env = RecordEpisodeStatistics(ClipAction(env))
        if mode == "NextStep":  # Gymnasium's stateful wrappers refuse same-step autoreset
            env = NormalizeReward(NormalizeObservation(env))
        env.reset(seed=0)
        env.action_space.seed(0)
        ends = 0
        for _ in range(9):
            _, _, _, _, info = env.step(env.action_space.sample())
            if "episode" in info:
                ends += 1
                assert (info["episode"]["l"][info["_episode"]] == 4).all()
        assert ends == 2


def test_torch_backend_takes_and_returns_tensors(mixture, start):
    env = MotionVecEnv(4, "target", mixture, start_frames=start, array_backend="torch")
    obs, info = env.reset(seed=0)
    assert isinstance(obs, torch.Tensor) and obs.dtype == torch.float32
    assert obs.shape == (4, env.single_observation_space.shape[0])
    obs, reward, terminated, truncated, info = env.step(torch.zeros(4, mixture.latent_size))
    assert isinstance(reward, torch.Tensor) and reward.dtype == torch.float32
    assert terminated.dtype == torch.bool and isinstance(info["distance_to_target"], torch.Tensor)
    assert not obs.requires_grad  # and usable in autograd graphs (no inference tensors)
    layer = torch.nn.Linear(obs.shape[1], 1)
    layer(obs).sum().backward()


def test_observation_starts_with_the_normalised_condition_frames(mixture, start):
    env = MotionVecEnv(2, "joystick", mixture, start_frames=start)
    obs, _ = env.reset(seed=0)
    layout = env.observation_layout
    cond = env.core.cond.reshape(2, -1)
    expected = ((cond - mixture.data_mean) / mixture.data_std).numpy()
    np.testing.assert_allclose(obs[:, layout["condition"]], expected, rtol=1e-5, atol=1e-5)
    assert obs[:, layout["task"]].shape == (2, 3)


@UNBOUNDED
@pytest.mark.parametrize("env_id", ALL_IDS)
def test_every_task_runs_on_the_deepmimic_walk(env_id):
    from mocap.deepmimic import pybullet_motion_files, read_deepmimic
    from mocap.kinematics import resample

    motion = resample(read_deepmimic(next(f for f in pybullet_motion_files() if f.name == "humanoid3d_walk.txt")), 30)
    frames = motion_to_frames(motion)[0].astype(np.float32)  # (T, D), 15 joints
    torch.manual_seed(0)
    manifold = small_vae((motion, frames))
    env = gym.make_vec(env_id, num_envs=2, vae=manifold, start_frames=frames[1:, None])
    obs, _ = env.reset(seed=0)
    start = env.unwrapped.core.world_joint_positions()
    assert start.shape == (2, 15, 3) and 0.5 < float(start[..., 1].max()) < 2.0  # a standing humanoid's height
    env.action_space.seed(0)
    for _ in range(20):
        obs, reward, *_ = env.step(env.action_space.sample())
    assert np.isfinite(obs).all() and np.isfinite(reward).all()
    env.close()


# ---- seeding --------------------------------------------------------------------------------------------
def _rollout(env, seed: int, steps: int = 25):
    obs, _ = env.reset(seed=seed)
    rng = np.random.default_rng(7)
    out = [obs]
    for _ in range(steps):
        action = rng.uniform(-1, 1, env.action_space.shape).astype(np.float32)
        obs, reward, terminated, truncated, _ = env.step(action)
        out += [obs, reward, terminated, truncated]
    return out


@pytest.mark.parametrize("task", ["random_walk", "joystick", "path_follow"])
def test_same_seed_same_trajectory(mixture, start, task):
    a = _rollout(MotionVecEnv(3, task, mixture, start_frames=start, max_episode_steps=10), seed=11)
    b = _rollout(MotionVecEnv(3, task, mixture, start_frames=start, max_episode_steps=10), seed=11)
    c = _rollout(MotionVecEnv(3, task, mixture, start_frames=start, max_episode_steps=10), seed=12)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)
    assert not np.array_equal(a[-4], c[-4])


def test_unseeded_reset_continues_the_seeded_stream():
    env = MotionVecEnv(2, "target", ToyManifold())
    env.reset(seed=5)
    first, _ = env.reset()
    env.reset(seed=5)
    again, _ = env.reset()
    np.testing.assert_array_equal(first, again)


# ---- VAE kinds and sources --------------------------------------------------------------------------------
@UNBOUNDED
def test_discrete_manifold_gets_a_discrete_action_space(walk, start):
    manifold = small_vae(walk, model="vq")
    env = gym.make_vec("MVAE/Target-v0", num_envs=3, vae=manifold, start_frames=start)
    assert env.single_action_space == gym.spaces.Discrete(16)
    env.reset(seed=0)
    obs, *_ = env.step(np.array([0, 5, 15]))
    assert np.isfinite(obs).all()
    with pytest.raises(ValueError, match="discrete"):
        env.step(np.array([0.0, 1.0, 2.0]))
    with pytest.raises(ValueError, match=r"\[0, 16\)"):
        env.step(np.array([0, 1, 16]))
    single = gym.make("MVAE/Target-v0", vae=manifold, start_frames=start)
    check_env(single.unwrapped, skip_render_check=True)


def test_vae_path_loads_the_checkpoint_and_its_start_frames(tmp_path, walk, mixture, start):
    path = tmp_path / "vae.pt"
    vae.save_checkpoint(path, mixture, skeleton=walk[0].skeleton, fps=30.0, dataset_fingerprint="test",
                        extra={"start_frames": torch.as_tensor(start)})
    env = gym.make_vec("MVAE/Target-v0", num_envs=2, vae=str(path))
    obs, _ = env.reset(seed=0)
    assert obs.shape == (2, start.shape[2] + 2)
    assert env.unwrapped.core.start_frames.shape == start.shape


def test_vae_none_without_the_shipped_model_says_how_to_train(monkeypatch, tmp_path):
    monkeypatch.setattr(manifold_source, "DEFAULT_VAE", tmp_path / "missing.pt")
    with pytest.raises(FileNotFoundError, match="vae.train"):
        gym.make("MVAE/Target-v0")


@UNBOUNDED
def test_default_vae_is_the_shipped_model():
    env = gym.make_vec("MVAE/Target-v0", num_envs=2)
    obs, _ = env.reset(seed=0)
    obs, *_ = env.step(np.zeros(env.action_space.shape, dtype=np.float32))
    assert np.isfinite(obs).all()
    check_env(gym.make("MVAE/Joystick-v0").unwrapped, skip_render_check=True)


# ---- bad input --------------------------------------------------------------------------------------------
def test_bad_actions_are_refused_with_a_clear_error():
    env = MotionVecEnv(2, "target", ToyManifold())
    with pytest.raises(RuntimeError, match="reset"):
        env.step(np.zeros((2, 4), dtype=np.float32))
    env.reset(seed=0)
    with pytest.raises(ValueError, match=r"\(2, 4\)"):
        env.step(np.zeros((2, 3), dtype=np.float32))
    with pytest.raises(ValueError, match=r"\(2, 4\)"):
        env.step(np.zeros((4,), dtype=np.float32))
    nan = np.zeros((2, 4), dtype=np.float32)
    nan[1, 2] = np.nan
    with pytest.raises(ValueError, match=r"NaN.*\[1\]"):
        env.step(nan)
    with pytest.raises(ValueError, match="float array"):
        env.step(np.full((2, 4), "a"))
    single = envs.MotionEnv("target", ToyManifold())
    with pytest.raises(RuntimeError, match="reset"):
        single.step(np.zeros(4, dtype=np.float32))
    single.reset(seed=0)
    with pytest.raises(ValueError, match=r"shape \(3,\)"):
        single.step(np.zeros(3, dtype=np.float32))


def test_out_of_box_actions_are_clipped():
    env = MotionVecEnv(1, "target", ToyManifold())
    env.reset(seed=0)
    env.step(np.array([[100.0, 0, 0, 0]], dtype=np.float32))
    assert env.core.speed()[0] == pytest.approx(2.0)  # action 1 -> latent 4 -> the toy's top speed


def test_bad_construction_is_refused_with_a_clear_error(walk, start, mixture):
    with pytest.raises(ValueError, match="unknown task"):
        MotionVecEnv(1, "dance", ToyManifold())
    with pytest.raises(ValueError, match="arrival_radius"):
        MotionVecEnv(1, "joystick", ToyManifold(), arrival_radius=1.0)
    with pytest.raises(ValueError, match="array_backend"):
        MotionVecEnv(1, "target", ToyManifold(), array_backend="jax")
    with pytest.raises(ValueError, match="render"):
        envs.MotionEnv("target", ToyManifold(), render_mode="human")
    hand_built = small_vae(walk)
    hand_built.fps = None
    with pytest.raises(ValueError, match="fps="):
        MotionVecEnv(1, "target", hand_built, start_frames=start)
    with pytest.raises(ValueError, match="start_frames="):
        MotionVecEnv(1, "target", hand_built, fps=30)
    with pytest.raises(ValueError, match=r"start_frames have shape .*\(S, 1, 87\)"):
        MotionVecEnv(1, "target", mixture, start_frames=np.zeros((4, 1, 86), dtype=np.float32))
    wrong_skeleton = small_vae(walk)
    wrong_skeleton.skeleton = ToyManifold().skeleton  # 5 joints for a 7-joint frame layout
    with pytest.raises(ValueError, match="7 joints but its skeleton has 5"):
        MotionVecEnv(1, "target", wrong_skeleton, start_frames=start)
    with pytest.raises(TypeError, match="MotionManifold"):
        MotionVecEnv(1, "target", object())
    with pytest.raises(ValueError, match="max_episode_steps"):
        MotionVecEnv(1, "target", ToyManifold(), max_episode_steps=0)


def test_nonfinite_state_terminates_and_is_flagged():
    toy = ToyManifold()
    env = MotionVecEnv(2, "target", toy)
    env.reset(seed=0)
    step = toy.step

    def broken(action, cond):
        frame = step(action, cond)
        frame[1, 5] = float("nan")
        return frame

    toy.step = broken
    obs, reward, terminated, truncated, info = env.step(np.zeros((2, 4), dtype=np.float32))
    assert info["nonfinite"].tolist() == [False, True] and terminated.tolist() == [False, True]
    assert reward[1] == -env.divergence_penalty and info["_final_obs"].tolist() == [False, True]
    assert info["diverged"].tolist() == [False, True]
    assert np.isfinite(obs).all()  # the broken character was restarted


def test_import_envs_does_not_load_torch():
    code = "import sys, envs, gymnasium; gymnasium.spec('MVAE/Maze-v0'); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# ---- the blocked decoder of CPU inference ----------------------------------------------------------------------
def test_blocked_inference_gives_the_whole_batch_trajectories(mixture, start, monkeypatch):
    # 200 steps of a block and a partial one of characters, the decoder run block by block, then as one batch.
    import vae.mixture_vae

    b = vae.mixture_vae.INFERENCE_BLOCK_ROWS + 88

    def rollout():
        env = MotionVecEnv(b, "target", mixture, start_frames=start, array_backend="torch")
        env.reset(seed=5)
        actions = torch.rand(200, b, mixture.latent_size, generator=torch.Generator().manual_seed(6)) * 2 - 1
        rewards = torch.stack([env.step(a)[1] for a in actions])
        core = MotionCore(mixture, b, start_frames=start)
        core.seed(7)
        core.reset()
        for z in actions * 3.0:
            core.step(z)
        return {"rewards": rewards, **env.state_dict()["core"], **{f"core.{k}": v for k, v in core.state_dict().items()
                                                                    if k != "generator"}}

    assert vae.mixture_vae.INFERENCE_BLOCK_ROWS >= vae.mixture_vae.BLOCKED_MIN_ROWS
    blocked = rollout()
    monkeypatch.setattr(vae.mixture_vae, "BLOCKED_MIN_ROWS", 10**9)
    whole = rollout()
    for key, value in whole.items():
        if isinstance(value, torch.Tensor):
            torch.testing.assert_close(blocked[key], value, rtol=1e-6, atol=1e-6, msg=key)
