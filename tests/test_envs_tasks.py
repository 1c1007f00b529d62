"""Task logic, judged by what a user sees: a hand-written controller clearly beats a random one, the maze's
rays see walls at the right distance and collisions are counted. The steerable ToyManifold stands in for
a trained Motion VAE so these results do not depend on the quality of a model.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from envs.geometry import heading_vector
from envs.maze_layout import generate_maze
from envs.toy_manifold import ToyManifold
from envs.vec_env import MotionVecEnv

B = 16
STEPS = 300
STAND = np.array([[-1.0, 0, 0, 0], [-1.0, 0, 0, 0]], dtype=np.float32)  # toy: speed 0, no turn


def run(task: str, policy, seed: int = 0, **options) -> tuple[MotionVecEnv, list[dict], np.ndarray]:
    """Roll ``policy(obs, env) -> actions`` for STEPS steps of B characters; (env, infos, rewards (STEPS, B))."""
    env = MotionVecEnv(B, task, ToyManifold(), **options)
    obs, _ = env.reset(seed=seed)
    env.action_space.seed(seed)
    infos, rewards = [], []
    for _ in range(STEPS):
        obs, reward, _, _, info = env.step(policy(obs, env))
        infos.append(info)
        rewards.append(reward)
    return env, infos, np.array(rewards)


def random_policy(obs, env):
    return env.action_space.sample()


def steer(angle: np.ndarray, speed: np.ndarray) -> np.ndarray:
    """Toy controls: turn toward ``angle`` (rad, left positive) at ``speed`` m/s (action 1 = 2 m/s, 2 rad/s)."""
    actions = np.zeros((len(angle), 4), dtype=np.float32)
    actions[:, 0] = np.clip(speed / 2.0, 0.0, 1.0)
    actions[:, 1] = np.clip(2.0 * angle, -1.0, 1.0)
    return actions


def task_features(obs, env):
    return obs[:, env.observation_layout["task"]]


def go_to_target(obs, env):
    x, z = task_features(obs, env)[:, 0], task_features(obs, env)[:, 1]
    angle = np.arctan2(x, z)
    return steer(angle, np.where(np.abs(angle) < 1.0, 2.0, 0.5))


def follow_joystick(obs, env):
    sin, cos, speed = task_features(obs, env).T
    return steer(np.arctan2(sin, cos), speed)


def chase_path_point(obs, env):
    point = task_features(obs, env)[:, :2]
    distance = np.linalg.norm(point, axis=1)
    return steer(np.arctan2(point[:, 0], point[:, 1]), 1.2 + distance)


def test_target_heuristic_reaches_many_more_targets_than_random():
    _, smart, smart_reward = run("target", go_to_target)
    _, rand, rand_reward = run("target", random_policy)
    reached_smart, reached_random = smart[-1]["targets_reached"].sum(), rand[-1]["targets_reached"].sum()
    assert reached_smart >= 2 * B and reached_smart > 5 * max(reached_random, 1)
    assert smart_reward.sum(0).mean() > rand_reward.sum(0).mean() + 5.0
    times = np.concatenate([i["time_to_target"][i["_time_to_target"]] for i in smart])
    assert len(times) == reached_smart and 0.5 < np.median(times) < 6.0  # 2-8 m at up to 2 m/s


def test_hand_placed_target_is_reached_and_replaced():
    env = MotionVecEnv(2, "target", ToyManifold())
    env.reset(seed=0)
    env.task.set_targets(env.core.root_xz + torch.tensor([[0.1, 0.0], [5.0, 0.0]]))
    _, reward, _, _, info = env.step(STAND)
    assert info["targets_reached"].tolist() == [1, 0] and info["_time_to_target"].tolist() == [True, False]
    assert reward[0] == pytest.approx(env.task.arrival_bonus, abs=1e-5) and reward[1] == pytest.approx(0.0, abs=1e-6)
    distance = torch.linalg.vector_norm(env.task.target - env.core.root_xz, dim=1)
    assert 2.0 <= distance[0] <= 8.0 and distance[1] == pytest.approx(5.0)  # a fresh target 2-8 m away


def test_timed_target_heuristic_is_on_time_and_random_is_late():
    _, smart, smart_reward = run("timed_target", go_to_target)
    _, rand, rand_reward = run("timed_target", random_policy)
    assert smart[-1]["targets_reached"].sum() > 3 * smart[-1]["targets_missed"].sum()
    assert rand[-1]["targets_missed"].sum() > rand[-1]["targets_reached"].sum()
    assert smart_reward.sum(0).mean() > rand_reward.sum(0).mean() + 5.0


def test_joystick_heuristic_tracks_the_command_better_than_random():
    _, smart, smart_reward = run("joystick", follow_joystick)
    _, rand, rand_reward = run("joystick", random_policy)
    assert smart_reward.mean() > 0.6 and smart_reward.mean() > rand_reward.mean() + 0.25
    heading = lambda infos: np.mean([i["heading_error_deg"] for i in infos[60:]])  # noqa: E731
    speed = lambda infos: np.mean([i["speed_error"] for i in infos[60:]])  # noqa: E731
    assert heading(smart) < 20.0 < heading(rand)
    assert speed(smart) < 0.5 * speed(rand)


def test_joystick_reward_is_about_direction_not_speed_alone():
    env = MotionVecEnv(2, "joystick", ToyManifold())
    env.reset(seed=0)
    task = env.task
    facing = torch.stack((torch.sin(env.core.yaw), torch.cos(env.core.yaw)), dim=1)
    task.set_command(facing * torch.tensor([[1.0], [-1.0]]), 0.0)  # character 1 is told to face backwards
    _, reward, *_ = env.step(np.zeros((2, 4), dtype=np.float32))  # both stand still, facing the same way
    assert reward[0] == pytest.approx(1.0, abs=1e-5) and reward[1] == pytest.approx(math.exp(-2.0), rel=1e-4)


def test_path_follow_heuristic_stays_on_the_path_and_random_gets_lost():
    _, smart, smart_reward = run("path_follow", chase_path_point)
    _, rand, rand_reward = run("path_follow", random_policy)
    smart_distance = np.mean([i["path_distance"] for i in smart])
    random_distance = np.mean([i["path_distance"] for i in rand])
    assert smart_distance < 0.6 and smart_distance < 0.3 * random_distance
    assert smart_reward.mean() > rand_reward.mean() + 0.3
    lost = lambda infos: sum(int(i.get("_final_obs", np.zeros(B, bool)).sum()) for i in infos)  # noqa: E731
    assert lost(smart) == 0 and lost(rand) > B


def test_path_follow_offset_starts_put_the_point_away_and_a_chaser_catches_up():
    env, infos, _ = run("path_follow", chase_path_point, start_offset=3.0)
    start_distance = infos[0]["path_distance"]  # after one step: up to 3 m, plus the point's one-frame move
    assert start_distance.max() > 1.0 and start_distance.max() < 3.0 + env.task.path_speed / 30.0 + 0.05
    late = np.mean([i["path_distance"] for i in infos[-100:]])
    assert late < 0.6  # caught up: as close as from a start on the path
    with pytest.raises(ValueError, match="start_offset"):
        MotionVecEnv(1, "path_follow", ToyManifold(), start_offset=4.0)


@pytest.mark.parametrize("path", ["figure8", "random"])
def test_paths_are_closed_smooth_loops_through_the_start(path):
    env = MotionVecEnv(4, "path_follow", ToyManifold(), path=path)
    env.reset(seed=3)
    task = env.task
    points = task.path  # (B, P, 2)
    step = torch.linalg.vector_norm(torch.roll(points, -1, dims=1) - points, dim=-1)  # (B, P), closing segment too
    spacing = task.length / points.shape[1]
    torch.testing.assert_close(step, spacing[:, None].expand_as(step), rtol=0.05, atol=0.0)
    torch.testing.assert_close(points[:, 0], env.core.root_xz)  # starts under the character
    assert (task.length > 15).all() and (task.length < 80).all()
    ahead = task.lookahead()
    arc = torch.linalg.vector_norm(ahead[:, 1] - ahead[:, 0], dim=-1)
    assert (arc <= task.path_speed * task.lookahead_seconds + 1e-4).all()


def _maze_env(**options) -> MotionVecEnv:
    env = MotionVecEnv(2, "maze", ToyManifold(), cells=3, cell_size=4.0, maze_seed=1, **options)
    env.reset(seed=0)
    return env


def _place(env, xz, yaw):
    env.core.root_xz = torch.tensor(xz, dtype=torch.float32)
    env.core.yaw = torch.tensor(yaw, dtype=torch.float32)
    env.task.route = env.task.route_distance(env.core.root_xz, env.task.goal)



def test_maze_rays_see_a_wall_one_metre_ahead():
    env = _maze_env()
    task = env.task
    h, t = task.layout.half_width, 0.1  # the east outer wall's inner face is at x = h - t
    cz = task.layout.cell_centers()[0, 1]
    # Character 0 faces the east outer wall from 1 m; character 1 stands there facing west.
    _place(env, [[h - t - 1.0, cz], [h - t - 1.0, cz]], [math.pi / 2, -math.pi / 2])
    obs, _, terminated, _, info = env.step(STAND)
    rays = obs[:, env.observation_layout["task"]][:, : task.num_rays]
    assert not terminated.any() and not info["collided"].any()
    assert rays[0, 0] == pytest.approx(1.0 / task.ray_length, abs=2e-3)
    assert (rays >= 0).all() and (rays <= 1).all() and (rays < 1).any(axis=1).all()
    # Every ray agrees with the analytic distance to the wall rectangles along it.
    for b in range(2):
        for k in range(task.num_rays):
            angle = float(env.core.yaw[b] + task.ray_offsets[k])
            expected = _ray_box_fraction(env.core.root_xz[b].numpy(), angle, task.walls.numpy(), task.ray_length)
            assert rays[b, k] == pytest.approx(expected, abs=2e-3)


def _ray_box_fraction(origin, angle, boxes, length):
    """Slab test of a ground ray against rectangles [xmin, xmax, zmin, zmax]; 1.0 without a hit."""
    d = np.array([math.sin(angle), math.cos(angle)]) * length
    best = 1.0
    for xmin, xmax, zmin, zmax in boxes:
        lo, hi = 0.0, 1.0
        for o, dd, a, b in ((origin[0], d[0], xmin, xmax), (origin[1], d[1], zmin, zmax)):
            if abs(dd) < 1e-12:
                if not a <= o <= b:
                    lo, hi = 1.0, 0.0
                continue
            t0, t1 = sorted(((a - o) / dd, (b - o) / dd))
            lo, hi = max(lo, t0), min(hi, t1)
        if lo <= hi and lo > 0:
            best = min(best, lo)
    return best


def test_maze_collisions_are_counted_and_terminate_by_default():
    env = _maze_env()
    h = env.task.layout.half_width
    cz = env.task.layout.cell_centers()[0, 1]
    _place(env, [[h - 0.2, cz], [0.0, cz]], [0.0, 0.0])  # character 0 inside the outer wall's reach
    _, reward, terminated, _, info = env.step(STAND)
    assert info["collided"].tolist()[0] and terminated.tolist()[0]
    assert info["final_info"]["collisions"][0] == 1 and info["_final_info"].tolist()[0]
    assert reward[0] <= -env.task.collision_penalty + 0.5
    assert env.task.collisions[0] == 0  # restarted


def test_maze_penalize_mode_keeps_counting():
    env = _maze_env(collision="penalize", collision_penalty=0.5)
    h = env.task.layout.half_width
    cz = env.task.layout.cell_centers()[0, 1]
    _place(env, [[h - 0.2, cz], [h - 0.2, cz]], [0.0, 0.0])
    for step in range(1, 4):
        _, reward, terminated, _, info = env.step(STAND)
        assert not terminated.any() and (info["collisions"] == step).all()
        np.testing.assert_allclose(reward, -0.5, atol=1e-5)


def test_maze_clearance_penalty_warns_before_the_wall_in_proportion_to_closeness():
    h = 6.0 - 0.1  # the outer wall's inner face (3 cells of 4 m, 0.2 m thick walls)
    rewards = {}
    for penalty in (0.0, 3.0):
        env = _maze_env(clearance_penalty=penalty)
        cz = env.task.layout.cell_centers()[0, 1]
        _place(env, [[h - 0.45, cz], [h - 2.0, cz]], [0.0, 0.0])  # 0.45 m from the wall; a cell centre
        _, rewards[penalty], terminated, _, info = env.step(STAND)
        assert not terminated.any() and not info["collided"].any()
    # Half way from clearance_m (0.6 m) to body_radius (0.3 m): half the penalty per second, for one frame.
    np.testing.assert_allclose(rewards[0.0] - rewards[3.0], [3.0 * 0.5 / 30.0, 0.0], atol=1e-5)
    with pytest.raises(ValueError, match="clearance_m > body_radius"):
        _maze_env(clearance_m=0.2)


def test_maze_reward_follows_the_route_not_the_straight_line():
    env = _maze_env()
    task = env.task
    goal_xz = task.cell_centers[task.goal]
    _place(env, goal_xz.numpy() + [[0.3, 0.0], [0.0, 0.3]], [0.0, 0.0])
    _, reward, _, _, info = env.step(STAND)
    assert info["targets_reached"].tolist() == [1, 1]
    np.testing.assert_allclose(reward, task.goal_bonus, atol=1e-5)  # no progress standing still, bonus on arrival
    moves = task.moves  # route distance between cell centres is cell_size * moves of the maze's BFS
    layout = generate_maze(3, 4.0, seed=1)
    np.testing.assert_array_equal(moves.numpy(), layout.cell_distances())
    centres = task.cell_centers
    route = task.route_distance(centres[:1].expand(9, 2), torch.arange(9))
    torch.testing.assert_close(route, 4.0 * moves[0])
    assert (route >= torch.linalg.vector_norm(centres - centres[0], dim=1) - 1e-4).all()


def test_maze_layout_is_a_connected_maze():
    layout = generate_maze(6, 2.0, seed=3)
    dist = layout.cell_distances()
    assert (dist >= 0).all()  # every cell reaches every other
    assert layout.open_x.sum() + layout.open_z.sum() == 36 - 1  # a perfect maze is a spanning tree
    walls = layout.walls(0.2)
    assert walls.shape[1] == 4 and (walls[:, 1] > walls[:, 0]).all() and (walls[:, 3] > walls[:, 2]).all()
    assert np.array_equal(generate_maze(6, 2.0, seed=3).open_x, layout.open_x)


def test_maze_next_cells_walk_the_shortest_route():
    layout = generate_maze(5, 4.0, seed=0, extra_openings=0.2)
    dist, nxt, table = layout.cell_distances(), layout.next_cells(), layout.neighbours()
    for a in range(layout.num_cells):
        for b in range(layout.num_cells):
            cell, moves = a, 0
            while cell != b:
                assert nxt[cell, b] in table[cell, 1:]  # one open step at a time
                cell, moves = nxt[cell, b], moves + 1
            assert moves == dist[a, b]


def follow_route_hint(obs, env):
    waypoint = task_features(obs, env)[:, env.task.num_rays + 2 : env.task.num_rays + 4]
    angle = np.arctan2(waypoint[:, 0], waypoint[:, 1])
    return steer(angle, np.where(np.abs(angle) < 0.5, 1.5, 0.3))


def test_maze_route_hint_points_through_the_doorways_to_the_goal():
    env = _maze_env()
    task = env.task
    assert task.feature_size == task.num_rays + 6
    goal = int(task.goal[0])
    neighbour = int(task.neighbours[goal, 1])  # a cell open to the goal cell
    centres = task.cell_centers
    _place(env, torch.stack((centres[neighbour], centres[goal])).numpy(), [0.0, 0.0])
    waypoints = task.route_waypoints(env.core.root_xz, task.goal[:1].expand(2))  # (2, 2, 2)
    torch.testing.assert_close(waypoints[0, 0], 0.5 * (centres[neighbour] + centres[goal]))  # the doorway
    torch.testing.assert_close(waypoints[0, 1], centres[goal])
    torch.testing.assert_close(waypoints[1], centres[goal].expand(2, 2))  # in the goal cell: its centre
    no_hint = _maze_env(route_hint=False)
    assert no_hint.task.feature_size == no_hint.task.num_rays + 2
    # Walking to the waypoints solves the maze: goals reached, no wall touched; random walks hit walls.
    _, smart, _ = run("maze", follow_route_hint, cells=3, cell_size=4.0, maze_seed=1, collision="penalize")
    _, rand, _ = run("maze", random_policy, cells=3, cell_size=4.0, maze_seed=1, collision="penalize")
    assert smart[-1]["targets_reached"].sum() >= B  # 10 s of routes up to 8 cells long
    assert smart[-1]["collisions"].sum() < 0.05 * rand[-1]["collisions"].sum()


@pytest.mark.parametrize("task", ["random_walk", "target", "timed_target", "joystick", "path_follow", "maze"])
def test_draw_data_is_plain_arrays(task):
    env = MotionVecEnv(3, task, ToyManifold())
    env.reset(seed=0)
    env.step(env.action_space.sample())
    data = env.draw_data(2)
    assert set(data) == {"markers", "polylines", "boxes", "text"}
    for marker in data["markers"]:
        assert marker["position"].shape == (3,) and marker["rgba"].shape == (4,) and marker["radius"] > 0
    for line in data["polylines"]:
        assert line["points"].ndim == 2 and line["points"].shape[1] == 3 and line["rgba"].shape == (4,)
    for box in data["boxes"]:
        assert box["center"].shape == (3,) and box["half_extents"].shape == (3,) and (box["half_extents"] > 0).all()
    assert all(isinstance(s, str) for s in data["text"])
    with pytest.raises(IndexError):
        env.draw_data(3)
    if task != "random_walk":
        assert data["markers"] or data["polylines"]
    env.close()


def test_character_frame_conversions():
    env = MotionVecEnv(3, "target", ToyManifold())
    env.reset(seed=0)
    core = env.core
    core.root_xz = torch.tensor([[1.0, 2.0], [0.0, 0.0], [-3.0, 0.5]])
    core.yaw = torch.tensor([0.0, 0.7, -2.0])
    facing = heading_vector(core.yaw)  # (B, 2)
    ahead = core.root_xz + 2.0 * facing  # 2 m straight ahead of each character
    torch.testing.assert_close(core.to_char(ahead[:, None])[:, 0], torch.tensor([[0.0, 2.0]]).expand(3, 2),
                               atol=1e-6, rtol=0)
    left = torch.stack((facing[:, 1], -facing[:, 0]), dim=1)  # facing turned by +90 deg (toward +x at yaw 0)
    torch.testing.assert_close(core.vectors_to_char(left[:, None])[:, 0], torch.tensor([[1.0, 0.0]]).expand(3, 2),
                               atol=1e-6, rtol=0)
    torch.testing.assert_close(core.facing(), facing)


def test_joystick_commands_standing_and_strafing_and_rewards_going_where_it_is_told():
    env = MotionVecEnv(64, "joystick", ToyManifold(), array_backend="torch", facing_command=True,
                       strafe_probability=0.5, stand_probability=0.25)
    env.reset(seed=0)
    task = env.task
    assert env.single_observation_space.shape[0] == env.core.num_condition_frames * env.core.frame_size + 5
    standing = float((task.command_speed == 0).float().mean())
    offset = torch.rad2deg(torch.acos((task.command_direction * task.command_facing).sum(1).clamp(-1, 1)))
    strafing = float((offset > 30).float().mean())
    assert 0.1 < standing < 0.45 and 0.25 < strafing < 0.7, (standing, strafing)
    # A toy facing +z and walking +z at 1 m/s (action: speed 0.5 * 4 * 0.5 = 1 m/s, no turn).
    env.core.place(yaw=torch.zeros(64))
    walk = torch.zeros(64, 4)
    walk[:, 0] = 0.5
    task.set_command(torch.tensor([0.0, 1.0]), 1.0, facing=torch.tensor([0.0, 1.0]))
    env.step(walk)
    _, straight, _, _, info = env.step(walk)
    assert float(info["heading_error_deg"].max()) < 1 and float(info["travel_error_deg"].max()) < 1
    task.set_command(torch.tensor([1.0, 0.0]), 1.0, facing=torch.tensor([0.0, 1.0]))  # strafe left, face ahead
    _, sideways, _, _, info = env.step(walk)
    assert bool(info["strafing"].all()) and float(info["travel_error_deg"].min()) > 80
    assert float(sideways.mean()) < 0.5 * float(straight.mean()), "going where it faces is not going where told"
    still = MotionVecEnv(8, "joystick", ToyManifold(), stand_probability=1.0)
    still.reset(seed=1)
    assert float(still.task.command_speed.abs().max()) == 0.0


def test_joystick_strafes_are_commanded_no_faster_than_strafe_max_speed():
    env = MotionVecEnv(256, "joystick", ToyManifold(), array_backend="torch", facing_command=True, max_speed=3.5,
                       strafe_probability=0.5, strafe_max_speed=1.2)
    env.reset(seed=0)
    task = env.task
    strafing = (task.command_direction * task.command_facing).sum(1) < 0.99
    assert float(task.command_speed[strafing].max()) <= 1.2 + 1e-6 and float(task.command_speed[~strafing].max()) > 2.5
    with pytest.raises(ValueError, match="strafe_max_speed must be > 0"):
        MotionVecEnv(2, "joystick", ToyManifold(), facing_command=True, strafe_max_speed=0.0)


def test_joystick_standing_still_is_no_escape_from_the_travel_term():
    """Commanded to go, standing still must score no better than walking the wrong way at the right speed (with
    cos(e_travel) alone it escaped the travel term, and PPO learned to stand on Bandai-Namco)."""
    env = MotionVecEnv(2, "joystick", ToyManifold(), array_backend="torch")
    env.reset(seed=0)
    env.core.place(yaw=torch.zeros(2))
    env.task.set_command(torch.tensor([0.0, 1.0]), 1.0)  # go +z at 1 m/s, facing +z
    ahead = torch.zeros(2, 4)
    ahead[:, 0] = 0.5  # 1 m/s straight ahead
    stand = torch.as_tensor(STAND)  # speed 0
    rewards = {}
    for name, action in (("ahead", ahead), ("stand", stand)):
        env.core.place(yaw=torch.zeros(2))
        env.step(action)
        _, reward, _, _, _ = env.step(action)
        rewards[name] = float(reward.mean())
    alignment_standing = float(env.task.travel_alignment.max())
    assert alignment_standing == pytest.approx(0.0, abs=1e-6)
    # Standing: exp(0 + (0 - 1) - 1) = e^-2; walking where told: 1.
    assert rewards["ahead"] == pytest.approx(1.0, abs=0.02)
    assert rewards["stand"] == pytest.approx(math.exp(-2.0), abs=0.02)
