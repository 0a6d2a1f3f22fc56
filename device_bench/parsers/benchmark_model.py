"""TFLite / LiteRT ``benchmark_model`` output -> a results row.

What is read (format of ``tensorflow/lite/tools/benchmark``, see tests/fixtures/README.md)::

    INFO: Num threads: [4]                          (parameters, echoed)
    INFO: Use xnnpack: [1] / Use gpu: [1] / Use NNAPI: [1]
    INFO: Explicitly applied XNNPACK delegate, and the model graph will be completely executed by the delegate.
          ... will be partially executed by the delegate w/ 3 delegate kernels.
    INFO: Running benchmark for at least 50 iterations and at least 1 seconds ...
    INFO: count=50 first=12100 curr=11800 min=11500 max=13050 avg=11900 std=310 [p5=... median=... p95=...]
    INFO: Inference timings in us: Init: 51000, First inference: 14000, Warmup (avg): 12500, Inference (avg): 11900

Times are microseconds. The median is recorded only when the tool printed one (newer builds
print ``p5= median= p95=``); it prints no 90th percentile, so ``p90_ms`` stays empty.
"""

from __future__ import annotations

import re

from device_bench.parsers import NUMBER, ParseError, fields

TIMINGS = "Inference timings in us:"


def _param(text: str, *names: str) -> str | None:
    for name in names:
        m = re.search(rf"{re.escape(name)}:\s*\[([^\]]*)\]", text)
        if m:
            return m.group(1)
    return None


def parse(text: str, source: str = "benchmark_model output") -> dict:
    if not text.strip():
        raise ParseError(f"{source} is empty: run benchmark_model again and keep its whole output (stdout and stderr)")
    m = re.search(rf"{re.escape(TIMINGS)}\s*(.+)$", text, re.MULTILINE)
    if m is None:
        errors = re.findall(r"^.*(Benchmarking failed\.?)\s*$", text, re.MULTILINE)
        errors += re.findall(r"^.*\b(?:ERROR|Error|error)\b:?\s*(.+)$", text, re.MULTILINE)  # the specific one last
        hint = f" (last error: {errors[-1].strip()})" if errors else " (the run failed or the output is truncated)"
        raise ParseError(f"{source} has no '{TIMINGS}' line{hint}")
    timings = {k.strip(): float(v) for k, v in re.findall(rf"([A-Za-z ()]+):\s*({NUMBER})", m.group(1))}
    if "Inference (avg)" not in timings:
        raise ParseError(f"{source}: the '{TIMINGS}' line lacks 'Inference (avg)': the output is truncated")
    # The last count= line before the timings line is the timed run (the first one is the warm-up).
    stat_lines = re.findall(r"count=\d+.*$", text[:m.start()], re.MULTILINE)
    if not stat_lines:
        raise ParseError(f"{source} has no 'count=... avg=...' statistics line: the output is truncated")
    stats = fields(stat_lines[-1])
    missing = [k for k in ("count", "min", "avg") if k not in stats]
    if missing:
        raise ParseError(f"{source}: the statistics line lacks {', '.join(missing)}: the output is truncated")
    applied = re.search(r"Explicitly applied (\S+) delegate, and the model graph will be (completely|partially) "
                        r"executed by the delegate(?: w/ (\d+) delegate kernels)?", text)
    delegate, full, kernels = None, None, None
    if applied:
        delegate, full = applied.group(1), applied.group(2) == "completely"
        kernels = int(applied.group(3)) if applied.group(3) else 1
    else:
        for flag, name in (("Use gpu", "GPU"), ("Use NNAPI", "NNAPI"), ("Use nnapi", "NNAPI"), ("Use xnnpack", "XNNPACK")):
            if _param(text, flag) in ("1", "true"):
                delegate = f"{name} (requested; the log does not say it was applied)"
                break
    if re.search(r"Failed to apply .*delegate|delegate .*(is )?not supported", text, re.IGNORECASE):
        failed = re.search(r"^.*(Failed to apply .*delegate.*|delegate .*not supported.*)$", text, re.MULTILINE | re.IGNORECASE)
        delegate = f"{delegate or 'delegate'} failed: {failed.group(1).strip() if failed else 'see log'}"
    threads = _param(text, "Num threads", "#threads used for CPU inference")
    graph = _param(text, "Graph")
    us = 1e-3
    return {
        "tool": "benchmark_model",
        "graph": graph,
        "threads": int(threads) if threads and threads.lstrip("-").isdigit() else None,
        "delegate": delegate,
        "fully_delegated": full,
        "delegate_kernels": kernels,
        "latency": {"median_ms": stats["median"] * us if "median" in stats else None, "p90_ms": None,
                    "min_ms": stats["min"] * us, "mean_ms": stats["avg"] * us,
                    "max_ms": stats["max"] * us if "max" in stats else None,
                    "std_ms": stats["std"] * us if "std" in stats else None,
                    "runs": int(stats["count"]), "warmup": None},
        "init_ms": timings["Init"] * us if "Init" in timings else None,
        "first_inference_ms": timings["First inference"] * us if "First inference" in timings else None,
        "throughput_ips": 1e6 / timings["Inference (avg)"] if timings["Inference (avg)"] > 0 else None,
        "model_size_mb": float(s.group(1)) if (s := re.search(rf"input model file size \(MB\):\s*({NUMBER})", text)) else None,
    }


def to_row(parsed: dict, artifact: str, precision: str, device: str | None = None, runtime: str = "benchmark_model",
           **extra) -> dict:
    notes = ["latency: benchmark_model on random inputs, its own protocol; accuracy is not measured by it"]
    if parsed["latency"]["median_ms"] is None:
        notes.append("this benchmark_model printed no median: compare mean_ms")
    placement = None
    if parsed.get("fully_delegated") is not None:
        placement = {"delegate": parsed["delegate"], "fully_delegated": parsed["fully_delegated"],
                     "partitions": parsed["delegate_kernels"]}
    row = {"artifact": artifact, "format": "tflite", "precision": precision, "runtime": runtime,
           "provider": parsed.get("delegate") or "CPU (builtin kernels)", "device": device,
           "threads": parsed.get("threads"), "batch": 1, "status": "ok", "latency": parsed["latency"],
           "throughput": {"batch": 1, "images_per_s": parsed["throughput_ips"]}, "placement": placement,
           "init_ms": parsed.get("init_ms"), "role": "artifact", "notes": notes}
    row.update(extra)
    return row
