"""BVH files that parse but cannot be right: implausible frame rates, duplicate joint names, absurd or
non-finite OFFSETs; and an ``--out`` that cannot be written. Each is refused with one line naming the file
and line (or the flag), before anything expensive happens."""

from __future__ import annotations

import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

from mocap.bvh import BVHError, import_bvh, read_bvh
from mocap.prepare import PrepareError, main, prepare

REPO = Path(__file__).resolve().parents[1]

# Line numbers (1-based) of the template below, used in the expected messages.
HIPS_LINE, HIPS_OFFSET_LINE = 2, 4
LEFT_LINE, LEFT_OFFSET_LINE, LEFT_END_LINE = 6, 8, 12
RIGHT_LINE, RIGHT_OFFSET_LINE = 15, 17
HEAD_LINE, HEAD_OFFSET_LINE = 24, 26
FRAME_TIME_LINE = 36


def bvh_text(n: int = 20, frame_time: str = "0.0333333", names=("LeftLeg", "RightLeg", "Head"),
             offsets=("10 -50 0", "-10 -50 0", "0 60 0"), left_end="0 -40 0", head_channels: str = "") -> str:
    """A 4-joint character in centimetres walking along +z at 1 m/s; the arguments break one thing at a time."""
    head_channels = head_channels or "CHANNELS 3 Zrotation Xrotation Yrotation"
    extra = 3 if head_channels.startswith("CHANNELS 6") else 0
    text = f"""\
HIERARCHY
ROOT Hips
{{
  OFFSET 0 0 0
  CHANNELS 6 Xposition Yposition Zposition Zrotation Xrotation Yrotation
  JOINT {names[0]}
  {{
    OFFSET {offsets[0]}
    CHANNELS 3 Zrotation Xrotation Yrotation
    End Site
    {{
      OFFSET {left_end}
    }}
  }}
  JOINT {names[1]}
  {{
    OFFSET {offsets[1]}
    CHANNELS 3 Zrotation Xrotation Yrotation
    End Site
    {{
      OFFSET 0 -40 0
    }}
  }}
  JOINT {names[2]}
  {{
    OFFSET {offsets[2]}
    {head_channels}
    End Site
    {{
      OFFSET 0 20 0
    }}
  }}
}}
MOTION
Frames: {n}
Frame Time: {frame_time}
"""
    rows = []
    for t in range(n):
        swing = 20.0 * np.sin(t / 5.0)
        head = [0.0, 60.0, 0.0][:extra]
        row = [0.0, 100.0, 100.0 * t / 30.0, 0, 0, 0, 0, swing, 0, 0, -swing, 0, *head, 0, 0, 0]
        rows.append(" ".join(f"{x:.4f}" for x in row))
    return text + "\n".join(rows) + "\n"


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text)
    return path


def error_of(path: Path, **kwargs) -> str:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no numpy overflow warning on the way to the error
        with pytest.raises(BVHError) as info:
            import_bvh(path, **kwargs)
    return str(info.value)


def test_template_reads(tmp_path):
    assert bvh_text().splitlines()[FRAME_TIME_LINE - 1].startswith("Frame Time:")
    motion = read_bvh(write(tmp_path, "good.bvh", bvh_text()))
    assert motion.num_frames == 20 and motion.fps == 30.0 and motion.skeleton.num_joints == 4


# ---- Frame Time ------------------------------------------------------------------------------------------
def test_frame_time_in_milliseconds_is_refused_with_the_fix(tmp_path):
    msg = error_of(write(tmp_path, "ms.bvh", bvh_text(frame_time="33.3333")))
    assert f"ms.bvh:{FRAME_TIME_LINE}:" in msg and "'Frame Time: 33.3333'" in msg
    assert "0.03 frames per second" in msg and "1-1000 fps" in msg
    assert "--frame-time 0.0333333" in msg  # read as milliseconds it is 30 fps: the override to pass


@pytest.mark.parametrize("value", ["10000", "1e300", "1e-300", "0.0005", "inf"])
def test_implausible_frame_times_are_refused_before_any_work(tmp_path, value):
    msg = error_of(write(tmp_path, "rate.bvh", bvh_text(frame_time=value)))
    assert f"rate.bvh:{FRAME_TIME_LINE}:" in msg and f"'Frame Time: {value}'" in msg and "--frame-time" in msg


def test_frame_rate_limits_are_inclusive(tmp_path):
    assert read_bvh(write(tmp_path, "fast.bvh", bvh_text(frame_time="0.001"))).fps == 1000.0
    assert read_bvh(write(tmp_path, "slow.bvh", bvh_text(frame_time="1"))).fps == 1.0


def test_frame_time_override_replaces_the_files_value(tmp_path):
    path = write(tmp_path, "ms.bvh", bvh_text(n=30, frame_time="33.3333"))
    assert read_bvh(path, frame_time=1 / 30).fps == 30.0
    out = tmp_path / "d.npz"
    assert main([str(path), "--out", str(out), "--no-progress", "--frame-time", "0.0333333"]) == 0
    data = prepare([str(path)], str(out), progress=False, frame_time=0.0333333)
    assert data.fps == 30.0 and data.num_frames == 30  # 30 source frames at 30 fps, not 30,000


@pytest.mark.parametrize("value", ["0", "-0.03", "33.3333", "nan"])
def test_bad_frame_time_flag(tmp_path, capsys, value):
    path = write(tmp_path, "good.bvh", bvh_text())
    assert main([str(path), "--out", str(tmp_path / "d.npz"), "--no-progress", "--frame-time", value]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--frame-time" in err[0] and "seconds per frame" in err[0]


# ---- joint names -----------------------------------------------------------------------------------------
def test_duplicate_joint_names_are_refused_naming_both_lines(tmp_path):
    msg = error_of(write(tmp_path, "dup.bvh", bvh_text(names=("Leg", "Leg", "Head"))))
    assert f"dup.bvh:{RIGHT_LINE}:" in msg and "'Leg'" in msg and f"lines {LEFT_LINE} and {RIGHT_LINE}" in msg


def test_a_duplicate_name_file_no_longer_makes_the_good_file_after_it_fail(tmp_path, capsys):
    folder = tmp_path / "mixed"
    folder.mkdir()
    write(folder, "a_dup.bvh", bvh_text(names=("Leg", "Leg", "Head")))
    write(folder, "b_good.bvh", bvh_text())
    with pytest.raises(PrepareError, match="a_dup.bvh"):
        prepare([str(folder)], str(tmp_path / "d.npz"), progress=False)
    data = prepare([str(folder)], str(tmp_path / "d.npz"), progress=False, skip_bad=True)
    assert data.clip_names == ["b_good"]
    assert "a_dup.bvh" in capsys.readouterr().err


# ---- OFFSETs ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
def test_non_finite_offsets_are_refused(tmp_path, value):
    # A joint without position channels, one with them (the channels replace its offset) and an End Site.
    cases = [
        (bvh_text(offsets=("10 -50 0", f"-10 {value} 0", "0 60 0")), RIGHT_OFFSET_LINE, "joint 'RightLeg'"),
        (bvh_text(offsets=("10 -50 0", "-10 -50 0", f"0 {value} 0"),
                  head_channels="CHANNELS 6 Xposition Yposition Zposition Zrotation Xrotation Yrotation"),
         HEAD_OFFSET_LINE, "joint 'Head'"),
        (bvh_text(left_end=f"0 {value} 0"), LEFT_END_LINE, "End Site OFFSET of joint 'LeftLeg'"),
    ]
    for k, (text, line, what) in enumerate(cases):
        msg = error_of(write(tmp_path, f"off{k}.bvh", text))
        assert f"off{k}.bvh:{line}:" in msg and what in msg and "not a finite number" in msg


@pytest.mark.parametrize("value", ["1e28", "-1e200"])
@pytest.mark.parametrize("channels", ["", "CHANNELS 6 Xposition Yposition Zposition Zrotation Xrotation Yrotation"])
def test_absurd_offsets_are_refused(tmp_path, channels, value):
    text = bvh_text(offsets=("10 -50 0", "-10 -50 0", f"0 {value} 0"), head_channels=channels)
    msg = error_of(write(tmp_path, "huge.bvh", text))
    assert f"huge.bvh:{HEAD_OFFSET_LINE}:" in msg and "OFFSET of joint 'Head'" in msg and "median bone" in msg


def test_offsets_beyond_ten_kilometres_are_refused(tmp_path):
    path = write(tmp_path, "km.bvh", bvh_text())
    msg = error_of(path, scale=1000.0)  # a 60-unit neck at 1 km per unit
    assert f"km.bvh:{HEAD_OFFSET_LINE}:" in msg and "--scale" in msg and "10000 m" in msg
    assert import_bvh(path, scale=0.01).unit == "given"


# ---- --out -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["folder", "under_a_file", "suffix"])
def test_unwritable_out_fails_before_reading_any_bvh(tmp_path, capsys, kind):
    bad = write(tmp_path, "cut.bvh", bvh_text(frame_time="33.3333"))  # reading it would fail with another error
    (tmp_path / "a_file").write_text("not a folder")
    (tmp_path / "folder").mkdir()
    out = {"folder": tmp_path / "folder", "under_a_file": tmp_path / "a_file" / "d.npz",
           "suffix": tmp_path / "d.txt"}[kind]
    with pytest.raises(PrepareError, match="--out") as info:
        prepare([str(bad)], str(out), progress=False)
    assert "Frame Time" not in str(info.value)
    assert main([str(bad), "--out", str(out), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: --out") and "Frame Time" not in err[0]


def test_cli_reports_bad_input_in_one_line_without_traceback(tmp_path):
    bad = write(tmp_path, "dup.bvh", bvh_text(names=("Leg", "Leg", "Head")))
    proc = subprocess.run(
        [sys.executable, "-m", "mocap.prepare", str(bad), "--out", str(tmp_path / "d.npz"), "--no-progress"],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and f"dup.bvh:{RIGHT_LINE}:" in lines[0]
