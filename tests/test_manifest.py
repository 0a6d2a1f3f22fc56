"""Manifest round trip, versioning and errors."""

import json

import pytest

from edgederm.errors import EdgeDermError
from edgederm.manifest import Artifact, Manifest, TensorSpec, output_spec
from edgederm.preprocessing import Preprocessing


def _manifest():
    m = Manifest({"name": "x", "architecture": "efficientnet_lite0", "task": "classification",
                  "classes": ["a", "b"]}, Preprocessing(input_size=(32, 48)), output_spec("classification", ["a", "b"]))
    m.put(Artifact("onnx_fp32", "model.onnx", "onnx", "fp32", [TensorSpec("input", [1, 3, 32, 48])],
                   [TensorSpec("logits", [1, 2], layout="NC")], size_bytes=10, sha256="ab",
                   verify={"status": "pass", "figures": {"top1_agreement": 1.0}}))
    m.add_step("export", formats=["onnx"])
    return m


def test_round_trip(tmp_path):
    m = _manifest()
    path = m.save(tmp_path)
    again = Manifest.load(path)
    assert again.to_dict() == m.to_dict()
    assert json.loads(path.read_text()) == m.to_dict()
    assert again.artifact("onnx_fp32").inputs[0].shape == [1, 3, 32, 48]
    assert again.preprocessing.input_size == (32, 48)


def test_put_replaces_by_name():
    m = _manifest()
    m.put(Artifact("onnx_fp32", "other.onnx", "onnx", "fp32", [], []))
    assert [a.path for a in m.artifacts] == ["other.onnx"]
    with pytest.raises(EdgeDermError, match="no artifact 'tflite_fp32'"):
        m.artifact("tflite_fp32")


def test_newer_version_and_foreign_files_are_refused(tmp_path):
    d = _manifest().to_dict()
    (tmp_path / "manifest.json").write_text(json.dumps({**d, "version": 99}))
    with pytest.raises(EdgeDermError, match="newer than this EdgeDerm"):
        Manifest.load(tmp_path)
    (tmp_path / "manifest.json").write_text(json.dumps({"schema": "something"}))
    with pytest.raises(EdgeDermError, match="not an EdgeDerm manifest"):
        Manifest.load(tmp_path)
    (tmp_path / "manifest.json").write_text("{")
    with pytest.raises(EdgeDermError, match="not a valid manifest"):
        Manifest.load(tmp_path)
    with pytest.raises(EdgeDermError, match="no manifest"):
        Manifest.load(tmp_path / "nowhere")
