"""Thin wrappers over the raw OpenGL objects the passes share: programs, buffers, vertex attributes.

Raw GL calls (``pyglet.gl``) own the buffers; pyglet's ``ShaderProgram`` compiles the shaders and
sets uniforms. Everything needs the window's GL context to be current.
"""

from __future__ import annotations

import ctypes

import numpy as np
from pyglet import gl
from pyglet.graphics.shader import Shader, ShaderProgram


class Program:
    """A compiled shader program whose ``set`` skips uniforms the driver optimised away (pyglet raises)."""

    def __init__(self, vertex: str, fragment: str) -> None:
        self.program = ShaderProgram(Shader(vertex, "vertex"), Shader(fragment, "fragment"))
        self._names = frozenset(self.program.uniforms)

    def use(self) -> None:
        self.program.use()

    def set(self, **values) -> None:
        for name, value in values.items():
            if name in self._names:
                self.program[name] = value

    def delete(self) -> None:
        self.program.delete()


def make_buffer(target: int, data: np.ndarray | None, nbytes: int, usage: int) -> gl.GLuint:
    handle = gl.GLuint()
    gl.glGenBuffers(1, ctypes.byref(handle))
    gl.glBindBuffer(target, handle)
    gl.glBufferData(target, nbytes, None if data is None else data.ctypes.data_as(ctypes.c_void_p), usage)
    return handle


def float_attribute(location: int, size: int, stride: int, offset: int, divisor: int = 0) -> None:
    gl.glEnableVertexAttribArray(location)
    gl.glVertexAttribPointer(location, size, gl.GL_FLOAT, gl.GL_FALSE, stride, ctypes.c_void_p(offset))
    if divisor:
        gl.glVertexAttribDivisor(location, divisor)
