"""A .pt2 source takes the same ONNX road as other sources (TorchScript exporter, opset 17).

Its parameters used to make ``torch.jit.trace`` fail ("Cannot insert a Tensor that requires
grad as a constant"), so .pt2 sources fell back to the dynamo exporter (opset 20). onnx2tf
1.29 honours a Resize's ``coordinate_transformation_mode`` only up to opset 17 and above it
resizes with half-pixel centres: a nearest upsample by a non-integer factor (GhostNetV2's DFC
attention gate at 224 px: 7 -> 3 -> 7) then picks other pixels, and the TFLite file missed parity.
"""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

from edgederm.manifest import Manifest

META = {"task": "classification", "classes": ["akiec", "bcc", "bkl", "df", "mel", "nv", "vasc"],
        "dataset": "derm7", "preprocessing": {"input_size": [14, 14]}}


class DFCGate(torch.nn.Module):
    """GhostNetV2's decoupled fully-connected attention, reduced: pool /2, sigmoid, nearest upsample back."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv = torch.nn.Conv2d(3, 7, 3, padding=1, stride=2)  # 14 -> 7: pooled to 3, upsampled by 7/3

    def forward(self, x):
        y = self.conv(x)
        gate = torch.sigmoid(F.avg_pool2d(y, 2, 2))
        return (y * F.interpolate(gate, size=y.shape[-2:], mode="nearest")).mean((2, 3)) * 10


def _pt2(tmp_path):
    path = tmp_path / "dfc.pt2"
    torch.export.save(torch.export.export(DFCGate().eval(), (torch.randn(1, 3, 14, 14),)), str(path))
    meta = tmp_path / "meta.json"
    meta.write_text(json.dumps(META))
    return path, meta


def test_pt2_source_exports_onnx_with_the_torchscript_exporter(synthetic_root, tmp_path):
    from edgederm.export import export

    path, meta = _pt2(tmp_path)
    outcome = export(str(path), tmp_path / "out", formats=["onnx"], data_root=synthetic_root, n_verify=8, meta=meta)
    assert not outcome.failures, outcome.failures
    a = Manifest.load(tmp_path / "out").artifact("onnx_fp32")
    assert a.converter.startswith("torch2onnx (torchscript opset 17"), a.converter
    assert not any("dynamo" in n for n in a.notes), a.notes
    assert a.verify["status"] == "pass"


@pytest.mark.slow  # one onnx2tf run (TensorFlow child process): ~30-60 s wall on the shared machine
@pytest.mark.tflite
def test_pt2_nearest_upsample_by_a_non_integer_factor_keeps_tflite_parity(synthetic_root, tmp_path):
    from edgederm.export import export

    path, meta = _pt2(tmp_path)
    outcome = export(str(path), tmp_path / "out", formats=["tflite"], data_root=synthetic_root, n_verify=8, meta=meta)
    assert not outcome.failures, outcome.failures
    v = Manifest.load(tmp_path / "out").artifact("tflite_fp32").verify
    assert v["status"] == "pass", v
    assert v["figures"]["logit_rel_error"] < 1e-4
