"""Metrics checked against values worked out by hand (not by calling scikit-learn), and the bootstrap."""

from __future__ import annotations

import math

import numpy as np
import pytest

from edgederm.metrics import (Estimate, balanced_accuracy, classification_metrics, macro_auroc,
                              per_image_overlap, segmentation_metrics, segmentation_scores,
                              sensitivity_at_specificity, with_ci)

# --- a tiny 3-class example, worked by hand -----------------------------------------------------------
#
#   i  y        prob (nv, mel, bcc)   pred
#   0  nv  0    0.80 0.10 0.10        nv
#   1  nv  0    0.70 0.20 0.10        nv
#   2  nv  0    0.60 0.10 0.30        nv
#   3  nv  0    0.30 0.50 0.20        mel
#   4  mel 1    0.20 0.70 0.10        mel
#   5  mel 1    0.50 0.40 0.10        nv
#   6  bcc 2    0.10 0.20 0.70        bcc
#   7  bcc 2    0.20 0.45 0.35        mel
#
# accuracy          = 5/8 = 0.625
# recall            nv 3/4, mel 1/2, bcc 1/2  -> balanced accuracy = (3/4 + 1/2 + 1/2)/3 = 7/12
# F1 = 2TP/(2TP+FP+FN): nv 6/8 = 3/4 (FP i5, FN i3); mel 2/5 (FP i3,i7; FN i5); bcc 2/3 (FN i7)
#                   -> macro F1 = (3/4 + 2/5 + 2/3)/3 = 109/180
# AUROC one-vs-rest, counting (positive, negative) pairs ranked correctly:
#   nv : positives .8 .7 .6 .3 vs negatives .2 .5 .1 .2 -> 4+4+4+3 = 15 of 16
#   mel: positives .7 .4 vs negatives .1 .2 .1 .5 .2 .45 -> 6+4 = 10 of 12
#   bcc: positives .7 .35 vs negatives .1 .1 .3 .2 .1 .1 -> 6+6 = 12 of 12
#                   -> macro AUROC = (15/16 + 10/12 + 1)/3 = 133/144
# mel sensitivity at 80 % specificity: 6 negatives, so at most 1 false positive (1/6 <= 0.2).
#   threshold .5 admits i4 (TP) and i3 (FP); .45 would admit a 2nd FP -> sensitivity 1/2
# ECE, 15 bins of width 1/15 on the top-1 confidence: .45 (wrong) alone; .5 .5 (both wrong) share
#   one; .6 (right) alone; .7 .7 .7 (right) share one; .8 (right) alone -> sum of |acc - conf| * n
#   = .45 + 2(.5) + .4 + 3(.3) + .2 = 2.95, over 8 images = 59/160
CLASSES = ("nv", "mel", "bcc")
Y = np.array([0, 0, 0, 0, 1, 1, 2, 2])
PROB = np.array([
    [0.80, 0.10, 0.10],
    [0.70, 0.20, 0.10],
    [0.60, 0.10, 0.30],
    [0.30, 0.50, 0.20],
    [0.20, 0.70, 0.10],
    [0.50, 0.40, 0.10],
    [0.10, 0.20, 0.70],
    [0.20, 0.45, 0.35],
])

HAND = {
    "accuracy": 5 / 8,
    "balanced_accuracy": 7 / 12,
    "macro_f1": 109 / 180,
    "macro_auroc": 133 / 144,
    "sensitivity_nv": 3 / 4,
    "sensitivity_mel": 1 / 2,
    "sensitivity_bcc": 1 / 2,
    "mel_sensitivity_at_spec80": 1 / 2,
    "ece": 59 / 160,
}


def test_classification_metrics_match_hand_computation():
    m = classification_metrics(Y, PROB, CLASSES, n_boot=0)
    assert set(m) == set(HAND)
    for name, expected in HAND.items():
        assert m[name].value == pytest.approx(expected, abs=1e-12), name
        assert math.isnan(m[name].low) and math.isnan(m[name].high), name  # n_boot=0


def test_hand_example_numbers_written_out():
    """The same values as decimals, so a typo in the fractions above cannot hide."""
    m = classification_metrics(Y, PROB, CLASSES, n_boot=0)
    assert m["accuracy"].value == pytest.approx(0.625)
    assert m["balanced_accuracy"].value == pytest.approx(0.583333, abs=1e-6)
    assert m["macro_f1"].value == pytest.approx(0.605556, abs=1e-6)
    assert m["macro_auroc"].value == pytest.approx(0.923611, abs=1e-6)


def test_balanced_accuracy_ignores_classes_absent_from_truth():
    # y has classes 0 and 1; a prediction of class 2 only costs class 0 its recall.
    # recall0 = 1/2, recall1 = 1/1 -> 3/4 (class 2 has no true items, so it is not averaged)
    assert balanced_accuracy(np.array([0, 0, 1]), np.array([0, 2, 1])) == pytest.approx(0.75)
    # imbalanced: 9 x class 0 all right, 1 x class 1 wrong -> (1 + 0)/2, while accuracy is 0.9
    y = np.array([0] * 9 + [1])
    assert balanced_accuracy(y, np.zeros(10, int)) == pytest.approx(0.5)


def test_macro_auroc_with_ties_and_skipped_class():
    # class 0: positives .9 .4, negatives .4 .1 -> pairs: (.9>.4) (.9>.1) (.4=.4 tie: 1/2) (.4>.1) = 3.5/4
    # class 1: the mirror image of class 0's scores -> 3.5/4 as well
    # class 2: no positives in y -> skipped, not counted as 0 or 0.5
    y = np.array([0, 0, 1, 1])
    prob = np.array([[0.9, 0.1, 0.0], [0.4, 0.6, 0.0], [0.4, 0.6, 0.0], [0.1, 0.9, 0.0]])
    assert macro_auroc(y, prob) == pytest.approx(0.875)
    assert math.isnan(macro_auroc(np.array([1, 1]), prob[:2]))


def test_perfect_and_inverted_classifier():
    y = np.array([0, 1, 0, 1, 2, 2])
    perfect = np.eye(3)[y] * 0.9 + 0.05
    m = classification_metrics(y, perfect, ("a", "b", "c"), n_boot=0)
    assert m["accuracy"].value == 1.0 and m["balanced_accuracy"].value == 1.0
    assert m["macro_f1"].value == 1.0 and m["macro_auroc"].value == 1.0
    assert "mel_sensitivity_at_spec80" not in m  # no "mel" class
    inverted = 1.0 - perfect
    assert classification_metrics(y, inverted, ("a", "b", "c"), n_boot=0)["macro_auroc"].value == 0.0


# --- melanoma sensitivity at 80 % specificity --------------------------------------------------------
#   score:  .9  .85 .8  .6  .55 .5  .3  .2  .1
#   mel?:   P   N   P   N   P   N   P   N   N        (4 positives, 5 negatives)
# spec >= .8 allows 1 FP of 5 (FPR exactly 0.2): threshold .8 -> TP 2 -> sensitivity 2/4
# spec >= .6 allows 2 FP: threshold .55 -> TP 3 -> 3/4;  spec 1.0: threshold .9 -> 1/4;  spec 0 -> 1
POS = np.array([1, 0, 1, 0, 1, 0, 1, 0, 0], bool)
SCORE = np.array([0.9, 0.85, 0.8, 0.6, 0.55, 0.5, 0.3, 0.2, 0.1])


@pytest.mark.parametrize("spec, expected", [(0.8, 0.5), (0.6, 0.75), (1.0, 0.25), (0.0, 1.0)])
def test_sensitivity_at_specificity_by_hand(spec, expected):
    assert sensitivity_at_specificity(POS, SCORE, spec) == pytest.approx(expected)


def test_sensitivity_at_specificity_default_is_80():
    assert sensitivity_at_specificity(POS, SCORE) == pytest.approx(0.5)


def test_sensitivity_at_specificity_undefined_without_both_classes():
    assert math.isnan(sensitivity_at_specificity(np.ones(4, bool), np.arange(4.0)))
    assert math.isnan(sensitivity_at_specificity(np.zeros(4, bool), np.arange(4.0)))


# --- segmentation --------------------------------------------------------------------------------------
# four 2x2 images (pixels listed row-major):
#   A pred 1100 true 1000: inter 1, union 2, sizes 2+1 -> Dice 2/3, Jaccard 1/2
#   B pred 0000 true 0000: both empty -> Dice 1, Jaccard 1
#   C pred 0000 true 1100: one empty  -> Dice 0, Jaccard 0
#   D pred 1111 true 1110: inter 3, union 4, sizes 4+3 -> Dice 6/7, Jaccard 3/4
# means: Dice (2/3 + 1 + 0 + 6/7)/4 = 53/84; Jaccard (1/2 + 1 + 0 + 3/4)/4 = 9/16
# thresholded Jaccard (IoU < 0.65 -> 0): (0 + 1 + 0 + 3/4)/4 = 7/16
PRED = np.array([[1, 1, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0], [1, 1, 1, 1]], np.uint8).reshape(4, 2, 2)
TRUE = np.array([[1, 0, 0, 0], [0, 0, 0, 0], [1, 1, 0, 0], [1, 1, 1, 0]], np.uint8).reshape(4, 2, 2)


def test_per_image_dice_jaccard_by_hand():
    dice, jac = per_image_overlap(PRED, TRUE)
    np.testing.assert_allclose(dice, [2 / 3, 1.0, 0.0, 6 / 7])
    np.testing.assert_allclose(jac, [0.5, 1.0, 0.0, 0.75])


def test_per_image_overlap_accepts_0_255_masks():
    dice, jac = per_image_overlap(PRED * 255, TRUE.astype(bool))
    np.testing.assert_allclose(jac, [0.5, 1.0, 0.0, 0.75])


def test_segmentation_metrics_by_hand():
    m = segmentation_metrics(PRED, TRUE, n_boot=0)
    assert m["dice"].value == pytest.approx(53 / 84)          # 0.630952
    assert m["jaccard"].value == pytest.approx(9 / 16)        # 0.5625
    assert m["thresholded_jaccard"].value == pytest.approx(7 / 16)  # 0.4375
    assert m["dice"].value == pytest.approx(0.630952, abs=1e-6)


def test_thresholded_jaccard_cutoff_is_065_inclusive():
    # IoU 13/20 = 0.65 is kept; 16/25 = 0.64 counts as 0; mean = 0.65/2
    true = np.zeros((2, 5, 5), np.uint8)
    pred = np.zeros((2, 5, 5), np.uint8)
    true[0].flat[:20] = 1
    pred[0].flat[:13] = 1
    true[1].flat[:25] = 1
    pred[1].flat[:16] = 1
    dice, jac = per_image_overlap(pred, true)
    np.testing.assert_allclose(jac, [0.65, 0.64])
    np.testing.assert_allclose(dice, [26 / 33, 32 / 41])
    m = segmentation_scores(dice, jac, n_boot=0)
    assert m["thresholded_jaccard"].value == pytest.approx(0.325)
    assert m["jaccard"].value == pytest.approx(0.645)


# --- bootstrap -----------------------------------------------------------------------------------------
def test_ci_brackets_value_for_non_degenerate_case():
    rng = np.random.default_rng(0)
    dice = rng.uniform(0.4, 1.0, 60)
    jac = dice / (2 - dice)
    thr = np.where(jac < 0.65, 0.0, jac)
    m = segmentation_scores(dice, jac, n_boot=400, seed=0)
    for name, per_image in (("dice", dice), ("jaccard", jac), ("thresholded_jaccard", thr)):
        est = m[name]
        assert est.value == pytest.approx(per_image.mean()), name
        assert est.low <= est.value <= est.high, name
        # a mean of 60 values: the percentile CI is about +-1.96 standard errors wide
        normal_width = 2 * 1.96 * per_image.std() / np.sqrt(len(per_image))
        assert 0.7 * normal_width < est.high - est.low < 1.3 * normal_width, name


def test_ci_classification_brackets_value():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 3, 90)
    prob = rng.dirichlet(np.ones(3), 90)
    prob[np.arange(90), y] += 0.4  # better than chance, not perfect
    prob /= prob.sum(1, keepdims=True)
    m = classification_metrics(y, prob, ("nv", "mel", "bcc"), n_boot=200, seed=0)
    for name, est in m.items():
        assert est.low <= est.value <= est.high, (name, est)
        assert est.low < est.high, (name, est)


def test_bootstrap_is_deterministic_per_seed():
    rng = np.random.default_rng(2)
    y = rng.integers(0, 3, 50)
    prob = rng.dirichlet(np.ones(3), 50)
    a = classification_metrics(y, prob, CLASSES, n_boot=100, seed=7)
    b = classification_metrics(y, prob, CLASSES, n_boot=100, seed=7)
    c = classification_metrics(y, prob, CLASSES, n_boot=100, seed=8)
    assert {k: v.to_dict() for k, v in a.items()} == {k: v.to_dict() for k, v in b.items()}
    assert a["accuracy"].value == c["accuracy"].value
    assert (a["accuracy"].low, a["accuracy"].high) != (c["accuracy"].low, c["accuracy"].high)


def test_with_ci_n_boot_zero_gives_nan_bounds():
    values = np.array([1.0, 2.0, 3.0, 4.0])
    est = with_ci(lambda i: float(values[i].mean()), len(values), n_boot=0)
    assert est.value == 2.5
    assert math.isnan(est.low) and math.isnan(est.high)
    # a single item cannot be resampled meaningfully either
    one = with_ci(lambda i: float(values[:1][i].mean()), 1, n_boot=100)
    assert one.value == 1.0 and math.isnan(one.low) and math.isnan(one.high)


def test_with_ci_percentiles_of_a_known_statistic():
    # the statistic ignores the resample and returns the resample's first index / n:
    # bootstrap values are then uniform draws from {0, .1, ..., .9}, so the 95 % CI is ~[0, .9]
    est = with_ci(lambda i: float(i[0]) / 10, 10, n_boot=2000, seed=0)
    assert est.value == 0.0
    assert est.low == 0.0 and est.high == pytest.approx(0.9)


def test_bootstrap_tolerates_resamples_missing_a_class():
    # one bcc and one mel among 30 items: most resamples miss one of them
    y = np.array([0] * 28 + [1, 2])
    prob = np.full((30, 3), 0.1)
    prob[np.arange(30), y] = 0.8
    prob[0] = [0.1, 0.8, 0.1]  # one nv predicted as mel
    m = classification_metrics(y, prob, CLASSES, n_boot=200, seed=0)
    for name, est in m.items():
        assert not math.isnan(est.value), name
        assert est.low <= est.high, name
    # sensitivity of the single-bcc class is 1 whenever bcc is drawn, NaN (skipped) otherwise
    assert (m["sensitivity_bcc"].low, m["sensitivity_bcc"].high) == (1.0, 1.0)
    assert m["mel_sensitivity_at_spec80"].value == pytest.approx(1.0)


def test_bootstrap_all_nan_gives_nan_bounds():
    est = with_ci(lambda i: float("nan"), 20, n_boot=50)
    assert math.isnan(est.value) and math.isnan(est.low) and math.isnan(est.high)


def test_estimate_format_and_dict():
    e = Estimate(0.5, 0.25, 0.75)
    assert str(e) == "0.5000 [0.2500, 0.7500]"
    assert e.to_dict() == {"value": 0.5, "low": 0.25, "high": 0.75}
