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
@pytest.mark.tflite
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


def _erf_graph(form: str = "div"):
    """x -> Conv -> exact GELU (three spellings of its product) -> a bare Erf -> ReduceMean -> y."""
    from math import sqrt

    inits = [numpy_helper.from_array(np.random.default_rng(1).normal(size=(4, 3, 1, 1)).astype(np.float32), "w"),
             numpy_helper.from_array(np.array(sqrt(2.0), np.float32), "sqrt2"),
             numpy_helper.from_array(np.array(1 / sqrt(2.0), np.float32), "inv_sqrt2"),
             numpy_helper.from_array(np.array(1.0, np.float32), "one"),
             numpy_helper.from_array(np.array(0.5, np.float32), "half")]
    scale = (helper.make_node("Div", ["x", "sqrt2"], ["s"], name="/act/Div") if form == "div"
             else helper.make_node("Mul", ["inv_sqrt2", "x"], ["s"], name="/act/Mul_s"))
    product = {"div": [helper.make_node("Mul", ["x", "a"], ["m"], name="/act/Mul"),
                       helper.make_node("Mul", ["m", "half"], ["g"], name="/act/Mul_1")],
               "mul": [helper.make_node("Mul", ["a", "half"], ["m"], name="/act/Mul"),
                       helper.make_node("Mul", ["m", "x"], ["g"], name="/act/Mul_1")],
               "half_first": [helper.make_node("Mul", ["half", "x"], ["m"], name="/act/Mul"),
                              helper.make_node("Mul", ["a", "m"], ["g"], name="/act/Mul_1")]}[form]
    early = product[:1] if form == "half_first" else []  # x * 0.5 computed before the Erf branch
    nodes = [helper.make_node("Conv", ["input", "w"], ["x"], name="/conv/Conv"), *early, scale,
             helper.make_node("Erf", ["s"], ["e"], name="/act/Erf"),
             helper.make_node("Add", ["one", "e"], ["a"], name="/act/Add"), *product[len(early):],
             helper.make_node("Erf", ["g"], ["t"], name="/tail/Erf"),  # an Erf that is no GELU
             helper.make_node("ReduceMean", ["t"], ["y"], name="/pool/ReduceMean", axes=[3], keepdims=1)]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 4, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 4, 1])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _run(model, x):
    import onnxruntime as ort

    return ort.InferenceSession(model.SerializeToString()).run(None, {"input": x})[0]


@pytest.mark.parametrize("form", ["div", "mul", "half_first"])
def test_every_erf_is_spelled_in_builtin_ops_computing_the_same(form):
    """fastvit_t8 / efficientformerv2_s0's exact GELU (Div, Erf, Add, Mul, Mul) became FlexErf in TFLite.
    The GELU is rewritten whole without a sign, the bare Erf with Sign; outputs within 2e-6."""
    from converters.erf_builtin import replace_erf

    model, x = _erf_graph(form), np.random.default_rng(0).normal(size=(1, 3, 4, 4)).astype(np.float32) * 3
    before = _run(model, x)
    assert replace_erf(model) == 2
    onnx.checker.check_model(model, full_check=True)
    ops = [n.op_type for n in model.graph.node]
    assert "Erf" not in ops and ops.count("Sign") == 1 and ops[0] == "Conv" and ops[-1] == "ReduceMean"
    np.testing.assert_allclose(_run(model, x), before, atol=2e-6)
    assert all(SAFE.match(n.name) for n in model.graph.node if n.name.startswith("erf_builtin"))


def test_the_rewrite_stays_finite_with_fp16_constants_at_zero():
    """onnx2tf's pseudo Erf divides by |x| + 1e-11, which an fp16 TFLite file stores as 0: fastvit_t8's
    fp16 file returned NaN for inputs of exactly 0. The rewrite has no such constant."""
    from onnx import numpy_helper as nh

    from converters.erf_builtin import replace_erf

    model = _erf_graph()
    replace_erf(model)
    for i, t in enumerate(model.graph.initializer):  # what the fp16 file holds
        model.graph.initializer[i].CopyFrom(nh.from_array(nh.to_array(t).astype(np.float16).astype(np.float32), t.name))
    x = np.zeros((1, 3, 4, 4), np.float32)
    x[0, :, :2] = np.random.default_rng(2).normal(size=(3, 2, 4))
    got = _run(model, x)
    assert np.isfinite(got).all()
    np.testing.assert_allclose(got, _run(_erf_graph(), x), atol=2e-3)


def test_a_graph_without_erf_is_left_as_it_is():
    from converters.erf_builtin import replace_erf

    model = _graph_with_torchscript_names()
    before = model.SerializeToString()
    assert replace_erf(model) == 0 and model.SerializeToString() == before


def test_the_private_onnx2tf_copy_is_named_safely_and_erf_is_approximated(tmp_path, monkeypatch):
    """The copy onnx2tf rewrites has no Erf and only safe names; the exported file is untouched."""
    import json
    import subprocess

    import converters.onnx2tflite as o2t

    seen = {}

    def child(argv, cwd, timeout):
        seen.update(json.loads(argv[-1]))
        return subprocess.CompletedProcess(argv, 1, "", "Error: stop here")

    monkeypatch.setattr(o2t, "run_tensorflow_child", child)
    src = tmp_path / "m.onnx"
    onnx.save(_erf_graph(), str(src))
    before = src.read_bytes()
    work = tmp_path / "work"
    work.mkdir()
    with pytest.raises(Exception, match="stop here"):
        o2t.run_onnx2tf(src, work, o2t.calibration_sample(None))
    copy = onnx.load(seen["input_onnx_file_path"])
    assert "Erf" not in {n.op_type for n in copy.graph.node} and src.read_bytes() == before
    assert all(SAFE.match(n.name) for n in copy.graph.node)


@pytest.mark.slow  # onnx2tf in a TensorFlow child process: ~20 s CPU
@pytest.mark.tflite
def test_exact_gelu_and_a_bare_erf_convert_to_builtin_tflite_at_parity(tmp_path):
    """Exact GELU (nn.GELU) and a bare torch.erf: no Flex op; fp32 and fp16 files finite and at parity,
    zeros in the input included (fastvit_t8's fp16 file returned NaN there)."""
    import torch

    from converters.onnx2tflite import calibration_sample, run_onnx2tf
    from device_bench.runners import open_runner

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv, self.act = torch.nn.Conv2d(3, 8, 3, padding=1, bias=False), torch.nn.GELU()

        def forward(self, x):
            return torch.erf(self.act(self.conv(x))).amax((2, 3))  # [1, 8]: no NCHW/NHWC question

    torch.manual_seed(0)
    model, x = Net().eval(), torch.randn(1, 3, 16, 16)
    x[..., :8] = 0  # exact zeros reach the GELU and the Erf (no conv bias)
    path = tmp_path / "m.onnx"
    torch.onnx.export(model, (x,), str(path), dynamo=False, opset_version=17, input_names=["input"],
                      output_names=["y"])
    work = tmp_path / "work"
    work.mkdir()
    out = run_onnx2tf(path, work, calibration_sample(None))
    with torch.no_grad():
        ref = model(x).numpy()
    for precision, atol in (("float32", 1e-5), ("float16", 2e-3)):
        runner = open_runner(out / f"m_{precision}.tflite", "tflite")  # RunnerUnavailable on any Flex op
        ops = {d["op_name"] for d in runner.interpreter._get_ops_details()}
        assert "EXP" in ops and not any(op.startswith("Flex") for op in ops), ops
        got = np.asarray(runner(np.ascontiguousarray(x.permute(0, 2, 3, 1).numpy()))).reshape(ref.shape)
        assert np.isfinite(got).all()
        np.testing.assert_allclose(got, ref, atol=atol)
