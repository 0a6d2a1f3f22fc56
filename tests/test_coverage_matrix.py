"""Every zoo model x {ONNX, TFLite fp32, TFLite fp16, Core ML, ExecuTorch} at a small input size.

Declared-supported combinations must convert with parity (Core ML: a valid spec); declared-
unsupported ones must still fail, so a declaration that stops being true fails this test.
onnx2tf takes 1-2.5 min per model here and Core ML 10-30 s, so the TFLite and Core ML columns
run for the reference models in the default suite and for the whole zoo under ``-m slow``.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from edgederm.errors import EdgeDermError
from edgederm.manifest import Manifest, output_spec
from edgederm.models import MODELS, create_model, get_entry

get_entry("efficientnet_lite0")
ALL = MODELS.names()
REFERENCE = [n for n in ALL if MODELS.get(n).reference]
# Reference models run by default; the rest of the zoo under -m slow (onnx2tf/Core ML are slow here).
REFERENCE_FIRST = [pytest.param(n, marks=() if n in REFERENCE else pytest.mark.slow) for n in ALL]
PARITY = {"onnx": 1e-4, "tflite_fp32": 1e-3, "tflite_fp16": None, "executorch": 1e-3}


def small_size(entry) -> tuple[int, int]:
    if entry.family == "swin":
        return (224, 224)  # windows of 7 at patch 4 need 224
    return (64, 96)


def subject(name, tmp_path):
    """A random-init model with BN statistics from smooth inputs (so outputs are not flat)."""
    entry = get_entry(name)
    torch.manual_seed(0)
    size = small_size(entry)
    # Transformers bake the token grid into their position embeddings: build them at the test size.
    model = create_model(name, img_size=size) if entry.builder_args.get("set_img_size") else create_model(name)
    model.train()
    with torch.no_grad():
        for _ in range(3):
            model(torch.nn.functional.interpolate(torch.randn(4, 3, 8, 12), size=size, mode="bilinear"))
    model.eval()
    classes = [f"c{i}" for i in range(7)] if entry.is_classifier else ["background", "lesion"]
    manifest = Manifest({"name": name, "architecture": name, "task": entry.task, "classes": classes},
                        entry.preprocessing.replace(input_size=list(size)), output_spec(entry.task, classes))
    x = torch.nn.functional.interpolate(torch.randn(1, 3, 8, 12), size=size, mode="bilinear")
    with torch.no_grad():
        ref = model(x).numpy()
    return entry, model, manifest, x, ref


def _deployed(entry, model):
    if not entry.deploy_variant:
        return model
    twin = create_model(entry.deploy_variant)  # noqa: the twin has the original's input size
    twin.load_state_dict(model.state_dict())
    return twin.eval()


def _onnx(entry, model, manifest, tmp_path):
    from converters.torch2onnx import convert

    path = tmp_path / f"{entry.name}.onnx"
    convert(_deployed(entry, model), manifest, path)
    return path


@pytest.mark.parametrize("name", ALL)
def test_onnx(name, tmp_path):
    from device_bench.runners import open_runner

    entry, model, manifest, x, ref = subject(name, tmp_path)
    path = _onnx(entry, model, manifest, tmp_path)
    got = open_runner(path, "onnx")(x.numpy())
    assert np.abs(got - ref).max() <= PARITY["onnx"] * max(1.0, np.abs(ref).max())


def _tflite_case(name, tmp_path):
    from converters.onnx2tflite import convert
    from device_bench.runners import open_runner

    entry, model, manifest, x, ref = subject(name, tmp_path)
    path = _onnx(entry, model, manifest, tmp_path)
    if "tflite" in entry.unsupported and not entry.deploy_variant:
        with pytest.raises(EdgeDermError):
            convert(path, manifest, tmp_path, precisions=("fp32",), stem=name)
        return
    artifacts = convert(path, manifest, tmp_path, precisions=("fp32", "fp16"), stem=name)
    scale = max(1.0, float(np.abs(ref).max()))
    for a in artifacts:
        got = open_runner(tmp_path / f"{name}_{a.precision}.tflite", "tflite")(x.permute(0, 2, 3, 1).numpy())
        if got.ndim == 4:
            got = np.moveaxis(got, -1, 1)
        if a.precision == "fp32":
            assert np.abs(got - ref).max() <= PARITY["tflite_fp32"] * scale, a.name
        elif entry.is_classifier:
            assert got.argmax(1)[0] == ref.argmax(1)[0] or np.abs(got - ref).max() < 0.05 * scale
        else:
            assert np.mean((got > 0) == (ref > 0)) > 0.98


@pytest.mark.parametrize("name", REFERENCE_FIRST)
@pytest.mark.tflite
def test_tflite(name, tmp_path):
    _tflite_case(name, tmp_path)


@pytest.mark.parametrize("name", REFERENCE_FIRST)
@pytest.mark.coreml
def test_coreml(name, tmp_path):
    from converters.torch2coreml import convert, inspect

    entry, model, manifest, x, ref = subject(name, tmp_path)
    if "coreml" in entry.unsupported and not entry.deploy_variant:
        with pytest.raises(EdgeDermError):
            convert(model, manifest, tmp_path / "m.mlpackage", "fp16")
        return
    if "coreml" in entry.unsupported:  # declared: the original itself must still fail
        with pytest.raises(EdgeDermError):
            convert(model, manifest, tmp_path / "orig.mlpackage", "fp16")
    convert(_deployed(entry, model), manifest, tmp_path / "m.mlpackage", "fp16")
    info = inspect(tmp_path / "m.mlpackage")
    assert info["input_type"] == "imageType" and info["input_size"] == list(manifest.preprocessing.input_size)
    assert info["weights"] >= 0.9 * sum(p.numel() for p in model.parameters())
    if entry.is_classifier:
        assert info["classifier_labels"] == manifest.classes


@pytest.mark.parametrize("name", REFERENCE_FIRST)
def test_executorch(name, tmp_path):
    pytest.importorskip("executorch", reason="executorch is not installed (requirements.txt pins it)")
    from converters.torch2executorch import convert
    from device_bench.runners import open_runner

    entry, model, manifest, x, ref = subject(name, tmp_path)
    if "executorch" in entry.unsupported and not entry.deploy_variant:
        with pytest.raises(EdgeDermError):
            convert(model, manifest, tmp_path / "m.pte")
        return
    a = convert(_deployed(entry, model), manifest, tmp_path / "m.pte")
    got = open_runner(tmp_path / "m.pte", "executorch", threads=1)(x.numpy())
    assert np.abs(got - ref).max() <= PARITY["executorch"] * max(1.0, float(np.abs(ref).max()))
    d = a.delegation
    assert d["delegated_nodes"] > 0 and d["delegated_subgraphs"] >= 1
    assert d["portable_nodes"] == sum(d["portable_ops"].values())


def test_reference_models_are_the_recipes_models():
    assert sorted(REFERENCE) == ["efficientnet_lite0", "mobilenetv3_large", "segnet", "unet_lite0"]
