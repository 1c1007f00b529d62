"""The METRICS.md motion-quality metrics on motions whose answer is known, and on real data next to FACTS.md."""

from __future__ import annotations

import numpy as np
import pytest

from mocap.quality import coherence, foot_sliding, jitter, quality_over, skating_ratio, toe_joints
from mocap.skeleton import Skeleton

FPS = 30.0
TOES = np.array([1, 2])


def walker(frames: int = 90, speed: float = 1.0, slide: float = 0.0) -> np.ndarray:
    """A root moving at ``speed`` m/s, the left toe on the ground sliding ``slide`` m/s, the right one in the
    air -> (T, 3, 3) world positions (root, left toe, right toe)."""
    t = np.arange(frames) / FPS
    pos = np.zeros((frames, 3, 3))
    pos[:, 0] = np.stack([np.zeros(frames), np.full(frames, 0.9), speed * t], axis=1)
    pos[:, 1] = np.stack([np.full(frames, 0.1), np.zeros(frames), slide * t], axis=1)
    pos[:, 2] = np.stack([np.full(frames, -0.1), np.full(frames, 0.3), speed * t], axis=1)
    return pos


def test_planted_feet_do_not_slide_and_sliding_ones_do():
    assert foot_sliding(walker(slide=0.0), TOES) == pytest.approx(0.0, abs=1e-9)
    sliding = foot_sliding(walker(slide=0.3), TOES)  # 0.3 m/s of slide per 1 m/s of travel
    assert sliding == pytest.approx(0.3, rel=0.05)
    assert skating_ratio(walker(slide=0.0), TOES, FPS) == 0.0
    assert skating_ratio(walker(slide=1.5), TOES, FPS) > 0.3  # planted feet moving at 1.5 m/s skate


def test_standing_still_divides_by_one_and_jitter_of_steady_motion_is_zero():
    still = np.zeros((30, 3, 3))
    assert foot_sliding(still, TOES) == 0.0 and coherence(still) == 0.0
    line = np.cumsum(np.full((30, 3, 3), 0.01), axis=0)  # constant velocity
    assert jitter(line, FPS) == pytest.approx(0.0, abs=1e-9)
    shaky = line + np.random.default_rng(0).normal(0.0, 0.01, line.shape)
    assert jitter(shaky, FPS) > 10.0


def test_toes_are_found_by_name_with_feet_as_fallback():
    names = ["Hips", "LeftFoot", "LeftToe", "RightFoot", "RightToe"]
    sk = Skeleton(names, [-1, 0, 1, 0, 3], np.zeros((5, 3)))
    assert toe_joints(sk).tolist() == [2, 4]
    sk = Skeleton(["Hips", "l_ankle", "r_ankle"], [-1, 0, 0], np.zeros((3, 3)))
    assert toe_joints(sk).tolist() == [1, 2]
    with pytest.raises(ValueError, match="name the feet"):
        toe_joints(Skeleton(["Hips", "Spine"], [-1, 0], np.zeros((2, 3))))


@pytest.mark.shared
def test_bandai_namco_locomotion_slides_as_facts_md_measured(shared_mocap, tmp_path):
    """FACTS.md: the CAMDM foot sliding of Bandai-Namco dataset-1 locomotion is 0.080."""
    import re

    from mocap.features import frames_to_world
    from mocap.prepare import prepare

    data = prepare([str(shared_mocap / "bandai-namco-1")], str(tmp_path / "bn.npz"), clips="walk|run|dash",
                   progress=False)
    clips = [frames_to_world(data.clip(i).astype(np.float64))[1] for i in range(data.num_clips)
             if re.search("walk|run|dash", data.clip_names[i])]
    quality = quality_over(clips, toe_joints(data.skeleton), data.fps)
    assert quality["foot_sliding"] == pytest.approx(0.080, abs=0.005)
    assert 0 < quality["jitter"] < 20
