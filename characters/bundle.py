"""A character bundle: one folder that is everything needed to play, train and export a character.

Layout::

    <name>/character.json     what the character is (below)
    <name>/vae.pt             the Motion VAE (a slim checkpoint: weights, normalisation, skeleton, start poses)
    <name>/policies/<task>.pt one policy per task (file names from envs.registry)
    <name>/LICENSE.txt        the licence of the weights, with the data's attribution (where the data needs one)
    <name>/report.html, ...   what ``python -m characters.build`` adds: report, preview video, build log

``character.json`` (format ``mvae-character``, version 1; paths are relative to the folder, never absolute)::

    name, title           short id and a human title
    manifold              "gaussian" (PoseMixtureVAE) or "vq" (discrete codes)
    vae                   "vae.pt"
    prior                 "prior.pt": the code prior of a "vq" character (vae.prior; optional, absent for Gaussian)
    action_scale          latent = action * action_scale for this VAE's policies (from its aggregate posterior)
    fps                   frames per second of the motion
    skeleton              {"joints": J, "joint_names": [...], "height_m": h}
    speed_range_mps       [slowest, fastest] ground speed of the data's locomotion
    speeds_mps            {"walk", "run", "dash"}: what the app's keys ask for (percentiles of the data's speed)
    styles                style names (empty: one style)
    tasks                 {task: {"policy": "policies/<task>.pt", ...figures measured by the build}}
    data                  {"inputs": [...], "clips": n, "seconds": s, ...} where the motion came from
    licence               {"weights": ..., "data": ..., "attribution": ..., "file": "LICENSE.txt"}
    build, gates          what the build measured (optional)

Everywhere a tool takes a character (``play.py --character``, ``gymnasium.make(..., character=...)``,
``train_policy.py --character``, ``python -m policies.evaluate --character``, ``python -m controller.export
--character``) it accepts a bundle folder, its ``character.json``, or the name of a shipped bundle in
``assets/characters/``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from common.atomic import atomic_write

FORMAT = "mvae-character"
VERSION = 1
META_FILE = "character.json"
SHIPPED = Path(__file__).resolve().parents[1] / "assets" / "characters"
DEFAULT_CHARACTER = "bandai-namco"
MANIFOLDS = ("gaussian", "vq")
REQUIRED = ("name", "manifold", "vae", "fps", "tasks")


class CharacterError(ValueError):
    """A bundle that cannot be used; the message names the folder and field."""


@dataclass(frozen=True)
class Character:
    """A loaded bundle (see the module docstring)."""

    root: Path
    meta: dict

    @property
    def name(self) -> str:
        return str(self.meta["name"])

    @property
    def title(self) -> str:
        return str(self.meta.get("title") or self.name)

    @property
    def vae(self) -> Path:
        return self.root / self.meta["vae"]

    @property
    def manifold(self) -> str:
        return str(self.meta["manifold"])

    @property
    def prior(self) -> Path | None:
        """The code prior of a VQ character (its next-code transformer), or None."""
        name = self.meta.get("prior")
        return None if not name else self.root / name

    @property
    def action_scale(self) -> float | None:
        value = self.meta.get("action_scale")
        return None if value is None else float(value)

    @property
    def tasks(self) -> list[str]:
        return list(self.meta["tasks"])

    @property
    def policies_dir(self) -> Path:
        return self.root / "policies"

    def policy(self, task: str) -> Path | None:
        """The policy file of ``task`` (a name or alias), or None when the bundle has none."""
        from envs.registry import canonical_task

        entry = self.meta["tasks"].get(canonical_task(task))
        if not entry or not entry.get("policy"):
            return None
        return self.root / entry["policy"]

    @property
    def speeds(self) -> dict[str, float]:
        """Walk, run and dash speeds (m/s) for the app's keys: the bundle's ``speeds_mps``, else from its
        ``speed_range_mps`` (older bundles), else 1.0 / 1.8 / 2.5."""
        speeds = self.meta.get("speeds_mps")
        if speeds:
            return {k: float(speeds[k]) for k in ("walk", "run", "dash")}
        low, high = self.meta.get("speed_range_mps") or (1.0, 2.5)
        walk = min(1.0, float(high))
        return {"walk": walk, "run": max(walk, 0.75 * float(high)), "dash": max(walk, float(high))}

    def describe(self) -> str:
        licence = self.meta.get("licence", {})
        return (f"{self.title} ({self.name}: {self.meta['skeleton']['joints']} joints, {self.meta['fps']:g} fps, "
                f"tasks {', '.join(self.tasks) or 'none'}; weights licence {licence.get('weights', '?')})")


def shipped_characters() -> list[str]:
    """Names of the bundles in assets/characters/."""
    if not SHIPPED.is_dir():
        return []
    return sorted(p.name for p in SHIPPED.iterdir() if (p / META_FILE).is_file())


def character_folder(spec) -> Path:
    """A bundle folder from a folder, its character.json, or a shipped bundle's name (None: the default)."""
    spec = DEFAULT_CHARACTER if spec is None else spec
    path = Path(spec)
    if path.name == META_FILE:
        path = path.parent
    if (path / META_FILE).is_file():
        return path
    if isinstance(spec, str) and "/" not in spec and (SHIPPED / spec / META_FILE).is_file():
        return SHIPPED / spec
    shipped = ", ".join(shipped_characters()) or "none"
    raise CharacterError(f"character {spec!r}: neither a bundle folder (with {META_FILE}) nor a shipped character "
                         f"(assets/characters: {shipped}); build one with `python -m characters.build BVH_FOLDER "
                         f"--out characters/NAME`")


def load_character(spec=None) -> Character:
    """The bundle ``spec`` names (see :func:`character_folder`), checked: format, fields, files."""
    root = character_folder(spec)
    where = root / META_FILE
    try:
        meta = json.loads(where.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CharacterError(f"{where}: not readable JSON ({e})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CharacterError(f"{where}: not a character bundle (its 'format' must be {FORMAT!r})")
    if meta.get("version") != VERSION:
        raise CharacterError(f"{where}: version {meta.get('version')!r}; this code reads version {VERSION}")
    missing = [k for k in REQUIRED if k not in meta]
    if missing:
        raise CharacterError(f"{where}: lacks {missing}")
    if meta["manifold"] not in MANIFOLDS:
        raise CharacterError(f"{where}: 'manifold' is {meta['manifold']!r}; one of {', '.join(MANIFOLDS)}")
    if not isinstance(meta["tasks"], dict):
        raise CharacterError(f"{where}: 'tasks' must be an object {{task: {{'policy': 'policies/TASK.pt'}}}}")
    character = Character(root, meta)
    if not character.vae.is_file():
        raise CharacterError(f"{where}: its VAE {character.vae} is missing; rebuild the bundle")
    if character.prior is not None and not character.prior.is_file():
        raise CharacterError(f"{where}: its code prior {character.prior} is missing; rebuild the bundle or remove "
                             "'prior'")
    for task in character.tasks:
        policy = character.policy(task)
        if policy is not None and not policy.is_file():
            raise CharacterError(f"{where}: the {task} policy {policy} is missing; rebuild the bundle or remove it "
                                 "from 'tasks'")
    return character


def write_character(root, meta: dict) -> Path:
    """Write ``character.json`` atomically (no absolute paths: every path is relative to the folder)."""
    root = Path(root)
    meta = {"format": FORMAT, "version": VERSION, **{k: v for k, v in meta.items() if k not in ("format", "version")}}
    text = json.dumps(meta, indent=2, sort_keys=False) + "\n"
    if str(root.resolve()) in text:
        raise ValueError(f"{root / META_FILE}: would record the absolute folder {root.resolve()}; use relative paths")
    with atomic_write(root / META_FILE, "w") as f:
        f.write(text)
    return root / META_FILE
