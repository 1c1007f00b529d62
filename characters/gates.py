"""Quality gates: after each build stage, pass / warn / fail with the number behind it and what to do.

Pure functions from a stage's measured figures (plain dicts) to :class:`Gate` rows. The build stops at a failed gate
(unless ``--accept-failed-gates``), the report lists every gate, and ``vae.train`` / ``train_policy.py`` users get the
same checks from ``vae.evaluate`` / ``policies.evaluate`` figures. Bars are relative to the data's own value wherever
the data has one (``../shared/docs/METRICS.md``: the data is the bar a generated motion is judged against).

=========== =================================================================================================
data        seconds of motion (fail < 60 s, warn < 5 min), clips too short, frame rate, feet found (toe / foot
            joints for contacts), steerability of the data (how much nearby poses branch into different
            motions) with the motion-graph transitions added when it was low
vae         posterior collapse (active latent dims, latent output std; a VQ model: the codes it uses), random
            walks that go non-finite or diverge, held-latent stability (fixed z for 30 s: share diverged), bone-length error, stuck walks
            (pose diversity collapse); foot sliding and jitter against the data's warn only (a random walk
            draws a fresh z every frame: it slides and shakes more than steered motion)
prior       (VQ builds) the code prior's held-out cross-entropy against the unigram one (what a prior that ignores
            context and pose reaches): warn only
policy      success against the scripted baseline (target: share reached within 10 s, >= 90 %; joystick:
            heading error < 15 deg), divergence resets, action saturation at the latent bounds (latent
            exploitation); jitter and foot sliding against the data's warn (the app's foot locking is the remedy)
=========== =================================================================================================
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

PASS, WARN, FAIL = "pass", "warn", "fail"


@dataclass(frozen=True)
class Gate:
    stage: str
    name: str
    status: str  # pass | warn | fail
    value: str  # the number behind it, as shown
    bar: str  # what passes
    advice: str = ""  # what to do when it does not pass

    def line(self) -> str:
        text = f"[{self.status.upper():4s}] {self.stage}: {self.name} = {self.value} (bar: {self.bar})"
        return text + (f" -> {self.advice}" if self.status != PASS and self.advice else "")

    def as_dict(self) -> dict:
        return asdict(self)


def _gate(stage: str, name: str, ok: bool, warn_only: bool, value: str, bar: str, advice: str) -> Gate:
    return Gate(stage, name, PASS if ok else (WARN if warn_only else FAIL), value, bar, advice)


def _ratio_gate(stage: str, name: str, value, data, fail_ratio: float | None, warn_ratio: float, unit: str,
                advice: str) -> Gate:
    """``value`` against the data's own ``data``: warn beyond warn_ratio x, fail beyond fail_ratio x (never
    when None)."""
    if value is None or data is None:
        return Gate(stage, name, WARN, "n/a", f"<= {warn_ratio:g} x data", "not measurable: no contacts / motion")
    ratio = value / data if data > 0 else float("inf")
    shown = f"{value:.3g}{unit} ({ratio:.2f} x data {data:.3g}{unit})"
    status = PASS if ratio <= warn_ratio else (WARN if fail_ratio is None or ratio <= fail_ratio else FAIL)
    bar = f"<= {warn_ratio:g} x data" + (f" (fail > {fail_ratio:g} x)" if fail_ratio is not None else "")
    return Gate(stage, name, status, shown, bar, advice)


# ---- data -----------------------------------------------------------------------------------------------
MIN_SECONDS, GOOD_SECONDS = 60.0, 300.0
# Nearby poses of the data should go places this differently (see steerability). Measured with the trunk's facing
# (mocap.features.facing_yaw): Bandai-Namco 6.7 deg/s, which steers, the DeepMimic clips 7.1 (with motion-graph walks
# added for their 80 s); the facing of every joint pair, whose stride sway this measure counted as turning, gave 12.7
# and 7.6 and set the bar at 10 then.
MIN_TURN_SPREAD_DEG_S = 5.0


def data_gates(m: dict) -> list[Gate]:
    """Figures of the data stage: seconds, clips, short_clips, fps, feet, branching (turn_spread_deg_s,
    speed_spread_mps), graph_seconds (transitions added)."""
    gates = [
        Gate("data", "motion", PASS if m["seconds"] >= GOOD_SECONDS else (WARN if m["seconds"] >= MIN_SECONDS else FAIL),
             f"{m['seconds']:.0f} s in {m['clips']} clips", f">= {GOOD_SECONDS:.0f} s (fail < {MIN_SECONDS:.0f} s)",
             "add more motion: a Motion VAE learns what the data shows; 10-25 minutes of locomotion steer well"),
        _gate("data", "short clips", m["short_clips"] == 0, True, f"{m['short_clips']} skipped",
              "0", "clips under 10 frames teach nothing; check their export"),
        _gate("data", "frame rate", m["source_fps"] is None or 20 <= m["source_fps"] <= 240, True,
              f"{m['source_fps']:g} fps (resampled to {m['fps']:g})" if m["source_fps"] else f"{m['fps']:g} fps",
              "20-240 fps", "check the BVH 'Frame Time' (seconds per frame)"),
        _gate("data", "feet", bool(m["feet"]), False, ", ".join(m["feet"]) or "none", "a toe or foot joint per side",
              "name the feet (LeftFoot / RightFoot, Toes_L / Toes_R, ...) so contacts can be measured"),
    ]
    turn = m.get("turn_spread_deg_s")
    if turn is not None:
        added = f"; {m.get('graph_seconds', 0):.0f} s of motion-graph walks added" if m.get("graph_seconds") else ""
        gates.append(_gate("data", "branching", turn >= MIN_TURN_SPREAD_DEG_S, True,
                           f"{turn:.1f} deg/s turn spread among nearby poses{added}", f">= {MIN_TURN_SPREAD_DEG_S:g} "
                           "deg/s", "record turns, starts and stops: clips that only go straight cannot be steered"))
    return gates


# ---- vae ------------------------------------------------------------------------------------------------
MAX_HELD_DIVERGED = 0.02
MIN_LATENT_OUTPUT_STD = 0.02
MIN_CODE_PERPLEXITY = 2.0  # below it one code does nearly everything: nothing left to steer


def vae_gates(m: dict) -> list[Gate]:
    """Figures of ``vae.evaluate`` plus ``held_latent`` (vae.stability) and ``steerability``."""
    active, size = m.get("active_latent_dims"), m.get("latent_size")
    gates = []
    if m.get("codes_used") is not None:  # a VQ model: its codes are its latent
        gates.append(_gate("vae", "codes in use", m["perplexity"] >= MIN_CODE_PERPLEXITY, False,
                           f"{m['codes_used']}/{m['num_codes']} codes used, perplexity {m['perplexity']:.1f}",
                           f"perplexity >= {MIN_CODE_PERPLEXITY:g}",
                           "the encoder collapsed onto a few codes: more epochs (--minutes) or more varied data"))
    if active is not None:
        gates.append(_gate("vae", "latent in use", active >= size / 2 and m.get("kl_total", 0) >= 0.1, False,
                           f"{active}/{size} dims active, KL {m.get('kl_total', 0):.2f} nats", ">= half the dims",
                           "posterior collapse: raise --free-bits or lengthen --kl-warmup-epochs"))
    gates.append(_gate("vae", "latent steers", m["latent_output_std"] >= MIN_LATENT_OUTPUT_STD, True,
                       f"{m['latent_output_std']:.3f}", f">= {MIN_LATENT_OUTPUT_STD}",
                       "the decoder barely listens to z: more branching data (transitions) or more epochs"))
    bad_walks = m["nonfinite_frames"] > 0 or m["diverged_walks"] > 0
    gates.append(_gate("vae", "random walks", not bad_walks, False,
                       f"{m['diverged_walks']}/{m['walks']} diverged, {m['nonfinite_frames']} non-finite frames",
                       "none", "train longer (more student epochs)"))
    held = m["held_latent"]
    gates.append(_gate("vae", "held latents", held["diverged_share_all"] <= MAX_HELD_DIVERGED, False,
                       f"{100 * held['diverged_share_all']:.1f}% of {held['characters']} diverged in "
                       f"{held['seconds']:.0f} s (per level {held['diverged_share']})",
                       f"<= {100 * MAX_HELD_DIVERGED:g}%", "policies would push it off the data: train longer"))
    gates.append(_gate("vae", "bone lengths", m["bone_length_error_cm"] <= 2.0, True,
                       f"{m['bone_length_error_cm']:.2f} cm (data {m.get('data_bone_length_error_cm', 0):.2f})",
                       "<= 2 cm", "train longer"))
    # Random walks draw a fresh z every frame: they slide and shake more than any steered motion (the shipped
    # DeepMimic VAE's: 6.5 x its data's CAMDM sliding). So these warn; they never stop a build.
    gates.append(_ratio_gate("vae", "foot sliding", m.get("foot_sliding"), m.get("data_foot_sliding"), None, 8.0, "",
                             "train longer; the app's foot locking hides the rest"))
    gates.append(_ratio_gate("vae", "jitter", m.get("jitter"), m.get("data_jitter"), None, 2.0, " m/s2",
                             "train longer (student epochs smooth the rollouts)"))
    diversity, data_diversity = m.get("pose_diversity"), m.get("data_pose_diversity")
    if diversity is not None and data_diversity:
        gates.append(_gate("vae", "not stuck", diversity >= 0.5 * data_diversity, False,
                           f"pose diversity {diversity:.3f} m (data {data_diversity:.3f})", ">= 0.5 x data",
                           "random walks collapse into one pose: posterior collapse or too little data"))
    return gates


# ---- prior (VQ) ----------------------------------------------------------------------------------------


def prior_gates(m: dict) -> list[Gate]:
    """Figures of the prior stage: ``heldout_ce`` (nats per code, NaN without held-out clips) and ``unigram_ce``."""
    held, unigram = m.get("heldout_ce"), m.get("unigram_ce")
    if held is None or unigram is None or held != held:  # NaN: nothing was held out
        return [Gate("prior", "beats code frequencies", WARN, "n/a", "held-out CE < unigram CE",
                     "no held-out clips to measure on: add clips (every 10th motion is held out)")]
    return [_gate("prior", "beats code frequencies", held < unigram, True,
                  f"held-out CE {held:.3f} nats (unigram {unigram:.3f})", "< unigram CE",
                  "the prior predicts the next code no better than code frequencies: train longer (--minutes)")]


# ---- policies -------------------------------------------------------------------------------------------
TARGET_SUCCESS = 0.9
JOYSTICK_HEADING_DEG = 15.0
MAX_SATURATION = 0.5


def policy_gates(task: str, m: dict, baseline: dict | None) -> list[Gate]:
    """``policies.evaluate`` figures of the trained policy (and of the scripted baseline, when measured)."""
    stage = f"policy {task}"
    gates = []
    if task in ("target", "timed_target"):
        base = f" (scripted {100 * baseline['success_rate']:.0f}%)" if baseline else ""
        gates.append(_gate(stage, "success", m["success_rate"] >= TARGET_SUCCESS, False,
                           f"{100 * m['success_rate']:.1f}% of targets within 10 s{base}",
                           f">= {100 * TARGET_SUCCESS:.0f}%", "train longer (--minutes)"))
    elif task == "joystick":
        base = f" (scripted {baseline['heading_error_deg']:.1f})" if baseline else ""
        gates.append(_gate(stage, "heading error", m["heading_error_deg"] < JOYSTICK_HEADING_DEG, False,
                           f"{m['heading_error_deg']:.1f} deg{base}, speed error {m['speed_error_mps']:.2f} m/s",
                           f"< {JOYSTICK_HEADING_DEG:g} deg", "train longer (--minutes)"))
    elif task == "path_follow":
        gates.append(_gate(stage, "path error", m["path_error_mean_m"] < 1.0, True,
                           f"{m['path_error_mean_m']:.2f} m mean", "< 1 m", "train longer (--minutes)"))
    elif task == "maze":
        gates.append(_gate(stage, "goals", m["goals_reached"] >= 1.0, True, f"{m['goals_reached']:.2f} per episode",
                           ">= 1", "train longer (--minutes)"))
    gates.append(_gate(stage, "divergence resets", m.get("diverged_per_minute", 0.0) <= 0.1, False,
                       f"{m.get('diverged_per_minute', 0.0):.2f} per minute", "<= 0.1 per minute",
                       "the policy drives the VAE off its data: check the VAE's held-latent gate"))
    saturation = m.get("action_saturation")
    if saturation is not None:
        gates.append(_gate(stage, "latent exploitation", saturation <= MAX_SATURATION, True,
                           f"{100 * saturation:.0f}% of actions at the latent bound", f"<= {100 * MAX_SATURATION:.0f}%",
                           "the policy lives at the edge of the latent space: motion may look off"))
    gates.append(_ratio_gate(stage, "jitter", m.get("jitter"), m.get("data_jitter"), None, 2.0, " m/s2",
                             "an exploiting policy shakes: more training, or a smaller action scale"))
    gates.append(_ratio_gate(stage, "foot sliding", m.get("foot_sliding"), m.get("data_foot_sliding"), None, 3.0, "",
                             "foot locking in the app hides most of it; a larger train_policy.py --foot-slide-weight reduces it"))
    return gates


def failed(gates: list[Gate]) -> list[Gate]:
    return [g for g in gates if g.status == FAIL]
