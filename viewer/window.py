"""``ViewerWindow``: a pyglet window that draws the last scene it was given, a HUD and a help overlay.

Call :func:`viewer.display.configure_pyglet` before importing this module (it imports
``pyglet.window``). The window knows nothing about tasks: the app hands it a
:class:`viewer.scene.SceneFrame` with :meth:`ViewerWindow.set_scene`, text with :meth:`set_hud` /
:meth:`set_help`, and flips ``help_visible`` itself.

Projection: the 3D passes get the camera's perspective as their own shader uniforms every frame,
computed from the framebuffer size. pyglet's ``window.projection`` stays the orthographic pixel
projection that its text and shapes need; pyglet resets it on every resize (and on the first
``dispatch_events``), which therefore cannot disturb the 3D view.

Two ways to run it:

- interactive, under ``pyglet.app.run()``: ``on_draw`` draws;
- a manual loop (offscreen recording, tests): ``set_scene(...)``, ``render_to_array()`` -> (H, W, 3) uint8,
  which works in a hidden window under Xvfb and in pyglet's headless EGL mode alike. Videos are made this way
  (one ``render_to_array`` per simulation step into a :class:`viewer.recorder.VideoRecorder`), never from
  pyglet's own clock.

Mouse: right drag orbits the camera, middle drag pans it (orbit mode), the wheel zooms; the left button is
left to the app (clicks and strokes), which adds its own handlers with ``push_handlers`` (they run first)
and can use :meth:`screen_to_ground` for clicks.
"""

from __future__ import annotations

import ctypes

import numpy as np
import pyglet
from pyglet import gl
from pyglet.window import mouse

from viewer.camera import Camera
from viewer.renderer import Renderer
from viewer.scene import SceneFrame

HUD_MARGIN = 10
HUD_PADDING = 8
HUD_FONT_SIZE = 11
HELP_FONT_SIZE = 13


def _best_config(samples: int) -> gl.Config:
    """A double-buffered config with depth and stencil, multisampled if possible."""
    screen = pyglet.display.get_display().get_default_screen()
    templates = []
    if samples > 1:
        templates.append(gl.Config(double_buffer=True, depth_size=24, stencil_size=8, sample_buffers=1,
                                   samples=samples))
    templates += [gl.Config(double_buffer=True, depth_size=24, stencil_size=8),
                  gl.Config(double_buffer=True, depth_size=24)]  # no stencil: overlapping shadows darken twice
    for template in templates:
        try:
            return screen.get_best_config(template)
        except pyglet.window.NoSuchConfigException:
            continue
    raise RuntimeError("no OpenGL config with a 24-bit depth buffer on this display; "
                       "is Mesa (libgl1-mesa-dri) installed?")


class ViewerWindow(pyglet.window.Window):
    """See the module docstring.

    ``samples``: MSAA samples per pixel; 0 (the default) turns antialiasing off, because software GL
    (Mesa llvmpipe: Xvfb, headless EGL) pays several times the frame time for it. Use 4 on a GPU.
    """

    def __init__(
        self,
        width: int = 1280,
        height: int = 720,
        caption: str = "Motion VAE viewer",
        visible: bool = True,
        resizable: bool = True,
        camera: Camera | None = None,
        samples: int = 0,
        vsync: bool = False,
    ) -> None:
        super().__init__(width, height, caption=caption, resizable=resizable, visible=visible,
                         config=_best_config(samples), vsync=vsync)
        self.camera = camera if camera is not None else Camera()
        self.renderer = Renderer()
        self.scene = SceneFrame()
        self.help_visible = False
        self._hud_lines: list[str] = []
        self._help_lines: list[str] = []
        self._hud_label = self._hud_panel = None
        self._help_label = self._help_panel = None

    # --- content -------------------------------------------------------------------------------------
    def set_scene(self, scene: SceneFrame) -> None:
        if not isinstance(scene, SceneFrame):
            raise TypeError(f"set_scene expects a viewer.SceneFrame, got {type(scene).__name__}")
        self.scene = scene

    def set_hud(self, lines: list[str]) -> None:
        """Text shown in the top-left corner (e.g. task, speed, fps); an empty list hides it."""
        lines = [str(x) for x in lines]
        if lines != self._hud_lines:
            self._hud_lines = lines
            self._hud_label, self._hud_panel = self._make_text_block(lines, HUD_FONT_SIZE)

    def set_help(self, lines: list[str]) -> None:
        """Text of the help overlay, shown in the middle while ``help_visible`` is True."""
        lines = [str(x) for x in lines]
        if lines != self._help_lines:
            self._help_lines = lines
            self._help_label, self._help_panel = self._make_text_block(lines, HELP_FONT_SIZE)

    def _make_text_block(self, lines: list[str], font_size: int):
        if not lines:
            return None, None
        label = pyglet.text.Label("\n".join(lines), font_size=font_size, color=(255, 255, 255, 255),
                                  multiline=True, width=max(200, self.width - 2 * HUD_MARGIN),
                                  anchor_x="left", anchor_y="top")
        label.width = label.content_width + 1  # shrink-wrap so the panel fits the text
        panel = pyglet.shapes.Rectangle(0, 0, label.content_width + 2 * HUD_PADDING,
                                        label.content_height + 2 * HUD_PADDING, color=(20, 24, 32, 150))
        return label, panel

    @staticmethod
    def _place(label, panel, left: float, top: float) -> None:
        panel.position = (left, top - panel.height)
        label.position = (left + HUD_PADDING, top - HUD_PADDING, 0)

    # --- drawing -------------------------------------------------------------------------------------
    def on_draw(self) -> None:
        fw, fh = self.get_framebuffer_size()
        self.renderer.draw(self.scene, self.camera, fw, fh)
        self._draw_overlays()

    def _draw_overlays(self) -> None:
        gl.glEnable(gl.GL_BLEND)
        gl.glBlendFunc(gl.GL_SRC_ALPHA, gl.GL_ONE_MINUS_SRC_ALPHA)
        if self._hud_label is not None:
            self._place(self._hud_label, self._hud_panel, HUD_MARGIN, self.height - HUD_MARGIN)
            self._hud_panel.draw()
            self._hud_label.draw()
        if self.help_visible and self._help_label is not None:
            panel = self._help_panel
            self._place(self._help_label, panel, (self.width - panel.width) / 2, (self.height + panel.height) / 2)
            panel.draw()
            self._help_label.draw()
        gl.glDisable(gl.GL_BLEND)

    def draw_frame(self) -> None:
        """Draw the current scene into the back buffer now (outside ``pyglet.app.run``); no flip."""
        self.switch_to()
        self.on_draw()

    def read_pixels(self) -> np.ndarray:
        """The framebuffer just drawn (before ``flip``) as (H, W, 3) uint8 RGB, top row first."""
        self.switch_to()
        w, h = self.get_framebuffer_size()
        pixels = np.empty((h, w, 3), dtype=np.uint8)
        gl.glPixelStorei(gl.GL_PACK_ALIGNMENT, 1)  # rows are tightly packed, whatever the width
        buffer = gl.GLint()
        gl.glGetIntegerv(gl.GL_DRAW_BUFFER, ctypes.byref(buffer))
        gl.glReadBuffer(buffer.value)
        gl.glReadPixels(0, 0, w, h, gl.GL_RGB, gl.GL_UNSIGNED_BYTE, pixels.ctypes.data_as(ctypes.c_void_p))
        return np.ascontiguousarray(pixels[::-1])  # GL rows run bottom-up

    def render_to_array(self) -> np.ndarray:
        """Draw the current scene and return it as (H, W, 3) uint8 (offscreen loops, tests)."""
        self.draw_frame()
        return self.read_pixels()

    # --- input ---------------------------------------------------------------------------------------
    def screen_to_ground(self, x: float, y: float):
        """Mouse position (pyglet window coordinates) -> (x, z) on the ground in metres, or None."""
        return self.camera.screen_to_ground(x, y, self.width, self.height)

    def on_mouse_drag(self, x, y, dx, dy, buttons, modifiers) -> None:
        if buttons & mouse.RIGHT:
            self.camera.orbit(dx, dy)
        elif buttons & mouse.MIDDLE:
            self.camera.pan(dx, dy)

    def on_mouse_scroll(self, x, y, scroll_x, scroll_y) -> None:
        self.camera.zoom(scroll_y)

    def on_resize(self, width: int, height: int) -> None:
        # pyglet has already set the viewport and its 2D projection; the 3D view reads the framebuffer
        # size every frame. Text blocks wrap to the window width, so rebuild them (once they exist:
        # pyglet may send a resize while the window is still being created).
        if not hasattr(self, "_help_lines"):
            return
        self._hud_label, self._hud_panel = self._make_text_block(self._hud_lines, HUD_FONT_SIZE)
        self._help_label, self._help_panel = self._make_text_block(self._help_lines, HELP_FONT_SIZE)

    def on_close(self) -> None:
        self.switch_to()
        self.renderer.delete()
        super().on_close()
