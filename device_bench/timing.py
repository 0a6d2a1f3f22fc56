"""The latency protocol shared by ``edgederm bench`` and devices: warm-up runs are discarded,
then ``runs`` timed calls at batch 1; median, p90 and min in milliseconds. Several candidates are
timed in alternating rounds (``measure_interleaved``) so that noise from elsewhere hits them alike."""

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


def measure_interleaved(calls: dict, warmup: int = 5, runs: int = 50, rounds: int = 5, block_warmup: int = 2,
                        max_seconds: float = 20.0, settle_s: float = 0.02, seed: int = 0) -> dict[str, dict]:
    """Time several zero-argument ``calls`` in alternating rounds so that a burst of load from
    elsewhere, or a slow drift of the CPU clock, hits every candidate alike (ratios stay honest).

    Each call gets ``warmup`` untimed runs first; then in each of ``rounds`` rounds, taken in a
    fresh seeded random order (a fixed or merely rotated order makes each candidate follow the
    same neighbour, whose caches and spinning thread pool it inherits), a pause of ``settle_s``
    (ONNX Runtime, XNNPACK and OpenMP thread pools spin-wait after their work), ``block_warmup``
    untimed runs and ``runs / rounds`` timed ones. A call that overruns its share of ``max_seconds`` in a
    round is cut to at least one timed run. Returns name -> ``summarize`` of all its timed runs plus
    the per-round medians and their spread (max/min − 1), the within-run noise figure."""
    names = list(calls)
    for name in names:
        for _ in range(warmup):
            calls[name]()
    per_block = max(1, -(-runs // rounds))
    budget = max_seconds / rounds
    times: dict[str, list[list[float]]] = {n: [] for n in names}
    order = np.random.default_rng(seed)
    for r in range(rounds):
        for name in (names[i] for i in order.permutation(len(names))):
            fn = calls[name]
            time.sleep(settle_s)
            for _ in range(block_warmup):
                fn()
            block, start = [], time.perf_counter()
            for _ in range(per_block):
                t0 = time.perf_counter()
                fn()
                block.append((time.perf_counter() - t0) * 1e3)
                if time.perf_counter() - start > budget:
                    break
            times[name].append(block)
    out = {}
    for name in names:
        flat = [t for block in times[name] for t in block]
        medians = [float(np.median(b)) for b in times[name]]
        out[name] = summarize(flat, warmup) | {
            "rounds": rounds, "round_medians_ms": [round(m, 4) for m in medians],
            "round_spread": round(max(medians) / min(medians) - 1, 4) if min(medians) > 0 else None}
    return out


def probe(size: int = 192):
    """A fixed dense fp32 GEMM (numpy's BLAS) to time beside the candidates: its round-to-round
    spread is the machine's own noise during the run, printed under the table. Idle, this
    project's 2-core VM ran a fixed 512x512 GEMM 1.4x slower in some 1-second windows than in others."""
    a = np.random.default_rng(0).standard_normal((size, size)).astype(np.float32)
    return lambda: a @ a
