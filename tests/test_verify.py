"""Gate logic and comparison figures on hand-made outputs."""

import numpy as np
import pytest

from edgederm.verify import DEFAULT_GATES, Gate, compare, gate_for, judge


def test_identical_outputs_pass_every_gate():
    logits = np.array([[2.0, 0.0, -1.0], [0.0, 3.0, 0.0]])
    f = compare("classification", logits, logits.copy(), np.array([0, 1]), got_is_prob=False)
    assert f["max_abs_prob"] == 0 and f["top1_agreement"] == 1.0
    assert judge("x", "classification", f, DEFAULT_GATES["fp32"]) == ("pass", "")


def test_flipped_top1_fails_with_named_figure():
    ref = np.array([[2.0, 0.0], [0.0, 2.0]])
    got = np.array([[2.0, 0.0], [2.0, 0.0]])
    f = compare("classification", ref, got, np.array([0, 1]), got_is_prob=False)
    assert f["top1_agreement"] == 0.5 and f["balanced_accuracy_artifact"] == 0.5
    status, reason = judge("tflite_fp16", "classification", f, gate_for("fp16"))
    assert status == "fail" and reason.startswith("tflite_fp16: top1_agreement 0.5 fails the gate >= 0.99")


def test_probability_outputs_are_not_softmaxed_twice():
    ref = np.log(np.array([[0.7, 0.2, 0.1]]))
    f = compare("classification", ref, np.array([[0.7, 0.2, 0.1]]), np.array([0]), got_is_prob=True)
    assert f["max_abs_prob"] == pytest.approx(0.0, abs=1e-12)


def test_mask_figures():
    ref = np.full((2, 1, 4, 4), -5.0)
    ref[:, :, :2] = 5.0  # top half lesion
    got = ref.copy()
    got[1, 0, 0, 0] = -5.0  # one pixel lost in image 2: Dice 14/15
    truth = (ref[:, 0] > 0).astype(np.uint8)
    f = compare("segmentation", ref, got, truth, got_is_prob=False)
    assert f["mask_dice_mean"] == pytest.approx((1 + 14 / 15) / 2)
    assert f["dice_original"] == 1.0
    assert judge("m", "segmentation", f, Gate(min_mask_dice=0.99))[0] == "fail"
    assert judge("m", "segmentation", f, Gate(min_mask_dice=0.95))[0] == "pass"


def test_unknown_precision_uses_int8_gate():
    assert gate_for("int16") == DEFAULT_GATES["int8"]
    assert gate_for("fp16", {"fp16": Gate(min_top1_agreement=0.5)}).min_top1_agreement == 0.5


def test_saturated_softmax_cannot_hide_a_logit_error():
    """Probabilities agree to 0 and top-1 is identical, yet the logits differ: the logit gates fail."""
    rng = np.random.default_rng(0)
    ref = rng.normal(0, 1, (16, 7))
    ref[np.arange(16), rng.integers(0, 7, 16)] += 200.0  # saturated: softmax is one-hot in float64
    got = ref.copy()
    got[:, :] += rng.normal(0, 5, (16, 7)) * (ref < 100)  # the non-winning logits are wrong
    f = compare("classification", ref, got, np.zeros(16, int), got_is_prob=False)
    assert f["max_abs_prob"] < 1e-60 and f["top1_agreement"] == 1.0
    assert judge("x", "classification", f, Gate(max_abs_prob=1e-3, min_top1_agreement=0.995))[0] == "pass"
    assert f["logit_rel_error"] > 0.01
    status, reason = judge("tflite_fp32", "classification", f, DEFAULT_GATES["fp32"])
    assert status == "fail" and ("logit_cosine_min" in reason or "logit_rel_error" in reason)


def test_logit_figures_ignore_a_softmax_invariant_shift():
    ref = np.array([[2.0, 0.0, -1.0], [0.5, 3.0, 0.0]])
    f = compare("classification", ref, ref + 10.0, np.array([0, 1]), got_is_prob=False)
    assert f["logit_cosine_min"] == pytest.approx(1.0) and f["logit_rel_error"] == pytest.approx(0.0, abs=1e-12)
    assert judge("x", "classification", f, DEFAULT_GATES["fp32"]) == ("pass", "")


def test_probability_outputs_have_no_logit_figures_and_skip_the_logit_gate():
    ref = np.log(np.array([[0.7, 0.2, 0.1]]))
    f = compare("classification", ref, np.array([[0.7, 0.2, 0.1]]), np.array([0]), got_is_prob=True)
    assert f["logit_cosine_min"] is None and f["logit_rel_error"] is None
    assert judge("coreml_fp16", "classification", f, DEFAULT_GATES["fp16"]) == ("pass", "")


def test_saturated_masks_are_caught_by_mask_logits():
    ref = np.full((2, 1, 8, 8), -40.0)
    ref[:, :, :4] = 40.0
    got = ref * 0.5  # same masks, same sigmoid to ~1e-9, half the logits
    f = compare("segmentation", ref, got, (ref[:, 0] > 0).astype(np.uint8), got_is_prob=False)
    assert f["mask_dice_mean"] == 1.0 and f["max_abs_prob"] < 1e-8
    assert f["logit_cosine_min"] == pytest.approx(1.0) and f["logit_rel_error"] == pytest.approx(0.5)
    status, reason = judge("onnx_fp32", "segmentation", f, DEFAULT_GATES["fp32"])
    assert status == "fail" and reason.startswith("onnx_fp32: logit_rel_error 0.5 fails the gate <= 0.01")


def test_int8_gate_reports_logits_without_gating_them():
    assert DEFAULT_GATES["int8"].min_logit_cosine is None and DEFAULT_GATES["int8"].max_logit_rel_error is None
    assert DEFAULT_GATES["fp16"].min_logit_cosine is not None


def test_non_finite_logits_are_counted_and_fail_a_logit_gate():
    ref = np.array([[2.0, 0.0, -60.0], [0.5, 3.0, 0.0]])
    got = ref.copy()
    got[0, 2] = -np.inf  # the probabilities agree (that class's is ~1e-27 either way), the logit does not
    f = compare("classification", ref, got, np.array([0, 1]), got_is_prob=False)
    assert f["logit_nonfinite"] == 1 and np.isfinite(f["logit_cosine_min"]) and np.isfinite(f["logit_rel_error"])
    status, reason = judge("onnx_fp32", "classification", f, DEFAULT_GATES["fp32"])
    assert status == "fail" and reason.startswith("onnx_fp32: logit_nonfinite 1 fails the gate <= 0")
    assert judge("onnx_int8", "classification", f, Gate(min_top1_agreement=0.5))[0] == "pass"
