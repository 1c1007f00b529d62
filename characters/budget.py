"""How ``python -m characters.build --minutes M`` splits its wall-clock budget across the stages.

The stages that do not learn (prepare, evaluations, export, preview, report) take what they take; a reserve of
``FIXED_MINUTES`` (at most a quarter of a small budget) is set aside for them. What is left trains: ``VAE_SHARE`` of it the Motion VAE, the rest the
policies, in equal parts per task. A VQ build (``--manifold vq``) also trains the code prior over the VAE's codes: it
gets ``PRIOR_SHARE`` of what is left, taken from the policies' part (a Gaussian build has no prior and the split above
exactly). Time already spent (a resumed build) comes off the budget, so a build that ran
late gives its later stages less, never more than what is left.

Measured on this project's 2-core CPU (README, "The build command"): on 10-20 minutes of mocap the stages that do
not learn took 3-5 minutes together; the VAE's quality stops improving after about a dozen epochs on such data, and a
target policy reaches >= 90 % within 10 s after 5-10 minutes of PPO.
``PRIOR_SHARE`` is a first setting, not yet measured on a full VQ build: the prior (a small transformer over one code
per frame, ``vae.train_prior``) costs far less per epoch than the VAE's 8-step rollouts.
"""

from __future__ import annotations

from dataclasses import dataclass

FIXED_MINUTES = 5.0
VAE_SHARE = 0.35
PRIOR_SHARE = 0.10  # VQ builds only
MIN_TOTAL_MINUTES = 0.5
MIN_STAGE_MINUTES = 0.1


@dataclass(frozen=True)
class Budget:
    """Minutes per learning stage."""

    total: float
    vae: float
    policy: float  # per task
    prior: float = 0.0  # the code prior of a VQ build (0: none)

    def describe(self, tasks: list[str]) -> str:
        prior = f"code prior {self.prior:.1f} min; " if self.prior else ""
        return (f"{self.total:g} min budget: {reserve(self.total):g} min reserved for data, evaluation, export and "
                "report; "
                f"VAE {self.vae:.1f} min; {prior}{len(tasks)} polic{'y' if len(tasks) == 1 else 'ies'} "
                f"({', '.join(tasks)}) {self.policy:.1f} min each")


def reserve(total_minutes: float) -> float:
    return min(FIXED_MINUTES, 0.25 * total_minutes)


def split(total_minutes: float, tasks: list[str], prior: bool = False, policy_minutes: float = 0.0) -> Budget:
    """The split of the module docstring (``prior``: a VQ build's code prior gets its share); ValueError for a budget
    below ``MIN_TOTAL_MINUTES``. ``policy_minutes`` > 0 (``--policy-minutes``) gives each policy that instead of its
    share; the VAE and the prior keep theirs and the total grows or shrinks by the difference."""
    if policy_minutes < 0:
        raise ValueError(f"--policy-minutes {policy_minutes:g}: give minutes per policy (> 0), or 0 for the share of "
                         "--minutes")
    if not total_minutes >= MIN_TOTAL_MINUTES:
        raise ValueError(f"--minutes {total_minutes:g}: a build needs at least {MIN_TOTAL_MINUTES:g} minutes "
                         "(10-25 minutes of mocap builds a good character in about 40)")
    learning = total_minutes - reserve(total_minutes)
    code_prior = PRIOR_SHARE * learning if prior else 0.0
    vae = VAE_SHARE * learning if tasks else learning - code_prior
    policy = (learning - vae - code_prior) / len(tasks) if tasks else 0.0
    if policy_minutes and tasks:
        total_minutes += (policy_minutes - policy) * len(tasks)
        policy = policy_minutes
    return Budget(total_minutes, max(MIN_STAGE_MINUTES, vae), max(MIN_STAGE_MINUTES, policy),
                  max(MIN_STAGE_MINUTES, code_prior) if prior else 0.0)


def remaining_policy_minutes(budget: Budget, spent_minutes: float, tasks_left: int) -> float:
    """Minutes for the next policy given what the build has spent so far (never more than the plan)."""
    left = budget.total - spent_minutes - 0.3 * reserve(budget.total)  # export, preview and report still to come
    return max(MIN_STAGE_MINUTES, min(budget.policy, left / max(tasks_left, 1)))
