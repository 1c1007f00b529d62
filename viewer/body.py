"""How a skeleton's joint positions become a body of capsules (pure numpy).

A *body plan* is computed once per skeleton (joint names + parents) and then applied to any
number of poses at once:

- one capsule per bone (parent joint -> child joint). Its radius comes from the joint names when they
  say what the segment is (a bone is named after its parent joint: hip -> knee is the thigh, shoulder ->
  elbow the upper arm), assuming a human-sized skeleton in metres: torso (root/hips/pelvis/spine/chest)
  thick, neck thin, limbs tapering to the hands and feet. Bones from a centre joint to a sided joint
  (pelvis to hip, chest to shoulder) get a girdle radius. Unnamed bones get a radius proportional to
  their length (``0.12 x length``, 1.5-6 cm). A radius of 0 hides a bone.
- extra shapes at leaf joints, so rigs without end sites (the DeepMimic humanoid: ``neck``, ``*_wrist``,
  ``*_ankle`` are leaves) still look like a body: a head sphere beyond a leaf head/neck joint, a hand
  sphere beyond a leaf wrist/hand, and a foot capsule pointing forward from a leaf ankle/foot (forward
  comes from the left/right joint pairs: a character whose left side points to +x faces +z).
- left-side shapes are drawn a little lighter and right-side shapes a little darker, so the gait reads.

When the caller gives ``joint_radii`` (J,) (the radius of the bone that ends at each joint), they are
used as is and no extra leaf shapes are added.

Seen from afar (a crowd), a body is drawn with fewer capsules: :mod:`viewer.impostors`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from mocap.skeleton import mirrored_name, name_side

# Segment radii (m) by the name of the bone's parent joint; the first matching rule wins.
# Forearm before arm, upper leg before leg: "LeftForeArm" also contains "Arm".
_LIMB_RADII: list[tuple[re.Pattern[str], float]] = [
    (re.compile(p, re.IGNORECASE), r)
    for p, r in [
        (r"finger|thumb|index|middle|ring|pinky", 0.012),
        (r"toe", 0.03),
        (r"ankle|foot", 0.04),
        (r"wrist|hand", 0.035),
        (r"forearm|lowerarm|elbow", 0.04),
        (r"clavicle|collar", 0.045),
        (r"upperarm|arm|shoulder", 0.045),
        (r"upleg|upperleg|thigh|hip", 0.06),
        (r"knee|shin|calf|lowerleg|leg", 0.05),
    ]
]
_TORSO = re.compile(r"root|hip|pelvis|spine|chest|torso|abdomen|back|belly", re.IGNORECASE)
_NECK = re.compile(r"neck", re.IGNORECASE)
_HEAD = re.compile(r"head", re.IGNORECASE)
_LEG_LIKE = re.compile(r"hip|leg|thigh|knee", re.IGNORECASE)
_HAND_LEAF = re.compile(r"wrist|hand", re.IGNORECASE)
_FOOT_LEAF = re.compile(r"ankle|foot", re.IGNORECASE)
_FINGER = re.compile(r"finger|thumb|index|middle|ring|pinky", re.IGNORECASE)

TORSO_RADIUS = 0.1
NECK_RADIUS = 0.045
HEAD_RADIUS = 0.1
GIRDLE_LEG_RADIUS = 0.065
GIRDLE_ARM_RADIUS = 0.055
HAND_RADIUS = 0.04
FOOT_RADIUS = 0.04
FOOT_LENGTH = 0.17
LENGTH_RADIUS_RATIO = 0.12
LENGTH_RADIUS_RANGE = (0.015, 0.06)
SIDE_SHADE = {"left": 1.15, "right": 0.85, None: 1.0}


@dataclass(frozen=True)
class BodyPlan:
    """Which capsules to build from a pose, as index arrays (see the module docstring).

    Attributes:
        bone_parent, bone_child: (B,) joint indices of each drawn bone.
        bone_radius: (B,) metres; negative means "proportional to the current bone length".
        bone_shade: (B,) colour factor (left/right tint).
        head_joint, head_parent: (H,) leaf head joints and their parents; head_offset (H,) metres beyond
            the joint along the parent->joint direction.
        hand_joint, hand_parent: (A,) leaf hand joints and their parents; hand_shade (A,).
        foot_joint: (F,) leaf foot joints; foot_shade (F,).
        left, right: (P,) paired joints, for the facing direction of the feet.
    """

    bone_parent: np.ndarray
    bone_child: np.ndarray
    bone_radius: np.ndarray
    bone_shade: np.ndarray
    head_joint: np.ndarray
    head_parent: np.ndarray
    head_offset: np.ndarray
    hand_joint: np.ndarray
    hand_parent: np.ndarray
    hand_shade: np.ndarray
    foot_joint: np.ndarray
    foot_shade: np.ndarray
    left: np.ndarray
    right: np.ndarray

    @property
    def capsules_per_body(self) -> int:
        return len(self.bone_child) + len(self.head_joint) + len(self.hand_joint) + len(self.foot_joint)


def _segment_radius(parent_name: str, child_name: str) -> float:
    """Radius of the bone parent -> child from the names; -1 means "from its length"."""
    parent_side, child_side = name_side(parent_name), name_side(child_name)
    if parent_side is None and child_side is not None:
        return GIRDLE_LEG_RADIUS if _LEG_LIKE.search(child_name) else GIRDLE_ARM_RADIUS
    if parent_side is None:
        if _HEAD.search(parent_name):
            return HEAD_RADIUS
        if _NECK.search(parent_name):
            return NECK_RADIUS
        if _TORSO.search(parent_name):
            return TORSO_RADIUS
        return -1.0
    for pattern, radius in _LIMB_RADII:
        if pattern.search(parent_name):
            return radius
    return -1.0


def body_plan(joint_names, parents, joint_radii=None) -> BodyPlan:
    """The plan for a skeleton; ``joint_radii`` (J,) overrides the name rules (see the module docstring)."""
    radii_key = None if joint_radii is None else tuple(float(r) for r in np.asarray(joint_radii).reshape(-1))
    return _body_plan(tuple(str(n) for n in joint_names), tuple(int(p) for p in parents), radii_key)


@lru_cache(maxsize=64)
def _body_plan(names: tuple[str, ...], parents: tuple[int, ...], radii: tuple[float, ...] | None) -> BodyPlan:
    j = len(names)
    if len(parents) != j:
        raise ValueError(f"body plan: {j} joint names but {len(parents)} parents")
    if radii is not None and len(radii) != j:
        raise ValueError(f"joint_radii has {len(radii)} entries; it needs one per joint ({j})")
    has_child = np.zeros(j, dtype=bool)
    for p in parents[1:]:
        has_child[p] = True

    bone_parent, bone_child, bone_radius, bone_shade = [], [], [], []
    for c in range(1, j):
        p = parents[c]
        r = radii[c] if radii is not None else _segment_radius(names[p], names[c])
        if r == 0:
            continue
        bone_parent.append(p)
        bone_child.append(c)
        bone_radius.append(r)
        bone_shade.append(SIDE_SHADE[name_side(names[c])])

    head_joint, head_offset, hand_joint, foot_joint = [], [], [], []
    if radii is None:
        any_head = any(_HEAD.search(n) for n in names)
        for i, n in enumerate(names):
            if has_child[i] or parents[i] < 0:
                continue
            if _HEAD.search(n) or (_NECK.search(n) and not any_head):
                head_joint.append(i)
                # A leaf "head" joint sits at the base of the skull; a leaf "neck" (DeepMimic) lower still.
                head_offset.append(0.08 if _HEAD.search(n) else 0.17)
            elif name_side(n) is not None and _FOOT_LEAF.search(n):
                foot_joint.append(i)
            elif name_side(n) is not None and _HAND_LEAF.search(n) and not _FINGER.search(n):
                hand_joint.append(i)

    index = {n: i for i, n in enumerate(names)}
    left = [i for i, n in enumerate(names) if name_side(n) == "left" and mirrored_name(n) in index]
    right = [index[mirrored_name(names[i])] for i in left]
    if not left:
        foot_joint = []  # no facing direction: leaf feet keep their round end caps only

    def ints(x):
        return np.array(x, dtype=np.int64)

    return BodyPlan(
        bone_parent=ints(bone_parent),
        bone_child=ints(bone_child),
        bone_radius=np.array(bone_radius, dtype=np.float64),
        bone_shade=np.array(bone_shade, dtype=np.float64),
        head_joint=ints(head_joint),
        head_parent=ints([parents[i] for i in head_joint]),
        head_offset=np.array(head_offset, dtype=np.float64),
        hand_joint=ints(hand_joint),
        hand_parent=ints([parents[i] for i in hand_joint]),
        hand_shade=np.array([SIDE_SHADE[name_side(names[i])] for i in hand_joint], dtype=np.float64),
        foot_joint=ints(foot_joint),
        foot_shade=np.array([SIDE_SHADE[name_side(names[i])] for i in foot_joint], dtype=np.float64),
        left=ints(left),
        right=ints(right),
    )


def facing(left: np.ndarray, right: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """(N, 3) unit forward on the ground of poses (N, J, 3): a character whose left side points to +x faces +z."""
    across = (positions[:, left] - positions[:, right]).sum(axis=1)  # (N, 3)
    flat = np.stack([-across[:, 2], np.zeros(len(positions)), across[:, 0]], axis=-1)
    return unit(flat, np.array([0.0, 0.0, 1.0]))


def unit(v: np.ndarray, fallback: np.ndarray) -> np.ndarray:
    n = np.linalg.norm(v, axis=-1, keepdims=True)
    return np.where(n > 1e-9, v / np.maximum(n, 1e-12), fallback)


def body_capsules(plan: BodyPlan, positions: np.ndarray, rgba: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Poses (N, J, 3) world metres, colours (N, 4) -> capsules: endpoints (M, 2, 3), radii (M,), rgba (M, 4).

    M = N x plan.capsules_per_body; a sphere is a capsule with equal endpoints.
    """
    up = np.array([0.0, 1.0, 0.0])
    ends, radii, shades = [], [], []

    a, b = positions[:, plan.bone_parent], positions[:, plan.bone_child]  # (N, B, 3)
    r = np.broadcast_to(plan.bone_radius, a.shape[:2])
    if np.any(plan.bone_radius < 0):
        length = np.linalg.norm(b - a, axis=-1)
        r = np.where(r < 0, np.clip(LENGTH_RADIUS_RATIO * length, *LENGTH_RADIUS_RANGE), r)
    ends.append(np.stack([a, b], axis=2))  # (N, B, 2, 3)
    radii.append(r)
    shades.append(np.broadcast_to(plan.bone_shade, r.shape))

    if len(plan.head_joint):
        joint = positions[:, plan.head_joint]  # (N, H, 3)
        direction = unit(joint - positions[:, plan.head_parent], up)
        center = joint + direction * plan.head_offset[:, None]
        ends.append(np.stack([center, center], axis=2))
        radii.append(np.full(center.shape[:2], HEAD_RADIUS))
        shades.append(np.ones(center.shape[:2]))

    if len(plan.hand_joint):
        joint = positions[:, plan.hand_joint]
        direction = unit(joint - positions[:, plan.hand_parent], up)
        center = joint + direction * (0.6 * HAND_RADIUS)
        ends.append(np.stack([center, center], axis=2))
        radii.append(np.full(center.shape[:2], HAND_RADIUS))
        shades.append(np.broadcast_to(plan.hand_shade, center.shape[:2]))

    if len(plan.foot_joint):
        forward = facing(plan.left, plan.right, positions)  # (N, 3)
        heel = positions[:, plan.foot_joint].copy()  # (N, F, 3)
        heel[..., 1] -= 0.5 * FOOT_RADIUS
        heel -= forward[:, None] * (0.25 * FOOT_LENGTH)
        toe = heel + forward[:, None] * FOOT_LENGTH
        ends.append(np.stack([heel, toe], axis=2))
        radii.append(np.full(heel.shape[:2], FOOT_RADIUS))
        shades.append(np.broadcast_to(plan.foot_shade, heel.shape[:2]))

    endpoints = np.concatenate(ends, axis=1).reshape(-1, 2, 3)  # (N * M_body, 2, 3)
    radius = np.concatenate(radii, axis=1).reshape(-1)
    shade = np.concatenate(shades, axis=1)  # (N, M_body)
    colour = np.repeat(rgba[:, None, :], shade.shape[1], axis=1).copy()  # (N, M_body, 4)
    colour[..., :3] = np.clip(colour[..., :3] * shade[..., None], 0.0, 1.0)
    return endpoints, radius, colour.reshape(-1, 4)
