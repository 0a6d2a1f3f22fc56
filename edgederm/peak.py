"""This CPU's peak multiply-accumulate rate, measured with dense GEMMs (the physical limit).

A model's MACs divided by this rate is the fastest it could possibly run here; the bench
reports what fraction of that each artifact reaches. fp32: the better of torch's GEMM (MKL/oneDNN)
and ONNX Runtime's ``MatMul`` (MLAS) -- on AMD CPUs torch's alone sits well below what the
runtimes reach, which read as more than 100 % of "peak"; int8 through ONNX Runtime's ``MatMulInteger`` (uint8 x int8 -> int32, MLAS kernels: the integer
GEMM that quantized models actually use; ``torch._int_mm`` on CPU is a slow reference kernel).
"""

from __future__ import annotations

import time


def _best_rate(fn, macs: float, seconds: float) -> float:
    fn()  # warm-up: first calls pay for packing and thread start
    best, start = 0.0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        t0 = time.perf_counter()
        fn()
        best = max(best, macs / (time.perf_counter() - t0))
    return best


def peak_mac_rate(threads: int, size: int = 1024, seconds: float = 1.0) -> dict:
    """{"fp32": GMAC/s, "int8": GMAC/s or None} at ``threads`` threads: the best of repeated square GEMMs."""
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        a, b = torch.randn(size, size), torch.randn(size, size)
        macs = float(size) ** 3
        torch_fp32 = _best_rate(lambda: torch.mm(a, b), macs, seconds)
        ort_fp32 = _ort_rate("MatMul", threads, size, seconds)
        int8 = _ort_rate("MatMulInteger", threads, size, seconds)
        fp32 = max(torch_fp32, ort_fp32 or 0.0)
        return {"fp32": round(fp32 / 1e9, 2), "fp32_torch": round(torch_fp32 / 1e9, 2),
                "fp32_ort": round(ort_fp32 / 1e9, 2) if ort_fp32 else None,
                "int8": round(int8 / 1e9, 2) if int8 else None, "gemm": size}
    finally:
        torch.set_num_threads(old)


def _ort_rate(op: str, threads: int, size: int, seconds: float) -> float | None:
    """MAC/s of one ONNX Runtime GEMM: ``MatMul`` (fp32, MLAS) or ``MatMulInteger`` (uint8 x int8 -> int32)."""
    try:
        import numpy as np
        import onnxruntime as ort
        from onnx import TensorProto, helper
    except ImportError:
        return None
    integer = op == "MatMulInteger"
    a_type, b_type = (TensorProto.UINT8, TensorProto.INT8) if integer else (TensorProto.FLOAT, TensorProto.FLOAT)
    graph = helper.make_graph(
        [helper.make_node(op, ["a", "b"], ["y"])], "gemm",
        [helper.make_tensor_value_info("a", a_type, [size, size]), helper.make_tensor_value_info("b", b_type, [size, size])],
        [helper.make_tensor_value_info("y", TensorProto.INT32 if integer else TensorProto.FLOAT, [size, size])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    opts = ort.SessionOptions()
    opts.intra_op_num_threads, opts.inter_op_num_threads = threads, 1
    session = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    if integer:
        feed = {"a": rng.integers(0, 255, (size, size), dtype=np.uint8),
                "b": rng.integers(-128, 127, (size, size), dtype=np.int8)}
    else:
        feed = {n: rng.standard_normal((size, size)).astype(np.float32) for n in "ab"}
    return _best_rate(lambda: session.run(None, feed), float(size) ** 3, seconds)
