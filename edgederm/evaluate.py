"""Evaluate a checkpoint (or an in-memory model) on a split, with bootstrap 95 % CIs."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgederm.data.arrays import Arrays
from edgederm.metrics import Estimate
from edgederm.preprocessing import Preprocessing
from edgederm.tasks import task_of


def score_outputs(outputs: np.ndarray, targets: np.ndarray, classes, n_boot: int = 1000) -> dict[str, Estimate]:
    """Metrics from raw model outputs: logits [N, C] (classes given) or mask logits [N, 1, H, W]."""
    return task_of("classification" if classes is not None else "segmentation").metrics(
        outputs, targets, classes, n_boot=n_boot)


def score_arrays(model, arrays: Arrays, prep: Preprocessing, classes, n_boot: int = 1000, desc: str = "") -> dict[str, Estimate]:
    from edgederm.tensors import predict

    outputs = predict(model, arrays.images, prep, desc=desc or "evaluate")
    return score_outputs(outputs, arrays.targets, classes, n_boot=n_boot)


def evaluate_checkpoint(checkpoint: str | Path, data_root: Path | None, split: str = "test",
                        dataset: str | None = None, n_boot: int = 1000, limit: int | None = None,
                        architecture: str | None = None):
    """(metrics, card, number of images) for a checkpoint on a split of its dataset (or ``dataset``).

    ``architecture`` loads the same weights into another zoo entry (a deploy twin such as
    ``segnet_mobile``), which must accept them unchanged. ``split`` "all" takes every image.
    """
    outputs, targets, ds, card = checkpoint_outputs(checkpoint, data_root, split, dataset, limit, architecture)
    metrics = score_outputs(outputs, targets, task_of(card.task).scoring_classes(card.classes), n_boot=n_boot)
    return metrics, card, len(targets)


def checkpoint_outputs(checkpoint: str | Path, data_root: Path | None, split: str = "test",
                       dataset: str | None = None, limit: int | None = None, architecture: str | None = None):
    """(raw outputs, targets, the dataset evaluated, card): what per-source scoring and refitting need."""
    from edgederm.checkpoint import load_checkpoint
    from edgederm.data import load_dataset
    from edgederm.data.layouts import find_dataset
    from edgederm.data.arrays import load_arrays
    from edgederm.errors import EdgeDermError
    from edgederm.tensors import predict

    model, card = load_checkpoint(checkpoint)
    if architecture:
        from dataclasses import replace

        model, card = load_checkpoint(checkpoint, replace(card, architecture=architecture))
    name = dataset or card.data.get("dataset")
    root = find_dataset(name, data_root, f"dataset of {checkpoint}")
    ds = load_dataset(root).split(split)
    if ds.task != card.task:
        raise EdgeDermError(f"{checkpoint} is a {card.task} model but {root} holds {ds.task} data")
    if limit:
        ds = ds.subset(limit)
    arrays = load_arrays(ds, card.preprocessing, desc=f"decode {split}")
    outputs = predict(model, arrays.images, card.preprocessing, desc="evaluate")
    return outputs, arrays.targets, ds, card
