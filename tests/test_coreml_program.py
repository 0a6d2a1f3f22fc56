"""Core ML from a torch.export program (.pt2): its parameters are traced as constants, frozen first."""

from __future__ import annotations

import json

import pytest
import torch

from edgederm.manifest import Manifest

META = {"task": "classification", "classes": ["akiec", "bcc", "bkl", "df", "mel", "nv", "vasc"],
        "dataset": "derm7", "preprocessing": {"input_size": [32, 48]}}


class TinyNet(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.bn = torch.nn.BatchNorm2d(8)
        self.fc = torch.nn.Linear(8, 7)

    def forward(self, x):
        return self.fc(self.bn(self.conv(x)).relu().mean((2, 3)))


def tiny_factory():
    torch.manual_seed(0)
    return TinyNet().eval()


@pytest.mark.coreml
def test_pt2_source_converts_to_coreml_like_the_same_model_from_its_factory(tmp_path):
    pytest.importorskip("coremltools")
    from converters.torch2coreml import inspect
    from edgederm.export import export

    meta = tmp_path / "meta.json"
    meta.write_text(json.dumps(META))
    pt2 = tmp_path / "tiny.pt2"
    torch.export.save(torch.export.export(tiny_factory(), (torch.randn(1, 3, 32, 48),)), str(pt2))
    outs = {}
    for kind, source in (("pt2", str(pt2)), ("factory", "tests.test_coreml_program:tiny_factory")):
        outcome = export(source, tmp_path / kind, formats=["coreml"], verify=False, meta=meta)
        assert not outcome.failures, outcome.failures  # was: "Cannot insert a Tensor that requires grad as a constant"
        m = Manifest.load(tmp_path / kind)
        outs[kind] = inspect(tmp_path / kind / m.artifact("coreml_fp16").path)
    pt2_info, factory_info = outs["pt2"], outs["factory"]
    assert pt2_info["classifier_labels"] == META["classes"] and pt2_info["input_size"] == [32, 48]
    # the program's weights are all inside the package (conv 224 + fc 63, BN folded), as for the factory form
    assert pt2_info["weights"] >= 224 + 63 and pt2_info["weights"] == factory_info["weights"]
    assert pt2_info["dtypes"].keys() == factory_info["dtypes"].keys()


def test_frozen_parameters_are_restored_and_reach_unregistered_modules():
    from converters.tracing import frozen_parameters

    inner = torch.nn.Linear(2, 2)
    holder = torch.nn.Module()
    object.__setattr__(holder, "_gm", inner)  # held as edgederm.byom holds an exported program's module
    holder.head = torch.nn.Linear(2, 2)
    with frozen_parameters(holder):
        assert not any(p.requires_grad for p in list(inner.parameters()) + list(holder.head.parameters()))
    assert all(p.requires_grad for p in list(inner.parameters()) + list(holder.head.parameters()))


class FullSlice(torch.nn.Module):
    """``y[:, :8]`` of an 8-channel tensor: torch.export records it as ``aten.alias`` (GhostNet does this)."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv = torch.nn.Conv2d(3, 8, 3, padding=1)

    def forward(self, x):
        y = self.conv(x)
        return y[:, :8].mean((2, 3))[:, :7]


@pytest.mark.coreml
def test_pt2_with_an_alias_op_converts_to_coreml(tmp_path):
    pytest.importorskip("coremltools")
    from converters.torch2coreml import inspect
    from edgederm.export import export

    meta = tmp_path / "meta.json"
    meta.write_text(json.dumps(META))
    pt2 = tmp_path / "alias.pt2"
    program = torch.export.export(FullSlice().eval(), (torch.randn(1, 3, 32, 48),))
    assert any("alias" in str(n.target) for n in program.module().graph.nodes)
    torch.export.save(program, str(pt2))
    outcome = export(str(pt2), tmp_path / "out", formats=["coreml"], verify=False, meta=meta)
    assert not outcome.failures, outcome.failures  # was: "operator alias cannot be converted to Core ML"
    info = inspect(tmp_path / "out" / Manifest.load(tmp_path / "out").artifact("coreml_fp16").path)
    assert info["classifier_labels"] == META["classes"] and info["weights"] >= 8 * 27 + 8


def _manifest(h=32, w=48):
    from edgederm.manifest import output_spec
    from edgederm.preprocessing import Preprocessing

    return Manifest({"name": "tiny", "architecture": "x", "task": "classification", "classes": META["classes"]},
                    Preprocessing(input_size=(h, w)), output_spec("classification", META["classes"]))


class ShapeArithmetic(TinyNet):
    """``int()`` of traced shape arithmetic, as ShuffleNetV2's channel_shuffle and MobileViT's patching do."""

    def forward(self, x):
        y = self.bn(self.conv(x)).relu()
        n = int(y.shape[2] * y.shape[3])  # aten::Int of a one-element array in coremltools
        return self.fc(y.reshape(y.shape[0], y.shape[1], n).mean(2))


@pytest.mark.coreml
def test_int_of_a_traced_shape_converts_through_jit_trace(tmp_path):
    """torchvision shufflenet_v2_x0_5 / timm mobilevit_xxs failed Core ML with "TypeError: only
    0-dimensional arrays can be converted to Python scalars": coremltools 9.0's aten::Int converter
    under NumPy 2.4 (converters.coreml_fixes)."""
    pytest.importorskip("coremltools")
    from converters.torch2coreml import convert, inspect

    torch.manual_seed(0)
    artifact = convert(ShapeArithmetic().eval(), _manifest(), tmp_path / "m.mlpackage", "fp16")
    assert artifact.converter == "torch2coreml (jit.trace, mlprogram, iOS16)"
    assert inspect(tmp_path / "m.mlpackage")["classifier_labels"] == META["classes"]


@pytest.mark.coreml
def test_the_fixes_register_once():
    pytest.importorskip("coremltools")
    from coremltools.converters.mil.frontend.torch.torch_op_registry import _TORCH_OPS_REGISTRY

    from converters import coreml_fixes

    coreml_fixes.register()
    fixed = _TORCH_OPS_REGISTRY.get_func("int")
    coreml_fixes.register()
    assert fixed.edgederm_fix and _TORCH_OPS_REGISTRY.get_func("int") is fixed  # not wrapped twice
    assert _TORCH_OPS_REGISTRY.get_func("alias") is not None


@pytest.mark.coreml
def test_a_failed_trace_falls_back_to_the_export_program_and_says_so(tmp_path, monkeypatch):
    pytest.importorskip("coremltools")
    import converters.torch2coreml as t2c
    from edgederm.errors import EdgeDermError

    def broken(*_):
        raise TypeError("only 0-dimensional arrays can be converted to Python scalars\nmore")

    monkeypatch.setattr(t2c, "CAPTURES", {"jit.trace": broken, "torch.export": t2c.CAPTURES["torch.export"]})
    artifact = t2c.convert(tiny_factory(), _manifest(), tmp_path / "m.mlpackage", "fp16")
    assert artifact.converter == "torch2coreml (torch.export, mlprogram, iOS16)"
    assert artifact.notes[0].startswith("jit.trace capture failed in coremltools (TypeError: only 0-dimensional")
    assert t2c.inspect(tmp_path / "m.mlpackage")["weights"] >= 224 + 63

    monkeypatch.setattr(t2c, "CAPTURES", {"jit.trace": broken, "torch.export": broken})
    with pytest.raises(EdgeDermError, match=r"^tiny: conversion to Core ML failed: TypeError: only 0-dim") as err:
        t2c.convert(tiny_factory(), _manifest(), tmp_path / "n.mlpackage", "fp16")
    assert "\n" not in str(err.value) and not (tmp_path / "n.mlpackage").exists()
