"""The prepared dataset file (``DATA.npz``): frames, clip boundaries, skeleton, contacts.

Keys (all plain arrays, loadable with ``allow_pickle=False``):

============== =========== ===============================================================
key            shape       meaning
============== =========== ===============================================================
data           (N, D) f32  frames, layout in :mod:`mocap.pose_layout`
end_indices    (C,) i64    index of the last frame of each clip
fps            ()  f64     frames per second
clip_names     (C,) str    clip names (``<file stem>`` or ``<file stem>:mirror``)
joint_names    (J,) str    skeleton
parents        (J,) i64    parent index, -1 for the root
offsets        (J, 3) f32  rest offsets from the parent, metres
end_offsets    (J, 3) f32  BVH end-site offsets (zeros where none), metres
foot_joints    (F,) i64    joints labelled for contact
foot_contacts  (N, F) bool contact label per frame and foot joint
floor_heights  (F,) f32    lowest height of each foot joint in the data (contact reference), metres
clip_styles    (C,) i64    (optional) each clip's style, an index into style_names
style_names    (S,) str    (optional) the styles (``mocap.prepare --styles``)
format_version ()  i64     1
============== =========== ===============================================================
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from common.atomic import atomic_write
from mocap.pose_layout import PoseLayout
from mocap.skeleton import Skeleton

FORMAT_VERSION = 1


@dataclass
class MotionDataset:
    data: np.ndarray
    end_indices: np.ndarray
    fps: float
    skeleton: Skeleton
    clip_names: list[str]
    foot_joints: np.ndarray
    foot_contacts: np.ndarray
    floor_heights: np.ndarray
    clip_styles: np.ndarray | None = None  # (C,) int64 indices into style_names, or None without styles
    style_names: list[str] = field(default_factory=list)

    @property
    def num_styles(self) -> int:
        return len(self.style_names)

    def frame_styles(self) -> np.ndarray | None:
        """(N,) each frame's style index, or None without styles."""
        if self.clip_styles is None:
            return None
        lengths = np.diff(np.concatenate([[-1], self.end_indices]))  # (C,)
        return np.repeat(np.asarray(self.clip_styles, dtype=np.int64), lengths)

    @property
    def layout(self) -> PoseLayout:
        return PoseLayout.from_frame_size(self.data.shape[1])

    @property
    def num_frames(self) -> int:
        return int(self.data.shape[0])

    @property
    def num_clips(self) -> int:
        return len(self.end_indices)

    @property
    def start_indices(self) -> np.ndarray:
        return np.concatenate([[0], self.end_indices[:-1] + 1]).astype(np.int64)

    def clip(self, c: int) -> np.ndarray:
        """Frames (T, D) of clip ``c``."""
        return self.data[self.start_indices[c] : self.end_indices[c] + 1]

    def fingerprint(self) -> str:
        """Short content hash, stored in checkpoints so a model names the data it saw."""
        h = hashlib.sha256()
        h.update(np.ascontiguousarray(self.data).tobytes())
        h.update(np.ascontiguousarray(self.end_indices).tobytes())
        h.update("|".join(self.skeleton.joint_names).encode())
        return h.hexdigest()[:16]

    def summary(self) -> dict:
        return {
            "clips": self.num_clips,
            "frames": self.num_frames,
            "seconds": round(self.num_frames / self.fps, 2),
            "joints": self.skeleton.num_joints,
            "fps": self.fps,
            "frame_size": int(self.data.shape[1]),
        }

    def save(self, path: str | os.PathLike) -> None:
        """Write atomically: a temp file in the same folder, then rename over ``path``."""
        arrays = {
            "data": self.data.astype(np.float32),
            "end_indices": np.asarray(self.end_indices, dtype=np.int64),
            "fps": np.float64(self.fps),
            "clip_names": np.array(self.clip_names, dtype=np.str_),
            "foot_joints": np.asarray(self.foot_joints, dtype=np.int64),
            "foot_contacts": np.asarray(self.foot_contacts, dtype=bool),
            "floor_heights": np.asarray(self.floor_heights, dtype=np.float32),
            "format_version": np.int64(FORMAT_VERSION),
            **self.skeleton.to_arrays(),
        }
        if self.clip_styles is not None:
            arrays["clip_styles"] = np.asarray(self.clip_styles, dtype=np.int64)
            arrays["style_names"] = np.array(self.style_names, dtype=np.str_)
        atomic_save_npz(path, arrays)

    @classmethod
    def load(cls, path: str | os.PathLike) -> MotionDataset:
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"{path}: no such dataset; create one with `python -m mocap.prepare INPUT --out {path}`")
        if path.is_dir():
            raise ValueError(f"{path} is a folder, not a prepared dataset; to use the BVH files in it run "
                             f"`python -m mocap.prepare {path} --out data.npz` and pass data.npz")
        with open(path, "rb") as f:
            head = f.read(64)
        if head.lstrip(b"\xef\xbb\xbf \t\r\n").upper().startswith(b"HIERARCHY"):
            raise ValueError(f"{path}: a BVH motion file, not a prepared dataset; convert it first with "
                             f"`python -m mocap.prepare {path} --out data.npz` and pass data.npz")
        if not head.startswith(b"PK"):
            # np.load would try to unpickle such a file and blame "pickled data"; an .npz is a zip archive.
            raise ValueError(f"{path}: not a readable .npz dataset (not a zip archive); create one with "
                             f"`python -m mocap.prepare INPUT --out {path.with_suffix('.npz').name}`")
        try:
            z = np.load(path, allow_pickle=False)
        except Exception as e:  # noqa: BLE001 - any reader error means the same thing to the user
            raise ValueError(f"{path}: not a readable .npz dataset ({e}); re-create it with `python -m mocap.prepare`") from None
        with z:
            missing = [k for k in ("data", "end_indices", "fps", "joint_names", "parents", "offsets") if k not in z]
            if missing:
                raise ValueError(
                    f"{path}: missing keys {missing}; an original MVAE mocap.npz must be converted first with "
                    f"`python -m mocap.prepare {path} --out NEW.npz`"
                )
            data = np.asarray(z["data"], dtype=np.float32)
            skeleton = Skeleton.from_arrays(z)
            layout = PoseLayout.from_frame_size(data.shape[1])
            if layout.num_joints != skeleton.num_joints:
                raise ValueError(
                    f"{path}: frames have {layout.num_joints} joints (D={data.shape[1]}) but the skeleton has "
                    f"{skeleton.num_joints}; re-create the dataset"
                )
            n = data.shape[0]
            foot_joints = np.asarray(z["foot_joints"]) if "foot_joints" in z else np.zeros(0, dtype=np.int64)
            return cls(
                data=data,
                end_indices=np.asarray(z["end_indices"], dtype=np.int64),
                fps=float(z["fps"]),
                skeleton=skeleton,
                clip_names=[str(s) for s in z["clip_names"].tolist()] if "clip_names" in z else [f"clip{i}" for i in range(len(z["end_indices"]))],
                foot_joints=foot_joints,
                foot_contacts=np.asarray(z["foot_contacts"]) if "foot_contacts" in z else np.zeros((n, 0), dtype=bool),
                floor_heights=np.asarray(z["floor_heights"]) if "floor_heights" in z else np.zeros(len(foot_joints), np.float32),
                clip_styles=np.asarray(z["clip_styles"], dtype=np.int64) if "clip_styles" in z else None,
                style_names=[str(s) for s in z["style_names"].tolist()] if "style_names" in z else [],
            )


def atomic_save_npz(path: str | os.PathLike, arrays: dict[str, np.ndarray]) -> None:
    """``np.savez`` all at once or not at all (see :mod:`common.atomic`)."""
    with atomic_write(path) as f:
        np.savez(f, **arrays)
