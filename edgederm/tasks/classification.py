"""Classification: one logit per class (ISIC 2018 Task 3); balanced accuracy leads, since nv dominates."""

from __future__ import annotations

import numpy as np

from edgederm.metrics import balanced_accuracy, classification_metrics, macro_auroc
from edgederm.tasks.parity import NO_LOGITS, logit_figures
from edgederm.tasks.spec import TASKS, TaskSpec
from edgederm.tensors import softmax


def output_spec(classes: list[str]) -> dict:
    return {"kind": "logits", "activation": "softmax",
            "meaning": f"one logit per class in the order of model.classes ({', '.join(classes)}); "
                       "softmax gives probabilities; argmax is the predicted class"}


def parity(ref: np.ndarray, got: np.ndarray, targets: np.ndarray, got_is_prob: bool) -> dict:
    """Probabilities, top-1 agreement and the task-metric drops; logits too unless the artifact gives probabilities."""
    p_ref, p_got = softmax(ref), (got if got_is_prob else softmax(got))
    diff = np.abs(p_ref - p_got)
    f = {"images": len(ref), "max_abs_prob": float(diff.max()), "mean_abs_prob": float(diff.mean()),
         "max_abs_logit": None if got_is_prob else float(np.abs(ref - got).max()),
         "top1_agreement": float(np.mean(p_ref.argmax(1) == p_got.argmax(1))),
         "balanced_accuracy_original": balanced_accuracy(targets, p_ref.argmax(1)),
         "balanced_accuracy_artifact": balanced_accuracy(targets, p_got.argmax(1)),
         "auroc_original": macro_auroc(targets, p_ref), "auroc_artifact": macro_auroc(targets, p_got)}
    f["balanced_accuracy_drop"] = f["balanced_accuracy_original"] - f["balanced_accuracy_artifact"]
    f["auroc_drop"] = f["auroc_original"] - f["auroc_artifact"]
    f.update(NO_LOGITS if got_is_prob else logit_figures(ref, got, center=True))
    return f


def rule_functions(targets: np.ndarray, prob: np.ndarray, classes: list[str], rules: list[dict]) -> dict:
    """``<rule>_sensitivity`` and ``<rule>_specificity`` on index sets, for each operating point."""
    from device_bench.decision import apply_rule

    fns = {}
    for rule in rules:
        if rule.get("threshold") is None:
            continue
        fired, pos = apply_rule(prob, classes, rule), targets == list(classes).index(rule["class"])
        fns[f"{rule['name']}_sensitivity"] = lambda i, f=fired, p=pos: float(f[i][p[i]].mean()) if p[i].any() else float("nan")
        fns[f"{rule['name']}_specificity"] = lambda i, f=fired, p=pos: float((~f[i][~p[i]]).mean()) if (~p[i]).any() else float("nan")
    return fns


def scorer(targets: np.ndarray, classes: list[str], output: dict | None = None):
    """(per_image, functions): probabilities at the manifest's temperature, then metric functions on index sets.

    Each operating point of ``output`` adds ``<rule>_sensitivity`` / ``_specificity``. The numpy
    metrics of ``device_bench`` (equal to scikit-learn's, tested) keep 1,000 bootstrap resamples fast.
    """
    from device_bench import decision
    from device_bench import metrics as M

    mel = classes.index("mel") if "mel" in classes else None
    temperature, rules = decision.temperature_of(output or {}), decision.rules_of(output or {})

    def per_image(out, is_prob):
        z = np.log(np.clip(out, 1e-30, None)) if is_prob else out.astype(np.float64)
        return decision.softmax(z, temperature)

    def functions(prob):
        pred = prob.argmax(1)
        fns = {"balanced_accuracy": lambda i: M.balanced_accuracy(targets[i], pred[i]),
               "macro_auroc": lambda i: M.macro_auroc(targets[i], prob[i]),
               "accuracy": lambda i: float(np.mean(pred[i] == targets[i])),
               "ece": lambda i: M.expected_calibration_error(targets[i], prob[i])}
        if mel is not None:
            fns["mel_sensitivity_at_spec80"] = lambda i: M.sensitivity_at_specificity(targets[i] == mel, prob[i][:, mel])
        fns.update(rule_functions(targets, prob, classes, rules))
        return fns
    return per_image, functions


def metrics(outputs: np.ndarray, targets: np.ndarray, classes: list[str], n_boot: int = 1000) -> dict:
    return classification_metrics(targets, softmax(outputs), list(classes), n_boot=n_boot)


def loss(logits, targets, weight=None, label_smoothing: float = 0.0, teacher_logits=None,
         temperature: float = 1.0, alpha: float = 0.0):
    """Cross-entropy, mixed with the teacher's tempered softmax (KL, Hinton's T² scaling) when distilling."""
    import torch.nn.functional as F

    value = F.cross_entropy(logits, targets, weight=weight, label_smoothing=label_smoothing)
    if teacher_logits is None:
        return value
    T = temperature
    kd = F.kl_div(F.log_softmax(logits / T, 1), F.softmax(teacher_logits / T, 1), reduction="batchmean") * T * T
    return alpha * kd + (1 - alpha) * value


CLASSIFICATION = TASKS.register("classification", TaskSpec(
    name="classification", description="one label per image (ISIC 2018 Task 3)",
    headline="balanced_accuracy", headline_name="balanced accuracy", agreement="top1_agreement",
    output_name="logits", default_dataset="derm7", has_class_labels=True, label_smoothing=0.1,
    calibration_images=200,  # class-stratified train images
    gate_figures=(("max_abs_prob", "max_abs_prob", "<="), ("top1_agreement", "min_top1_agreement", ">="),
                  ("balanced_accuracy_drop", "max_balanced_accuracy_drop", "<="),
                  ("auroc_drop", "max_auroc_drop", "<=")),
    output_spec=output_spec, output_channels=len, parity=parity, scorer=scorer, metrics=metrics, loss=loss))
