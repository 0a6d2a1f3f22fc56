"""The tasks device_bench knows, in one table: what a bundle's eval set holds for each, and how an
artifact's outputs on it are scored.

device_bench runs on the device with numpy and one runtime, never edgederm, so this is its own small
twin of ``edgederm.tasks``; a new task is one more ``DeviceTask`` here (and its spec there).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np

from device_bench import decision, metrics
from device_bench.errors import DeviceBenchError


@dataclass(frozen=True)
class DeviceTask:
    name: str
    has_class_labels: bool  # eval/labels.json holds a class index per image; outputs are per-class scores
    needs_masks: bool       # eval/images.npz holds a mask per image
    # (eval set, artifact record, raw outputs [N, ...], manifest "output", n_boot) -> (metrics, per_image)
    score: Callable[..., tuple[dict, dict]]


def score_classification(ev, artifact: dict, outs: np.ndarray, output: dict, n_boot: int) -> tuple[dict, dict]:
    """Probabilities at the manifest's temperature; task metrics plus its decision rules' figures."""
    probs = outs.reshape(len(outs), -1).astype(np.float64)
    if artifact["format"] == "coreml":  # Core ML classifiers already give probabilities: back to logits
        probs = np.log(np.clip(probs, 1e-30, None))
    probs = decision.softmax(probs, decision.temperature_of(output))  # the manifest's temperature, if any
    m = metrics.classification_metrics(ev.labels, probs, ev.classes, n_boot=n_boot)
    m.update(decision.decision_metrics(ev.labels, probs, ev.classes, decision.rules_of(output), n_boot=n_boot))
    return m, {"ids": ev.ids, "probs": probs.astype(np.float64).round(7).tolist()}


def score_segmentation(ev, artifact: dict, outs: np.ndarray, output: dict, n_boot: int) -> tuple[dict, dict]:
    """Masks at the manifest's threshold; Dice and Jaccard per image, then over the set."""
    t = float(output.get("threshold", 0.5))
    logits = _to_nchw_masks(artifact, outs)
    pred = logits > math.log(t / (1 - t))  # sigmoid(logit) > t
    dice, jaccard = metrics.per_image_overlap(pred, ev.masks)
    m = metrics.segmentation_scores(dice, jaccard, n_boot=n_boot)
    return m, {"ids": ev.ids, "dice": dice.tolist(), "jaccard": jaccard.tolist()}


def _to_nchw_masks(artifact: dict, y: np.ndarray) -> np.ndarray:
    if artifact["outputs"][0].get("layout") == "NHWC":
        y = np.moveaxis(y, -1, 1)
    return y.reshape(len(y), -1, *y.shape[-2:])[:, 0]


TASKS = {t.name: t for t in (
    DeviceTask("classification", has_class_labels=True, needs_masks=False, score=score_classification),
    DeviceTask("segmentation", has_class_labels=False, needs_masks=True, score=score_segmentation),
)}


def device_task(name: str) -> DeviceTask:
    try:
        return TASKS[name]
    except KeyError:
        raise DeviceBenchError(f"the bundle's task {name!r} is unknown to this device_bench (it knows "
                               f"{', '.join(TASKS)}): bundle it again with this device_bench") from None
