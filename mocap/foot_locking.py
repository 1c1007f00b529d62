"""Planted feet at runtime: lock feet in contact with two-bone IK (pure numpy over leading dims, plus a stepper).

A Motion VAE's feet slide while planted. This module holds them where they landed, after the model, on the motion
that is shown (and exported):

- :func:`two_bone_ik` moves a hip-knee-ankle chain so the ankle reaches a target (as close as it can along the
  line to it when it cannot), keeping both bone lengths exactly and bending the knee in the plane of a pole hint.
- :func:`leg_chains` finds each side's chain in a :class:`mocap.skeleton.Skeleton` by name: the foot / ankle
  joint (from :func:`mocap.quality.toe_joints`, the joints the field's foot-sliding metric measures), its parent
  the knee, its grandparent the hip, and the toe (that metric's toe joint when it lies below the foot, else the
  foot's first child, else the foot itself).
- :func:`detect_contacts` labels contacts from kinematics for models that predict none, with the rule of the data's
  own labels (:func:`mocap.features.foot_contacts`: within ``CONTACT_HEIGHT_M`` of the floor, slower than
  ``CONTACT_SPEED_MPS`` horizontally) against the floor the data uses (:func:`floor_heights`: the
  ``FLOOR_PERCENTILE``-th percentile of each joint's height, as ``mocap.prepare`` labels every clip).
- :func:`lock_legs` moves the legs so each locked toe reaches a ground target, and turns the hip and knee
  rotations with their bones so forward kinematics (a BVH) reproduces the corrected positions. A target beyond the
  leg's reach first lowers the whole body (:func:`pelvis_drop`, :func:`needed_drop`, at most
  ``MAX_PELVIS_DROP_M``), as game engines do: the shipped character's stance legs are nearly straight while its
  body runs ahead of its planted feet.
- :func:`channel_sides` and :func:`channel_contacts` turn a Motion VAE's contact channels (:mod:`vae.contacts`:
  the contact of each labelled foot joint in the frame the decoder predicts) into contacts per side.
- :class:`FootLocker` steps B characters once per simulation step. A lock starts on a contact by the data's rule but
  up to ``LOCK_SPEED_MPS`` (the models slide planted feet faster than the data's speed), or where the model's contact
  channels say contact (its stance frames, where its foot may move faster), where the toe was drawn the step before
  (ground-plane x, z; the height always follows the pose), and holds while that contact lasts. A held toe the model
  drags away is let trail at most ``LEASH_M`` behind it (``PLANTED_LEASH_M`` while the model's toe is slower than the
  data's contact speed, so a toe the data calls planted stays put; ``REACH_LEASH_M`` while the lock is within the
  data's stance reach of the root, :func:`stance_reach`, and ``SLOW_LEASH_M`` when the body also moves slower than
  ``SLOW_ROOT_MPS``), its lock sliding along behind, never faster than the model's toe. When the contact ends, the
  correction eases out while the toe moves with the model, over ``BLEND_OUT_FRAMES`` steps or more (at most
  ``BLEND_OUT_STEP_M`` per step: no pop). The body lowers for out-of-reach locks at most ``DROP_SPEED_MPS`` and rises
  at most ``RISE_SPEED_MPS``; a leg that still falls short moves its lock to where its toe got. A foot more than
  ``RELEASE_DISTANCE_M`` from its lock in one step lets go (at once beyond ``JUMP_RELEASES`` times that: a teleport it
  was not told about, ``reset`` being the way to tell it).

Measured (CAMDM foot sliding, :mod:`mocap.quality`, of the motion with foot locking as ``policies.evaluate`` reports
it, ``foot_sliding_ik``; 100 episodes of 30 s; the data's own value 0.081): the shipped Bandai-Namco joystick policy
0.632 unlocked -> 0.071 with its contact channels and the reach and slow leashes (0.091 without those leashes, 0.225
with contacts from the poses alone), its target policy 0.338 -> 0.042 (0.057, 0.182), PathFollow 0.016, Maze 0.071
(the fine-tuned PathFollow and Maze policies: 0.006 and 0.019). The previous release's joystick policy went 0.468 ->
0.064 with contacts from the poses (0.191 with the rules before: lock only below the data's 0.6 m/s, let go at 25 cm,
blend from the lock); its target policy 0.467 -> 0.312 (was 0.405): that policy's feet skid along the floor at 1-2.4
m/s for metres, faster than ``LOCK_SPEED_MPS`` and farther than any leash a leg reaches. Jitter of the locked motion
over the model's: +5 % and +12 % (8.24 -> 8.68 and 13.7 -> 15.3 m/s^2; the same with contacts from the poses alone); a
toe moves at most 5.0 cm per step faster than the model's, the knee's acceleration is at most 16.5 cm/step^2 (the
model's own 13.2; the previous release's policies). On the 20 s joystick tour of ``tests/test_play.py`` (DeepMimic) a
toe planted by the data's rule drifts at most 0.3 cm (14 cm unlocked), foot sliding 0.39 -> 0.052 (0.067 from the
poses alone). A step costs 0.5 ms for one character and 1.5 ms for 256 (numpy, one CPU thread).

Spaces: ``world_`` is the y-up world in metres. Sides are ordered (left, right) everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mocap.features import CONTACT_HEIGHT_M, CONTACT_PROBABILITY, CONTACT_SPEED_MPS
from mocap.prepare import FLOOR_PERCENTILE
from mocap.quality import toe_joints
from mocap.skeleton import Skeleton

# A lock starts and holds while its foot is in contact by the data's rule (:func:`detect_contacts`: lowest joint within
# CONTACT_HEIGHT_M of its floor) but slower than this horizontally instead of the data's CONTACT_SPEED_MPS: the toes
# the old rule left unlocked where the shipped joystick policy's foot sliding counts them slid at 0.6-1.3 m/s (10th-90th
# percentile). Its foot_sliding_ik (100 episodes): 0.133 with 0.6, 0.093 with 0.8, 0.064 with 1.0, 0.050 with 1.2, but
# then locks taken while a DeepMimic foot still skids trail into its planted frames (tests/test_play.py's tour: a
# planted toe drifts 4 cm).
LOCK_SPEED_MPS = 1.0
# A held toe the model moves faster than the data's contact speed trails at most this far (m, horizontally) behind
# the model's toe; its lock slides along behind it beyond. With contacts read from the poses a longer leash gained
# little (foot_sliding_ik 0.065 / 0.064 / 0.063 with 0.20 / 0.25 / 0.30); with the model's contact channels, which
# hold stance feet the model drags, it gains more (the shipped Bandai-Namco joystick policy 0.091 / 0.087 / 0.084 /
# 0.079 with 0.25 / 0.28 / 0.30 / 0.35, RELEASE_DISTANCE_M 0.60; data 0.081), but the DeepMimic character's legs then
# fall short of locks that far behind: on the tour of tests/test_play.py a planted toe drifts 0.32 / 1.10 / 1.10 /
# 1.65 cm.
LEASH_M = 0.25
# ... and this far while the model's toe is slower (planted by the data's rule): such a toe does not slide until then,
# and trails 10 cm less once moving. 0.25 (one leash): the tour drifts a planted DeepMimic toe 1.7 cm,
# foot_sliding_ik 0.077; 0.30: 0.070; 0.35: 0.064; 0.40: 0.104 (held toes reach RELEASE_DISTANCE_M and let go).
PLANTED_LEASH_M = 0.35
# ... and this far while the character's root moves slower than SLOW_ROOT_MPS (standing, stopping, turning on the
# spot): its feet are under the body, so a lock that far is in reach, and the model's shuffling stance feet would
# otherwise drag held toes at up to 1 m/s while the body stands (most of what the CAMDM foot sliding of the locked
# motion counted: half of it came from windows whose root moved under 0.3 m/s). The shipped Bandai-Namco joystick
# policy's foot_sliding_ik (one 100-episode rollout): 0.091 without, 0.083 / 0.076 / 0.075 with 0.35 / 0.45 / 0.55 below
# 0.6 m/s (0.072 with 0.45 below 1.0 m/s, but walking legs then reach for locks behind); the body is lowered 14.4
# instead of 10.5 cm at the 90th percentile (the median 0.8 cm either way).
SLOW_LEASH_M = 0.45
SLOW_ROOT_MPS = 0.6
# ... but only while the lock is within this percentile of how far the data's toes get from the root
# (:func:`stance_reach`; Bandai-Namco 0.50 m, DeepMimic 0.40): farther, the character's legs do not reach it (the
# DeepMimic tour's planted toe drifted 2.0 cm with the slow leash unbounded, 0.3 with it, as before the slow leash).
REACH_PERCENTILE = 99.0
# A lock within that reach of the root trails at least this far behind the model's toe at any speed (LEASH_M applies
# beyond it): the longer leashes that made the DeepMimic tour's legs fall short (see LEASH_M) held locks out of their
# reach, which the bound leaves out (its planted toe: 0.3 cm with 0.28, 0.30 and 0.35). One 100-episode rollout of the
# Bandai-Namco maze policy: foot_sliding_ik 0.083 / 0.078 / 0.076 / 0.071 with 0.25 / 0.28 / 0.30 / 0.35, the joystick
# policy's 0.077 / 0.076 / 0.075 / 0.073; the knee's largest acceleration the same. ``python -m policies.evaluate ...
# --episodes 100`` with both leashes: joystick 0.071, target 0.042, path 0.016, maze 0.071; DeepMimic's unchanged.
REACH_LEASH_M = 0.35
BLEND_OUT_FRAMES = 5  # a released foot returns to the model's motion over at least this many steps (1/6 s at 30 fps)
# ... and over more where its correction exceeds this many metres per step: a toe let go 35 cm from the model's toe
# moved up to 7.8 cm per step faster than the model's over 5 steps; at most 5.0 with this (foot sliding the same).
BLEND_OUT_STEP_M = 0.05
# A foot this far (horizontally) from its lock lets go: held toes stay within a leash plus about one step of the
# model's toe, so only a toe that jumped does (a teleport nobody reported). 0.40 let go of toes the contact channels
# hold on long strides (the shipped Bandai-Namco joystick policy's foot_sliding_ik 0.101 against 0.091 with 0.60).
RELEASE_DISTANCE_M = 0.60
# A foot more than this many release distances from its lock jumped (a teleport nobody reported): it lets go at once,
# since blending from a lock metres away would drag the leg across the gap; a slide just past the release distance
# blends out as a lifted foot does.
JUMP_RELEASES = 2.0
# The knee bends toward where it bent in the pose; this much (m) of the character's forward direction is added to
# that bend so a straight leg still bends forward. It moves a bent knee by at most about this much around the
# hip-ankle axis: no visible pop when a lock starts.
FORWARD_POLE_M = 1e-3
# A locked leg spans at most this share of its length from hip to ankle (or as much as the pose spans): near full
# extension the knee swings several cm per mm of reach. Knee acceleration of the shipped joystick policy's locked
# motion, 99.9th percentile / largest, cm/step^2: 10.5 / 16.5 with 0.95, 12.4 / 16.9 with 0.97, 14.0 / 18.4 with 0.99
# (the model's own 6.9 / 13.2); foot sliding the same.
MAX_STRETCH = 0.95
# A lock beyond that lowers the whole body, by at most this much (m). The leashes hold feet up to 35 cm behind the
# shipped characters' nearly straight stance legs: with 0.10 the legs of the tour's DeepMimic character fall short and
# a planted toe drifts 6.6 cm, with 0.15 0.3 cm (0.20: the same). The shipped joystick policy's body is lowered
# 0.5 cm at the median, more than 4.8 cm 10 % of the time (the old rules: 0.5 cm 10 % of the time, 9.9 cm at most).
MAX_PELVIS_DROP_M = 0.15
# The body lowers at most this fast (m/s) and rises at most RISE_SPEED_MPS, rather than at once: the old instant drop
# moved the whole body up to 5 cm in one step. 0.3 m/s down leaves the tour's legs short (a planted toe drifts
# 3.4 cm); jitter of the shipped joystick policy's locked motion over its own: +11.3 % rising at once, +6.2 % at
# 0.6 m/s, +2.1 % at 0.3 m/s (+1.4 % at 0.15 m/s, but the knee's largest acceleration rises to 21.5 cm/step^2).
DROP_SPEED_MPS = 0.6
RISE_SPEED_MPS = 0.3
_EPS = 1e-12
_UP = np.array([0.0, 1.0, 0.0])


# ---- math ---------------------------------------------------------------------------------------------------
def _norm(v: np.ndarray) -> np.ndarray:
    return np.linalg.norm(v, axis=-1, keepdims=True)


def _unit(v: np.ndarray, fallback: np.ndarray) -> np.ndarray:
    """``v`` (..., 3) normalised; ``fallback`` (broadcast) where ``v`` is (nearly) zero."""
    n = _norm(v)
    return np.where(n > 1e-9, v / np.maximum(n, _EPS), fallback)


def _perpendicular(u: np.ndarray) -> np.ndarray:
    """Some unit vector (..., 3) perpendicular to unit ``u`` (..., 3)."""
    axis = np.where(np.abs(u[..., :1]) < 0.9, np.array([1.0, 0.0, 0.0]), np.array([0.0, 1.0, 0.0]))
    return _unit(np.cross(u, axis), np.array([0.0, 0.0, 1.0]))


def two_bone_ik(world_root: np.ndarray, world_mid: np.ndarray, world_end: np.ndarray, world_target: np.ndarray,
                pole_hint: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Two-bone IK (hip, knee, ankle) -> new (mid, end) positions (..., 3) m; the root stays.

    All inputs (..., 3), broadcast together. Both bone lengths (root-mid and mid-end, as given) are kept to
    rounding. The end lands on ``world_target`` when it is within reach, else at the nearest reachable
    distance from the root on the line from the root to the target (a straight leg when too far). The mid joint
    bends in the plane of the root-target line and ``pole_hint``, on the side ``pole_hint`` points to: a
    direction, of which only the part perpendicular to the root-target line counts (pass the knee's offset from
    the hip-ankle line, so the knee keeps bending where it bent and never flips). Where the pole hint is parallel
    to that line the mid joint's old side is used, then any perpendicular side.
    """
    upper = _norm(world_mid - world_root)  # (..., 1)
    lower = _norm(world_end - world_mid)
    to_target = world_target - world_root
    old_axis = _unit(world_end - world_root, np.array([0.0, -1.0, 0.0]))
    axis = _unit(to_target, old_axis)  # (..., 3) unit: root -> target
    reach = np.clip(_norm(to_target), np.abs(upper - lower), upper + lower)
    # Law of cosines for the angle at the root between the axis and the upper bone.
    cos_a = np.divide(upper * upper + reach * reach - lower * lower, 2.0 * upper * reach,
                      out=np.zeros_like(reach), where=upper * reach > _EPS)
    cos_a = np.clip(cos_a, -1.0, 1.0)
    sin_a = np.sqrt(1.0 - cos_a * cos_a)

    def off_axis(v):
        return v - np.sum(v * axis, axis=-1, keepdims=True) * axis

    side = _unit(off_axis(pole_hint), _unit(off_axis(world_mid - world_root), _perpendicular(axis)))
    world_new_mid = world_root + upper * (cos_a * axis + sin_a * side)
    world_new_end = world_root + reach * axis
    return world_new_mid, world_new_end


def minimal_rotation(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The smallest rotation (..., 3, 3) taking direction ``a`` to direction ``b`` (..., 3; any length > 0).

    Rodrigues' formula ``I + K + K^2 / (1 + cos)`` with ``K`` the cross-product matrix of ``a x b``; identity
    where either is zero. Undefined for opposite directions (a half turn about no preferred axis); IK
    corrections of a planted foot never come close.
    """
    a = _unit(a, np.zeros(3))
    b = _unit(b, np.zeros(3))
    v = np.cross(a, b)  # (..., 3)
    c = np.sum(a * b, axis=-1)[..., None, None]  # (..., 1, 1)
    zero = np.zeros_like(v[..., 0])
    k = np.stack([np.stack([zero, -v[..., 2], v[..., 1]], -1),
                  np.stack([v[..., 2], zero, -v[..., 0]], -1),
                  np.stack([-v[..., 1], v[..., 0], zero], -1)], axis=-2)  # (..., 3, 3)
    return np.eye(3) + k + (k @ k) / np.maximum(1.0 + c, 1e-9)


# ---- skeleton -------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class LegChains:
    """Each side's leg chain (index 0 left, 1 right) and the joints that ride on it.

    ``hip``, ``knee``, ``foot``, ``toe``: (2,) joint indices (``toe == foot`` where the foot has no toe).
    ``thigh_riders`` / ``shin_riders`` / ``foot_riders``: per side, the joints that move with the hip bone
    (descendants of the hip outside the knee's subtree), the knee bone (the knee's subtree outside the foot's,
    the knee itself excluded) and the foot (the foot's subtree, itself included).
    """

    hip: np.ndarray
    knee: np.ndarray
    foot: np.ndarray
    toe: np.ndarray
    thigh_riders: tuple[np.ndarray, np.ndarray]
    shin_riders: tuple[np.ndarray, np.ndarray]
    foot_riders: tuple[np.ndarray, np.ndarray]
    names: tuple[str, ...]  # "left: hip > knee > foot > toe", per side, for messages

    @property
    def contact_joints(self) -> np.ndarray:
        """(2, 2) per side (foot, toe): the joints whose lowest decides contact."""
        return np.stack([self.foot, self.toe], axis=-1)


def _subtree(skeleton: Skeleton, j: int) -> list[int]:
    """``j`` and its descendants (parents come before children, so one pass finds them)."""
    inside = np.zeros(skeleton.num_joints, dtype=bool)
    inside[j] = True
    for k in range(j + 1, skeleton.num_joints):
        inside[k] = inside[skeleton.parents[k]]
    return [int(k) for k in np.nonzero(inside)[0]]


def _is_foot(name: str) -> bool:
    low = name.lower()
    return ("foot" in low or "ankle" in low) and "toe" not in low


def leg_chains(skeleton: Skeleton) -> LegChains:
    """Each side's hip > knee > foot (> toe) chain, found by joint name; ValueError naming the joints otherwise.

    The foot is the foot / ankle joint at or above :func:`mocap.quality.toe_joints`' pick for the side (that
    pick's parent when it is a toe under an unnamed foot); the knee is its parent and the hip its grandparent,
    which must not be the root (turning the root would move the whole body).
    """
    names = skeleton.joint_names
    try:
        picks = toe_joints(skeleton)
    except ValueError as e:
        raise ValueError(f"foot locking needs a leg per side: {e}") from None
    chains: list[tuple[int, int, int, int]] = []
    for side, pick in zip(("left", "right"), picks, strict=True):
        pick = int(pick)
        foot = pick
        while foot >= 0 and not _is_foot(names[foot]):
            foot = int(skeleton.parents[foot])
        if foot < 0:  # a toe joint under a foot not named foot / ankle
            foot = int(skeleton.parents[pick])
        knee = int(skeleton.parents[foot]) if foot > 0 else -1
        hip = int(skeleton.parents[knee]) if knee > 0 else -1
        if foot <= 0 or knee <= 0 or hip <= 0:
            found = " > ".join(names[j] for j in (hip, knee, foot) if j >= 0)
            raise ValueError(f"foot locking needs a {side} hip > knee > foot chain below the root; the {side} foot "
                             f"joint {names[pick]} has the chain {found or '(none)'} ({names[0]} is the root): "
                             "name the leg joints, e.g. LeftUpLeg > LeftLeg > LeftFoot")
        children = skeleton.children(foot)
        toe = pick if pick != foot and pick in _subtree(skeleton, foot) else (children[0] if children else foot)
        chains.append((hip, knee, foot, toe))
    if len({j for chain in chains for j in chain[:3]}) < 6:
        raise ValueError("foot locking: the left and right legs share joints ("
                         + "; ".join(" > ".join(names[j] for j in c) for c in chains) + ")")
    hip, knee, foot, toe = (np.array(v, dtype=np.int64) for v in zip(*chains, strict=True))

    def riders(outer: int, inner: int) -> np.ndarray:
        """``outer``'s descendants outside ``inner``'s subtree."""
        inner_set = set(_subtree(skeleton, inner))
        return np.array([j for j in _subtree(skeleton, outer) if j not in inner_set and j != outer], dtype=np.int64)

    return LegChains(
        hip=hip, knee=knee, foot=foot, toe=toe,
        thigh_riders=tuple(riders(int(hip[s]), int(knee[s])) for s in range(2)),
        shin_riders=tuple(riders(int(knee[s]), int(foot[s])) for s in range(2)),
        foot_riders=tuple(np.array(_subtree(skeleton, int(foot[s])), dtype=np.int64) for s in range(2)),
        names=tuple(f"{side}: " + " > ".join(names[j] for j in dict.fromkeys(c))
                    for side, c in zip(("left", "right"), chains, strict=True)),
    )


# ---- contacts -------------------------------------------------------------------------------------------------
def floor_heights(world_pos: np.ndarray, chains: LegChains, percentile: float = FLOOR_PERCENTILE) -> np.ndarray:
    """The floor under each contact joint, (2, 2) m per side (foot, toe), from poses (..., J, 3) of the data.

    The ``percentile``-th percentile of the joint's height over the poses: what ``mocap.prepare`` takes as a
    clip's floor for its contact labels (a joint's lowest height, robust to a few frames through the floor).
    """
    heights = world_pos[..., chains.contact_joints, 1].reshape(-1, 2, 2)  # (N, 2, 2)
    return np.percentile(heights, percentile, axis=0)


def stance_reach(world_pos: np.ndarray, chains: LegChains, percentile: float = REACH_PERCENTILE) -> float:
    """How far (m, horizontally) the data's toes get from the root, from poses (..., J, 3): the ``percentile``-th
    percentile over both toes. A lock within it is where the character's own legs go (the bound of the reach and
    slow leashes)."""
    poses = world_pos.reshape(-1, *world_pos.shape[-2:])  # (N, J, 3)
    gap = np.linalg.norm(poses[:, chains.toe][..., ::2] - poses[:, None, 0, ::2], axis=-1)  # (N, 2)
    return float(np.percentile(gap, percentile))


def detect_contacts(world_pos: np.ndarray, prev_world_pos: np.ndarray, chains: LegChains, floor: np.ndarray,
                    fps: float, height_m: float = CONTACT_HEIGHT_M, speed_mps: float = CONTACT_SPEED_MPS) -> np.ndarray:
    """Contacts (..., 2) bool per side from two consecutive poses (..., J, 3) m ``1 / fps`` s apart.

    A foot is in contact when its lowest joint, foot or toe (each measured above its own ``floor`` (2, 2) from
    :func:`floor_heights`), is within ``height_m`` of the floor and moves slower than ``speed_mps``
    horizontally: the rule and thresholds of the data's labels (:func:`mocap.features.foot_contacts`).
    """
    joints = chains.contact_joints  # (2, 2)
    above = world_pos[..., joints, 1] - floor  # (..., 2, 2)
    step = world_pos[..., joints, :] - prev_world_pos[..., joints, :]  # (..., 2, 2, 3)
    speed = np.hypot(step[..., 0], step[..., 2]) * fps  # (..., 2, 2) m/s
    lowest = np.argmin(above, axis=-1)[..., None]  # (..., 2, 1): foot or toe
    low = np.take_along_axis(above, lowest, axis=-1)[..., 0] < height_m
    slow = np.take_along_axis(speed, lowest, axis=-1)[..., 0] < speed_mps
    return low & slow


def channel_sides(chains: LegChains, skeleton: Skeleton, joints: list[str]) -> np.ndarray | None:
    """(F,) the side (0 left, 1 right, -1 neither) of each contact channel, given the channels' joint names
    ``joints`` (a Motion VAE's ``contacts.joints``, :mod:`vae.contacts`); None when a side has no channel on its foot
    or toe (then contacts come from the poses, :func:`detect_contacts`)."""
    names = list(skeleton.joint_names)
    sides = np.full(len(joints), -1)
    for f, name in enumerate(joints):
        index = names.index(name) if name in names else -1
        for side in range(2):
            if index in chains.contact_joints[side]:
                sides[f] = side
    return sides if all((sides == side).any() for side in range(2)) else None


def channel_contacts(probabilities: np.ndarray, sides: np.ndarray,
                     threshold: float = CONTACT_PROBABILITY) -> np.ndarray:
    """Contacts (..., 2) bool per side from contact channels (..., F) probabilities: a foot is in contact while the
    channel of its foot or its toe (``sides`` (F,) from :func:`channel_sides`) is above ``threshold``."""
    above = np.asarray(probabilities) > threshold  # (..., F)
    return np.stack([above[..., sides == side].any(axis=-1) for side in range(2)], axis=-1)


# ---- correction -----------------------------------------------------------------------------------------------
def world_forward(world_pos: np.ndarray, chains: LegChains) -> np.ndarray:
    """(..., 3) unit horizontal forward of the pelvis: left-minus-right hip x up (as ``mocap.features``' facing)."""
    across = world_pos[..., chains.hip[0], :] - world_pos[..., chains.hip[1], :]  # (..., 3)
    forward = np.cross(across, _UP)
    forward[..., 1] = 0.0
    return _unit(forward, np.array([0.0, 0.0, 1.0]))


def pelvis_drop(world_hip: np.ndarray, world_ankle_target: np.ndarray, reach: np.ndarray, active: np.ndarray,
                max_drop_m: float = MAX_PELVIS_DROP_M) -> np.ndarray:
    """How far (..., 1) m to lower the body so that every active leg reaches its ankle target (0 when all do).

    ``world_hip``, ``world_ankle_target`` (..., 2, 3), ``reach`` (..., 2) the hip-ankle distance each leg may span,
    ``active`` (..., 2). A hip v above its target and h from it horizontally reaches it once lowered by
    d = v - sqrt(reach^2 - h^2); at most ``max_drop_m`` (a farther target stays out of reach).
    """
    offset = world_hip - world_ankle_target  # (..., 2, 3)
    across = np.hypot(offset[..., 0], offset[..., 2])  # (..., 2)
    need = offset[..., 1] - np.sqrt(np.maximum(reach * reach - across * across, 0.0))
    return np.where(active, np.clip(need, 0.0, max_drop_m), 0.0).max(axis=-1, keepdims=True)


def _within_reach_on_ground(world_hip: np.ndarray, world_target: np.ndarray, reach: np.ndarray) -> np.ndarray:
    """``world_target`` (..., 3) moved horizontally toward the hip (its height kept) until within ``reach`` (...)."""
    to = world_target - world_hip
    across = np.hypot(to[..., 0], to[..., 2])
    across_max = np.sqrt(np.maximum(reach * reach - to[..., 1] * to[..., 1], 0.0))
    shrink = np.minimum(1.0, across_max / np.maximum(across, _EPS))[..., None]  # (..., 1)
    return world_hip + to * np.array([1.0, 0.0, 1.0]) * shrink + to * _UP


def _leg_goals(world_pos: np.ndarray, chains: LegChains, world_target_xz: np.ndarray,
               stretch: float) -> tuple[np.ndarray, np.ndarray]:
    """(ankle targets (..., 2, 3) m, reach (..., 2) m) of toe targets (x, z) (..., 2, 2) as :func:`lock_legs` takes
    them: the toe keeps the pose's height and its offset from the ankle; a leg spans at most ``stretch`` of its length
    (or the pose's own span when longer)."""
    hip, knee, foot = world_pos[..., chains.hip, :], world_pos[..., chains.knee, :], world_pos[..., chains.foot, :]
    toe = world_pos[..., chains.toe, :]  # (..., 2, 3)
    target = toe.copy()
    target[..., 0], target[..., 2] = world_target_xz[..., 0], world_target_xz[..., 1]
    leg_length = np.linalg.norm(knee - hip, axis=-1) + np.linalg.norm(foot - knee, axis=-1)  # (..., 2)
    return target - (toe - foot), np.maximum(np.linalg.norm(foot - hip, axis=-1), stretch * leg_length)


def needed_drop(world_pos: np.ndarray, chains: LegChains, world_target_xz: np.ndarray, active: np.ndarray,
                stretch: float = MAX_STRETCH, max_drop_m: float = MAX_PELVIS_DROP_M) -> np.ndarray:
    """How far (..., 1) m :func:`lock_legs` lowers the body of poses (..., J, 3) for these toe targets (..., 2, 2)
    (x, z) of the ``active`` (..., 2) legs when not told (:func:`pelvis_drop`)."""
    ankle_target, reach = _leg_goals(world_pos, chains, world_target_xz, stretch)
    return pelvis_drop(world_pos[..., chains.hip, :], ankle_target, reach, active, max_drop_m)


def lock_legs(world_pos: np.ndarray, world_rot: np.ndarray | None, chains: LegChains, world_target_xz: np.ndarray,
              active: np.ndarray, stretch: float = MAX_STRETCH, max_drop_m: float = MAX_PELVIS_DROP_M,
              drop_m: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """Move each active leg so its toe reaches a ground target -> corrected positions (and rotations).

    ``world_pos`` (..., J, 3) m, ``world_rot`` (..., J, 3, 3) or None, ``world_target_xz`` (..., 2, 2) the toe's
    wanted (x, z) per side (its height stays the pose's), ``active`` (..., 2) which legs to move. The foot keeps
    its world orientation, so the toe keeps its offset from the ankle: the ankle's target is the toe's minus that
    offset.

    A leg spans at most ``stretch`` of its length from hip to ankle (or the pose's own span when longer): near full
    extension the knee would swing several cm per mm of reach. A target beyond that first lowers the whole body
    (:func:`pelvis_drop`, at most ``max_drop_m``), the other leg bending to keep its foot where the pose has it;
    what is still out of reach comes closer to the hip horizontally, at the target's height (the foot stays on
    the ground rather than float). The hip bone and the knee bone each turn by the minimal rotation from their old
    to their new direction; the joints riding on them turn with them, the foot's subtree moves with the ankle, so
    forward kinematics of the returned rotations and root position reproduces the returned positions (up to the
    pose's own mismatch). ``drop_m`` (..., 1) m lowers the body by that much instead (to repeat one step's
    correction on another pose of the same step, or a drop the caller eased; a leg it leaves short reaches as far
    as it can).
    """
    hip, knee, foot = world_pos[..., chains.hip, :], world_pos[..., chains.knee, :], world_pos[..., chains.foot, :]
    ankle_target, reach = _leg_goals(world_pos, chains, world_target_xz, stretch)  # (..., 2, 3), (..., 2)
    thigh, shin = knee - hip, foot - knee
    drop = pelvis_drop(hip, ankle_target, reach, active, max_drop_m) if drop_m is None else drop_m  # (..., 1)
    world_down = drop[..., None] * _UP  # (..., 1, 3)
    body = world_pos - world_down  # (..., J, 3): the lowered body, legs still as posed
    hip_d, knee_d, foot_d = hip - world_down, knee - world_down, foot - world_down
    moved = active | (drop > 0.0)  # a lowered body moves every leg
    goal = np.where(active[..., None], ankle_target, foot)  # a leg not locked keeps its foot where it was
    goal = _within_reach_on_ground(hip_d, goal, reach)

    leg_axis = _unit(foot - hip, np.array([0.0, -1.0, 0.0]))
    bend = thigh - np.sum(thigh * leg_axis, axis=-1, keepdims=True) * leg_axis  # (..., 2, 3): knee off the line
    pole = bend + FORWARD_POLE_M * world_forward(world_pos, chains)[..., None, :]
    new_knee, new_foot = two_bone_ik(hip_d, knee_d, foot_d, goal, pole)
    on = moved[..., None]
    new_knee = np.where(on, new_knee, knee_d)
    new_foot = np.where(on, new_foot, foot_d)
    thigh_turn = minimal_rotation(thigh, new_knee - hip_d)  # (..., 2, 3, 3)
    shin_turn = minimal_rotation(shin, new_foot - new_knee)

    out_pos = body.copy()
    out_rot = None if world_rot is None else world_rot.copy()
    for s in range(2):  # the two sides; every character at once
        h, k = chains.hip[s], chains.knee[s]
        t_turn, s_turn = thigh_turn[..., s, None, :, :], shin_turn[..., s, None, :, :]  # (..., 1, 3, 3)
        for riders, turn, pivot, new_pivot in ((chains.thigh_riders[s], t_turn, hip_d[..., s, :], hip_d[..., s, :]),
                                               (chains.shin_riders[s], s_turn, knee_d[..., s, :], new_knee[..., s, :])):
            if len(riders):
                rel = body[..., riders, :] - pivot[..., None, :]  # (..., R, 3)
                out_pos[..., riders, :] = new_pivot[..., None, :] + (turn @ rel[..., None])[..., 0]
                if out_rot is not None:
                    out_rot[..., riders, :, :] = turn @ world_rot[..., riders, :, :]
        out_pos[..., k, :] = new_knee[..., s, :]
        out_pos[..., chains.foot_riders[s], :] += (new_foot - foot_d)[..., s, None, :]
        if out_rot is not None:
            out_rot[..., h, :, :] = thigh_turn[..., s, :, :] @ world_rot[..., h, :, :]
            out_rot[..., k, :, :] = shin_turn[..., s, :, :] @ world_rot[..., k, :, :]
    return out_pos, out_rot


# ---- the stepper ----------------------------------------------------------------------------------------------
class FootLocker:
    """Planted feet for B characters, stepped once per simulation step (see the module docstring).

    ``floor``: (2, 2) m per side (foot, toe) from :func:`floor_heights` of the data's poses; None: the lowest
    height each joint kind (foot, toe) has reached on either side of any character since construction (for models
    that carry no poses of their data; the first steps then take the lower foot as standing on the floor).
    State per character and side: ``locked`` (B, 2), ``world_lock_xz`` (B, 2, 2) m where a locked toe is held,
    ``weight`` (B, 2) of the correction (1 while locked, falling to 0 over ``blend_frames`` or more steps after),
    ``world_offset_xz`` (B, 2, 2) m the correction a released toe eases out (its lock minus the model's toe when it
    let go), ``contacts`` (B, 2) of the last step; per character ``drop_m`` (B, 1) m the body is lowered by.
    """

    def __init__(self, chains: LegChains, num_characters: int, fps: float, floor: np.ndarray | None = None, *,
                 blend_frames: int = BLEND_OUT_FRAMES, release_m: float = RELEASE_DISTANCE_M,
                 height_m: float = CONTACT_HEIGHT_M, speed_mps: float = LOCK_SPEED_MPS, leash_m: float = LEASH_M,
                 planted_leash_m: float = PLANTED_LEASH_M,
                 stretch: float = MAX_STRETCH, max_drop_m: float = MAX_PELVIS_DROP_M,
                 drop_speed_mps: float = DROP_SPEED_MPS, rise_speed_mps: float = RISE_SPEED_MPS,
                 slow_leash_m: float = SLOW_LEASH_M, slow_root_mps: float = SLOW_ROOT_MPS, reach_m=None,
                 reach_leash_m: float = REACH_LEASH_M):
        if blend_frames < 1:
            raise ValueError(f"blend_frames must be at least 1, got {blend_frames}")
        self.chains = chains
        self.num_characters = int(num_characters)
        self.fps = float(fps)
        self.fixed_floor = floor is not None
        self.floor = np.asarray(floor, dtype=np.float64) if floor is not None else np.full((2, 2), np.inf)
        self.blend_frames = int(blend_frames)
        self.release_m, self.leash_m, self.planted_leash_m = float(release_m), float(leash_m), float(planted_leash_m)
        self.height_m, self.speed_mps = float(height_m), float(speed_mps)
        self.slow_leash_m, self.slow_root_mps = float(slow_leash_m), float(slow_root_mps)
        self.reach_leash_m = float(reach_leash_m)
        self.reach_m = None if reach_m is None else float(reach_m)
        self.stretch, self.max_drop_m = float(stretch), float(max_drop_m)
        self.drop_step_m, self.rise_step_m = float(drop_speed_mps) / self.fps, float(rise_speed_mps) / self.fps
        b = self.num_characters
        self.locked = np.zeros((b, 2), dtype=bool)
        self.released = np.zeros((b, 2), dtype=bool)  # let go while still in contact: wait for the contact to end
        self.weight = np.zeros((b, 2))
        self.world_lock_xz = np.zeros((b, 2, 2))
        self.world_offset_xz = np.zeros((b, 2, 2))
        self.contacts = np.zeros((b, 2), dtype=bool)
        self.drop_m = np.zeros((b, 1))
        self._fade = np.full((b, 2), 1.0 / self.blend_frames)  # weight lost per step while blending out
        self._prev_pos: np.ndarray | None = None  # (B, J, 3) the last step's uncorrected pose
        self._has_prev = np.zeros(b, dtype=bool)
        self._world_drawn_xz = np.zeros((b, 2, 2))  # the toes (x, z) as the last step drew them

    @classmethod
    def from_data(cls, chains: LegChains, num_characters: int, fps: float, world_pos: np.ndarray | None,
                  **options) -> FootLocker:
        """A locker whose floor (:func:`floor_heights`) and stance reach (:func:`stance_reach`) come from the data's
        poses ``world_pos`` (..., J, 3) m, e.g. the VAE's start frames; None: the lowest feet it sees are the floor
        and no leash is bounded by reach."""
        if world_pos is None:
            return cls(chains, num_characters, fps, None, **options)
        return cls(chains, num_characters, fps, floor_heights(world_pos, chains),
                   reach_m=stance_reach(world_pos, chains), **options)

    def reset(self, mask: np.ndarray | None = None) -> None:
        """Forget the locks (and the previous pose) of characters ``mask`` (B,) bool (None: all), e.g. teleported
        ones: their next step starts from the model's pose with no correction."""
        mask = np.ones(self.num_characters, dtype=bool) if mask is None else np.asarray(mask, dtype=bool)
        self.locked[mask] = False
        self.released[mask] = False
        self.weight[mask] = 0.0
        self.contacts[mask] = False
        self.drop_m[mask] = 0.0
        self._has_prev[mask] = False

    def step(self, world_pos: np.ndarray, world_rot: np.ndarray | None = None, contacts: np.ndarray | None = None,
             predicted: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray | None]:
        """One simulation step: the model's pose (B, J, 3) m, optionally its world rotations (B, J, 3, 3) and
        contacts (B, 2) bool per side (else detected, :func:`detect_contacts` at ``speed_mps``, or-ed with the
        model's ``predicted`` ones (B, 2), :func:`channel_contacts`) -> corrected positions (B, J, 3) and rotations
        (B, J, 3, 3) (None without ``world_rot``). The inputs are not modified."""
        if world_pos.shape[0] != self.num_characters:
            raise ValueError(f"FootLocker for {self.num_characters} characters got poses of {world_pos.shape[0]}")
        if not self.fixed_floor:
            kinds = world_pos[:, self.chains.contact_joints, 1].min(axis=(0, 1))  # (2,) foot, toe
            self.floor = np.minimum(self.floor, kinds[None, :])
        world_prev = world_pos if self._prev_pos is None else self._prev_pos  # (B, J, 3) the model's last pose
        if contacts is None:
            contacts = detect_contacts(world_pos, world_prev, self.chains, self.floor, self.fps, self.height_m,
                                       self.speed_mps)
            if predicted is not None:  # the model's stance frames where its foot moves, and what its poses plant
                contacts = contacts | np.asarray(predicted, dtype=bool)
        contacts = np.asarray(contacts, dtype=bool) & self._has_prev[:, None]  # a new character starts unlocked
        drawn_before = self._has_prev.copy()  # (B,) the last step drew the character (no reset since)
        world_step = np.linalg.norm((world_pos - world_prev)[:, self.chains.toe][..., ::2], axis=-1)  # (B, 2) m
        self._prev_pos = world_pos.copy()
        self._has_prev[:] = True
        self.contacts = contacts

        world_toe_xz = world_pos[:, self.chains.toe][..., ::2]  # (B, 2, 2): x, z
        drift = np.linalg.norm(world_toe_xz - self.world_lock_xz, axis=-1)  # (B, 2) m
        slid = self.locked & (drift > self.release_m)  # before the contact test: a jump also ends the contact
        ended = self.locked & ~(contacts & ~slid)
        self.locked &= contacts & ~slid
        self.released = (self.released | slid) & contacts
        # Let go, the correction (the lock minus the model's toe then) eases to nothing while the toe moves with the
        # model: over blend_frames steps, more for a correction over BLEND_OUT_STEP_M per step, so the toe never
        # moves more than that faster than the model's (no pop), and peels off the ground rather than sliding.
        offset = self.world_lock_xz - world_toe_xz  # (B, 2, 2)
        steps = np.maximum(self.blend_frames, np.ceil(np.linalg.norm(offset, axis=-1) / BLEND_OUT_STEP_M - 1e-9))
        self._fade = np.where(ended, 1.0 / steps, self._fade)
        self.world_offset_xz = np.where(ended[..., None], offset, self.world_offset_xz)
        self.weight = np.where(self.locked, 1.0, np.maximum(self.weight - self._fade, 0.0))
        self.weight[slid & (drift > JUMP_RELEASES * self.release_m)] = 0.0
        # A new lock starts where the toe was drawn the step before (mid blend-out included): the model's step into
        # the contact is not taken.
        start = contacts & ~self.locked & ~self.released
        world_drawn_xz = np.where(drawn_before[:, None, None], self._world_drawn_xz,
                                  world_toe_xz + self.weight[..., None] * self.world_offset_xz)  # (B, 2, 2)
        self.world_lock_xz = np.where(start[..., None], world_drawn_xz, self.world_lock_xz)
        self.weight = np.where(start, 1.0, self.weight)
        self.locked |= start
        # The leash: a held toe the model moves faster than the data's contact speed (CONTACT_SPEED_MPS: not
        # planted by the data's rule) is pulled to within leash_m of the model's toe, by at most the model toe's own
        # step (never faster than the model's toe); a toe the data's rule calls planted never slides.
        away = self.world_lock_xz - world_toe_xz  # (B, 2, 2)
        gap = np.linalg.norm(away, axis=-1)  # (B, 2) m
        planted = world_step <= CONTACT_SPEED_MPS / self.fps  # the data's rule would call it planted
        leash = np.where(planted, self.planted_leash_m, self.leash_m)  # (B, 2) m
        root_speed = np.linalg.norm(world_pos[:, 0, ::2] - world_prev[:, 0, ::2], axis=-1) * self.fps  # (B,) m/s
        slow = (root_speed < self.slow_root_mps)[:, None]  # (B, 1)
        if self.reach_m is not None:  # ... while the lock stays within the data's stance reach of the root
            in_reach = np.linalg.norm(self.world_lock_xz - world_pos[:, None, 0, ::2], axis=-1) <= self.reach_m
            slow = slow & in_reach
            leash = np.where(in_reach, np.maximum(leash, self.reach_leash_m), leash)
        leash = np.where(slow, np.maximum(leash, self.slow_leash_m), leash)
        pull = np.where(self.locked, np.clip(gap - leash, 0.0, world_step), 0.0)  # (B, 2) m
        self.world_lock_xz = self.world_lock_xz - away * (pull / np.maximum(gap, _EPS))[..., None]

        # The body lowers for locks beyond the legs' reach (needed_drop) at most drop_speed_mps, and rises back at
        # most rise_speed_mps: no whole-body pop when a lock starts or ends.
        world_target_xz, active = self._targets(world_toe_xz)
        need = needed_drop(world_pos, self.chains, world_target_xz, active, self.stretch, self.max_drop_m)  # (B, 1)
        self.drop_m = np.clip(need, self.drop_m - self.rise_step_m, self.drop_m + self.drop_step_m)
        out_pos, out_rot = self.apply(world_pos, world_rot)
        # A leg the body was not lowered enough for reaches as near its lock as it can (lock_legs): the lock moves
        # there, so the toe does not spring back when the body catches up.
        world_drawn_xz = out_pos[:, self.chains.toe][..., ::2]
        self.world_lock_xz = np.where(self.locked[..., None], world_drawn_xz, self.world_lock_xz)
        self._world_drawn_xz = world_drawn_xz.copy()
        return out_pos, out_rot

    def _targets(self, world_toe_xz: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(toe targets (B, 2, 2) m x, z; active legs (B, 2)) of the locks as they stand, for toes at ``world_toe_xz``
        (B, 2, 2): a locked toe's lock, a released toe's own position plus its remaining correction."""
        correction = np.where(self.locked[..., None], self.world_lock_xz - world_toe_xz,
                              self.weight[..., None] * self.world_offset_xz)  # (B, 2, 2)
        return world_toe_xz + correction, self.locked | (self.weight > 0.0)

    def apply(self, world_pos: np.ndarray, world_rot: np.ndarray | None = None,
              drop_m: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray | None]:
        """The locks as they stand applied to a pose (B, J, 3) (and rotations (B, J, 3, 3)) without stepping: the
        last step's pose again, e.g. for its rotations only when a capture asks, or the pose forward kinematics
        makes of its rotations, lowered by the ``drop_m`` (B, 1) m the step's pose was (default: the step's own,
        ``self.drop_m``). The inputs are not modified (they come back as they are where no foot is locked or
        blending out and the body is not lowered)."""
        drop_m = self.drop_m if drop_m is None else drop_m
        world_target_xz, active = self._targets(world_pos[:, self.chains.toe][..., ::2])
        if not active.any() and not (drop_m > 0.0).any():
            return world_pos, world_rot
        return lock_legs(world_pos, world_rot, self.chains, world_target_xz, active, self.stretch, self.max_drop_m,
                         drop_m)
