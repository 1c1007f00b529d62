"""What a build has done so far: one record per stage in ``<bundle>/build/state.json``, so a rerun continues.

Each stage records the fingerprint of its inputs and settings (:func:`fingerprint`: sha256 over a JSON of them,
input files by content), whether it finished, its figures, gates and seconds. A rerun skips a finished stage whose
fingerprint is unchanged; a changed input or flag reruns that stage and, through their fingerprints (which include
the earlier stages' outputs), every stage after it and nothing else. A stage interrupted half-way resumes from its
own checkpoint (the VAE and policy trainers write one), since its fingerprint is the same.

The policies stage also keeps one record per task (``task_record``), apart from the stages' records and not dropped
with them: a task whose own fingerprint (its model, algorithm, minutes, options, seed) and policy file are unchanged is
kept when the stage reruns, so adding a task to a built character trains that task only.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from common.atomic import atomic_write
from common.fingerprint import file_fingerprint

STATE_FILE = "state.json"
FORMAT = "mvae-character-build"


def fingerprint(settings: dict, files: list[Path] = ()) -> str:
    """sha256 prefix over ``settings`` (JSON-able) and the content of ``files``."""
    h = hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode())
    for path in files:
        h.update(file_fingerprint(path)["sha256"].encode())
    return h.hexdigest()[:16]


class BuildState:
    """The records of ``<bundle>/build/state.json`` (written atomically after every change)."""

    def __init__(self, folder: Path):
        self.path = Path(folder) / STATE_FILE
        self.data: dict = {"format": FORMAT, "inputs": None, "stages": {}}
        if self.path.is_file():
            try:
                loaded = json.loads(self.path.read_text())
            except (OSError, json.JSONDecodeError):
                loaded = None  # a damaged record: the stages run again
            if isinstance(loaded, dict) and loaded.get("format") == FORMAT:
                self.data = loaded

    @property
    def inputs(self) -> str | None:
        """Fingerprint of the inputs the bundle was first built from."""
        return self.data.get("inputs")

    def set_inputs(self, value: str) -> None:
        self.data["inputs"] = value
        self.save()

    def record(self, stage: str) -> dict:
        return self.data["stages"].get(stage, {})

    def done(self, stage: str, print_: str) -> bool:
        """True when ``stage`` finished with this fingerprint."""
        record = self.record(stage)
        return bool(record.get("done")) and record.get("fingerprint") == print_

    def start(self, stage: str, print_: str) -> None:
        previous = self.record(stage)
        same = previous.get("fingerprint") == print_
        self.data["stages"][stage] = {"fingerprint": print_, "done": False,
                                      "seconds": previous.get("seconds", 0.0) if same else 0.0}
        self.save()

    def finish(self, stage: str, seconds: float, metrics: dict, gates: list[dict]) -> None:
        record = self.data["stages"][stage]
        record.update({"done": True, "seconds": record.get("seconds", 0.0) + seconds, "metrics": metrics,
                       "gates": gates})
        self.save()

    def add_seconds(self, stage: str, seconds: float) -> None:
        """Time spent in a stage that did not finish (it counts against the budget of the rerun)."""
        if stage in self.data["stages"]:
            self.data["stages"][stage]["seconds"] = self.data["stages"][stage].get("seconds", 0.0) + seconds
            self.save()

    def forget(self, stages: list[str]) -> float:
        """Drop the records of ``stages`` (they start over) -> the seconds their earlier runs had spent."""
        dropped = {stage: self.data["stages"].pop(stage) for stage in stages if stage in self.data["stages"]}
        self.save()
        return sum(float(record.get("seconds", 0.0)) for record in dropped.values())

    def task_record(self, task: str) -> dict:
        """The policies stage's record of ``task``: fingerprint, done, the policy file's sha256, figures, gates."""
        return self.data.get("tasks", {}).get(task, {})

    def set_task_record(self, task: str, record: dict) -> None:
        self.data.setdefault("tasks", {})[task] = record
        self.save()

    def spent_seconds(self) -> float:
        return float(sum(r.get("seconds", 0.0) for r in self.data["stages"].values()))

    def save(self) -> None:
        with atomic_write(self.path, "w") as f:
            f.write(json.dumps(self.data, indent=1, default=float) + "\n")
