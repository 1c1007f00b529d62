"""The capsules of a body seen from afar, by level of detail (pure numpy).

Software GL pays per primitive and per 4x4 pixel block it touches, whatever the shader does, so a far character
must be few capsules. Each level is an :class:`ImpostorPlan`, computed once per skeleton:

- ``mid``: exactly the capsules of :func:`viewer.body.body_capsules` (bones, head, hands, feet): the exact look,
  only drawn as camera-facing quads (:mod:`viewer.crowd`).
- ``far``: the torso as one capsule (root to the top of the spine), the head, each limb as one straight capsule
  from its first joint to its hand or foot joint (a knee or elbow bend is a pixel or two at that size), and a bar
  across each pair of arm roots (shoulders sit beyond the torso's radius; without it the arms float).
- ``tiny``: the torso, the head and the legs.

A skeleton whose joint names give no sides (no limbs found) falls back to its thick bones and heads for both
coarse levels.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from mocap.skeleton import mirrored_name, name_side
from viewer.body import (
    FOOT_LENGTH,
    FOOT_RADIUS,
    HAND_RADIUS,
    HEAD_RADIUS,
    LENGTH_RADIUS_RANGE,
    LENGTH_RADIUS_RATIO,
    SIDE_SHADE,
    TORSO_RADIUS,
    body_plan,
    facing,
    unit,
)

SHOULDER_BAR_RADIUS = 0.07  # thicker than the girdle bones it stands for: it reads as the upper chest
FALLBACK_MIN_RADIUS = 0.05  # no limbs found: the coarse levels keep the bones at least this thick
_LIMB_END = re.compile(r"ankle|foot|wrist|hand", re.IGNORECASE)  # where a merged limb stops (no toes, fingers)
_LEG = re.compile(r"hip|leg|thigh|knee|ankle|foot", re.IGNORECASE)
_HEAD = re.compile(r"head", re.IGNORECASE)


@dataclass(frozen=True)
class ImpostorPlan:
    """C capsules built from joint positions P (J, 3) and the facing F (3,).

    Endpoint a of capsule k is ``P[a_joint] + a_offset * unit(P[a_joint] - P[a_base]) + a_forward * F +
    a_lift * up`` (offsets of 0 leave the joint itself; a head or hand sphere sits ``offset`` beyond its leaf
    joint, away from its parent; a foot runs along F from its ankle), endpoint b the same with b's fields; its
    radius is ``radius`` (negative: from the capsule's length, as in :func:`viewer.body.body_capsules`) and its
    colour factor ``shade``.

    Attributes:
        a_joint, a_base, b_joint, b_base: (C,) joint indices.
        a_offset, a_forward, a_lift, b_offset, b_forward, b_lift, radius: (C,) metres.
        shade: (C,) colour factor.
        left, right: (P,) paired joints, for the facing direction.
    """

    a_joint: np.ndarray
    a_base: np.ndarray
    a_offset: np.ndarray
    a_forward: np.ndarray
    a_lift: np.ndarray
    b_joint: np.ndarray
    b_base: np.ndarray
    b_offset: np.ndarray
    b_forward: np.ndarray
    b_lift: np.ndarray
    radius: np.ndarray
    shade: np.ndarray
    left: np.ndarray
    right: np.ndarray

    @property
    def count(self) -> int:
        return len(self.radius)


@dataclass(frozen=True)
class ImpostorLevels:
    """The plans of one skeleton's ``mid``, ``far`` and ``tiny`` levels (see the module docstring)."""

    mid: ImpostorPlan
    far: ImpostorPlan
    tiny: ImpostorPlan


def impostor_levels(joint_names, parents, joint_radii=None) -> ImpostorLevels:
    """The impostor plans of a skeleton (same arguments as :func:`viewer.body.body_plan`)."""
    radii_key = None if joint_radii is None else tuple(float(r) for r in np.asarray(joint_radii).reshape(-1))
    return _impostor_levels(tuple(str(n) for n in joint_names), tuple(int(p) for p in parents), radii_key)


def _row(a, a_base, b, b_base, radius, shade=1.0, a_offset=0.0, b_offset=0.0, forward=(0.0, 0.0), lift=0.0):
    """One capsule as a table row: a_joint, a_base, a_offset, a_forward, a_lift, then b's, radius, shade."""
    return (a, a_base, a_offset, forward[0], lift, b, b_base, b_offset, forward[1], lift, radius, shade)


def _plan(rows: list[tuple], left: np.ndarray, right: np.ndarray) -> ImpostorPlan:
    table = np.array(rows, dtype=np.float64).reshape(-1, 12)  # (C, 12)

    def ints(column):
        return table[:, column].astype(np.int64)

    return ImpostorPlan(a_joint=ints(0), a_base=ints(1), a_offset=table[:, 2], a_forward=table[:, 3],
                        a_lift=table[:, 4], b_joint=ints(5), b_base=ints(6), b_offset=table[:, 7],
                        b_forward=table[:, 8], b_lift=table[:, 9], radius=table[:, 10], shade=table[:, 11],
                        left=left, right=right)


def _descendants(children: list[list[int]], j: int) -> int:
    return sum(1 + _descendants(children, c) for c in children[j])


@lru_cache(maxsize=64)
def _impostor_levels(names: tuple[str, ...], parents: tuple[int, ...], radii: tuple[float, ...] | None
                     ) -> ImpostorLevels:
    plan = body_plan(names, parents, radii)
    # The exact capsules, in body_capsules' order: bones, heads, hands, feet.
    heads = [_row(j, p, j, p, HEAD_RADIUS, a_offset=off, b_offset=off)
             for j, p, off in zip(plan.head_joint, plan.head_parent, plan.head_offset, strict=True)]
    exact = [_row(p, p, c, c, r, sh)
             for p, c, r, sh in zip(plan.bone_parent, plan.bone_child, plan.bone_radius, plan.bone_shade, strict=True)]
    exact += heads
    exact += [_row(j, p, j, p, HAND_RADIUS, sh, 0.6 * HAND_RADIUS, 0.6 * HAND_RADIUS)
              for j, p, sh in zip(plan.hand_joint, plan.hand_parent, plan.hand_shade, strict=True)]
    heel = -0.25 * FOOT_LENGTH
    exact += [_row(j, j, j, j, FOOT_RADIUS, sh, forward=(heel, heel + FOOT_LENGTH), lift=-0.5 * FOOT_RADIUS)
              for j, sh in zip(plan.foot_joint, plan.foot_shade, strict=True)]
    mid = _plan(exact, plan.left, plan.right)

    bone_radius = dict(zip(plan.bone_child.tolist(), plan.bone_radius.tolist(), strict=True))  # by child joint
    children: list[list[int]] = [[] for _ in names]
    for c, p in enumerate(parents):
        if p >= 0:
            children[p].append(c)
    sided = [name_side(n) is not None for n in names]
    # Limbs: chains of sided joints hanging from a centre joint, followed down their largest branch to the
    # first hand or foot joint (toes and fingers are below a pixel far away) or their leaf.
    limbs = []
    for start, parent in enumerate(parents):
        if parent < 0 or not sided[start] or sided[parent]:
            continue
        chain = [start]
        while children[chain[-1]] and not (_LIMB_END.search(names[chain[-1]]) and len(chain) > 1):
            chain.append(max(children[chain[-1]], key=lambda c: _descendants(children, c)))
        if len(chain) < 2:
            continue
        thick = [bone_radius[c] for c in chain[1:] if bone_radius.get(c, 0.0) > 0]
        limbs.append((chain, float(np.mean(thick)) if thick else -1.0))
    if not limbs:
        coarse = [row for row in exact[: len(plan.bone_child) + len(heads)]
                  if row[10] >= FALLBACK_MIN_RADIUS or row[10] < 0]
        fallback = _plan(coarse or exact, plan.left, plan.right)
        return ImpostorLevels(mid=mid, far=fallback, tiny=fallback)

    # The spine: from the root up its largest centre branch; the torso stops below a head joint (the head
    # sphere covers it).
    spine = [0]
    while centre := [c for c in children[spine[-1]] if not sided[c]]:
        spine.append(max(centre, key=lambda c: _descendants(children, c)))
    top = spine[-2] if len(spine) > 2 and _HEAD.search(names[spine[-1]]) else spine[-1]
    spine_radii = [bone_radius[c] for c in spine[1:] if bone_radius.get(c, 0.0) > 0]
    torso = [_row(0, 0, top, top, max(spine_radii) if radii is not None and spine_radii else TORSO_RADIUS)]
    legs, arms, bars = [], [], []
    index = {n: i for i, n in enumerate(names)}
    for chain, radius in limbs:
        start, end = chain[0], chain[-1]
        row = _row(start, start, end, end, radius, SIDE_SHADE[name_side(names[start])])
        is_leg = any(_LEG.search(names[j]) for j in chain)
        (legs if is_leg else arms).append(row)
        partner = index.get(mirrored_name(names[start]) or "")
        if not is_leg and partner is not None and name_side(names[start]) == "left":
            bars.append(_row(start, start, partner, partner, SHOULDER_BAR_RADIUS if radii is None else radius))
    far = _plan(torso + heads + bars + legs + arms, plan.left, plan.right)
    tiny = _plan(torso + heads + (legs or arms), plan.left, plan.right)
    return ImpostorLevels(mid=mid, far=far, tiny=tiny)


def impostor_capsules(plan: ImpostorPlan, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Poses (N, J, 3) -> the plan's capsules: endpoints (N, C, 2, 3), radii (N, C)."""
    up = np.array([0.0, 1.0, 0.0])
    ends = np.empty((len(positions), plan.count, 2, 3))
    forward = None
    for side, (joint, base, offset, ahead, lift) in enumerate((
            (plan.a_joint, plan.a_base, plan.a_offset, plan.a_forward, plan.a_lift),
            (plan.b_joint, plan.b_base, plan.b_offset, plan.b_forward, plan.b_lift))):
        ends[:, :, side] = positions[:, joint]
        beyond = np.flatnonzero(offset)  # heads and hands sit beyond their joint: skip this for bones
        if len(beyond):
            p = ends[:, beyond, side]  # (N, M, 3)
            ends[:, beyond, side] = p + unit(p - positions[:, base[beyond]], up) * offset[beyond, None]
        along = np.flatnonzero(ahead)  # feet
        if len(along):
            if forward is None:
                forward = facing(plan.left, plan.right, positions)  # (N, 3)
            ends[:, along, side] += forward[:, None] * ahead[along, None]
            ends[:, along, side, 1] += lift[along]
    r = np.broadcast_to(plan.radius, ends.shape[:2])
    if np.any(plan.radius < 0):
        length = np.linalg.norm(ends[:, :, 1] - ends[:, :, 0], axis=-1)
        r = np.where(r < 0, np.clip(LENGTH_RADIUS_RATIO * length, *LENGTH_RADIUS_RANGE), r)
    return ends, r
