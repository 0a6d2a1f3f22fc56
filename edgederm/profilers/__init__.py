"""Per-operator profilers, one per runtime, registered by artifact format; each imports its runtime lazily.

A profiler is ``profile(path, x, threads, runs) -> dict`` with keys ``nodes`` (one dict per executed
node per inference: op, ms, macs, bytes, provider, kind), ``runtime``, ``coverage`` and, where the
runtime times nothing per operator, ``status: "no_op_timing"`` and a ``reason``.
"""

from __future__ import annotations

from edgederm.registry import Registry, lazy

PROFILERS: Registry = Registry("profiler")
PROFILERS.register("onnx", lazy("edgederm.profilers.ort_ops:profile"))
PROFILERS.register("tflite", lazy("edgederm.profilers.litert_ops:profile"))
PROFILERS.register("torch", lazy("edgederm.profilers.torch_ops:profile"))

# how each op is classed in the coverage counts (ONNX, TFLite and aten names)
QUANTIZE = {"QuantizeLinear", "DynamicQuantizeLinear", "QUANTIZE", "aten::quantize_per_tensor"}
DEQUANTIZE = {"DequantizeLinear", "DEQUANTIZE", "aten::dequantize"}
TRANSPOSE = {"Transpose", "ReorderInput", "ReorderOutput", "TRANSPOSE", "aten::permute", "aten::contiguous",
             "aten::copy_", "aten::clone"}


def kind(op: str) -> str:
    """int8 / boundary (Q or DQ) / layout (transposes, reorders) / float."""
    if op in QUANTIZE or op in DEQUANTIZE:
        return "boundary"
    if op in TRANSPOSE:
        return "layout"
    if op.startswith("QLinear") or op.endswith("Integer") or op in ("QGemm", "MatMulIntegerToFloat",
                                                                     "DynamicQuantizeMatMul", "QAttention"):
        return "int8"
    return "float"


def blocks(runs: int, rounds: int) -> list[int]:
    """``runs`` split into ``rounds`` nearly equal blocks (none empty)."""
    rounds = max(1, min(rounds, runs))
    return [runs // rounds + (i < runs % rounds) for i in range(rounds)]
