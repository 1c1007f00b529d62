"""One progress view for a whole build, and its log file.

Every line the build prints (its own, and the trainers' warnings) goes to the console and to
``<bundle>/build.log``. Progress lines read::

    [vae 2/6 | 07:41 of 40:00, ~31 min left] epoch 4/12: recon 0.031, KL 2.1 nats

the stage and its place, the build's wall time against the ``--minutes`` budget, the time left by the plan, and the
stage's key figure.
"""

from __future__ import annotations

import contextlib
import sys
import time
from pathlib import Path


class _Tee:
    """A text stream writing to the console stream and the log file."""

    def __init__(self, stream, log):
        self.stream, self.log = stream, log

    def write(self, text: str) -> int:
        self.stream.write(text)
        self.log.write(text)
        self.log.flush()
        return len(text)

    def flush(self) -> None:
        self.stream.flush()
        self.log.flush()

    def isatty(self) -> bool:
        return False


class BuildProgress:
    """See the module docstring. ``spent_s``: seconds already spent by an earlier run of this build."""

    def __init__(self, log_path: Path, budget_minutes: float, stages: list[str], spent_s: float = 0.0):
        self.log_path = Path(log_path)
        self.budget_s = 60.0 * budget_minutes
        self.stages = list(stages)
        self.started = time.perf_counter() - spent_s
        self.current = ""

    @contextlib.contextmanager
    def captured(self):
        """Tee stdout and stderr into the log file for the duration of the build."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "a") as log, contextlib.redirect_stdout(_Tee(sys.stdout, log)), \
                contextlib.redirect_stderr(_Tee(sys.stderr, log)):
            print(f"==== build started {time.strftime('%Y-%m-%d %H:%M:%S')} ====", flush=True)
            yield

    def give_back(self, seconds: float) -> None:
        """Take ``seconds`` an earlier run spent off the clock (its stage starts over, so that time bought nothing)."""
        self.started += seconds

    @property
    def elapsed_s(self) -> float:
        return time.perf_counter() - self.started

    def _prefix(self) -> str:
        index = self.stages.index(self.current) + 1 if self.current in self.stages else 0
        elapsed, left = self.elapsed_s, max(0.0, self.budget_s - self.elapsed_s)
        return (f"[{self.current} {index}/{len(self.stages)} | {_clock(elapsed)} of {_clock(self.budget_s)}, "
                f"~{left / 60:.0f} min left]")

    def stage(self, name: str, what: str) -> None:
        self.current = name
        print(f"{self._prefix()} {what}", flush=True)

    def figure(self, text: str) -> None:
        print(f"{self._prefix()} {text}", flush=True)


def _clock(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes:02d}:{secs:02d}"
