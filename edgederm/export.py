"""``edgederm export``: checkpoint -> ONNX / TFLite / Core ML artifacts + manifest, verified.

The manifest is saved after every artifact, so an interrupted export keeps what finished
(each artifact itself is written atomically and never half-present).
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from edgederm.errors import EdgeDermError
from edgederm.manifest import COMPLETE, INCOMPLETE, Artifact, Manifest, output_spec, record_file
from edgederm.models.deploy import deployable
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
    """The manifest's model record; a file source is stored absolute (stages run from anywhere)."""
    from edgederm.checkpoint import sha256_file

    is_file = checkpoint.is_file()
    model = {"name": name, "architecture": card.architecture, "task": card.task, "classes": list(card.classes),
             "dataset": card.data.get("dataset"), "checkpoint": str(checkpoint.resolve() if is_file else checkpoint),
             "checkpoint_sha256": sha256_file(checkpoint) if is_file else "", "metrics": card.metrics}
    if (card.training or {}).get("meta"):  # a foreign model's description travels with it
        model["meta"] = card.training["meta"]
    for key in ("weights", "weights_sha256"):  # and its --weights file (edgederm.byom)
        if (card.training or {}).get(key):
            model[key] = card.training[key]
    return Manifest(model=model, preprocessing=card.preprocessing, output=output_spec(card.task, list(card.classes)),
                    state=INCOMPLETE)


def check_output_folder(folder: Path, force: bool = False) -> None:
    """Refuse to write into a non-empty folder that is not an EdgeDerm export (a user's own files
    would be overwritten), unless ``force``."""
    if force or not folder.exists():
        return
    if not folder.is_dir():
        raise EdgeDermError(f"--out {folder} is a file: pass a folder")
    if any(folder.iterdir()) and not (folder / "manifest.json").exists():
        raise EdgeDermError(f"--out {folder} is not empty and holds no EdgeDerm manifest: pass a new or empty folder, "
                            "or --force to write into it")


def export(checkpoint: str | os.PathLike, out: str | os.PathLike, formats=("onnx", "tflite", "coreml"),
           coreml_precisions=("fp16",), tflite_precisions=("fp32", "fp16"), verify: bool = True, data_root=None,
           n_verify: int = 128, gates=None, name: str | None = None, model=None, card=None,
           meta=None, weights=None, dynamic_batch: bool = False, quantize=None, force: bool = False,
           trust_source: bool = False) -> ExportOutcome:
    from edgederm.byom import load_original

    formats = parse_formats(list(formats))  # a typo fails before any slow work
    if dynamic_batch and "tflite" in formats:
        raise EdgeDermError("--dynamic-batch goes with --to onnx only: onnx2tf and TensorRT int8 want static shapes")
    if n_verify < 1:
        raise EdgeDermError(f"--verify-images {n_verify} must be at least 1")
    folder = Path(out)
    check_output_folder(folder, force)
    if model is None:
        model, card = load_original(str(checkpoint), meta, weights, trust=trust_source)
    checkpoint = Path(checkpoint)
    created = not folder.exists()
    check_writable(folder)
    manifest = manifest_for(card, checkpoint, name or checkpoint.stem)
    previous = None
    if (folder / "manifest.json").exists() and not created:
        try:
            previous = Manifest.load(folder)
        except EdgeDermError as e:  # a damaged earlier manifest: this export starts the folder afresh
            log(f"export: the earlier manifest in {folder} is not usable ({e}); starting afresh")
    try:
        outcome = _export_into(folder, manifest, previous, model, card, formats, coreml_precisions, tflite_precisions,
                               verify, data_root, n_verify, gates, dynamic_batch, quantize)
    except BaseException:
        if created:  # nothing of a failed first export is left to look like one
            shutil.rmtree(folder, ignore_errors=True)
        raise
    if created and not outcome.manifest.artifacts:  # every format failed: no empty export folder either
        shutil.rmtree(folder, ignore_errors=True)
    return outcome


def _export_into(folder, manifest, previous, model, card, formats, coreml_precisions, tflite_precisions, verify,
                 data_root, n_verify, gates, dynamic_batch, quantize) -> ExportOutcome:
    from converters import FORMATS, exporter, handler

    if previous is not None:  # a re-export of some formats keeps the others' artifacts whose bytes still match
        kept = [a for a in previous.artifacts if a.format not in formats and _still_there(previous, folder, a)]
        manifest.artifacts = kept
        if kept:
            log(f"export: keeping {', '.join(a.name for a in kept)} from the earlier export in {folder}")
    manifest.save(folder)  # state "incomplete" until the end: bundle, embed and bench refuse it meanwhile
    outcome = ExportOutcome(manifest, folder)
    deployed, deploy_note = deployable(model, card)
    # a source form that cannot make a format says why (edgederm.model_sources: an ONNX file has no Core ML route)
    refused = {f: why for f, why in getattr(deployed, "unsupported_formats", {}).items() if f in formats}
    outcome.failures += [{"format": f, "precision": "all", "error": why} for f, why in refused.items()]
    formats = [f for f in formats if f not in refused]
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
            record_file(a, folder)
            manifest.put(a)
        manifest.save(folder)
        outcome.seconds[f"{fmt}_{precision}"] = round(time.perf_counter() - t0, 1)
        return made

    onnx_route = getattr(deployed, "onnx_route", "torch2onnx")  # an ONNX source is its own ONNX (onnx2onnx)
    if "onnx" in formats or "tflite" in formats:
        attempt("onnx", "fp32", lambda: handler(onnx_route)(deployed, manifest, onnx_path,
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
    for fmt in formats:  # formats registered with an exporter (converters.FORMATS): one entry each, no branch here
        entry = FORMATS.get(fmt)
        if entry.exporter:
            attempt(fmt, "+".join(entry.default_precisions), lambda entry=entry: exporter(entry)(
                deployed, manifest, folder, STEM, precisions=entry.default_precisions, calibration_images=images))
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
    _complete(manifest, folder)
    if quantize:  # schemes for `edgederm quantize`, over the formats just exported, verified the same way
        from quantization import quantize as quantize_folder

        q = quantize_folder(folder, quantize, formats, data_root=data_root, verify=verify, gates=gates, model=model)
        outcome.quantized, outcome.manifest = q, q.manifest
        outcome.verify += q.verify
        outcome.failures += [{"format": f["scheme"].split(":")[1], "precision": f["scheme"].split(":")[0],
                              "error": f["error"]} for f in q.failures]
    return outcome


def _still_there(manifest: Manifest, folder: Path, artifact: Artifact) -> bool:
    try:
        manifest.artifact_file(folder, artifact)
        return True
    except EdgeDermError as e:
        log(f"export: dropping {artifact.name} from the manifest ({e})")
        return False


def _complete(manifest: Manifest, folder: Path) -> None:
    manifest.state = COMPLETE
    manifest.save(folder)


def verification_data(manifest: Manifest, data_root, n: int):
    from edgederm.verify import verification_arrays

    return verification_arrays(manifest, data_root, n)
