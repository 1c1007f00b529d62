"""Build stage 6, the report: ``<bundle>/report.html``, one static page that says, with numbers, how good the
character is.

Sections: the verdict (every gate, pass / warn / fail with its number, bar and advice), the data, the Motion VAE
(training curves; its motion next to the data's: foot sliding, skating, jitter; held-latent stability), the code
prior of a VQ build (cross-entropy curves against the unigram one, the step context), each policy
(learning curve; success against the scripted baseline; its motion next to the data's), the export, and a strip of
frames from the preview video. Figures are drawn with matplotlib and embedded in the page (PNG data URIs), so the
file stands alone; each has an ``id`` (``fig-<name>``) that tests and scripts can find.
"""

from __future__ import annotations

import base64
import csv
import html
import io
import json
from pathlib import Path

from common.atomic import atomic_write
from common.paths import portable_path

QUALITY = (("foot_sliding", "foot sliding (CAMDM)"), ("skating_ratio", "skating ratio (A-MDM)"),
           ("jitter", "jitter (m/s²)"))
STATUS_COLOURS = {"pass": "#2e7d32", "warn": "#ef6c00", "fail": "#c62828"}


def settings(ctx) -> tuple[dict, list[Path]]:
    # Cheap, and it reads every stage's figures: always rerun.
    import time

    return {"at": time.time()}, []


def _read_csv(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    with open(path) as f:
        return [{k: _number(v) for k, v in row.items()} for row in csv.DictReader(f)]


def _number(text: str):
    try:
        return float(text)
    except (TypeError, ValueError):
        return None


def _figure_uri(fig) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def figures(ctx) -> dict[str, tuple[str, str]]:
    """name -> (caption, PNG data URI) of every figure the build's figures allow."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out: dict[str, tuple[str, str]] = {}
    vae = ctx.results.get("vae", {})
    rows = _read_csv(ctx.work / "vae_logs" / "metrics.csv")
    if rows:
        fig, (a, b) = plt.subplots(1, 2, figsize=(9, 3))
        epochs = [r["epoch"] for r in rows]
        a.plot(epochs, [r["recon"] for r in rows], marker="o")
        a.set(title="reconstruction (normalised MSE)", xlabel="epoch", yscale="log")
        if rows[0].get("kl_total") is not None:
            b.plot(epochs, [r["kl_total"] for r in rows], marker="o", color="tab:orange")
            b.set(title="KL (nats, all latent dims)", xlabel="epoch")
        else:  # a VQ model: how many codes it spreads its frames over
            b.plot(epochs, [r["perplexity"] for r in rows], marker="o", color="tab:orange")
            b.set(title="code perplexity", xlabel="epoch")
        out["vae-training"] = ("Motion VAE training", _figure_uri(fig))
    prior_rows = _read_csv(ctx.work / "prior_logs" / "metrics.csv")
    if prior_rows and ctx.results.get("prior"):
        fig, ax = plt.subplots(figsize=(5, 3))
        epochs = list(range(1, len(prior_rows) + 1))  # the csv is appended to across resumed runs: rows in order
        ax.plot(epochs, [r["train_ce"] for r in prior_rows], marker="o", label="training")
        ax.plot(epochs, [r["heldout_ce"] for r in prior_rows], marker="o", label="held out")
        unigram = ctx.results["prior"].get("unigram_ce")
        if unigram is not None:
            ax.axhline(unigram, color="tab:gray", linestyle="--", label="unigram (code frequencies)")
        ax.set(title="code prior: next-code cross-entropy", xlabel="epoch", ylabel="nats per code")
        ax.legend()
        out["prior-training"] = ("Code prior training", _figure_uri(fig))
    if vae.get("held_latent"):
        held = vae["held_latent"]
        fig, ax = plt.subplots(figsize=(4.5, 3))
        ax.bar([str(level) for level in held["levels"]], [100 * s for s in held["diverged_share"]])
        ax.set(title=f"held latents for {held['seconds']:.0f} s", xlabel="|z| (prior stds)", ylabel="% diverged")
        ax.set_ylim(0, max(5.0, 100 * max(held["diverged_share"]) * 1.2))
        out["vae-held-latent"] = ("Held-latent stability (what a policy does: hold one z)", _figure_uri(fig))
    policies = ctx.results.get("policies", {})
    series = {"data": {k: vae.get(f"data_{k}") for k, _ in QUALITY}, "VAE random walk": {k: vae.get(k) for k, _ in QUALITY}}
    for task, result in policies.items():
        series[f"{task} policy"] = {k: result["policy"].get(k) for k, _ in QUALITY}
    if any(v is not None for s in series.values() for v in s.values()):
        fig, axes = plt.subplots(1, len(QUALITY), figsize=(11, 3))
        for ax, (key, label) in zip(axes, QUALITY, strict=True):
            names = [n for n, s in series.items() if s.get(key) is not None]
            ax.bar(names, [series[n][key] for n in names], color=["tab:gray"] + ["tab:blue"] * (len(names) - 1))
            ax.set_title(label)
            ax.tick_params(axis="x", rotation=30)
        out["motion-quality"] = ("Motion quality next to the data's own (METRICS.md)", _figure_uri(fig))
    for task in policies:
        rows = _read_csv(ctx.work / f"ppo_{task}" / "progress.csv")
        if not rows:
            continue
        fig, ax = plt.subplots(figsize=(5, 3))
        ax.plot([r["minutes"] for r in rows], [r.get("episode_return") for r in rows])
        ax.set(title=f"{task}: learning curve", xlabel="training minutes", ylabel="episode return")
        out[f"policy-{task}-curve"] = (f"{task} training", _figure_uri(fig))
    strip = ctx.work / "preview_strip.png"
    if strip.is_file():
        out["preview"] = ("Frames of the preview video", "data:image/png;base64,"
                          + base64.b64encode(strip.read_bytes()).decode())
    return out


def _rows(rows: list[tuple]) -> str:
    return "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows)


def _fmt(value) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)


def page(ctx, figs: dict, gates: list[dict]) -> str:
    data, vae, policies = ctx.results.get("data", {}), ctx.results.get("vae", {}), ctx.results.get("policies", {})
    prior = ctx.results.get("prior")
    worst = "fail" if any(g["status"] == "fail" for g in gates) else (
        "warn" if any(g["status"] == "warn" for g in gates) else "pass")
    gate_rows = "".join(
        f"<tr><td style='color:{STATUS_COLOURS[g['status']]};font-weight:bold'>{g['status'].upper()}</td>"
        f"<td>{html.escape(g['stage'])}</td><td>{html.escape(g['name'])}</td><td>{html.escape(g['value'])}</td>"
        f"<td>{html.escape(g['bar'])}</td><td>{html.escape(g['advice'] if g['status'] != 'pass' else '')}</td></tr>"
        for g in gates)
    policy_rows = []
    for task, result in policies.items():
        p, s = result["policy"], result["scripted"]
        for key in ("success_rate", "targets_per_minute", "heading_error_deg", "speed_error_mps", "path_error_mean_m",
                    "goals_reached", "diverged_per_minute", "action_saturation", "foot_sliding", "foot_sliding_ik",
                    "jitter"):
            if key in p:
                policy_rows.append((task, key, _fmt(p.get(key)), _fmt(s.get(key)), _fmt(p.get(f"data_{key}"))))
    vae_rows = [(key, _fmt(vae.get(key)), _fmt(vae.get(f"data_{key}")))
                for key in ("recon_error_teacher", "recon_error_rollout8", "active_latent_dims", "latent_output_std",
                            "bone_length_error_cm", "foot_sliding", "skating_ratio", "coherence", "jitter",
                            "pose_diversity", "action_scale", "contact_accuracy", "epochs", "train_minutes")]
    if vae.get("codes_used") is not None:  # a VQ model
        vae_rows += [(key, _fmt(vae.get(key)), "") for key in ("num_codes", "codes_used", "perplexity")]
    prior_section = "" if not prior else (
        "<h2>Code prior</h2><table>" + _rows([(key, _fmt(prior.get(key))) for key in (
            "heldout_ce", "unigram_ce", "heldout_perplexity", "heldout_accuracy", "step_context", "context",
            "num_codes", "epochs", "train_minutes")]) + "</table>")
    settings_shown = {k: portable_path(v) for k, v in ctx.cfg.__dict__.items()}  # no machine paths in the page
    settings_shown["inputs"] = [portable_path(str(i)) for i in ctx.inputs]
    images = "".join(f"<figure><img id='fig-{name}' alt='{html.escape(caption)}' src='{uri}'>"
                     f"<figcaption>{html.escape(caption)}</figcaption></figure>" for name, (caption, uri) in figs.items())
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(ctx.cfg.name)}: character report</title>
<style>body{{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222}}
table{{border-collapse:collapse;margin:1em 0}}td{{border:1px solid #ccc;padding:3px 8px}}
figure{{display:inline-block;margin:0.5em}}img{{max-width:100%}}.verdict{{font-size:1.4em;
color:{STATUS_COLOURS[worst]}}}</style></head><body>
<h1>{html.escape(ctx.cfg.title or ctx.cfg.name)}</h1>
<p class="verdict" id="verdict">Verdict: {worst.upper()} ({sum(g['status'] == 'pass' for g in gates)} of
{len(gates)} gates pass)</p>
<p>Play it: <code>python play.py --character {html.escape(portable_path(ctx.cfg.out))}</code></p>
<h2>Quality gates</h2>
<table id="gates"><tr><th>status</th><th>stage</th><th>gate</th><th>value</th><th>bar</th><th>what to do</th></tr>
{gate_rows}</table>
<h2>Data</h2><table>{_rows([(k, _fmt(v)) for k, v in data.items()])}</table>
<h2>Motion VAE</h2><table><tr><th>figure</th><th>model</th><th>data</th></tr>{_rows(vae_rows)}</table>
{prior_section}
<h2>Policies</h2><table><tr><th>task</th><th>figure</th><th>policy</th><th>scripted baseline</th><th>data</th></tr>
{_rows(policy_rows)}</table>
<h2>Figures</h2>{images}
<h2>Settings</h2><pre>{html.escape(json.dumps(settings_shown, indent=1, default=str))}</pre>
</body></html>
"""


def run(ctx):
    ctx.progress.stage("report", "writing report.html")
    gates = [g for stage in ("data", "vae", "prior", "policies") for g in ctx.state.record(stage).get("gates", [])]
    figs = figures(ctx)
    with atomic_write(ctx.out / "report.html", "w") as f:
        f.write(page(ctx, figs, gates))
    return {"figures": sorted(figs), "gates": len(gates)}, []
