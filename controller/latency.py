"""Per-call inference latency, kept for a HUD: the last call, a running mean, the best and the count."""

from __future__ import annotations

import time


class LatencyMeter:
    """Milliseconds per call. ``mean_ms`` is an exponential running mean (about the last 1/alpha calls)."""

    def __init__(self, alpha: float = 0.05):
        if not 0.0 < alpha <= 1.0:
            raise ValueError(f"alpha must be in (0, 1], got {alpha}")
        self.alpha = alpha
        self.last_ms = 0.0
        self.mean_ms = 0.0
        self.min_ms = float("inf")
        self.count = 0

    def record(self, ms: float) -> None:
        self.last_ms = ms
        self.mean_ms = ms if self.count == 0 else self.mean_ms + self.alpha * (ms - self.mean_ms)
        self.min_ms = min(self.min_ms, ms)
        self.count += 1

    def since(self, start: float) -> None:
        """Record the time elapsed since ``start`` (a ``time.perf_counter()`` value)."""
        self.record((time.perf_counter() - start) * 1e3)

    def as_dict(self) -> dict:
        return {"last_ms": self.last_ms, "mean_ms": self.mean_ms,
                "min_ms": self.min_ms if self.count else None, "count": self.count}
