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

The pieces: ``escalation`` (the policy, no I/O), ``measure`` (metric and latency of one
candidate), ``ladder_schemes`` (the schemes only the ladder builds) and ``diagnose`` (which
layers to keep in float). This module puts them together on an export folder.
"""

from __future__ import annotations

import copy
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from edgederm.errors import EdgeDermError
from edgederm.manifest import Artifact, Manifest, record_file
from edgederm.progress import log
from edgederm.tasks import task_of
from edgederm.verify import verification_arrays, verify_manifest
from quantization.api import QuantContext, open_folder, run_scheme
from quantization.calibration import CalibrationConfig
from quantization.diagnose import diagnose_onnx, diagnose_tflite
from quantization.diagnosis import DiagnoseConfig, Diagnosis
from quantization.escalation import ControlResult, Rung, Trial, escalate
from quantization.ladder_schemes import (fp16_onnx_scheme, int16_scheme, qat_scheme, qat_tflite_scheme,
                                         tflite_fallback_scheme)
from quantization.measure import measure_artifact, validation_arrays
from quantization.onnx import OrtStaticConfig
from quantization.tflite import TFLiteConfig, TFLiteFallbackConfig, saved_model_dir


@dataclass(frozen=True)
class ControlConfig:
    """Attributes:
        max_drop_pt: budget in points of the task metric (100 x drop).
        format: ``onnx`` or ``tflite``.
        val_images: validation images measured (0: the whole split).
        diagnose_fallback: worst layers whose float fallback the diagnosis measures; the fallback
            rung keeps the greedy combination of those that helped (``fallback_search.greedy_combination``).
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


def skipped(why: str) -> Callable[[], Trial]:
    return lambda: Trial("", verdict="skipped", detail=why)


def no_fallback(diag: Diagnosis) -> str:
    """Why the fallback rung built nothing, with the best single layer's measured gains."""
    if not diag.fallbacks:
        return "the diagnosis measured no fallback candidate"
    f = diag.fallbacks[0]
    return (f"none of {len(diag.fallbacks)} helped metric and agreement together (best: agreement "
            f"{f.agreement_gain:+.3f}, metric {100 * f.metric_gain:+.2f} pt, {f.layer})")


class Ladder:
    """The rungs of one ``--max-drop`` run. Candidates are built in the staging folder (``ctx.folder``,
    with the staged copy of the manifest) and measured on the validation images; ``accept`` runs the
    verification gates on the test images, ``discard`` removes a candidate that is not chosen."""

    def __init__(self, ctx: QuantContext, images: np.ndarray, targets: np.ndarray, config: ControlConfig,
                 data_root=None, gates=None):
        self.ctx, self.stage, self.manifest = ctx, ctx.folder, ctx.manifest
        self.images, self.targets = images, targets
        self.config, self.data_root, self.gates = config, data_root, gates

    def rungs(self) -> list[Rung]:
        """Cheapest first (see the module docstring)."""
        steps = self.config.qat_steps
        if self.config.format == "onnx":
            return [Rung("int8", self.build("int8:onnx")),
                    Rung("int8 + float fallback", self.onnx_fallback),
                    Rung("int16 activations", self.build(int16_scheme())),
                    Rung("QAT int8", self.build(qat_scheme(steps)) if steps else skipped("--qat-steps 0")),
                    Rung("fp16", self.build(fp16_onnx_scheme()))]
        return [Rung("int8", self.build("int8:tflite")),
                Rung("int8 + float fallback", self.tflite_fallback),
                Rung("int16 activations", self.build("int16x8:tflite", TFLiteConfig("int16x8"))),
                Rung("QAT int8", self.build(qat_tflite_scheme(steps)) if steps else skipped("--qat-steps 0")),
                Rung("fp16", self.build("fp16:tflite"))]

    def build(self, scheme, cfg=None, name: str | None = None, why: str = "") -> Callable[[], Trial]:
        """A rung's ``make``: one artifact of ``scheme`` in the staging folder, measured."""
        def make() -> Trial:
            art = run_scheme(self.ctx, scheme, cfg, name)
            metric, ms = measure_artifact(art, self.stage, self.manifest, self.images, self.targets,
                                          self.config.threads)
            return Trial("", art.name, metric, None, ms, art.size_bytes, detail=why, handle=art)
        return make

    def onnx_fallback(self) -> Trial:
        """int8 with the layers ONNX Runtime's diagnosis found to help most kept in float."""
        m = self.manifest
        # Without ORT's pre-processing: it renames what it decomposes (hard-swish), and the
        # exported graph's torch-given node names are what nodes_to_exclude must match.
        config = DiagnoseConfig(fallback=self.config.diagnose_fallback, stat_images=16,
                                ort=OrtStaticConfig(preprocess=False))
        val_x = m.preprocessing.replace(layout="NCHW").normalize(self.images)
        diag = diagnose_onnx(self.ctx.onnx_path(), self.ctx.calibration.inputs("NCHW"), val_x, self.targets, m.task,
                             config, m.model["name"], self.config.threads)
        pick = diag.recommended()
        if pick is None:
            return Trial("", verdict="skipped", detail=no_fallback(diag))
        # The QDQ form the diagnosis measured: the QOperator default, built on the same
        # un-preprocessed graph with the same nodes excluded, lost more than plain int8 (MNv3-L).
        cfg = OrtStaticConfig(quant_format="QDQ", nodes_to_exclude=tuple(pick.nodes), preprocess=False)
        layers = ", ".join(p.rsplit("/", 2)[-2] if "/" in p else p for p in pick.layer.split(" + "))
        return self.build("int8:onnx", cfg, "onnx_int8_fallback", f"float: {layers}")()

    def tflite_fallback(self) -> Trial:
        """int8 with the ops TensorFlow's QuantizationDebugger found to help most kept in float."""
        m = self.manifest
        val_x = m.preprocessing.replace(layout="NHWC").normalize(self.images)
        diag = diagnose_tflite(saved_model_dir(self.ctx), self.ctx.calibration.inputs("NHWC"), val_x, self.targets,
                               m.task, DiagnoseConfig(fallback=self.config.diagnose_fallback, stat_images=16),
                               m.model["name"], work=Path(self.ctx.work) / "tflite-debug")
        pick = diag.recommended()
        if pick is None:
            return Trial("", verdict="skipped", detail=no_fallback(diag))
        cfg = TFLiteFallbackConfig(tuple(pick.nodes), diag.settings["calibrated"])
        return self.build(tflite_fallback_scheme(), cfg, "tflite_int8_fallback", f"float: {pick.layer}")()

    def discard(self, trial: Trial) -> None:
        art = trial.handle
        if art is None:
            return
        p = self.stage / art.path  # a reused export file (fp16) is a link here: the export keeps its own
        if p.exists() and p.resolve().parent == self.stage.resolve():
            p.unlink()
            self.manifest.artifacts = [a for a in self.manifest.artifacts if a is not art]

    def accept(self, trial: Trial) -> tuple[bool, str]:
        art = trial.handle
        vimages, vtargets = verification_arrays(self.manifest, self.data_root, self.config.n_verify)
        probe = Manifest.from_dict(copy.deepcopy(self.manifest.to_dict()))
        probe.artifacts = [a for a in probe.artifacts if a.name == art.name]
        result = verify_manifest(probe, self.stage, self.ctx.model(), vimages, vtargets, self.gates)[0]
        art.verify = probe.artifacts[0].verify
        return result.status == "pass", result.reason


def baseline_artifact(manifest: Manifest, fmt: str, folder: Path) -> Artifact:
    """The fp32 artifact the drop is measured against: of ``fmt``, else the ONNX one."""
    art = next((a for a in manifest.artifacts if a.format == fmt and a.precision == "fp32"), None) \
        or next((a for a in manifest.artifacts if a.format == "onnx" and a.precision == "fp32"), None)
    if art is None:
        raise EdgeDermError(f"{folder} has no fp32 ONNX/TFLite artifact to measure the drop against: "
                            "export with --to onnx,tflite first")
    return art


def link_into(src: Path, dst: Path) -> None:
    """``src`` (a file or a folder such as an .mlpackage) at ``dst`` by hard links; copied where linking fails."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    if src.is_dir():
        shutil.copytree(src, dst, copy_function=_link_or_copy)
    else:
        _link_or_copy(src, dst)


def _link_or_copy(src, dst) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def staged_copy(manifest: Manifest, folder: Path, stage: Path) -> Manifest:
    """The manifest the candidates are added to, with the export's files linked into the staging
    folder: a manifest path never leaves its folder (``Manifest.artifact_file``), so staged
    candidates find the fp32 files at their recorded relative paths."""
    for a in manifest.artifacts:
        src, dst = folder / a.path, stage / a.path
        if src.exists() and not dst.exists():
            link_into(src, dst)
    return Manifest.from_dict(copy.deepcopy(manifest.to_dict()))


def install(art: Artifact, stage: Path, folder: Path, manifest: Manifest) -> None:
    """Move the chosen (verified) candidate from the staging folder into the export folder and its manifest."""
    target = folder / Path(art.path).name
    os.replace(stage / art.path, target)
    art.path = str(target)
    record_file(art, folder)
    manifest.put(art)


def control_folder(source, config: ControlConfig, data_root=None, calibration=None, gates=None) -> ControlResult:
    """Run the ladder on an export folder; adds the chosen artifact to its manifest (see the module docstring).

    Raises ``quantization.escalation.BudgetNotMet`` (with the table of what was tried) when no rung fits.
    """
    folder, manifest = open_folder(source)
    if config.format not in ("onnx", "tflite"):
        raise EdgeDermError(f"--format {config.format}: --max-drop escalates onnx or tflite")
    metric_name = task_of(manifest.task).headline
    images, targets = validation_arrays(manifest, data_root, config.val_images)
    base_art = baseline_artifact(manifest, config.format, folder)
    baseline, base_ms = measure_artifact(base_art, folder, manifest, images, targets, config.threads)
    log(f"control: fp32 {base_art.name}: {metric_name} {baseline:.4f} on {len(images)} val images")

    stage = folder / f".edgederm-control-{os.getpid()}"
    stage.mkdir(exist_ok=True)
    try:
        staged = staged_copy(manifest, folder, stage)
        with QuantContext(stage, staged, calibration or CalibrationConfig(), data_root) as ctx:
            ladder = Ladder(ctx, images, targets, config, data_root, gates)
            result = escalate(ladder.rungs(), baseline, config.max_drop_pt, metric_name, ladder.accept, ladder.discard)
            art = result.chosen.handle  # verified: only now does it reach the export folder
            install(art, stage, folder, manifest)
            manifest.add_step("quantize-control", format=config.format, max_drop_pt=config.max_drop_pt,
                              metric=metric_name, split="val", val_images=int(len(images)),
                              baseline={"artifact": base_art.name, "value": baseline, "latency_ms": base_ms},
                              chosen=art.name, why=result.why, trials=[t.to_dict() for t in result.trials],
                              calibration=ctx.calibration_record)
            manifest.save(folder)
            return result
    finally:
        shutil.rmtree(stage, ignore_errors=True)
