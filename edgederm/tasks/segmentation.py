"""Segmentation: one mask logit per pixel (ISIC 2018 Task 1); Dice leads, ISIC's thresholded Jaccard beside it."""

from __future__ import annotations

import numpy as np

from edgederm.metrics import THRESHOLDED_JACCARD_CUTOFF, per_image_overlap, segmentation_metrics
from edgederm.tasks.parity import logit_figures
from edgederm.tasks.spec import TASKS, TaskSpec
from edgederm.tensors import sigmoid


def output_spec(classes: list[str]) -> dict:
    return {"kind": "mask_logits", "activation": "sigmoid", "threshold": 0.5,
            "meaning": "one logit per pixel at the input size; sigmoid(logit) > threshold marks lesion"}


def thresholded_jaccard(jaccard: np.ndarray) -> float:
    """ISIC's thresholded Jaccard: an image below the cutoff counts 0."""
    return float(np.where(jaccard < THRESHOLDED_JACCARD_CUTOFF, 0.0, jaccard).mean())


def parity(ref: np.ndarray, got: np.ndarray, targets: np.ndarray, got_is_prob: bool = False) -> dict:
    """Mask Dice between original and artifact, each one's score against the truth, and the mask logits."""
    m_ref, m_got = ref[:, 0] > 0, got[:, 0] > 0
    agree, _ = per_image_overlap(m_got, m_ref)
    d_ref, j_ref = per_image_overlap(m_ref, targets)
    d_got, j_got = per_image_overlap(m_got, targets)
    f = {"images": len(ref), "mask_dice_mean": float(agree.mean()), "mask_dice_min": float(agree.min()),
         "max_abs_prob": float(np.abs(sigmoid(ref) - sigmoid(got)).max()),
         "dice_original": float(d_ref.mean()), "dice_artifact": float(d_got.mean()),
         "thresholded_jaccard_original": thresholded_jaccard(j_ref),
         "thresholded_jaccard_artifact": thresholded_jaccard(j_got)}
    f["dice_drop"] = f["dice_original"] - f["dice_artifact"]
    f["thresholded_jaccard_drop"] = f["thresholded_jaccard_original"] - f["thresholded_jaccard_artifact"]
    f.update(logit_figures(ref[:, :1], got[:, :1], center=False))
    return f


def scorer(targets: np.ndarray, classes: list[str] | None = None, output: dict | None = None):
    """(per_image, functions): per-image Dice and Jaccard, then their means on index sets."""
    from device_bench import metrics as M

    def per_image(out, is_prob):
        masks = (out[:, 0] > (0.5 if is_prob else 0.0))
        dice, jac = M.per_image_overlap(masks, targets)
        return np.stack([dice, jac], 1)

    def functions(stats):
        dice, jac = stats[:, 0], stats[:, 1]
        thr = np.where(jac < M.THRESHOLDED_JACCARD_CUTOFF, 0.0, jac)
        return {"dice": lambda i: float(dice[i].mean()), "jaccard": lambda i: float(jac[i].mean()),
                "thresholded_jaccard": lambda i: float(thr[i].mean())}
    return per_image, functions


def metrics(outputs: np.ndarray, targets: np.ndarray, classes=None, n_boot: int = 1000) -> dict:
    masks = (outputs[:, 0] > 0).astype(np.uint8)  # sigmoid(logit) > 0.5
    return segmentation_metrics(masks, targets, n_boot=n_boot)


def loss(logits, masks, weight=None, label_smoothing: float = 0.0, teacher_logits=None,
         temperature: float = 1.0, alpha: float = 0.0):
    """BCE + soft Dice on [N, 1, H, W] mask logits (BCE alone under-weights the thin lesion border);
    distilling mixes in the teacher's tempered lesion probability per pixel."""
    import torch
    import torch.nn.functional as F

    masks = masks.unsqueeze(1).float() if masks.dim() == 3 else masks
    prob = logits.sigmoid()
    inter = (prob * masks).sum((1, 2, 3))
    dice = 1 - (2 * inter + 1) / (prob.sum((1, 2, 3)) + masks.sum((1, 2, 3)) + 1)
    value = F.binary_cross_entropy_with_logits(logits, masks) + dice.mean()
    if teacher_logits is None:
        return value
    T = temperature
    if teacher_logits.shape[-2:] != logits.shape[-2:]:
        teacher_logits = F.interpolate(teacher_logits, size=logits.shape[-2:], mode="bilinear")
    kd = F.binary_cross_entropy_with_logits(logits / T, torch.sigmoid(teacher_logits / T)) * T * T
    return alpha * kd + (1 - alpha) * value


SEGMENTATION = TASKS.register("segmentation", TaskSpec(
    name="segmentation", description="a lesion mask per image (ISIC 2018 Task 1)",
    headline="dice", headline_name="Dice", agreement="mask_dice_mean",
    output_name="mask_logits", default_dataset="lesionseg", has_class_labels=False, label_smoothing=0.0,
    calibration_images=100,  # random train images
    gate_figures=(("mask_dice_mean", "min_mask_dice", ">="), ("dice_drop", "max_dice_drop", "<="),
                  ("thresholded_jaccard_drop", "max_thresholded_jaccard_drop", "<=")),
    output_spec=output_spec, output_channels=lambda classes: 1, parity=parity, scorer=scorer, metrics=metrics,
    loss=loss))
