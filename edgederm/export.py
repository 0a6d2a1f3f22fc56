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
    quantized: object = None  # quantization.QuantizeOutcome when `edgederm export --quantize` ran
    formats: list[str] = field(default_factory=list)  # those attempted: asked for, less what the source cannot make
    original: object = None  # the PyTorch original the export loaded (a later stage reuses it)


@dataclass
class ExportPlan:
    """What one export makes and how it checks it (``export``'s options, in one place)."""

    formats: list[str]
    coreml_precisions: tuple = ("fp16",)
    tflite_precisions: tuple = ("fp32", "fp16")
    verify: bool = True
    data_root: object = None
    n_verify: int = 128
    gates: dict | None = None
    dynamic_batch: bool = False

    def precisions_of(self, fmt: str) -> tuple:
        """The precisions asked for ``fmt`` (export's options), else the format's defaults."""
        from converters import FORMATS

        asked = {"coreml": self.coreml_precisions, "tflite": self.tflite_precisions}.get(fmt)
        return tuple(asked) if asked else tuple(FORMATS.get(fmt).default_precisions)


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


def export(checkpoint: str | os.PathLike, out: str | os.PathLike, formats=None,
           coreml_precisions=("fp16",), tflite_precisions=("fp32", "fp16"), verify: bool = True, data_root=None,
           n_verify: int = 128, gates=None, name: str | None = None, model=None, card=None,
           meta=None, weights=None, dynamic_batch: bool = False, force: bool = False,
           trust_source: bool = False) -> ExportOutcome:
    """Export ``checkpoint`` (or the given ``model`` and ``card``) to ``formats`` in the folder ``out``
    and verify every artifact; a first export that fails leaves no folder behind."""
    from edgederm.byom import load_original

    from converters import DEFAULT_EXPORT

    formats = parse_formats(list(formats or DEFAULT_EXPORT))  # a typo fails before any slow work
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
    previous = None if created else earlier_manifest(folder)
    plan = ExportPlan(formats, tuple(coreml_precisions), tuple(tflite_precisions), verify, data_root, n_verify, gates,
                      dynamic_batch)
    try:
        outcome = export_into(folder, manifest, previous, model, card, plan)
    except BaseException:
        if created:  # nothing of a failed first export is left to look like one
            shutil.rmtree(folder, ignore_errors=True)
        raise
    if created and not outcome.manifest.artifacts:  # every format failed: no empty export folder either
        shutil.rmtree(folder, ignore_errors=True)
    return outcome


def earlier_manifest(folder: Path) -> Manifest | None:
    if not (folder / "manifest.json").exists():
        return None
    try:
        return Manifest.load(folder)
    except EdgeDermError as e:  # a damaged earlier manifest: this export starts the folder afresh
        log(f"export: the earlier manifest in {folder} is not usable ({e}); starting afresh")
        return None


def export_into(folder: Path, manifest: Manifest, previous: Manifest | None, model, card,
                plan: ExportPlan) -> ExportOutcome:
    """Convert, verify and complete: the manifest is saved after every artifact, "incomplete" until the end."""
    if previous is not None:  # a re-export of some formats keeps the others' artifacts whose bytes still match
        manifest.artifacts = [a for a in previous.artifacts if a.format not in plan.formats
                              and _still_there(previous, folder, a)]
        if manifest.artifacts:
            log(f"export: keeping {', '.join(a.name for a in manifest.artifacts)} from the earlier export in {folder}")
    manifest.save(folder)  # state "incomplete" until the end: bundle, embed and bench refuse it meanwhile
    outcome = ExportOutcome(manifest, folder, original=model)
    deployed, deploy_note = deployable(model, card)
    # a source form that cannot make a format says why (edgederm.model_sources: an ONNX file has no Core ML route)
    refused = {f: why for f, why in getattr(deployed, "unsupported_formats", {}).items() if f in plan.formats}
    outcome.failures += [{"format": f, "precision": "all", "error": why} for f, why in refused.items()]
    outcome.formats = [f for f in plan.formats if f not in refused]
    images = targets = None
    from converters import FORMATS

    if plan.verify or any(FORMATS.get(f).needs_images for f in outcome.formats):  # e.g. TFLite's integer ranges
        try:
            images, targets = verification_data(manifest, plan.data_root, plan.n_verify)
        except EdgeDermError:
            if plan.verify:
                raise
    convert_all(outcome, deployed, deploy_note, plan, images)
    manifest.add_step("export", formats=outcome.formats, failures=outcome.failures, seconds=outcome.seconds)
    verify_step(outcome, model, images, targets, plan)
    _complete(manifest, folder)
    return outcome


def attempt(outcome: ExportOutcome, deploy_note: str | None, fmt: str, precision: str, fn) -> list[Artifact]:
    """One conversion: its artifacts recorded (sha256, size) and the manifest saved; a failure is
    recorded in ``outcome.failures`` and the other formats still run."""
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
        record_file(a, outcome.folder)
        outcome.manifest.put(a)
    outcome.manifest.save(outcome.folder)
    outcome.seconds[f"{fmt}_{precision}"] = round(time.perf_counter() - t0, 1)
    return made


def planned_formats(formats: list[str]) -> list[str]:
    """The formats to make, each after those it is made from (``Format.requires``), asked-for order kept."""
    from converters import FORMATS

    order: list[str] = []

    def add(name: str) -> None:
        for needed in FORMATS.get(name).requires:
            add(needed)
        if name not in order:
            order.append(name)

    for name in formats:
        add(name)
    return order


def convert_all(outcome: ExportOutcome, deployed, deploy_note, plan: ExportPlan, images) -> None:
    """Every format of ``outcome.formats`` through its ``converters.FORMATS`` exporter; a format made
    only because another is made from it (ONNX for TFLite) is removed again afterwards."""
    from converters import FORMATS, exporter

    manifest, folder = outcome.manifest, outcome.folder
    made: dict[str, list[Artifact]] = {}
    for fmt in planned_formats(outcome.formats):
        entry = FORMATS.get(fmt)
        precisions = plan.precisions_of(fmt)
        missing = [r for r in entry.requires if not made.get(r)]
        if missing:
            outcome.failures += [{"format": fmt, "precision": p, "error": f"needs the {missing[0].upper()} file, whose "
                                  "export failed"} for p in precisions]
            continue
        groups = [(p,) for p in precisions] if entry.per_precision else [tuple(precisions)]
        made[fmt] = []
        for group in groups:
            made[fmt] += attempt(outcome, deploy_note, fmt, "+".join(group), lambda entry=entry, group=group: exporter(entry)(
                deployed, manifest, folder, STEM, group, calibration_images=images, dynamic_batch=plan.dynamic_batch))
    for fmt in made:
        if fmt not in outcome.formats:  # only the road to another format
            for a in made[fmt]:
                manifest.artifacts = [m for m in manifest.artifacts if m.name != a.name]
                path = folder / a.path
                shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)
    manifest.save(folder)


def verify_step(outcome: ExportOutcome, model, images, targets, plan: ExportPlan) -> None:
    """The parity gates on every artifact, or each one marked skipped with the reason."""
    manifest = outcome.manifest
    if plan.verify:
        from edgederm.verify import verify_manifest

        outcome.verify = verify_manifest(manifest, outcome.folder, model, images, targets, plan.gates)
        manifest.add_step("verify", images=int(len(images)), results={r.artifact: r.status for r in outcome.verify})
    else:
        for a in manifest.artifacts:
            a.verify = {"status": "skipped", "reason": "--no-verify given"}
        manifest.add_step("verify", skipped=True, reason="--no-verify given")


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
