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


def measure(threads: int) -> dict:
    """{"fp32_gmacs", "int8_gmacs", "bandwidth_gbs", "note"} for ``threads`` threads."""
    from edgederm.peak import peak_mac_rate

    peak = peak_mac_rate(threads)  # fp32: the better of torch and ORT MLAS
    return {"fp32_gmacs": peak["fp32"], "fp32_torch_gmacs": peak["fp32_torch"], "fp32_ort_gmacs": peak["fp32_ort"],
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
