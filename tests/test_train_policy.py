"""train_policy.py: a real (tiny) training run, its files, exact resume after Ctrl-C, and that it learns."""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from common.dataclass_cli import field_docs
from envs.toy_manifold import ToyManifold
from policies import evaluate as evaluation
from policies import load_policy
from policies.train import Trainer, main, train
from policies.train_args import TrainArgs, build_parser, parse_args

REPO = Path(__file__).resolve().parents[1]
TINY = ["--num-envs", "16", "--rollout-steps", "16", "--minibatch-size", "64", "--epochs", "2", "--hidden-sizes", "32",
        "--critic-hidden-sizes", "32", "--threads", "1", "--no-progress", "--no-tensorboard", "--eval-every", "2",
        "--eval-envs", "4", "--eval-seconds", "2", "--checkpoint-every", "1"]


def tiny_args(tmp_path, **changes) -> TrainArgs:
    args = TrainArgs(task="target", vae="toy", num_envs=16, rollout_steps=16, minibatch_size=64, epochs=2,
                     hidden_sizes=(32,), critic_hidden_sizes=(32,), threads=1, progress=False, tensorboard=False,
                     eval_every=2, eval_envs=4, eval_seconds=2.0, checkpoint_every=1, steps=16 * 16 * 4,
                     out=str(tmp_path / "policy.pt"), run_dir=str(tmp_path / "run"))
    return dataclasses.replace(args, **changes)


def test_cli_trains_a_couple_of_updates_and_writes_a_loadable_policy(tmp_path):
    out, run_dir = tmp_path / "target.pt", tmp_path / "run"
    cmd = [sys.executable, str(REPO / "train_policy.py"), "--task", "target", "--vae", "toy", "--steps", "512",
           "--out", str(out), "--run-dir", str(run_dir), "--seed", "3", *TINY[:-2], "--tensorboard"]
    done = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "TrainArgs:" in done.stdout and "num_envs" in done.stdout  # the arguments are printed at the start
    policy = load_policy(out)
    assert policy.task == "target" and policy.obs_size == 65 and policy.action_size == 4
    saved = torch.load(out, weights_only=True)
    assert saved["train_args"]["seed"] == 3 and saved["stats"]["global_step"] == 512
    rows = list(csv.DictReader(open(run_dir / "progress.csv")))
    assert len(rows) == 2 and {"env_steps_per_s", "distance_to_target", "eval_success_rate"} <= set(rows[-1])
    assert (run_dir / "checkpoint.pt").is_file() and any((run_dir / "tb").iterdir())


def test_bad_arguments_get_clear_errors(tmp_path, capsys):
    out = ["--out", str(tmp_path / "p.pt"), "--run-dir", str(tmp_path / "run")]
    assert main(["--vae", "toy", "--num-envs", "0", *out]) == 2
    assert "--num-envs 0: must be at least 1" in capsys.readouterr().err
    assert main(["--vae", "toy", "--env-options", "{oops", *out]) == 2
    assert "--env-options is not valid JSON" in capsys.readouterr().err
    assert main(["--vae", "toy", "--env-options", '{"no_such_option": 1}', *out]) == 2
    assert "no_such_option" in capsys.readouterr().err
    assert main(["--vae", str(tmp_path / "missing_vae.pt"), *out]) == 2
    assert "missing_vae.pt" in capsys.readouterr().err
    with pytest.raises(FileNotFoundError, match="no training checkpoint"):
        train(tiny_args(tmp_path, resume=True), quiet=True)


def test_every_training_argument_is_documented_on_the_command_line():
    docs = field_docs(TrainArgs)
    assert set(docs) == {f.name for f in dataclasses.fields(TrainArgs)}
    help_text = " ".join(build_parser().format_help().split())
    assert "Characters simulated together" in help_text and "--no-normalize-reward" in help_text


def test_resume_after_ctrl_c_equals_an_uninterrupted_run(tmp_path, monkeypatch, interrupt_on_call):
    whole = train(tiny_args(tmp_path / "a"), quiet=True)
    assert whole["update"] == 4
    original = interrupt_on_call(Trainer, "collect", 3)  # Ctrl-C in the middle of the third rollout
    with pytest.raises(KeyboardInterrupt):
        train(tiny_args(tmp_path / "b"), quiet=True)
    state = torch.load(tmp_path / "b" / "run" / "checkpoint.pt", weights_only=True)
    assert state["update"] == 2  # the state after the last finished update
    monkeypatch.setattr(Trainer, "collect", original)
    resumed = train(tiny_args(tmp_path / "b", resume=True), quiet=True)
    assert resumed["update"] == 4
    a = torch.load(tmp_path / "a" / "policy.pt", weights_only=True)["state_dict"]
    b = torch.load(tmp_path / "b" / "policy.pt", weights_only=True)["state_dict"]
    for key in a:
        assert torch.allclose(a[key], b[key], atol=1e-6), key
    rows = list(csv.DictReader(open(tmp_path / "b" / "run" / "progress.csv")))
    assert [int(r["update"]) for r in rows] == [1, 2, 3, 4]


def test_init_from_starts_a_new_run_from_a_policy_file_and_refuses_one_that_does_not_fit(tmp_path, capsys):
    first = tiny_args(tmp_path / "a")
    train(first, quiet=True)
    start = load_policy(first.out)
    trainer = Trainer(tiny_args(tmp_path / "b", init_from=first.out))
    trainer.start()
    weights = trainer.policy.state_dict()
    for key, value in start.state_dict().items():
        if not key.startswith("obs_rms"):
            assert torch.equal(weights[key], value), key
    assert float(trainer.policy.obs_rms.count) > float(start.obs_rms.count)  # the file's normaliser goes on
    trainer.env.close()
    summary = train(tiny_args(tmp_path / "b", init_from=first.out), quiet=True)
    assert summary["update"] == 4 and summary["global_step"] == 16 * 16 * 4  # its own schedule, from update 0
    with pytest.raises(ValueError, match="'target' task; this run trains 'joystick'"):
        train(tiny_args(tmp_path / "c", task="joystick", init_from=first.out), quiet=True)
    with pytest.raises(ValueError, match="hidden_sizes \\[32\\] \\(this run: \\[64\\]; see --hidden-sizes\\)"):
        train(tiny_args(tmp_path / "c", hidden_sizes=(64,), init_from=first.out), quiet=True)
    out = ["--vae", "toy", "--out", str(tmp_path / "c.pt"), "--run-dir", str(tmp_path / "c")]
    assert main([*out, "--init-from", first.out, "--resume"]) == 2
    assert "--resume and --init-from exclude each other" in capsys.readouterr().err
    assert main([*out, "--init-from", str(tmp_path / "missing.pt")]) == 2
    assert "missing.pt" in capsys.readouterr().err


def test_env_schedule_moves_a_task_option_with_training_and_refuses_what_it_cannot_move(tmp_path, capsys):
    """The maze's collision penalty from 1 to 30 over the run: set before each update at the fraction of --steps
    done, logged per update; the task reads it (a collision costs what the schedule says at that update)."""
    schedule = json.dumps({"collision_penalty": [[0.0, 1.0], [1.0, 30.0]]})
    args = tiny_args(tmp_path, task="maze", env_schedule=schedule, eval_every=0)
    trainer = Trainer(args)
    trainer.start()
    assert trainer.apply_env_schedule() == {"env_collision_penalty": 1.0} and trainer.env.task.collision_penalty == 1.0
    trainer.global_step = args.steps // 2
    assert trainer.apply_env_schedule() == {"env_collision_penalty": 15.5}
    assert trainer.env.task.collision_penalty == 15.5
    trainer.env.close()
    train(tiny_args(tmp_path, task="maze", env_schedule=schedule, eval_every=0), quiet=True)
    rows = list(csv.DictReader(open(tmp_path / "run" / "progress.csv")))
    assert [float(r["env_collision_penalty"]) for r in rows] == [1.0, 8.25, 15.5, 22.75]
    assert json.loads(load_policy(args.out).train_args["env_schedule"]) == json.loads(schedule)  # recorded
    with pytest.raises(ValueError, match="task maze has no numeric option of that name .*collision_penalty"):
        train(tiny_args(tmp_path / "x", task="maze", env_schedule='{"speed": [[0, 1]]}'), quiet=True)
    for bad, said in [('{"collision_penalty": [[0.5, 1], [0.2, 3]]}', "must lie in \\[0, 1\\] and increase"),
                      ('{"collision_penalty": 3}', "list of \\[fraction of --steps, value\\] pairs"),
                      ('{"collision_penalty": [[0, 1]]', "not valid JSON")]:
        with pytest.raises(ValueError, match=said):
            tiny_args(tmp_path, task="maze", env_schedule=bad).validate()
    both = tiny_args(tmp_path, task="maze", env_schedule=schedule, env_options='{"collision_penalty": 3}')
    with pytest.raises(ValueError, match="in --env-options too"):
        both.validate()
    out = ["--vae", "toy", "--task", "maze", "--out", str(tmp_path / "c.pt"), "--run-dir", str(tmp_path / "c")]
    assert main([*out, "--env-schedule", '{"goal_bonus": [[2, 1]]}']) == 2
    assert "--env-schedule 'goal_bonus'" in capsys.readouterr().err


def test_short_training_on_the_toy_target_beats_random(tmp_path):
    args = tiny_args(tmp_path, num_envs=128, rollout_steps=16, minibatch_size=512, epochs=4, hidden_sizes=(64, 64),
                     critic_hidden_sizes=(64, 64), learning_rate=1e-3, steps=128 * 16 * 30, eval_every=0,
                     checkpoint_every=100)
    train(args, quiet=True)
    policy = load_policy(args.out)
    options = {"max_episode_steps": 300}

    def score(make):
        return evaluation.evaluate(make, task="target", vae=ToyManifold(), episodes=32, seed=5, env_options=options)

    trained = score(lambda env: evaluation.PolicyController(policy))
    rand = score(lambda env: evaluation.PriorController(env, seed=5))
    assert trained["success_rate"] > 0.8 and trained["success_rate"] > rand["success_rate"] + 0.5


def test_discrete_policy_trains_on_a_vq_manifold(tmp_path, small_vq_manifold):
    manifold = small_vq_manifold()
    args = tiny_args(tmp_path, task="joystick", vae=None, steps=16 * 16 * 2, eval_every=1)
    summary = train(args, manifold=manifold, quiet=True)
    assert summary["update"] == 2 and "eval_heading_error_deg" in summary
    policy = load_policy(args.out)
    assert policy.discrete and policy.num_actions == 16
    codes = policy(torch.randn(3, policy.obs_size))
    assert codes.dtype == torch.int64 and codes.shape == (3,)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_training_runs_on_cuda(tmp_path):
    summary = train(tiny_args(tmp_path, device="cuda", steps=512), quiet=True)
    assert summary["update"] == 2
    assert load_policy(tmp_path / "policy.pt", device="cuda").actor[0].weight.is_cuda


def test_out_and_run_dir_are_checked_before_any_training(tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    assert main(["--vae", "toy", "--out", str(tmp_path), "--run-dir", str(tmp_path / "run")]) == 2
    assert "--out" in capsys.readouterr().err
    assert main(["--vae", "toy", "--out", str(tmp_path / "file" / "p.pt"), "--run-dir", str(tmp_path / "r")]) == 2
    assert "is a file, not a folder" in capsys.readouterr().err
    assert not (tmp_path / "r").exists(), "refused before any work"


def test_a_non_finite_minibatch_is_skipped_and_counted(tmp_path, monkeypatch, capsys):
    import policies.train as training

    real_gae = training.compute_gae

    def poisoned(*a, **k):  # one character's advantages become NaN: its minibatches must not step
        adv, ret = real_gae(*a, **k)
        adv[:, 0] = float("nan")
        return adv, ret

    monkeypatch.setattr(training, "compute_gae", poisoned)
    trainer = Trainer(tiny_args(tmp_path, eval_every=0, steps=16 * 16 * 2))
    trainer.start()
    metrics = trainer.train_update()
    assert metrics["ppo_skipped"] > 0 and metrics["bad_updates"] == 0
    assert all(bool(torch.isfinite(p).all()) for p in trainer.policy.parameters())
    assert "minibatch(es) with a non-finite loss or gradient skipped" in capsys.readouterr().err


def test_updates_that_leave_nan_weights_are_undone_then_training_stops_with_a_diagnosis(tmp_path, monkeypatch):
    import policies.train as training

    real_update = training.ppo_update

    def corrupting(policy, *a, **k):
        stats = real_update(policy, *a, **k)
        with torch.no_grad():
            next(policy.parameters()).fill_(float("nan"))
        return stats

    monkeypatch.setattr(training, "ppo_update", corrupting)
    args = tiny_args(tmp_path, eval_every=0, steps=16 * 16 * 10)
    trainer = Trainer(args)
    trainer.start()
    good = {k: v.clone() for k, v in trainer.policy.state_dict().items()}
    trainer.train_update()
    assert trainer.bad_updates == 1
    assert all(torch.equal(v, good[k]) for k, v in trainer.policy.state_dict().items() if k != "obs_rms.count")
    with pytest.raises(training.TrainingDiverged, match=r"3 updates in a row.*most extreme pose feature.*frame 1/1"):
        for _ in range(3):
            trainer.train_update()
    assert load_policy(args.out) is not None, "the last good state was saved"


# ---- torchrun: DistributedDataParallel on 2 CPU processes (gloo) ------------------------------------------------
DDP_ENVS, DDP_ROLLOUT, DDP_UPDATES = 64, 16, 20
DDP_ARGS = ["--task", "target", "--vae", "toy", "--num-envs", str(DDP_ENVS), "--rollout-steps", str(DDP_ROLLOUT),
            "--minibatch-size", "256", "--epochs", "4", "--hidden-sizes", "64", "64", "--critic-hidden-sizes", "64",
            "64", "--learning-rate", "1e-3", "--steps", str(2 * DDP_ENVS * DDP_ROLLOUT * DDP_UPDATES), "--eval-every",
            "0", "--checkpoint-every", "100", "--threads", "1", "--no-progress", "--no-tensorboard", "--env-options",
            '{"max_episode_steps": 64}']  # short episodes: every rollout ends some, so the return is measured each update


def torchrun(tmp_path, name: str, *extra: str) -> subprocess.CompletedProcess:
    """train_policy.py under `torchrun --nproc_per_node 2` (one torch thread per process), in ``tmp_path/name``."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           str(REPO / "train_policy.py"), *DDP_ARGS, "--out", str(tmp_path / f"{name}.pt"), "--run-dir",
           str(tmp_path / name), *extra]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    done = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=180, env=env)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done


@pytest.fixture(scope="module")
def ddp_run(tmp_path_factory):
    """An uninterrupted 2-process run of DDP_UPDATES updates: (folder, its stdout)."""
    tmp_path = tmp_path_factory.mktemp("ddp")
    return tmp_path, torchrun(tmp_path, "whole").stdout


def test_torchrun_two_processes_learn_and_record_the_samples_per_update(ddp_run):
    tmp_path, stdout = ddp_run
    rows = list(csv.DictReader(open(tmp_path / "whole" / "progress.csv")))
    assert len(rows) == DDP_UPDATES and stdout.count("TrainArgs:") == 1, "rank 0 alone logs"
    for i, row in enumerate(rows, start=1):
        processes, per_process = int(row["processes"]), int(row["envs_per_process"])
        assert (processes, per_process) == (2, DDP_ENVS)
        assert int(row["samples_per_update"]) == processes * per_process * DDP_ROLLOUT
        assert int(row["global_step"]) == i * processes * per_process * DDP_ROLLOUT
    returns = [float(r["episode_return"]) for r in rows]
    first, last = sum(returns[:3]) / 3, sum(returns[-3:]) / 3
    assert last > first + 0.5, returns  # the toy target task: return -0.0 -> ~1.7 in 20 updates
    state = torch.load(tmp_path / "whole" / "checkpoint.pt", weights_only=True)
    assert state["processes"] == 2 and len(state["ranks"]) == 2
    first_targets = [r["env"]["task"]["target"] for r in state["ranks"]]
    assert not torch.equal(*first_targets), "each rank steps its own characters with its own seed"


def test_torchrun_resume_continues_exactly_and_needs_the_same_processes(ddp_run, tmp_path):
    whole, _ = ddp_run
    torchrun(tmp_path, "cut", "--stop-after-update", str(DDP_UPDATES // 2))
    args = parse_args([*DDP_ARGS, "--out", str(tmp_path / "cut.pt"), "--run-dir", str(tmp_path / "cut"), "--resume"])
    with pytest.raises(ValueError, match=r"written by 2 process\(es\).*nproc_per_node 2"):
        train(args, quiet=True)
    torchrun(tmp_path, "cut", "--resume")
    a = torch.load(whole / "whole.pt", weights_only=True)["state_dict"]
    b = torch.load(tmp_path / "cut.pt", weights_only=True)["state_dict"]
    for key in a:
        assert torch.equal(a[key], b[key]), key


# ---- benchmarks/gpu_check.sh: what can be checked without a GPU -------------------------------------------------
GPU_CHECK = REPO / "benchmarks" / "gpu_check.sh"


def test_gpu_check_parses_and_its_commands_take_their_flags():
    assert subprocess.run(["bash", "-n", str(GPU_CHECK)]).returncode == 0
    text = GPU_CHECK.read_text().replace("\\\n", " ")  # one line per command
    commands = re.findall(r'"\$PY" (-m [\w.]+|play\.py)([^\n>]*)', text)
    assert {c for c, _ in commands} >= {"-m benchmarks.bench_env", "-m benchmarks.bench_ppo",
                                        "-m benchmarks.bench_gpu_inference", "play.py"}
    for command, rest in commands:
        flags = set(re.findall(r"(--[a-z][a-z-]*)", rest))
        if not flags or command == "-m pytest":
            continue
        done = subprocess.run([sys.executable, *command.split(), "--help"], cwd=REPO, capture_output=True, text=True,
                              timeout=120)
        assert done.returncode == 0, done.stderr[-2000:]
        assert not flags - set(re.findall(r"(--[a-z][a-z-]*)", done.stdout)), (command, flags)


def test_gpu_check_stops_at_once_with_a_clear_message_without_a_gpu():
    hidden = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}  # no GPU for torch, on any machine
    done = subprocess.run(["bash", str(GPU_CHECK)], cwd=REPO, capture_output=True, text=True, timeout=120, env=hidden)
    assert done.returncode == 2 and "no CUDA device" in done.stderr and "CUDA build of torch" in done.stderr
