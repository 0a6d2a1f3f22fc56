"""The latency pass of ``edgederm bench``: every scored candidate timed at batch 1 per thread count in
interleaved rounds (``device_bench.timing.measure_interleaved``: warm-up discarded; median, p90,
min), beside a fixed GEMM that measures the machine's own noise, and throughput at a larger batch
where the runtime takes one."""

from __future__ import annotations

from device_bench.timing import measure, measure_interleaved, probe
from edgederm.bench_scoring import Scored, failure_reason
from edgederm.progress import log


def time_candidates(scored: list[Scored], config) -> tuple[list[dict], dict]:
    """One row per candidate and thread count, and per thread count the probe's figures (its
    round-to-round spread: how far to trust small differences)."""
    rows, noise = [], {}
    for threads in config.threads:
        opened = {}
        for i, s in enumerate(scored):
            try:
                opened[i] = s.cand.open(threads)
            except Exception as e:
                rows.append({**s.cand.row, **s.fields, "threads": threads, "status": "failed",
                             "reason": f"could not open at {threads} thread(s): {failure_reason(e)}"})
        log(f"bench: timing {len(opened)} candidates at {threads} thread(s), {config.rounds} interleaved rounds")
        calls = {i: (lambda fn=fn, x=scored[i].one: fn(x)) for i, fn in opened.items()}
        calls["probe"] = probe()
        latency = measure_interleaved(calls, warmup=config.warmup, runs=config.runs, rounds=config.rounds,
                                      max_seconds=config.max_seconds)
        p = latency.pop("probe")
        noise[str(threads)] = {"probe": "numpy fp32 GEMM 192x192", "median_ms": round(p["median_ms"], 4),
                               "round_spread": p["round_spread"]}
        for i, fn in opened.items():
            rows.append(_timed_row(scored[i], fn, threads, latency[i], config))
        opened.clear()
    for s in scored:
        if s.cand.cleanup:
            s.cand.cleanup()
    return rows, noise


def _timed_row(s: Scored, fn, threads: int, latency: dict, config) -> dict:
    row = {**s.cand.row, "threads": threads, "batch": 1, **s.fields, "latency": latency}
    if getattr(fn, "runtime", None):
        row["runtime"] = fn.runtime
        row["provider"] = getattr(fn, "delegate", row.get("provider"))
    b = config.throughput_batch
    if b > 1 and len(s.many) >= b and (not s.cand.static_batch or s.cand.row["format"] == "tflite"):
        try:
            t = measure(fn, s.many, warmup=2, runs=10, max_seconds=config.max_seconds)
            row["throughput"] = {"batch": b, "images_per_s": round(1e3 * b / t["median_ms"], 2)}
        except Exception:  # a file whose batch dimension is fixed: no throughput row
            pass
    return row
