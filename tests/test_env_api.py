"""The environments' public API beyond Gymnasium (what the app and the trainer use) and the one task registry:
observe, place, user requests to tasks, desired motion, state_dict round trips, and bad values answered clearly.
The steerable ToyManifold stands in for a trained Motion VAE."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from envs.registry import TASK_SPECS, canonical_task, task_names, task_spec
from envs.tasks.base import TaskInputError
from envs.toy_manifold import ToyManifold
from envs.vec_env import MotionVecEnv, observation_size
from policies.controllers import SamplingController


def make(task: str, b: int = 4, **options) -> MotionVecEnv:
    env = MotionVecEnv(b, task, ToyManifold(), array_backend="torch", **options)
    env.reset(seed=0)
    return env


def test_registry_names_aliases_and_files_agree_everywhere():
    assert [s.name for s in TASK_SPECS] == task_names()
    assert canonical_task("path") == canonical_task("PathFollow".lower().replace("follow", "_follow")) == "path_follow"
    assert task_spec("pathfollow").policy_file == "path_follow.pt"
    assert task_names(interactive_only=True) == ["random_walk", "target", "joystick", "path_follow", "maze"]
    for spec in TASK_SPECS:
        assert spec.task_class().name == spec.name  # the class agrees with its registry entry
    with pytest.raises(ValueError, match=r"unknown --task 'dance'.*path_follow \(path, pathfollow\)"):
        canonical_task("dance", "--task")
    env = make("path")  # aliases work wherever a task name is taken
    assert env.task.name == "path_follow"


def test_observe_changes_nothing_and_equals_the_last_step():
    env = make("target")
    obs, *_ = env.step(torch.zeros(4, 4))
    state = env.state_dict()
    assert torch.equal(env.observe(), obs) and torch.equal(env.observe(), obs)
    assert torch.equal(env.state_dict()["core"]["cond"], state["core"]["cond"])


def test_place_moves_characters_and_the_task_replans_around_them():
    env = make("target")
    where = torch.tensor([[10.0, -5.0]] * 4)
    yaw = torch.full((4,), 0.5)
    mask = torch.tensor([True, False, True, False])
    before = env.core.root_xz.clone()
    obs = env.place(mask, root_xz=where, yaw=yaw)
    assert torch.equal(env.core.root_xz[mask], where[mask]) and torch.equal(env.core.root_xz[~mask], before[~mask])
    assert torch.allclose(env.core.yaw[mask], yaw[mask])
    distance = torch.linalg.vector_norm(env.task.target - env.core.root_xz, dim=1)
    assert bool(((distance >= 2.0 - 1e-4) & (distance <= 8.0 + 1e-4))[mask].all()), "new targets 2-8 m away"
    assert torch.equal(obs, env.observe())
    path = make("path_follow")
    path.place(root_xz=torch.tensor([[3.0, 4.0]] * 4))
    assert torch.allclose(path.task.points_at(path.task.progress[:, None])[:, 0], path.core.root_xz, atol=1e-4)
    maze = make("maze")
    with pytest.raises(ValueError, match="places its characters itself"):
        maze.place(root_xz=torch.zeros(4, 2))
    with pytest.raises(ValueError, match=r"root_xz has shape \(2, 2\)"):
        env.place(root_xz=torch.zeros(2, 2))
    with pytest.raises(ValueError, match="NaN"):
        env.place(yaw=torch.full((4,), math.nan))


def test_user_requests_go_only_to_tasks_that_accept_them():
    target = make("target")
    target.task.set_goal(torch.tensor([3.0, 4.0]))
    assert torch.allclose(target.task.target, torch.tensor([[3.0, 4.0]] * 4))
    with pytest.raises(ValueError, match="outside the 40 m arena"):
        target.task.set_goal(torch.tensor([1e30, 0.0]))
    with pytest.raises(TaskInputError, match="takes no path"):
        target.task.set_path(torch.zeros(3, 2))
    joystick = make("joystick")
    with pytest.raises(TaskInputError, match="takes no goal"):
        joystick.task.set_goal(torch.zeros(2))
    with pytest.raises(ValueError, match="finite, non-zero"):
        joystick.task.set_command(torch.zeros(2), 1.0)
    path = make("path_follow")
    with pytest.raises(ValueError, match="within 1000 m"):
        path.task.set_path(torch.tensor([[0.0, 0.0], [1e9, 0.0]]))
    maze = make("maze")
    maze.task.set_goal(maze.task.cell_centers[7])
    assert bool((maze.task.goal == 7).all())
    assert {spec.name: spec.task_class().accepts for spec in TASK_SPECS} == {
        "random_walk": frozenset(), "target": {"goal"}, "joystick": {"command"}, "path_follow": {"path"},
        "maze": {"goal"}, "timed_target": {"goal"}}


def test_desired_motion_is_what_the_goal_asks_and_the_scripted_baseline_follows_it():
    target = make("target")
    target.task.set_goal(torch.tensor([0.0, 6.0]))
    target.place(root_xz=torch.zeros(4, 2), yaw=torch.zeros(4))
    target.task.set_goal(torch.tensor([0.0, 6.0]))
    direction, speed = target.task.desired_motion()
    assert torch.allclose(direction, torch.tensor([[0.0, 1.0]] * 4)) and torch.allclose(speed, torch.full((4,), 3.0))
    joystick = make("joystick")
    joystick.task.set_command(torch.tensor([1.0, 0.0]), 1.5)
    direction, speed = joystick.task.desired_motion()
    assert torch.allclose(direction, torch.tensor([[1.0, 0.0]] * 4)) and torch.allclose(speed, torch.full((4,), 1.5))
    # The scripted baseline steering toward it reaches targets (ToyManifold: a steerable stand-in).
    env = make("target", b=8)
    controller = SamplingController.for_env(env, num_candidates=16, seed=0)
    obs = env.observe()
    for _ in range(600):
        obs, _, _, _, info = env.step(controller(env, obs))
    assert int(info["targets_reached"].sum()) >= 12


@pytest.mark.parametrize("task", task_names())
def test_state_dict_round_trip_continues_exactly(task):
    env = make(task)
    actions = [torch.rand(4, 4, generator=torch.Generator().manual_seed(k)) * 2 - 1 for k in range(40)]
    for a in actions[:20]:
        env.step(a)
    state = env.state_dict()
    first = [env.step(a)[0] for a in actions[20:]]
    other = make(task)
    other.load_state_dict(state)
    second = [other.step(a)[0] for a in actions[20:]]
    assert all(torch.equal(x, y) for x, y in zip(first, second, strict=True))
    with pytest.raises(ValueError, match="characters"):
        make(task, b=3).load_state_dict(state)


def test_observation_size_matches_the_environment():
    for task in task_names():
        env = make(task)
        assert observation_size(env.manifold, task) == env.single_observation_space.shape[0]
    assert observation_size(ToyManifold(), "maze", {"route_hint": False}) == make("maze").single_observation_space.shape[
        0] - 4


def test_bad_values_get_one_clear_line():
    with pytest.raises(ValueError, match=r"action_scale must be in \(0, 100\]"):
        MotionVecEnv(1, "target", ToyManifold(), action_scale=math.inf)
    with pytest.raises(ValueError, match=r"action_scale must be in \(0, 100\]"):
        MotionVecEnv(1, "target", ToyManifold(), action_scale=1e30)
    env = MotionVecEnv(1, "target", ToyManifold())
    with pytest.raises(ValueError, match=r"seed must be one integer in \[0, 2\*\*63\)"):
        env.reset(seed=2**70)
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="torch sees no CUDA GPU"):
            MotionVecEnv(1, "target", None, device="cuda")


def test_a_non_finite_reward_ends_the_episode_with_the_penalty():
    env = make("target")
    env.task.target[1] = math.inf  # what an absurd goal would do to the progress reward
    _, reward, terminated, _, info = env.step(torch.zeros(4, 4))
    assert bool(info["nonfinite"][1]) and bool(info["diverged"][1]) and bool(terminated[1])
    assert float(reward[1]) == -env.divergence_penalty
    assert not bool(info["diverged"][0]) and np.isfinite(reward.numpy()).all()


class Exploding(ToyManifold):
    """A toy whose character 1 flies off: its root moves 1 m more every frame (30, 60, ... m/s)."""

    def __init__(self):
        super().__init__()
        self.extra = {"feature_envelope": torch.full((self.frame_size,), 3.0)}
        self.frames = 0

    def step(self, action, cond):
        frame = super().step(action, cond)
        self.frames += 1
        frame[1, self.layout.root_dxdz] = torch.tensor([0.0, float(self.frames)])
        return frame


def test_a_character_that_leaves_the_data_is_reset_with_a_penalty_and_counted():
    env = MotionVecEnv(3, "target", Exploding(), array_backend="torch", autoreset_mode="Disabled")
    env.reset(seed=0)
    steps = 0
    for _ in range(100):
        obs, reward, terminated, _, info = env.step(torch.zeros(3, 4))
        steps += 1
        if bool(terminated.any()):
            break
    assert terminated.tolist() == [False, True, False] and info["diverged"].tolist() == [False, True, False]
    assert not bool(info["nonfinite"][1]) and float(reward[1]) == -env.divergence_penalty
    speed = env.core.speed()[1]
    assert 3 <= steps <= 30 and float(speed) < 1000, "caught while fast, long before anything overflows"
    assert torch.isfinite(obs).all() and obs.abs().max() <= 1e6
