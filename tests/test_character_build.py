"""``python -m characters.build``: a tiny character built end to end and played, its report in a real browser,
resume after an interruption, stages rerun only when their inputs change, and bad inputs answered clearly.

The motion is the DeepMimic walk and turn clips of the pybullet wheel (always installed); the budget is tiny, so the
figures are poor and the build goes on past its failed gates (``--accept-failed-gates``): what is tested is the
pipeline, not the character. The full builds on real mocap are in the README.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from characters.build import BuildConfig, build, main
from characters.bundle import load_character
from vae.checkpoint import load_manifold

REPO = Path(__file__).resolve().parents[1]
TINY = ["--clips", "walk|turn", "--minutes", "1", "--graph-seconds", "30", "--tasks", "target", "--threads", "1",
        "--accept-failed-gates", "--eval-episodes", "8"]


def tiny_config(out: Path, **changes) -> BuildConfig:
    args = {"out": str(out), "clips": "walk|turn", "minutes": 1.0, "graph_seconds": 30.0, "tasks": "target",
            "threads": 1, "accept_failed_gates": True, "eval_episodes": 8, **changes}
    return BuildConfig(**args)


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("build") / "tiny"
    assert main(["pybullet", "--out", str(out), *TINY]) == 0
    return out


def test_a_tiny_build_makes_a_complete_playable_bundle(built):
    character = load_character(built)
    assert character.name == "tiny" and character.tasks == ["target"] and character.vae.is_file()
    assert character.policy("target").is_file() and 0 < character.action_scale < 10
    meta = json.loads((built / "character.json").read_text())
    assert str(built.resolve()) not in (built / "character.json").read_text(), "no machine paths"
    assert meta["skeleton"]["joints"] == 15 and meta["data"]["graph_seconds"] == 30
    assert meta["tasks"]["target"]["evaluation"]["success_rate"] >= 0
    assert (built / "LICENSE.txt").is_file() and (built / "preview.mp4").stat().st_size > 0
    state = json.loads((built / "build" / "state.json").read_text())
    assert all(state["stages"][s]["done"] for s in ("data", "vae", "policies", "export", "preview", "report"))
    log = (built / "build.log").read_text()
    for stage in ("[data 1/6", "[vae 2/6", "[policies 3/6", "[export 4/6", "[preview 5/6", "[report 6/6"):
        assert stage in log
    assert "epoch 1/" in log and "of 01:00" in log, "one progress view: stage, budget, key figure"
    assert "contact channels (left_ankle, right_ankle)" in log or "contact channels (right_ankle, left_ankle)" in log
    assert load_manifold(built / "vae.pt").contacts is not None, "the shipped VAE carries its contact channels"
    assert 0.5 < state["stages"]["vae"]["metrics"]["contact_accuracy"] <= 1
    gates = [g for s in ("data", "vae", "policies") for g in state["stages"][s]["gates"]]
    assert {"motion", "held latents", "success"} <= {g["name"] for g in gates}
    assert any(g["status"] == "fail" for g in gates), "a 1-minute build on 8 s of motion fails its gates"


def test_the_bundle_plays_headless_and_is_evaluated_and_exported_by_name(built, tmp_path):
    done = subprocess.run([sys.executable, str(REPO / "play.py"), "--character", str(built), "--task", "target",
                           "--record", str(tmp_path / "play.mp4"), "--seconds", "1", "--size", "64x64", "--headless"],
                          capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "policy target.pt" in done.stdout or "policies/target.pt" in done.stdout
    done = subprocess.run([sys.executable, "-m", "policies.evaluate", "--character", str(built), "--task", "target",
                           "--episodes", "4", "--json"], capture_output=True, text=True, timeout=300, cwd=REPO)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["task"] == "target" and {"foot_sliding", "data_foot_sliding", "jitter", "data_jitter"} <= set(result)
    assert (built / "policies" / "target.pt.onnx" / "manifest.json").is_file(), "exported where play looks"


def test_the_report_has_every_figure_and_renders_in_a_real_browser(built, tmp_path):
    page = (built / "report.html").read_text()
    for figure in ("fig-vae-training", "fig-vae-held-latent", "fig-motion-quality", "fig-policy-target-curve",
                   "fig-preview"):
        assert f"id='{figure}'" in page, figure
    assert 'id="gates"' in page and "Verdict:" in page and "contact_accuracy" in page and "foot_sliding_ik" in page
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("no Chromium on this machine (apt install chromium)")
    shot = tmp_path / "report.png"
    subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                    "--disable-background-networking", "--disable-component-update", "--disable-sync",
                    f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={shot}", "--window-size=1200,3000",
                    (built / "report.html").resolve().as_uri()], capture_output=True, timeout=120)
    from matplotlib.image import imread

    pixels = imread(shot)[..., :3]  # (H, W, 3) floats
    assert pixels.shape[0] >= 2000 and pixels.std() > 0.1, "a page with text and figures, not a blank screen"
    colourful = (pixels.max(axis=-1) - pixels.min(axis=-1)) > 0.3
    assert colourful.mean() > 0.002, "the figures' coloured lines and bars were drawn"


def skipped(log: str, stage: str) -> bool:
    return any(line.startswith(f"[{stage} ") and "already done" in line for line in log.splitlines())


def test_rerunning_continues_and_only_changed_stages_run_again(built, tmp_path):
    out = tmp_path / "copy"
    shutil.copytree(built, out)
    (out / "build.log").unlink()
    assert main(["pybullet", "--out", str(out), "--name", "tiny", *TINY]) == 0
    log = (out / "build.log").read_text()
    assert all(skipped(log, stage) for stage in ("data", "vae", "policies", "export", "preview")), log
    (out / "build.log").unlink()
    assert main(["pybullet", "--out", str(out), "--name", "tiny", *TINY, "--title", "Renamed"]) == 0
    log = (out / "build.log").read_text()
    assert all(skipped(log, stage) for stage in ("data", "vae", "policies")), log
    assert not skipped(log, "export"), "a changed flag reruns the stage that uses it"
    assert load_character(out).title == "Renamed"


def test_a_stage_that_starts_over_gets_its_budget_back_and_apg_trains_the_policies(built, tmp_path):
    """Time an earlier run spent in a stage that now starts over (a changed flag) is not held against the rerun."""
    out = tmp_path / "apg"
    shutil.copytree(built, out)
    (out / "build.log").unlink()
    state = json.loads((out / "build" / "state.json").read_text())
    state["stages"]["policies"]["seconds"] = 3600.0  # as if the first policies run had taken an hour
    (out / "build" / "state.json").write_text(json.dumps(state))
    assert main(["pybullet", "--out", str(out), "--name", "tiny", *TINY, "--algo", "apg"]) == 0
    log = (out / "build.log").read_text()
    assert all(skipped(log, stage) for stage in ("data", "vae")) and not skipped(log, "policies"), log
    minutes = float(re.search(r"target: APG for ([0-9.]+) min", log).group(1))
    assert minutes > 0.1, "the hour of the discarded policies run was held against the new one"
    assert torch.load(out / "policies" / "target.pt", weights_only=True)["train_args"]["algo"] == "apg"


def test_adding_a_task_trains_that_task_only(built, tmp_path, monkeypatch):
    """--tasks gains the joystick, --policy-minutes keeps the target's minutes: the target policy is kept as it was,
    the joystick trains and is exported; a new foot-slide reward definition trains both again."""
    import envs.foot_slide
    from characters.budget import split

    out = tmp_path / "more_tasks"
    shutil.copytree(built, out)
    (out / "build.log").unlink()
    target = (out / "policies" / "target.pt").read_bytes()
    minutes = split(1.0, ["target"]).policy
    tiny = [a if a != "target" else "target,joystick" for a in TINY]
    assert main(["pybullet", "--out", str(out), "--name", "tiny", *tiny, "--policy-minutes", str(minutes)]) == 0
    log = (out / "build.log").read_text()
    assert "target: already trained (same model and settings): kept" in log, log
    assert re.search(r"joystick: APG for [0-9.]+ min", log) and "target: PPO for" not in log, log
    assert (out / "policies" / "target.pt").read_bytes() == target
    character = load_character(out)
    assert character.policy("joystick").is_file() and character.policy("target").is_file()
    assert "[PASS] policy target: success" in log or "policy target: success" in log  # its gates are shown again
    (out / "build.log").unlink()
    assert main(["pybullet", "--out", str(out), "--name", "tiny", *tiny, "--policy-minutes", str(minutes)]) == 0
    assert skipped((out / "build.log").read_text(), "policies")
    (out / "build.log").unlink()
    monkeypatch.setattr(envs.foot_slide, "FOOT_SLIDE_DEFINITION", "another-definition")
    assert main(["pybullet", "--out", str(out), "--name", "tiny", *tiny, "--policy-minutes", str(minutes)]) == 0
    log = (out / "build.log").read_text()
    assert "target: PPO for" in log and re.search(r"joystick: APG for [0-9.]+ min", log), log


def test_a_build_recorded_by_an_older_version_gets_its_data_figures_measured_again(built, tmp_path):
    out = tmp_path / "older"
    shutil.copytree(built, out)
    (out / "build.log").unlink()
    state = json.loads((out / "build" / "state.json").read_text())
    record = state["stages"]["data"]["metrics"]
    current = dict(record["speeds_mps"])
    del record["figures_version"]
    record["speeds_mps"] = {"walk": 0.1, "run": 0.2, "dash": 0.3}  # what an older definition would have said
    state["stages"]["export"]["fingerprint"] = "older-settings"  # its settings did not name the speeds then
    (out / "build" / "state.json").write_text(json.dumps(state))
    assert main(["pybullet", "--out", str(out), "--name", "tiny", *TINY]) == 0
    log = (out / "build.log").read_text()
    assert all(skipped(log, stage) for stage in ("data", "vae", "policies")) and not skipped(log, "export"), log
    assert load_character(out).meta["speeds_mps"] == current


def test_an_interrupted_build_resumes_where_it_stopped(built, tmp_path, monkeypatch, interrupt_on_call):
    """Ctrl-C in the middle of the policy training; the rerun resumes that training from its checkpoint."""
    import policies.train as training

    out = tmp_path / "interrupted"
    shutil.copytree(built, out, ignore=shutil.ignore_patterns("policies", "ppo_*", "report.html", "preview.mp4"))
    state = json.loads((out / "build" / "state.json").read_text())
    for stage in ("policies", "export", "preview", "report"):
        state["stages"].pop(stage)
    (out / "build" / "state.json").write_text(json.dumps(state))
    real = interrupt_on_call(training.Trainer, "train_update", 3)
    with pytest.raises(KeyboardInterrupt):
        build(["pybullet"], tiny_config(out, name="tiny"))
    checkpoint = out / "build" / "ppo_target" / "checkpoint.pt"
    assert checkpoint.is_file(), "the state after the last finished update was saved"
    monkeypatch.setattr(training.Trainer, "train_update", real)
    build(["pybullet"], tiny_config(out, name="tiny"))
    log = (out / "build.log").read_text()
    assert "resuming the interrupted training" in log and load_character(out).policy("target").is_file()


# ---- bad input --------------------------------------------------------------------------------------------
def write_bvh(path: Path, joints: list[str], parents: list[int], frames: int = 40, frame_time: float = 1 / 30) -> None:
    """A small valid BVH of a character stepping forward (``joints[0]`` is the root, position channels on it)."""
    children = {j: [k for k, p in enumerate(parents) if p == j] for j in range(len(joints))}
    lines = ["HIERARCHY"]

    def emit(j: int, depth: int) -> None:
        pad = "  " * depth
        lines.append(f"{pad}{'ROOT' if j == 0 else 'JOINT'} {joints[j]}")
        lines.append(pad + "{")
        offset = "0 0 0" if j == 0 else ("10 -40 0" if "Left" in joints[j] else "-10 -40 0" if "Right" in joints[j]
                                         else "0 20 0")
        lines.append(f"{pad}  OFFSET {offset}")
        channels = "6 Xposition Yposition Zposition Zrotation Xrotation Yrotation" if j == 0 else \
            "3 Zrotation Xrotation Yrotation"
        lines.append(f"{pad}  CHANNELS {channels}")
        for k in children[j]:
            emit(k, depth + 1)
        if not children[j]:
            lines.extend([f"{pad}  End Site", pad + "  {", f"{pad}    OFFSET 0 -5 0", pad + "  }"])
        lines.append(pad + "}")

    emit(0, 0)
    lines += ["MOTION", f"Frames: {frames}", f"Frame Time: {frame_time}"]
    channels = 6 + 3 * (len(joints) - 1)
    for t in range(frames):
        row = np.zeros(channels)
        row[1], row[2] = 90.0, 3.0 * t  # cm: hips at 0.9 m, walking along +z
        lines.append(" ".join(f"{v:.4f}" for v in row))
    path.write_text("\n".join(lines) + "\n")


BIPED = (["Hips", "LeftUpLeg", "LeftFoot", "RightUpLeg", "RightFoot", "Spine", "Head"], [-1, 0, 1, 0, 3, 0, 5])


def test_a_folder_without_bvh_is_one_clear_line(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert main([str(tmp_path / "empty"), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "no .bvh file in this folder" in err and "Traceback" not in err


def test_two_skeletons_in_one_build_name_both_files(tmp_path, capsys):
    folder = tmp_path / "mixed"
    folder.mkdir()
    write_bvh(folder / "a_biped.bvh", *BIPED)
    write_bvh(folder / "b_other.bvh", ["Root", "LeftLeg", "LeftToe", "RightLeg", "RightToe"], [-1, 0, 1, 0, 3])
    assert main([str(folder), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "a_biped.bvh" in err and "b_other.bvh" in err and "skeleton" in err


def test_ten_seconds_of_mocap_fails_the_data_gate_with_advice(tmp_path, capsys):
    folder = tmp_path / "short"
    folder.mkdir()
    write_bvh(folder / "walk.bvh", *BIPED, frames=300)
    assert main([str(folder), "--out", str(tmp_path / "out"), "--graph-seconds", "0"]) == 2
    err = capsys.readouterr().err
    assert "quality gate" in err and "motion = 10 s" in err and "add more motion" in err


def test_a_skeleton_without_feet_fails_the_feet_gate(tmp_path, capsys):
    folder = tmp_path / "nofeet"
    folder.mkdir()
    write_bvh(folder / "walk.bvh", ["Hips", "LeftLeg", "RightLeg", "Spine"], [-1, 0, 0, 0], frames=200)
    assert main([str(folder), "--out", str(tmp_path / "out"), "--graph-seconds", "0", "--accept-failed-gates",
                 "--minutes", "0"]) == 2
    err = capsys.readouterr().err
    assert "--minutes 0" in err  # the budget is checked before any work...
    assert main([str(folder), "--out", str(tmp_path / "out"), "--graph-seconds", "0"]) == 2
    err = capsys.readouterr().err
    assert "feet = none" in err and "name the feet" in err


def test_an_out_folder_of_other_inputs_is_refused_unless_forced(built, tmp_path, capsys):
    folder = tmp_path / "walks"
    folder.mkdir()
    write_bvh(folder / "walk.bvh", *BIPED, frames=300)
    out = tmp_path / "taken"
    shutil.copytree(built, out)
    assert main([str(folder), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "built from other inputs" in err and "--force" in err
    assert main([str(folder), "--out", str(out), "--force", "--graph-seconds", "0"]) == 2  # goes on: the data gate
    assert "motion = 10 s" in capsys.readouterr().err


def test_build_help_lists_every_flag():
    done = subprocess.run([sys.executable, "-m", "characters.build", "--help"], capture_output=True, text=True,
                          cwd=REPO, env={**os.environ, "COLUMNS": "200"})
    for flag in ("--out", "--minutes", "--tasks", "--clips", "--device", "--resume", "--force",
                 "--accept-failed-gates"):
        assert flag in done.stdout
