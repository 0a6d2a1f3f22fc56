"""``edgederm export``: checkpoint -> ONNX / TFLite / Core ML artifacts + manifest, verified.

The manifest is saved after every artifact, so an interrupted export keeps what finished
(each artifact itself is written atomically and never half-present).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from edgederm.errors import EdgeDermError
from edgederm.manifest import Artifact, Manifest, output_spec
from edgederm.progress import log

STEM = "model"


@dataclass
class ExportOutcome:
    manifest: Manifest
    folder: Path
    failures: list[dict] = field(default_factory=list)  # {"format", "precision", "error"}
    verify: list = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)
    quantized: object = None  # quantization.QuantizeOutcome when export(..., quantize=...) ran


def parse_formats(text: str | list[str]) -> list[str]:
    from converters import FORMATS

    names = [t.strip() for t in (text.split(",") if isinstance(text, str) else text) if t.strip()]
    for n in names:
        FORMATS.get(n)  # raises with "did you mean"
    return names


def check_writable(folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".write-test-{os.getpid()}"
        probe.write_text("")
        probe.unlink()
    except OSError as e:
        raise EdgeDermError(f"output folder {folder} is not writable ({e.strerror}): pass --out with a folder you can write") from None


def manifest_for(card, checkpoint: Path, name: str) -> Manifest:
    from edgederm.checkpoint import sha256_file

    return Manifest(
        model={"name": name, "architecture": card.architecture, "task": card.task, "classes": list(card.classes),
               "dataset": card.data.get("dataset"), "checkpoint": str(checkpoint),
               "checkpoint_sha256": sha256_file(checkpoint) if checkpoint.is_file() else "",
               "metrics": card.metrics},
        preprocessing=card.preprocessing, output=output_spec(card.task, list(card.classes)))


def export(checkpoint: str | os.PathLike, out: str | os.PathLike, formats=("onnx", "tflite", "coreml"),
           coreml_precisions=("fp16",), tflite_precisions=("fp32", "fp16"), verify: bool = True, data_root=None,
           n_verify: int = 128, gates=None, name: str | None = None, model=None, card=None,
           meta=None, weights=None, dynamic_batch: bool = False, quantize=None) -> ExportOutcome:
    from converters import handler
    from edgederm.checkpoint import load_checkpoint

    from edgederm.byom import is_foreign, load_foreign

    formats = parse_formats(list(formats))  # a typo fails before any slow work
    if model is None and is_foreign(str(checkpoint)):
        model, card = load_foreign(str(checkpoint), meta, weights)
    elif model is None:
        model, card = load_checkpoint(checkpoint)
    checkpoint = Path(checkpoint)
    folder = Path(out)
    check_writable(folder)
    manifest = manifest_for(card, checkpoint, name or checkpoint.stem)
    outcome = ExportOutcome(manifest, folder)
    deployed, deploy_note = deployable(model, card)
    images = targets = None
    if verify or "tflite" in formats:
        try:
            images, targets = verification_data(manifest, data_root, n_verify)
        except EdgeDermError:
            if verify:
                raise
    onnx_path = folder / f"{STEM}.onnx"

    def attempt(fmt: str, precision: str, fn):
        t0 = time.perf_counter()
        log(f"export: {fmt} {precision} ...")
        try:
            made = fn()
        except EdgeDermError as e:
            outcome.failures.append({"format": fmt, "precision": precision, "error": str(e)})
            log(f"export: {fmt} {precision} FAILED: {e}")
            return []
        made = made if isinstance(made, list) else [made]
        for a in made:
            if deploy_note:
                a.notes.append(deploy_note)
            _finish(a, folder)
            manifest.put(a)
        manifest.save(folder)
        outcome.seconds[f"{fmt}_{precision}"] = round(time.perf_counter() - t0, 1)
        return made

    if "onnx" in formats or "tflite" in formats:
        attempt("onnx", "fp32", lambda: handler("torch2onnx")(deployed, manifest, onnx_path,
                                                               dynamic_batch=dynamic_batch and "tflite" not in formats))
    if "tflite" in formats:
        if onnx_path.exists():
            attempt("tflite", "+".join(tflite_precisions), lambda: handler("onnx2tflite")(
                onnx_path, manifest, folder, precisions=tflite_precisions, calibration_images=images, stem=STEM))
        else:
            outcome.failures += [{"format": "tflite", "precision": p, "error": "needs the ONNX file, whose export failed"}
                                 for p in tflite_precisions]
    if "coreml" in formats:
        for p in coreml_precisions:
            attempt("coreml", p, lambda p=p: handler("torch2coreml")(deployed, manifest, folder / f"{STEM}_{p}.mlpackage", p))
    if "onnx" not in formats and onnx_path.exists():  # ONNX was only the road to TFLite
        manifest.artifacts = [a for a in manifest.artifacts if a.format != "onnx"]
        onnx_path.unlink()
    manifest.add_step("export", formats=formats, failures=outcome.failures, seconds=outcome.seconds)
    if verify:
        from edgederm.verify import verify_manifest

        outcome.verify = verify_manifest(manifest, folder, model, images, targets, gates)
        manifest.add_step("verify", images=int(len(images)), results={r.artifact: r.status for r in outcome.verify})
    else:
        for a in manifest.artifacts:
            a.verify = {"status": "skipped", "reason": "--no-verify given"}
        manifest.add_step("verify", skipped=True, reason="--no-verify given")
    manifest.save(folder)
    if quantize:  # schemes for `edgederm quantize`, over the formats just exported, verified the same way
        from quantization import quantize as quantize_folder

        q = quantize_folder(folder, quantize, formats, data_root=data_root, verify=verify, gates=gates, model=model)
        outcome.quantized, outcome.manifest = q, q.manifest
        outcome.verify += q.verify
        outcome.failures += [{"format": f["scheme"].split(":")[1], "precision": f["scheme"].split(":")[0],
                              "error": f["error"]} for f in q.failures]
    return outcome


def deployable(model, card):
    """The module to convert: the model itself, or its registered deployable twin with the same weights.

    SegNet's index unpooling converts to neither TFLite builtins nor Core ML; its twin
    ``segnet_mobile`` computes the same function from convertible ops. Verification still
    compares every artifact with the original.
    """
    from edgederm.models import MODELS, create_model, get_entry

    get_entry("efficientnet_lite0")  # fills the registry
    variant = MODELS.get(card.architecture).deploy_variant if card.architecture in MODELS else None
    if not variant:
        return model, ""
    twin = create_model(variant, num_classes=len(card.classes) if card.task == "classification" else 1)
    if (getattr(card, "pruning", None) or {}).get("layers"):  # a pruned original: the twin gets its channel counts
        from edgederm.prune import apply_pruned_shapes

        apply_pruned_shapes(twin, card.pruning["layers"])
    twin.load_state_dict(model.state_dict(), strict=True)
    return twin.eval(), f"converted from {variant} (same weights as {card.architecture}, convertible unpooling)"


def verification_data(manifest: Manifest, data_root, n: int):
    from edgederm.verify import verification_arrays

    return verification_arrays(manifest, data_root, n)


def _finish(artifact: Artifact, folder: Path) -> None:
    """Make the artifact's path relative to the manifest folder and record size and sha256."""
    from device_bench.bundle import sha256_path  # a folder (.mlpackage) hashes as devices re-check it

    path = Path(artifact.path)
    artifact.path = os.path.relpath(path, folder)
    size = sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) if path.is_dir() else path.stat().st_size
    artifact.sha256, artifact.size_bytes = sha256_path(path), size
