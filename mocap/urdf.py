"""Minimal URDF reader: links, joints and collision shapes, for building skeletons.

Only what forward kinematics of a character needs is read:

* ``<joint type=... >`` with ``<parent link>``, ``<child link>``, ``<origin xyz rpy>`` and ``<axis xyz>``.
  Types ``fixed``, ``revolute``, ``continuous`` and pybullet's ``spherical`` are supported;
  ``prismatic``/``floating``/``planar`` are rejected with a clear error.
* ``<link>`` names and their ``<collision>`` primitives (sphere, box, capsule, cylinder), which
  importers use to place end effectors (the top of a head sphere, the tip of a foot box).

URDF kinematics: a child link's frame is ``T(parent) @ T(origin xyz, rpy) @ motion(q)``, where
``rpy`` is roll about x, then pitch about y, then yaw about z, all about fixed axes, i.e.
``R = Rz(yaw) @ Ry(pitch) @ Rx(roll)``, and ``axis`` is expressed in the joint frame.
Lengths are returned as written in the file (no scaling).
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mocap.rotations import euler_to_matrix, quat_to_matrix

JOINT_TYPES = ("fixed", "revolute", "continuous", "spherical")
GEOMETRY_KINDS = ("sphere", "box", "capsule", "cylinder")


@dataclass(frozen=True, eq=False)
class UrdfShape:
    """One collision primitive of a link, in the link frame.

    ``size``: sphere (radius,), box (x, y, z), capsule/cylinder (radius, length).
    """

    kind: str
    origin_xyz: np.ndarray
    origin_rpy: np.ndarray
    size: tuple[float, ...]


@dataclass(frozen=True, eq=False)
class UrdfLink:
    name: str
    shapes: tuple[UrdfShape, ...] = ()


@dataclass(frozen=True, eq=False)
class UrdfJoint:
    name: str
    kind: str
    parent: str
    child: str
    origin_xyz: np.ndarray
    origin_rpy: np.ndarray
    axis: np.ndarray


@dataclass
class UrdfModel:
    """Links by name and joints in a topological order (every parent link before its children)."""

    name: str
    links: dict[str, UrdfLink]
    joints: list[UrdfJoint]
    root_link: str
    source: str = ""
    _by_child: dict[str, UrdfJoint] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self._by_child = {j.child: j for j in self.joints}

    def joint_to(self, link: str) -> UrdfJoint:
        """The joint whose child is ``link``."""
        try:
            return self._by_child[link]
        except KeyError:
            raise KeyError(f"{self.source}: no joint has child link {link!r}") from None

    def child_joints(self, link: str) -> list[UrdfJoint]:
        return [j for j in self.joints if j.parent == link]


def rpy_matrix(rpy) -> np.ndarray:
    """URDF roll-pitch-yaw (3,) radians -> (3, 3): ``Rz(yaw) @ Ry(pitch) @ Rx(roll)``."""
    r, p, y = (float(v) for v in rpy)
    return euler_to_matrix(np.array([y, p, r]), "ZYX")


def axis_angle_matrix(axis, angle: np.ndarray) -> np.ndarray:
    """Rotation by ``angle`` (...) radians about the unit ``axis`` (3,) -> (..., 3, 3)."""
    axis = np.asarray(axis, dtype=np.float64)
    axis = axis / np.linalg.norm(axis)
    half = 0.5 * np.asarray(angle, dtype=np.float64)
    q = np.concatenate([np.cos(half)[..., None], np.sin(half)[..., None] * axis], axis=-1)  # (..., 4)
    return quat_to_matrix(q)


def read_urdf(path: str | os.PathLike) -> UrdfModel:
    """Parse a URDF file. Raises FileNotFoundError / ValueError naming the file and the element."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such URDF file")
    # Tolerate trailing NUL bytes: pybullet's own humanoid.urdf ends with one, which XML parsers reject.
    text = path.read_bytes().rstrip(b"\x00 \t\r\n")
    try:
        root = ET.fromstring(text)
    except ET.ParseError as e:
        raise ValueError(f"{path}: not a valid URDF (XML error: {e})") from None
    if root.tag != "robot":
        raise ValueError(f"{path}: not a URDF: the top element is <{root.tag}>, expected <robot>")

    links: dict[str, UrdfLink] = {}
    for el in root.findall("link"):
        name = _attr(el, "name", path, "link")
        if name in links:
            raise ValueError(f"{path}: link {name!r} is defined twice")
        links[name] = UrdfLink(name, tuple(_shapes(el, path, name)))
    if not links:
        raise ValueError(f"{path}: the URDF has no <link> elements")

    joints = [_joint(el, path, links) for el in root.findall("joint")]
    children = [j.child for j in joints]
    twice = sorted({c for c in children if children.count(c) > 1})
    if twice:
        raise ValueError(f"{path}: links {twice} are the child of more than one joint; a URDF must be a tree")
    roots = [n for n in links if n not in set(children)]
    if len(roots) != 1:
        raise ValueError(f"{path}: expected exactly one root link (a link that is no joint's child), found {roots}")
    return UrdfModel(
        name=root.get("name", path.stem), links=links, joints=_topological(joints, roots[0], path),
        root_link=roots[0], source=str(path),
    )


def _attr(el: ET.Element, key: str, path: Path, what: str) -> str:
    value = el.get(key)
    if value is None:
        raise ValueError(f"{path}: a <{what}> element has no {key!r} attribute")
    return value


def _floats(text: str | None, n: int, path: Path, what: str, default: tuple[float, ...]) -> np.ndarray:
    if text is None:
        return np.array(default, dtype=np.float64)
    try:
        values = [float(v) for v in text.split()]
    except ValueError:
        raise ValueError(f"{path}: {what} = {text!r} is not {n} numbers") from None
    if len(values) != n:
        raise ValueError(f"{path}: {what} = {text!r} has {len(values)} numbers, expected {n}")
    return np.array(values, dtype=np.float64)


def _origin(el: ET.Element, path: Path, what: str) -> tuple[np.ndarray, np.ndarray]:
    origin = el.find("origin")
    if origin is None:
        return np.zeros(3), np.zeros(3)
    xyz = _floats(origin.get("xyz"), 3, path, f"{what} origin xyz", (0.0, 0.0, 0.0))
    rpy = _floats(origin.get("rpy"), 3, path, f"{what} origin rpy", (0.0, 0.0, 0.0))
    return xyz, rpy


def _shapes(link: ET.Element, path: Path, name: str) -> list[UrdfShape]:
    shapes = []
    for col in link.findall("collision"):
        geometry = col.find("geometry")
        if geometry is None:
            continue
        xyz, rpy = _origin(col, path, f"link {name!r} collision")
        for g in geometry:
            what = f"link {name!r} {g.tag}"
            if g.tag == "sphere":
                size = tuple(_floats(g.get("radius"), 1, path, f"{what} radius", ()))
            elif g.tag == "box":
                size = tuple(_floats(g.get("size"), 3, path, f"{what} size", ()))
            elif g.tag in ("capsule", "cylinder"):
                radius = _floats(g.get("radius"), 1, path, f"{what} radius", ())
                length = _floats(g.get("length"), 1, path, f"{what} length", ())
                size = (float(radius[0]), float(length[0]))
            else:
                continue  # meshes and unknown shapes carry no size we can use
            shapes.append(UrdfShape(g.tag, xyz, rpy, tuple(float(s) for s in size)))
    return shapes


def _joint(el: ET.Element, path: Path, links: dict[str, UrdfLink]) -> UrdfJoint:
    name = _attr(el, "name", path, "joint")
    kind = _attr(el, "type", path, f"joint {name!r}")
    if kind not in JOINT_TYPES:
        raise ValueError(f"{path}: joint {name!r} has type {kind!r}; supported types are {list(JOINT_TYPES)}")
    ends = {}
    for tag in ("parent", "child"):
        sub = el.find(tag)
        if sub is None or sub.get("link") is None:
            raise ValueError(f"{path}: joint {name!r} has no <{tag} link=...>")
        if sub.get("link") not in links:
            raise ValueError(f"{path}: joint {name!r} names {tag} link {sub.get('link')!r}, which is not defined")
        ends[tag] = sub.get("link")
    xyz, rpy = _origin(el, path, f"joint {name!r}")
    axis_el = el.find("axis")
    axis = _floats(None if axis_el is None else axis_el.get("xyz"), 3, path, f"joint {name!r} axis", (1.0, 0.0, 0.0))
    if kind in ("revolute", "continuous") and np.linalg.norm(axis) < 1e-9:
        raise ValueError(f"{path}: joint {name!r} has a zero axis")
    return UrdfJoint(name, kind, ends["parent"], ends["child"], xyz, rpy, axis)


def _topological(joints: list[UrdfJoint], root: str, path: Path) -> list[UrdfJoint]:
    """Joints reordered so that each parent link is reached before its children, else in file order."""
    placed = {root}
    ordered: list[UrdfJoint] = []
    pending = list(joints)
    while pending:
        k = next((i for i, j in enumerate(pending) if j.parent in placed), None)
        if k is None:
            raise ValueError(f"{path}: joints {[j.name for j in pending]} are not connected to the root link {root!r}")
        joint = pending.pop(k)
        ordered.append(joint)
        placed.add(joint.child)
    return ordered


def motion_matrix(joint: UrdfJoint, value: np.ndarray | None) -> np.ndarray:
    """The joint's local rotation ``R(rpy) @ motion``: (T, 3, 3) for ``value`` (T,) angle or (T, 4) quaternion.

    ``value`` is None for a fixed joint (it returns (3, 3)).
    """
    r0 = rpy_matrix(joint.origin_rpy)
    if joint.kind == "fixed":
        return r0
    if joint.kind == "spherical":
        return r0 @ quat_to_matrix(value)
    return r0 @ axis_angle_matrix(joint.axis, value)
