"""What ``edgederm bench`` adds to its rows once all are measured (speed-ups against the original,
the fraction of this CPU's peak MAC rate), and how it writes them: ``results.json``
(``device_bench.results``, the schema devices write too) and a flat ``results.csv``."""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path

from edgederm.paths import atomic_path


def add_speedups(results) -> None:
    """speedup = the CPU original's median ms on the same machine at the same thread count / this
    row's median ms. Where the results hold the original on a GPU (eager fp32, batch 1), every row
    also gets ``gpu_original_ratio`` = its median ms / that GPU figure: how far an edge artifact is
    from the original served on a GPU."""
    base = {(r.get("device"), r["threads"]): r["latency"]["median_ms"] for r in results.rows
            if r.get("role") == "original" and r["format"] == "torch" and r.get("provider") == "eager CPU"
            and r["status"] == "ok"}
    gpu = [r["latency"]["median_ms"] for r in results.rows
           if r.get("artifact") == "pytorch_cuda_fp32" and r["status"] == "ok" and r.get("latency")]
    for r in results.rows:
        if r["status"] == "ok" and (r.get("device"), r.get("threads")) in base:
            r["speedup_vs_original"] = round(base[(r.get("device"), r["threads"])] / r["latency"]["median_ms"], 3)
        if gpu and r["status"] == "ok" and r.get("latency"):
            r["gpu_original_ratio"] = round(r["latency"]["median_ms"] / min(gpu), 3)
        peak = results.environments.get(r.get("device", ""), {}).get("peak_gmacs", {})
        if r["status"] == "ok" and r.get("macs") and str(r.get("threads")) in peak:
            p = peak[str(r["threads"])]
            integer = r["precision"].startswith(("int8", "w8a8"))  # int8 arithmetic: compare with the int8 GEMM
            rate = p["int8"] if integer and p.get("int8") else p["fp32"]
            r["peak_fraction"] = round(r["macs"] / (r["latency"]["median_ms"] * 1e-3) / (rate * 1e9), 4)


def write_results(results, out: Path) -> tuple[Path, Path]:
    out.mkdir(parents=True, exist_ok=True)
    json_path = results.save(out / "results.json")
    fields = ["device", "artifact", "role", "format", "precision", "runtime", "provider", "threads", "batch", "status",
              "size_bytes", "params", "macs", "metric", "value", "low", "high", "delta", "delta_low", "delta_high",
              "median_ms", "p90_ms", "min_ms", "speedup_vs_original", "gpu_original_ratio", "peak_fraction", "round_spread", "reason"]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=fields, extrasaction="ignore")
    writer.writeheader()
    for r in results.rows:
        base = {k: r.get(k) for k in fields}
        base.update({k: (r.get("latency") or {}).get(k) for k in ("median_ms", "p90_ms", "min_ms", "round_spread")})
        for metric, est in (r.get("metrics") or {"": {}}).items():
            d = (r.get("delta") or {}).get(metric, {})
            writer.writerow({**base, "metric": metric, **{k: est.get(k) for k in ("value", "low", "high")},
                             "delta": d.get("value"), "delta_low": d.get("low"), "delta_high": d.get("high")})
    csv_path = out / "results.csv"
    tmp = atomic_path(csv_path)
    tmp.write_text(buf.getvalue())
    os.replace(tmp, csv_path)
    return json_path, csv_path
