"""TaskSpec and the TASKS registry (the built-in tasks register themselves from their modules)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from edgederm.registry import Registry


@dataclass(frozen=True)
class TaskSpec:
    """What a task means to every stage. ``classes``: the model's class names (a segmenter has one, "lesion")."""

    name: str
    description: str
    headline: str                 # the metric every table, gate and plot leads with
    headline_name: str            # how people call it
    agreement: str                # the parity figure that says "same answers" (top-1 / mask Dice)
    output_name: str              # the output tensor's name in every exported format
    default_dataset: str          # the bundled dataset of this task
    has_class_labels: bool        # outputs name classes (labels files, probabilities, decision rules)
    label_smoothing: float        # the training default
    calibration_images: int       # default sample that sets post-training quantization ranges
    gate_figures: tuple[tuple[str, str, str], ...]   # (figure, Gate field, "<=" | ">=")
    output_spec: Callable[[list[str]], dict[str, Any]]
    output_channels: Callable[[list[str]], int]
    parity: Callable[..., dict]   # (ref logits, artifact outputs, targets, artifact gives probabilities) -> figures
    scorer: Callable[..., tuple]  # (targets, classes, manifest output) -> (per_image, functions) for bootstrap CIs
    metrics: Callable[..., dict]  # (outputs, targets, classes, n_boot) -> {name: Estimate}
    loss: Callable[..., Any]      # (logits, targets, **kwargs) -> torch loss
    notes: dict[str, str] = field(default_factory=dict)

    def output_shape(self, classes: list[str], h: int, w: int, batch: int | str = 1) -> list:
        """The output tensor's shape: [N, C] for one value per class, [N, C, H, W] for per-pixel ones."""
        c = self.output_channels(classes)
        return [batch, c] if self.has_class_labels else [batch, c, h, w]

    def empty_targets(self, n: int, h: int, w: int) -> np.ndarray:
        return np.empty(n, np.int64) if self.has_class_labels else np.empty((n, h, w), np.uint8)

    def scoring_classes(self, classes: list[str]) -> list[str] | None:
        """The classes the metrics take (None where outputs are not per-class scores)."""
        return list(classes) if self.has_class_labels else None


TASKS: Registry[TaskSpec] = Registry("task")


def task_of(name: str) -> TaskSpec:
    """The spec of a task by name, with a "did you mean" error for an unknown one."""
    return TASKS.get(name)

