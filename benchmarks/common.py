"""What every benchmark shares: both sides timed in turns, min / median / max, the threads and the load, one JSON line.

On a shared 2-core machine another process can slow torch 10-40x for seconds at a time, so a benchmark never
times one side and then the other: :func:`interleaved` runs the sides in turns, ``repeats`` times, and a busy spell
hits them alike. Every figure is :func:`spread` of its repeats (min: the least disturbed, median: the typical), and
every ratio is given for both (:func:`ratio`). :func:`context` records what the figures depend on: torch's threads,
the CPUs, and the load average when the run ended (a load near the CPU count means the absolute figures are slow,
while the in-run ratios still hold).
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from collections.abc import Callable


def spread(values: list[float], digits: int = 4) -> dict:
    """{"min", "median", "max", "n"} of ``values`` (rounded to ``digits`` significant decimals)."""
    return {"min": round(min(values), digits), "median": round(statistics.median(values), digits),
            "max": round(max(values), digits), "n": len(values)}


def ratio(ours: list[float], reference: list[float], digits: int = 2) -> dict:
    """Ours / reference of rates (higher is better) at the best and at the median repeat."""
    return {"best": round(max(ours) / max(reference), digits),
            "median": round(statistics.median(ours) / statistics.median(reference), digits)}


def time_ratio(ours: list[float], reference: list[float], digits: int = 2) -> dict:
    """Reference / ours of times (lower is better): how many times faster ours is, best and median repeat."""
    return {"best": round(min(reference) / min(ours), digits),
            "median": round(statistics.median(reference) / statistics.median(ours), digits)}


def timed(fn: Callable, calls: int = 1, sync: Callable | None = None) -> float:
    """Seconds per call of ``fn`` over ``calls`` calls (``sync()`` before the clock stops: a GPU's queue)."""
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    if sync is not None:
        sync()
    return (time.perf_counter() - start) / calls


def calls_for(fn: Callable, seconds: float, sync: Callable | None = None) -> int:
    """Warm ``fn`` up and return how many calls take about ``seconds`` (at least 1)."""
    for _ in range(2):
        fn()
    one = timed(fn, 1, sync)
    return max(1, int(seconds / max(one, 1e-7)))


def interleaved(fns: dict[str, Callable], repeats: int, seconds: float | None = None, calls: int | None = None,
                sync: Callable | None = None) -> dict[str, list[float]]:
    """Seconds per call of every function, the functions taking turns, ``repeats`` times: each turn runs ``calls``
    calls, or as many as take about ``seconds`` (measured once per function after a warm-up)."""
    if (seconds is None) == (calls is None):
        raise ValueError("interleaved: give either seconds or calls")
    counts = {name: calls if calls is not None else calls_for(fn, seconds, sync) for name, fn in fns.items()}
    out: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            out[name].append(timed(fn, counts[name], sync))
    return out


def context(threads: int | None = None) -> dict:
    """What the figures depend on: torch threads (``threads`` when torch is not used), CPUs, load, versions."""
    info = {"cpus": os.cpu_count(), "machine": platform.machine(), "python": platform.python_version()}
    if threads is None:
        import torch

        threads = torch.get_num_threads()
        info["torch"] = torch.__version__
    info["threads"] = threads
    info["load_avg_1min"] = round(os.getloadavg()[0], 2)
    return info


def emit(result: dict) -> None:
    """The benchmark's one JSON line."""
    print(json.dumps(result), flush=True)
