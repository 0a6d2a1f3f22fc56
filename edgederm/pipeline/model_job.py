"""One model's road: train -> prune -> export -> quantize -> bench -> report, each stage cached.

Every stage's key is ``digest(stage, its settings, its input's fingerprint, edgederm version)``;
``run_stage`` reuses a stage whose key and output are unchanged (``stage_cache``).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from edgederm.errors import EdgeDermError
from edgederm.pipeline.recipe_file import ModelJob, model_name
from edgederm.pipeline.stage_cache import StageCache, digest, file_fingerprint, manifest_fingerprint, run_stage


@dataclass
class _Road:
    """Where one model's road stands: its folders, the current checkpoint and the last stage's fingerprint."""

    job: ModelJob
    folder: Path
    cache: StageCache
    data_root: Path | None
    events: list
    checkpoint: Path | None = None
    fp: str = ""  # the last stage's output fingerprint: the next stage's input

    @property
    def export_dir(self) -> Path:
        return self.folder / "export"

    @property
    def bench_dir(self) -> Path:
        return self.folder / "bench"

    def stage(self, name: str, settings: tuple, work: Callable[[], dict]) -> None:
        from edgederm import __version__

        key = digest(name, *settings, __version__)
        self.fp = run_stage(self.cache, self.folder, name, key, work, self.events)


def _starting_checkpoint(road: _Road) -> None:
    """The model's checkpoint: given, or a training recipe's (trained only when its checkpoint is missing)."""
    from edgederm.paths import home

    model = road.job.model
    if "recipe" not in model:
        road.checkpoint = Path(str(model["checkpoint"])).expanduser()
        if not road.checkpoint.exists():
            raise EdgeDermError(f"recipe {road.job.recipe}: checkpoint {road.checkpoint} not found: "
                                "fix the 'checkpoint:' path")
        road.fp = file_fingerprint(road.checkpoint)
        return
    from edgederm.recipes import RECIPES

    recipe = RECIPES.get(model["recipe"])
    checkpoint = road.checkpoint = Path(model.get("checkpoint") or home() / "checkpoints" / f"{recipe.name}.safetensors")

    def work():
        from edgederm.train import train

        if not checkpoint.exists():
            train(recipe.config, road.data_root, checkpoint)
        return {"kind": "file", "path": str(checkpoint)}
    road.stage("train", (recipe.config.__dict__,), work)


def _prune(road: _Road, settings: dict) -> None:
    source, pruned = road.checkpoint, road.folder / "pruned.safetensors"

    def work():
        from edgederm.prune import PruneConfig, prune_checkpoint

        cfg = dict(settings)
        if "protect" in cfg:
            cfg["protect"] = tuple(cfg["protect"])
        prune_checkpoint(source, pruned, PruneConfig(**cfg), data_root=road.data_root, n_boot=0)
        return {"kind": "file", "path": str(pruned)}
    road.stage("prune", (settings, road.fp), work)
    road.checkpoint = pruned


def _export(road: _Road, e: dict) -> None:
    def work():
        from edgederm.export import export

        outcome = export(road.checkpoint, road.export_dir, formats=e.get("formats"),
                         tflite_precisions=tuple(e.get("tflite_precisions", ("fp32", "fp16"))),
                         coreml_precisions=tuple(e.get("coreml_precisions", ("fp16",))), data_root=road.data_root,
                         n_verify=e.get("verify_images", 128),
                         name=road.job.model.get("name") or model_name(road.job.model))
        return {"kind": "artifacts", "folder": str(road.export_dir), "names": [a.name for a in outcome.manifest.artifacts]}
    road.stage("export", (e, road.fp), work)


def _quantize(road: _Road, q: dict) -> None:
    def work():
        from quantization import quantize
        from quantization.calibration import CalibrationConfig

        outcome = quantize(road.export_dir, q.get("schemes", ["int8"]), q.get("formats"),
                           calibration=CalibrationConfig(size=q.get("calibration_size")), data_root=road.data_root,
                           n_verify=q.get("verify_images", 512))
        return {"kind": "artifacts", "folder": str(road.export_dir), "names": list(outcome.produced)}
    road.stage("quantize", (q, road.fp), work)


def _bench(road: _Road, b: dict) -> None:
    def work():
        from edgederm.bench import BenchConfig, bench

        config = BenchConfig(images=b.get("images"), threads=tuple(b.get("threads", (1, 2))), runs=b.get("runs", 50),
                             warmup=b.get("warmup", 10), n_boot=b.get("bootstrap", 1000), peers=b.get("peers", True),
                             throughput_batch=b.get("throughput_batch", 8), peak=b.get("peak", True))
        bench(road.export_dir, config, road.data_root, out=road.bench_dir)
        return {"kind": "file", "path": str(road.bench_dir / "results.json")}
    # The bench's input is everything in the manifest now (export + quantize), not only the last stage.
    road.stage("bench", (b, road.fp, manifest_fingerprint(road.export_dir)), work)


def _report(road: _Road) -> None:
    def work():
        from device_bench.results import Results
        from edgederm.report import render

        render(Results.load(road.bench_dir / "results.json"), road.folder / "report")
        return {"kind": "file", "path": str(road.folder / "report" / "report.html")}
    road.stage("report", (road.fp,), work)


def run_job(job: ModelJob) -> dict:
    """Train/prune/export/quantize/bench/report for one model; returns a summary (picklable)."""
    from edgederm.paths import find_data_root

    os.environ.setdefault("NNCF_CI", "1")
    started = time.perf_counter()
    folder = Path(job.folder)
    folder.mkdir(parents=True, exist_ok=True)
    road = _Road(job, folder, StageCache(folder), find_data_root(job.data), [])
    s = job.sections
    _starting_checkpoint(road)
    if "prune" in s:
        _prune(road, s["prune"])
    _export(road, s.get("export", {}))
    if "quantize" in s:
        _quantize(road, s["quantize"])
    if "bench" in s:
        _bench(road, s["bench"])
        if job.report:
            _report(road)
    return {"model": model_name(job.model), "folder": str(folder), "events": road.events,
            "results": str(road.bench_dir / "results.json"), "minutes": round((time.perf_counter() - started) / 60, 2)}
