"""Run every artifact of a bundle with every runtime this device has: accuracy on the bundled,
labelled images and latency with the protocol of ``device_bench.timing.measure``.

One row per (artifact, runtime, provider or compute unit, threads). Accuracy is measured once
per (artifact, runtime, provider), at the first thread count, and shared by its thread rows.
An artifact whose sha256 differs from the manifest is never run: its row fails with the reason.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from device_bench import __version__, environment, placement, tensorrt
from device_bench.bundle import Bundle, artifact_input, ids_fingerprint
from device_bench.console import say
from device_bench.errors import DeviceBenchError
from device_bench.results import Results
from device_bench.runners import RunnerUnavailable, open_runner
from device_bench.tasks import device_task
from device_bench.timing import measure

RUNTIMES = ("onnxruntime", "litert", "coreml", "tensorrt", "executorch")
ORT_GPU_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider")
COMPUTE_UNITS = ("cpu", "gpu", "ane")


@dataclass
class DeviceBenchConfig:
    """What ``python -m device_bench run`` measures (its flags, checked here)."""

    threads: list[int] = field(default_factory=lambda: [1, 4])
    runtimes: list[str] | None = None  # None: every runtime found; named ones that are absent give skipped rows
    artifacts: list[str] | None = None
    compute_units: list[str] = field(default_factory=lambda: list(COMPUTE_UNITS))
    trt_precisions: list[str] = field(default_factory=lambda: ["fp16", "int8"])
    warmup: int = 5
    runs: int = 30
    max_seconds: float = 20.0
    n_boot: int = 1000
    images: int | None = None
    device: str | None = None
    placement: bool = True
    quiet: bool = False

    def __post_init__(self):
        unknown = [r for r in self.runtimes or [] if r not in RUNTIMES]
        if unknown:
            raise DeviceBenchError(f"--runtime {','.join(unknown)} is unknown: use {', '.join(RUNTIMES)}")
        if not self.threads or any(t < 1 for t in self.threads):
            raise DeviceBenchError(f"--threads {self.threads} must be positive integers, e.g. 1,4")
        bad = [c for c in self.compute_units if c not in COMPUTE_UNITS]
        if bad:
            raise DeviceBenchError(f"--compute-units {','.join(bad)} is unknown: use {', '.join(COMPUTE_UNITS)}")


@dataclass
class RunnerJob:
    """One way to run one artifact: runner name, its options, the provider label and the thread counts."""

    artifact: dict
    runtime: str
    provider: str
    options: dict
    threads: list[int | None]


def _importable(module: str) -> bool:
    import importlib.util

    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def _ort_providers() -> list[str]:
    try:
        import onnxruntime as ort
    except ImportError:
        return []
    return list(ort.get_available_providers())


def plan(bundle: Bundle, config: DeviceBenchConfig) -> tuple[list[RunnerJob], list[dict]]:
    """The jobs to run and the rows skipped up front (runtime missing, artifact filtered)."""
    wanted = set(config.runtimes or RUNTIMES)
    jobs, skipped = [], []
    arts = bundle.artifacts
    if config.artifacts:
        missing = [a for a in config.artifacts if a not in {x["name"] for x in arts}]
        if missing:
            raise DeviceBenchError(f"--artifact {','.join(missing)} is not in the bundle; it has "
                                   f"{', '.join(a['name'] for a in arts)}")
        arts = [a for a in arts if a["name"] in config.artifacts]

    def skip(a, runtime, reason):
        skipped.append(_base_row(a, runtime, None, None) | {"status": "skipped", "reason": reason})

    for a in arts:
        fmt = a["format"]
        if fmt == "onnx" and "onnxruntime" in wanted:
            providers = _ort_providers()
            if not providers:
                skip(a, "onnxruntime", "onnxruntime is not installed here (pip install onnxruntime, "
                                       "or onnxruntime-gpu / the Jetson wheel for CUDA and TensorRT)")
            else:
                jobs.append(RunnerJob(a, "onnxruntime", "CPUExecutionProvider",
                                      {"providers": ["CPUExecutionProvider"]}, list(config.threads)))
                for p in ORT_GPU_PROVIDERS:
                    if p in providers:
                        chain = list(ORT_GPU_PROVIDERS[ORT_GPU_PROVIDERS.index(p):]) + ["CPUExecutionProvider"]
                        jobs.append(RunnerJob(a, "onnxruntime", p,
                                              {"providers": [c for c in chain if c in providers]}, [None]))
        if fmt == "onnx" and "tensorrt" in wanted:
            if _importable("tensorrt"):  # the Python API: engines with accuracy; trtexec is the fallback
                from device_bench.runners.tensorrt_runner import select

                trt_jobs, trt_skips = select([a], config.trt_precisions)
                jobs += [RunnerJob(x, "tensorrt", f"TensorRT {p}", {"precision": p, "sha256": x.get("sha256")}, [None])
                         for x, p in trt_jobs]
                for x, reason in trt_skips:
                    skip(x, "tensorrt", reason)
            elif not tensorrt.available() and config.runtimes:
                skip(a, "tensorrt", "neither the tensorrt Python module nor trtexec is here (pip install -r "
                                    "requirements-gpu.txt; JetPack: python3-libnvinfer, /usr/src/tensorrt/bin/trtexec)")
        if fmt == "tflite" and "litert" in wanted:
            if _importable("ai_edge_litert") or _importable("tflite_runtime"):
                jobs.append(RunnerJob(a, "litert", "XNNPACK", {"xnnpack": True}, list(config.threads)))
            else:
                skip(a, "litert", "neither ai-edge-litert nor tflite-runtime is installed (pip install ai-edge-litert)")
        if fmt == "executorch" and "executorch" in wanted:
            if _importable("executorch"):
                jobs.append(RunnerJob(a, "executorch", "XNNPACK", {}, list(config.threads)))
            else:
                skip(a, "executorch", "executorch is not installed (pip install executorch)")
        if fmt == "coreml" and "coreml" in wanted:
            for unit in config.compute_units:
                jobs.append(RunnerJob(a, "coreml", unit, {"compute_units": unit}, [None]))
    return jobs, skipped


def _base_row(artifact: dict, runtime: str | None, provider: str | None, threads: int | None) -> dict:
    return {"artifact": artifact["name"], "format": artifact["format"], "precision": artifact["precision"],
            "path": artifact["path"], "sha256": artifact.get("sha256"), "size_bytes": artifact.get("size_bytes"),
            "runtime": runtime, "provider": provider, "threads": threads, "batch": 1, "role": "artifact", "notes": []}


def _one_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0] if text else ''}"[:300]


def evaluate(bundle: Bundle, artifact: dict, runner, x: np.ndarray, n_boot: int) -> tuple[dict, dict]:
    """(metrics, per_image) of ``runner`` on the bundled images, one image at a time (static batch 1),
    scored the way the bundle's task says (``device_bench.tasks``)."""
    outs = np.concatenate([np.asarray(runner(x[i:i + 1]), dtype=np.float32) for i in range(len(x))])
    return device_task(bundle.task).score(bundle.eval, artifact, outs, bundle.manifest.get("output", {}), n_boot)


def _placement(job: RunnerJob, runner, path: Path, x1: np.ndarray, threads):
    try:
        if job.runtime == "litert":
            return placement.litert_placement(runner.interpreter)
        if job.runtime == "tensorrt":  # the engine inspector's per-layer formats
            return runner.placement()
        if job.runtime == "onnxruntime":  # a second, profiled session (ORT cannot switch profiling on later)
            return placement.onnxruntime_placement(str(path), list(runner.session.get_providers()), x1, threads)
    except Exception as e:  # placement is a nice-to-have; never lose the row for it
        return {"error": _one_line(e)}
    return None


def run_job(bundle: Bundle, job: RunnerJob, config: DeviceBenchConfig, device: str, x: np.ndarray, log) -> list[dict]:
    rows, accuracy, acc_threads = [], None, None
    path = bundle.artifact_path(job.artifact)
    for threads in job.threads:
        row = _base_row(job.artifact, job.runtime, job.provider, threads) | {"device": device}
        label = f"{job.artifact['name']} {job.runtime} {job.provider}" + (f" threads={threads}" if threads else "")
        try:
            runner = open_runner(path, job.artifact["format"], runner=job.runtime, threads=threads, **job.options)
        except RunnerUnavailable as e:
            rows.append(row | {"status": "skipped", "reason": str(e)})
            log(f"{label}: skipped ({e})")
            break  # no other thread count will load either
        except Exception as e:
            rows.append(row | {"status": "failed", "reason": f"could not load: {_one_line(e)}"})
            log(f"{label}: FAILED to load ({_one_line(e)})")
            continue
        row["runtime"] = getattr(runner, "runtime", job.runtime)
        if hasattr(runner, "row_fields"):  # a runner that builds its own artifact (TensorRT engine) names it
            row.update(runner.row_fields, source_artifact=job.artifact["name"])
            row["notes"] += list(getattr(runner, "notes", []))
        if job.runtime == "onnxruntime":
            got = runner.session.get_providers()
            if got[0] != job.provider:
                row["notes"].append(f"ONNX Runtime fell back: session providers are {got}")
        try:
            t0 = time.perf_counter()
            if accuracy is None:
                accuracy = evaluate(bundle, job.artifact, runner, x, config.n_boot)
                acc_threads = threads
                log(f"{label}: accuracy on {len(x)} images in {time.perf_counter() - t0:.1f} s")
            elif threads != acc_threads:
                row["notes"].append(f"accuracy measured at threads={acc_threads}")
            row["metrics"], row["per_image"] = accuracy
            timer = getattr(runner, "measure", None)  # TensorRT: CUDA events; else the host clock
            row["latency"] = (timer or (lambda *a, **k: measure(runner, *a, **k)))(
                x[:1], warmup=config.warmup, runs=config.runs, max_seconds=config.max_seconds)
            row["throughput"] = {"batch": 1, "images_per_s": 1e3 / row["latency"]["median_ms"]}
        except Exception as e:
            rows.append(row | {"status": "failed", "reason": _one_line(e)})
            log(f"{label}: FAILED ({_one_line(e)})")
            continue
        if config.placement:
            row["placement"] = _placement(job, runner, path, x[:1], threads)
        row["status"] = "ok"
        rows.append(row)
        log(f"{label}: median {row['latency']['median_ms']:.2f} ms")
    return rows


def model_record(bundle: Bundle) -> dict:
    m = bundle.manifest["model"]
    keep = ("name", "architecture", "task", "classes", "dataset", "checkpoint_sha256")
    return {k: m[k] for k in keep if k in m}


def data_record(bundle: Bundle) -> dict:
    ev = bundle.eval
    info = ev.info
    return {"dataset": info.get("dataset"), "split": info.get("split", "test"), "images": len(ev.ids),
            "ids_sha256": ids_fingerprint(ev.ids), "selection": info.get("selection"), "source": "bundle",
            "input_size": info.get("input_size")}


def run(bundle: Bundle, config: DeviceBenchConfig, engines_dir: Path | None = None) -> Results:
    log = (lambda msg: None) if config.quiet else (lambda msg: say(f"device_bench: {msg}"))
    if config.images:
        ev = bundle.eval
        n = min(config.images, len(ev.ids))
        ev.ids, ev.images = ev.ids[:n], ev.images[:n]
        ev.labels = ev.labels[:n] if ev.labels is not None else None
        ev.masks = ev.masks[:n] if ev.masks is not None else None
    facts = environment.collect()
    device = config.device or environment.device_key(facts)
    facts["device_bench"] = __version__
    facts["device_bench_path"] = str(Path(__file__).resolve().parent)  # shows which copy of the runner ran
    results = Results(environments={device: facts}, model=model_record(bundle), data=data_record(bundle),
                      source="device_bench")
    jobs, skipped = plan(bundle, config)
    for row in skipped:
        results.add(row | {"device": device})
    bad = {}
    for a in {id(j.artifact): j.artifact for j in jobs}.values():
        reason = bundle.check(a)
        if reason:
            bad[a["name"]] = reason
            log(f"{a['name']}: NOT RUN: {reason}")
    prep = bundle.manifest["preprocessing"]
    inputs = {}
    for job in jobs:
        name = job.artifact["name"]
        if name in bad:
            if not any(r["artifact"] == name and r["status"] == "failed" for r in results.rows):
                results.add(_base_row(job.artifact, job.runtime, None, None)
                            | {"device": device, "status": "failed", "reason": bad[name]})
            continue
        if name not in inputs:
            inputs[name] = artifact_input(job.artifact, bundle.eval.images, prep)
        if job.runtime == "tensorrt":
            job.options.setdefault("engines", str(engines_dir or bundle.root / "engines"))
        for row in run_job(bundle, job, config, device, inputs[name], log):
            results.add(row)
    if "tensorrt" in set(config.runtimes or RUNTIMES) and tensorrt.available() and not _importable("tensorrt"):
        for a in bundle.artifacts:
            if a["format"] != "onnx" or (config.artifacts and a["name"] not in config.artifacts):
                continue
            reason = bad.get(a["name"]) or bundle.check(a)
            if reason:
                results.add(_base_row(a, "tensorrt", None, None) | {"device": device, "status": "failed", "reason": reason})
                continue
            log(f"{a['name']}: building TensorRT engines ({', '.join(config.trt_precisions)}) with trtexec")
            for row in tensorrt.run(bundle.artifact_path(a), a, engines_dir or bundle.root / "engines",
                                    config.trt_precisions, device):
                results.add(row)
    return results
