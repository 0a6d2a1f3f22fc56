"""The latency protocol shared by ``edgederm bench`` and devices: warm-up runs are discarded,
then ``runs`` timed calls at batch 1; median, p90 and min in milliseconds."""

from __future__ import annotations

import time

import numpy as np


def measure(fn, x, warmup: int = 5, runs: int = 30, max_seconds: float = 20.0) -> dict:
    """Time ``fn(x)``; stops early (keeping at least 5 timed runs) if ``max_seconds`` is exceeded."""
    for _ in range(warmup):
        fn(x)
    times = []
    start = time.perf_counter()
    for i in range(runs):
        t0 = time.perf_counter()
        fn(x)
        times.append((time.perf_counter() - t0) * 1e3)
        if i >= 4 and time.perf_counter() - start > max_seconds:
            break
    return summarize(times, warmup)


def summarize(times_ms, warmup: int = 0) -> dict:
    t = np.asarray(times_ms, dtype=np.float64)
    return {"median_ms": float(np.median(t)), "p90_ms": float(np.percentile(t, 90)), "min_ms": float(t.min()),
            "mean_ms": float(t.mean()), "runs": int(len(t)), "warmup": int(warmup)}
