"""Export + verify on small trained models: artifacts, manifest, metadata, and the gates catching faults."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from edgederm.errors import EdgeDermError
from edgederm.export import export
from edgederm.manifest import Manifest


@pytest.mark.coreml
def test_onnx_and_coreml_classifier(tiny_classifier, synthetic_root, tmp_path):
    import onnx

    outcome = export(tiny_classifier, tmp_path, formats=["onnx", "coreml"], data_root=synthetic_root, n_verify=64)
    assert not outcome.failures
    m = Manifest.load(tmp_path)
    assert {a.name for a in m.artifacts} == {"onnx_fp32", "coreml_fp16"}
    onnx_art = m.artifact("onnx_fp32")
    assert onnx_art.verify["status"] == "pass" and onnx_art.verify["figures"]["top1_agreement"] == 1.0
    assert onnx_art.verify["figures"]["max_abs_prob"] < 1e-5
    from edgederm.checkpoint import sha256_file

    assert onnx_art.sha256 == sha256_file(tmp_path / onnx_art.path)
    props = {p.key: p.value for p in onnx.load(str(tmp_path / onnx_art.path)).metadata_props}
    assert json.loads(props["edgederm.classes"]) == m.classes
    assert json.loads(props["edgederm.preprocessing"])["input_size"] == [48, 64]
    # Core ML on Linux: structure checked, numeric parity skipped with the reason.
    cm = m.artifact("coreml_fp16")
    assert cm.verify["status"] == "skipped" and "macOS" in cm.verify["reason"]
    structure = cm.verify["figures"]["structure"]
    assert structure["input_type"] == "imageType" and structure["input_size"] == [48, 64]
    assert structure["outputs"] == ["classLabel", "classLabel_probs"]
    assert structure["classifier_labels"] == m.classes
    assert structure["dtypes"].get("FLOAT16", 0) > structure["dtypes"].get("FLOAT32", 0)
    assert [s["stage"] for s in m.steps] == ["export", "verify"]
    assert not list(tmp_path.glob(".partial-*"))


@pytest.mark.coreml
def test_segnet_exports_through_its_deployable_twin(tiny_segmenter, synthetic_root, tmp_path):
    outcome = export(tiny_segmenter, tmp_path, formats=["onnx", "coreml"], data_root=synthetic_root, n_verify=16)
    assert not outcome.failures, outcome.failures
    m = Manifest.load(tmp_path)
    onnx_art = m.artifact("onnx_fp32")
    assert any("segnet_mobile" in n for n in onnx_art.notes)
    assert onnx_art.verify["status"] == "pass" and onnx_art.verify["figures"]["mask_dice_mean"] >= 0.99


@pytest.mark.slow
@pytest.mark.tflite
def test_tflite_fp32_fp16(tiny_classifier, synthetic_root, tmp_path):
    outcome = export(tiny_classifier, tmp_path, formats=["tflite"], data_root=synthetic_root, n_verify=32)
    assert not outcome.failures
    m = Manifest.load(tmp_path)
    assert {a.name for a in m.artifacts} == {"tflite_fp32", "tflite_fp16"}
    for a in m.artifacts:
        assert a.inputs[0].shape == [1, 48, 64, 3] and a.inputs[0].layout == "NHWC"
        assert a.verify["status"] == "pass", a.verify
    assert not (tmp_path / "model.onnx").exists()  # ONNX was only the road


def test_unknown_format_and_unwritable_folder(tiny_classifier):
    with pytest.raises(EdgeDermError, match="did you mean 'tflite'"):
        export(tiny_classifier, "/tmp/x", formats=["tflitee"], verify=False)
    with pytest.raises(EdgeDermError, match="not writable"):
        export(tiny_classifier, "/proc/edgederm-out", formats=["onnx"], verify=False)


def test_interrupted_export_leaves_no_artifact(tiny_classifier, tmp_path, monkeypatch):
    import onnxslim

    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(onnxslim, "slim", interrupted)
    with pytest.raises(KeyboardInterrupt):
        export(tiny_classifier, tmp_path, formats=["onnx"], verify=False)
    assert not list(tmp_path.glob("*.onnx")) and not list(tmp_path.glob(".partial-*"))


def test_no_verify_is_recorded(tiny_classifier, tmp_path):
    export(tiny_classifier, tmp_path, formats=["onnx"], verify=False)
    m = Manifest.load(tmp_path)
    assert m.artifact("onnx_fp32").verify == {"status": "skipped", "reason": "--no-verify given"}
    assert m.steps[-1]["stage"] == "verify" and m.steps[-1]["skipped"] is True


# --- injected faults: a converter that gets preprocessing wrong must fail the gate --------------
def _drops_normalisation(model, x, mean, std):
    return model(x * std + mean)  # the artifact undoes the normalisation the app applies


def _swaps_rgb_bgr(model, x, mean, std):
    return model(x.flip(1))


def _reads_nhwc_as_nchw(model, x, mean, std):
    return model(x.reshape(x.shape[0], 3, x.shape[1], x.shape[2]))  # reshape where a permute belongs


def _right_nhwc(model, x, mean, std):
    return model(x.permute(0, 3, 1, 2))


class _Wrapped(torch.nn.Module):
    def __init__(self, model, fn, card):
        super().__init__()
        self.model, self.fn = model, fn
        self.register_buffer("mean", torch.tensor(card.preprocessing.mean).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(card.preprocessing.std).view(1, 3, 1, 1))

    def forward(self, x):
        return self.fn(self.model, x, self.mean, self.std)


def _artifact_for(fn, tiny_classifier, tmp_path):
    from edgederm.checkpoint import load_checkpoint
    from edgederm.export import manifest_for
    from edgederm.manifest import record_file
    from edgederm.manifest import Artifact, TensorSpec

    model, card = load_checkpoint(tiny_classifier)
    manifest = manifest_for(card, Path(tiny_classifier), "faulty")
    h, w = card.preprocessing.input_size
    nhwc = fn in (_reads_nhwc_as_nchw, _right_nhwc)
    shape = [1, h, w, 3] if nhwc else [1, 3, h, w]
    path = tmp_path / "model.onnx"
    with torch.no_grad():
        torch.onnx.export(_Wrapped(model, fn, card).eval(), (torch.randn(*shape),), str(path), dynamo=False,
                          opset_version=17, input_names=["input"], output_names=["logits"])
    artifact = Artifact("onnx_fp32", str(path), "onnx", "fp32",
                        [TensorSpec("input", shape, "float32", "NHWC" if nhwc else "NCHW")],
                        [TensorSpec("logits", [1, len(manifest.classes)], "float32", "NC")])
    record_file(artifact, tmp_path)
    manifest.put(artifact)
    return model, manifest


@pytest.mark.parametrize("fault", [_drops_normalisation, _swaps_rgb_bgr, _reads_nhwc_as_nchw],
                         ids=["drops_normalisation", "swaps_rgb_bgr", "nchw_fed_as_nhwc"])
def test_gate_catches_faulty_converter(fault, tiny_classifier, synthetic_root, tmp_path):
    from edgederm.verify import verification_arrays, verify_manifest

    model, manifest = _artifact_for(fault, tiny_classifier, tmp_path)
    images, targets = verification_arrays(manifest, synthetic_root, 64)
    [result] = verify_manifest(manifest, tmp_path, model, images, targets)
    assert result.status == "fail", result.figures
    assert result.reason.startswith("onnx_fp32: ")


def test_correct_nhwc_artifact_passes(tiny_classifier, synthetic_root, tmp_path):
    """Control for the faults above: the same NHWC route done right (permute, not reshape) passes."""
    from edgederm.verify import verification_arrays, verify_manifest

    model, manifest = _artifact_for(_right_nhwc, tiny_classifier, tmp_path)
    images, targets = verification_arrays(manifest, synthetic_root, 64)
    [result] = verify_manifest(manifest, tmp_path, model, images, targets)
    assert result.status == "pass", result.reason
    assert np.isclose(result.figures["top1_agreement"], 1.0)


# --- the format registry drives export ------------------------------------------------------
def toy_exporter(model, manifest, folder, stem, precisions, **_):
    """A registered test format: writes one file per precision, made from the ONNX file it requires."""
    from edgederm.manifest import Artifact, TensorSpec

    assert (Path(folder) / f"{stem}.onnx").exists(), "a required format is made first"
    made = []
    for p in precisions:
        path = Path(folder) / f"{stem}_{p}.toy"
        path.write_bytes(b"toy " + p.encode())
        made.append(Artifact(name=f"toy_{p}", path=str(path), format="toy", precision=p,
                             inputs=[TensorSpec("input", [1, 3, 48, 64], "float32", "NCHW")],
                             outputs=[TensorSpec("logits", [1, 7], "float32", "NC")], converter="toy"))
    return made


def test_a_newly_registered_format_is_exported_with_no_branch_in_export(tiny_classifier, tmp_path, monkeypatch):
    from converters import FORMATS, Format

    monkeypatch.setitem(FORMATS._entries, "toy", Format("toy", ".toy", ("torch2onnx",), ("a", "b"), ("a", "b"), "none",
                                                        "NCHW", exporter="tests.test_export:toy_exporter",
                                                        requires=("onnx",), per_precision=True))
    outcome = export(tiny_classifier, tmp_path / "e", formats=["toy"], verify=False)
    assert not outcome.failures, outcome.failures
    m = Manifest.load(tmp_path / "e")
    assert [a.name for a in m.artifacts] == ["toy_a", "toy_b"]  # ONNX was only the road: removed again
    assert not (tmp_path / "e" / "model.onnx").exists()
    assert all(m.artifact_file(tmp_path / "e", a) for a in m.artifacts)
