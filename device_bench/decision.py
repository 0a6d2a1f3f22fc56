"""Decision rules from the manifest, numpy only: temperature, operating points, and their figures.

A manifest's ``output`` may carry ``temperature`` (probabilities are ``softmax(logits / T)``;
absent means 1) and ``operating_points``: named rules such as

    {"name": "refer_mel", "class": "mel", "threshold": 0.23, "target": {"specificity": 0.8},
     "fitted_on": {...}, "ci": {"threshold": [lo, hi]}, "figures": {...}}

meaning "refer if P(mel) >= threshold". Runtimes (this package, the app kits) apply the rule
as written; ``fit_threshold`` is how a rule is chosen (on a validation split or a site's sample).
"""

from __future__ import annotations

import numpy as np

from device_bench.errors import DeviceBenchError
from device_bench.metrics import bootstrap_ci, estimate, with_ci

RULE_TARGETS = ("specificity", "sensitivity")  # what an operating point's threshold is fitted to meet


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    z = np.asarray(logits, np.float64) / float(temperature)
    z = z - z.max(1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(1, keepdims=True)


def temperature_of(output: dict) -> float:
    t = output.get("temperature") or 1.0
    if not (isinstance(t, (int, float)) and t > 0):
        raise DeviceBenchError(f"manifest output.temperature {t!r} must be a positive number")
    return float(t)


def rules_of(output: dict) -> list[dict]:
    return list(output.get("operating_points") or [])


def apply_rule(prob: np.ndarray, classes: list[str], rule: dict) -> np.ndarray:
    """Boolean [N]: the rule fires (P(class) >= threshold) for each image."""
    if rule["class"] not in classes:
        raise DeviceBenchError(f"operating point {rule.get('name')!r} names class {rule['class']!r}, "
                         f"not one of {', '.join(classes)}")
    return np.asarray(prob)[:, list(classes).index(rule["class"])] >= float(rule["threshold"])


def fit_threshold(positive: np.ndarray, score: np.ndarray, target: dict) -> float:
    """Threshold t for "positive if score >= t" meeting ``target`` on these images.

    ``{"specificity": s}``: the lowest t whose specificity is at least s (most sensitive such rule);
    ``{"sensitivity": s}``: the highest t whose sensitivity is at least s (most specific).
    t sits midway between neighbouring observed scores, so it does not hinge on one image's value.
    NaN when the images lack positives or negatives.
    """
    positive, score = np.asarray(positive, bool), np.asarray(score, np.float64)
    if positive.all() or not positive.any():
        return float("nan")
    (kind, value), = target.items()
    u = np.unique(score)
    cuts = np.r_[u[0] - 1e-6, (u[1:] + u[:-1]) / 2, u[-1] + 1e-6]  # every distinct decision
    neg, pos = np.sort(score[~positive]), np.sort(score[positive])
    if kind == "specificity":
        spec = np.searchsorted(neg, cuts, side="left") / len(neg)  # share of negatives below t
        ok = np.flatnonzero(spec >= value - 1e-12)
        return float(cuts[ok[0]]) if len(ok) else float(cuts[-1])
    if kind == "sensitivity":
        sens = 1.0 - np.searchsorted(pos, cuts, side="left") / len(pos)  # share of positives >= t
        ok = np.flatnonzero(sens >= value - 1e-12)
        return float(cuts[ok[-1]]) if len(ok) else float(cuts[0])
    raise DeviceBenchError(f"operating point target {kind!r} is not one of {', '.join(RULE_TARGETS)}")


def rule_figures(y: np.ndarray, prob: np.ndarray, classes: list[str], rule: dict, n_boot: int = 1000,
                 seed: int = 0) -> dict[str, dict]:
    """Sensitivity, specificity and share referred of one rule on labelled images, with 95 % CIs."""
    y = np.asarray(y)
    fired = apply_rule(prob, classes, rule)
    positive = y == list(classes).index(rule["class"])

    def sens(i):
        p = positive[i]
        return float(fired[i][p].mean()) if p.any() else float("nan")

    def spec(i):
        n = ~positive[i]
        return float((~fired[i][n]).mean()) if n.any() else float("nan")

    return {"sensitivity": with_ci(sens, len(y), n_boot, seed), "specificity": with_ci(spec, len(y), n_boot, seed),
            "referred": with_ci(lambda i: float(fired[i].mean()), len(y), n_boot, seed)}


def fit_rule(name: str, cls: str, target: dict, y: np.ndarray, prob: np.ndarray, classes: list[str],
             fitted_on: dict, n_boot: int = 1000, seed: int = 0) -> dict:
    """A complete operating point: threshold, its bootstrap CI (refitted per resample) and its figures."""
    y, prob = np.asarray(y), np.asarray(prob, np.float64)
    c = list(classes).index(cls)
    positive, score = y == c, prob[:, c]
    t = fit_threshold(positive, score, target)
    lo, hi = bootstrap_ci(lambda i: fit_threshold(positive[i], score[i], target), len(y), n_boot, seed)
    rule = {"name": name, "class": cls, "threshold": None if np.isnan(t) else t, "target": dict(target),
            "rule": f"refer if P({cls}) >= threshold", "fitted_on": {**fitted_on, "images": int(len(y)),
                                                                     "positives": int(positive.sum())},
            "ci": {"threshold": None if np.isnan(lo) else [lo, hi]}}
    if rule["threshold"] is not None:
        rule["figures"] = rule_figures(y, prob, classes, rule, n_boot, seed)
    return rule


def decision_metrics(y, prob, classes, rules: list[dict], n_boot: int = 1000, seed: int = 0) -> dict[str, dict]:
    """Flat metrics for every rule, e.g. ``refer_mel_sensitivity`` (what results rows carry)."""
    out = {}
    for rule in rules:
        if rule.get("threshold") is None:
            continue
        for k, v in rule_figures(y, prob, classes, rule, n_boot, seed).items():
            out[f"{rule['name']}_{k}"] = v
    return out


__all__ = ["apply_rule", "decision_metrics", "estimate", "fit_rule", "fit_threshold", "rule_figures",
           "rules_of", "softmax", "temperature_of"]
