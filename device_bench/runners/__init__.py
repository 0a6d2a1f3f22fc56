"""Runtimes that execute one artifact, registered by name; each imports its runtime lazily."""

from __future__ import annotations

import importlib
from dataclasses import dataclass

import numpy as np


class RunnerUnavailable(RuntimeError):
    """The runtime this artifact needs is not importable or not supported on this platform."""


@dataclass(frozen=True)
class RunnerInfo:
    name: str
    format: str
    module: str
    runtime: str  # package that must be importable


RUNNERS: dict[str, RunnerInfo] = {
    "onnxruntime": RunnerInfo("onnxruntime", "onnx", "device_bench.runners.onnxruntime_runner", "onnxruntime"),
    "litert": RunnerInfo("litert", "tflite", "device_bench.runners.litert_runner", "ai_edge_litert | tflite_runtime"),
    "coreml": RunnerInfo("coreml", "coreml", "device_bench.runners.coreml_runner", "coremltools (macOS)"),
    "executorch": RunnerInfo("executorch", "executorch", "device_bench.runners.executorch_runner", "executorch"),
    "tensorrt": RunnerInfo("tensorrt", "onnx", "device_bench.runners.tensorrt_runner", "tensorrt + cuda-python"),
}
DEFAULT_FOR_FORMAT = {"onnx": "onnxruntime", "tflite": "litert", "coreml": "coreml", "executorch": "executorch",
                      "executorch_coreml": "executorch"}


def open_runner(path, fmt: str, runner: str | None = None, threads: int | None = None, **options):
    """A loaded runner for the artifact at ``path``; ``RunnerUnavailable`` says why when it cannot run here."""
    name = runner or DEFAULT_FOR_FORMAT.get(fmt)
    if name not in RUNNERS:
        raise ValueError(f"no runner for format {fmt!r} (known: {', '.join(RUNNERS)})")
    module = importlib.import_module(RUNNERS[name].module)
    return module.Runner(str(path), threads=threads, **options)


def run_batched(runner, x: np.ndarray, batch_size: int = 1) -> np.ndarray:
    """Outputs for every item of ``x`` (leading dim N), ``batch_size`` at a time (1 for static-shape files)."""
    outs = [runner(x[i:i + batch_size]) for i in range(0, len(x), batch_size)]
    return np.concatenate(outs)
