"""ONNX Runtime's own profiler (``SessionOptions.enable_profiling``): per-node kernel time, as ORT ran it.

The profile lists the graph ORT executed after its optimisations: fused ops (``FusedConv``,
``QLinearConv`` for a QDQ-wrapped Conv), layout conversions it inserted (``ReorderInput`` /
``ReorderOutput`` around NCHWc convolutions) and the provider of each node. MACs come from each
executed node's recorded shapes (a padded NCHWc convolution counts the MACs it actually computes);
bytes are the node's activation + parameter + output sizes as ORT reports them (prepacked weights
read from ORT's own buffers are not in ``parameter_size``).
"""

from __future__ import annotations

import json
import math
import os
import re
import tempfile

from edgederm.profilers import blocks, kind
from edgederm.profilers.onnx_cost import canonical, graph_cost


def _dims(entry: dict) -> list[int] | None:
    return next(iter(entry.values()), None) if isinstance(entry, dict) and entry else None


def event_macs(op: str, args: dict) -> int | None:
    """MACs of one executed node from the shapes in its profile event; 0 for non-MAC ops."""
    c = canonical(op)
    if c not in ("Conv", "MatMul", "Gemm"):
        return 0
    ins = [_dims(e) for e in args.get("input_type_shape", [])]
    outs = [_dims(e) for e in args.get("output_type_shape", [])]
    out = outs[0] if outs else None
    if not out or not ins or not ins[0]:
        return None
    if c == "Conv":
        w_index = 3 if op == "QLinearConv" else 1
        w = ins[w_index] if len(ins) > w_index else None
        return math.prod(out) * math.prod(w[1:]) if w and len(w) >= 3 else None  # prepacked: shape [] or lost
    return math.prod(out) * ins[0][-1]


def _session(path, threads: int, profile_dir: str | None):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads, opts.inter_op_num_threads = threads, 1
    if profile_dir:
        opts.enable_profiling = True
        opts.profile_file_prefix = os.path.join(profile_dir, "ort")
    return ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])


def middle_runs(totals: list[float]) -> list[int]:
    """Indices of the middle half of runs by total time (at least one): robust to runs stalled by load
    from elsewhere, and unlike per-node medians their node times still add up to a real run's total."""
    order = sorted(range(len(totals)), key=totals.__getitem__)
    q = len(order) // 4
    return sorted(order[q: len(order) - q] or order)


def read_profile(events: list[dict], runs: int) -> tuple[list[dict], float]:
    """Per-node mean over the middle half (by total) of the last ``runs`` model runs:
    [{name, op, ms, macs, bytes, provider, kind}], and those runs' mean ``model_run`` wall time (ms)."""
    model_runs = [e for e in events if e.get("name") == "model_run"]
    if len(model_runs) < runs:
        raise ValueError(f"the ORT profile holds {len(model_runs)} model runs, {runs} expected")
    model_runs = model_runs[-runs:]
    bounds = [(r["ts"], r["ts"] + r["dur"]) for r in model_runs]
    per_run: list[dict[str, float]] = [{} for _ in model_runs]
    nodes: dict[str, dict] = {}
    for e in events:
        if e.get("cat") != "Node" or not e.get("name", "").endswith("_kernel_time"):
            continue
        k = next((i for i, (a, b) in enumerate(bounds) if a <= e["ts"] <= b), None)
        if k is None:
            continue
        args = e.get("args", {})
        op, name = args.get("op_name", "?"), e["name"][: -len("_kernel_time")]
        out = [_dims(x) for x in args.get("output_type_shape", [])]
        nodes.setdefault(name, {
            "op": op, "macs": event_macs(op, args), "provider": args.get("provider", "?"), "kind": kind(op),
            "bytes": sum(int(args.get(f, 0) or 0) for f in ("activation_size", "parameter_size", "output_size")),
            "out_elements": math.prod(out[0]) if out and out[0] else 0})
        per_run[k][name] = per_run[k].get(name, 0.0) + e["dur"] / 1e3
    keep = middle_runs([sum(r.values()) for r in per_run])
    rows = [{"name": name, **n, "ms": sum(per_run[k].get(name, 0.0) for k in keep) / len(keep)}
            for name, n in nodes.items()]
    wall = sum(model_runs[k]["dur"] for k in keep) / 1e3 / len(keep)
    return rows, wall


def fill_macs(nodes: list[dict], source: dict) -> None:
    """Where ORT prepacked a weight its shape is not in the profile (``QLinearConv``). A node that kept
    its source name: its output elements x the source weight's kernel volume (exact). Others: the
    source graph's MACs of their op type not yet attributed, spread by output size (exact per op
    type, an estimate per node; only where shape inference completed that op type)."""
    for n in nodes:  # ORT's NHWC transformer renames what it rewrites "<name>_token_<k>"
        w = source["weights"].get(n["name"]) or source["weights"].get(re.sub(r"_token_\d+$", "", n["name"]))
        if n["macs"] is None and canonical(n["op"]) in ("Conv", "ConvTranspose") and w and n["out_elements"]:
            n["macs"] = n["out_elements"] * math.prod(w[1:])
    for op, total in source["macs"].items():
        if op in source.get("macs_incomplete_ops", ()):
            continue
        missing = [n for n in nodes if canonical(n["op"]) == op and n["macs"] is None]
        if not missing:
            continue
        known = sum(n["macs"] for n in nodes if canonical(n["op"]) == op and n["macs"] is not None)
        rest, weight = max(total - known, 0), sum(n["out_elements"] for n in missing)
        for n in missing:
            n["macs"] = round(rest * n["out_elements"] / weight) if weight else None
            n["macs_source"] = "source graph, spread by output size"


def coverage(nodes: list[dict], source: dict) -> dict:
    """Which executed nodes ran where, and what the graph spends on int8<->float boundaries and layout."""
    providers: dict[str, int] = {}
    partitions, last = 0, None
    for n in nodes:  # profile order is execution order: a change of provider starts a new partition
        providers[n["provider"]] = providers.get(n["provider"], 0) + 1
        partitions += n["provider"] != last
        last = n["provider"]
    kinds = {k: sum(n["kind"] == k for n in nodes) for k in ("int8", "float", "boundary", "layout")}
    return {"executed_nodes": len(nodes), "source_nodes": source["nodes"], "providers": providers,
            "partitions": partitions, "int8_nodes": kinds["int8"], "float_nodes": kinds["float"],
            "quantize": sum(n["op"] in ("QuantizeLinear", "DynamicQuantizeLinear") for n in nodes),
            "dequantize": sum(n["op"] == "DequantizeLinear" for n in nodes),
            "int8_float_boundaries": kinds["boundary"], "layout_nodes": kinds["layout"],
            "source_qdq_pairs": source["qdq_pairs"], "source_transposes": source["transposes"]}


def profile(path, x, threads: int = 1, runs: int = 20, warmup: int = 5, rounds: int = 1, between=None) -> dict:
    """Profile ``runs`` inferences of ``x`` (the artifact's own input form) after ``warmup`` untimed ones,
    in ``rounds`` blocks with ``between()`` called before each (the caller times the plain artifact there,
    so that the profile and the plain timing see the same load from elsewhere)."""
    import onnxruntime as ort

    with tempfile.TemporaryDirectory(prefix="edgederm-ortprof-") as tmp:
        session = _session(path, threads, tmp)
        inp = session.get_inputs()[0]
        feed = {inp.name: x.astype("float32", copy=False) if inp.type == "tensor(float)" else x}
        for _ in range(warmup):
            session.run(None, feed)
        for block in blocks(runs, rounds):
            if between:
                between()
            for _ in range(block):
                session.run(None, feed)
        with open(session.end_profiling()) as f:
            events = json.load(f)
    nodes, wall = read_profile(events, runs)
    source = graph_cost(path)
    fill_macs(nodes, source)
    return {"runtime": f"onnxruntime {ort.__version__}", "provider": "CPUExecutionProvider", "nodes": nodes,
            "profile_wall_ms": wall, "coverage": coverage(nodes, source),
            "graph_macs": None if source["macs_incomplete_ops"] else sum(source["macs"].values()),
            "status": "ok", "timing": "ORT profiler (SessionOptions.enable_profiling), per-node kernel time"}
