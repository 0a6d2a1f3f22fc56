"""The quantization registry and its one verb, ``quantize``; see the package docstring for the API."""

from __future__ import annotations

import importlib
import os
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass, field, is_dataclass, replace
from pathlib import Path
from typing import Any

from edgederm.errors import EdgeDermError
from edgederm.manifest import Artifact, Manifest
from edgederm.paths import find_data_root
from edgederm.progress import log
from edgederm.registry import Registry
from quantization.calibration import CalibrationConfig, CalibrationSet, load_calibration

STEM = "model"
FORMAT_ORDER = ("onnx", "tflite", "coreml", "executorch")


@dataclass(frozen=True)
class QuantScheme:
    """One quantization scheme for one format: data (``config``) apart from code (``handler``).

    Attributes:
        scheme: the user's word for it (``int8``, ``dynamic``, ``w8`` ...).
        format: ``onnx`` | ``tflite`` | ``coreml``.
        config: the default config, a frozen dataclass the handler reads; pass another to
            ``run_scheme`` to vary it (per-tensor, excluded nodes, other calibration method ...).
        handler: ``"module:function"`` called as ``fn(ctx, config, target) -> Artifact``.
        artifact: the manifest artifact name it writes (file ``model_<suffix>``).
        description: one line for ``edgederm quantize --list`` and the docs.
        precision: the manifest precision (also the gate key; unknown keys get the int8 gate).
        calibrated: whether it needs calibration images.
    """

    scheme: str
    format: str
    config: Any
    handler: str
    artifact: str
    description: str
    precision: str = ""
    calibrated: bool = True

    @property
    def key(self) -> str:
        return f"{self.scheme}:{self.format}"

    def call(self, ctx: "QuantContext", config, target: Path) -> Artifact:
        module, _, fn = self.handler.partition(":")
        return getattr(importlib.import_module(module), fn)(ctx, config, target)


SCHEMES: Registry[QuantScheme] = Registry("quantization scheme")


def register_scheme(scheme: QuantScheme) -> QuantScheme:
    if not scheme.precision:
        scheme = replace(scheme, precision=scheme.scheme)
    return SCHEMES.register(scheme.key, scheme)


def scheme_names() -> list[str]:
    return sorted({s.scheme for _, s in SCHEMES.items()})


def artifact_filename(artifact_name: str, fmt: str) -> str:
    """``tflite_int8`` -> ``model_int8.tflite``; ``onnx_int8_nncf`` -> ``model_int8_nncf.onnx``."""
    from converters import FORMATS

    suffix = artifact_name[len(fmt) + 1:] if artifact_name.startswith(fmt + "_") else artifact_name
    return f"{STEM}_{suffix}{FORMATS.get(fmt).suffix}"


def resolve(schemes, formats) -> tuple[list[QuantScheme], list[str]]:
    """Scheme names and/or ``scheme:format`` keys -> registered schemes, plus notes on skipped pairs.

    A bare name (``int8``) is expanded over ``formats`` and pairs that do not exist are skipped
    with a note (``dynamic`` has no ONNX scheme); a full key must exist. Duplicated artifacts
    (``int8:coreml`` is ``w8:coreml``) are kept once.
    """
    items = [s.strip() for s in (schemes.split(",") if isinstance(schemes, str) else schemes) if s.strip()]
    formats = [f.strip() for f in (formats.split(",") if isinstance(formats, str) else formats) if f.strip()]
    if not items:
        raise EdgeDermError(f"no scheme given: pass --scheme with one of {', '.join(scheme_names())}")
    from converters import FORMATS

    for f in formats:
        FORMATS.get(f)
    chosen: list[QuantScheme] = []
    notes: list[str] = []
    for item in items:
        if ":" in item:
            chosen.append(SCHEMES.get(item))
            continue
        if item not in scheme_names():
            import difflib

            close = difflib.get_close_matches(item, scheme_names(), n=1, cutoff=0.5)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise EdgeDermError(f"unknown quantization scheme {item!r}{hint} Known: {', '.join(scheme_names())}")
        found = [SCHEMES.get(f"{item}:{f}") for f in formats if f"{item}:{f}" in SCHEMES]
        missing = [f for f in formats if f"{item}:{f}" not in SCHEMES]
        if not found:
            have = [s.format for _, s in SCHEMES.items() if s.scheme == item]
            raise EdgeDermError(f"scheme {item!r} exists for {', '.join(have)}, not for {', '.join(formats)}: "
                                f"pass --format {','.join(have)}")
        chosen += found
        notes += [f"{item}: no {f} scheme (skipped)" for f in missing]
    unique: dict[str, QuantScheme] = {}
    for s in chosen:
        unique.setdefault(s.artifact, s)
    return list(unique.values()), notes


# --- context: what every handler may need, made once and lazily ------------------------------
class QuantContext:
    """One export folder being quantized: its manifest, calibration, original model and scratch space.

    Everything is made on first use and cached, so handlers share one calibration set, one
    PyTorch model load and one onnx2tf run (``cache``). Use as a context manager (the scratch
    folder is removed on exit).
    """

    def __init__(self, folder: str | os.PathLike, manifest: Manifest | None = None,
                 calibration: CalibrationConfig | CalibrationSet | None = None, data_root=None, model=None,
                 plan: list[QuantScheme] | None = None, trust_source: bool = False):
        self.folder = Path(folder)
        self.trust_source = trust_source
        self.manifest = manifest or Manifest.load(self.folder)
        self.data_root = data_root if data_root is not None else find_data_root()  # $EDGEDERM_DATA, ../shared/data
        self.plan = list(plan or [])
        self.cache: dict[Any, Any] = {}
        self._calibration = calibration if isinstance(calibration, CalibrationSet) else None
        self.calibration_config = calibration if isinstance(calibration, CalibrationConfig) else CalibrationConfig()
        self._model = model
        self._work: Path | None = None

    def __enter__(self) -> "QuantContext":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        if self._work is not None:
            shutil.rmtree(self._work, ignore_errors=True)
            self._work = None

    @property
    def work(self) -> Path:
        """A scratch folder removed by ``close()``."""
        if self._work is None:
            self._work = Path(tempfile.mkdtemp(prefix="edgederm-quantize-"))
        return self._work

    @property
    def calibration(self) -> CalibrationSet:
        if self._calibration is None:
            self._calibration = load_calibration(self.manifest, self.calibration_config, self.data_root)
            log(f"quantize: calibration {self._calibration.record['count']} images, {self._calibration.record['method']}")
        return self._calibration

    @property
    def calibration_record(self) -> dict | None:
        return self._calibration.record if self._calibration is not None else None

    def model(self):
        """The PyTorch original (what verification compares with)."""
        if self._model is None:
            from edgederm.byom import original_from_manifest

            self._model = original_from_manifest(self.manifest, self.folder, trust=self.trust_source)[0]
        return self._model

    def deployable(self):
        """(module to convert, note): the original, or its registered convertible twin (SegNet)."""
        if "deployable" not in self.cache:
            from types import SimpleNamespace

            from edgederm.models.deploy import deployable

            card = SimpleNamespace(architecture=self.manifest.model["architecture"], task=self.manifest.task,
                                   classes=self.manifest.classes)  # what deployable() reads of a card
            self.cache["deployable"] = deployable(self.model(), card)
        return self.cache["deployable"]

    def existing(self, name: str) -> Artifact | None:
        """The manifest's artifact ``name`` if its file is present."""
        for a in self.manifest.artifacts:
            if a.name == name:
                if not (self.folder / a.path).exists():
                    return None
                self.manifest.artifact_file(self.folder, a)  # changed bytes are an error, never an input
                return a
        return None

    def onnx_path(self) -> Path:
        """The fp32 ONNX file: the export's, else one converted into the scratch folder."""
        art = self.existing("onnx_fp32")
        if art is not None:
            return self.folder / art.path
        if "onnx_path" not in self.cache:
            from converters import handler

            path = self.work / f"{STEM}.onnx"
            log("quantize: the export folder has no model.onnx; converting the original to ONNX")
            art = handler("torch2onnx")(self.deployable()[0], self.manifest, path)
            self.cache["onnx_path"] = path
            self.cache["onnx_artifact"] = art
        return self.cache["onnx_path"]

    def onnx_artifact(self) -> Artifact:
        art = self.existing("onnx_fp32")
        if art is None:
            self.onnx_path()
            art = self.cache["onnx_artifact"]
        return art

    def planned(self, fmt: str) -> list[QuantScheme]:
        return [s for s in self.plan if s.format == fmt]


# --- running ----------------------------------------------------------------------------------
def run_scheme(ctx: QuantContext, scheme: str | QuantScheme, config=None, name: str | None = None) -> Artifact:
    """Make one quantized artifact, add it to ``ctx.manifest`` (not yet saved) and return it.

    Args:
        ctx: the folder being quantized.
        scheme: a key (``int8:tflite``) or a ``QuantScheme``.
        config: replaces the scheme's default config (same dataclass type).
        name: artifact name (default the scheme's); the file is ``model_<name without format>``.
    """
    from edgederm.manifest import record_file

    record = SCHEMES.get(scheme) if isinstance(scheme, str) else scheme
    config = record.config if config is None else config
    name = name or record.artifact
    target = ctx.folder / artifact_filename(name, record.format)
    t0 = time.perf_counter()
    log(f"quantize: {record.key} -> {target.name} ...")
    artifact = record.call(ctx, config, target)
    reused = any(a is artifact for a in ctx.manifest.artifacts)
    if not reused:
        artifact.name, artifact.precision = name, record.precision or record.scheme
        if record.calibrated and ctx.calibration_record:
            c = ctx.calibration_record
            artifact.notes.append(f"calibrated on {c['count']} images: {c['method']}"
                                  + (f", {c['split']} split of {c['dataset']}" if c.get("split") else "")
                                  + f"; ids sha256 {c['ids_sha256'][:16]}")
        record_file(artifact, ctx.folder)
        ctx.manifest.put(artifact)
    ctx.cache.setdefault("runs", {})[name] = {
        "scheme": record.key, "config": config_dict(config), "reused": reused,
        "calibrated": record.calibrated, "seconds": round(time.perf_counter() - t0, 1)}
    return artifact


def config_dict(config) -> dict:
    return {"type": type(config).__name__, **asdict(config)} if is_dataclass(config) else {"value": repr(config)}


@dataclass
class QuantizeOutcome:
    """What ``quantize`` made: artifact names, failures ({"scheme", "error"}), verification results."""

    manifest: Manifest
    folder: Path
    produced: list[str] = field(default_factory=list)
    failures: list[dict] = field(default_factory=list)
    verify: list = field(default_factory=list)
    calibration: dict | None = None
    notes: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)


def formats_in(manifest: Manifest) -> list[str]:
    have = {a.format for a in manifest.artifacts}
    return [f for f in FORMAT_ORDER if f in have] or list(FORMAT_ORDER)


def open_folder(source) -> tuple[Path, Manifest]:
    path = Path(source)
    manifest = Manifest.load(path)
    folder = path if path.is_dir() else path.parent
    manifest.require_complete(folder)
    return folder, manifest


def quantize(source: str | os.PathLike, schemes, formats=None, *,
             calibration: CalibrationConfig | CalibrationSet | None = None, data_root=None, verify: bool = True,
             gates: dict | None = None, n_verify: int = 512, model=None, configs: dict | None = None,
             verification: tuple | None = None, trust_source: bool = False) -> QuantizeOutcome:
    """Quantize an export folder: add one artifact per scheme to its manifest, then verify them.

    Args:
        source: export folder (or its ``manifest.json``).
        schemes: names (``"int8,dynamic"`` or a list) expanded over ``formats``, or full keys
            (``int8:tflite``).
        formats: formats to quantize (default: those the folder holds).
        calibration: a ``CalibrationConfig`` (default: 200/100 train images of the model's
            dataset, through its preprocessing) or a ready ``CalibrationSet``.
        data_root: where the model's dataset lives (``--data``; None: ``$EDGEDERM_DATA`` or ``../shared/data``).
        verify: run every produced artifact through ``edgederm.verify`` (with task-metric gates).
        gates: per-precision ``Gate`` overrides.
        n_verify: test images for verification.
        model: the PyTorch original, if already loaded.
        configs: ``{key or artifact name: config}`` overriding a scheme's default config.
        verification: ``(images_uint8, targets)`` to verify on instead of loading test images.

    Returns:
        ``QuantizeOutcome``; the manifest is saved with a ``quantize`` and a ``verify`` step.
        A scheme that fails is recorded in ``failures`` and the others still run.
    """
    folder, manifest = open_folder(source)
    plan, notes = resolve(schemes, formats if formats is not None else formats_in(manifest))
    outcome = QuantizeOutcome(manifest, folder, notes=notes)
    configs = configs or {}
    with QuantContext(folder, manifest, calibration, data_root, model, plan, trust_source=trust_source) as ctx:
        if any(r.calibrated for r in plan):
            ctx.calibration  # a bad calibration source fails here, once, before any slow work
        for record in plan:
            t0 = time.perf_counter()
            try:
                run_scheme(ctx, record, configs.get(record.key, configs.get(record.artifact)))
            except EdgeDermError as e:
                outcome.failures.append({"scheme": record.key, "artifact": record.artifact, "error": str(e)})
                log(f"quantize: {record.key} FAILED: {e}")
                continue
            outcome.produced.append(record.artifact)
            outcome.seconds[record.artifact] = round(time.perf_counter() - t0, 1)
            manifest.save(folder)
        outcome.calibration = ctx.calibration_record
        manifest.add_step("quantize", schemes=[r.key for r in plan], calibration=outcome.calibration,
                          artifacts=ctx.cache.get("runs", {}), failures=outcome.failures, notes=notes)
        if verify and outcome.produced:
            from edgederm.verify import verification_arrays, verify_manifest

            images, targets = verification or verification_arrays(manifest, ctx.data_root, n_verify)
            outcome.verify = verify_manifest(manifest, folder, ctx.model(), images, targets, gates,
                                             only=outcome.produced)
            manifest.add_step("verify", images=int(len(images)), results={r.artifact: r.status for r in outcome.verify})
        elif outcome.produced:
            for a in manifest.artifacts:
                if a.name in outcome.produced and not a.verify:
                    a.verify = {"status": "skipped", "reason": "--no-verify given"}
            manifest.add_step("verify", skipped=True, reason="--no-verify given")
        manifest.save(folder)
    return outcome

