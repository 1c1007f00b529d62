"""Rendering for the character controller: scenes as plain data, a pyglet window, video recording.

The viewer draws what it is given (joint positions, markers, polylines, boxes; see
:mod:`viewer.scene`) and knows nothing about tasks or environments.

Order matters: pyglet fixes its platform (X11 window or headless EGL) when ``pyglet.gl`` or
``pyglet.window`` is first imported, so call :func:`configure_pyglet` first. ``ViewerWindow`` and
``Renderer`` are therefore imported lazily, on first access::

    import viewer
    viewer.configure_pyglet(headless=not viewer.display_available())
    window = viewer.ViewerWindow(1280, 720)          # imports pyglet.window now
    window.set_scene(viewer.SceneFrame(characters=[viewer.Characters(pos, parents, names)]))
"""

from __future__ import annotations

from viewer.camera import Camera
from viewer.display import VirtualDisplay, configure_pyglet, display_available
from viewer.recorder import VideoRecorder
from viewer.scene import Box, Characters, Marker, Polyline, SceneFrame

_LAZY = {"ViewerWindow": "viewer.window", "Renderer": "viewer.renderer"}

__all__ = [
    "Box",
    "Camera",
    "Characters",
    "Marker",
    "Polyline",
    "Renderer",
    "SceneFrame",
    "VideoRecorder",
    "ViewerWindow",
    "VirtualDisplay",
    "configure_pyglet",
    "display_available",
]


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'viewer' has no attribute {name!r}")
