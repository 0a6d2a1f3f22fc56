"""The PyTorch original under ``torch.profiler``: self CPU time per aten operator, MACs from its FLOP counter.

Self time (time inside an op minus its children) sums to the time spent in operators without
double counting ``aten::conv2d`` -> ``aten::convolution`` -> ``aten::mkldnn_convolution``. torch's
FLOP counter covers convolutions and matrix products (MACs = FLOPs / 2); bytes are not computed.
"""

from __future__ import annotations

from edgederm.profilers import blocks, kind


FAMILIES = (("conv", "aten::convolution (all levels)"), ("addmm", "aten::linear/matmul (all levels)"),
            ("aten::mm", "aten::linear/matmul (all levels)"), ("matmul", "aten::linear/matmul (all levels)"),
            ("linear", "aten::linear/matmul (all levels)"))


def family(op: str) -> str:
    """One row for an operator and the aten calls beneath it (FLOPs sit on the top call, time on the bottom one)."""
    return next((name for key, name in FAMILIES if key in op), op)


def profile(fn, x, threads: int = 1, runs: int = 20, warmup: int = 5, rounds: int = 1, between=None) -> dict:
    """Profile ``runs`` calls of ``fn(x)`` (the bench's own eager callable) after ``warmup`` untimed ones, in
    ``rounds`` blocks with ``between()`` before each (where the caller times the plain callable). Times are
    means over all profiled calls (torch keeps no per-call totals)."""
    import torch
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    torch.set_num_threads(threads)
    for _ in range(warmup):
        fn(x)
    groups: dict[str, dict] = {}
    for block in blocks(runs, rounds):
        if between:
            between()
        with torch_profile(activities=[ProfilerActivity.CPU], with_flops=True) as prof:
            for _ in range(block):
                fn(x)
        for ev in prof.key_averages():
            flops = getattr(ev, "flops", 0) or 0
            if not ev.key.startswith("aten::") or (ev.self_cpu_time_total <= 0 and not flops):
                continue
            op = family(ev.key)
            g = groups.setdefault(op, {"name": op, "op": op, "ms": 0.0, "count": 0, "macs": 0, "bytes": None,
                                       "provider": "eager CPU", "kind": kind(ev.key)})
            g["ms"] += ev.self_cpu_time_total / 1e3 / runs
            g["count"] = max(g["count"], round(ev.count / block))  # conv2d -> convolution -> ...: one call each
            g["macs"] = max(g["macs"], int(flops / 2 / block))
    nodes = list(groups.values())
    return {"runtime": f"torch {torch.__version__}", "provider": "eager CPU", "nodes": nodes, "status": "ok",
            "coverage": {"aten_ops": sum(n["count"] for n in nodes),
                         "layout_ops": sum(n["count"] for n in nodes if n["kind"] == "layout")},
            "timing": "torch.profiler self CPU time per aten op"}
