"""The conformance suite's machinery (fast) and the suite itself (slow, needs the real data)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from edgederm.conformance import (ARCHS, BEGIN, END, VERIFY_IMAGES, markdown, recalibrate_bn, section_of,
                                  write_section)


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
        {"format": "onnx", "precision": "fp32", "status": "pass", "reason": "", "route": "torch2onnx (x)",
         "figures": {"images": 128}},
        {"format": "tflite", "precision": "fp32+fp16", "status": status, "reason": "a: operator Foo cannot be converted"},
        {"format": "coreml", "precision": "fp16", "status": "spec", "reason": "", "route": "torch2coreml"}]}}


def test_matrix_names_each_failure_and_the_section_is_replaced_in_place(tmp_path):
    text = markdown([_result("fail")], "python -m edgederm.conformance", "test machine", "2026-12-02")
    # a TFLite failure of both precisions: two failed cells of the matrix, one note
    assert "**2 of 4 cells pass**" in text and "1. a / named / tflite fp32+fp16: a: operator Foo cannot" in text
    assert "verified on 128 real test images" in text and "2. " not in text
    assert "| a | f | named | ✅ | ❌ [1] | ❌ [1] | ✅ spec |" in text
    doc = tmp_path / "compatibility.md"
    doc.write_text("# Compatibility\n\nzoo table\n")
    write_section(doc, text)
    write_section(doc, markdown([_result("pass")], "cmd", "m", "d"))
    out = doc.read_text()
    assert out.startswith("# Compatibility\n\nzoo table\n") and out.count(BEGIN) == 1 and out.count(END) == 1
    assert "**4 of 4 cells pass**" in section_of(out)


def test_compat_write_keeps_the_generated_section():
    from edgederm.compat import markdown as compat_markdown

    section = markdown([_result("pass")], "cmd", "m", "d")
    assert compat_markdown(previous="# old\n" + section).endswith(section)


def test_suite_verifies_on_as_many_images_as_export_does():
    """At 32 images a single near-tie flip of a random-weight model reads 0.969 and fails the fp16
    top-1 gate (99 %) that a user's export, on 128 images, passes: the suite verifies as export does."""
    import inspect

    from edgederm.export import export

    assert VERIFY_IMAGES == inspect.signature(export).parameters["n_verify"].default == 128


def test_a_missed_top1_gate_says_whether_its_flips_are_near_ties():
    from edgederm.conformance import flip_note

    rng = np.random.default_rng(0)
    ref = rng.normal(0, 1, (128, 7))
    ref[:2, :2] = [[0.500, 0.499], [0.300, 0.302]]  # two near ties in the original
    ref[:2, 2:] = -3.0
    noisy = ref + rng.normal(0, 0.004, ref.shape)
    noisy[0, :2], noisy[1, :2] = [0.498, 0.501], [0.303, 0.300]  # both flip by a shift the size of the noise
    note = flip_note(ref, noisy)
    assert note.startswith("2 of 128 images flip") and "near ties of random weights" in note
    wrong = ref.copy()
    wrong[5] = wrong[5, ::-1]  # a mis-converted op: a confident prediction swapped
    assert "look for a mis-converted operator" in flip_note(ref, wrong + rng.normal(0, 0.004, ref.shape))
    assert flip_note(ref, ref) == "no flip against the exported ONNX"


@pytest.mark.slow
@pytest.mark.realdata
def test_conformance_suite_meets_its_target(real_data_root, tmp_path):
    """Every registered architecture x source form x format; the issue's target: >= 95 % of cells pass."""
    from edgederm.conformance import run_arch

    results = [run_arch(ARCHS.get(n), tmp_path, real_data_root, 96, VERIFY_IMAGES) for n in ARCHS.names()]
    cells = [c for r in results for cs in r["forms"].values() for c in cs]
    passed = sum(c["status"] in ("pass", "spec") for c in cells)
    assert passed / len(cells) >= 0.95, markdown(results, "pytest", "", "")
    assert all(c["reason"] and "\n" not in c["reason"] for c in cells if c["status"] == "fail")
