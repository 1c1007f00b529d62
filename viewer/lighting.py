"""The scene's light, sky, fog and shadow colour, and the GLSL function every lit pass shades with.

One place for them so that the exact capsule bodies (:mod:`viewer.renderer`) and the crowd's impostors
(:mod:`viewer.crowd`) are lit alike: a far character must not change colour when it comes near.
"""

from __future__ import annotations

import numpy as np

SKY_RGB = (0.72, 0.79, 0.87)
LIGHT_DIRECTION = (0.3, -1.0, -0.5)  # the way the light travels: high, from the front-right of a +z walker
SHADOW_RGBA = (0.08, 0.09, 0.13, 0.38)
SHADOW_HEIGHT = 0.002  # metres: flattened shadows sit just above the ground plane
FOG_RANGE = (35.0, 140.0)  # metres from the eye where the ground starts / finishes fading into the sky


def unit_light_direction() -> np.ndarray:
    """(3,) unit vector along which the light travels."""
    light = np.asarray(LIGHT_DIRECTION, dtype=np.float64)
    return light / np.linalg.norm(light)


def shadow_reach(height) -> np.ndarray:
    """Horizontal distance (m) from a point ``height`` metres up to where its shadow falls on the ground."""
    light = unit_light_direction()
    return np.asarray(height, dtype=np.float64) * float(np.hypot(light[0], light[2]) / -light[1])


# Directional key light (diffuse + a little specular), a sky/ground hemisphere ambient, fog into the sky.
# ``light`` takes what a normal n makes of the light: n . to_light, n . up and n . the half vector (between the
# light and the eye); ``shade`` computes them for a world normal at a world point. Impostors compute them in
# their own frame (:mod:`viewer.crowd`), so both are lit by the same function.
LIGHTING_GLSL = """
uniform vec3 u_light_dir;
uniform vec3 u_eye;
uniform vec3 u_sky;
uniform vec2 u_fog;

// x^40 by squaring (x^32 x^8): the same value as pow(x, 40.0), without the exp2 / log2 that software GL
// evaluates per pixel.
float pow40(float x) {
    float x2 = x * x;
    float x4 = x2 * x2;
    float x8 = x4 * x4;
    float x16 = x8 * x8;
    return x16 * x16 * x8;
}

float fog_at(float distance) {
    return smoothstep(u_fog.x, u_fog.y, distance);
}

vec4 light(vec3 albedo, float alpha, float n_light, float n_up, float n_half, float fog) {
    float diffuse = max(n_light, 0.0);
    vec3 ambient = mix(vec3(0.30, 0.27, 0.24), vec3(0.46, 0.50, 0.58), 0.5 + 0.5 * n_up);
    float specular = pow40(max(n_half, 0.0)) * 0.18;
    vec3 rgb = albedo * (ambient + diffuse * vec3(0.78, 0.75, 0.69)) + specular;
    return vec4(mix(rgb, u_sky, fog), alpha);
}

vec4 shade(vec3 albedo, float alpha, vec3 n, vec3 world) {
    vec3 to_light = -u_light_dir;
    vec3 to_eye = normalize(u_eye - world);
    return light(albedo, alpha, dot(n, to_light), n.y, dot(n, normalize(to_light + to_eye)),
                 fog_at(length(u_eye - world)));
}
"""
