"""More ways in: output adapters, timm:/torchvision: sources with --weights, an ONNX file as source."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from edgederm.adapters import OutputAdapter, adapted, parse_adapter
from edgederm.errors import EdgeDermError

CLASSES = ["akiec", "bcc", "bkl", "df", "mel", "nv", "vasc"]
CLS_META = {"task": "classification", "classes": CLASSES, "dataset": "derm7", "preprocessing": {"input_size": [32, 32]}}
SEG_META = {"task": "segmentation", "classes": ["lesion"], "dataset": "lesionseg",
            "preprocessing": {"input_size": [32, 32]}}


class DictSeg(torch.nn.Module):
    """A torchvision-style segmenter: {"out": 2-class logits, "aux": ...}."""

    def __init__(self, channels=2):
        super().__init__()
        torch.manual_seed(0)
        self.conv = torch.nn.Conv2d(3, channels, 3, padding=1)

    def forward(self, x):
        y = self.conv(x)
        return {"out": y, "aux": y * 0}


class TupleCls(torch.nn.Module):
    """Returns (features, probabilities): softmax already inside."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.fc = torch.nn.Linear(3, 7)

    def forward(self, x):
        f = x.mean((2, 3))
        return f, torch.softmax(self.fc(f) * 3, dim=1)


# --- adapters ------------------------------------------------------------------------------------
def test_identity_adapter_returns_the_model_itself():
    m = torch.nn.Identity()
    assert adapted(m, parse_adapter(CLS_META)) is m


def test_tuple_probabilities_become_logits_with_the_same_softmax():
    m = TupleCls().eval()
    a = parse_adapter({**CLS_META, "output": {"index": 1, "kind": "probabilities"}})
    x = torch.randn(4, 3, 8, 8)
    with torch.no_grad():
        logits, p = adapted(m, a)(x), m(x)[1]
    assert logits.shape == (4, 7)
    torch.testing.assert_close(torch.softmax(logits, 1), p, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("kind,lesion", [("two_class_logits", 1), ("two_class_logits", 0),
                                         ("two_class_probabilities", 1)])
def test_two_class_masks_become_one_logit_with_the_same_lesion_probability(kind, lesion):
    m = DictSeg().eval()
    a = parse_adapter({**SEG_META, "output": {"key": "out", "kind": kind, "lesion_channel": lesion}})
    if kind == "two_class_probabilities":
        inner = m
        m = torch.nn.Module()
        m.inner = inner
        m.forward = lambda x: {"out": torch.softmax(inner(x)["out"], 1)}
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        y = adapted(m, a)(x)
        p_lesion = torch.softmax(DictSeg().eval()(x)["out"], 1)[:, lesion:lesion + 1]
    assert y.shape == (2, 1, 16, 16)
    torch.testing.assert_close(torch.sigmoid(y), p_lesion, atol=1e-6, rtol=1e-5)


def test_mask_probability_becomes_its_logit():
    class Prob(torch.nn.Module):
        def forward(self, x):
            return torch.sigmoid(x[:, :1] * 4)

    a = parse_adapter({**SEG_META, "output": {"kind": "mask_probability"}})
    x = torch.randn(1, 3, 8, 8).clamp(-1.5, 1.5)  # logits within +-6: inside the clamp [1e-4, 1 - 1e-3]
    torch.testing.assert_close(adapted(Prob(), a)(x), x[:, :1] * 4, atol=1e-3, rtol=1e-3)
    saturated = adapted(Prob(), a)(torch.full((1, 3, 2, 2), 100.0))
    assert torch.isfinite(saturated).all()  # p = 1 exactly: clamped, a finite logit


@pytest.mark.parametrize("output,match", [
    ({"kind": "softmax"}, "output.kind 'softmax' is not one of logits, probabilities"),
    ({"key": "out", "index": 0}, "not both"),
    ({"keys": "out"}, "unknown field"),
    ({"index": "1"}, "output.index must be an integer"),
    ({"lesion_channel": 2}, "lesion_channel must be 0 or 1"),
])
def test_bad_adapter_fields_fail_in_one_line(output, match):
    with pytest.raises(EdgeDermError, match=match) as err:
        parse_adapter({**CLS_META, "output": output})
    assert "\n" not in str(err.value)


def test_dict_output_without_a_key_names_the_keys():
    with pytest.raises(EdgeDermError, match=r"returns a dict \(keys \['aux', 'out'\]\): name one with output.key"):
        adapted(DictSeg(), OutputAdapter(kind="two_class_logits"))(torch.randn(1, 3, 8, 8))


# --- timm: / torchvision: --------------------------------------------------------------------------
def _save(model, path):
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    return path


def test_timm_source_loads_weights_exactly(tmp_path):
    timm = pytest.importorskip("timm")
    from edgederm.model_sources import find_form

    torch.manual_seed(1)
    ref = timm.create_model("test_efficientnet", num_classes=7).eval()
    weights = _save(ref, tmp_path / "w.safetensors")
    form = find_form("timm:test_efficientnet")
    assert form.name == "timm"
    model, kind = form.loader("timm:test_efficientnet", CLS_META, str(weights))
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(model(x), ref(x))
    assert kind == "timm + --weights"


def test_timm_source_errors_are_one_line(tmp_path):
    timm = pytest.importorskip("timm")
    from edgederm.model_sources import load_timm

    with pytest.raises(EdgeDermError, match="needs --weights FILE"):
        load_timm("timm:test_efficientnet", CLS_META, None)
    with pytest.raises(EdgeDermError, match="did you mean 'test_efficientnet'"):
        load_timm("timm:test_eficientnet", CLS_META, "w.safetensors")
    weights = _save(timm.create_model("test_efficientnet", num_classes=3), tmp_path / "w3.safetensors")
    with pytest.raises(EdgeDermError, match="does not fit timm:test_efficientnet.*classes") as err:
        load_timm("timm:test_efficientnet", CLS_META, str(weights))
    assert "\n" not in str(err.value)
    with pytest.raises(EdgeDermError, match="timm builds classifiers"):
        load_timm("timm:test_efficientnet", SEG_META, str(weights))


def test_torchvision_segmenter_with_dict_two_class_output(tmp_path):
    from torchvision.models.segmentation import lraspp_mobilenet_v3_large

    from edgederm.model_sources import check_contract, find_form

    torch.manual_seed(2)
    ref = lraspp_mobilenet_v3_large(weights=None, weights_backbone=None, num_classes=2).eval()
    weights = _save(ref, tmp_path / "seg.safetensors")
    meta = {**SEG_META, "output": {"key": "out", "kind": "two_class_logits"}}
    form = find_form("torchvision:lraspp_mobilenet_v3_large")
    model, _ = form.loader("torchvision:lraspp_mobilenet_v3_large", meta, str(weights))
    model = adapted(model, parse_adapter(meta))
    check_contract(model, meta)
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        want = ref(x)["out"]
        torch.testing.assert_close(model(x), want[:, 1:2] - want[:, 0:1])
    with pytest.raises(EdgeDermError, match="segmenter but the meta file says task: classification"):
        form.loader("torchvision:lraspp_mobilenet_v3_large", CLS_META, str(weights))
    with pytest.raises(EdgeDermError, match="only torchvision classifiers and segmenters"):
        form.loader("torchvision:fasterrcnn_mobilenet_v3_large_fpn", CLS_META, str(weights))


def test_contract_check_names_the_fix():
    from edgederm.model_sources import check_contract

    with pytest.raises(EdgeDermError, match=r"output is \[1, 3\], EdgeDerm needs logits"):
        check_contract(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.LazyLinear(3)), CLS_META)


# --- an ONNX file as source ------------------------------------------------------------------------
def _onnx_file(tmp_path, model, name="user.onnx", outputs=("features", "probs")):
    path = tmp_path / name
    torch.onnx.export(model.eval(), (torch.randn(1, 3, 32, 32),), str(path), dynamo=False, opset_version=17,
                      input_names=["pixels"], output_names=list(outputs), dynamic_axes={"pixels": {0: "n"}})
    return path


def _manifest(meta):
    from edgederm.manifest import Manifest, output_spec
    from edgederm.preprocessing import Preprocessing

    return Manifest({"name": "user", "architecture": "custom", "task": meta["task"], "classes": meta["classes"]},
                    Preprocessing.from_dict(meta["preprocessing"]), output_spec(meta["task"], meta["classes"]))


def test_onnx_source_is_adapted_in_the_graph_as_in_pytorch(tmp_path):
    import onnxruntime as ort

    from converters.onnx2onnx import convert
    from edgederm.model_sources import find_form

    torch_model = TupleCls()
    path = _onnx_file(tmp_path, torch_model)
    meta = {**CLS_META, "output": {"key": "probs", "kind": "probabilities"}}
    form = find_form(str(path))
    assert form.name == "onnx" and "no ONNX frontend" in form.unsupported["coreml"]
    original, kind = form.loader(str(path), meta, None)
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        ref = original(x)
        torch.testing.assert_close(torch.softmax(ref, 1), torch_model(x)[1], atol=1e-5, rtol=1e-4)
    artifact = convert(original, _manifest(meta), tmp_path / "model.onnx")
    assert artifact.inputs[0].shape == [1, 3, 32, 32] and artifact.outputs[0].name == "logits"
    sess = ort.InferenceSession(str(tmp_path / "model.onnx"), providers=["CPUExecutionProvider"])
    assert [i.name for i in sess.get_inputs()] == ["input"] and [o.name for o in sess.get_outputs()] == ["logits"]
    got = np.concatenate([sess.run(None, {"input": xi[None]})[0] for xi in x.numpy()])
    np.testing.assert_allclose(got, ref.numpy(), atol=1e-5)


def test_onnx_source_two_class_mask_graph(tmp_path):
    import onnxruntime as ort

    from converters.onnx2onnx import convert
    from edgederm.onnx_source import load

    class Seg(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = DictSeg()

        def forward(self, x):
            return torch.softmax(self.inner(x)["out"], 1)

    path = _onnx_file(tmp_path, Seg(), outputs=("masks",))
    meta = {**SEG_META, "output": {"kind": "two_class_probabilities", "lesion_channel": 0}}
    original, _ = load(str(path), meta, None)
    convert(original, _manifest(meta), tmp_path / "model.onnx")
    x = torch.randn(1, 3, 32, 32)
    got = ort.InferenceSession(str(tmp_path / "model.onnx")).run(None, {"input": x.numpy()})[0]
    assert got.shape == (1, 1, 32, 32)
    with torch.no_grad():
        np.testing.assert_allclose(got, original(x).numpy(), atol=1e-4)
        np.testing.assert_allclose(1 / (1 + np.exp(-got)), Seg()(x)[:, :1].numpy(), atol=1e-5)


def test_onnx_source_errors(tmp_path):
    from converters.onnx2onnx import convert
    from edgederm.onnx_source import load

    path = _onnx_file(tmp_path, TupleCls())
    with pytest.raises(EdgeDermError, match="--weights goes with"):
        load(str(path), CLS_META, "w.safetensors")
    with pytest.raises(EdgeDermError, match=r"has 2 outputs \['features', 'probs'\]: pick one"):
        convert(load(str(path), CLS_META, None)[0], _manifest(CLS_META), tmp_path / "m.onnx")
    meta = {**CLS_META, "preprocessing": {"input_size": [64, 64]}, "output": {"index": 1}}
    fixed = _onnx_file(tmp_path, TupleCls(), "fixed.onnx")
    import onnx

    m = onnx.load(str(fixed))
    m.graph.input[0].type.tensor_type.shape.dim[2].dim_value = 32
    onnx.save(m, str(fixed))
    with pytest.raises(EdgeDermError, match=r"input_size is \[64, 64\]: make them agree"):
        convert(load(str(fixed), meta, None)[0], _manifest(meta), tmp_path / "m2.onnx")
    (tmp_path / "junk.onnx").write_bytes(b"not onnx")
    with pytest.raises(EdgeDermError, match="does not load in ONNX Runtime"):
        load(str(tmp_path / "junk.onnx"), CLS_META, None)


# --- end to end: export + verify, and later stages without --meta / --weights ----------------------
def _meta_file(tmp_path, meta):
    path = tmp_path / "meta.json"
    path.write_text(json.dumps(meta))
    return path


def test_timm_source_exports_verifies_and_reloads_from_the_manifest(synthetic_root, tmp_path):
    timm = pytest.importorskip("timm")
    from edgederm.byom import original_from_manifest
    from edgederm.export import export
    from edgederm.manifest import Manifest

    torch.manual_seed(3)
    ref = timm.create_model("test_efficientnet", num_classes=7).eval()
    weights = _save(ref, tmp_path / "w.safetensors")
    outcome = export("timm:test_efficientnet", tmp_path / "out", formats=["onnx"], data_root=synthetic_root, n_verify=8,
                     meta=_meta_file(tmp_path, CLS_META), weights=str(weights))
    assert not outcome.failures, outcome.failures
    m = Manifest.load(tmp_path / "out")
    v = m.artifact("onnx_fp32").verify
    assert v["status"] == "pass" and v["figures"]["logit_cosine_min"] > 0.9999
    assert m.model["meta"]["classes"] == CLASSES and m.model["weights"] == str(weights.resolve())
    model, source = original_from_manifest(m, tmp_path / "out")  # no --meta, no --weights: both from the manifest
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(model(x), ref(x))
    weights.write_bytes(b"changed")
    with pytest.raises(EdgeDermError, match="changed since the export"):
        original_from_manifest(m, tmp_path / "out")


def test_torchvision_dict_two_class_segmenter_exports_and_verifies(synthetic_root, tmp_path):
    from torchvision.models.segmentation import lraspp_mobilenet_v3_large

    from edgederm.export import export
    from edgederm.manifest import Manifest

    torch.manual_seed(4)
    ref = lraspp_mobilenet_v3_large(weights=None, weights_backbone=None, num_classes=2).eval()
    weights = _save(ref, tmp_path / "seg.safetensors")
    meta = {**SEG_META, "preprocessing": {"input_size": [64, 64]}, "output": {"key": "out", "kind": "two_class_logits"}}
    outcome = export("torchvision:lraspp_mobilenet_v3_large", tmp_path / "out", formats=["onnx"],
                     data_root=synthetic_root, n_verify=4, meta=_meta_file(tmp_path, meta), weights=str(weights))
    assert not outcome.failures, outcome.failures
    a = Manifest.load(tmp_path / "out").artifact("onnx_fp32")
    assert a.outputs[0].shape == [1, 1, 64, 64]
    assert a.verify["status"] == "pass", a.verify


def test_onnx_source_exports_onnx_and_refuses_coreml_with_the_reason(synthetic_root, tmp_path):
    from edgederm.export import export
    from edgederm.manifest import Manifest

    path = _onnx_file(tmp_path, TupleCls())
    meta = {**CLS_META, "output": {"index": 1, "kind": "probabilities"}}
    outcome = export(str(path), tmp_path / "out", formats=["onnx", "coreml"], data_root=synthetic_root, n_verify=8,
                     meta=_meta_file(tmp_path, meta))
    assert [f["format"] for f in outcome.failures] == ["coreml"]
    assert "coremltools has no ONNX frontend" in outcome.failures[0]["error"]
    m = Manifest.load(tmp_path / "out")
    assert [a.name for a in m.artifacts] == ["onnx_fp32"]
    assert m.artifact("onnx_fp32").verify["status"] == "pass"
    assert m.artifact("onnx_fp32").converter.startswith("onnx2onnx")


@pytest.mark.parametrize("kind", ["timm", "onnx"])
def test_foreign_exports_run_through_quantize_and_bench_without_meta(kind, synthetic_root, tmp_path):
    """bench once asked for --meta it did not take; now meta and weights travel in the manifest."""
    from edgederm.bench import BenchConfig, bench
    from edgederm.export import export
    from edgederm.manifest import Manifest
    from edgederm.verify import Gate
    from quantization import quantize

    if kind == "timm":
        timm = pytest.importorskip("timm")
        torch.manual_seed(5)
        source, meta = "timm:test_efficientnet", CLS_META
        weights = str(_save(timm.create_model("test_efficientnet", num_classes=7), tmp_path / "w.safetensors"))
    else:
        source, meta, weights = str(_onnx_file(tmp_path, TupleCls())), {**CLS_META, "output": {"index": 1,
                                                                                               "kind": "probabilities"}}, None
    folder = tmp_path / "out"
    export(source, folder, formats=["onnx"], data_root=synthetic_root, n_verify=8, meta=_meta_file(tmp_path, meta),
           weights=weights)
    loose = {"int8": Gate(min_top1_agreement=0.0)}  # a dozen synthetic images: the figures are recorded, not judged
    q = quantize(folder, ["int8:onnx"], data_root=synthetic_root, n_verify=8, gates=loose,
                 calibration=None)
    assert not q.failures, q.failures
    assert "onnx_int8" in [a.name for a in Manifest.load(folder).artifacts]
    results = bench(folder, BenchConfig(images=8, threads=(1,), runs=2, warmup=0, rounds=1, throughput_batch=0,
                                        n_boot=10, peers=False, peak=False, gpu="off"), synthetic_root)
    rows = {r["artifact"]: r for r in results.rows}
    assert {"onnx_fp32", "onnx_int8"} <= set(rows), sorted(rows)


def test_timm_source_builds_at_the_meta_input_size(tmp_path):
    """EfficientFormerV2 sizes its attention-bias tables from img_size: weights made at 64 px fit only a 64 px build."""
    timm = pytest.importorskip("timm")
    from edgederm.model_sources import load_timm

    torch.manual_seed(6)
    ref = timm.create_model("efficientformerv2_s0", num_classes=7, img_size=64).eval()
    weights = _save(ref, tmp_path / "ef.safetensors")
    meta = {**CLS_META, "preprocessing": {"input_size": [64, 64]}}
    model, _ = load_timm("timm:efficientformerv2_s0", meta, str(weights))
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(model(x), ref(x))


def test_default_out_folder_of_a_named_source_has_no_colon(tmp_path, monkeypatch):
    """``edgederm export timm:NAME`` without --out wrote to exports/timm:NAME: a colon is no folder name
    on Windows. A file keeps its stem."""
    import argparse

    import edgederm.export
    from edgederm.commands import export as export_command
    from edgederm.model_sources import default_out_name

    assert default_out_name("timm:mobilenetv4_conv_small") == "timm_mobilenetv4_conv_small"
    assert default_out_name("torchvision:lraspp_mobilenet_v3_large") == "torchvision_lraspp_mobilenet_v3_large"
    assert default_out_name("my_pkg.models:build") == "my_pkg.models_build"
    ckpt = tmp_path / "lite0.best.safetensors"
    ckpt.write_bytes(b"")
    assert default_out_name(str(ckpt)) == "lite0.best"

    seen = {}

    def fake_export(source, out, **_):
        seen["out"] = out
        raise EdgeDermError("stop here")

    monkeypatch.setattr(edgederm.export, "export", fake_export)
    sub = argparse.ArgumentParser().add_subparsers()
    export_command.register(sub)
    args = sub.choices["export"].parse_args(["timm:lcnet_050", "--to", "onnx"])
    with pytest.raises(EdgeDermError, match="stop here"):
        export_command.run(args)
    assert str(seen["out"]) == "exports/timm_lcnet_050"


def test_torchvision_mnasnet_weights_from_safetensors_load(tmp_path):
    """safetensors keeps no per-module versions and torchvision's MNASNet refused the state dict
    ("ValueError: version should be set to 1 or 2 instead of None", a traceback): the architecture's own
    versions are used."""
    from torchvision import models

    from edgederm.model_sources import find_form

    torch.manual_seed(0)
    ref = models.get_model("mnasnet0_5", weights=None, num_classes=7).eval()
    weights = _save(ref, tmp_path / "w.safetensors")
    model, _ = find_form("torchvision:mnasnet0_5").loader("torchvision:mnasnet0_5", CLS_META, str(weights))
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(model(x), ref(x))
