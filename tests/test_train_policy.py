"""train_policy.py: a real (tiny) training run, its files, exact resume after Ctrl-C, and that it learns."""

from __future__ import annotations

import csv
import dataclasses
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
from policies.train_args import TrainArgs, build_parser

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


def test_resume_after_ctrl_c_equals_an_uninterrupted_run(tmp_path, monkeypatch):
    whole = train(tiny_args(tmp_path / "a"), quiet=True)
    assert whole["update"] == 4
    calls = {"n": 0}
    original = Trainer.collect

    def interrupted(self):
        calls["n"] += 1
        if calls["n"] == 3:  # Ctrl-C in the middle of the third rollout
            raise KeyboardInterrupt
        return original(self)

    monkeypatch.setattr(Trainer, "collect", interrupted)
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
