"""Skeleton: joint names, hierarchy and rest offsets, for any character.

Every later stage (VAE evaluation, viewer, BVH export, mirroring) reads the
skeleton from the dataset or checkpoint, so nothing is hard-wired to one rig.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

# Ordered (pattern, replacement-for-left, replacement-for-right) rules that find a side token
# in a joint name. The first rule that matches decides the side.
_SIDE_RULES: list[tuple[re.Pattern[str], str, str]] = [
    (re.compile(r"Left"), "Left", "Right"),
    (re.compile(r"Right"), "Right", "Left"),
    (re.compile(r"left"), "left", "right"),
    (re.compile(r"right"), "right", "left"),
    (re.compile(r"LEFT"), "LEFT", "RIGHT"),
    (re.compile(r"RIGHT"), "RIGHT", "LEFT"),
]
# Prefix/suffix tokens: "L_Wrist", "LHipJoint", "lHip", "l_hip", "Shoulder_L", "hand.l".
_PREFIX = re.compile(r"^(?P<s>[LRlr])(?=[A-Z_.\-\s])")
_SUFFIX = re.compile(r"(?<=[_.\-\s])(?P<s>[LRlr])$")
_SWAP = {"L": "R", "R": "L", "l": "r", "r": "l"}
_FOOT = re.compile(r"foot|ankle|toe", re.IGNORECASE)


def _side_token(name: str) -> tuple[str, str] | None:
    """(side "left"/"right", opposite-side name), or None for a centre joint."""
    for pattern, old, new in _SIDE_RULES:
        if pattern.search(name):
            return ("left" if old[0] in "Ll" else "right"), name.replace(old, new, 1)
    m = _PREFIX.search(name) or _SUFFIX.search(name)
    if m:
        s = m["s"]
        other = _SWAP[s] + name[1:] if m.re is _PREFIX else name[:-1] + _SWAP[s]
        return ("left" if s in "Ll" else "right"), other
    return None


def mirrored_name(name: str) -> str | None:
    """The name of the opposite-side joint, or None for a centre joint (no side token)."""
    token = _side_token(name)
    return None if token is None else token[1]


def name_side(name: str) -> str | None:
    """"left", "right" or None (centre joint), from the joint name."""
    token = _side_token(name)
    return None if token is None else token[0]


@dataclass
class Skeleton:
    """Joint hierarchy in topological order (a parent always comes before its children).

    Attributes:
        joint_names: J names.
        parents: (J,) int, -1 for the root (joint 0).
        offsets: (J, 3) rest offset of each joint from its parent, metres, parent's frame.
        end_offsets: (J, 3) offset of the joint's BVH ``End Site`` (zeros where it has none), metres.
    """

    joint_names: list[str]
    parents: np.ndarray
    offsets: np.ndarray
    end_offsets: np.ndarray = field(default=None)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        self.joint_names = [str(n) for n in self.joint_names]
        self.parents = np.asarray(self.parents, dtype=np.int64)
        self.offsets = np.asarray(self.offsets, dtype=np.float64).reshape(-1, 3)
        if self.end_offsets is None:
            self.end_offsets = np.zeros_like(self.offsets)
        self.end_offsets = np.asarray(self.end_offsets, dtype=np.float64).reshape(-1, 3)
        j = len(self.joint_names)
        if not (self.parents.shape == (j,) and self.offsets.shape == (j, 3) and self.end_offsets.shape == (j, 3)):
            raise ValueError(
                f"skeleton arrays disagree: {j} joint names, parents {self.parents.shape}, "
                f"offsets {self.offsets.shape}, end_offsets {self.end_offsets.shape}"
            )
        if j == 0 or self.parents[0] != -1 or np.any(self.parents[1:] < 0) or np.any(self.parents[1:] >= np.arange(1, j)):
            raise ValueError("skeleton parents must list the root first (-1) and every parent before its child")

    @property
    def num_joints(self) -> int:
        return len(self.joint_names)

    def index(self, name: str) -> int:
        try:
            return self.joint_names.index(name)
        except ValueError:
            raise KeyError(f"no joint named {name!r}; joints are {self.joint_names}") from None

    def children(self, j: int) -> list[int]:
        return [int(c) for c in np.nonzero(self.parents == j)[0]]

    def bone_lengths(self) -> np.ndarray:
        """(J,) metres; 0 for the root."""
        lengths = np.linalg.norm(self.offsets, axis=-1)
        lengths[0] = 0.0
        return lengths

    def mirror_indices(self) -> np.ndarray:
        """(J,) permutation mapping each joint to its opposite-side joint (itself at the centre).

        Raises ValueError listing the joints whose counterpart is missing.
        """
        index = {n: i for i, n in enumerate(self.joint_names)}
        perm = np.arange(self.num_joints)
        unmatched: list[str] = []
        sided = 0
        for i, name in enumerate(self.joint_names):
            other = mirrored_name(name)
            if other is None:
                continue
            sided += 1
            if other in index:
                perm[i] = index[other]
            else:
                unmatched.append(f"{name} (expected {other})")
        if unmatched:
            raise ValueError(
                "cannot mirror: no opposite-side joint for " + ", ".join(unmatched)
                + ". Rename joints with Left/Right, L/R or l_/r_ tokens, or drop --mirror."
            )
        if sided == 0:
            raise ValueError(
                f"cannot mirror: no joint name carries a side token (Left/Right, L/R, l_/r_); joints are "
                f"{self.joint_names}. Rename them or drop --mirror."
            )
        return perm

    def mirror_reflections(self) -> np.ndarray:
        """(J, 3, 3) per-joint reflections M_j of the local rest frames used by mirroring.

        A mirrored pose has orientations ``S R_pair(j) M_j`` (``S`` reflects the character's x axis).
        For positions to follow, ``M_j`` must map each child offset of joint j onto the offset of the
        mirrored child: ``M_j o_c = o_pair(c)``. Each M_j is a Householder reflection ``I - 2 n n^T`` whose
        normal n is the dominant direction of those offset differences (shared by a joint and its pair,
        so mirroring twice is the identity); where the children need no reflection (a single centred
        child), n is the rest pose's lateral axis made perpendicular to them.
        """
        perm = self.mirror_indices()
        rest = np.zeros_like(self.offsets)  # rest-pose positions
        for j in range(1, self.num_joints):
            rest[j] = rest[self.parents[j]] + self.offsets[j]
        lateral = np.zeros(3)
        lateral[int(np.argmax(np.abs(rest - rest[perm]).sum(axis=0)))] = 1.0

        def child_offsets(j: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
            kids = self.children(j)
            src = [self.offsets[c] for c in kids]
            dst = [self.offsets[perm[c]] for c in kids]
            if np.any(self.end_offsets[j]):
                src.append(self.end_offsets[j])
                dst.append(self.end_offsets[perm[j]])
            return src, dst

        out = np.tile(np.eye(3), (self.num_joints, 1, 1))
        for j in range(self.num_joints):
            if perm[j] < j:
                continue
            src, dst = child_offsets(j)
            scatter = np.zeros((3, 3))
            for u, v in zip(src, dst, strict=True):
                d = u - v
                scatter += np.outer(d, d)
            if np.trace(scatter) > 1e-12:
                n = np.linalg.eigh(scatter)[1][:, -1]
            else:
                # The lateral axis (or failing that another axis) made perpendicular to the children.
                for axis in (lateral, *np.eye(3)):
                    n = axis.copy()
                    for u in src:
                        if np.linalg.norm(u) > 1e-9:
                            u = u / np.linalg.norm(u)
                            n = n - n.dot(u) * u
                    if np.linalg.norm(n) > 1e-3:
                        break
                n = n / np.linalg.norm(n)
            out[j] = out[perm[j]] = np.eye(3) - 2.0 * np.outer(n, n)
        return out

    def foot_indices(self) -> np.ndarray:
        """Joints whose name says foot, ankle or toe (used for contact labels)."""
        return np.array([i for i, n in enumerate(self.joint_names) if _FOOT.search(n)], dtype=np.int64)

    def to_arrays(self, prefix: str = "") -> dict[str, np.ndarray]:
        """Plain arrays (no pickles) for npz files and ``weights_only`` checkpoints."""
        return {
            f"{prefix}joint_names": np.array(self.joint_names, dtype=np.str_),
            f"{prefix}parents": self.parents.copy(),
            f"{prefix}offsets": self.offsets.astype(np.float32),
            f"{prefix}end_offsets": self.end_offsets.astype(np.float32),
        }

    @classmethod
    def from_arrays(cls, arrays, prefix: str = "") -> Skeleton:
        end = arrays[f"{prefix}end_offsets"] if f"{prefix}end_offsets" in arrays else None
        return cls(
            joint_names=[str(n) for n in np.asarray(arrays[f"{prefix}joint_names"]).tolist()],
            parents=np.asarray(arrays[f"{prefix}parents"]),
            offsets=np.asarray(arrays[f"{prefix}offsets"]),
            end_offsets=None if end is None else np.asarray(end),
        )

    def to_dict(self) -> dict:
        """Lists only: safe inside a ``torch.save`` checkpoint loaded with ``weights_only=True``."""
        return {
            "joint_names": list(self.joint_names),
            "parents": self.parents.tolist(),
            "offsets": self.offsets.tolist(),
            "end_offsets": self.end_offsets.tolist(),
        }

    @classmethod
    def from_dict(cls, d: dict) -> Skeleton:
        return cls(d["joint_names"], d["parents"], d["offsets"], d.get("end_offsets"))
