"""ONNX names made safe for TensorFlow before onnx2tf (converters.tfnames)."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from converters.tfnames import SAFE, make_tf_safe, safe_name, tensor_renames


def _graph_with_torchscript_names():
    w = numpy_helper.from_array(np.ones((4, 3, 1, 1), np.float32), "/conv/Conv/weight")
    nodes = [helper.make_node("Conv", ["input:0", "/conv/Conv/weight"], ["/conv/Conv_output_0"], name="/conv/Conv"),
             helper.make_node("Relu", ["/conv/Conv_output_0"], ["conv/Conv_output_0"], name="/act/Relu"),
             helper.make_node("Relu", ["conv/Conv_output_0"], ["out put"], name="conv/Conv")]  # a safe name taken
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("input:0", TensorProto.FLOAT, [1, 3, 4, 4])],
                              [helper.make_tensor_value_info("out put", TensorProto.FLOAT, [1, 4, 4, 4])], [w])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_every_name_becomes_safe_unique_and_the_graph_still_computes_the_same():
    import onnxruntime as ort

    model = _graph_with_torchscript_names()
    x = np.random.default_rng(0).normal(size=(1, 3, 4, 4)).astype(np.float32)
    before = ort.InferenceSession(model.SerializeToString()).run(None, {"input:0": x})[0]
    assert make_tf_safe(model) > 0
    onnx.checker.check_model(model, full_check=True)
    g = model.graph
    names = [n.name for n in g.node] + [t for n in g.node for t in list(n.input) + list(n.output)]
    assert all(SAFE.match(n) for n in names), names
    assert len({n.name for n in g.node}) == 3  # "/conv/Conv" did not collide with the existing "conv/Conv"
    assert g.node[0].name == "conv/Conv_1" and g.node[2].name == "conv/Conv"
    assert g.input[0].name == "input_0" and g.output[0].name == "out_put"
    after = ort.InferenceSession(model.SerializeToString()).run(None, {"input_0": x})[0]
    np.testing.assert_array_equal(before, after)


def test_safe_names_are_left_alone_and_the_map_is_deterministic():
    assert safe_name("blocks.0/conv>x-1") == "blocks.0/conv>x-1"
    assert safe_name("/a/b") == "a/b" and safe_name("::") == "t"
    model = _graph_with_torchscript_names()
    assert tensor_renames(model) == tensor_renames(_graph_with_torchscript_names())
    assert "conv/Conv_output_0" not in tensor_renames(model)


@pytest.mark.slow  # onnx2tf in a TensorFlow child process: ~15 s CPU, 40 s wall on the shared machine
def test_timm_mobilenetv4_converts_to_tflite(tmp_path):
    """The issue's case: timm mobilenetv4_conv_small via the TorchScript exporter stopped onnx2tf with
    "the OP name does not match the following pattern"; with safe names it converts, at parity."""
    timm = pytest.importorskip("timm")
    import torch

    from converters.onnx2tflite import calibration_sample, run_onnx2tf
    from converters.torch2onnx import convert
    from edgederm.manifest import Manifest, output_spec
    from edgederm.preprocessing import Preprocessing

    torch.manual_seed(0)
    model = timm.create_model("mobilenetv4_conv_small", num_classes=7).eval()
    classes = list("abcdefg")
    manifest = Manifest({"name": "mnv4", "architecture": "x", "task": "classification", "classes": classes},
                        Preprocessing(input_size=(32, 32)), output_spec("classification", classes))
    onnx_path = tmp_path / "m.onnx"
    convert(model, manifest, onnx_path)
    work = tmp_path / "work"
    work.mkdir()
    out = run_onnx2tf(onnx_path, work, calibration_sample(None))
    from device_bench.runners import open_runner

    x = np.random.default_rng(0).normal(size=(1, 3, 32, 32)).astype(np.float32)
    got = open_runner(out / "m_float32.tflite", "tflite")(np.ascontiguousarray(np.moveaxis(x, 1, -1)))
    with torch.no_grad():
        ref = model(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(np.asarray(got).reshape(ref.shape), ref, atol=1e-4)


def test_a_flex_op_fails_in_one_line_naming_the_operator(tmp_path, monkeypatch):
    """A TFLite file with a Select TensorFlow op (fastvit's exact GELU -> FlexErf) used to crash export
    with RunnerUnavailable; now it is a one-line failure naming the operator, and no file is left."""
    import device_bench.runners as runners
    from converters.onnx2tflite import _describe
    from edgederm.errors import EdgeDermError
    from edgederm.manifest import Manifest, output_spec
    from edgederm.preprocessing import Preprocessing

    def refuse(path, fmt, **_):
        raise runners.RunnerUnavailable("LiteRT cannot load x: Select TensorFlow op(s) ... Node number 5 (FlexErf) "
                                        "failed to prepare.")

    monkeypatch.setattr(runners, "open_runner", refuse)
    target = tmp_path / "model_fp32.tflite"
    target.write_bytes(b"tflite")
    manifest = Manifest({"name": "fastvit", "architecture": "x", "task": "classification", "classes": list("ab")},
                        Preprocessing(input_size=(32, 32)), output_spec("classification", list("ab")))
    with pytest.raises(EdgeDermError, match=r"fastvit: operator Erf became the Select TensorFlow op FlexErf") as err:
        _describe(target, manifest, "fp32", 32, 32)
    assert "\n" not in str(err.value) and not target.exists()
