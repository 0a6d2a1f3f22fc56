"""Task metrics with percentile-bootstrap 95 % CIs, numpy only (a device has no scikit-learn).

The definitions match ``edgederm.metrics`` (which uses scikit-learn) to the last digit, and so
does the bootstrap (same resampling, same seed), so a row measured on a phone and a row
measured on the workstation are directly comparable: balanced accuracy is the mean recall over
the classes present; macro AUROC is one-vs-rest and rank-based (ties share their mean rank),
averaged over classes with positives and negatives; melanoma sensitivity is the best
sensitivity at >= 80 % specificity; Dice/Jaccard are per image (two empty masks agree fully)
and ISIC's thresholded Jaccard zeroes an image below 0.65.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

THRESHOLDED_JACCARD_CUTOFF = 0.65
MEL_SPECIFICITY = 0.80


def estimate(value: float, low: float, high: float) -> dict[str, float]:
    return {"value": float(value), "low": float(low), "high": float(high)}


def bootstrap_ci(stat: Callable[[np.ndarray], float], n: int, n_boot: int = 1000, seed: int = 0) -> tuple[float, float]:
    """Percentile 95 % CI of ``stat(indices)`` over ``n_boot`` resamples; resamples where it is NaN are left out."""
    if n_boot <= 0 or n < 2:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    values = np.array([stat(rng.integers(0, n, n)) for _ in range(n_boot)], dtype=float)
    if np.all(np.isnan(values)):
        return float("nan"), float("nan")
    lo, hi = np.nanpercentile(values, [2.5, 97.5])
    return float(lo), float(hi)


def with_ci(stat: Callable[[np.ndarray], float], n: int, n_boot: int = 1000, seed: int = 0) -> dict[str, float]:
    lo, hi = bootstrap_ci(stat, n, n_boot, seed)
    return estimate(stat(np.arange(n)), lo, hi)


# --- classification ------------------------------------------------------------------------
def balanced_accuracy(y: np.ndarray, pred: np.ndarray) -> float:
    y, pred = np.asarray(y), np.asarray(pred)
    recalls = [np.mean(pred[y == c] == c) for c in np.unique(y)]
    return float(np.mean(recalls)) if recalls else float("nan")


def _average_ranks(x: np.ndarray) -> np.ndarray:
    """1-based ranks; tied values share the mean of their ranks (vectorised: bootstrap resamples are full of ties)."""
    order = np.argsort(x, kind="mergesort")
    xs = x[order]
    starts = np.r_[True, xs[1:] != xs[:-1]]
    first = np.flatnonzero(starts)
    ends = np.r_[first[1:], len(xs)]
    ranks = np.empty(len(x), dtype=np.float64)
    ranks[order] = ((first + ends + 1) / 2.0)[np.cumsum(starts) - 1]  # mean of ranks first+1 .. end
    return ranks


def auroc(positive: np.ndarray, score: np.ndarray) -> float:
    """Mann-Whitney AUROC; NaN unless both classes occur."""
    positive = np.asarray(positive, bool)
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = _average_ranks(np.asarray(score, np.float64))
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def macro_auroc(y: np.ndarray, prob: np.ndarray) -> float:
    y = np.asarray(y)
    aucs = [auroc(y == c, prob[:, c]) for c in range(prob.shape[1]) if 0 < np.sum(y == c) < len(y)]
    return float(np.mean(aucs)) if aucs else float("nan")


def sensitivity_at_specificity(positive: np.ndarray, score: np.ndarray, specificity: float = MEL_SPECIFICITY) -> float:
    """Highest sensitivity over score thresholds whose specificity is at least ``specificity``."""
    positive = np.asarray(positive, bool)
    if positive.all() or not positive.any():
        return float("nan")
    score = np.asarray(score, np.float64)
    order = np.argsort(score, kind="mergesort")[::-1]
    s, p = score[order], positive[order]
    last = np.r_[np.flatnonzero(np.diff(s)), len(s) - 1]  # last index of each distinct threshold
    tps, fps = np.cumsum(p)[last], np.cumsum(~p)[last]
    if len(fps) > 2:  # scikit-learn's roc_curve(drop_intermediate=True) drops collinear points; so do we, to agree
        keep = np.flatnonzero(np.r_[True, np.logical_or(np.diff(fps, 2), np.diff(tps, 2)), True])
        tps, fps = tps[keep], fps[keep]
    tpr, fpr = np.r_[0, tps] / tps[-1], np.r_[0, fps] / fps[-1]
    ok = fpr <= 1.0 - specificity + 1e-12
    return float(tpr[ok].max()) if ok.any() else 0.0


def classification_metrics(y, prob, classes, n_boot: int = 1000, seed: int = 0,
                           melanoma: str = "mel") -> dict[str, dict[str, float]]:
    y, prob = np.asarray(y), np.asarray(prob, dtype=np.float64)
    pred = prob.argmax(1)
    out = {
        "accuracy": with_ci(lambda i: float(np.mean(pred[i] == y[i])), len(y), n_boot, seed),
        "balanced_accuracy": with_ci(lambda i: balanced_accuracy(y[i], pred[i]), len(y), n_boot, seed),
        "macro_auroc": with_ci(lambda i: macro_auroc(y[i], prob[i]), len(y), n_boot, seed),
    }
    if melanoma in classes:
        m = list(classes).index(melanoma)
        out[f"{melanoma}_sensitivity_at_spec{int(MEL_SPECIFICITY * 100)}"] = with_ci(
            lambda i: sensitivity_at_specificity(y[i] == m, prob[i][:, m]), len(y), n_boot, seed)
    out["ece"] = with_ci(lambda i: expected_calibration_error(y[i], prob[i]), len(y), n_boot, seed)
    return out


# --- calibration ---------------------------------------------------------------------------
ECE_BINS = 15  # torchmetrics' default


def reliability_bins(y, prob, n_bins: int = ECE_BINS) -> dict[str, list]:
    """Top-1 confidence binned on [0, 1] in ``n_bins`` equal bins (torchmetrics' bucketing, right-closed
    at 1.0 in an extra last bin): per bin its count, mean confidence and accuracy (null when empty)."""
    y, prob = np.asarray(y), np.asarray(prob, np.float64)
    conf, correct = prob.max(1), (prob.argmax(1) == y).astype(np.float64)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    idx = np.searchsorted(edges, conf, side="right") - 1
    count = np.bincount(idx, minlength=n_bins + 1).astype(np.float64)
    conf_sum = np.bincount(idx, weights=conf, minlength=n_bins + 1)
    acc_sum = np.bincount(idx, weights=correct, minlength=n_bins + 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_conf, acc = conf_sum / count, acc_sum / count
    return {"edges": edges.tolist(), "count": count.astype(int).tolist(),
            "confidence": [None if c == 0 else float(v) for c, v in zip(count, mean_conf)],
            "accuracy": [None if c == 0 else float(v) for c, v in zip(count, acc)]}


def expected_calibration_error(y, prob, n_bins: int = ECE_BINS) -> float:
    """Top-1 ECE (L1): sum over bins of |accuracy - confidence| weighted by the bin's share of images."""
    y, prob = np.asarray(y), np.asarray(prob, np.float64)
    if len(y) == 0:
        return float("nan")
    conf, correct = prob.max(1), (prob.argmax(1) == y).astype(np.float64)
    idx = np.searchsorted(np.linspace(0.0, 1.0, n_bins + 1), conf, side="right") - 1
    count = np.bincount(idx, minlength=n_bins + 1)
    gap = np.abs(np.bincount(idx, weights=correct, minlength=n_bins + 1)
                 - np.bincount(idx, weights=conf, minlength=n_bins + 1))
    return float(gap.sum() / count.sum())


# --- segmentation --------------------------------------------------------------------------
def per_image_overlap(pred_masks: np.ndarray, true_masks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-image Dice and Jaccard of binary masks [N, H, W]; two empty masks agree fully (1.0)."""
    p = np.asarray(pred_masks).reshape(len(pred_masks), -1).astype(bool)
    t = np.asarray(true_masks).reshape(len(true_masks), -1).astype(bool)
    inter = (p & t).sum(1).astype(np.float64)
    union = (p | t).sum(1).astype(np.float64)
    total = p.sum(1) + t.sum(1)
    dice = np.where(total == 0, 1.0, 2 * inter / np.maximum(total, 1))
    jaccard = np.where(union == 0, 1.0, inter / np.maximum(union, 1))
    return dice, jaccard


def segmentation_scores(dice: np.ndarray, jaccard: np.ndarray, n_boot: int = 1000,
                        seed: int = 0) -> dict[str, dict[str, float]]:
    thr = np.where(jaccard < THRESHOLDED_JACCARD_CUTOFF, 0.0, jaccard)
    return {
        "dice": with_ci(lambda i: float(dice[i].mean()), len(dice), n_boot, seed),
        "jaccard": with_ci(lambda i: float(jaccard[i].mean()), len(dice), n_boot, seed),
        "thresholded_jaccard": with_ci(lambda i: float(thr[i].mean()), len(dice), n_boot, seed),
    }
