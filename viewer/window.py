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
SOFTWARE_RENDERERS = ("llvmpipe", "softpipe", "swrast")  # GL_RENDERER names of Mesa's CPU rasterisers


class TextBlock:
    """Lines of text on a translucent panel, one pyglet label per line: a line is laid out again only when its text
    changes (laying out a whole block takes pyglet ~6 ms, a line ~0.4 ms), so a live HUD whose numbers change costs
    little. Lines longer than ``width`` pixels wrap."""

    def __init__(self, font_size: int, width: int) -> None:
        self.font_size = font_size
        self.width = max(200, int(width))
        self.batch = pyglet.graphics.Batch()
        self.labels: list = []
        self.panel = pyglet.shapes.Rectangle(0, 0, 1, 1, color=(20, 24, 32, 150))
        self._where: tuple | None = None  # (left, top) the labels were placed at, and their heights

    @property
    def lines(self) -> list[str]:
        return [label.text for label in self.labels]

    def set(self, lines: list[str]) -> None:
        for label in self.labels[len(lines):]:
            label.delete()
        del self.labels[len(lines):]
        for i, line in enumerate(lines):
            if i == len(self.labels):
                self.labels.append(pyglet.text.Label(line, font_size=self.font_size, color=(255, 255, 255, 255),
                                                     multiline=True, width=self.width, anchor_x="left",
                                                     anchor_y="top", batch=self.batch))
            elif self.labels[i].text != line:
                self.labels[i].text = line
        self._where = None

    def size(self) -> tuple[float, float]:
        """(width, height) of the panel in pixels."""
        if not self.labels:
            return 0.0, 0.0
        return (max(label.content_width for label in self.labels) + 2 * HUD_PADDING,
                sum(label.content_height for label in self.labels) + 2 * HUD_PADDING)

    def draw(self, left: float, top: float) -> None:
        """Draw with the panel's top-left corner at (left, top) (pyglet window pixels, y up)."""
        if not self.labels:
            return
        where = (left, top, tuple(label.content_height for label in self.labels))
        if where != self._where:
            width, height = self.size()
            self.panel.position, self.panel.width, self.panel.height = (left, top - height), width, height
            y = top - HUD_PADDING
            for label in self.labels:
                label.position = (left + HUD_PADDING, y, 0)
                y -= label.content_height
            self._where = where
        self.panel.draw()
        self.batch.draw()

    def delete(self) -> None:
        self.set([])
        self.panel.delete()


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
        self._hud = TextBlock(HUD_FONT_SIZE, self.width - 2 * HUD_MARGIN)
        self._help = TextBlock(HELP_FONT_SIZE, self.width - 2 * HUD_MARGIN)

    @property
    def software_gl(self) -> bool:
        """Whether this window's GL rasterises on the CPU (Mesa llvmpipe / softpipe: Xvfb, machines without a GPU)."""
        from pyglet.gl import gl_info

        self.switch_to()
        return any(name in gl_info.get_renderer().lower() for name in SOFTWARE_RENDERERS)

    # --- content -------------------------------------------------------------------------------------
    def set_scene(self, scene: SceneFrame) -> None:
        if not isinstance(scene, SceneFrame):
            raise TypeError(f"set_scene expects a viewer.SceneFrame, got {type(scene).__name__}")
        self.scene = scene

    def set_hud(self, lines: list[str]) -> None:
        """Text shown in the top-left corner (e.g. task, speed, fps); an empty list hides it."""
        self._hud.set([str(x) for x in lines])

    def set_help(self, lines: list[str]) -> None:
        """Text of the help overlay, shown in the middle while ``help_visible`` is True."""
        self._help.set([str(x) for x in lines])

    # --- drawing -------------------------------------------------------------------------------------
    def on_draw(self) -> None:
        fw, fh = self.get_framebuffer_size()
        self.renderer.draw(self.scene, self.camera, fw, fh)
        self._draw_overlays()

    def _draw_overlays(self) -> None:
        gl.glEnable(gl.GL_BLEND)
        gl.glBlendFunc(gl.GL_SRC_ALPHA, gl.GL_ONE_MINUS_SRC_ALPHA)
        self._hud.draw(HUD_MARGIN, self.height - HUD_MARGIN)
        if self.help_visible:
            width, height = self._help.size()
            self._help.draw((self.width - width) / 2, (self.height + height) / 2)
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
        # size every frame. Text wraps to the window width, so lay it out again (once the blocks exist:
        # pyglet may send a resize while the window is still being created).
        if not hasattr(self, "_help"):
            return
        for name in ("_hud", "_help"):
            old = getattr(self, name)
            block = TextBlock(old.font_size, width - 2 * HUD_MARGIN)
            block.set(old.lines)
            old.delete()
            setattr(self, name, block)

    def on_close(self) -> None:
        self.switch_to()
        self.renderer.delete()
        super().on_close()
