"""LiteRT: which operators XNNPACK took (partitions, fallbacks, Q/DQ, transposes), with MACs and bytes.

The ``ai-edge-litert`` Python interpreter exposes no per-operator timer (TFLite's op profiler is
reached only through the C++ ``benchmark_model --enable_op_profiling=true``), so this profiler
reports coverage, MACs and bytes per operator and the whole-graph time, and says per-op time is
missing. Delegation is read from the interpreter after XNNPACK has been applied: each ``DELEGATE``
node is one partition; the original nodes it replaced are those reached walking back from its
outputs to its inputs.
"""

from __future__ import annotations

import math

import numpy as np

from edgederm.profilers import DEQUANTIZE, QUANTIZE, TRANSPOSE

INTEGER = (np.int8, np.uint8, np.int16)


def _nbytes(t: dict | None) -> int:
    if t is None or len(t.get("shape", [])) == 0:
        return 0
    return int(np.prod(t["shape"])) * np.dtype(t["dtype"]).itemsize


def op_macs(op: dict, tensors: dict) -> int | None:
    """MACs of one TFLite operator at its tensor shapes; 0 for operators without multiply-accumulates."""
    name = op["op_name"]
    shape = lambda i: list(tensors[i]["shape"]) if i in tensors and len(tensors[i]["shape"]) else None  # noqa: E731
    ins, outs = [int(i) for i in op["inputs"]], [int(i) for i in op["outputs"]]
    out = shape(outs[0]) if outs else None
    if name in ("CONV_2D", "CONV_3D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "BATCH_MATMUL"):
        w = shape(ins[1]) if len(ins) > 1 and ins[1] >= 0 else None
        if not out or not w:
            return None
        if name == "DEPTHWISE_CONV_2D":  # filter [1, kh, kw, C x multiplier]
            return math.prod(out) * w[1] * w[2]
        if name in ("FULLY_CONNECTED", "BATCH_MATMUL"):
            a = shape(ins[0])
            return math.prod(out) * (a[-1] if a else w[-1])
        return math.prod(out) * math.prod(w[1:])  # CONV_2D filter [Cout, kh, kw, Cin/groups]
    if name == "TRANSPOSE_CONV":  # inputs: output_shape, filter [Cout, kh, kw, Cin], input
        w, a = shape(ins[1]), shape(ins[2])
        return math.prod(a) * w[0] * w[1] * w[2] if w and a else None
    return 0


def _kind(op: dict) -> str:
    name = op["op_name"]
    if name in DEQUANTIZE and op.get("operand_types") and np.dtype(op["operand_types"][0]) == np.float16:
        return "fp16 weights"  # fp16 -> fp32 constants: folded at load time, not an int8 boundary
    if name in QUANTIZE or name in DEQUANTIZE:
        return "boundary"
    if name in TRANSPOSE:
        return "layout"
    types = list(op.get("operand_types", [])[:1]) + list(op.get("result_types", []))
    return "int8" if types and all(np.dtype(t).type in INTEGER for t in types) else "float"


def delegated(ops: list[dict]) -> dict[int, int]:
    """original node index -> partition number, for the nodes each DELEGATE node replaced."""
    producer = {int(t): op["index"] for op in ops if op["op_name"] != "DELEGATE" for t in op["outputs"]}
    by_index = {op["index"]: op for op in ops}
    owner: dict[int, int] = {}
    for part, d in enumerate(op for op in ops if op["op_name"] == "DELEGATE"):
        boundary = {int(t) for t in d["inputs"]}
        stack = [int(t) for t in d["outputs"]]
        while stack:
            t = stack.pop()
            node = producer.get(t)
            if t in boundary or node is None or node in owner:
                continue
            owner[node] = part
            stack += [int(i) for i in by_index[node]["inputs"] if int(i) >= 0]
    return owner


def coverage(ops: list[dict], owner: dict[int, int]) -> dict:
    original = [op for op in ops if op["op_name"] != "DELEGATE"]
    fallback: dict[str, int] = {}
    for op in original:
        if op["index"] not in owner:
            fallback[op["op_name"]] = fallback.get(op["op_name"], 0) + 1
    return {"source_nodes": len(original), "delegated_nodes": len(owner), "fallback_nodes": len(original) - len(owner),
            "fallback_ops": fallback, "partitions": sum(op["op_name"] == "DELEGATE" for op in ops),
            "quantize": sum(op["op_name"] in QUANTIZE for op in original),
            "dequantize": sum(op["op_name"] in DEQUANTIZE and _kind(op) == "boundary" for op in original),
            "fp16_weight_dequantize": sum(_kind(op) == "fp16 weights" for op in original),
            "int8_float_boundaries": sum(_kind(op) == "boundary" for op in original),
            "transposes": sum(op["op_name"] == "TRANSPOSE" for op in original),
            "int8_nodes": sum(_kind(op) == "int8" for op in original),
            "float_nodes": sum(_kind(op) == "float" for op in original)}


def profile(path, x, threads: int = 1, runs: int = 20, warmup: int = 5, rounds: int = 1, between=None) -> dict:
    """Coverage, MACs and bytes of every operator; per-operator time is ``None`` (see the module note), so
    nothing is run here (``runs``, ``rounds`` and ``between`` are unused: the caller times the artifact)."""
    from device_bench.runners.litert_runner import Runner

    runner = Runner(str(path), threads=threads)  # XNNPACK applied, as bench runs it
    it = runner.interpreter
    ops = it._get_ops_details()  # the interpreter's only listing of nodes (delegate nodes included)
    tensors = {t["index"]: t for t in it.get_tensor_details()}
    owner = delegated(ops)
    nodes = [{"name": f"{op['op_name']}_{op['index']}", "op": op["op_name"], "ms": None,
              "macs": op_macs(op, tensors), "kind": _kind(op),
              "provider": "XNNPACK" if op["index"] in owner else "builtin (fallback)",
              "bytes": sum(_nbytes(tensors.get(int(i))) for i in list(op["inputs"]) + list(op["outputs"]) if int(i) >= 0)}
             for op in ops if op["op_name"] != "DELEGATE"]
    return {"runtime": runner.runtime, "provider": runner.delegate, "nodes": nodes, "coverage": coverage(ops, owner),
            "status": "no_op_timing",
            "timing": "none per operator: the ai-edge-litert Python interpreter has no op profiler; "
                      "run TFLite's benchmark_model --enable_op_profiling=true on the device for it"}
