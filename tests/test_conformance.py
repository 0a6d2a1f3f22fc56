"""The conformance suite's machinery (fast) and the suite itself (slow, needs the real data)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from edgederm.conformance import ARCHS, BEGIN, END, markdown, recalibrate_bn, section_of, write_section


def test_suite_has_15_external_architectures_across_families():
    from edgederm.models import MODELS, get_entry

    get_entry("efficientnet_lite0")  # fills the zoo registry
    names = ARCHS.names()
    assert len(names) >= 15 and not set(names) & set(MODELS.names())
    families = {ARCHS.get(n).family.split(" (")[0] for n in names}
    assert {"plain mobile convnet", "re-parameterised", "attention hybrid", "mobile ViT"} <= families
    assert any(ARCHS.get(n).task == "segmentation" for n in names)


def test_batchnorm_recalibration_makes_outputs_vary_per_image():
    timm = pytest.importorskip("timm")
    torch.manual_seed(0)
    model = timm.create_model("test_efficientnet", num_classes=7)
    images = np.random.default_rng(0).normal(0.3, 1.2, (32, 3, 32, 32)).astype(np.float32)
    before = [m.running_mean.clone() for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    model, n = recalibrate_bn(model, images)
    after = [m.running_mean for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert n == len(before) > 0 and not model.training
    assert any(not torch.equal(a, b) for a, b in zip(after, before))
    with torch.no_grad():
        p = torch.softmax(model(torch.from_numpy(images[:16])), 1)
    assert p.max() < 0.999  # not saturated: parity on these outputs means something


def _result(status):
    return {"arch": "a", "family": "f", "forms": {"named": [
        {"format": "onnx", "precision": "fp32", "status": "pass", "reason": "", "route": "torch2onnx (x)"},
        {"format": "tflite", "precision": "fp32+fp16", "status": status, "reason": "a: operator Foo cannot be converted"},
        {"format": "coreml", "precision": "fp16", "status": "spec", "reason": "", "route": "torch2coreml"}]}}


def test_matrix_names_each_failure_and_the_section_is_replaced_in_place(tmp_path):
    text = markdown([_result("fail")], "python -m edgederm.conformance", "test machine", "2026-12-02")
    assert "**2 of 3 cells pass**" in text and "operator Foo cannot be converted" in text
    assert "| a | f | named | ✅ | ❌ [1] | ❌ [2] | ✅ spec |" in text
    doc = tmp_path / "compatibility.md"
    doc.write_text("# Compatibility\n\nzoo table\n")
    write_section(doc, text)
    write_section(doc, markdown([_result("pass")], "cmd", "m", "d"))
    out = doc.read_text()
    assert out.startswith("# Compatibility\n\nzoo table\n") and out.count(BEGIN) == 1 and out.count(END) == 1
    assert "**3 of 3 cells pass**" in section_of(out)


def test_compat_write_keeps_the_generated_section():
    from edgederm.compat import markdown as compat_markdown

    section = markdown([_result("pass")], "cmd", "m", "d")
    assert compat_markdown(previous="# old\n" + section).endswith(section)


@pytest.mark.slow
def test_conformance_suite_meets_its_target(real_data_root, tmp_path):
    """Every registered architecture x source form x format; the issue's target: >= 95 % of cells pass."""
    from edgederm.conformance import run_arch

    results = [run_arch(ARCHS.get(n), tmp_path, real_data_root, 96, 32) for n in ARCHS.names()]
    cells = [c for r in results for cs in r["forms"].values() for c in cs]
    passed = sum(c["status"] in ("pass", "spec") for c in cells)
    assert passed / len(cells) >= 0.95, markdown(results, "pytest", "", "")
    assert all(c["reason"] and "\n" not in c["reason"] for c in cells if c["status"] == "fail")
