"""``trtexec`` output (TensorRT 8.x-10.x) -> a results row.

What is read (format of ``trtexec``'s log, see tests/fixtures/README.md)::

    &&&& RUNNING TensorRT.trtexec [TensorRT v100300] # trtexec --onnx=model.onnx --fp16 ...
    [I] Precision: FP32+FP16                       (build options)
    [I] Selected Device: Orin                      (device information)
    [I] TensorRT version: 10.3.0
    [I] === Performance summary ===
    [I] Throughput: 812.3 qps
    [I] Latency: min = 1.1 ms, max = 2.0 ms, mean = 1.2 ms, median = 1.2 ms, percentile(90%) = 1.3 ms, ...
    [I] GPU Compute Time: min = ..., median = ..., percentile(90%) = ...
    &&&& PASSED TensorRT.trtexec [TensorRT v100300] # trtexec ...

``Latency`` is host latency (input copy + compute + output copy), the figure comparable with
an ONNX Runtime or LiteRT call; ``GPU Compute Time`` is kept beside it.
"""

from __future__ import annotations

import re

from device_bench.parsers import ParseError, fields

SUMMARY = "=== Performance summary ==="


def _stat_line(summary: str, name: str) -> dict[str, float] | None:
    m = re.search(rf"\]\s*{re.escape(name)}:\s*(.+)$", summary, re.MULTILINE) or \
        re.search(rf"^\s*{re.escape(name)}:\s*(.+)$", summary, re.MULTILINE)
    return fields(m.group(1)) if m else None


def _latency(stats: dict[str, float], source: str, name: str) -> dict:
    missing = [k for k in ("min", "mean", "median") if k not in stats]
    if missing:
        raise ParseError(f"{source}: the '{name}' line lacks {', '.join(missing)}: output cut short or not from trtexec")
    return {"median_ms": stats["median"], "p90_ms": stats.get("percentile(90%)"), "min_ms": stats["min"],
            "mean_ms": stats["mean"], "max_ms": stats.get("max"), "p99_ms": stats.get("percentile(99%)")}


def precision_of(command: str, build_precision: str | None) -> str:
    flags = set(re.findall(r"--(int8|fp16|best|bf16|fp8)\b", command))
    text = (build_precision or "").upper()
    if {"int8", "best"} & flags or "INT8" in text:
        return "int8"
    if "fp16" in flags or "FP16" in text:
        return "fp16"
    return "fp32"


def parse(text: str, source: str = "trtexec output") -> dict:
    """The figures of one trtexec run; ``ParseError`` for a failed, truncated or foreign log."""
    if not text.strip():
        raise ParseError(f"{source} is empty: run trtexec again and keep its whole output")
    failed = re.search(r"^&&&& FAILED .*$", text, re.MULTILINE)
    if failed:
        errors = re.findall(r"\[E\]\s*(.+)$", text, re.MULTILINE)
        raise ParseError(f"{source}: trtexec failed" + (f": {errors[-1].strip()}" if errors else ""))
    if SUMMARY not in text:
        raise ParseError(f"{source} has no '{SUMMARY}': the run was cut short or the engine was not built")
    if not re.search(r"^&&&& PASSED", text, re.MULTILINE):
        raise ParseError(f"{source} ends before trtexec's final '&&&& PASSED' line: the output is truncated")
    summary = text[text.index(SUMMARY):]
    latency = _stat_line(summary, "Latency")
    if latency is None:
        raise ParseError(f"{source}: the performance summary has no 'Latency:' line (output truncated?)")
    throughput = re.search(r"Throughput:\s*([\d.eE+-]+)\s*qps", summary)
    if throughput is None:
        raise ParseError(f"{source}: the performance summary has no 'Throughput: N qps' line (output truncated?)")
    running = re.search(r"^&&&& RUNNING TensorRT\.trtexec \[TensorRT (v\d+)\][^#]*#\s*(.+)$", text, re.MULTILINE)
    command = running.group(2).strip() if running else ""
    build = re.search(r"\]\s*Precision:\s*(\S+)", text)
    version = re.search(r"TensorRT version:\s*([\d.]+)", text)
    device = re.search(r"Selected Device:\s*(.+)$", text, re.MULTILINE)
    dla = re.search(r"\]\s*DLACore:\s*(\d+)\s*$", text, re.MULTILINE)
    engine = re.search(r"--saveEngine=(\S+)", command) or re.search(r"--loadEngine=(\S+)", command)
    gpu = _stat_line(summary, "GPU Compute Time")
    return {
        "tool": "trtexec",
        "version": version.group(1) if version else (running.group(1) if running else None),
        "command": command,
        "precision": precision_of(command, build.group(1) if build else None),
        "build_precision": build.group(1) if build else None,
        "device": device.group(1).strip() if device else None,
        "dla_core": int(dla.group(1)) if dla else None,
        "engine": engine.group(1) if engine else None,
        "latency": _latency(latency, source, "Latency"),
        "gpu_compute": _latency(gpu, source, "GPU Compute Time") if gpu else None,
        "throughput_qps": float(throughput.group(1)),
    }


def to_row(parsed: dict, artifact: str, device: str | None = None, batch: int = 1, **extra) -> dict:
    """A results row (``device_bench.results`` schema) for a parsed trtexec run."""
    notes = ["latency: trtexec host latency (H2D + compute + D2H), its own protocol (warm-up 200 ms, >= 3 s of runs)"]
    if parsed["latency"]["p90_ms"] is None:
        notes.append("this trtexec printed no 90th percentile")
    if parsed["precision"] == "int8" and "--calib" not in parsed["command"]:
        notes.append("int8 without a calibration cache: TensorRT used placeholder ranges; latency only, "
                     "outputs are not meaningful")
    provider = f"DLA:{parsed['dla_core']}" if parsed.get("dla_core") is not None else "GPU"
    row = {"artifact": artifact, "format": "tensorrt", "precision": parsed["precision"], "path": parsed.get("engine"),
           "runtime": f"TensorRT {parsed['version']} (trtexec)" if parsed.get("version") else "TensorRT (trtexec)",
           "provider": provider, "device": device, "threads": None, "batch": batch, "status": "ok",
           "latency": {**parsed["latency"], "runs": None, "warmup": None},
           "throughput": {"batch": batch, "images_per_s": parsed["throughput_qps"] * batch},
           "role": "artifact", "notes": notes}
    if parsed.get("gpu_compute"):
        row["latency_gpu_compute"] = parsed["gpu_compute"]
    row.update(extra)
    return row
