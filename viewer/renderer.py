"""Draws a :class:`viewer.scene.SceneFrame` with OpenGL 3.3 core through pyglet (needs a current GL context).

Characters are first culled and given a level of detail by their size on screen (:mod:`viewer.lod`): the
nearest are drawn exactly (the single-character look), the others as capsule impostors with blob shadows
(:mod:`viewer.crowd`), characters outside the view not at all. One frame is, in order:

1. clear to the sky colour;
2. opaque solids, lit (:mod:`viewer.lighting`): directional key light (diffuse + a little specular) plus a
   sky/ground hemisphere ambient; all exact capsules in one instanced draw call (ray-cast inside their proxy
   boxes, writing their true depth), all boxes in another, then every impostor in one, nearest first;
3. the ground: one large quad at y = 0 whose fragment shader draws a checkerboard with anti-aliased 1 m grid
   lines, fading into the sky with distance (so the quad's edge never shows). Drawn after the solids, it is
   shaded only where nothing stands in front of it (software GL tests depth before shading);
4. shadows, on the ground: every opaque solid's box again, flattened onto the ground along the light
   direction; for capsules the fragment shader keeps only ground points whose ray towards the light hits the
   capsule, so shadows are exact. Impostor characters cast a blob each (an ellipse, one draw call). All are
   drawn translucent dark, depth-tested against what is in front, and the stencil buffer lets each pixel
   darken once where shadows overlap. Only the box faces turned to the light are drawn (they cover the
   whole flattened box);
5. translucent solids (alpha < 1), blended, without depth writes. Translucent characters are always drawn
   exactly (impostors are opaque).

Near characters, markers and polylines all become capsule instances (see :mod:`viewer.shapes` and
:mod:`viewer.body`). Polylines are tubes ``width`` metres thick, not 1-pixel GL lines: core-profile contexts
do not do wide lines. ``last_counts`` says what the last frame drew: exact capsules and boxes, characters per
level (``near``, ``mid``, ``far``, ``tiny``) and ``culled``, impostor and blob-shadow instances, draw calls and
the bytes of crowd instances uploaded.

Raw GL calls (``pyglet.gl``) own the buffers; pyglet's ``ShaderProgram`` compiles the shaders and sets
uniforms. :meth:`Renderer.draw` leaves depth test, culling, blending and stencil off and no program or
vertex array bound, so pyglet's own 2D drawing (labels) works afterwards.
"""

from __future__ import annotations

import ctypes
import math

import numpy as np
from pyglet import gl

from viewer.body import body_capsules, body_plan
from viewer.camera import Camera
from viewer.crowd import CrowdPass
from viewer.gl_objects import Program, float_attribute, make_buffer
from viewer.impostors import impostor_levels
from viewer.lighting import FOG_RANGE, LIGHTING_GLSL, SHADOW_HEIGHT, SHADOW_RGBA, SKY_RGB, unit_light_direction
from viewer.lod import MAX_NEAR, MID_PIXELS, NEAR_PIXELS, TINY_PIXELS, CrowdLod, choose_lod
from viewer.scene import Characters, SceneFrame
from viewer.shapes import INSTANCE_FLOATS, Mesh, box_instances, box_mesh, box_rows, capsule_rows, ground_quad

GROUND_HALF_SIZE = 150.0
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

_BOX_FRAGMENT = "#version 330 core\n" + LIGHTING_GLSL + """
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
_CAPSULE_FRAGMENT = "#version 330 core\n" + LIGHTING_GLSL + """
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
        gl_FragDepth = gl_FragCoord.z;  // the flattened box's own: a shader that writes depth must do so always
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


def _column_major(m: np.ndarray) -> tuple[float, ...]:
    return tuple(float(x) for x in m.T.reshape(-1))


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
        self._vbo = make_buffer(gl.GL_ARRAY_BUFFER, vertices, vertices.nbytes, gl.GL_STATIC_DRAW)
        float_attribute(0, 3, 24, 0)
        float_attribute(1, 3, 24, 12)
        self._ebo = make_buffer(gl.GL_ELEMENT_ARRAY_BUFFER, indices, indices.nbytes, gl.GL_STATIC_DRAW)
        self._instances = make_buffer(gl.GL_ARRAY_BUFFER, None, 4 * INSTANCE_FLOATS, gl.GL_STREAM_DRAW)
        stride = 4 * INSTANCE_FLOATS
        for i in range(INSTANCE_FLOATS // 4):  # model columns 0-3, (a, r), (b, -), colour: one vec4 each
            float_attribute(2 + i, 4, stride, 16 * i, divisor=1)
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
    :meth:`delete` before closing the window. ``near_pixels``, ``max_near``, ``mid_pixels`` and ``tiny_pixels``
    set the levels of detail and ``cull`` the frustum culling (see :mod:`viewer.lod`): ``max_near=0`` draws every
    character as an impostor, ``near_pixels=0`` with a huge ``max_near`` every one exactly.
    """

    def __init__(self) -> None:
        self._capsule_program = Program(_CAPSULE_VERTEX, _CAPSULE_FRAGMENT)
        self._box_program = Program(_BOX_VERTEX, _BOX_FRAGMENT)
        self._ground_program = Program(_GROUND_VERTEX, _GROUND_FRAGMENT)
        self._capsules = _InstancedMesh(box_mesh())  # capsule proxies
        self._boxes = _InstancedMesh(box_mesh())
        self._crowd = CrowdPass()
        self._ground_vao = gl.GLuint()
        gl.glGenVertexArrays(1, ctypes.byref(self._ground_vao))
        gl.glBindVertexArray(self._ground_vao)
        self._ground_vbo = make_buffer(gl.GL_ARRAY_BUFFER, None, 4 * 12, gl.GL_DYNAMIC_DRAW)
        float_attribute(0, 3, 12, 0)
        gl.glBindVertexArray(0)
        self.light_direction = tuple(float(x) for x in unit_light_direction())
        self.sky_rgb = SKY_RGB
        self.near_pixels = NEAR_PIXELS
        self.max_near = MAX_NEAR
        self.mid_pixels = MID_PIXELS
        self.tiny_pixels = TINY_PIXELS
        self.cull = True
        self.last_counts = {"capsules": 0, "boxes": 0}
        self._draw_calls = 0

    # --- scene -> instance rows --------------------------------------------------------------------
    @staticmethod
    def capsule_rows(scene: SceneFrame, near: list[np.ndarray] | None = None) -> np.ndarray:
        """The exact capsule instances of a scene: characters (only those listed in ``near``, one index array per
        group, when given), markers, polylines -> (K, INSTANCE_FLOATS) float32."""
        ends, radii, colours = [], [], []
        for i, group in enumerate(scene.characters):
            chosen = slice(None) if near is None else near[i]
            positions, rgba = group.positions[chosen], group.rgba[chosen]
            if len(positions) == 0:
                continue
            e, r, c = body_capsules(_body_plan_of(group), positions, rgba)
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

    def crowd_lod(self, group: Characters, camera: Camera, width: int, height: int) -> CrowdLod:
        """Which of ``group``'s characters this view draws, and at which level (translucent ones exactly)."""
        lod = choose_lod(group.positions, camera, width, height, near_pixels=self.near_pixels,
                         max_near=self.max_near, mid_pixels=self.mid_pixels, tiny_pixels=self.tiny_pixels,
                         cull=self.cull)
        translucent = group.rgba[:, 3] < 0.999
        if not translucent.any():
            return lod
        levels = [lod.mid, lod.far, lod.tiny]
        near = np.concatenate([lod.near] + [level[translucent[level]] for level in levels])
        mid, far, tiny = (level[~translucent[level]] for level in levels)
        return CrowdLod(near=near, mid=mid, far=far, tiny=tiny, culled=lod.culled)

    # --- drawing -------------------------------------------------------------------------------------
    def draw(self, scene: SceneFrame, camera: Camera, width: int, height: int) -> None:
        """Draw ``scene`` seen by ``camera`` into the current framebuffer's ``width`` x ``height`` pixels."""
        width, height = max(int(width), 1), max(int(height), 1)
        view_proj = _column_major(camera.view_projection(width, height))
        eye = tuple(float(x) for x in camera.eye())
        lods = [self.crowd_lod(group, camera, width, height) for group in scene.characters]
        capsules = self.capsule_rows(scene, [lod.near for lod in lods])
        boxes = self.box_rows(scene)
        self._draw_calls = 0
        crowd = self._crowd.prepare([
            (group.positions, group.rgba, impostor_levels(_joint_names(group), group.parents, group.joint_radii), lod)
            for group, lod in zip(scene.characters, lods, strict=True)])

        for program in (self._capsule_program, self._box_program):
            program.set(u_view_proj=view_proj, u_light_dir=self.light_direction, u_eye=eye,
                        u_sky=self.sky_rgb, u_fog=FOG_RANGE, u_shadow_color=SHADOW_RGBA,
                        u_shadow_height=SHADOW_HEIGHT)
        opaque_c, clear_c = _split_by_alpha(capsules)
        opaque_b, clear_b = _split_by_alpha(boxes)
        self._capsules.upload(opaque_c)
        self._boxes.upload(opaque_b)

        gl.glViewport(0, 0, width, height)
        gl.glClearColor(*self.sky_rgb, 1.0)
        gl.glClearStencil(0)
        gl.glDepthMask(gl.GL_TRUE)
        gl.glClear(gl.GL_COLOR_BUFFER_BIT | gl.GL_DEPTH_BUFFER_BIT | gl.GL_STENCIL_BUFFER_BIT)
        gl.glEnable(gl.GL_DEPTH_TEST)
        gl.glDepthFunc(gl.GL_LESS)

        # Opaque solids before the ground, nearest first: the ground and the shadows are then shaded only
        # where nothing stands in front of them (software GL tests depth before shading).
        gl.glEnable(gl.GL_CULL_FACE)
        gl.glCullFace(gl.GL_BACK)
        self._draw_solids(shadow=False)
        if crowd is not None:
            gl.glDisable(gl.GL_CULL_FACE)  # impostor quads face the eye either way round
            self._crowd.draw_bodies(view_proj, eye, self.light_direction, self.sky_rgb, FOG_RANGE)
            gl.glEnable(gl.GL_CULL_FACE)
        self._draw_ground(camera, view_proj, eye)

        # Shadows lie on the ground: depth-tested against it and everything in front, pulled towards the eye
        # by a polygon offset so that far away, where depth steps exceed their 2 mm height, they still win
        # over the ground they lie on. Translucent dark, blended once per pixel (stencil). Light-facing
        # triangles keep their winding when flattened, seen from above: cull the others.
        gl.glDepthMask(gl.GL_FALSE)
        gl.glDepthFunc(gl.GL_LEQUAL)
        gl.glEnable(gl.GL_POLYGON_OFFSET_FILL)
        gl.glPolygonOffset(-1.0, -4.0)
        gl.glEnable(gl.GL_BLEND)
        gl.glBlendFunc(gl.GL_SRC_ALPHA, gl.GL_ONE_MINUS_SRC_ALPHA)
        gl.glEnable(gl.GL_STENCIL_TEST)
        gl.glStencilFunc(gl.GL_EQUAL, 0, 0xFF)
        gl.glStencilOp(gl.GL_KEEP, gl.GL_KEEP, gl.GL_INCR)
        self._draw_solids(shadow=True)
        if crowd is not None:
            gl.glDisable(gl.GL_CULL_FACE)
            self._crowd.draw_shadows(view_proj, self.light_direction, SHADOW_RGBA, SHADOW_HEIGHT)
            gl.glEnable(gl.GL_CULL_FACE)
        gl.glDisable(gl.GL_STENCIL_TEST)
        gl.glDisable(gl.GL_POLYGON_OFFSET_FILL)
        gl.glDepthFunc(gl.GL_LESS)
        gl.glDepthMask(gl.GL_TRUE)

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
        self.last_counts = {
            "capsules": len(capsules), "boxes": len(boxes),
            **{level: sum(len(getattr(lod, level)) for lod in lods) for level in ("near", "mid", "far", "tiny")},
            "culled": sum(lod.culled for lod in lods),
            "impostors": 0 if crowd is None else crowd.impostors, "blob_shadows": 0 if crowd is None else crowd.blobs,
            "draw_calls": self._draw_calls + self._crowd.draw_calls, "crowd_upload_bytes": self._crowd.uploaded_bytes,
        }

    def _draw_solids(self, shadow: bool) -> None:
        for program, mesh in ((self._capsule_program, self._capsules), (self._box_program, self._boxes)):
            if mesh.instance_count:
                program.use()
                program.set(u_shadow=1.0 if shadow else 0.0)
                mesh.draw()
                self._draw_calls += 1

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
        self._draw_calls += 1

    def delete(self) -> None:
        """Free the GL objects (the context must be current)."""
        self._capsules.delete()
        self._boxes.delete()
        self._crowd.delete()
        gl.glDeleteBuffers(1, ctypes.byref(self._ground_vbo))
        gl.glDeleteVertexArrays(1, ctypes.byref(self._ground_vao))
        for program in (self._capsule_program, self._box_program, self._ground_program):
            program.delete()


def _joint_names(group: Characters) -> list[str]:
    return group.joint_names if group.joint_names is not None else [f"j{i}" for i in range(len(group.parents))]


def _body_plan_of(group: Characters):
    return body_plan(_joint_names(group), group.parents, group.joint_radii)


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
