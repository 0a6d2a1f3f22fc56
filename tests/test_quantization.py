"""Post-training quantization: every scheme x format on the tiny models, calibration, bad inputs, registry.

One export + one ``quantize`` call per model and route (module-scope fixtures), so onnx2tf runs
once per model; the TFLite and W8A8 ones take minutes and are marked slow.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from edgederm.errors import EdgeDermError
from edgederm.manifest import Manifest
from edgederm.verify import Gate
from quantization import (SCHEMES, CalibrationConfig, CalibrationSet, QuantContext, load_calibration, quantize,
                          resolve, run_scheme, scheme_names, summary_rows)

# Tiny models on a dozen synthetic test images: the task-metric drops are noise at that size, so
# these tests gate parity loosely and check the figures are recorded; real gates: docs/quantization.md.
LOOSE = {p: Gate(min_top1_agreement=0.5, min_mask_dice=0.5) for p in
         ("int8", "int8_floatio", "dynamic", "int16x8", "int8_nncf", "int8_qdq", "w8", "palette6", "palette4", "w8a8")}
FAST_SCHEMES = ["int8:onnx", "int8_nncf:onnx", "int8_qdq:onnx", "fp16:coreml", "w8:coreml", "palette6:coreml", "palette4:coreml"]
TFLITE_SCHEMES = ["fp16:tflite", "dynamic:tflite", "int8:tflite", "int8_floatio:tflite", "int16x8:tflite"]
SLOW_SCHEMES = TFLITE_SCHEMES + ["w8a8:coreml"]


@pytest.fixture(scope="module")
def cls_export(tiny_classifier, synthetic_root, tmp_path_factory):
    from edgederm.export import export

    folder = tmp_path_factory.mktemp("q_cls") / "export"
    outcome = export(tiny_classifier, folder, formats=["onnx", "coreml"], data_root=synthetic_root, n_verify=32)
    assert not outcome.failures
    return folder


def _copy(folder: Path, tmp_path_factory, name: str) -> Path:
    target = tmp_path_factory.mktemp(name) / "export"
    shutil.copytree(folder, target)
    return target


@pytest.fixture(scope="module")
def cls_fast(cls_export, synthetic_root, tmp_path_factory):
    folder = _copy(cls_export, tmp_path_factory, "q_fast")
    return quantize(folder, FAST_SCHEMES, data_root=synthetic_root, gates=LOOSE, n_verify=64)


@pytest.fixture(scope="module")
def cls_slow(cls_export, synthetic_root, tmp_path_factory):
    folder = _copy(cls_export, tmp_path_factory, "q_slow")
    return quantize(folder, SLOW_SCHEMES, data_root=synthetic_root, gates=LOOSE, n_verify=64)


@pytest.fixture(scope="module")
def seg_export(tiny_segmenter, synthetic_root, tmp_path_factory):
    from edgederm.export import export

    folder = tmp_path_factory.mktemp("q_seg") / "export"
    outcome = export(tiny_segmenter, folder, formats=["onnx"], data_root=synthetic_root, n_verify=16)
    assert not outcome.failures
    return folder


def _check(outcome, name: str, runnable: bool = True):
    m = Manifest.load(outcome.folder)
    a = m.artifact(name)
    assert (outcome.folder / a.path).exists() and a.sha256 and a.size_bytes > 0
    assert a.verify and a.verify["status"] in (("pass", "fail") if runnable else ("skipped",)), a.verify
    return m, a


# --- every scheme x format on the tiny classifier ------------------------------------------------
@pytest.mark.parametrize("key", FAST_SCHEMES)
@pytest.mark.coreml
def test_fast_scheme_on_classifier(key, cls_fast):
    assert not cls_fast.failures, cls_fast.failures
    record = SCHEMES.get(key)
    m, a = _check(cls_fast, record.artifact, runnable=record.format != "coreml")
    fp32 = m.artifact("onnx_fp32")
    if record.format == "onnx":
        assert a.verify["status"] == "pass", a.verify["reason"]
        f = a.verify["figures"]
        assert f["top1_agreement"] >= 0.9
        for k in ("balanced_accuracy_drop", "auroc_drop", "auroc_original", "auroc_artifact"):
            assert k in f
        assert a.inputs == fp32.inputs and a.outputs == fp32.outputs  # float I/O like the fp32 file
        import onnx

        props = {p.key for p in onnx.load(str(cls_fast.folder / a.path)).metadata_props}
        assert {"edgederm.classes", "edgederm.preprocessing"} <= props
        ops = {n.op_type for n in onnx.load(str(cls_fast.folder / a.path)).graph.node}
        assert ("QLinearConv" in ops) if key == "int8:onnx" else ("QuantizeLinear" in ops)
        assert a.size_bytes < 0.6 * fp32.size_bytes
    else:  # Core ML on Linux: the structural check export uses, numeric parity skipped with the reason
        s = a.verify["figures"]["structure"]
        assert s["input_type"] == "imageType" and s["classifier_labels"] == m.classes
        if record.scheme in ("w8", "palette6", "palette4"):
            op = "constexpr_affine_dequantize" if record.scheme == "w8" else "constexpr_lut_to_dense"
            assert s["ops"].get(op, 0) > 0, s["ops"]
            assert a.size_bytes < m.artifact("coreml_fp16").size_bytes
    if key == "fp16:coreml":  # delegated to export: the same file, not made again
        assert a.converter.startswith("torch2coreml")


@pytest.mark.coreml
def test_quantize_records_calibration_and_steps(cls_fast):
    m = Manifest.load(cls_fast.folder)
    step = next(s for s in m.steps if s["stage"] == "quantize")
    c = step["calibration"]
    assert c["split"] == "train" and c["count"] == sum(c["per_class"].values()) and len(c["ids_sha256"]) == 64
    assert step["artifacts"]["onnx_int8"]["config"]["type"] == "OrtStaticConfig"
    assert any("calibrated on" in n for n in m.artifact("onnx_int8").notes)
    assert m.steps[-1]["stage"] == "verify" and set(m.steps[-1]["results"]) == set(cls_fast.produced)
    rows = summary_rows(cls_fast)
    assert {r["artifact"] for r in rows} == set(cls_fast.produced)
    assert all(float(r["× fp32"]) < 1 for r in rows if r["artifact"] != "coreml_fp16")


@pytest.mark.slow
@pytest.mark.parametrize("key", SLOW_SCHEMES)
@pytest.mark.tflite
@pytest.mark.coreml
def test_slow_scheme_on_classifier(key, cls_slow):
    assert not cls_slow.failures, cls_slow.failures
    record = SCHEMES.get(key)
    m, a = _check(cls_slow, record.artifact, runnable=record.format != "coreml")
    if record.format == "coreml":
        s = a.verify["figures"]["structure"]
        assert s["ops"].get("quantize", 0) > 0 and s["ops"].get("dequantize", 0) > 0, s["ops"]
        return
    assert a.verify["status"] == "pass", a.verify["reason"]
    h, w = m.preprocessing.input_size
    assert a.inputs[0].shape == [1, h, w, 3] and a.inputs[0].layout == "NHWC"
    io = {"int8": "int8", "int16x8": "float32"}.get(record.scheme, "float32")
    assert a.inputs[0].dtype == io and a.outputs[0].dtype == io
    if record.scheme == "int8":
        assert a.inputs[0].quantization and a.outputs[0].quantization
        # MobileNetV3's int8 HARD_SWISH / SE gate run outside XNNPACK: the manifest says so
        assert any("left to LiteRT's own kernels: HARD_SWISH" in n for n in a.notes), a.notes


@pytest.mark.slow
@pytest.mark.tflite
@pytest.mark.coreml
def test_tflite_int8_is_calibrated_with_the_models_preprocessing(cls_slow, synthetic_root):
    """The int8 input's range is the range of *our* normalised calibration data: not onnx2tf's
    MS-COCO sample, not raw 0..1 pixels, not NCHW data read as NHWC."""
    m = Manifest.load(cls_slow.folder)
    q = m.artifact("tflite_int8").inputs[0].quantization
    lo, hi = (-128 - q["zero_point"]) * q["scale"], (127 - q["zero_point"]) * q["scale"]
    x = load_calibration(m, CalibrationConfig(), synthetic_root).inputs("NHWC")
    assert abs(lo - x.min()) < 2 * q["scale"] and abs(hi - x.max()) < 2 * q["scale"], (lo, hi, x.min(), x.max())


@pytest.mark.coreml
def test_relu6_rewrite_is_exact(cls_export, tmp_path):
    import onnx
    import onnxruntime as ort

    from quantization.tflite import relu6_activations

    source = cls_export / "model.onnx"
    rewritten = relu6_activations(source, tmp_path / "model.onnx")
    ops = {n.op_type for n in onnx.load(str(rewritten)).graph.node}
    assert {"HardSwish", "HardSigmoid"} & {n.op_type for n in onnx.load(str(source)).graph.node}
    assert not {"HardSwish", "HardSigmoid"} & ops and "Clip" in ops
    x = np.random.default_rng(0).normal(0, 1, [d.dim_value for d in onnx.load(str(source)).graph.input[0]
                                               .type.tensor_type.shape.dim]).astype(np.float32)
    a, b = (ort.InferenceSession(str(p)).run(None, {"input": x})[0] for p in (source, rewritten))
    assert np.abs(a - b).max() < 1e-4


@pytest.mark.slow
@pytest.mark.tflite
@pytest.mark.coreml
def test_relu6_activations_make_int8_fully_delegated(cls_export, synthetic_root, tmp_path):
    from quantization import TFLiteConfig
    from quantization.tflite import xnnpack_coverage

    folder = tmp_path / "export"
    shutil.copytree(cls_export, folder)
    with QuantContext(folder, calibration=CalibrationConfig(size=28), data_root=synthetic_root) as ctx:
        a = run_scheme(ctx, "int8:tflite", TFLiteConfig("int8", relu6_activations=True), name="tflite_int8_relu6")
    assert xnnpack_coverage(folder / a.path) == (1, {}) and "as ReLU6" in a.converter
    assert not any("left to LiteRT" in n for n in a.notes)


# --- the tiny segmenter ---------------------------------------------------------------------------
def test_onnx_int8_segmenter(seg_export, synthetic_root, tmp_path_factory):
    folder = _copy(seg_export, tmp_path_factory, "q_seg_onnx")
    outcome = quantize(folder, "int8", data_root=synthetic_root, gates=LOOSE, n_verify=32)
    assert outcome.produced == ["onnx_int8"] and not outcome.failures
    _, a = _check(outcome, "onnx_int8")
    f = a.verify["figures"]
    for k in ("mask_dice_mean", "dice_drop", "thresholded_jaccard_drop", "thresholded_jaccard_original"):
        assert k in f
    assert outcome.calibration["per_class"] is None and outcome.calibration["method"].startswith("random")


@pytest.mark.slow
@pytest.mark.tflite
def test_tflite_int8_segmenter(seg_export, synthetic_root, tmp_path_factory):
    folder = _copy(seg_export, tmp_path_factory, "q_seg_tflite")
    outcome = quantize(folder, ["int8:tflite"], data_root=synthetic_root, gates=LOOSE, n_verify=32)
    assert not outcome.failures, outcome.failures
    m, a = _check(outcome, "tflite_int8")
    h, w = m.preprocessing.input_size
    assert a.outputs[0].shape == [1, h, w, 1] and a.outputs[0].dtype == "int8"
    assert "mask_dice_mean" in a.verify["figures"]


# --- calibration -------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def cls_manifest(cls_export):
    return Manifest.load(cls_export)


@pytest.mark.coreml
def test_default_calibration_is_a_stratified_train_sample(cls_manifest, synthetic_root):
    from edgederm.data import load_dataset

    cal = load_calibration(cls_manifest, CalibrationConfig(size=14), synthetic_root)
    h, w = cls_manifest.preprocessing.input_size
    assert cal.images.shape == (14, h, w, 3) and cal.images.dtype == np.uint8
    assert cal.record["count"] == 14 and cal.record["split"] == "train"
    assert cal.record["per_class"] == {c: 2 for c in cls_manifest.classes}  # 7 classes x 2
    again = load_calibration(cls_manifest, CalibrationConfig(size=14), synthetic_root)
    assert again.record["ids_sha256"] == cal.record["ids_sha256"]
    other = load_calibration(cls_manifest, CalibrationConfig(size=14, seed=1), synthetic_root)
    assert other.record["ids_sha256"] != cal.record["ids_sha256"]
    test_ids = {s.id for s in load_dataset(synthetic_root / "derm7").split("test").samples}
    train = load_dataset(synthetic_root / "derm7").split("train").subset(14, seed=0)
    assert not test_ids & {s.id for s in train.samples}


@pytest.mark.coreml
def test_calibration_inputs_are_the_manifests_normalisation(cls_manifest, synthetic_root):
    """What every quantizer is fed: (pixel * scale - mean) / std with the manifest's numbers, in the asked layout."""
    cal = load_calibration(cls_manifest, CalibrationConfig(size=7), synthetic_root)
    prep = cls_manifest.preprocessing
    nchw, nhwc = cal.inputs("NCHW"), cal.inputs("NHWC")
    expected = (cal.images.astype(np.float32) / 255 - np.array(prep.mean, np.float32)) / np.array(prep.std, np.float32)
    np.testing.assert_allclose(nhwc, expected, atol=1e-6)
    np.testing.assert_array_equal(nchw, nhwc.transpose(0, 3, 1, 2))
    wrong = CalibrationSet(cal.images, prep.replace(mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5)))
    assert not np.allclose(wrong.inputs("NHWC"), expected, atol=1e-3)


@pytest.mark.coreml
def test_ort_int8_calibrated_with_the_models_preprocessing(cls_fast, synthetic_root):
    """The quantized ONNX input's range is the normalised calibration data's (a wrong mean/std would move it)."""
    import onnx
    from onnx import numpy_helper

    m = Manifest.load(cls_fast.folder)
    proto = onnx.load(str(cls_fast.folder / m.artifact("onnx_int8").path))
    first_q = next(n for n in proto.graph.node if n.op_type == "QuantizeLinear" and n.input[0] == "input")
    inits = {i.name: numpy_helper.to_array(i) for i in proto.graph.initializer}
    scale, zero = float(inits[first_q.input[1]]), int(inits[first_q.input[2]])
    lo, hi = (0 - zero) * scale, (255 - zero) * scale
    x = load_calibration(m, CalibrationConfig(), synthetic_root).inputs("NCHW")
    lo_x, hi_x = min(x.min(), 0), max(x.max(), 0)
    # percentile ranges (the default) sit just inside the data's min..max and cover nearly all of it
    assert lo_x - 2 * scale <= lo and hi <= hi_x + 2 * scale and hi - lo >= 0.8 * (hi_x - lo_x), (lo, hi, lo_x, hi_x)
    raw = CalibrationSet(load_calibration(m, CalibrationConfig(), synthetic_root).images,
                         m.preprocessing.replace(mean=(0, 0, 0), std=(1, 1, 1))).inputs("NCHW")
    assert abs(hi - raw.max()) > 10 * scale  # un-normalised calibration would give another range: detectable


@pytest.mark.coreml
def test_calibration_from_image_folder(cls_manifest, synthetic_root, tmp_path):
    from PIL import Image

    for i, src in enumerate(sorted((synthetic_root / "derm7" / "images").glob("*.jpg"))[:5]):
        Image.open(src).resize((150, 100)).save(tmp_path / f"img{i}.png")  # any size: resized by the model's preprocessing
    (tmp_path / "notes.txt").write_text("not an image, ignored")
    cal = load_calibration(cls_manifest, CalibrationConfig(source=str(tmp_path), size=3), synthetic_root)
    h, w = cls_manifest.preprocessing.input_size
    assert cal.images.shape == (3, h, w, 3) and cal.record["per_class"] is None
    assert "random 3 of 5" in cal.record["method"]


@pytest.mark.coreml
def test_calibration_from_npy(cls_manifest, tmp_path):
    h, w = cls_manifest.preprocessing.input_size
    arr = np.random.default_rng(0).integers(0, 256, (6, h, w, 3), dtype=np.uint8)
    np.save(tmp_path / "c.npy", arr)
    cal = load_calibration(cls_manifest, CalibrationConfig(source=str(tmp_path / "c.npy")))
    np.testing.assert_array_equal(cal.images, arr)
    np.save(tmp_path / "f.npy", arr.astype(np.float32) / 255)  # 0..1 floats are pixels too
    np.testing.assert_array_equal(load_calibration(cls_manifest, CalibrationConfig(source=str(tmp_path / "f.npy"))).images, arr)


def _bad_npy(tmp_path, arr):
    path = tmp_path / "bad.npy"
    np.save(path, arr)
    return str(path)


@pytest.mark.parametrize("case, needles", [
    ("nchw", ["NCHW", "transpose(0, 2, 3, 1)"]),
    ("wrong_hw", ["the model takes", "resize"]),
    ("normalised", ["already normalised", "mean/std"]),
    ("one_image", ["batch axis"]),
    ("gray", ["channels last"]),
], ids=lambda v: v if isinstance(v, str) else "")
@pytest.mark.coreml
def test_bad_npy_is_one_line_naming_path_and_fix(case, needles, cls_manifest, tmp_path):
    h, w = cls_manifest.preprocessing.input_size
    rng = np.random.default_rng(0)
    arr = {"nchw": rng.integers(0, 256, (4, 3, h, w), dtype=np.uint8),
           "wrong_hw": rng.integers(0, 256, (4, h + 8, w, 3), dtype=np.uint8),
           "normalised": rng.normal(0, 1, (4, h, w, 3)).astype(np.float32),
           "one_image": rng.integers(0, 256, (h, w, 3), dtype=np.uint8),
           "gray": rng.integers(0, 256, (4, h, w, 1), dtype=np.uint8)}[case]
    path = _bad_npy(tmp_path, arr)
    with pytest.raises(EdgeDermError) as e:
        load_calibration(cls_manifest, CalibrationConfig(source=path))
    msg = str(e.value)
    assert "\n" not in msg and path in msg and f"[N, {h}, {w}, 3]" in msg
    for n in needles:
        assert n in msg, msg


@pytest.mark.coreml
def test_bad_calibration_sources(cls_manifest, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(EdgeDermError, match="holds no images"):
        load_calibration(cls_manifest, CalibrationConfig(source=str(empty)))
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "a.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(EdgeDermError, match=r"a\.jpg is corrupt or not an image"):
        load_calibration(cls_manifest, CalibrationConfig(source=str(broken)))
    with pytest.raises(EdgeDermError, match="does not exist"):
        load_calibration(cls_manifest, CalibrationConfig(source=str(tmp_path / "nope")))
    (tmp_path / "x.csv").write_text("a")
    with pytest.raises(EdgeDermError, match="neither a folder nor a .npy"):
        load_calibration(cls_manifest, CalibrationConfig(source=str(tmp_path / "x.csv")))
    with pytest.raises(EdgeDermError, match="at least 1"):
        load_calibration(cls_manifest, CalibrationConfig(size=0))


@pytest.mark.coreml
def test_cli_quantize_bad_calibration_is_one_line(cls_export, tmp_path):
    from tests.test_cli import assert_one_line_error, run_cli

    h, w = Manifest.load(cls_export).preprocessing.input_size
    path = _bad_npy(tmp_path, np.zeros((2, 3, h, w), np.uint8))
    folder = tmp_path / "export"
    shutil.copytree(cls_export, folder)
    r = run_cli("quantize", folder, "--scheme", "int8", "--format", "onnx", "--calibration", path)
    assert_one_line_error(r, path, "NCHW")


# --- registry and resolution ---------------------------------------------------------------------
def test_every_scheme_is_tested():
    # int8:coreml is w8:coreml; int8:executorch is tested in tests/test_executorch.py
    assert set(SCHEMES.names()) - {"int8:coreml", "int8:executorch"} == set(FAST_SCHEMES + SLOW_SCHEMES)


def test_registry_records():
    import dataclasses
    import importlib

    for key, s in SCHEMES.items():
        assert key == f"{s.scheme}:{s.format}" and s.artifact.startswith(s.format + "_") and s.description
        module, _, fn = s.handler.partition(":")
        assert callable(getattr(importlib.import_module(module), fn)), s.handler
        if s.config is not None:
            assert dataclasses.is_dataclass(s.config)
            with pytest.raises(dataclasses.FrozenInstanceError):
                setattr(s.config, dataclasses.fields(s.config)[0].name, None)
    assert SCHEMES.get("int8:coreml").artifact == SCHEMES.get("w8:coreml").artifact
    with pytest.raises(ValueError, match="registered twice"):
        from quantization import register_scheme

        register_scheme(SCHEMES.get("int8:onnx"))


def test_resolve():
    plan, notes = resolve("int8", ["tflite", "onnx", "coreml"])
    assert [s.artifact for s in plan] == ["tflite_int8", "onnx_int8", "coreml_w8"] and not notes
    plan, notes = resolve("dynamic,int8_nncf", ["tflite", "onnx"])
    assert [s.key for s in plan] == ["dynamic:tflite", "int8_nncf:onnx"]
    assert notes == ["dynamic: no onnx scheme (skipped)", "int8_nncf: no tflite scheme (skipped)"]
    assert [s.key for s in resolve(["w8:coreml", "int8:coreml"], [])[0]] == ["w8:coreml"]  # same artifact once
    with pytest.raises(EdgeDermError, match="did you mean 'int8'"):
        resolve("int9", ["onnx"])
    with pytest.raises(EdgeDermError, match="did you mean 'int8:onnx'"):
        resolve("int8:onnxx", ["onnx"])
    with pytest.raises(EdgeDermError, match="exists for coreml, not for onnx: pass --format coreml"):
        resolve("palette4", ["onnx"])
    with pytest.raises(EdgeDermError, match="did you mean 'tflite'"):
        resolve("int8", ["tflitee"])
    assert "int8" in scheme_names()


@pytest.mark.coreml
def test_run_scheme_with_another_config(cls_export, synthetic_root, tmp_path):
    """The escalation API: one context, a scheme with a varied config under another artifact name."""
    from quantization import OrtStaticConfig

    folder = tmp_path / "export"
    shutil.copytree(cls_export, folder)
    with QuantContext(folder, calibration=CalibrationConfig(size=14), data_root=synthetic_root) as ctx:
        a = run_scheme(ctx, "int8:onnx", OrtStaticConfig(quant_format="QDQ", per_channel=False), name="onnx_int8_qdq")
        assert a.name == "onnx_int8_qdq" and a.path == "model_int8_qdq.onnx" and "QDQ" in a.converter
        assert ctx.manifest.artifact("onnx_int8_qdq") is a and ctx.calibration_record["count"] == 14
        work = ctx.work
    assert not work.exists()


# --- gates ------------------------------------------------------------------------------------------
def test_task_metric_gates():
    from edgederm.verify import DEFAULT_GATES, compare, judge

    y = np.array([0, 1, 2, 0, 1, 2])
    ref = np.eye(3)[y] * 4.0
    got = ref.copy()
    got[0] = [0, 4, 0]  # one class-0 image flips
    f = compare("classification", ref, got, y, got_is_prob=False)
    assert f["balanced_accuracy_drop"] == pytest.approx(1 / 6) and f["auroc_drop"] > 0
    status, reason = judge("onnx_int8", "classification", f, Gate(max_balanced_accuracy_drop=0.1))
    assert status == "fail" and reason.startswith("onnx_int8: balanced_accuracy_drop 0.166667 fails the gate <= 0.1")
    assert judge("x", "classification", f, Gate(max_balanced_accuracy_drop=0.2, max_auroc_drop=1))[0] == "pass"
    g = DEFAULT_GATES["int8"]
    assert g.max_balanced_accuracy_drop == 0.005 and g.max_auroc_drop == 0.005
    # segmentation: Dice and thresholded Jaccard against the truth, artifact vs original
    truth = np.zeros((2, 4, 4), np.uint8)
    truth[:, :2] = 1
    ref_s = np.where(truth[:, None] > 0, 5.0, -5.0)
    got_s = ref_s.copy()
    got_s[1, 0, 0] = -5.0  # half of image 2's lesion lost: its IoU 0.5 < 0.65 counts 0
    f = compare("segmentation", ref_s, got_s, truth, got_is_prob=False)
    assert f["thresholded_jaccard_original"] == 1.0 and f["thresholded_jaccard_drop"] == pytest.approx(0.5)
    assert f["dice_drop"] == pytest.approx((1 - 2 / 3) / 2)
    assert judge("m", "segmentation", f, Gate(max_thresholded_jaccard_drop=0.005))[0] == "fail"
    # AUROC undefined (one class present): skipped, not failed
    f = compare("classification", ref[:1], ref[:1], y[:1], got_is_prob=False)
    assert np.isnan(f["auroc_drop"]) and judge("x", "classification", f, g)[0] == "pass"


def test_cli_list_and_export_quantize(tiny_classifier, synthetic_root, tmp_path):
    from tests.test_cli import run_cli

    r = run_cli("quantize", "--list")
    assert r.returncode == 0 and "int8:tflite" in r.stdout and "w8a8:coreml" in r.stdout
    r = run_cli("export", tiny_classifier, "--to", "onnx", "--out", tmp_path, "--quantize", "int8",
                "--data", synthetic_root, "--verify-images", "32", "--gate", "int8:max_auroc_drop:1",
                "--gate", "int8:max_balanced_accuracy_drop:1", "--gate", "int8:min_top1_agreement:0.5",
                env_extra={"EDGEDERM_QUIET": "1"})
    assert r.returncode == 0, r.stderr
    assert "onnx_int8" in r.stdout
    m = Manifest.load(tmp_path)
    assert [s["stage"] for s in m.steps] == ["export", "verify", "quantize", "verify"]
    assert m.artifact("onnx_int8").verify["status"] == "pass"


@pytest.mark.slow
@pytest.mark.tflite
@pytest.mark.coreml
def test_tflite_fallback_and_qat_rungs_build_runnable_int8(cls_export, synthetic_root, tmp_path):
    """The TFLite rungs of --max-drop: the debugger's fallback re-quantization and QAT weights -> TFLite int8."""
    from device_bench.runners import open_runner
    from quantization.ladder_schemes import qat_tflite_scheme, tflite_fallback_scheme
    from quantization.diagnose import DiagnoseConfig, diagnose_tflite
    from quantization.qat import QATConfig
    from quantization.tflite import TFLiteFallbackConfig, saved_model_dir

    folder = tmp_path / "export"
    shutil.copytree(cls_export, folder)
    with QuantContext(folder, calibration=CalibrationConfig(size=12), data_root=synthetic_root) as ctx:
        x = ctx.calibration.inputs("NHWC")
        targets = np.zeros(len(x), np.int64)
        diag = diagnose_tflite(saved_model_dir(ctx), x, x, targets, "classification",
                               DiagnoseConfig(fallback=1, stat_images=4), work=ctx.work / "debug")
        assert diag.layers and diag.fallbacks and diag.settings["calibrated"]
        nodes = diag.layers[0].fallback_nodes
        fb = run_scheme(ctx, tflite_fallback_scheme(), TFLiteFallbackConfig(tuple(nodes), diag.settings["calibrated"]),
                        name="tflite_int8_fallback")
        qat = run_scheme(ctx, qat_tflite_scheme(2), QATConfig(steps=2, batch_size=4, train_images=16,
                                                                calibration_images=8), name="tflite_int8_qat")
        for art in (fb, qat):
            path = folder / art.path
            assert path.exists() and art.precision == "int8" and art.inputs[0].dtype == "float32"
            runner = open_runner(path, "tflite")
            details = runner.interpreter.get_tensor_details()
            assert any(np.dtype(d["dtype"]) == np.int8 for d in details), "weights/activations must be int8"
        assert any("kept in float" in n for n in fb.notes) and "QAT" in qat.converter
        # the fallback's kept op runs in float: its output tensor is float32 in the file
        kept = {d["name"]: np.dtype(d["dtype"]) for d in open_runner(folder / fb.path, "tflite").interpreter.get_tensor_details()}
        assert kept.get(nodes[0]) == np.float32, (nodes[0], kept.get(nodes[0]))


# --- the --max-drop ladder, unstubbed ---------------------------------------------------------
def test_control_ladder_installs_a_verified_artifact_on_a_real_export(seg_export, synthetic_root, tmp_path_factory):
    """The ladder's staging must keep the manifest's paths relative (a stubbed test once hid that every
    rung was refused by the manifest's path check and the ladder never produced an artifact)."""
    from quantization.control import ControlConfig, control_folder

    folder = _copy(seg_export, tmp_path_factory, "q_control")
    before = {a.name for a in Manifest.load(folder).artifacts}
    result = control_folder(folder, ControlConfig(max_drop_pt=100.0, format="onnx", val_images=8, qat_steps=0,
                                                  diagnose_fallback=0, n_verify=8),
                            data_root=synthetic_root, gates=LOOSE)
    assert result.chosen is not None, result.why
    assert result.chosen.verdict == "chosen" and result.chosen.metric is not None
    m = Manifest.load(folder)
    added = {a.name for a in m.artifacts} - before
    assert len(added) == 1, added
    art = m.artifact(added.pop())
    assert not Path(art.path).is_absolute() and (folder / art.path).exists()
    m.artifact_file(folder, art)  # its bytes prove their sha256
    assert not list(folder.glob(".edgederm-control-*")), "the staging folder is removed"
