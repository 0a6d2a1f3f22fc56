"""How the ``--max-drop`` ladder measures a candidate: the task's headline metric on validation
images, and its batch-1 latency, run through the same runner a device would use."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgederm.tasks import task_of
from edgederm.verify import artifact_input, to_reference_layout


def task_metric(task: str, outputs: np.ndarray, targets: np.ndarray, classes: list[str] | None = None) -> float:
    """The task's headline metric (``TaskSpec.headline``: balanced accuracy, Dice) of raw outputs
    (logits [N, C] or mask logits [N, 1, H, W]) against the truth, scored as ``bench`` scores it."""
    spec = task_of(task)
    per_image, functions = spec.scorer(targets, spec.scoring_classes(classes or []))
    return float(functions(per_image(outputs, False))[spec.headline](np.arange(len(targets))))


def validation_arrays(manifest, data_root, n: int):
    """(uint8 images, targets) of ``n`` class-stratified validation images of the model's dataset."""
    from edgederm.data import load_dataset
    from edgederm.data.arrays import load_arrays
    from edgederm.data.layouts import find_dataset

    root = find_dataset(manifest.model.get("dataset"), data_root, "validation data for --max-drop")
    ds = load_dataset(root).split("val")
    ds = ds.subset(n, seed=0) if n else ds
    arrays = load_arrays(ds, manifest.preprocessing, desc="control: decode validation images")
    return arrays.images, arrays.targets


def measure_artifact(artifact, folder: Path, manifest, images: np.ndarray, targets: np.ndarray,
                     threads: int = 1, latency_runs: int = 20) -> tuple[float, float]:
    """(task metric on ``images``, median latency ms at batch 1) of one artifact, run as a device would."""
    from device_bench.runners import open_runner, run_batched
    from device_bench.timing import measure

    runner = open_runner(Path(folder) / artifact.path, artifact.format, threads=threads)
    x = artifact_input(artifact, images, manifest)
    out = to_reference_layout(artifact, run_batched(runner, x, 1), manifest.task)
    latency = measure(runner, x[:1], warmup=3, runs=latency_runs, max_seconds=10.0)["median_ms"]
    return task_metric(manifest.task, out.astype(np.float32), targets, manifest.classes), latency
