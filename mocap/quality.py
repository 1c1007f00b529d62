"""Motion-quality metrics as the field computes them (``../shared/docs/METRICS.md``), for data and generated motion.

Pure numpy over world joint positions of ONE continuous motion, ``world_pos`` (T, J, 3) metres, y-up, at ``fps``;
the ``*_over`` helpers pool several motions (clips, rollouts) the way the papers average. Compute every metric on
the data with the same code: the data's own value is the bar a generated motion is judged against.

=================== ============================================================================================
``foot_sliding``    CAMDM (SIGGRAPH 2024): ground the motion (subtract its lowest toe height); a toe is in contact
                    below 1 cm; slide = its horizontal displacement to the next frame, averaged over its contact
                    frames (then over toes), divided by the mean horizontal root displacement per frame (1 when
                    the root does not move). Unitless: how far planted feet slide per metre travelled
``skating_ratio``   A-MDM (SIGGRAPH 2024): a foot is in contact when it is below 5 cm (grounded as above) at two
                    consecutive frames; a frame skates when a foot in contact moves faster than 0.5 m/s
                    horizontally and its 0.25 s moving average does too (A-MDM's 5 frames at 20 fps); the share
                    of frames where either foot skates
``coherence``       CAMDM: mean per-joint 3D displacement per frame / mean horizontal root displacement per frame
``jitter``          mean joint acceleration magnitude (m/s^2) from second differences of the positions
=================== ============================================================================================

Long generated motions (a 30 s episode, a 5-minute random walk) are measured in ``WINDOW_S`` windows
(:func:`quality_over` with ``window_s``): CAMDM grounds each clip by its own lowest toe, and mocap clips last a few
seconds; grounding a minute-long rollout by its single lowest frame would leave almost no frame "in contact".

Toes: the skeleton's toe joint per side (``Toes_L``, ``LeftToeBase``, ...), else its foot / ankle joint
(:func:`toe_joints`).
"""

from __future__ import annotations

import math
import re

import numpy as np

from mocap.skeleton import Skeleton, name_side

CAMDM_CONTACT_M = 0.01
AMDM_CONTACT_M = 0.05
AMDM_SKATE_SPEED_MPS = 0.5
AMDM_WINDOW_S = 0.25  # 5 frames at A-MDM's 20 fps
WINDOW_S = 4.0  # generated motion is measured in windows of a mocap clip's length
# Ground-speed bands (m/s) the joystick is judged in and the VAE's transitions are measured between.
SPEED_BANDS = (("standing", 0.0, 0.2), ("walk", 0.2, 1.5), ("run", 1.5, 2.8), ("dash", 2.8, math.inf))
STILL_ROOT_M = 1e-3  # per frame: below this mean root displacement the root "does not move" (CAMDM divides by 1)
_TOE = re.compile(r"toe", re.IGNORECASE)
_FOOT = re.compile(r"foot|ankle", re.IGNORECASE)


def toe_joints(skeleton: Skeleton) -> np.ndarray:
    """(2,) left and right toe joint indices (else foot / ankle); ValueError when a side has neither."""
    out = []
    for side in ("left", "right"):
        sided = [i for i, n in enumerate(skeleton.joint_names) if name_side(n) == side]
        toes = [i for i in sided if _TOE.search(skeleton.joint_names[i])]
        feet = [i for i in sided if _FOOT.search(skeleton.joint_names[i])]
        # The deepest toe / foot joint is the one on the ground (a chain Foot -> Toe -> ToeEnd: take the last).
        pick = toes or feet
        if not pick:
            raise ValueError(f"no {side} toe, foot or ankle joint among {skeleton.joint_names}: name the feet "
                             "(e.g. LeftFoot / RightFoot) so foot contact can be measured")
        out.append(pick[-1])
    return np.array(out, dtype=np.int64)


def _grounded(world_pos: np.ndarray, toes: np.ndarray) -> np.ndarray:
    """(T, 2) toe heights above the motion's lowest toe height."""
    heights = world_pos[:, toes, 1]  # (T, 2)
    return heights - heights.min()


def _root_step(world_pos: np.ndarray) -> float:
    """Mean horizontal root displacement per frame (m)."""
    root = world_pos[:, 0, [0, 2]]  # (T, 2)
    return float(np.linalg.norm(np.diff(root, axis=0), axis=-1).mean()) if len(root) > 1 else 0.0


def foot_sliding(world_pos: np.ndarray, toes: np.ndarray) -> float | None:
    """CAMDM foot sliding of one motion (see the module docstring); None when no toe is ever in contact."""
    if world_pos.shape[0] < 2:
        return None
    contact = _grounded(world_pos, toes)[:-1] < CAMDM_CONTACT_M  # (T-1, 2): in contact at frame t
    step = np.linalg.norm(np.diff(world_pos[:, toes][..., [0, 2]], axis=0), axis=-1)  # (T-1, 2)
    per_toe = [step[contact[:, k], k].mean() for k in range(len(toes)) if contact[:, k].any()]
    if not per_toe:
        return None
    root = _root_step(world_pos)
    return float(np.mean(per_toe) / (root if root > STILL_ROOT_M else 1.0))


def skating_ratio(world_pos: np.ndarray, toes: np.ndarray, fps: float) -> float | None:
    """A-MDM skating ratio of one motion (see the module docstring)."""
    if world_pos.shape[0] < 3:
        return None
    low = _grounded(world_pos, toes) < AMDM_CONTACT_M  # (T, 2)
    contact = low[1:] & low[:-1]  # (T-1, 2): below 5 cm at both frames of the step
    speed = np.linalg.norm(np.diff(world_pos[:, toes][..., [0, 2]], axis=0), axis=-1) * fps  # (T-1, 2) m/s
    window = max(1, round(AMDM_WINDOW_S * fps))
    kernel = np.ones(window) / window
    average = np.stack([np.convolve(speed[:, k], kernel, mode="same") for k in range(len(toes))], axis=1)
    skating = contact & (speed > AMDM_SKATE_SPEED_MPS) & (average > AMDM_SKATE_SPEED_MPS)
    return float(skating.any(axis=1).mean())


def coherence(world_pos: np.ndarray) -> float | None:
    """CAMDM coherence of one motion: joint displacement per frame over root displacement per frame."""
    if world_pos.shape[0] < 2:
        return None
    joints = float(np.linalg.norm(np.diff(world_pos, axis=0), axis=-1).mean())
    root = _root_step(world_pos)
    return joints / (root if root > STILL_ROOT_M else 1.0)


def jitter(world_pos: np.ndarray, fps: float) -> float | None:
    """Mean joint acceleration magnitude (m/s^2) of one motion."""
    if world_pos.shape[0] < 3:
        return None
    accel = (world_pos[2:] - 2.0 * world_pos[1:-1] + world_pos[:-2]) * fps * fps  # (T-2, J, 3)
    return float(np.linalg.norm(accel, axis=-1).mean())


def windows(motion: np.ndarray, frames: int) -> list[np.ndarray]:
    """Consecutive windows of ``frames`` frames of a motion (T, J, 3); a last part shorter than half a window is
    dropped, a motion shorter than one window stays whole."""
    if len(motion) <= frames:
        return [motion]
    parts = [motion[k:k + frames] for k in range(0, len(motion), frames)]
    return parts if len(parts[-1]) * 2 >= frames else parts[:-1]


def quality_over(motions, toes: np.ndarray, fps: float, window_s: float | None = None) -> dict:
    """The four metrics averaged over motions (each (T_i, J, 3)), as the papers average over clips:
    ``foot_sliding``, ``skating_ratio``, ``coherence``, ``jitter`` (None where no motion gives a value).
    ``window_s``: measure long motions in windows of that length (see the module docstring)."""
    values: dict[str, list[float]] = {"foot_sliding": [], "skating_ratio": [], "coherence": [], "jitter": []}
    if window_s is not None:
        motions = [w for m in motions for w in windows(np.asarray(m), max(3, round(window_s * fps)))]
    for m in motions:
        m = np.asarray(m, dtype=np.float64)
        for key, value in (("foot_sliding", foot_sliding(m, toes)), ("skating_ratio", skating_ratio(m, toes, fps)),
                           ("coherence", coherence(m)), ("jitter", jitter(m, fps))):
            if value is not None and np.isfinite(value):
                values[key].append(value)
    return {key: (float(np.mean(v)) if v else None) for key, v in values.items()}
