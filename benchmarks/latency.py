"""Latency measurement: warm-up, many timed calls, robust statistics.

Median and p90 rather than the mean: on a shared CPU a few calls get descheduled and
the mean follows them. The minimum is the best case the hardware allows. The garbage
collector is paused while timing (as ``timeit`` does) so its pauses land in no sample.
"""
from __future__ import annotations

import gc
import sys
import time
from pathlib import Path
from dataclasses import asdict, dataclass
from typing import Any, Callable, Sequence

import numpy as np

from converters.speedup import time_interleaved  # one implementation, shared with convert

Clock = Callable[[], float]


@dataclass(frozen=True)
class LatencyStats:
    """Statistics of one timed call, in milliseconds. p90 uses linear interpolation between samples."""

    runs: int
    median_ms: float
    p90_ms: float
    min_ms: float
    mean_ms: float
    max_ms: float

    def as_dict(self) -> dict[str, Any]:
        return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in asdict(self).items()}


def summarize(durations_s: Sequence[float]) -> LatencyStats:
    """Statistics of call durations given in seconds."""
    d = np.asarray(durations_s, dtype=np.float64).reshape(-1) * 1e3
    if d.size == 0:
        raise ValueError("no durations to summarise (runs must be >= 1)")
    if not np.all(np.isfinite(d)) or np.any(d < 0):
        raise ValueError("durations must be finite and non-negative")
    return LatencyStats(runs=int(d.size), median_ms=float(np.median(d)), p90_ms=float(np.percentile(d, 90)),
                        min_ms=float(d.min()), mean_ms=float(d.mean()), max_ms=float(d.max()))


def time_calls(fn: Callable[[], Any], runs: int, warmup: int = 5, clock: Clock = time.perf_counter) -> list[float]:
    """Call ``fn`` ``warmup`` times untimed, then ``runs`` times; return each timed call's duration in seconds."""
    if runs < 1:
        raise ValueError(f"runs must be >= 1, got {runs}")
    if warmup < 0:
        raise ValueError(f"warmup must be >= 0, got {warmup}")
    for _ in range(warmup):
        fn()
    durations = []
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        for _ in range(runs):
            start = clock()
            fn()
            durations.append(clock() - start)
    finally:
        if was_enabled:
            gc.enable()
    return durations


def measure(fn: Callable[[], Any], runs: int, warmup: int = 5, clock: Clock = time.perf_counter) -> LatencyStats:
    """``summarize(time_calls(...))``."""
    return summarize(time_calls(fn, runs, warmup, clock))


def measure_interleaved(fns: Sequence[Callable[[], Any]], runs: int, warmup: int = 5,
                        clock: Clock = time.perf_counter) -> list[LatencyStats]:
    """``summarize`` of each of ``time_interleaved(...)``."""
    return [summarize(d) for d in time_interleaved(fns, runs, warmup, clock)]


def peak_rss_mb() -> float:
    """This process's peak resident memory so far, in MB.

    Linux: ``VmHWM`` from /proc/self/status, which starts afresh at exec — unlike ``ru_maxrss``,
    which a worker inherits from the parent that forked it. Elsewhere ``ru_maxrss`` (bytes on
    macOS), or psutil's peak working set on Windows.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return float(line.split()[1]) * 1024 / 1e6  # kB
    except OSError:
        pass
    try:
        import resource
    except ImportError:  # Windows
        import psutil

        return float(psutil.Process().memory_info().peak_wset) / 1e6
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 1e6 if sys.platform == "darwin" else peak * 1024 / 1e6


def current_rss_mb() -> float | None:
    """Resident memory now, in MB (None without psutil)."""
    try:
        import psutil
    except ImportError:
        return None
    return psutil.Process().memory_info().rss / 1e6
