"""Choosing where pyglet draws: an X display, a virtual one (Xvfb), or headless EGL (no display at all).

pyglet picks its platform once, when ``pyglet.gl`` / ``pyglet.window`` is first imported (importing
``pyglet.gl`` opens a hidden "shadow" window on the display). So an app must decide first::

    from viewer.display import configure_pyglet, display_available
    configure_pyglet(headless=not display_available())
    from viewer.window import ViewerWindow   # imports pyglet.window: only now

This module imports only the top-level ``pyglet`` package, never ``pyglet.gl`` or ``pyglet.window``.
In headless mode a :class:`viewer.window.ViewerWindow` renders into an offscreen EGL surface
(Mesa's llvmpipe works); nothing appears on screen but ``read_pixels`` and recording work.
"""

from __future__ import annotations

import atexit
import ctypes
import ctypes.util
import os
import select
import shutil
import subprocess
import sys
import tempfile

import pyglet

XVFB_START_TIMEOUT_S = 10.0


def configure_pyglet(headless: bool) -> None:
    """Select pyglet's headless EGL mode (True) or a normal windowed platform (False).

    Must run before anything imports ``pyglet.gl`` or ``pyglet.window``; raises RuntimeError otherwise
    (when the mode asked differs from the one already fixed).
    """
    headless = bool(headless)
    loaded = [m for m in ("pyglet.gl", "pyglet.window") if m in sys.modules]
    if loaded and bool(pyglet.options["headless"]) != headless:
        raise RuntimeError(
            f"configure_pyglet(headless={headless}) came too late: {loaded[0]} is already imported in "
            f"{'headless' if pyglet.options['headless'] else 'windowed'} mode. Call it before importing "
            "viewer.window, viewer.renderer or pyglet.window."
        )
    pyglet.options["headless"] = headless
    # The shadow window is a hidden window pyglet opens at import to own a GL context; headless EGL
    # has no use for it.
    if headless:
        pyglet.options["shadow_window"] = False
    # Timings and recordings should not wait on the monitor's refresh.
    pyglet.options["vsync"] = False


def egl_available() -> bool:
    """True if the EGL library pyglet's headless mode needs is installed (Mesa: libegl1); never raises."""
    return ctypes.util.find_library("EGL") is not None


def display_available(display: str | None = None) -> bool:
    """True if an X display (``display`` or $DISPLAY) accepts a connection; never raises."""
    name = display if display is not None else os.environ.get("DISPLAY")
    if not name:
        return False
    path = ctypes.util.find_library("X11")
    if path is None:
        return False
    try:
        xlib = ctypes.CDLL(path)
        xlib.XOpenDisplay.restype = ctypes.c_void_p
        xlib.XOpenDisplay.argtypes = [ctypes.c_char_p]
        xlib.XCloseDisplay.argtypes = [ctypes.c_void_p]
        handle = xlib.XOpenDisplay(name.encode())
        if not handle:
            return False
        xlib.XCloseDisplay(handle)
        return True
    except OSError:
        return False


class VirtualDisplay:
    """An Xvfb server on a free display number, for tests, benchmarks and recording without a screen.

    Use as a context manager; ``.display`` is its name (e.g. ":99"). With ``set_environ=True`` it sets
    $DISPLAY while it runs and restores the old value afterwards.
    """

    def __init__(self, width: int = 1280, height: int = 720, depth: int = 24, set_environ: bool = True) -> None:
        self.size = (int(width), int(height), int(depth))
        self.set_environ = set_environ
        self.display: str | None = None
        self._process: subprocess.Popen | None = None
        self._log = None
        self._old_display: str | None = None

    def start(self) -> VirtualDisplay:
        exe = shutil.which("Xvfb")
        if exe is None:
            raise FileNotFoundError(
                "Xvfb is not installed: install the 'xvfb' package (plus Mesa: libgl1-mesa-dri libglx-mesa0) "
                "or run with a display"
            )
        # -displayfd: the server itself tries display numbers until one is free and writes it to the pipe,
        # so parallel test workers never race for the same number.
        read_fd, write_fd = os.pipe()
        w, h, d = self.size
        # Its messages go to a file, not a pipe: a pipe nobody reads could fill up and stall the server.
        self._log = tempfile.TemporaryFile()
        try:
            self._process = subprocess.Popen(
                [exe, "-displayfd", str(write_fd), "-screen", "0", f"{w}x{h}x{d}", "-nolisten", "tcp"],
                pass_fds=(write_fd,), stdout=subprocess.DEVNULL, stderr=self._log,
            )
        finally:
            os.close(write_fd)
        try:
            number = self._read_display_number(read_fd)
        finally:
            os.close(read_fd)
        self.display = f":{number}"
        # A script that dies on an exception must not leave the server running.
        atexit.register(self.stop)
        if self.set_environ:
            self._old_display = os.environ.get("DISPLAY")
            os.environ["DISPLAY"] = self.display
        return self

    def _read_display_number(self, fd: int) -> int:
        data = b""
        while not data.endswith(b"\n"):
            ready, _, _ = select.select([fd], [], [], XVFB_START_TIMEOUT_S)
            chunk = os.read(fd, 64) if ready else b""
            if not chunk:
                err = self._stop_and_read_error()
                raise RuntimeError(f"Xvfb did not start within {XVFB_START_TIMEOUT_S:.0f} s: {err or 'no output'}")
            data += chunk
        return int(data.strip())

    def _stop_and_read_error(self) -> str:
        if self._process is None:
            return ""
        self._process.kill()
        self._process.wait()
        self._process = None
        self._log.seek(0)
        err = self._log.read().decode(errors="replace").strip()[-500:]
        self._log.close()
        self._log = None
        return err

    def stop(self) -> None:
        atexit.unregister(self.stop)
        if self._process is not None:
            self._process.terminate()
            try:
                self._process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
            self._process = None
        if self._log is not None:
            self._log.close()
            self._log = None
        if self.set_environ and self.display is not None and os.environ.get("DISPLAY") == self.display:
            if self._old_display is None:
                os.environ.pop("DISPLAY", None)
            else:
                os.environ["DISPLAY"] = self._old_display
        self.display = None

    def __enter__(self) -> VirtualDisplay:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
