"""Bad input gives a clear error naming the file and line (or the clip and flag), never a numpy traceback,
and an error never leaves a half-written or changed dataset behind."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mocap import dataset as dataset_module
from mocap.bvh import BVHError, read_bvh
from mocap.prepare import PrepareError, main, prepare

REPO = Path(__file__).resolve().parents[1]

HEADER = """\
HIERARCHY
ROOT Hips
{
  OFFSET 0 0 0
  CHANNELS 6 Xposition Yposition Zposition Zrotation Xrotation Yrotation
  JOINT LeftLeg
  {
    OFFSET 10 -50 0
    CHANNELS 3 Zrotation Xrotation Yrotation
    End Site
    {
      OFFSET 0 -40 0
    }
  }
  JOINT RightLeg
  {
    OFFSET -10 -50 0
    CHANNELS 3 Zrotation Xrotation Yrotation
    End Site
    {
      OFFSET 0 -40 0
    }
  }
  JOINT Head
  {
    OFFSET 0 60 0
    CHANNELS 3 Zrotation Xrotation Yrotation
    End Site
    {
      OFFSET 0 20 0
    }
  }
}
MOTION
"""
MOTION_LINE = HEADER.splitlines().index("MOTION") + 1  # 1-based line numbers below
FIRST_DATA_LINE = MOTION_LINE + 3
CHANNELS = 15


def frame_lines(n: int) -> list[str]:
    """A character walking forward along +z at 1 m/s (cm, 30 fps), legs swinging."""
    rows = []
    for t in range(n):
        swing = 20.0 * np.sin(t / 5.0)
        row = [0.0, 100.0, 100.0 * t / 30.0, 0, 0, 0, 0, swing, 0, 0, -swing, 0, 0, 0, 0]
        rows.append(" ".join(f"{x:.4f}" for x in row))
    return rows


def bvh_text(n: int = 20, frames_header: int | None = None, lines: list[str] | None = None) -> str:
    lines = frame_lines(n) if lines is None else lines
    count = n if frames_header is None else frames_header
    return HEADER + f"Frames: {count}\nFrame Time: 0.0333333\n" + "\n".join(lines) + "\n"


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text)
    return path


def error_of(path: Path) -> str:
    with pytest.raises(BVHError) as info:
        read_bvh(path)
    return str(info.value)


def test_good_file_reads(tmp_path):
    motion = read_bvh(write(tmp_path, "good.bvh", bvh_text()))
    assert motion.num_frames == 20 and motion.skeleton.num_joints == 4


def test_truncated_motion_block(tmp_path):
    path = write(tmp_path, "cut.bvh", bvh_text(n=10, frames_header=12))
    msg = error_of(path)
    assert f"cut.bvh:{FIRST_DATA_LINE + 9}:" in msg and "truncated" in msg and "Frames: 12" in msg


def test_frame_with_wrong_number_of_values(tmp_path):
    lines = frame_lines(20)
    lines[4] = " ".join(lines[4].split()[:-1])
    msg = error_of(write(tmp_path, "short_row.bvh", bvh_text(lines=lines)))
    assert f"short_row.bvh:{FIRST_DATA_LINE + 4}:" in msg
    assert f"has {CHANNELS - 1} values" in msg and f"{CHANNELS} channels" in msg


def test_non_numeric_token(tmp_path):
    lines = frame_lines(20)
    lines[6] = lines[6].replace("100.0000", "1OO.0000", 1)
    msg = error_of(write(tmp_path, "letters.bvh", bvh_text(lines=lines)))
    assert f"letters.bvh:{FIRST_DATA_LINE + 6}:" in msg and "'1OO.0000'" in msg and "not a number" in msg


def test_nan_value(tmp_path):
    lines = frame_lines(20)
    lines[3] = lines[3].replace("100.0000", "nan", 1)
    msg = error_of(write(tmp_path, "nan.bvh", bvh_text(lines=lines)))
    assert f"nan.bvh:{FIRST_DATA_LINE + 3}:" in msg and "NaN" in msg


def test_unknown_channel(tmp_path):
    text = bvh_text().replace("CHANNELS 3 Zrotation Xrotation Yrotation", "CHANNELS 3 Zrotation Wrotation Yrotation", 1)
    msg = error_of(write(tmp_path, "channel.bvh", text))
    assert "channel.bvh:9:" in msg and "'Wrotation'" in msg and "Xrotation" in msg


def test_missing_hierarchy(tmp_path):
    msg = error_of(write(tmp_path, "nohier.bvh", bvh_text().replace("HIERARCHY\n", "", 1)))
    assert "nohier.bvh:1:" in msg and "HIERARCHY" in msg


def test_missing_motion(tmp_path):
    text = HEADER.split("MOTION")[0]
    msg = error_of(write(tmp_path, "nomotion.bvh", text))
    assert f"nomotion.bvh:{MOTION_LINE - 1}:" in msg and "MOTION" in msg


def test_missing_frame_time(tmp_path):
    text = bvh_text().replace("Frame Time: 0.0333333\n", "")
    msg = error_of(write(tmp_path, "notime.bvh", text))
    assert f"notime.bvh:{MOTION_LINE + 2}:" in msg and "Frame Time" in msg


def test_cli_exits_2_with_one_line_and_no_traceback(tmp_path):
    bad = write(tmp_path, "cut.bvh", bvh_text(n=10, frames_header=12))
    out = tmp_path / "data.npz"
    proc = subprocess.run(
        [sys.executable, "-m", "mocap.prepare", str(bad), "--out", str(out), "--no-progress"],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and f"cut.bvh:{FIRST_DATA_LINE + 9}:" in lines[0]
    assert not out.exists()


def test_empty_folder(tmp_path, capsys):
    empty = tmp_path / "nothing_here"
    empty.mkdir()
    with pytest.raises(PrepareError, match="nothing_here"):
        prepare([str(empty)], str(tmp_path / "d.npz"), progress=False)
    assert main([str(empty), "--out", str(tmp_path / "d.npz"), "--no-progress"]) == 2
    assert "nothing_here" in capsys.readouterr().err


def test_too_short_clip(tmp_path):
    path = write(tmp_path, "tiny.bvh", bvh_text(n=5))
    with pytest.raises(PrepareError) as info:
        prepare([str(path)], str(tmp_path / "d.npz"), progress=False)
    msg = str(info.value)
    assert "'tiny'" in msg and "5 frames" in msg and "--skip-bad" in msg and "--min-frames" in msg
    assert prepare([str(path)], str(tmp_path / "d.npz"), progress=False, min_frames=5).num_frames == 5


def test_skip_bad_keeps_going_and_reports(tmp_path, capsys):
    folder = tmp_path / "mixed"
    folder.mkdir()
    write(folder, "a_good.bvh", bvh_text())
    write(folder, "b_cut.bvh", bvh_text(n=10, frames_header=12))
    write(folder, "c_tiny.bvh", bvh_text(n=5))
    write(folder, "d_good.bvh", bvh_text(n=30))
    data = prepare([str(folder)], str(tmp_path / "d.npz"), progress=False, skip_bad=True)
    assert data.clip_names == ["a_good", "d_good"] and data.num_frames == 50
    err = capsys.readouterr().err
    assert "skipped 2" in err and "b_cut.bvh" in err and "truncated" in err and "'c_tiny' has 5 frames" in err


def test_error_midway_leaves_existing_output_untouched_and_no_temp_file(tmp_path):
    folder = tmp_path / "mixed"
    folder.mkdir()
    write(folder, "a_good.bvh", bvh_text())
    write(folder, "b_cut.bvh", bvh_text(n=10, frames_header=12))
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    out = out_dir / "data.npz"
    out.write_bytes(b"previous dataset")
    assert main([str(folder), "--out", str(out), "--no-progress"]) == 2
    assert out.read_bytes() == b"previous dataset"
    assert sorted(p.name for p in out_dir.iterdir()) == ["data.npz"]
    fresh = out_dir / "fresh.npz"
    assert main([str(folder), "--out", str(fresh), "--no-progress"]) == 2
    assert not fresh.exists()


def test_interrupt_while_saving_leaves_no_partial_file(tmp_path, monkeypatch, capsys):
    path = write(tmp_path, "good.bvh", bvh_text())
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    out = out_dir / "data.npz"
    out.write_bytes(b"previous dataset")

    def interrupted_savez(f, **arrays):
        f.write(b"half a file")
        raise KeyboardInterrupt

    monkeypatch.setattr(dataset_module.np, "savez", interrupted_savez)
    assert main([str(path), "--out", str(out), "--no-progress"]) == 130
    assert "was not written" in capsys.readouterr().err
    assert out.read_bytes() == b"previous dataset"
    assert sorted(p.name for p in out_dir.iterdir()) == ["data.npz"]


@pytest.mark.parametrize(
    ("flags", "needle"),
    [
        (["--fps", "0"], "--fps"),
        (["--min-frames", "1"], "--min-frames"),
        (["--clips", "("], "--clips"),
        (["--scale", "-1"], "--scale"),
        (["--clips", "no_such_clip"], "matches no clip"),
    ],
)
def test_bad_flags(tmp_path, capsys, flags, needle):
    path = write(tmp_path, "good.bvh", bvh_text())
    assert main([str(path), "--out", str(tmp_path / "d.npz"), "--no-progress", *flags]) == 2
    assert needle in capsys.readouterr().err


def test_missing_input_and_unsupported_type(tmp_path, capsys):
    assert main([str(tmp_path / "nope.bvh"), "--out", str(tmp_path / "d.npz"), "--no-progress"]) == 2
    assert "nope.bvh: no such file" in capsys.readouterr().err
    other = write(tmp_path, "motion.fbx", "binary")
    assert main([str(other), "--out", str(tmp_path / "d.npz"), "--no-progress"]) == 2
    assert "motion.fbx: unsupported input" in capsys.readouterr().err
