"""edgederm profile: per-operator time, MACs, bytes and coverage on small models with known op mixes."""

from __future__ import annotations

import numpy as np
import pytest

CONV_MACS = 8 * 16 * 16 * 3 * 3 * 3  # Conv 3->8, 3x3, pad 1, on 16x16: out elements x (Cin x kh x kw)
MATMUL_MACS = 4 * 2048  # [1, 2048] x [2048, 4]


def float_graph():
    """x[1,3,16,16] -> Conv -> Relu -> Transpose(NHWC) -> Flatten -> MatMul -> y[1,4]."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.standard_normal((8, 3, 3, 3)).astype(np.float32), "W"),
             numpy_helper.from_array(np.zeros(8, np.float32), "B"),
             numpy_helper.from_array(rng.standard_normal((2048, 4)).astype(np.float32), "W2")]
    nodes = [helper.make_node("Conv", ["x", "W", "B"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c"], ["r"]),
             helper.make_node("Transpose", ["r"], ["t"], perm=[0, 2, 3, 1]),
             helper.make_node("Flatten", ["t"], ["f"]),
             helper.make_node("MatMul", ["f", "W2"], ["y"])]
    g = helper.make_graph(nodes, "float", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 16, 16])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])], inits)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])


def qdq_graph():
    """x -> Q -> DQ -> Conv(DQ(int8 W)) -> Q -> DQ -> y: the QDQ form ORT fuses into one QLinearConv."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(1)
    f = lambda name, v: numpy_helper.from_array(np.asarray(v, np.float32), name)  # noqa: E731
    inits = [f("xs", 0.05), numpy_helper.from_array(np.uint8(128), "xz"),
             numpy_helper.from_array(rng.integers(-100, 100, (8, 3, 3, 3)).astype(np.int8), "Wq"),
             f("ws", 0.01), numpy_helper.from_array(np.int8(0), "wz"), f("ys", 0.1),
             numpy_helper.from_array(np.uint8(128), "yz")]
    nodes = [helper.make_node("QuantizeLinear", ["x", "xs", "xz"], ["xq"]),
             helper.make_node("DequantizeLinear", ["xq", "xs", "xz"], ["xd"]),
             helper.make_node("DequantizeLinear", ["Wq", "ws", "wz"], ["Wd"]),
             helper.make_node("Conv", ["xd", "Wd"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("QuantizeLinear", ["c", "ys", "yz"], ["cq"]),
             helper.make_node("DequantizeLinear", ["cq", "ys", "yz"], ["y"])]
    g = helper.make_graph(nodes, "qdq", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 16, 16])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 8, 16, 16])], inits)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])


@pytest.fixture
def onnx_file(tmp_path):
    import onnx

    def write(model, name):
        onnx.checker.check_model(model)
        path = tmp_path / name
        onnx.save(model, str(path))
        return path
    return write


def test_graph_cost_counts_known_ops(onnx_file):
    from edgederm.profilers.onnx_cost import graph_cost

    cost = graph_cost(onnx_file(float_graph(), "f.onnx"))
    assert cost["count"] == {"Conv": 1, "Relu": 1, "Transpose": 1, "Flatten": 1, "MatMul": 1}
    assert cost["macs"] == {"Conv": CONV_MACS, "MatMul": MATMUL_MACS}
    assert cost["transposes"] == 1 and cost["qdq_pairs"] == 0 and cost["macs_unknown_nodes"] == 0
    q = graph_cost(onnx_file(qdq_graph(), "q.onnx"))
    assert q["qdq_pairs"] == 2 and q["count"]["DequantizeLinear"] == 3 and q["macs"] == {"Conv": CONV_MACS}


def test_ort_profile_float_graph(onnx_file):
    from edgederm.profile import op_rows
    from edgederm.profilers.ort_ops import profile

    x = np.random.default_rng(0).standard_normal((1, 3, 16, 16)).astype(np.float32)
    prof = profile(onnx_file(float_graph(), "f.onnx"), x, threads=1, runs=5, warmup=2)
    rows = {r["op"]: r for r in op_rows(prof["nodes"], None)}
    assert "MatMul" in rows and rows["MatMul"]["macs"] == MATMUL_MACS  # from the executed node's shapes
    conv = next(r for op, r in rows.items() if "Conv" in op)  # Conv, NCHWc Conv or FusedConv (Relu fused)
    assert conv["macs"] >= CONV_MACS  # NCHWc may pad channels: it counts what it computes
    assert all(r["ms"] >= 0 for r in rows.values()) and sum(r["ms"] for r in rows.values()) > 0
    assert prof["graph_macs"] == CONV_MACS + MATMUL_MACS
    c = prof["coverage"]
    assert c["providers"] == {"CPUExecutionProvider": c["executed_nodes"]} and c["partitions"] == 1
    assert c["source_nodes"] == 5 and c["source_transposes"] == 1 and c["int8_nodes"] == 0
    assert c["quantize"] == c["dequantize"] == 0
    assert abs(sum(r["share"] for r in rows.values()) - 1) < 1e-9


def test_ort_profile_qdq_graph_fuses_to_int8(onnx_file):
    from edgederm.profilers.ort_ops import profile

    x = np.random.default_rng(0).standard_normal((1, 3, 16, 16)).astype(np.float32)
    prof = profile(onnx_file(qdq_graph(), "q.onnx"), x, threads=1, runs=3, warmup=1)
    ops = [n["op"] for n in prof["nodes"]]
    assert "QLinearConv" in ops, ops  # the Q/DQ pairs around the Conv were fused into an int8 kernel
    c = prof["coverage"]
    assert c["int8_nodes"] == 1 and c["source_qdq_pairs"] == 2
    assert c["quantize"] == 1 and c["dequantize"] == 1  # the graph's float input and output boundaries remain
    assert c["int8_float_boundaries"] == 2
    assert c["layout_nodes"] == ops.count("Transpose")  # ORT runs QLinearConv in NHWC: the transposes it adds
    qconv = next(n for n in prof["nodes"] if n["op"] == "QLinearConv")
    assert qconv["macs"] == CONV_MACS and qconv["kind"] == "int8"  # prepacked weight: from the source graph


def qoperator_graph():
    """x -> QuantizeLinear -> QLinearConv (int8 weight initializer) -> DequantizeLinear: ORT's QOperator form."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(2)
    f = lambda name, v: numpy_helper.from_array(np.asarray(v, np.float32), name)  # noqa: E731
    inits = [f("xs", 0.05), numpy_helper.from_array(np.uint8(128), "xz"),
             numpy_helper.from_array(rng.integers(-100, 100, (8, 3, 3, 3)).astype(np.int8), "Wq"),
             f("ws", 0.01), numpy_helper.from_array(np.int8(0), "wz"), f("ys", 0.1),
             numpy_helper.from_array(np.uint8(128), "yz")]
    nodes = [helper.make_node("QuantizeLinear", ["x", "xs", "xz"], ["xq"], name="q"),
             helper.make_node("QLinearConv", ["xq", "xs", "xz", "Wq", "ws", "wz", "ys", "yz"], ["cq"],
                              name="conv_quant", pads=[1, 1, 1, 1]),
             helper.make_node("DequantizeLinear", ["cq", "ys", "yz"], ["y"], name="dq")]
    g = helper.make_graph(nodes, "qop", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 16, 16])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 8, 16, 16])], inits)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])


def test_ort_profile_qoperator_macs_from_the_source_weight(onnx_file):
    from edgederm.profilers.ort_ops import profile

    x = np.random.default_rng(0).standard_normal((1, 3, 16, 16)).astype(np.float32)
    prof = profile(onnx_file(qoperator_graph(), "qop.onnx"), x, threads=1, runs=3, warmup=1)
    qconv = [n for n in prof["nodes"] if n["op"] == "QLinearConv"]
    assert len(qconv) == 1 and qconv[0]["macs"] == CONV_MACS, prof["nodes"]
    assert prof["coverage"]["int8_nodes"] == 1 and prof["coverage"]["int8_float_boundaries"] == 2


def test_read_profile_takes_the_median_of_the_last_runs():
    from edgederm.profilers.ort_ops import read_profile

    events = []
    for run, t0 in enumerate((0, 1000, 2000)):  # a warm-up run, then two profiled runs
        events.append({"cat": "Session", "name": "model_run", "ts": t0, "dur": 500})
        events.append({"cat": "Node", "name": "conv_kernel_time", "ts": t0 + 10, "dur": 100 * (run + 1),
                       "args": {"op_name": "Conv", "provider": "CPUExecutionProvider", "activation_size": "10",
                                "parameter_size": "20", "output_size": "30",
                                "input_type_shape": [{"float": [1, 2, 4, 4]}, {"float": [3, 2, 1, 1]}],
                                "output_type_shape": [{"float": [1, 3, 4, 4]}]}})
    nodes, wall = read_profile(events, runs=2)
    assert len(nodes) == 1 and nodes[0]["ms"] == pytest.approx((0.2 + 0.3) / 2)
    assert nodes[0]["macs"] == 3 * 4 * 4 * 2 and nodes[0]["bytes"] == 60 and wall == pytest.approx(0.5)
    with pytest.raises(ValueError):
        read_profile(events, runs=4)


def _op(index, name, ins, outs, types=(np.float32,)):
    return {"index": index, "op_name": name, "inputs": np.array(ins), "outputs": np.array(outs),
            "operand_types": list(types), "result_types": list(types)}


def test_litert_delegation_and_coverage_counts():
    """MobileNetV3's failure mode: HARD_SWISH outside XNNPACK splits the graph into two partitions."""
    from edgederm.profilers.litert_ops import coverage, delegated, op_macs

    i8 = (np.int8,)
    ops = [_op(0, "QUANTIZE", [0], [1], (np.float32,)),
           _op(1, "CONV_2D", [1, 10, 11], [2], i8),
           _op(2, "HARD_SWISH", [2], [3], i8),
           _op(3, "DEPTHWISE_CONV_2D", [3, 12, 13], [4], i8),
           _op(4, "TRANSPOSE", [4, 14], [5], i8),
           _op(5, "DEQUANTIZE", [5], [6], i8),
           _op(6, "DELEGATE", [1, 10, 11], [2]),  # partition 0: the CONV_2D
           _op(7, "DELEGATE", [3, 12, 13, 14], [5])]  # partition 1: depthwise + transpose
    owner = delegated(ops)
    assert owner == {1: 0, 3: 1, 4: 1}
    c = coverage(ops, owner)
    assert c["partitions"] == 2 and c["delegated_nodes"] == 3 and c["fallback_nodes"] == 3
    assert c["fallback_ops"] == {"QUANTIZE": 1, "HARD_SWISH": 1, "DEQUANTIZE": 1}
    assert c["quantize"] == 1 and c["dequantize"] == 1 and c["transposes"] == 1 and c["int8_float_boundaries"] == 2
    assert c["int8_nodes"] == 3 and c["float_nodes"] == 0  # conv, hard-swish, depthwise; the transpose is layout
    tensors = {2: {"shape": np.array([1, 8, 8, 16])}, 10: {"shape": np.array([16, 3, 3, 4])},
               4: {"shape": np.array([1, 8, 8, 16])}, 12: {"shape": np.array([1, 3, 3, 16])}}
    assert op_macs(ops[1], tensors) == 8 * 8 * 16 * 3 * 3 * 4
    assert op_macs(ops[3], tensors) == 8 * 8 * 16 * 3 * 3
    assert op_macs(ops[2], tensors) == 0


def test_torch_profile_counts_conv_macs():
    import torch

    from edgederm.profile import op_rows
    from edgederm.profilers.torch_ops import profile

    model = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU()).eval()

    def fn(x):
        with torch.inference_mode():
            return model(torch.from_numpy(x)).numpy()

    x = np.zeros((1, 3, 16, 16), np.float32)
    prof = profile(fn, x, threads=1, runs=4, warmup=1)
    rows = {r["op"]: r for r in op_rows(prof["nodes"], None)}
    conv = rows["aten::convolution (all levels)"]
    assert conv["macs"] == CONV_MACS and conv["nodes"] == 1 and conv["ms"] > 0
    assert "aten::relu" in rows or "aten::relu_" in rows


def test_roofline_bound_and_peak_fraction():
    from edgederm.profile import op_rows

    roof = {"fp32_gmacs": 100.0, "int8_gmacs": 400.0, "bandwidth_gbs": 10.0}
    nodes = [{"op": "Conv", "ms": 1.0, "macs": 50_000_000, "bytes": 1_000_000, "kind": "float", "provider": "cpu"},
             {"op": "Add", "ms": 1.0, "macs": 0, "bytes": 4_000_000, "kind": "float", "provider": "cpu"}]
    rows = {r["op"]: r for r in op_rows(nodes, roof)}
    conv = rows["Conv"]  # 50 MAC/byte x 10 GB/s = 500 > peak 100: compute-bound at 100 GMAC/s
    assert conv["gmacs_per_s"] == pytest.approx(50.0) and conv["roof_bound_gmacs"] == 100.0
    assert conv["roof_fraction"] == pytest.approx(0.5) and rows["Add"]["roof_fraction"] is None
    assert rows["Conv"]["share"] == pytest.approx(0.5)


# --- the verb ---------------------------------------------------------------------------------
def test_cli_profile_one_line_errors(tmp_path):
    from tests.test_cli import assert_one_line_error, run_cli

    assert_one_line_error(run_cli("profile", tmp_path), str(tmp_path), "manifest.json")
    r = run_cli("profile", tmp_path, "--runs", "0")
    assert r.returncode == 2 and "--runs" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.slow
def test_cli_profile_end_to_end(tiny_classifier, synthetic_root, tmp_path, capsys):
    """export (ONNX) -> profile: the original and the ONNX file are profiled, totals set against the measured
    latency, Markdown, plot and strict JSON (no NaN) written."""
    import json

    from edgederm.cli import main
    from edgederm.export import export

    folder = tmp_path / "export"
    export(tiny_classifier, folder, formats=["onnx"], data_root=synthetic_root, n_verify=16)
    assert main(["profile", str(folder), "--runs", "5", "--warmup", "1", "--no-roofline",
                 "--json", str(tmp_path / "p.json")]) == 0
    out = capsys.readouterr().out
    assert "pytorch_cpu_fp32" in out and "onnx_fp32" in out and "% of the measured" in out
    prof = json.loads((tmp_path / "p.json").read_text(), parse_constant=lambda c: pytest.fail(f"{c} in JSON"))
    onnx = next(e for e in prof["artifacts"] if e["artifact"] == "onnx_fp32")
    assert onnx["status"] == "ok" and onnx["profile_ms"] > 0 and onnx["measured_ms"] > 0 and onnx["explained"] > 0
    assert onnx["coverage"]["executed_nodes"] > 0 and onnx["graph_macs"] > 0
    assert sum(r["share"] for r in onnx["ops"]) == pytest.approx(1.0)
    assert (folder / "profile" / "profile.md").is_file() and (folder / "profile" / "profile.png").stat().st_size > 1000
    assert prof["environment"]["cpu_isa"] is not None


def test_middle_runs_drop_stalled_runs():
    from edgederm.profilers import blocks
    from edgederm.profilers.ort_ops import middle_runs

    assert middle_runs([1.0, 9.0, 1.1, 1.2, 50.0, 0.9, 1.0, 1.05]) == [2, 3, 6, 7]  # the middle half by total: 1.0, 1.05, 1.1, 1.2
    assert middle_runs([3.0]) == [0] and middle_runs([3.0, 1.0]) == [0, 1]
    assert blocks(10, 3) == [4, 3, 3] and blocks(2, 5) == [1, 1] and sum(blocks(50, 5)) == 50
