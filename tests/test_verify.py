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
