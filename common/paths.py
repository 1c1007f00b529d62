"""Output paths checked before the work starts, so an hour of training never dies at its first save.

``output_file(path, flag)`` and ``output_dir(path, flag)`` raise :class:`OutputPathError` (a ``ValueError``)
with a one-line message naming the flag, the path and what to do; they create missing parent folders
(as the writers would) and prove the folder writable by creating and removing a temporary file in it.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


class OutputPathError(ValueError):
    """An output path that cannot be written (the message names the flag and what to do)."""


def _probe_dir(directory: Path, flag: str, path: Path) -> None:
    existing = _first_existing(directory)
    if not existing.is_dir():
        raise OutputPathError(f"{flag} {path}: {existing} is a file, not a folder; choose another location")
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OutputPathError(f"{flag} {path}: cannot create the folder {directory} ({e.strerror or e}); "
                              "choose a location you can write to") from None
    try:
        fd, probe = tempfile.mkstemp(prefix=".write-test.", dir=directory)
    except OSError as e:
        raise OutputPathError(f"{flag} {path}: the folder {directory} is not writable ({e.strerror or e}); "
                              "choose a location you can write to") from None
    os.close(fd)
    os.unlink(probe)


def _first_existing(directory: Path) -> Path:
    """``directory`` or its nearest ancestor that exists."""
    for candidate in (directory, *directory.parents):
        if candidate.exists():
            return candidate
    return Path(".")


def portable_path(value):
    """A path as a shipped file may record it: relative paths stay, absolute ones keep only their file name
    (a machine's folders mean nothing on another machine). Non-strings pass through."""
    if isinstance(value, str) and value and Path(value).is_absolute():
        return Path(value).name
    return value


def output_file(path, flag: str, suffixes: tuple[str, ...] = ()) -> Path:
    """``path`` as a file that can be written (an existing file is fine: writers replace it atomically)."""
    path = Path(path)
    if path.is_dir():
        example = path / ("out" + (suffixes[0] if suffixes else ""))
        raise OutputPathError(f"{flag} {path} is a folder; give a file path, e.g. {example}")
    if suffixes and path.suffix.lower() not in suffixes:
        raise OutputPathError(f"{flag} {path}: the file must end in {' or '.join(suffixes)}")
    _probe_dir(path.parent if str(path.parent) else Path("."), flag, path)
    return path


def output_dir(path, flag: str) -> Path:
    """``path`` as a folder that exists (created here) and can be written."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise OutputPathError(f"{flag} {path} is a file; give a folder path")
    _probe_dir(path, flag, path)
    return path
