"""Training windows for the Motion VAE: fixed-length frame windows that never cross a clip boundary.

A training sample is a window of ``W = C + L + F - 1`` consecutive frames of one clip: ``C`` condition frames,
then a rollout of ``L`` steps, step ``k`` predicting frames ``C + k .. C + k + F - 1`` (the last step's last
target is frame ``W - 1``). A window may start at frame ``s`` of a clip only when ``s + W - 1`` is still in that
clip; :func:`valid_window_starts` lists those starts from the dataset's ``end_indices``.

Held-out clips are chosen by :func:`holdout_split`: clips are grouped by source name (a clip and its mirrored copy
``name:mirror`` form one group, so a held-out motion is not seen mirrored in training) and every ``k``-th group
(groups ``k-1, 2k-1, ...``) is held out. The split is a pure function of the clip names, so the trainer and
the evaluator agree on it without storing it.

:class:`WindowSampler` is the per-epoch batch order: a shuffled permutation of the valid starts cut into global
batches, each rank of a DistributedDataParallel run taking its contiguous share of every global batch, so N ranks
train on exactly the batches one process would. :class:`WindowDataset` keeps all frames in one tensor on the
training device and gathers a batch of windows with one indexing operation, so no per-sample Python runs in the
training loop.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch

MIRROR_SUFFIX = ":mirror"


def window_length(num_condition_frames: int, rollout_steps: int, num_future_predictions: int) -> int:
    """Frames in one training window: C condition frames + L rollout steps, the last predicting F frames."""
    return num_condition_frames + rollout_steps + num_future_predictions - 1


def valid_window_starts(end_indices: np.ndarray, window: int, clips: np.ndarray | None = None) -> np.ndarray:
    """Global frame indices (int64, ascending) where a window of ``window`` frames fits inside one clip.

    ``end_indices`` (C,) is the last frame of each clip (as in :class:`mocap.dataset.MotionDataset`);
    ``clips`` restricts the result to those clip numbers (default: all clips).
    """
    end_indices = np.asarray(end_indices, dtype=np.int64)
    if window < 1:
        raise ValueError(f"window length must be >= 1, got {window}")
    starts_of_clips = np.concatenate([[0], end_indices[:-1] + 1]).astype(np.int64)
    chosen = np.arange(len(end_indices)) if clips is None else np.asarray(clips, dtype=np.int64)
    pieces = [
        np.arange(starts_of_clips[c], end_indices[c] - window + 2, dtype=np.int64)
        for c in chosen
    ]
    return np.concatenate(pieces) if pieces else np.zeros(0, dtype=np.int64)


def clip_group(name: str) -> str:
    """The source motion a clip comes from: its name without the mirror suffix."""
    return name[: -len(MIRROR_SUFFIX)] if name.endswith(MIRROR_SUFFIX) else name


def holdout_split(clip_names: list[str], every: int) -> tuple[np.ndarray, np.ndarray]:
    """(training clip numbers, held-out clip numbers), both int64 ascending.

    Groups (a clip with its mirrored copy) are numbered in order of first appearance; group ``g`` is held out
    when ``every > 0`` and ``g % every == every - 1``. With fewer than ``every`` groups nothing is held out.
    """
    if every < 0:
        raise ValueError(f"holdout every must be >= 0 (0: hold nothing out), got {every}")
    group_ids: dict[str, int] = {}
    held = []
    for name in clip_names:
        g = group_ids.setdefault(clip_group(name), len(group_ids))
        held.append(every > 0 and g % every == every - 1)
    held_mask = np.array(held, dtype=bool)
    all_clips = np.arange(len(clip_names), dtype=np.int64)
    return all_clips[~held_mask], all_clips[held_mask]


def clip_frame_indices(end_indices: np.ndarray, clips: np.ndarray) -> np.ndarray:
    """All global frame indices (int64) of the given clips."""
    end_indices = np.asarray(end_indices, dtype=np.int64)
    starts = np.concatenate([[0], end_indices[:-1] + 1])
    pieces = [np.arange(starts[c], end_indices[c] + 1, dtype=np.int64) for c in clips]
    return np.concatenate(pieces) if pieces else np.zeros(0, dtype=np.int64)


def frame_statistics(data: np.ndarray, frames: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Per-feature mean and standard deviation (D,) float32 over the chosen frames (default: all).

    Constant features get std 1, so normalising leaves them at 0 instead of dividing by zero.
    """
    x = np.asarray(data if frames is None else data[frames], dtype=np.float64)
    if len(x) == 0:
        raise ValueError("no frames to compute normalisation statistics from")
    mean = x.mean(axis=0)
    std = x.std(axis=0)
    std[std < 1e-6] = 1.0
    return mean.astype(np.float32), std.astype(np.float32)


class WindowDataset(torch.utils.data.Dataset):
    """Windows ``(W, D)`` of ``frames`` starting at ``starts``; :meth:`windows` gathers a batch in one go.

    ``frames`` (N, D) is copied once to ``device``; indexing the dataset gives window ``i`` (a torch
    ``Dataset``, so a ``DataLoader`` works too, but the trainer calls :meth:`windows` on whole batches).
    """

    def __init__(self, frames: np.ndarray | torch.Tensor, starts: np.ndarray, window: int, device="cpu"):
        self.frames = torch.as_tensor(np.asarray(frames, dtype=np.float32), device=device)  # (N, D)
        self.starts = torch.as_tensor(np.asarray(starts, dtype=np.int64), device=device)  # (S,)
        self.window = int(window)
        self.offsets = torch.arange(self.window, device=device)  # (W,)
        if len(self.starts) and int(self.starts.max()) + self.window > len(self.frames):
            raise ValueError("a window start runs past the end of the frames")

    def __len__(self) -> int:
        return int(self.starts.shape[0])

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.windows(torch.as_tensor([i], device=self.starts.device))[0]

    def windows(self, positions: torch.Tensor) -> torch.Tensor:
        """Positions (B,) into ``starts`` -> windows (B, W, D)."""
        first = self.starts[positions]  # (B,)
        return self.frames[first[:, None] + self.offsets]  # (B, W, D)


class WindowSampler:
    """Batches of positions into a :class:`WindowDataset`, reshuffled every epoch, split across ranks.

    The permutation of epoch ``e`` depends only on ``(seed, e)``, so every rank computes the same one and a
    resumed run sees the same batches as an uninterrupted run. It is cut into global batches of
    ``batch_size * world_size`` positions (the last incomplete one dropped, as in the reference) and rank ``r``
    takes positions ``r * batch_size .. (r + 1) * batch_size - 1`` of each: the ranks together train on the same
    global batches, in the same order, as one process with the whole batch.
    """

    def __init__(self, num_windows: int, batch_size: int, seed: int, rank: int = 0, world_size: int = 1):
        if batch_size < 1:
            raise ValueError(f"batch size must be >= 1, got {batch_size}")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is outside world size {world_size}")
        self.num_windows = int(num_windows)
        self.batch_size = int(batch_size)
        self.seed = int(seed)
        self.rank = rank
        self.world_size = world_size
        self.epoch = 0

    @property
    def global_batch_size(self) -> int:
        return self.batch_size * self.world_size

    def __len__(self) -> int:
        """Batches per epoch (the same on every rank)."""
        return self.num_windows // self.global_batch_size

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __iter__(self) -> Iterator[torch.Tensor]:
        rng = np.random.default_rng([self.seed, self.epoch])
        order = torch.from_numpy(rng.permutation(self.num_windows))  # (num_windows,)
        for b in range(len(self)):
            first = b * self.global_batch_size + self.rank * self.batch_size
            yield order[first : first + self.batch_size]
