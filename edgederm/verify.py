"""Verify every artifact against its PyTorch original on real images, with per-precision gates.

Each artifact is run by the same ``device_bench`` runner a device would use, fed exactly as
its manifest says (layout, normalisation, integer quantisation), and compared with the
PyTorch model on the same images: probabilities and top-1 agreement for classifiers, mask
Dice between the two for segmenters, plus each one's score against the ground truth; and for
both, the pre-activation outputs (logits, mask logits: cosine and relative error), which a
saturated softmax cannot hide. A failed gate names the artifact and the figure.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from edgederm.errors import EdgeDermError
from edgederm.manifest import Artifact, Manifest
from edgederm.tasks import task_of
from edgederm.tasks.parity import logit_figures  # noqa: F401  (re-exported: tests and tools read it here)


@dataclass(frozen=True)
class Gate:
    """Thresholds an artifact must meet; ``None`` skips a figure.

    The ``max_*_drop`` figures are task-metric drops of the artifact against the PyTorch
    original on the same verification images (original - artifact; a gain is negative):
    balanced accuracy and macro AUROC for classifiers, mean Dice and thresholded Jaccard
    (against the ground truth) for segmenters.
    """

    max_abs_prob: float | None = None
    min_top1_agreement: float | None = None
    min_mask_dice: float | None = None
    max_balanced_accuracy_drop: float | None = None
    max_auroc_drop: float | None = None
    max_dice_drop: float | None = None
    max_thresholded_jaccard_drop: float | None = None
    min_logit_cosine: float | None = None
    max_logit_rel_error: float | None = None


# Pre-activation gates (logits / mask logits): a saturated softmax or sigmoid shows |dp| = 0 and
# full agreement even when the converted graph computes something else; the logits do not hide it.
# int8 has none: its logit SQNR is 5-15 dB on healthy trained models (docs/diagnosis.md), so it is
# judged by the task-metric drops and its logit figures are reported only.
DEFAULT_GATES: dict[str, Gate] = {
    "fp32": Gate(max_abs_prob=1e-3, min_top1_agreement=0.995, min_mask_dice=0.99,
                 min_logit_cosine=0.999, max_logit_rel_error=0.01),
    "fp16": Gate(max_abs_prob=None, min_top1_agreement=0.99, min_mask_dice=0.98,
                 min_logit_cosine=0.99, max_logit_rel_error=0.1),
    # The int8 targets: <= 0.5 pt balanced accuracy, <= 0.005 AUROC, <= 0.5 pt Dice / thr-Jaccard.
    "int8": Gate(max_abs_prob=None, min_top1_agreement=0.90, min_mask_dice=0.95, max_balanced_accuracy_drop=0.005,
                 max_auroc_drop=0.005, max_dice_drop=0.005, max_thresholded_jaccard_drop=0.005),
}


@dataclass
class VerifyResult:
    artifact: str
    status: str  # "pass" | "fail" | "skipped"
    figures: dict = field(default_factory=dict)
    reason: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


def reference_outputs(model, images_uint8: np.ndarray, manifest: Manifest) -> np.ndarray:
    from edgederm.tensors import predict

    batch = 1 if getattr(model, "static_batch", False) else 32
    return predict(model, images_uint8, manifest.preprocessing, batch_size=batch, desc="verify: PyTorch original")


def artifact_input(artifact: Artifact, images_uint8: np.ndarray, manifest: Manifest) -> np.ndarray:
    """The batch this artifact expects: uint8 pixels for image inputs, else normalised float in its layout."""
    spec = artifact.inputs[0]
    if spec.layout.startswith("image"):
        return images_uint8
    prep = manifest.preprocessing.replace(layout="NHWC" if spec.layout == "NHWC" else "NCHW")
    return prep.normalize(images_uint8)


def to_reference_layout(artifact: Artifact, y: np.ndarray, task: str) -> np.ndarray:
    """Classifier outputs as [N, C]; segmenter outputs as [N, 1, H, W]."""
    if not task_of(task).has_class_labels and artifact.outputs[0].layout == "NHWC":
        y = np.moveaxis(y, -1, 1)
    return y


def compare(task: str, ref: np.ndarray, got: np.ndarray, targets: np.ndarray, got_is_prob: bool) -> dict:
    """Parity figures of ``got`` against ``ref`` (the original's logits), as the task defines them;
    ``got_is_prob`` means the artifact returns probabilities (Core ML classifiers): no logit figures."""
    return task_of(task).parity(ref, got, targets, got_is_prob)


def judge(name: str, task: str, figures: dict, gate: Gate) -> tuple[str, str]:
    limits = [(figure, getattr(gate, field), op) for figure, field, op in task_of(task).gate_figures]
    logit_gated = gate.min_logit_cosine is not None or gate.max_logit_rel_error is not None
    limits += [("logit_nonfinite", 0 if logit_gated else None, "<="),
               ("logit_cosine_min", gate.min_logit_cosine, ">="), ("logit_rel_error", gate.max_logit_rel_error, "<=")]
    for figure, limit, op in limits:
        value = figures.get(figure)
        if limit is None or value is None or np.isnan(value):  # AUROC is undefined when a class is absent
            continue
        ok = value <= limit if op == "<=" else value >= limit
        if not ok:
            return "fail", f"{name}: {figure} {value:.6g} fails the gate {op} {limit:g}"
    return "pass", ""


def verify_artifact(artifact: Artifact, folder: Path, manifest: Manifest, images_uint8: np.ndarray,
                    targets: np.ndarray, ref: np.ndarray, gate: Gate, threads: int | None = None) -> VerifyResult:
    from device_bench.runners import RunnerUnavailable, open_runner, run_batched

    path = Path(folder) / artifact.path
    try:
        runner = open_runner(path, artifact.format, threads=threads)
    except RunnerUnavailable as e:
        figures = {}
        if artifact.format == "coreml":
            from converters.torch2coreml import inspect

            figures = {"structure": inspect(path)}
        return VerifyResult(artifact.name, "skipped", figures, f"numeric parity not run: {e}")
    x = artifact_input(artifact, images_uint8, manifest)
    batch = 1 if artifact.inputs[0].shape[0] == 1 else 32
    got = to_reference_layout(artifact, run_batched(runner, x, batch), manifest.task)
    is_prob = artifact.format == "coreml" and task_of(manifest.task).has_class_labels
    figures = compare(manifest.task, ref, got.astype(np.float32), targets, is_prob)
    figures.update(runtime=runner.runtime, delegate=runner.delegate)
    status, reason = judge(artifact.name, manifest.task, figures, gate)
    return VerifyResult(artifact.name, status, figures, reason)


def gate_for(precision: str, overrides: dict[str, Gate] | None = None) -> Gate:
    gates = {**DEFAULT_GATES, **(overrides or {})}
    return gates.get(precision, gates["int8"])


def verification_arrays(manifest: Manifest, data_root: Path | None, n: int = 128, dataset: str | None = None,
                        with_ids: bool = False):
    """(uint8 images, targets[, ids]): a class-stratified sample of ``n`` test images of the model's dataset
    (the same selection ``edgederm bundle`` ships, so device and host results compare image for image)."""
    from edgederm.data import load_dataset
    from edgederm.data.arrays import load_arrays
    from edgederm.data.layouts import find_dataset

    name = dataset or manifest.model.get("dataset")
    root = find_dataset(name, data_root, "verification data (or give --no-verify)")
    ds = load_dataset(root).split("test").subset(n, seed=0)
    arrays = load_arrays(ds, manifest.preprocessing, desc="verify: decode test images")
    return (arrays.images, arrays.targets, list(arrays.ids)) if with_ids else (arrays.images, arrays.targets)


def verify_manifest(manifest: Manifest, folder: Path, model, images_uint8: np.ndarray, targets: np.ndarray,
                    gates: dict[str, Gate] | None = None, only: list[str] | None = None) -> list[VerifyResult]:
    """Verify the manifest's artifacts (all, or ``only`` these names) and record the results in it."""
    ref = reference_outputs(model, images_uint8, manifest)
    results = []
    for artifact in manifest.artifacts:
        if only and artifact.name not in only:
            continue
        try:  # the bytes verified are the bytes the manifest records, or the artifact fails by name
            manifest.artifact_file(folder, artifact)
            verified_sha256 = artifact.sha256
        except EdgeDermError as e:
            result, verified_sha256 = VerifyResult(artifact.name, "fail", {}, str(e)), None
        else:
            try:
                result = verify_artifact(artifact, folder, manifest, images_uint8, targets, ref,
                                         gate_for(artifact.precision, gates))
            except Exception as e:  # noqa: BLE001 - a file its runtime cannot load or run fails verification by name
                first = str(e).strip().splitlines()[0][:160] if str(e).strip() else ""
                result = VerifyResult(artifact.name, "fail", {}, f"{artifact.name} does not run in its runtime "
                                      f"({type(e).__name__}: {first})")
        artifact.verify = {**result.to_dict(), "gate": asdict(gate_for(artifact.precision, gates)),
                           "sha256": verified_sha256}
        results.append(result)
    return results
