"""``edgederm run RECIPE.yaml``: the whole road from a declarative recipe, resumable, sweepable.

A recipe names one or more models and the stages to take them through::

    name: lite0_edge
    out: runs/lite0_edge            # default: runs/<name>
    data: null                      # data root (default: $EDGEDERM_DATA, ../shared/data)
    models:
      - checkpoint: ~/.cache/edgederm/checkpoints/lite0_derm7.safetensors
      - recipe: mnv3l_derm7         # a training recipe: trained first if its checkpoint is missing
    prune: {sparsity: 0.3, finetune_epochs: 1}             # optional
    export: {formats: [onnx, tflite, coreml], verify_images: 128}
    quantize: {schemes: [int8], formats: [tflite, onnx]}   # optional
    bench: {threads: [1, 2], images: null, runs: 50}   # or false: stop after quantize
    report: true

Stages run in order per model: train -> prune -> export -> quantize -> bench -> report. Each
stage records a key (hash of its settings and of its input's fingerprint) and its output's
fingerprint under ``<out>/<model>/.stages/``; a stage whose key is unchanged and whose output
is still there with the same fingerprint is reused, not recomputed. Several models run in
parallel processes (``--jobs``) or as Ray tasks on a cluster (``--ray ADDRESS``); a sweep report
ranks the Pareto front across all of them.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from edgederm.errors import EdgeDermError
from edgederm.progress import log

STAGES = ("train", "prune", "export", "quantize", "bench", "report")
SECTION_KEYS = {
    "prune": {"sparsity", "macs_budget", "importance", "finetune_epochs", "distill", "protect", "global_pruning",
              "round_to", "train_limit", "seed"},
    "export": {"formats", "tflite_precisions", "coreml_precisions", "verify_images"},
    "quantize": {"schemes", "formats", "calibration_size", "verify_images"},
    "bench": {"threads", "images", "runs", "warmup", "bootstrap", "peers", "throughput_batch", "peak"},
}
TOP_KEYS = {"name", "out", "data", "models", "report", *SECTION_KEYS}
# What each setting must be; a wrong type is a one-line error at load time, not a traceback mid-run.
_KINDS = {"fraction": "a number above 0 and at most 1", "count": "a whole number >= 0", "pos": "a whole number >= 1",
          "bool": "true or false", "str": "a name", "strlist": "a list of names", "poslist": "a list of whole numbers >= 1"}
SETTING_KINDS = {"sparsity": "fraction", "macs_budget": "fraction", "importance": "str", "finetune_epochs": "count",
                 "distill": "bool", "protect": "strlist", "global_pruning": "bool", "round_to": "pos",
                 "train_limit": "pos", "seed": "count", "formats": "strlist", "tflite_precisions": "strlist",
                 "coreml_precisions": "strlist", "verify_images": "pos", "schemes": "strlist", "calibration_size": "pos",
                 "threads": "poslist", "images": "pos", "runs": "pos", "warmup": "count", "bootstrap": "pos",
                 "peers": "bool", "throughput_batch": "count", "peak": "bool"}


def _fits(kind: str, v) -> bool:
    is_int = isinstance(v, int) and not isinstance(v, bool)
    return {"fraction": lambda: isinstance(v, (int, float)) and not isinstance(v, bool) and 0 < v <= 1,
            "count": lambda: is_int and v >= 0, "pos": lambda: is_int and v >= 1,
            "bool": lambda: isinstance(v, bool), "str": lambda: isinstance(v, str) and bool(v),
            "strlist": lambda: isinstance(v, list) and bool(v) and all(isinstance(x, str) and x for x in v),
            "poslist": lambda: isinstance(v, list) and bool(v) and all(isinstance(x, int) and not isinstance(x, bool)
                                                                        and x >= 1 for x in v)}[kind]()
BUILTIN: dict[str, dict] = {
    "lite0": {"name": "lite0", "models": [{"recipe": "lite0_derm7"}],
              "export": {"formats": ["onnx", "tflite", "coreml"]},
              "quantize": {"schemes": ["int8"], "formats": ["tflite", "onnx", "coreml"]},
              "bench": {"threads": [1, 2]}, "report": True},
    "lite0_pruned": {"name": "lite0_pruned", "models": [{"recipe": "lite0_derm7"}],
                     "prune": {"macs_budget": 0.6, "finetune_epochs": 1, "distill": True, "train_limit": 2000},
                     "export": {"formats": ["onnx", "tflite", "coreml"]},
                     "quantize": {"schemes": ["int8"], "formats": ["tflite", "onnx", "coreml"]},
                     "bench": {"threads": [2], "runs": 30}, "report": True},
}


@dataclass
class Recipe:
    name: str
    models: list[dict]
    out: Path
    data: str | None = None
    sections: dict[str, dict] = field(default_factory=dict)  # prune/export/quantize/bench settings
    report: bool = True

    def job(self, model: dict) -> "Job":
        return Job(self.name, model, self.out / model_name(model), self.data, self.sections, self.report)


@dataclass
class Job:
    """One model's road; plain data so that a process pool or Ray can ship it."""

    recipe: str
    model: dict
    folder: Path
    data: str | None
    sections: dict[str, dict]
    report: bool


def model_name(model: dict) -> str:
    """The model's folder name below the recipe's ``out`` (never a path of its own)."""
    from edgederm.paths import safe_name

    if "name" in model:
        return safe_name(str(model["name"]))
    if "recipe" in model:
        return safe_name(str(model["recipe"]))
    return safe_name(Path(str(model["checkpoint"])).stem)


def load_recipe(source: str | os.PathLike) -> Recipe:
    """A recipe from a YAML/JSON file or a built-in name; one-line errors name the file and the key."""
    import yaml

    text_source = str(source)
    if text_source in BUILTIN and not Path(text_source).exists():
        d, where = json.loads(json.dumps(BUILTIN[text_source])), f"built-in recipe {text_source!r}"
    else:
        path = Path(source)
        if not path.is_file():
            raise EdgeDermError(f"recipe {path} not found: pass a YAML file or a built-in name ({', '.join(BUILTIN)})")
        try:
            d = yaml.safe_load(path.read_text())
        except yaml.YAMLError as e:
            raise EdgeDermError(f"{path} is not valid YAML: {str(e).splitlines()[0]}") from None
        where = str(path)
    if not isinstance(d, dict):
        raise EdgeDermError(f"{where}: a recipe is a mapping with at least 'models'")
    unknown = set(d) - TOP_KEYS
    if unknown:
        raise EdgeDermError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}; known: {', '.join(sorted(TOP_KEYS))}")
    for section, allowed in SECTION_KEYS.items():
        value = d.get(section)
        if value is False and section == "bench":  # export/quantize now, measure later on a quiet machine
            continue
        if value is not None and not isinstance(value, dict):
            raise EdgeDermError(f"{where}: '{section}' must be a mapping (or left out)")
        bad = set(value or {}) - allowed
        if bad:
            raise EdgeDermError(f"{where}: unknown {section} setting(s) {', '.join(sorted(bad))}; "
                                f"known: {', '.join(sorted(allowed))}")
        for key, v in (value or {}).items():
            if not _fits(SETTING_KINDS[key], v):
                raise EdgeDermError(f"{where}: {section}.{key} is {v!r}; it must be {_KINDS[SETTING_KINDS[key]]}")
    for key in ("name", "out", "data"):
        if d.get(key) is not None and not isinstance(d[key], str):
            raise EdgeDermError(f"{where}: '{key}' must be a string, not {d[key]!r}")
    models = d.get("models")
    if not models or not isinstance(models, list):
        raise EdgeDermError(f"{where}: 'models' must list at least one model (checkpoint: PATH or recipe: NAME)")
    for m in models:
        if not isinstance(m, dict) or not ({"checkpoint", "recipe"} & set(m)):
            raise EdgeDermError(f"{where}: each model needs 'checkpoint: PATH' or 'recipe: NAME' (got {m!r})")
        odd = [k for k in ("checkpoint", "recipe", "name") if k in m and not (isinstance(m[k], str) and m[k])]
        if odd:
            raise EdgeDermError(f"{where}: model {odd[0]} must be a non-empty string (got {m[odd[0]]!r})")
    names = [model_name(m) for m in models]
    if len(set(names)) != len(names):
        raise EdgeDermError(f"{where}: two models share a name ({names}); give one a 'name:'")
    name = str(d.get("name") or Path(text_source).stem)
    sections = {k: dict(d[k]) for k in SECTION_KEYS if d.get(k) not in (None, False)}
    sections.setdefault("export", {})
    if d.get("bench") is not False:
        sections.setdefault("bench", {})
    return Recipe(name, models, Path(d.get("out") or Path("runs") / name).expanduser(), d.get("data"), sections,
                  bool(d.get("report", True)))


# --- the stage cache -----------------------------------------------------------------------
def digest(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def file_fingerprint(path: Path) -> str:
    from edgederm.checkpoint import sha256_file

    return sha256_file(path)[:16] if path.is_file() else ""


def artifacts_fingerprint(folder: Path, names: list[str]) -> str:
    """The named artifacts as the manifest records them now, each re-hashed from disk."""
    from edgederm.manifest import Manifest

    if not (folder / "manifest.json").exists():
        return ""
    manifest = Manifest.load(folder)
    have = {a.name: a for a in manifest.artifacts}
    if any(n not in have for n in names):
        return ""
    from edgederm.checkpoint import sha256_file

    parts = []
    for n in sorted(names):
        p = folder / have[n].path
        if not p.exists():
            return ""
        parts.append((n, have[n].sha256, sha256_file(p) if p.is_file() else have[n].sha256))
    return digest(parts)


@dataclass
class StageRecord:
    key: str
    output: dict  # what the stage made: {"kind": "file", "path"} or {"kind": "artifacts", "folder", "names"}
    fingerprint: str
    seconds: float
    finished: str


class StageCache:
    def __init__(self, folder: Path):
        self.dir = folder / ".stages"

    def _path(self, stage: str) -> Path:
        return self.dir / f"{stage}.json"

    def get(self, stage: str) -> StageRecord | None:
        p = self._path(stage)
        if not p.exists():
            return None
        try:
            return StageRecord(**json.loads(p.read_text()))
        except (json.JSONDecodeError, TypeError):
            return None  # a damaged record only costs a recompute

    def put(self, stage: str, record: StageRecord) -> None:
        from edgederm.paths import atomic_path

        self.dir.mkdir(parents=True, exist_ok=True)
        target = self._path(stage)
        tmp = atomic_path(target)
        tmp.write_text(json.dumps(record.__dict__, indent=2))
        os.replace(tmp, target)


def current_fingerprint(output: dict) -> str:
    if output["kind"] == "file":
        return file_fingerprint(Path(output["path"]))
    return artifacts_fingerprint(Path(output["folder"]), output["names"])


def run_stage(cache: StageCache, folder: Path, stage: str, key: str, work: Callable[[], dict],
              events: list) -> str:
    """Run ``work`` unless the record for ``stage`` has this key and its output is intact; returns
    the output fingerprint (the next stage's input)."""
    record = cache.get(stage)
    if record and record.key == key and current_fingerprint(record.output) == record.fingerprint != "":
        log(f"run: {folder.name}: {stage} unchanged, reused")
        events.append({"stage": stage, "status": "reused", "seconds": 0.0})
        return record.fingerprint
    log(f"run: {folder.name}: {stage} ...")
    t0 = time.perf_counter()
    output = work()
    seconds = round(time.perf_counter() - t0, 1)
    fingerprint = current_fingerprint(output)
    cache.put(stage, StageRecord(key, output, fingerprint, seconds, time.strftime("%Y-%m-%dT%H:%M:%S%z")))
    events.append({"stage": stage, "status": "ran", "seconds": seconds})
    return fingerprint


# --- one model's road ----------------------------------------------------------------------
def run_job(job: Job) -> dict:
    """Train/prune/export/quantize/bench/report for one model; returns a summary (picklable)."""
    from edgederm import __version__
    from edgederm.paths import find_data_root, home

    os.environ.setdefault("NNCF_CI", "1")
    started = time.perf_counter()
    folder = Path(job.folder)
    folder.mkdir(parents=True, exist_ok=True)
    cache = StageCache(folder)
    data_root = find_data_root(job.data)
    events: list[dict] = []
    s = job.sections
    export_dir = folder / "export"

    # train (only for a recipe whose checkpoint is missing) -> the starting checkpoint
    if "recipe" in job.model:
        from edgederm.recipes import RECIPES

        recipe = RECIPES.get(job.model["recipe"])
        checkpoint = Path(job.model.get("checkpoint") or home() / "checkpoints" / f"{recipe.name}.safetensors")

        def train_work():
            from edgederm.train import train

            if not checkpoint.exists():
                train(recipe.config, data_root, checkpoint)
            return {"kind": "file", "path": str(checkpoint)}
        fp = run_stage(cache, folder, "train", digest("train", recipe.config.__dict__, __version__), train_work, events)
    else:
        checkpoint = Path(str(job.model["checkpoint"])).expanduser()
        if not checkpoint.exists():
            raise EdgeDermError(f"recipe {job.recipe}: checkpoint {checkpoint} not found: fix the 'checkpoint:' path")
        fp = file_fingerprint(checkpoint)

    if "prune" in s:
        pruned = folder / "pruned.safetensors"

        def prune_work():
            from edgederm.prune import PruneConfig, prune_checkpoint

            cfg = dict(s["prune"])
            if "protect" in cfg:
                cfg["protect"] = tuple(cfg["protect"])
            prune_checkpoint(checkpoint, pruned, PruneConfig(**cfg), data_root=data_root, n_boot=0)
            return {"kind": "file", "path": str(pruned)}
        fp = run_stage(cache, folder, "prune", digest("prune", s["prune"], fp, __version__), prune_work, events)
        checkpoint = pruned

    e = s.get("export", {})
    exported: list[str] = []

    def export_work():
        from edgederm.export import export

        outcome = export(checkpoint, export_dir, formats=e.get("formats", ["onnx", "tflite", "coreml"]),
                         tflite_precisions=tuple(e.get("tflite_precisions", ("fp32", "fp16"))),
                         coreml_precisions=tuple(e.get("coreml_precisions", ("fp16",))), data_root=data_root,
                         n_verify=e.get("verify_images", 128), name=job.model.get("name") or model_name(job.model))
        exported[:] = [a.name for a in outcome.manifest.artifacts]
        return {"kind": "artifacts", "folder": str(export_dir), "names": exported}
    fp = run_stage(cache, folder, "export", digest("export", e, fp, __version__), export_work, events)

    if "quantize" in s:
        q = s["quantize"]

        def quantize_work():
            from quantization import quantize
            from quantization.calibration import CalibrationConfig

            outcome = quantize(export_dir, q.get("schemes", ["int8"]), q.get("formats"),
                               calibration=CalibrationConfig(size=q.get("calibration_size")), data_root=data_root,
                               n_verify=q.get("verify_images", 512))
            return {"kind": "artifacts", "folder": str(export_dir), "names": list(outcome.produced)}
        fp = run_stage(cache, folder, "quantize", digest("quantize", q, fp, __version__), quantize_work, events)

    summary = {"model": model_name(job.model), "folder": str(folder), "events": events,
               "results": str(folder / "bench" / "results.json")}
    if "bench" not in s:
        return {**summary, "minutes": round((time.perf_counter() - started) / 60, 2)}
    b = s["bench"]
    bench_dir = folder / "bench"

    def bench_work():
        from edgederm.bench import BenchConfig, bench

        config = BenchConfig(images=b.get("images"), threads=tuple(b.get("threads", (1, 2))), runs=b.get("runs", 50),
                             warmup=b.get("warmup", 10), n_boot=b.get("bootstrap", 1000), peers=b.get("peers", True),
                             throughput_batch=b.get("throughput_batch", 8), peak=b.get("peak", True))
        bench(export_dir, config, data_root, out=bench_dir)
        return {"kind": "file", "path": str(bench_dir / "results.json")}
    # The bench's input is everything in the manifest now (export + quantize), not only the last stage.
    fp = run_stage(cache, folder, "bench", digest("bench", b, fp, _manifest_fingerprint(export_dir), __version__),
                   bench_work, events)

    if job.report:
        def report_work():
            from device_bench.results import Results
            from edgederm.report import render

            render(Results.load(bench_dir / "results.json"), folder / "report")
            return {"kind": "file", "path": str(folder / "report" / "report.html")}
        run_stage(cache, folder, "report", digest("report", fp, __version__), report_work, events)
    return {**summary, "minutes": round((time.perf_counter() - started) / 60, 2)}


def _manifest_fingerprint(export_dir: Path) -> str:
    from edgederm.manifest import Manifest

    if not (export_dir / "manifest.json").exists():
        return ""
    return digest(sorted((a.name, a.sha256) for a in Manifest.load(export_dir).artifacts))


# --- many models: processes or Ray ---------------------------------------------------------
def run_recipe(recipe: Recipe, jobs: int = 1, ray_address: str | None = None) -> list[dict]:
    """Run every model of the recipe; in parallel processes, or as Ray tasks when ``ray_address`` is given."""
    for m in recipe.models:  # before any folder is made: a typo must not leave empty model folders behind
        if "checkpoint" in m and not Path(str(m["checkpoint"])).expanduser().exists():
            raise EdgeDermError(f"recipe {recipe.name}: checkpoint {m['checkpoint']} not found: fix the 'checkpoint:' path")
    all_jobs = [recipe.job(m) for m in recipe.models]
    if ray_address:
        summaries = run_on_ray(all_jobs, ray_address)
    elif jobs > 1 and len(all_jobs) > 1:
        from concurrent.futures import ProcessPoolExecutor
        import multiprocessing

        # spawn, not fork: torch and TensorFlow state does not survive a fork safely.
        with ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
            summaries = list(pool.map(run_job, all_jobs))
    else:
        summaries = [run_job(j) for j in all_jobs]
    if len(summaries) > 1:
        sweep_report(recipe, summaries)
    return summaries


def run_on_ray(all_jobs: list[Job], address: str) -> list[dict]:
    """One Ray task per model; ``address`` is a cluster address, ``auto``, or ``local`` for a fresh local one."""
    try:
        import ray
    except ImportError:
        raise EdgeDermError("--ray needs the 'ray' package: pip install ray") from None
    if not ray.is_initialized():
        try:
            ray.init(address=None if address == "local" else address, include_dashboard=False,
                     log_to_driver=False, ignore_reinit_error=True)
        except (ConnectionError, RuntimeError, ValueError, TimeoutError) as e:
            raise EdgeDermError(f"--ray {address}: no Ray cluster answered ({type(e).__name__}); start one (ray start "
                                "--head), or use --ray local or --jobs N") from None
    task = ray.remote(num_cpus=1)(run_job)
    return ray.get([task.remote(j) for j in all_jobs])


def sweep_report(recipe: Recipe, summaries: list[dict]) -> Path:
    """Rank every measured row of every model: Pareto front per task and thread count, then by metric."""
    from device_bench.results import Results
    from edgederm.paths import atomic_path
    from edgederm.report import HEADLINE, markdown_table, measured, pareto_front

    rows = []
    for s in summaries:
        path = Path(s["results"])
        if not path.exists():
            continue
        res = Results.load(path)
        key = HEADLINE[res.model.get("task", "classification")][0]
        for r in measured(res.rows):
            rows.append({"task": res.model.get("task"), "model": s["model"], "artifact": r["artifact"],
                         "precision": r["precision"], "threads": r.get("threads"), "metric": key,
                         "value": r["metrics"][key]["value"], "ms": r["latency"]["median_ms"],
                         "size MB": round((r.get("size_bytes") or 0) / 1e6, 2)})
    ranked = []
    for group in sorted({(r["task"], r["threads"]) for r in rows}, key=str):
        members = [r for r in rows if (r["task"], r["threads"]) == group]
        front = set(pareto_front([(r["ms"], r["value"]) for r in members]))
        for i, r in enumerate(members):
            r["pareto"] = "★" if i in front else ""
        ranked += sorted(members, key=lambda r: (r["pareto"] != "★", -r["value"], r["ms"]))
    for r in ranked:
        r["value"], r["ms"] = f"{r['value']:.4f}", f"{r['ms']:.2f}"
    target = recipe.out / "sweep.md"
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = atomic_path(target)
    tmp.write_text(f"# Sweep {recipe.name}\n\n★ = on the Pareto front (no other row is both faster and more "
                   f"accurate) within its task and thread count.\n\n" + markdown_table(ranked))
    os.replace(tmp, target)
    log(f"run: sweep report {target}")
    return target
