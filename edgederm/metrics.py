"""Task metrics with bootstrap 95 % confidence intervals.

Classification (ISIC 2018 Task 3): accuracy, balanced accuracy (the challenge metric; nv
dominates, so plain accuracy flatters), macro-F1, macro AUROC, per-class sensitivity and
melanoma sensitivity at 80 % specificity. Segmentation (ISIC Task 1): per-image Dice,
Jaccard and ISIC's thresholded Jaccard (an image's IoU below 0.65 counts as 0), averaged.
Classification also reports the top-1 expected calibration error (``ece``, 15 bins).
The point metrics come from scikit-learn; the bootstrap is a short loop of our own because
resamples that miss a rare class must count as undefined (NaN), not fail the whole CI.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Callable

import numpy as np

THRESHOLDED_JACCARD_CUTOFF = 0.65
MEL_SPECIFICITY = 0.80


@dataclass(frozen=True)
class Estimate:
    """A metric's value on the full set and its bootstrap percentile 95 % CI."""

    value: float
    low: float
    high: float

    def __str__(self) -> str:
        return f"{self.value:.4f} [{self.low:.4f}, {self.high:.4f}]"

    def to_dict(self) -> dict:
        return asdict(self)


def _bootstrap(stat: Callable[[np.ndarray], float], n: int, n_boot: int, seed: int) -> tuple[float, float]:
    if n_boot <= 0 or n < 2:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    values = np.array([stat(rng.integers(0, n, n)) for _ in range(n_boot)], dtype=float)
    if np.all(np.isnan(values)):
        return float("nan"), float("nan")
    lo, hi = np.nanpercentile(values, [2.5, 97.5])
    return float(lo), float(hi)


def with_ci(stat: Callable[[np.ndarray], float], n: int, n_boot: int = 1000, seed: int = 0) -> Estimate:
    """Evaluate ``stat(indices)`` on all n items and on ``n_boot`` resamples of them."""
    lo, hi = _bootstrap(stat, n, n_boot, seed)
    return Estimate(float(stat(np.arange(n))), lo, hi)


# --- classification ------------------------------------------------------------------------
def balanced_accuracy(y: np.ndarray, pred: np.ndarray) -> float:
    """Mean recall over the classes present in ``y`` (sklearn's definition)."""
    from sklearn.metrics import balanced_accuracy_score
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(balanced_accuracy_score(y, pred))


def macro_auroc(y: np.ndarray, prob: np.ndarray) -> float:
    """One-vs-rest AUROC averaged over classes that have positives and negatives in ``y``."""
    from sklearn.metrics import roc_auc_score

    aucs = [roc_auc_score(y == c, prob[:, c]) for c in range(prob.shape[1]) if 0 < np.sum(y == c) < len(y)]
    return float(np.mean(aucs)) if aucs else float("nan")


def sensitivity_at_specificity(positive: np.ndarray, score: np.ndarray, specificity: float = MEL_SPECIFICITY) -> float:
    """Highest sensitivity over thresholds whose specificity is at least ``specificity``."""
    from sklearn.metrics import roc_curve

    if positive.all() or not positive.any():
        return float("nan")
    fpr, tpr, _ = roc_curve(positive, score)
    ok = fpr <= 1.0 - specificity + 1e-12
    return float(tpr[ok].max()) if ok.any() else 0.0


def classification_metrics(y, prob, classes, n_boot: int = 1000, seed: int = 0,
                           melanoma: str = "mel") -> dict[str, Estimate]:
    """All classification metrics for labels ``y`` [N] and probabilities ``prob`` [N, C]."""
    from sklearn.metrics import f1_score

    y, prob = np.asarray(y), np.asarray(prob, dtype=np.float64)
    pred = prob.argmax(1)
    out = {
        "accuracy": with_ci(lambda i: float(np.mean(pred[i] == y[i])), len(y), n_boot, seed),
        "balanced_accuracy": with_ci(lambda i: balanced_accuracy(y[i], pred[i]), len(y), n_boot, seed),
        "macro_f1": with_ci(lambda i: float(f1_score(y[i], pred[i], average="macro", zero_division=0)), len(y), n_boot, seed),
        "macro_auroc": with_ci(lambda i: macro_auroc(y[i], prob[i]), len(y), n_boot, seed),
    }
    for c, name in enumerate(classes):
        def sens(i, c=c):
            pos = y[i] == c
            return float(np.mean(pred[i][pos] == c)) if pos.any() else float("nan")
        out[f"sensitivity_{name}"] = with_ci(sens, len(y), n_boot, seed)
    if melanoma in classes:
        m = list(classes).index(melanoma)
        out[f"{melanoma}_sensitivity_at_spec{int(MEL_SPECIFICITY * 100)}"] = with_ci(
            lambda i: sensitivity_at_specificity(y[i] == m, prob[i][:, m]), len(y), n_boot, seed)
    out["ece"] = with_ci(lambda i: expected_calibration_error(y[i], prob[i]), len(y), n_boot, seed)
    return out


def expected_calibration_error(y: np.ndarray, prob: np.ndarray, n_bins: int = 15) -> float:
    """Top-1 expected calibration error (L1, equal-width bins); the numpy one devices run."""
    from device_bench.metrics import expected_calibration_error as ece

    return ece(y, prob, n_bins)


# --- segmentation --------------------------------------------------------------------------
def per_image_overlap(pred_masks: np.ndarray, true_masks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-image Dice and Jaccard of binary masks [N, H, W]; two empty masks agree fully (1.0)."""
    from device_bench.metrics import per_image_overlap as overlap  # the numpy one devices run

    return overlap(pred_masks, true_masks)


def segmentation_scores(dice: np.ndarray, jaccard: np.ndarray, n_boot: int = 1000, seed: int = 0) -> dict[str, Estimate]:
    thr = np.where(jaccard < THRESHOLDED_JACCARD_CUTOFF, 0.0, jaccard)
    return {
        "dice": with_ci(lambda i: float(dice[i].mean()), len(dice), n_boot, seed),
        "jaccard": with_ci(lambda i: float(jaccard[i].mean()), len(dice), n_boot, seed),
        "thresholded_jaccard": with_ci(lambda i: float(thr[i].mean()), len(dice), n_boot, seed),
    }


def segmentation_metrics(pred_masks, true_masks, n_boot: int = 1000, seed: int = 0) -> dict[str, Estimate]:
    dice, jaccard = per_image_overlap(np.asarray(pred_masks), np.asarray(true_masks))
    return segmentation_scores(dice, jaccard, n_boot, seed)


def format_metrics(metrics: dict[str, Estimate]) -> str:
    width = max(len(k) for k in metrics)
    return "\n".join(f"  {k:<{width}}  {v}" for k, v in metrics.items())
