"""Draws a :class:`viewer.scene.SceneFrame` with OpenGL 3.3 core through pyglet (needs a current GL context).

One frame is, in order:

1. clear to the sky colour;
2. the ground: one large quad at y = 0 whose fragment shader draws a checkerboard with anti-aliased
   1 m grid lines, fading into the sky with distance (so the quad's edge never shows);
3. planar shadows: every opaque solid's box again, flattened onto the ground along the light direction;
   for capsules the fragment shader keeps only ground points whose ray towards the light hits the
   capsule, so shadows are exact. They are drawn translucent dark, and the stencil buffer lets each
   pixel darken once where shadows overlap. Only the box faces turned to the light are drawn (they
   cover the whole flattened box);
4. opaque solids, lit: directional key light (diffuse + a little specular) plus a sky/ground hemisphere
   ambient; all capsules in one instanced draw call (ray-cast inside their proxy boxes, writing their
   true depth), all boxes in another;
5. translucent solids (alpha < 1), blended, without depth writes.

Characters, markers and polylines all become capsule instances (see :mod:`viewer.shapes` and
:mod:`viewer.body`), so a crowd of 256 characters costs one draw call per pass. Polylines are tubes
``width`` metres thick, not 1-pixel GL lines: core-profile contexts do not do wide lines.

Raw GL calls (``pyglet.gl``) own the buffers; pyglet's ``ShaderProgram`` compiles the shaders and sets
uniforms. :meth:`Renderer.draw` leaves depth test, culling, blending and stencil off and no program or
vertex array bound, so pyglet's own 2D drawing (labels) works afterwards.
"""

from __future__ import annotations

import ctypes
import math

import numpy as np
from pyglet import gl
from pyglet.graphics.shader import Shader, ShaderProgram

from viewer.body import body_capsules, body_plan
from viewer.camera import Camera
from viewer.scene import SceneFrame
from viewer.shapes import INSTANCE_FLOATS, Mesh, box_instances, box_mesh, box_rows, capsule_rows, ground_quad

SKY_RGB = (0.72, 0.79, 0.87)
LIGHT_DIRECTION = (0.3, -1.0, -0.5)  # the way the light travels: high, from the front-right of a +z walker
SHADOW_RGBA = (0.08, 0.09, 0.13, 0.38)
SHADOW_HEIGHT = 0.002  # metres: flattened shadows sit just above the ground plane
GROUND_HALF_SIZE = 150.0
FOG_RANGE = (35.0, 140.0)  # metres from the eye where the ground starts / finishes fading into the sky
ARROW_HEAD_WIDTHS = 5.0  # arrow head length in polyline widths
ARROW_HEAD_ANGLE = math.radians(28.0)

_INSTANCE_INPUTS = """
layout(location = 0) in vec3 a_position;
layout(location = 1) in vec3 a_normal;
layout(location = 2) in vec4 i_model0;
layout(location = 3) in vec4 i_model1;
layout(location = 4) in vec4 i_model2;
layout(location = 5) in vec4 i_model3;
layout(location = 6) in vec4 i_a;
layout(location = 7) in vec4 i_b;
layout(location = 8) in vec4 i_color;
"""

# Shared by both solid programs: flatten onto the ground along the light for the shadow pass.
_VERTEX_COMMON = """
uniform mat4 u_view_proj;
uniform vec3 u_light_dir;
uniform float u_shadow;
uniform float u_shadow_height;

vec3 to_shadow(vec3 world) {
    // Slide the point along the light ray down onto the plane y = u_shadow_height.
    float above = max(world.y, u_shadow_height) - u_shadow_height;
    world += u_light_dir * (above / -u_light_dir.y);
    world.y = u_shadow_height;
    return world;
}
"""

_LIGHTING = """
uniform vec3 u_light_dir;
uniform vec3 u_eye;
uniform vec3 u_sky;
uniform vec2 u_fog;

vec4 shade(vec3 albedo, float alpha, vec3 n, vec3 world) {
    vec3 to_light = -u_light_dir;
    vec3 to_eye = normalize(u_eye - world);
    float diffuse = max(dot(n, to_light), 0.0);
    vec3 ambient = mix(vec3(0.30, 0.27, 0.24), vec3(0.46, 0.50, 0.58), 0.5 + 0.5 * n.y);
    float specular = pow(max(dot(n, normalize(to_light + to_eye)), 0.0), 40.0) * 0.18;
    vec3 rgb = albedo * (ambient + diffuse * vec3(0.78, 0.75, 0.69)) + specular;
    float fog = smoothstep(u_fog.x, u_fog.y, length(u_eye - world));
    return vec4(mix(rgb, u_sky, fog), alpha);
}
"""

_BOX_VERTEX = "#version 330 core\n" + _INSTANCE_INPUTS + _VERTEX_COMMON + """
out vec3 v_world;
out vec3 v_normal;
out vec4 v_color;

void main() {
    mat4 model = mat4(i_model0, i_model1, i_model2, i_model3);
    vec3 world = (model * vec4(a_position, 1.0)).xyz;
    v_normal = normalize(mat3(model) * a_normal);  // exact: boxes scale along their own face axes
    if (u_shadow > 0.5) world = to_shadow(world);
    v_world = world;
    v_color = i_color;
    gl_Position = u_view_proj * vec4(world, 1.0);
}
"""

_BOX_FRAGMENT = "#version 330 core\n" + _LIGHTING + """
in vec3 v_world;
in vec3 v_normal;
in vec4 v_color;
uniform float u_shadow;
uniform vec4 u_shadow_color;
out vec4 frag_color;

void main() {
    frag_color = u_shadow > 0.5 ? u_shadow_color : shade(v_color.rgb, v_color.a, normalize(v_normal), v_world);
}
"""

_CAPSULE_VERTEX = "#version 330 core\n" + _INSTANCE_INPUTS + _VERTEX_COMMON + """
out vec3 v_world;
flat out vec4 v_a;
flat out vec3 v_b;
flat out vec4 v_color;

void main() {
    mat4 model = mat4(i_model0, i_model1, i_model2, i_model3);
    vec3 world = (model * vec4(a_position, 1.0)).xyz;
    if (u_shadow > 0.5) world = to_shadow(world);
    v_world = world;
    v_a = i_a;
    v_b = i_b.xyz;
    v_color = i_color;
    gl_Position = u_view_proj * vec4(world, 1.0);
}
"""

# Ray-cast the capsule (a, b, radius) inside its proxy box; viewer.shapes.capsule_ray_hits is the same
# maths in numpy. The capsule is the finite cylinder plus two end spheres: its first hit is the nearest
# of the infinite cylinder's entry (if it lies between the ends) and the two spheres' entries.
_CAPSULE_FRAGMENT = "#version 330 core\n" + _LIGHTING + """
in vec3 v_world;
flat in vec4 v_a;
flat in vec3 v_b;
flat in vec4 v_color;
uniform mat4 u_view_proj;
uniform float u_shadow;
uniform vec4 u_shadow_color;
out vec4 frag_color;

const float MISS = 1e30;

float sphere_hit(vec3 ro, vec3 rd, vec3 c, float r) {
    vec3 oc = ro - c;
    float b = dot(oc, rd);
    float h = b * b - (dot(oc, oc) - r * r);
    if (h < 0.0) return MISS;
    float t = -b - sqrt(h);
    return t > 0.0 ? t : MISS;
}

float capsule_hit(vec3 ro, vec3 rd, vec3 a, vec3 b, float r, out vec3 normal) {
    float best = MISS;
    vec3 ab = b - a;
    float len = length(ab);
    if (len > 1e-6) {
        vec3 u = ab / len;
        vec3 oa = ro - a;
        float du = dot(rd, u);
        float oau = dot(oa, u);
        float qa = 1.0 - du * du;
        float qb = dot(oa, rd) - oau * du;
        float qc = dot(oa, oa) - oau * oau - r * r;
        float disc = qb * qb - qa * qc;
        if (qa > 1e-7 && disc >= 0.0) {
            float t = (-qb - sqrt(disc)) / qa;
            float s = oau + t * du;
            if (t > 0.0 && s >= 0.0 && s <= len) {
                best = t;
                normal = (oa + t * rd - s * u) / r;
            }
        }
    }
    float ta = sphere_hit(ro, rd, a, r);
    if (ta < best) { best = ta; normal = (ro + ta * rd - a) / r; }
    float tb = sphere_hit(ro, rd, b, r);
    if (tb < best) { best = tb; normal = (ro + tb * rd - b) / r; }
    return best;
}

void main() {
    vec3 normal = vec3(0.0, 1.0, 0.0);
    if (u_shadow > 0.5) {
        // v_world is a ground point: is the capsule between it and the light?
        if (capsule_hit(v_world, -u_light_dir, v_a.xyz, v_b, v_a.w, normal) >= MISS) discard;
        frag_color = u_shadow_color;
        return;
    }
    vec3 rd = normalize(v_world - u_eye);
    float t = capsule_hit(u_eye, rd, v_a.xyz, v_b, v_a.w, normal);
    if (t >= MISS) discard;
    vec3 hit = u_eye + t * rd;
    vec4 clip = u_view_proj * vec4(hit, 1.0);
    gl_FragDepth = 0.5 * clip.z / clip.w + 0.5;
    frag_color = shade(v_color.rgb, v_color.a, normalize(normal), hit);
}
"""

_GROUND_VERTEX = """
#version 330 core
layout(location = 0) in vec3 a_position;
uniform mat4 u_view_proj;
out vec3 v_world;
void main() {
    v_world = a_position;
    gl_Position = u_view_proj * vec4(a_position, 1.0);
}
"""

_GROUND_FRAGMENT = """
#version 330 core
in vec3 v_world;
uniform vec3 u_eye;
uniform vec3 u_light_dir;
uniform vec3 u_sky;
uniform vec2 u_fog;
out vec4 frag_color;

void main() {
    vec2 p = v_world.xz;
    vec2 cell = floor(p);
    float checker = mod(cell.x + cell.y, 2.0);
    vec3 base = mix(vec3(0.80, 0.80, 0.78), vec3(0.70, 0.71, 0.70), checker);
    // Grid lines one pixel wide at every metre, anti-aliased with the screen-space derivative.
    vec2 d = abs(fract(p - 0.5) - 0.5) / max(fwidth(p), 1e-6);
    float line = 1.0 - min(min(d.x, d.y), 1.0);
    vec2 axis = abs(p) / max(fwidth(p), 1e-6);
    float origin_line = 1.0 - min(min(axis.x, axis.y), 1.0);
    base = mix(base, vec3(0.52, 0.54, 0.56), line * 0.8);
    base = mix(base, vec3(0.35, 0.38, 0.45), origin_line);
    float light = 0.55 + 0.5 * max(-u_light_dir.y, 0.0);
    // 1 / w is the view depth: cheaper per pixel than the distance to the eye, and as good for fog.
    float fog = smoothstep(u_fog.x, u_fog.y, 1.0 / gl_FragCoord.w);
    frag_color = vec4(mix(base * light, u_sky, fog), 1.0);
}
"""


class _Program:
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


def _column_major(m: np.ndarray) -> tuple[float, ...]:
    return tuple(float(x) for x in m.T.reshape(-1))


def _buffer(target: int, data: np.ndarray | None, nbytes: int, usage: int) -> gl.GLuint:
    handle = gl.GLuint()
    gl.glGenBuffers(1, ctypes.byref(handle))
    gl.glBindBuffer(target, handle)
    gl.glBufferData(target, nbytes, None if data is None else data.ctypes.data_as(ctypes.c_void_p), usage)
    return handle


def _attribute(location: int, size: int, stride: int, offset: int, divisor: int = 0) -> None:
    gl.glEnableVertexAttribArray(location)
    gl.glVertexAttribPointer(location, size, gl.GL_FLOAT, gl.GL_FALSE, stride, ctypes.c_void_p(offset))
    if divisor:
        gl.glVertexAttribDivisor(location, divisor)


class _InstancedMesh:
    """A static mesh plus a per-frame instance buffer (rows of :data:`INSTANCE_FLOATS` floats)."""

    def __init__(self, mesh: Mesh) -> None:
        self.index_count = len(mesh.indices)
        self.instance_count = 0
        self._vao = gl.GLuint()
        gl.glGenVertexArrays(1, ctypes.byref(self._vao))
        gl.glBindVertexArray(self._vao)
        vertices = np.ascontiguousarray(mesh.vertex_array())  # (V, 6)
        indices = np.ascontiguousarray(mesh.indices, dtype=np.uint32)
        self._vbo = _buffer(gl.GL_ARRAY_BUFFER, vertices, vertices.nbytes, gl.GL_STATIC_DRAW)
        _attribute(0, 3, 24, 0)
        _attribute(1, 3, 24, 12)
        self._ebo = _buffer(gl.GL_ELEMENT_ARRAY_BUFFER, indices, indices.nbytes, gl.GL_STATIC_DRAW)
        self._instances = _buffer(gl.GL_ARRAY_BUFFER, None, 4 * INSTANCE_FLOATS, gl.GL_STREAM_DRAW)
        stride = 4 * INSTANCE_FLOATS
        for i in range(INSTANCE_FLOATS // 4):  # model columns 0-3, (a, r), (b, -), colour: one vec4 each
            _attribute(2 + i, 4, stride, 16 * i, divisor=1)
        gl.glBindVertexArray(0)

    def upload(self, rows: np.ndarray) -> None:
        self.instance_count = len(rows)
        if self.instance_count == 0:
            return
        rows = np.ascontiguousarray(rows, dtype=np.float32)
        gl.glBindBuffer(gl.GL_ARRAY_BUFFER, self._instances)
        # A fresh store each frame: the driver may keep drawing from the old one meanwhile.
        gl.glBufferData(gl.GL_ARRAY_BUFFER, rows.nbytes, rows.ctypes.data_as(ctypes.c_void_p), gl.GL_STREAM_DRAW)

    def draw(self) -> None:
        if self.instance_count == 0:
            return
        gl.glBindVertexArray(self._vao)
        gl.glDrawElementsInstanced(gl.GL_TRIANGLES, self.index_count, gl.GL_UNSIGNED_INT, None, self.instance_count)

    def delete(self) -> None:
        for b in (self._vbo, self._ebo, self._instances):
            gl.glDeleteBuffers(1, ctypes.byref(b))
        gl.glDeleteVertexArrays(1, ctypes.byref(self._vao))


class Renderer:
    """GL programs and buffers for drawing scenes in the current pyglet GL context.

    Create it after the window (its context must be current); call :meth:`draw` every frame and
    :meth:`delete` before closing the window.
    """

    def __init__(self) -> None:
        self._capsule_program = _Program(_CAPSULE_VERTEX, _CAPSULE_FRAGMENT)
        self._box_program = _Program(_BOX_VERTEX, _BOX_FRAGMENT)
        self._ground_program = _Program(_GROUND_VERTEX, _GROUND_FRAGMENT)
        self._capsules = _InstancedMesh(box_mesh())  # capsule proxies
        self._boxes = _InstancedMesh(box_mesh())
        self._ground_vao = gl.GLuint()
        gl.glGenVertexArrays(1, ctypes.byref(self._ground_vao))
        gl.glBindVertexArray(self._ground_vao)
        self._ground_vbo = _buffer(gl.GL_ARRAY_BUFFER, None, 4 * 12, gl.GL_DYNAMIC_DRAW)
        _attribute(0, 3, 12, 0)
        gl.glBindVertexArray(0)
        light = np.asarray(LIGHT_DIRECTION, dtype=np.float64)
        self.light_direction = tuple(float(x) for x in light / np.linalg.norm(light))
        self.sky_rgb = SKY_RGB
        self.last_counts = {"capsules": 0, "boxes": 0}

    # --- scene -> instance rows --------------------------------------------------------------------
    @staticmethod
    def capsule_rows(scene: SceneFrame) -> np.ndarray:
        """All capsule instances of a scene: characters, markers, polylines -> (K, INSTANCE_FLOATS) float32."""
        ends, radii, colours = [], [], []
        for group in scene.characters:
            names = group.joint_names if group.joint_names is not None else [f"j{i}" for i in range(len(group.parents))]
            plan = body_plan(names, group.parents, group.joint_radii)
            e, r, c = body_capsules(plan, group.positions, group.rgba)
            ends.append(e)
            radii.append(r)
            colours.append(c)
        if scene.markers:
            centers = np.array([m.position for m in scene.markers])  # (K, 3)
            ends.append(np.stack([centers, centers], axis=1))
            radii.append(np.array([m.radius for m in scene.markers]))
            colours.append(np.array([m.rgba for m in scene.markers]))
        for line in scene.polylines:
            e = _polyline_segments(line.points, line.width, line.arrow)
            ends.append(e)
            radii.append(np.full(len(e), line.width / 2.0))
            colours.append(np.broadcast_to(line.rgba, (len(e), 4)))
        if not ends:
            return np.zeros((0, INSTANCE_FLOATS), dtype=np.float32)
        return capsule_rows(np.concatenate(ends), np.concatenate(radii), np.concatenate(colours))

    @staticmethod
    def box_rows(scene: SceneFrame) -> np.ndarray:
        if not scene.boxes:
            return np.zeros((0, INSTANCE_FLOATS), dtype=np.float32)
        model = box_instances(
            np.array([b.center for b in scene.boxes]),
            np.array([b.half_extents for b in scene.boxes]),
            np.array([b.yaw for b in scene.boxes]),
        )
        return box_rows(model, np.array([b.rgba for b in scene.boxes]))

    # --- drawing -------------------------------------------------------------------------------------
    def draw(self, scene: SceneFrame, camera: Camera, width: int, height: int) -> None:
        """Draw ``scene`` seen by ``camera`` into the current framebuffer's ``width`` x ``height`` pixels."""
        width, height = max(int(width), 1), max(int(height), 1)
        view_proj = _column_major(camera.view_projection(width, height))
        eye = tuple(float(x) for x in camera.eye())
        capsules = self.capsule_rows(scene)
        boxes = self.box_rows(scene)
        self.last_counts = {"capsules": len(capsules), "boxes": len(boxes)}

        gl.glViewport(0, 0, width, height)
        gl.glClearColor(*self.sky_rgb, 1.0)
        gl.glClearStencil(0)
        gl.glDepthMask(gl.GL_TRUE)
        gl.glClear(gl.GL_COLOR_BUFFER_BIT | gl.GL_DEPTH_BUFFER_BIT | gl.GL_STENCIL_BUFFER_BIT)
        gl.glEnable(gl.GL_DEPTH_TEST)
        gl.glDepthFunc(gl.GL_LESS)
        self._draw_ground(camera, view_proj, eye)

        for program in (self._capsule_program, self._box_program):
            program.set(u_view_proj=view_proj, u_light_dir=self.light_direction, u_eye=eye,
                        u_sky=self.sky_rgb, u_fog=FOG_RANGE, u_shadow_color=SHADOW_RGBA,
                        u_shadow_height=SHADOW_HEIGHT)

        opaque_c, clear_c = _split_by_alpha(capsules)
        opaque_b, clear_b = _split_by_alpha(boxes)
        self._capsules.upload(opaque_c)
        self._boxes.upload(opaque_b)

        # Shadows: no depth test (only the ground is drawn so far, and they lie on it), blend once per pixel.
        # Light-facing triangles keep their winding when flattened, seen from above: cull the others.
        gl.glDisable(gl.GL_DEPTH_TEST)
        gl.glEnable(gl.GL_CULL_FACE)
        gl.glCullFace(gl.GL_BACK)
        gl.glEnable(gl.GL_BLEND)
        gl.glBlendFunc(gl.GL_SRC_ALPHA, gl.GL_ONE_MINUS_SRC_ALPHA)
        gl.glEnable(gl.GL_STENCIL_TEST)
        gl.glStencilFunc(gl.GL_EQUAL, 0, 0xFF)
        gl.glStencilOp(gl.GL_KEEP, gl.GL_KEEP, gl.GL_INCR)
        self._draw_solids(shadow=True)
        gl.glDisable(gl.GL_STENCIL_TEST)
        gl.glDisable(gl.GL_BLEND)

        gl.glEnable(gl.GL_DEPTH_TEST)
        self._draw_solids(shadow=False)

        if len(clear_c) or len(clear_b):
            gl.glEnable(gl.GL_BLEND)
            gl.glDepthMask(gl.GL_FALSE)
            self._capsules.upload(clear_c)
            self._boxes.upload(clear_b)
            self._draw_solids(shadow=False)
            gl.glDepthMask(gl.GL_TRUE)
            gl.glDisable(gl.GL_BLEND)

        gl.glDisable(gl.GL_CULL_FACE)
        gl.glDisable(gl.GL_DEPTH_TEST)
        gl.glBindVertexArray(0)
        gl.glUseProgram(0)

    def _draw_solids(self, shadow: bool) -> None:
        for program, mesh in ((self._capsule_program, self._capsules), (self._box_program, self._boxes)):
            if mesh.instance_count:
                program.use()
                program.set(u_shadow=1.0 if shadow else 0.0)
                mesh.draw()

    def _draw_ground(self, camera: Camera, view_proj, eye) -> None:
        target = camera.look_target()
        # Whole-metre centre: the checker is computed from world coordinates, so only the edge moves.
        quad = ground_quad((round(float(target[0])), round(float(target[2]))), GROUND_HALF_SIZE)
        gl.glBindBuffer(gl.GL_ARRAY_BUFFER, self._ground_vbo)
        gl.glBufferSubData(gl.GL_ARRAY_BUFFER, 0, quad.nbytes, quad.ctypes.data_as(ctypes.c_void_p))
        ground = self._ground_program
        ground.use()
        ground.set(u_view_proj=view_proj, u_eye=eye, u_light_dir=self.light_direction, u_sky=self.sky_rgb,
                   u_fog=FOG_RANGE)
        gl.glBindVertexArray(self._ground_vao)
        gl.glDrawArrays(gl.GL_TRIANGLE_FAN, 0, 4)

    def delete(self) -> None:
        """Free the GL objects (the context must be current)."""
        self._capsules.delete()
        self._boxes.delete()
        gl.glDeleteBuffers(1, ctypes.byref(self._ground_vbo))
        gl.glDeleteVertexArrays(1, ctypes.byref(self._ground_vao))
        for program in (self._capsule_program, self._box_program, self._ground_program):
            program.delete()


def _split_by_alpha(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(opaque rows, translucent rows) by the colour's alpha."""
    translucent = rows[:, INSTANCE_FLOATS - 1] < 0.999
    if not translucent.any():
        return rows, rows[:0]
    return rows[~translucent], rows[translucent]


def _polyline_segments(points: np.ndarray, width: float, arrow: bool) -> np.ndarray:
    """Tube segments (S, 2, 3) through points (K, 3), plus two arrow-head strokes at the end if asked."""
    segments = np.stack([points[:-1], points[1:]], axis=1)  # (K-1, 2, 3)
    if not arrow:
        return segments
    tip = points[-1]
    direction = points[-1] - points[-2]
    length = np.linalg.norm(direction)
    if length < 1e-9:
        return segments
    direction = direction / length
    # Head strokes lie in the plane of the direction and the horizontal normal to it (a vertical arrow
    # uses the x axis), so ground arrows show their head from above.
    side = np.cross(direction, [0.0, 1.0, 0.0])
    if np.linalg.norm(side) < 1e-6:
        side = np.array([1.0, 0.0, 0.0])
    side = side / np.linalg.norm(side)
    head = ARROW_HEAD_WIDTHS * width
    back = -direction * math.cos(ARROW_HEAD_ANGLE) * head
    spread = side * math.sin(ARROW_HEAD_ANGLE) * head
    strokes = np.array([[tip, tip + back + spread], [tip, tip + back - spread]])
    return np.concatenate([segments, strokes])
