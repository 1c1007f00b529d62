"""ToyManifold: a tiny deterministic, steerable stand-in for a Motion VAE (for tests and demos).

It offers the manifold interface the environments use (see :mod:`envs.manifold_source`) on a
5-joint skeleton (D = 63) standing still in a fixed pose, and moves it like a remote-controlled toy:

* ``latent[:, 0]`` sets the forward speed: ``clamp(speed_per_unit * z0, 0, max_speed)`` m/s
  (with the environments' default ``action_scale`` 4, ``action[0] = 1`` is 2 m/s, ``<= 0`` stands);
* ``latent[:, 1]`` sets the turn rate: ``turn_per_unit * clamp(z1, -4, 4)`` rad/s, positive turns left;
* the other latent entries are ignored.

So a task's logic can be tested (and a hand-written controller can beat a random one) independently
of how well a trained Motion VAE moves.
"""

from __future__ import annotations

import numpy as np
import torch

from mocap.pose_layout import PoseLayout
from mocap.skeleton import Skeleton

_NAMES = ["Hips", "LeftUpLeg", "RightUpLeg", "Spine", "Head"]
_PARENTS = [-1, 0, 0, 0, 3]
_OFFSETS = [[0.0, 0.9, 0.0], [0.1, -0.45, 0.0], [-0.1, -0.45, 0.0], [0.0, 0.5, 0.0], [0.0, 0.25, 0.0]]
LATENT_CLAMP = 4.0


class ToyManifold:
    discrete = False
    num_codes = None

    def __init__(self, latent_size: int = 4, num_condition_frames: int = 1, fps: float = 30.0,
                 speed_per_unit: float = 0.5, max_speed: float = 2.0, turn_per_unit: float = 0.5):
        if latent_size < 2:  # speed and turn
            raise ValueError("the toy manifold reads speed and turn from latent entries 0 and 1: latent_size >= 2")
        self.skeleton = Skeleton(_NAMES, _PARENTS, _OFFSETS)
        self.layout = PoseLayout(self.skeleton.num_joints)
        self.frame_size = self.layout.frame_size
        self.latent_size = int(latent_size)
        self.num_condition_frames = int(num_condition_frames)
        self.fps = float(fps)
        self.speed_per_unit, self.max_speed, self.turn_per_unit = speed_per_unit, max_speed, turn_per_unit
        self.device = torch.device("cpu")
        frame = np.zeros(self.frame_size, dtype=np.float32)
        frame[self.layout.joint_pos] = _rest_positions(self.skeleton).reshape(-1)
        frame[self.layout.joint_rot6d] = np.tile([1, 0, 0, 0, 1, 0], self.skeleton.num_joints)  # identity
        window = np.broadcast_to(frame, (1, self.num_condition_frames, self.frame_size))  # (S=1, C, D)
        self.start_frames = torch.as_tensor(window.copy())

    def to(self, device) -> ToyManifold:
        self.device = torch.device(device)
        self.start_frames = self.start_frames.to(self.device)
        return self

    def eval(self) -> ToyManifold:
        return self

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        return x

    def sample_prior(self, batch_size: int, generator: torch.Generator | None = None) -> torch.Tensor:
        return torch.randn(batch_size, self.latent_size, generator=generator, device=self.device)

    def step(self, action: torch.Tensor, cond_raw: torch.Tensor) -> torch.Tensor:
        """(B, Z) latents, (B, C, D) raw frames -> (B, D): the last pose, moved by the latent's speed and turn."""
        z = torch.as_tensor(action, dtype=torch.float32, device=self.device)
        if z.dim() != 2 or z.shape[1] != self.latent_size:
            raise ValueError(f"action has shape {tuple(z.shape)}; expected (B, {self.latent_size}) latents")
        speed = (self.speed_per_unit * z[:, 0]).clamp(0.0, self.max_speed)  # (B,) m/s
        turn = self.turn_per_unit * z[:, 1].clamp(-LATENT_CLAMP, LATENT_CLAMP)  # (B,) rad/s
        frame = cond_raw[:, -1].clone()  # (B, D)
        frame[:, 0] = 0.0
        frame[:, 1] = speed / self.fps
        frame[:, self.layout.root_dyaw] = turn / self.fps
        vel = torch.zeros(frame.shape[0], self.skeleton.num_joints, 3, device=self.device)
        vel[..., 2] = speed[:, None]
        frame[:, self.layout.joint_vel] = vel.reshape(frame.shape[0], -1)
        return frame


def _rest_positions(skeleton: Skeleton) -> np.ndarray:
    """(J, 3) rest-pose positions: offsets accumulated down the hierarchy (no rotations)."""
    pos = np.zeros((skeleton.num_joints, 3))
    for j, parent in enumerate(skeleton.parents):
        pos[j] = skeleton.offsets[j] + (pos[parent] if parent >= 0 else 0.0)
    return pos
