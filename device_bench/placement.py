"""Where the ops of a model actually ran, as far as the runtime tells.

Partial delegation is a silent latency killer on devices (a GPU/NPU delegate that takes 90 % of
the graph and hands the rest back to the CPU), so each row records it:

- ONNX Runtime: one profiled inference; every kernel event names its execution provider.
  Counts are of kernels after graph optimisation (fused nodes count once; a TensorRT
  subgraph is one kernel), not of ONNX nodes.
- LiteRT: the interpreter appends one DELEGATE node per delegated partition; the original
  nodes it replaced are found by walking back from each partition's outputs to its inputs.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections import Counter

import numpy as np


def onnxruntime_placement(path: str, providers: list[str], x: np.ndarray, threads: int | None = None) -> dict:
    import onnxruntime as ort

    with tempfile.TemporaryDirectory() as tmp:
        opts = ort.SessionOptions()
        opts.enable_profiling = True
        opts.profile_file_prefix = os.path.join(tmp, "ort_profile")
        if threads:
            opts.intra_op_num_threads = threads
        session = ort.InferenceSession(path, sess_options=opts, providers=providers)
        inp = session.get_inputs()[0]
        session.run(None, {inp.name: x.astype(np.float32, copy=False)})
        with open(session.end_profiling()) as f:
            events = json.load(f)
    kernels: dict[str, tuple[str, str]] = {}
    for e in events:
        if e.get("cat") == "Node" and "provider" in e.get("args", {}):
            kernels[e["name"]] = (e["args"]["provider"], e["args"].get("op_name", "?"))
    by_provider = Counter(p for p, _ in kernels.values())
    cpu = "CPUExecutionProvider"
    accelerated = sum(n for p, n in by_provider.items() if p != cpu)
    fallback = sorted(Counter(op for p, op in kernels.values() if p == cpu).items()) if accelerated or providers[0] != cpu else []
    return {"accelerated_ops": accelerated, "total_ops": len(kernels), "by_provider": dict(by_provider),
            "fallback": [f"{op} x{n}" for op, n in fallback], "unit": "kernels after ORT graph optimisation"}


def litert_placement(interpreter) -> dict | None:
    """Delegated vs total nodes of an allocated LiteRT interpreter; None when the binding does not expose nodes."""
    raw = getattr(interpreter, "_interpreter", None)
    if raw is None or not hasattr(raw, "NumNodes"):
        return None
    n = raw.NumNodes()
    names = [raw.NodeName(i) for i in range(n)]
    delegates = [i for i, name in enumerate(names) if name == "DELEGATE"]
    original = [i for i in range(n) if names[i] != "DELEGATE"]
    producer = {}
    for i in original:
        for t in raw.NodeOutputs(i):
            producer[int(t)] = i
    delegated: set[int] = set()
    for d in delegates:
        boundary = {int(t) for t in raw.NodeInputs(d)}
        stack = [int(t) for t in raw.NodeOutputs(d)]
        seen: set[int] = set()
        while stack:
            t = stack.pop()
            if t in seen or t in boundary or t not in producer:
                continue
            seen.add(t)
            node = producer[t]
            if node not in delegated:
                delegated.add(node)
                stack.extend(int(u) for u in raw.NodeInputs(node) if u >= 0)
    left = Counter(names[i] for i in original if i not in delegated)
    return {"accelerated_ops": len(delegated), "total_ops": len(original), "partitions": len(delegates),
            "fallback": [f"{op} x{k}" for op, k in sorted(left.items())], "unit": "TFLite nodes"}
