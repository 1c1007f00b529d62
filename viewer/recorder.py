"""``VideoRecorder``: frame-exact MP4 (H.264) or GIF files from (H, W, 3) uint8 frames.

One appended frame is one video frame: nothing is dropped, duplicated or resampled, so a clip of
N simulation steps recorded at the simulation's rate plays back in real time with N frames.

- ``.mp4``: libx264, yuv420p (plays everywhere), ``-preset veryfast``, CRF 20, via imageio-ffmpeg's
  bundled ffmpeg. yuv420p halves the chroma resolution, so **width and height must be even**; an odd
  size is refused with a clear error rather than silently padded or scaled.
- ``.gif``: ffmpeg with a palette per frame (streams, so memory stays flat). GIF stores frame delays
  in hundredths of a second, so players show e.g. 30 fps as delays of 3-4 cs; the frame count is exact.

The file appears atomically: frames go to a hidden temporary file beside the target, renamed over the
target by :meth:`VideoRecorder.close`. An exception inside ``with VideoRecorder(...)`` (or
:meth:`VideoRecorder.abort`) deletes the temporary file and leaves any existing target untouched.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import imageio_ffmpeg
import numpy as np

FORMATS = (".mp4", ".gif")
MP4_PRESET = "veryfast"
MP4_CRF = 20


class VideoRecorder:
    """See the module docstring. ``size`` is (width, height) in pixels."""

    def __init__(self, path, fps: float = 30, size: tuple[int, int] = (1280, 720)) -> None:
        self.path = Path(path)
        self.format = self.path.suffix.lower()
        if self.format not in FORMATS:
            raise ValueError(f"video path {str(self.path)!r}: the extension must be .mp4 or .gif")
        if not (isinstance(fps, (int, float)) and fps > 0):
            raise ValueError(f"video fps must be a positive number, got {fps!r}")
        try:
            width, height = (int(v) for v in size)
        except (TypeError, ValueError):
            raise ValueError(f"video size must be (width, height) in pixels, got {size!r}") from None
        if width <= 0 or height <= 0:
            raise ValueError(f"video size must be positive, got {width}x{height}")
        if self.format == ".mp4" and (width % 2 or height % 2):
            raise ValueError(
                f"video size {width}x{height}: H.264 MP4 (yuv420p) needs an even width and height; "
                f"use {width + width % 2}x{height + height % 2} or {width - width % 2}x{height - height % 2}, "
                "or record a .gif"
            )
        parent = self.path.parent
        if not parent.is_dir():
            raise FileNotFoundError(f"cannot write video {str(self.path)!r}: directory {str(parent)!r} does not "
                                    "exist (create it first)")
        if not os.access(parent, os.W_OK | os.X_OK):
            raise PermissionError(f"cannot write video {str(self.path)!r}: directory {str(parent)!r} is not writable")
        self.fps = float(fps)
        self.size = (width, height)
        self.frame_count = 0
        self._temp = parent / f".{self.path.stem}.{uuid.uuid4().hex[:8]}.part{self.format}"
        self._writer = imageio_ffmpeg.write_frames(str(self._temp), self.size, fps=self.fps, quality=None,
                                                   macro_block_size=1, **self._codec_args())
        self._writer.send(None)  # starts ffmpeg

    def _codec_args(self) -> dict:
        if self.format == ".mp4":
            return {"codec": "libx264", "pix_fmt_out": "yuv420p",
                    "output_params": ["-preset", MP4_PRESET, "-crf", str(MP4_CRF)]}
        return {"codec": "gif", "pix_fmt_out": "pal8",
                "output_params": ["-filter_complex",
                                  "split[a][b];[a]palettegen=stats_mode=single[p];[b][p]paletteuse=new=1",
                                  "-loop", "0"]}

    @property
    def closed(self) -> bool:
        return self._writer is None

    def append(self, frame: np.ndarray) -> None:
        """Add one frame: (H, W, 3) uint8 RGB (an alpha channel, if any, is dropped), top row first."""
        if self._writer is None:
            raise RuntimeError(f"video {str(self.path)!r} is already closed")
        frame = np.asarray(frame)
        w, h = self.size
        if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[:2] != (h, w) or frame.shape[2] not in (3, 4):
            raise ValueError(f"video {str(self.path)!r} expects ({h}, {w}, 3) uint8 frames (its size is {w}x{h}), "
                             f"got {frame.shape} {frame.dtype}")
        self._writer.send(np.ascontiguousarray(frame[..., :3]))
        self.frame_count += 1

    def close(self) -> Path:
        """Finish the file and move it into place; returns the path. Idempotent."""
        if self._writer is None:
            return self.path
        writer, self._writer = self._writer, None
        try:
            writer.close()  # waits for ffmpeg to finish the file
        except BaseException:
            self._temp.unlink(missing_ok=True)
            raise
        if self.frame_count == 0:
            self._temp.unlink(missing_ok=True)
            raise ValueError(f"video {str(self.path)!r}: no frames were appended, nothing written")
        os.replace(self._temp, self.path)
        return self.path

    def abort(self) -> None:
        """Stop and delete the partial file; the target path is left as it was."""
        writer, self._writer = self._writer, None
        if writer is not None:
            try:
                writer.close()
            finally:
                self._temp.unlink(missing_ok=True)

    def __enter__(self) -> VideoRecorder:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            self.abort()
        else:
            self.close()

    def __del__(self) -> None:
        # Never leave ffmpeg running or a stray temporary file when a recorder is dropped unclosed.
        if getattr(self, "_writer", None) is not None:
            try:
                self.abort()
            except Exception:
                pass


def read_video(path) -> np.ndarray:
    """Every frame of a video file (what :class:`VideoRecorder` wrote) -> (T, H, W, 3) uint8, via the same ffmpeg."""
    reader = imageio_ffmpeg.read_frames(str(path))
    width, height = next(reader)["size"]
    frames = [np.frombuffer(f, dtype=np.uint8).reshape(height, width, 3) for f in reader]
    if not frames:
        raise ValueError(f"{path}: a video without frames")
    return np.stack(frames)
