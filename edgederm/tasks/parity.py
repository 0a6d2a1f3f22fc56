"""Pre-activation parity figures shared by the tasks: a saturated softmax or sigmoid hides what logits show."""

from __future__ import annotations

import numpy as np


def logit_figures(ref: np.ndarray, got: np.ndarray, center: bool) -> dict:
    """Pre-activation agreement: per-image cosine (worst and mean) and the batch's relative L2 error
    ||got - ref|| / ||ref||. Classifier logits are centred per image first (softmax ignores a shift)."""
    r = np.asarray(ref, np.float64).reshape(len(ref), -1)
    g = np.asarray(got, np.float64).reshape(len(got), -1)
    finite = np.isfinite(r) & np.isfinite(g)  # a -inf logit (log of a quantised 0) is counted, then left out
    r, g = np.where(finite, r, 0.0), np.where(finite, g, 0.0)
    if center:
        r, g = r - r.mean(1, keepdims=True), g - g.mean(1, keepdims=True)
    nr, ng = np.linalg.norm(r, axis=1), np.linalg.norm(g, axis=1)
    both_zero = (nr == 0) & (ng == 0)
    cos = np.where(both_zero, 1.0, (r * g).sum(1) / np.maximum(nr * ng, 1e-30))
    rel = np.linalg.norm(g - r) / max(float(np.linalg.norm(r)), 1e-30)
    return {"logit_cosine_min": float(cos.min()), "logit_cosine_mean": float(cos.mean()),
            "logit_rel_error": float(min(rel, 1e30)), "logit_nonfinite": int((~finite).sum())}


NO_LOGITS = {"logit_cosine_min": None, "logit_cosine_mean": None, "logit_rel_error": None, "logit_nonfinite": None}
