"""Accuracy-aware quantization: the cheapest scheme whose task-metric drop fits a budget.

``edgederm quantize FOLDER --max-drop 0.5`` tries a ladder of schemes, cheapest first, measures
each candidate's task metric on the **validation** split (balanced accuracy for classifiers,
Dice for segmenters; drop in points = 100 x (fp32 - candidate), both on the same images) and
stops at the first that meets the budget *and* passes the usual verification gates on the test
images. Ladder per format:

* ONNX: ``int8`` -> ``int8`` with the layers the diagnosis found most sensitive kept in float
  -> int16 activations (QDQ, int8 weights) -> QAT (NNCF, a short fine-tune) -> fp16;
* TFLite: ``int8`` -> ``int8`` with the ops TensorFlow's QuantizationDebugger found most sensitive
  kept in float -> ``int16x8`` -> QAT (the tuned weights, quantized again by the TFLite
  converter) -> fp16.

Candidates are built in a staging folder inside the export folder; only the chosen one is moved
next to the other artifacts and added to the manifest (with a ``quantize-control`` step: the
budget, the table of what was tried and why the chosen one was chosen). If nothing fits, the
manifest is not touched, the staging folder is removed, and a ``BudgetNotMet`` error reports the
best drop reached.
"""

from __future__ import annotations

import math
import os
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from edgederm.errors import EdgeDermError
from edgederm.progress import log


# --- the policy (no I/O: unit-testable with fake rungs) -------------------------------------------
@dataclass
class Trial:
    """One rung tried: what it made and how it did."""

    rung: str
    artifact: str = ""
    metric: float | None = None
    drop_pt: float | None = None
    latency_ms: float | None = None
    size_bytes: int | None = None
    verdict: str = ""  # chosen | over budget | failed gate | error | skipped | not tried
    detail: str = ""
    handle: object = field(default=None, repr=False, compare=False)  # what accept/discard act on

    def row(self, metric_name: str) -> dict:
        return {"scheme": self.rung, "artifact": self.artifact or "-",
                metric_name: "-" if self.metric is None else f"{self.metric:.4f}",
                "drop pt": "-" if self.drop_pt is None else f"{self.drop_pt:+.2f}",
                "latency ms": "-" if self.latency_ms is None else f"{self.latency_ms:.2f}",
                "size MB": "-" if not self.size_bytes else f"{self.size_bytes / 1e6:.2f}",
                "verdict": self.verdict, "detail": self.detail[:80]}

    def to_dict(self) -> dict:
        d = asdict(self)
        d.pop("handle")
        return d


@dataclass(frozen=True)
class Rung:
    """A ladder step: ``make()`` builds and measures one candidate (a ``Trial`` with ``metric``),
    or raises ``EdgeDermError`` / returns a Trial with verdict ``skipped`` when it cannot."""

    name: str
    make: Callable[[], Trial]


@dataclass
class ControlResult:
    max_drop_pt: float
    baseline: float
    metric_name: str
    trials: list[Trial]
    chosen: Trial | None
    why: str

    def rows(self) -> list[dict]:
        return [t.row(self.metric_name) for t in self.trials]

    def to_dict(self) -> dict:
        return {"max_drop_pt": self.max_drop_pt, "baseline": self.baseline, "metric": self.metric_name,
                "chosen": self.chosen.rung if self.chosen else None, "why": self.why,
                "trials": [t.to_dict() for t in self.trials]}


class BudgetNotMet(EdgeDermError):
    """No rung met the budget; ``result`` holds the table and the best reached."""

    def __init__(self, message: str, result: ControlResult):
        super().__init__(message)
        self.result = result


def escalate(rungs: list[Rung], baseline: float, max_drop_pt: float, metric_name: str = "metric",
             accept: Callable[[Trial], tuple[bool, str]] | None = None,
             discard: Callable[[Trial], None] | None = None) -> ControlResult:
    """Try ``rungs`` in order; the first whose drop is within ``max_drop_pt`` and that ``accept`` passes wins.

    ``accept(trial) -> (ok, reason)`` is the last check (the verification gates); ``discard``
    cleans up a candidate that is not chosen. Rungs after the chosen one are listed as
    ``not tried``. Raises ``BudgetNotMet`` (with the table) when none fits.
    """
    if not (max_drop_pt >= 0 and math.isfinite(max_drop_pt)):
        raise EdgeDermError(f"--max-drop {max_drop_pt} must be a non-negative number of points")
    trials: list[Trial] = []
    chosen = None
    for i, rung in enumerate(rungs):
        log(f"control: trying {rung.name} ...")
        try:
            trial = rung.make()
        except EdgeDermError as e:
            trials.append(Trial(rung.name, verdict="error", detail=str(e)))
            continue
        trial.rung = rung.name
        if trial.verdict == "skipped":
            trials.append(trial)
            continue
        if trial.metric is None:
            raise ValueError(f"rung {rung.name} returned no metric")
        trial.drop_pt = 100.0 * (baseline - trial.metric)
        trials.append(trial)
        if trial.drop_pt > max_drop_pt + 1e-9:
            trial.verdict = "over budget"
        else:
            ok, reason = accept(trial) if accept else (True, "")
            if ok:
                trial.verdict = "chosen"
                chosen = trial
                trials += [Trial(r.name, verdict="not tried") for r in rungs[i + 1:]]
                break
            trial.verdict, trial.detail = "failed gate", reason
        if discard:
            discard(trial)
        log(f"control: {rung.name}: {trial.verdict} (drop {trial.drop_pt:+.2f} pt)")
    measured = [t for t in trials if t.drop_pt is not None]
    best = min(measured, key=lambda t: t.drop_pt) if measured else None
    if chosen is not None:
        cheaper = [t for t in trials if t is not chosen and t.verdict not in ("not tried",)]
        why = (f"{chosen.rung}: drop {chosen.drop_pt:+.2f} pt <= budget {max_drop_pt:g} pt"
               + (f"; cheaper rungs missed it ({', '.join(f'{t.rung}: {t.verdict}' for t in cheaper)})" if cheaper else
                  "; the cheapest rung already fits"))
        return ControlResult(max_drop_pt, baseline, metric_name, trials, chosen, why)
    result = ControlResult(max_drop_pt, baseline, metric_name, trials, None, "")
    if best is None:
        result.why = "no rung produced a measurable artifact"
    else:
        result.why = (f"best reached: {best.rung}, {metric_name} {best.metric:.4f}, drop {best.drop_pt:+.2f} pt "
                      f"({best.verdict})")
    raise BudgetNotMet(f"no scheme met --max-drop {max_drop_pt:g} pt of {metric_name}: {result.why}; "
                       f"raise --max-drop or improve the fp32 model", result)


# --- measuring candidates ------------------------------------------------------------------------
def task_metric(task: str, outputs: np.ndarray, targets: np.ndarray) -> float:
    """Balanced accuracy (classifier logits [N, C]) or mean per-image Dice (mask logits [N, 1, H, W])."""
    from edgederm.metrics import balanced_accuracy, per_image_overlap

    if task == "classification":
        return float(balanced_accuracy(targets, outputs.argmax(1)))
    dice, _ = per_image_overlap(outputs[:, 0] > 0, targets)
    return float(np.mean(dice))


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
    from edgederm.verify import artifact_input, to_reference_layout

    runner = open_runner(Path(folder) / artifact.path, artifact.format, threads=threads)
    x = artifact_input(artifact, images, manifest)
    out = to_reference_layout(artifact, run_batched(runner, x, 1), manifest.task)
    latency = measure(runner, x[:1], warmup=3, runs=latency_runs, max_seconds=10.0)["median_ms"]
    return task_metric(manifest.task, out.astype(np.float32), targets), latency


# --- the ladder for an export folder ----------------------------------------------------------------
@dataclass(frozen=True)
class ControlConfig:
    """Attributes:
        max_drop_pt: budget in points of the task metric (100 x drop).
        format: ``onnx`` or ``tflite``.
        val_images: validation images measured (0: the whole split).
        diagnose_fallback: worst layers whose float fallback the diagnosis measures; the fallback
            rung keeps the greedy combination of those that helped (``diagnose.greedy_combination``).
        qat_steps: fine-tuning steps on the QAT rung (0 skips the rung).
        threads: runtime threads for metric and latency.
        n_verify: test images for the verification gates of the chosen artifact.
    """

    max_drop_pt: float = 1.0
    format: str = "onnx"
    val_images: int = 512
    diagnose_fallback: int = 6
    qat_steps: int = 100
    threads: int = 1
    n_verify: int = 128


def _int16_scheme():
    from quantization.api import QuantScheme

    return QuantScheme("int16x8", "onnx", None, "quantization.control:ort_int16", "onnx_int16x8",
                       "QDQ int16 activations, int8 weights (onnxruntime)", precision="int16x8")


def ort_int16(ctx, config, target: Path):
    """int16 activations / int8 weights, QDQ (onnxruntime runs it on CPU; ``com.microsoft`` Q/DQ ops)."""
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    from converters.common import atomic_output, versions
    from edgederm.manifest import Artifact
    from quantization.calibration import BatchReader

    source = ctx.onnx_path()
    x = ctx.calibration.inputs("NCHW")
    name = onnx.load(str(source), load_external_data=False).graph.input[0].name
    with atomic_output(target) as tmp:
        quantize_static(str(source), str(tmp), BatchReader(x, name), quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QInt16, weight_type=QuantType.QInt8,
                        calibrate_method=CalibrationMethod.MinMax,
                        extra_options={"ActivationSymmetric": True, "UseQDQContribOps": True})
    base = ctx.onnx_artifact()
    return Artifact(name="", path=str(target), format="onnx", precision="", inputs=list(base.inputs),
                    outputs=list(base.outputs), converter="onnxruntime quantize_static (QDQ, int16 activations, "
                    "int8 weights per-channel, MinMax)", tool_versions=versions("onnxruntime", "onnx"))


def _tflite_fallback_scheme():
    from quantization.api import QuantScheme
    from quantization.tflite import TFLiteFallbackConfig

    return QuantScheme("int8_fallback", "tflite", TFLiteFallbackConfig(), "quantization.tflite:int8_fallback",
                       "tflite_int8_fallback", "full int8, the most sensitive ops in float, float I/O",
                       precision="int8")


def _qat_scheme(steps: int):
    from quantization.api import QuantScheme
    from quantization.qat import QATConfig

    return QuantScheme("qat", "onnx", QATConfig(steps=steps), "quantization.control:qat_onnx", "onnx_int8_qat",
                       "NNCF quantization-aware training, QDQ int8", precision="int8")


def qat_onnx(ctx, config, target: Path):
    from converters.common import versions
    from edgederm.manifest import Artifact
    from quantization.qat import qat

    result = qat(ctx.deployable()[0], ctx.manifest, target, config, ctx.data_root, calibration=ctx.calibration)
    base = ctx.onnx_artifact()
    return Artifact(name="", path=str(target), format="onnx", precision="", inputs=list(base.inputs),
                    outputs=list(base.outputs), converter=f"NNCF QAT ({result.record()['steps']} steps) -> QDQ ONNX",
                    tool_versions=versions("nncf", "torch", "onnx"), notes=[f"qat: {result.record()}"])


def _qat_tflite_scheme(steps: int):
    from quantization.api import QuantScheme
    from quantization.qat import QATConfig

    return QuantScheme("qat", "tflite", QATConfig(steps=steps), "quantization.control:qat_tflite", "tflite_int8_qat",
                       "NNCF QAT-tuned weights, TFLite full int8 (float I/O)", precision="int8")


def qat_tflite(ctx, config, target: Path):
    """QAT's tuned weights in the float model -> ONNX -> onnx2tf full int8 on the same calibration images."""
    import tempfile

    from converters import handler
    from converters.common import versions
    from converters.onnx2tflite import install, produce
    from quantization.qat import qat_float_model

    model, result = qat_float_model(ctx.deployable()[0], ctx.manifest, config, ctx.data_root,
                                    calibration=ctx.calibration)
    work = Path(tempfile.mkdtemp(prefix="qat-tflite-", dir=ctx.work))
    onnx_path = work / "float" / "model.onnx"  # onnx2tf works on its own copy in ``work``
    onnx_path.parent.mkdir()
    handler("torch2onnx")(model, ctx.manifest, onnx_path)
    cal = ctx.calibration
    produced = produce(onnx_path, work, ["int8_floatio"], calibration=cal.inputs("NHWC"), calibration_images=cal.images)
    artifact = install(produced["int8_floatio"], target, ctx.manifest, "int8_floatio")
    artifact.converter = (f"NNCF QAT ({result.record()['steps']} steps) weights -> torch2onnx -> onnx2tf full int8 "
                          "(float I/O, re-calibrated)")
    artifact.tool_versions = {**artifact.tool_versions, **versions("nncf", "torch")}
    artifact.notes.append(f"qat: {result.record()}")
    return artifact


def _fp16_onnx_scheme():
    from quantization.api import QuantScheme

    return QuantScheme("fp16", "onnx", None, "quantization.control:onnx_fp16", "onnx_fp16",
                       "fp16 weights and compute, float32 I/O", precision="fp16", calibrated=False)


def onnx_fp16(ctx, config, target: Path):
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    from converters.common import atomic_output, versions
    from edgederm.manifest import Artifact

    model = convert_float_to_float16(onnx.load(str(ctx.onnx_path())), keep_io_types=True)
    with atomic_output(target) as tmp:
        onnx.save(model, str(tmp))
    base = ctx.onnx_artifact()
    return Artifact(name="", path=str(target), format="onnx", precision="", inputs=list(base.inputs),
                    outputs=list(base.outputs), converter="onnxruntime.transformers float16 (keep_io_types)",
                    tool_versions=versions("onnxruntime", "onnx"))


def _no_fallback(diag) -> str:
    """Why the fallback rung built nothing, with the best single layer's measured gains."""
    if not diag.fallbacks:
        return "the diagnosis measured no fallback candidate"
    f = diag.fallbacks[0]
    return (f"none of {len(diag.fallbacks)} helped metric and agreement together (best: agreement "
            f"{f.agreement_gain:+.3f}, metric {100 * f.metric_gain:+.2f} pt, {f.layer})")


def control_folder(source, config: ControlConfig, data_root=None, calibration=None, gates=None) -> ControlResult:
    """Run the ladder on an export folder; adds the chosen artifact to its manifest (see the module docstring)."""
    import copy

    from edgederm.manifest import Manifest
    from edgederm.verify import verification_arrays, verify_manifest
    from quantization.api import QuantContext, open_folder, run_scheme
    from quantization.calibration import CalibrationConfig
    from quantization.onnx import OrtStaticConfig
    from quantization.tflite import TFLiteConfig

    folder, manifest = open_folder(source)
    if config.format not in ("onnx", "tflite"):
        raise EdgeDermError(f"--format {config.format}: --max-drop escalates onnx or tflite")
    metric_name = "balanced_accuracy" if manifest.task == "classification" else "dice"
    images, targets = validation_arrays(manifest, data_root, config.val_images)
    base_art = next((a for a in manifest.artifacts if a.format == config.format and a.precision == "fp32"), None) \
        or next((a for a in manifest.artifacts if a.format == "onnx" and a.precision == "fp32"), None)
    if base_art is None:
        raise EdgeDermError(f"{folder} has no fp32 ONNX/TFLite artifact to measure the drop against: "
                            "export with --to onnx,tflite first")
    baseline, base_ms = measure_artifact(base_art, folder, manifest, images, targets, config.threads)
    log(f"control: fp32 {base_art.name}: {metric_name} {baseline:.4f} on {len(images)} val images")

    stage = folder / f".edgederm-control-{os.getpid()}"
    stage.mkdir(exist_ok=True)
    staged = Manifest.from_dict(copy.deepcopy(manifest.to_dict()))
    for a in staged.artifacts:  # staged candidates find the fp32 files where they are
        a.path = str((folder / a.path).resolve())
    try:
        with QuantContext(stage, staged, calibration or CalibrationConfig(), data_root) as ctx:
            def build(scheme, cfg=None, name=None, why=""):
                def make() -> Trial:
                    art = run_scheme(ctx, scheme, cfg, name)
                    metric, ms = measure_artifact(art, stage, staged, images, targets, config.threads)
                    return Trial("", art.name, metric, None, ms, art.size_bytes, detail=why, handle=art)
                return make

            def fallback_make() -> Trial:
                from quantization.diagnose import DiagnoseConfig, diagnose_onnx

                # Without ORT's pre-processing: it renames what it decomposes (hard-swish), and the
                # exported graph's torch-given node names are what nodes_to_exclude must match.
                base_cfg = OrtStaticConfig(preprocess=False)
                val_x = manifest.preprocessing.replace(layout="NCHW").normalize(images)
                diag = diagnose_onnx(ctx.onnx_path(), ctx.calibration.inputs("NCHW"), val_x, targets, manifest.task,
                                     DiagnoseConfig(fallback=config.diagnose_fallback, stat_images=16, ort=base_cfg),
                                     manifest.model["name"], config.threads)
                pick = diag.recommended()
                if pick is None:
                    return Trial("", verdict="skipped", detail=_no_fallback(diag))
                # The QDQ form the diagnosis measured: the QOperator default, built on the same
                # un-preprocessed graph with the same nodes excluded, lost more than plain int8 (MNv3-L).
                cfg = OrtStaticConfig(quant_format="QDQ", nodes_to_exclude=tuple(pick.nodes), preprocess=False)
                layers = ", ".join(p.rsplit("/", 2)[-2] if "/" in p else p for p in pick.layer.split(" + "))
                return build("int8:onnx", cfg, "onnx_int8_fallback", f"float: {layers}")()

            def tflite_fallback_make() -> Trial:
                from quantization.diagnose import DiagnoseConfig, diagnose_tflite
                from quantization.tflite import TFLiteFallbackConfig, saved_model_dir

                val_x = manifest.preprocessing.replace(layout="NHWC").normalize(images)
                diag = diagnose_tflite(saved_model_dir(ctx), ctx.calibration.inputs("NHWC"), val_x, targets,
                                       manifest.task, DiagnoseConfig(fallback=config.diagnose_fallback, stat_images=16),
                                       manifest.model["name"], work=Path(ctx.work) / "tflite-debug")
                pick = diag.recommended()
                if pick is None:
                    return Trial("", verdict="skipped", detail=_no_fallback(diag))
                cfg = TFLiteFallbackConfig(tuple(pick.nodes), diag.settings["calibrated"])
                return build(_tflite_fallback_scheme(), cfg, "tflite_int8_fallback", f"float: {pick.layer}")()

            def skipped(why):
                return lambda: Trial("", verdict="skipped", detail=why)

            if config.format == "onnx":
                rungs = [Rung("int8", build("int8:onnx")),
                         Rung("int8 + float fallback", fallback_make),
                         Rung("int16 activations", build(_int16_scheme())),
                         Rung("QAT int8", build(_qat_scheme(config.qat_steps)) if config.qat_steps
                              else skipped("--qat-steps 0")),
                         Rung("fp16", build(_fp16_onnx_scheme()))]
            else:
                rungs = [Rung("int8", build("int8:tflite")),
                         Rung("int8 + float fallback", tflite_fallback_make),
                         Rung("int16 activations", build("int16x8:tflite", TFLiteConfig("int16x8"))),
                         Rung("QAT int8", build(_qat_tflite_scheme(config.qat_steps)) if config.qat_steps
                              else skipped("--qat-steps 0")),
                         Rung("fp16", build("fp16:tflite"))]

            def discard(trial: Trial) -> None:
                art = trial.handle
                if art is None:
                    return
                p = stage / art.path  # reused artifacts (export's fp16) live in the real folder: never deleted
                if p.exists() and p.resolve().parent == stage.resolve():
                    p.unlink()
                    ctx.manifest.artifacts = [a for a in ctx.manifest.artifacts if a is not art]

            def accept(trial: Trial) -> tuple[bool, str]:
                art = trial.handle
                vimages, vtargets = verification_arrays(manifest, data_root, config.n_verify)
                probe = Manifest.from_dict(copy.deepcopy(staged.to_dict()))
                probe.artifacts = [a for a in probe.artifacts if a.name == art.name]
                result = verify_manifest(probe, stage, ctx.model(), vimages, vtargets, gates)[0]
                art.verify = probe.artifacts[0].verify
                return result.status == "pass", result.reason

            result = escalate(rungs, baseline, config.max_drop_pt, metric_name, accept, discard)
            from edgederm.manifest import record_file

            art = result.chosen.handle  # verified: only now does it reach the export folder
            target = folder / Path(art.path).name
            os.replace(stage / art.path, target)
            art.path = str(target)
            record_file(art, folder)
            manifest.put(art)
            manifest.add_step("quantize-control", format=config.format, max_drop_pt=config.max_drop_pt,
                              metric=metric_name, split="val", val_images=int(len(images)),
                              baseline={"artifact": base_art.name, "value": baseline, "latency_ms": base_ms},
                              chosen=art.name, why=result.why, trials=[t.to_dict() for t in result.trials],
                              calibration=ctx.calibration_record)
            manifest.save(folder)
            return result
    finally:
        shutil.rmtree(stage, ignore_errors=True)
