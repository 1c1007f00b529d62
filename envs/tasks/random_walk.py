"""RandomWalk: no goal; the manifold is driven by samples of its prior, to watch what it has learned.

=================== ===============================================================================
observation         ``[normalised condition frames (C*D)]``
action              the same space as the other tasks, validated and then IGNORED: every step decodes
                    a fresh prior sample (standard normal latent, or a uniform code for a VQ manifold)
                    drawn from the environment's generator, so a seed fixes the walk
reward              0
termination         none (only a non-finite character state, see the environment)
truncation          ``max_episode_steps`` (default 300 = 10 s at 30 fps)
info metrics        ``speed`` (root ground speed over the step, m/s)
=================== ===============================================================================
"""

from __future__ import annotations

import torch

from envs.tasks.base import Task, empty_draw_data


class RandomWalk(Task):
    name = "random_walk"
    default_max_episode_steps = 300
    ignores_action = True

    def latent(self, action: torch.Tensor) -> torch.Tensor:
        return self.core.sample_prior()

    def update(self):
        b = self.core.num_envs
        return torch.zeros(b, device=self.core.device), torch.zeros(b, dtype=torch.bool, device=self.core.device)

    def metrics(self):
        return {"speed": (self.core.speed(), None)}

    def draw_data(self, index):
        i = self.check_index(index)
        data = empty_draw_data()
        data["text"].append(f"random walk, speed {float(self.core.speed()[i]):.2f} m/s")
        return data
