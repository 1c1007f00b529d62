"""Can a policy drive this Motion VAE? Four measures a random walk (a fresh z every frame) never shows.

* :func:`held_latent_stability`: what a policy tends to do is push one latent and hold it. Characters start from
  the model's start poses and keep a fixed z for ``seconds``; z = level * e with e ~ N(0, I), for several levels
  (in prior standard deviations). A character has *diverged* when a pose feature leaves the data's envelope
  (:func:`envs.manifold_source.divergence_limits`, what the environments reset) or goes non-finite. Reports the
  share diverged per level and overall. A discrete (VQ) model holds one code per character instead (one level).
* :func:`steerability`: how far z moves the next step's root: for many data conditions, the spread (std across
  prior samples of z) of the decoded turn rate (deg/s) and ground speed (m/s). Near 0: the latent barely steers
  the character and no policy can make it turn (what the DeepMimic clips gave without motion-graph transitions).
* :func:`speed_transitions`: can the latent take the character from standing to walking, running and dashing
  and back (every pair of speed bands), by a greedy search over prior samples?
* :func:`aggregate_posterior`: where the decoder was trained: the encoder's posterior over the data, per latent
  dim the mean and the total std (std of the posterior means and the mean posterior variance together).
  :func:`latent_action_scale` turns it into the environments' ``action_scale`` (the latent a policy may use is
  ``action * action_scale``): ``LATENT_BOUND_STD`` of those stds, so policies stay where the decoder learned.

Pure functions of a model and tensors; no files.
"""

from __future__ import annotations

import math

import torch

from mocap.pose_layout import PoseLayout

HELD_LEVELS = (0.5, 1.0, 2.0, 3.0)
HELD_SECONDS = 30.0
LATENT_BOUND_STD = 2.5  # action_scale = this many aggregate-posterior stds (median over the active dims)
ACTIVE_DIM_VARIANCE = 0.01


@torch.no_grad()
def rollout_held(model, start_windows: torch.Tensor, latents: torch.Tensor, steps: int,
                 limits: torch.Tensor, styles: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Roll B characters (start windows (B, C, D) raw, their ``styles`` (B,) for a model with styles) for
    ``steps`` frames, each holding its latent (B, Z).

    Returns (first divergence step (B,) int64, ``steps`` where none; ground speed (T, B) m/s of the kept frames).
    """
    layout = PoseLayout.from_frame_size(model.frame_size)
    fps = float(getattr(model, "fps", None) or 30.0)
    cond = start_windows.to(model.device, torch.float32)
    b = cond.shape[0]
    first = torch.full((b,), steps, dtype=torch.int64, device=model.device)
    speeds = torch.zeros(steps, b, device=model.device)
    for t in range(steps):
        nxt = model.step(latents, cond, style=styles)  # (B, D)
        bad = ~torch.isfinite(nxt).all(dim=1) | (model.normalize(nxt).abs() > limits).any(dim=1)
        first = torch.where(bad & (first == steps), torch.full_like(first, t), first)
        nxt = torch.where(bad[:, None], cond[:, -1], nxt)  # a diverged character stops where it was
        speeds[t] = torch.linalg.vector_norm(layout.root_deltas(nxt)[:, layout.root_dxdz], dim=1) * fps
        cond = torch.cat((cond[:, 1:], nxt[:, None]), dim=1)
    return first, speeds


@torch.no_grad()
def held_latent_stability(model, start_frames: torch.Tensor, *, limits: torch.Tensor,
                          levels=HELD_LEVELS, per_level: int = 64, seconds: float = HELD_SECONDS,
                          generator: torch.Generator | None = None) -> dict:
    """Hold z = level * N(0, I) for ``seconds`` from random start windows (see the module docstring) ->
    ``{"levels", "diverged_share" (per level), "diverged_share_all", "seconds", "characters",
    "mean_speed_mps" (per level, over the characters that stayed)}``."""
    fps = float(getattr(model, "fps", None) or 30.0)
    steps = max(1, round(seconds * fps))
    if model.discrete:
        levels = ("code",)
    n = len(levels) * per_level
    pick = torch.randint(len(start_frames), (n,), generator=generator)
    if model.discrete:
        z = torch.randint(int(model.num_codes), (n,), generator=generator)  # (N,) one held code each
    else:
        scale = torch.tensor(levels, dtype=torch.float32).repeat_interleave(per_level)[:, None]  # (N, 1)
        z = torch.randn(n, model.latent_size, generator=generator) * scale  # (N, Z)
    styles = start_styles_of(model, pick)
    first, speeds = rollout_held(model, start_frames[pick], z.to(model.device), steps, limits.to(model.device), styles)
    diverged = (first < steps).float().reshape(len(levels), per_level)
    kept = (first == steps).reshape(len(levels), per_level)
    mean_speed = speeds.mean(dim=0).reshape(len(levels), per_level)
    speed_per_level = [float(mean_speed[i][kept[i]].mean()) if bool(kept[i].any()) else None
                       for i in range(len(levels))]
    return {"levels": list(levels), "diverged_share": [round(float(x), 4) for x in diverged.mean(dim=1)],
            "diverged_share_all": float(diverged.mean()), "seconds": steps / fps, "characters": n,
            "mean_speed_mps": speed_per_level}


def start_styles_of(model, pick: torch.Tensor) -> torch.Tensor | None:
    """The styles of the start windows ``pick`` of a model with styles (``start_styles``), else None."""
    styles = getattr(model, "start_styles", None) if getattr(model, "num_styles", 0) else None
    return None if styles is None else styles[pick].to(model.device)


@torch.no_grad()
def steerability(model, conditions: torch.Tensor, samples: int = 32,
                 generator: torch.Generator | None = None, styles: torch.Tensor | None = None) -> dict:
    """Spread across ``samples`` prior draws of z of the next step's turn rate and speed, for raw condition
    windows (B, C, D) -> ``{"turn_spread_deg_s", "speed_spread_mps"}`` (medians over the conditions)."""
    layout = PoseLayout.from_frame_size(model.frame_size)
    fps = float(getattr(model, "fps", None) or 30.0)
    b = conditions.shape[0]
    z = model.sample_prior(b * samples, generator=generator).to(model.device)
    cond = conditions.to(model.device, torch.float32).repeat(samples, 1, 1)  # (S*B, C, D)
    nxt = model.step(z, cond, style=None if styles is None else styles.repeat(samples))  # (S*B, D)
    delta = layout.root_deltas(nxt).reshape(samples, b, -1)  # (S, B, 3)
    turn = delta[..., layout.root_dyaw] * fps * (180.0 / math.pi)  # (S, B) deg/s
    speed = torch.linalg.vector_norm(delta[..., layout.root_dxdz], dim=-1) * fps  # (S, B) m/s
    return {"turn_spread_deg_s": float(turn.std(dim=0).median()),
            "speed_spread_mps": float(speed.std(dim=0).median())}


@torch.no_grad()
def aggregate_posterior(model, cond_norm: torch.Tensor, next_norm: torch.Tensor, batch: int = 4096,
                        styles: torch.Tensor | None = None) -> dict:
    """The encoder's posterior over data windows (cond (N, C*D), next (N, F*D), normalised) -> per latent dim
    ``mean`` and ``std`` (Z,) of the aggregate q(z) = E_x q(z|x), and ``active`` (Z,) bool."""
    mus, variances = [], []
    for i in range(0, cond_norm.shape[0], batch):
        style = None if styles is None else styles[i:i + batch].to(model.device)
        enc = model.encode(next_norm[i:i + batch].to(model.device), cond_norm[i:i + batch].to(model.device),
                           sample=False, style=style)
        mus.append(enc["mu"])
        variances.append(enc["logvar"].exp())
    mu, var = torch.cat(mus), torch.cat(variances)  # (N, Z)
    mean_var = mu.var(dim=0, unbiased=False)
    return {"mean": mu.mean(dim=0).cpu(), "std": (mean_var + var.mean(dim=0)).sqrt().cpu(),
            "active": (mean_var > ACTIVE_DIM_VARIANCE).cpu()}


def latent_action_scale(posterior: dict, bound_std: float = LATENT_BOUND_STD) -> float:
    """``action_scale`` from an aggregate posterior: ``bound_std`` times the median total std of the active dims
    (all dims when none is active), so a policy's latent stays where the decoder was trained."""
    std = posterior["std"][posterior["active"]] if bool(posterior["active"].any()) else posterior["std"]
    return float(bound_std * std.median())


TRANSITION_SECONDS = 3.0
TRANSITION_STARTS = 16  # start windows per speed band
TRANSITION_CANDIDATES = 32  # latents tried per character and step
TRANSITION_WINDOW = 5  # frames the speed is averaged over (a stride's sway averages out)


@torch.no_grad()
def speed_transitions(model, start_frames: torch.Tensor, bands, *, action_scale: float | None,
                      seconds: float = TRANSITION_SECONDS, candidates: int = TRANSITION_CANDIDATES,
                      starts: int = TRANSITION_STARTS, generator: torch.Generator | None = None) -> dict:
    """Can the latent take the character from every speed band to every other one? Start windows (S, C, D) raw are
    sorted into ``bands`` ((name, low, high) m/s, by their last frame's speed); from up to ``starts`` of each band, a greedy search steers toward each other band: every frame it decodes ``candidates`` latents drawn
    from the prior (clamped to +-``action_scale``; codes of a VQ model) and keeps the one whose speed is nearest the band. Reports, per
    pair ``"from->to"``, the share of characters whose speed over ``TRANSITION_WINDOW`` frames entered the band
    within ``seconds`` (``reached``) and the median time it took (``median_s``); pairs without start windows of the
    source band are left out. The share of all pairs is ``reached_all``."""
    layout = PoseLayout.from_frame_size(model.frame_size)
    fps = float(model.fps)

    def speed_of(frames: torch.Tensor) -> torch.Tensor:  # (..., D) raw -> (...,) ground speed m/s
        return torch.linalg.vector_norm(layout.root_deltas(frames)[..., layout.root_dxdz], dim=-1) * fps

    start_speed = speed_of(start_frames[:, -1].to(model.device))  # (S,)
    pairs: dict[str, dict] = {}
    steps, k = round(seconds * fps), candidates
    for source, low, high in bands:
        pick = torch.nonzero((start_speed >= low) & (start_speed < high))[:starts, 0]
        if pick.numel() == 0:
            continue
        for target, t_low, t_high in bands:
            if target == source:
                continue
            goal = t_low + 0.5 * (min(t_high, 2.0 * t_low + 1.0) - t_low)  # a speed inside the band (m/s)
            b = pick.numel()
            cond = start_frames[pick].to(model.device)  # (B, C, D)
            styles = start_styles_of(model, pick)
            recent = torch.zeros(TRANSITION_WINDOW, b, device=model.device)
            reached_at = torch.full((b,), float("nan"), device=model.device)
            for t in range(steps):
                z = model.sample_prior(b * k, generator=generator)  # (B*K, Z) latents, or (B*K,) codes
                z = z if action_scale is None else z.clamp(-action_scale, action_scale)
                many = cond.repeat_interleave(k, dim=0)  # (B*K, C, D)
                style = None if styles is None else styles.repeat_interleave(k)
                nxt = model.step(z, many, style=style).reshape(b, k, -1)  # (B, K, D)
                best = (speed_of(nxt) - goal).abs().argmin(dim=1)  # (B,)
                frame = nxt[torch.arange(b, device=model.device), best]  # (B, D)
                cond = torch.cat((cond[:, 1:], frame[:, None]), dim=1)
                recent = torch.cat((recent[1:], speed_of(frame)[None]), dim=0)
                if t + 1 >= TRANSITION_WINDOW:
                    mean = recent.mean(dim=0)
                    inside = (mean >= t_low) & (mean < t_high) & torch.isnan(reached_at)
                    reached_at = torch.where(inside, torch.full_like(reached_at, (t + 1) / fps), reached_at)
            done = ~torch.isnan(reached_at)
            pairs[f"{source}->{target}"] = {
                "reached": float(done.float().mean()),
                "median_s": float(reached_at[done].median()) if bool(done.any()) else None, "starts": b}
    shares = [p["reached"] for p in pairs.values()]
    return {"pairs": pairs, "reached_all": float(sum(shares) / len(shares)) if shares else None, "seconds": seconds}
