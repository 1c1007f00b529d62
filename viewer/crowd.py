"""Crowds: far characters as camera-facing capsule impostors with blob shadows, one draw call for all of them.

Per frame the CPU builds, for the characters :mod:`viewer.lod` keeps at the mid, far and tiny levels (nearest
first), one instance row per capsule of their level's :class:`viewer.impostors.ImpostorPlan` (endpoints, radius, colour:
:func:`viewer.shapes.impostor_rows`, vectorised over the crowd) and one per character for its blob shadow,
and uploads them in one buffer each. Culled characters cost nothing, not even an upload; a frame whose poses,
colours and levels equal the last one's (a paused app under a still camera) uploads nothing.

The vertex shader spans each capsule with a quad facing the eye (4 vertices from ``gl_VertexID``, a triangle
strip, no vertex buffer); the fragment shader cuts the quad to the capsule's outline (a stadium: round ends,
so heads are round) and lights it with the normal of a capsule seen from afar and the same light as the exact
bodies (:mod:`viewer.lighting`). Depth is the quad's own (no ``gl_FragDepth``), so the driver tests depth
before shading and hidden impostors cost little: why the rows run nearest first. Next to the exact ray-cast
bodies (a 12-triangle proxy box per capsule and a shadow pass per capsule) a far character costs 2 triangles
per capsule (7 capsules) and 10 for its shadow. Endpoints are built on the CPU (numpy, once per capsule) rather than by the
vertex shader from joint positions in a texture: software GL shades vertices on one thread, and fetching the
joints per vertex would repeat that work for each of a capsule's 4 vertices.

Blob shadows: one ellipse per character (a 12-gon), from under its feet along the light to where its head's
shadow falls, as dark as the exact shadows and like them darkening each pixel once (stencil), so they read alike.
"""

from __future__ import annotations

import ctypes
import math
from dataclasses import dataclass

import numpy as np
from pyglet import gl

from viewer.gl_objects import Program, float_attribute, make_buffer
from viewer.impostors import ImpostorLevels
from viewer.lighting import LIGHTING_GLSL
from viewer.lod import CrowdLod
from viewer.shapes import IMPOSTOR_FLOATS, impostor_rows

# A blob shadow is an ellipse on the ground from just behind the feet to where the head's shadow falls.
BLOB_HALF_WIDTH = 0.2  # m
BLOB_TAIL = 0.15  # m behind the root, against the light: under the feet
BODY_HEIGHT_PER_ROOT_HEIGHT = 1.9  # a standing body is about this many times as tall as its root is high
BLOB_FLOATS = 4  # per character: root position, pad

_IMPOSTOR_VERTEX = "#version 330 core\n" + LIGHTING_GLSL + """
layout(location = 0) in vec4 i_a;      // endpoint a, radius
layout(location = 1) in vec4 i_b;      // endpoint b, -
layout(location = 2) in vec4 i_color;  // rgb, -
uniform mat4 u_view_proj;

out vec2 v_local;       // metres in the quad: x across the capsule, y along it, from its centre
// The capsule's frame (across, along, towards the eye) is where its normals are simple; what the lighting
// needs of a normal (its dot products with the light, up and the half vector) becomes a dot product with
// these three vectors in that frame. The eye's direction and the fog are the capsule centre's: it is small.
flat out vec3 v_light;
flat out vec3 v_up;
flat out vec3 v_half;
flat out vec2 v_size;   // (radius, half the axis length seen from the eye)
flat out vec3 v_color;
flat out float v_fog;

void main() {
    vec3 a = i_a.xyz;
    vec3 b = i_b.xyz;
    float r = i_a.w;
    vec3 centre = 0.5 * (a + b);
    vec3 to_eye = normalize(u_eye - centre);
    // The axis as the eye sees it: its part across the line of sight. Seen end on (or a sphere), any
    // direction across the line of sight will do: world up where it can, else +z.
    vec3 axis = b - a;
    vec3 along = axis - dot(axis, to_eye) * to_eye;
    float len = length(along);
    if (len > 1e-6) {
        along /= len;
    } else {
        along = vec3(0.0, 1.0, 0.0) - to_eye.y * to_eye;
        float l = length(along);
        along = l > 1e-6 ? along / l : vec3(0.0, 0.0, 1.0);
        len = 0.0;
    }
    vec3 side = cross(along, to_eye);
    mat3 frame = transpose(mat3(side, along, to_eye));  // world -> capsule frame
    vec3 to_light = -u_light_dir;
    v_light = frame * to_light;
    v_up = frame * vec3(0.0, 1.0, 0.0);
    v_half = frame * normalize(to_light + to_eye);
    v_fog = fog_at(length(u_eye - centre));
    vec2 corner = vec2(float(gl_VertexID & 1), float(gl_VertexID >> 1)) * 2.0 - 1.0;  // triangle strip order
    v_size = vec2(r, 0.5 * len);
    v_local = corner * vec2(r, 0.5 * len + r);
    v_color = i_color.rgb;
    gl_Position = u_view_proj * vec4(centre + side * v_local.x + along * v_local.y, 1.0);
}
"""

_IMPOSTOR_FRAGMENT = "#version 330 core\n" + LIGHTING_GLSL + """
in vec2 v_local;
flat in vec3 v_light;
flat in vec3 v_up;
flat in vec3 v_half;
flat in vec2 v_size;
flat in vec3 v_color;
flat in float v_fog;
out vec4 frag_color;

void main() {
    // Offset from the nearest axis point, in radii: outside the unit disc is outside the capsule's outline.
    vec2 d = vec2(v_local.x, v_local.y - clamp(v_local.y, -v_size.y, v_size.y)) / v_size.x;
    float d2 = dot(d, d);
    if (d2 > 1.0) discard;
    vec3 normal = vec3(d, sqrt(1.0 - d2));  // in the capsule's frame
    frag_color = light(v_color, 1.0, dot(normal, v_light), dot(normal, v_up), dot(normal, v_half), v_fog);
}
"""

# A 12-gon through the ellipse, as a triangle strip zigzagging from one end of its long axis to the other: no
# fragment is discarded, so depth and stencil are tested before shading (a discarding shader that writes the
# stencil is tested after it in llvmpipe), and pixels already in shadow or behind a body cost little.
BLOB_VERTICES = 12

_BLOB_VERTEX = f"""
#version 330 core
layout(location = 0) in vec4 i_root;
uniform mat4 u_view_proj;
uniform vec3 u_light_dir;
uniform float u_shadow_height;

void main() {{
    float slope = length(u_light_dir.xz) / -u_light_dir.y;  // ground metres per metre of height
    vec2 along = slope > 1e-6 ? normalize(u_light_dir.xz) : vec2(1.0, 0.0);
    float reach = {BODY_HEIGHT_PER_ROOT_HEIGHT} * max(i_root.y, 0.0) * slope;  // where the head's shadow falls
    vec2 centre = i_root.xz + along * 0.5 * (reach - {BLOB_TAIL});
    // Strip order 0, +1, -1, +2, -2, ...: vertex k of the polygon at angle +-k 2 pi / n.
    float step = float((gl_VertexID + 1) >> 1) * (gl_VertexID % 2 == 1 ? 1.0 : -1.0);
    float angle = step * {2.0 * math.pi / BLOB_VERTICES};
    vec2 p = centre + along * cos(angle) * 0.5 * (reach + {BLOB_TAIL})
             + vec2(-along.y, along.x) * sin(angle) * {BLOB_HALF_WIDTH};
    gl_Position = u_view_proj * vec4(p.x, u_shadow_height, p.y, 1.0);
}}
"""

_BLOB_FRAGMENT = """
#version 330 core
uniform vec4 u_shadow_color;
out vec4 frag_color;

void main() {
    frag_color = u_shadow_color;
}
"""


@dataclass(frozen=True)
class CrowdDraw:
    """What this frame draws of the crowd: impostor capsules (every level) and blob shadows."""

    impostors: int
    blobs: int


def _same_inputs(before: list, now: list) -> bool:
    """Whether two frames' (poses, colours, plan, lod) per group are equal (arrays by value, plans by identity)."""
    if len(before) != len(now):
        return False
    for (p0, c0, plan0, lod0), (p1, c1, plan1, lod1) in zip(before, now, strict=True):
        if plan0 is not plan1 or not (np.array_equal(p0, p1) and np.array_equal(c0, c1)):
            return False
        if not all(np.array_equal(getattr(lod0, level), getattr(lod1, level)) for level in ("mid", "far", "tiny")):
            return False
    return True


class _InstanceStream:
    """A vertex array over one per-frame instance buffer of ``floats``-float rows, read as vec4 attributes 0, 1, ..."""

    def __init__(self, floats: int) -> None:
        self.floats = floats
        self.vao = gl.GLuint()
        gl.glGenVertexArrays(1, ctypes.byref(self.vao))
        gl.glBindVertexArray(self.vao)
        self.buffer = make_buffer(gl.GL_ARRAY_BUFFER, None, 4 * floats, gl.GL_STREAM_DRAW)
        stride = 4 * floats
        for i in range(floats // 4):
            float_attribute(i, 4, stride, 16 * i, divisor=1)
        gl.glBindVertexArray(0)

    def upload(self, rows: np.ndarray) -> None:
        rows = np.ascontiguousarray(rows, dtype=np.float32)
        gl.glBindBuffer(gl.GL_ARRAY_BUFFER, self.buffer)
        # A fresh store each frame: the driver may keep drawing from the old one meanwhile.
        gl.glBufferData(gl.GL_ARRAY_BUFFER, rows.nbytes, rows.ctypes.data_as(ctypes.c_void_p), gl.GL_STREAM_DRAW)

    def bind(self) -> None:
        gl.glBindVertexArray(self.vao)

    def delete(self) -> None:
        gl.glDeleteBuffers(1, ctypes.byref(self.buffer))
        gl.glDeleteVertexArrays(1, ctypes.byref(self.vao))


class CrowdPass:
    """Programs and instance buffers for far characters; see the module docstring. Needs a current GL context."""

    def __init__(self) -> None:
        self._impostors = Program(_IMPOSTOR_VERTEX, _IMPOSTOR_FRAGMENT)
        self._blobs = Program(_BLOB_VERTEX, _BLOB_FRAGMENT)
        self._impostor_rows = _InstanceStream(IMPOSTOR_FLOATS)
        self._blob_rows = _InstanceStream(BLOB_FLOATS)
        self._frame: CrowdDraw | None = None
        self._inputs: list | None = None  # what the buffers were built from
        self.draw_calls = 0
        self.uploaded_bytes = 0  # by the last prepare

    def prepare(self, groups: list[tuple[np.ndarray, np.ndarray, ImpostorLevels, CrowdLod]]) -> CrowdDraw | None:
        """Build and upload this frame's rows from (poses (N, J, 3), colours (N, 4), plan, lod) per group; when
        none of it changed since the last frame (a paused app, a still camera), the buffers already hold them."""
        self.draw_calls = 0
        self.uploaded_bytes = 0
        if self._inputs is not None and _same_inputs(self._inputs, groups):
            return self._frame
        self._inputs = [(positions.copy(), rgba.copy(), plan, lod) for positions, rgba, plan, lod in groups]
        rows, roots = [], []
        for positions, rgba, plan, lod in groups:
            # Levels nearest first, so that depth testing rejects what nearer impostors hide.
            for level, level_plan in ((lod.mid, plan.mid), (lod.far, plan.far), (lod.tiny, plan.tiny)):
                if len(level):
                    rows.append(impostor_rows(level_plan, positions[level], rgba[level]))
                    roots.append(positions[level, 0])  # (K, 3)
        if not rows:
            self._frame = None
            return None
        rows = np.concatenate(rows)
        self._impostor_rows.upload(rows)
        root_rows = np.zeros((sum(len(r) for r in roots), BLOB_FLOATS), dtype=np.float32)
        root_rows[:, :3] = np.concatenate(roots)
        self._blob_rows.upload(root_rows)
        self.uploaded_bytes = rows.nbytes + root_rows.nbytes
        self._frame = CrowdDraw(len(rows), len(root_rows))
        return self._frame

    def draw_shadows(self, view_proj, light_dir, shadow_rgba, shadow_height: float) -> None:
        """Blob shadows of this frame's impostor characters (blending and stencil set by the caller)."""
        if self._frame is None:
            return
        program = self._blobs
        program.use()
        program.set(u_view_proj=view_proj, u_light_dir=light_dir, u_shadow_color=shadow_rgba,
                    u_shadow_height=shadow_height)
        self._blob_rows.bind()
        gl.glDrawArraysInstanced(gl.GL_TRIANGLE_STRIP, 0, BLOB_VERTICES, self._frame.blobs)
        self.draw_calls += 1

    def draw_bodies(self, view_proj, eye, light_dir, sky, fog) -> None:
        """This frame's impostors, every level in one call (depth test set by the caller)."""
        if self._frame is None:
            return
        program = self._impostors
        program.use()
        program.set(u_view_proj=view_proj, u_eye=eye, u_light_dir=light_dir, u_sky=sky, u_fog=fog)
        # Every level in one draw call: levels differ in which capsules a body keeps, not in how one is drawn.
        self._impostor_rows.bind()
        gl.glDrawArraysInstanced(gl.GL_TRIANGLE_STRIP, 0, 4, self._frame.impostors)
        self.draw_calls += 1

    def delete(self) -> None:
        for stream in (self._impostor_rows, self._blob_rows):
            stream.delete()
        for program in (self._impostors, self._blobs):
            program.delete()
