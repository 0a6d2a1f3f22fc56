"""The machine's roofline, measured in the same run as the profile: peak MAC rates and memory bandwidth.

Peaks come from ``edgederm.peak`` (dense fp32 GEMM through torch, int8 ``MatMulInteger`` through ONNX
Runtime). Bandwidth is the best of repeated ``numpy.copyto`` of a buffer far larger than the last-level
cache (read + write bytes per second). An operator with ``a`` MACs per byte moved can at best run
at ``min(peak, a x bandwidth)``: its place against the roof is its measured rate over that bound.
"""

from __future__ import annotations

import time


def memory_bandwidth(mbytes: int = 256, seconds: float = 1.0) -> float:
    """GB/s of a large buffer copy (counted as bytes read + bytes written), best of repeated copies."""
    import numpy as np

    src = np.ones(mbytes * 2**20 // 4, dtype=np.float32)
    dst = np.empty_like(src)
    np.copyto(dst, src)
    best, start = float("inf"), time.perf_counter()
    while time.perf_counter() - start < seconds:
        t0 = time.perf_counter()
        np.copyto(dst, src)
        best = min(best, time.perf_counter() - t0)
    return round(2 * src.nbytes / best / 1e9, 2)


def ort_fp32_rate(threads: int, size: int = 1024, seconds: float = 1.0) -> float | None:
    """GMAC/s of ONNX Runtime's fp32 MatMul (MLAS): on AMD CPUs torch's MKL GEMM can sit well below the
    machine's fp32 peak (runtimes here beat it), so the fp32 peak is the better of the two libraries."""
    try:
        import numpy as np
        import onnxruntime as ort
        from onnx import TensorProto, helper
    except ImportError:
        return None
    from edgederm.peak import _best_rate

    graph = helper.make_graph([helper.make_node("MatMul", ["a", "b"], ["y"])], "gemm",
                              [helper.make_tensor_value_info(n, TensorProto.FLOAT, [size, size]) for n in "ab"],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [size, size])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    opts = ort.SessionOptions()
    opts.intra_op_num_threads, opts.inter_op_num_threads = threads, 1
    session = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    feed = {n: rng.standard_normal((size, size)).astype(np.float32) for n in "ab"}
    return round(_best_rate(lambda: session.run(None, feed), float(size) ** 3, seconds) / 1e9, 2)


def measure(threads: int) -> dict:
    """{"fp32_gmacs", "int8_gmacs", "bandwidth_gbs", "note"} for ``threads`` threads."""
    from edgederm.peak import peak_mac_rate

    peak = peak_mac_rate(threads)
    ort_fp32 = ort_fp32_rate(threads)
    return {"fp32_gmacs": max(peak["fp32"], ort_fp32 or 0), "fp32_torch_gmacs": peak["fp32"], "fp32_ort_gmacs": ort_fp32,
            "int8_gmacs": peak.get("int8"), "bandwidth_gbs": memory_bandwidth(),
            "note": "peaks: best dense 1024^3 GEMM (fp32: the better of torch and ORT MLAS; int8: ORT MatMulInteger "
                    "u8s8); bandwidth: single-thread numpy copy, read + write"}


def best_of(a: dict, b: dict) -> dict:
    """Field-wise best of two measurements (load from elsewhere only ever lowers a peak)."""
    out = dict(a)
    for k in ("fp32_gmacs", "fp32_torch_gmacs", "fp32_ort_gmacs", "int8_gmacs", "bandwidth_gbs"):
        vals = [v for v in (a.get(k), b.get(k)) if v]
        out[k] = max(vals) if vals else None
    out["note"] = a.get("note", "") + "; best of two measurements, before and after the profiles"
    return out


def bound(macs: int | None, nbytes: int | None, integer: bool, roof: dict) -> float | None:
    """The roofline bound (GMAC/s) of an operator moving ``nbytes`` for ``macs``; None without both."""
    peak = roof.get("int8_gmacs") if integer and roof.get("int8_gmacs") else roof.get("fp32_gmacs")
    if not macs or not nbytes or not peak or not roof.get("bandwidth_gbs"):
        return None
    return min(peak, macs / nbytes * roof["bandwidth_gbs"])
