"""``int8_qdq:onnx``: the TensorRT-ready QDQ file, read back node by node on the tiny models.

TensorRT's explicit-quantization rules checked here: every Q/DQ signed int8 with zero point 0,
per-channel weight scales, per-tensor activation scales, opset >= 13, no Q/DQ on the outputs of
weighted layers; and the file runs in ONNX Runtime's CPU provider close to the fp32 one.
"""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from edgederm.errors import EdgeDermError
from quantization import CalibrationConfig, QuantContext, run_scheme
from quantization.onnx_qdq import TRT_OPS, WEIGHTED, qdq_properties


def _export(checkpoint, root, folder):
    from edgederm.export import export

    outcome = export(checkpoint, folder, formats=["onnx"], data_root=root, n_verify=32)
    assert not outcome.failures
    return folder


@pytest.fixture(scope="module")
def cls_qdq(tiny_classifier, synthetic_root, tmp_path_factory):
    folder = _export(tiny_classifier, synthetic_root, tmp_path_factory.mktemp("qdq_cls") / "export")
    with QuantContext(folder, calibration=CalibrationConfig(), data_root=synthetic_root) as ctx:
        a = run_scheme(ctx, "int8_qdq:onnx")
        ctx.manifest.save(folder)
    return folder, a


def _ort(path, x):
    import onnxruntime as ort

    s = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return s.run(None, {s.get_inputs()[0].name: x})[0]


def _producers(model):
    return {o: n for n in model.graph.node for o in n.output}


def test_qdq_file_follows_tensorrt_rules(cls_qdq):
    import onnx

    folder, a = cls_qdq
    path = folder / a.path
    assert a.name == "onnx_int8_qdq" and a.path == "model_int8_qdq.onnx" and a.precision == "int8_qdq"
    p = qdq_properties(path)
    assert p["problems"] == [], p["problems"]
    assert p["opset"] >= 13 and p["types"] == ["int8"] and p["nonzero_zero_points"] == 0
    assert p["missing_zero_points"] == 0 and p["per_channel_activations"] == 0
    assert p["per_channel_weights"] > 0 and p["per_tensor_activations"] > 0 and p["quantize"] > 0
    model = onnx.load(str(path))
    made_by = _producers(model)
    consumers = {}
    for n in model.graph.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    for n in model.graph.node:  # a weighted layer's output is quantized only where a fused op (residual Add) takes it
        if n.op_type == "QuantizeLinear" and n.input[0] in made_by and made_by[n.input[0]].op_type in WEIGHTED:
            after = [c for dq in consumers[n.output[0]] for c in consumers.get(dq.output[0], [])]
            assert after and all(c.op_type in TRT_OPS for c in after), (n.name, [c.op_type for c in after])
    convs = [n for n in model.graph.node if n.op_type == "Conv"]
    dq_out = {n.output[0]: n for n in model.graph.node if n.op_type == "DequantizeLinear"}
    assert convs and all(c.input[0] in dq_out and c.input[1] in dq_out for c in convs)  # int8 data and weights
    assert any("TensorRT explicit quantization" in note for note in a.notes)
    assert {p.key for p in model.metadata_props} >= {"edgederm.classes", "edgederm.preprocessing"}


def test_qdq_file_runs_in_onnxruntime_close_to_fp32(cls_qdq):
    folder, a = cls_qdq
    h, w = 48, 64
    x = np.random.default_rng(0).standard_normal((1, 3, h, w)).astype(np.float32)
    y32, y8 = _ort(folder / "model.onnx", x).ravel(), _ort(folder / a.path, x).ravel()
    cos = float(y32 @ y8 / (np.linalg.norm(y32) * np.linalg.norm(y8)))
    assert cos > 0.9, cos


def test_properties_name_what_tensorrt_refuses(cls_qdq, synthetic_root, tmp_path):
    """ORT's default QDQ (u8 activations, asymmetric, per-tensor) breaks TensorRT's rules; the check says which."""
    from quantization import OrtStaticConfig

    folder = tmp_path / "export"
    shutil.copytree(cls_qdq[0], folder)
    with QuantContext(folder, calibration=CalibrationConfig(), data_root=synthetic_root) as ctx:
        a = run_scheme(ctx, "int8:onnx", OrtStaticConfig(quant_format="QDQ", per_channel=False), name="onnx_u8_qdq")
    p = qdq_properties(folder / a.path)
    text = " ".join(p["problems"])
    assert "signed int8 only" in text and "non-zero zero points" in text and "per tensor" in text


def test_properties_flag_old_opset_and_unquantized(tmp_path):
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])])
    path = tmp_path / "old.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 11)]), str(path))
    text = " ".join(qdq_properties(path)["problems"])
    assert "opset 11 < 13" in text and "not quantized" in text


def test_bad_calibration_method_is_one_line(cls_qdq, synthetic_root, tmp_path):
    from quantization import TensorRTQDQConfig

    folder = tmp_path / "export"
    shutil.copytree(cls_qdq[0], folder)
    with QuantContext(folder, calibration=CalibrationConfig(), data_root=synthetic_root) as ctx:
        with pytest.raises(EdgeDermError, match="calibrate_method 'Distribution'") as e:
            run_scheme(ctx, "int8_qdq:onnx", TensorRTQDQConfig(calibrate_method="Distribution"))
    assert "\n" not in str(e.value)


def test_qdq_segmenter(tiny_segmenter, synthetic_root, tmp_path):
    folder = _export(tiny_segmenter, synthetic_root, tmp_path / "export")
    with QuantContext(folder, calibration=CalibrationConfig(), data_root=synthetic_root) as ctx:
        a = run_scheme(ctx, "int8_qdq:onnx")
    assert qdq_properties(folder / a.path)["problems"] == []
