"""``edgederm bench``: accuracy versus latency for every artifact of an export folder and its original.

For each artifact, the PyTorch original (CPU, and CUDA when present) and the *peer paths* a
user would otherwise take (plain ``torch.onnx.export`` run by ONNX Runtime, fp32 and ONNX
Runtime's own default int8; ExecuTorch's own XNNPACK recipe, fp32 and PT2E int8,
``edgederm.peer_executorch``), on the real test split:

- task metrics with bootstrap 95 % CIs and the paired difference to the original (the same
  resampled images for both, so the CI is of the drop itself);
- latency at batch 1 per thread count with the protocol of ``device_bench.timing`` (warm-up
  discarded; median, p90, min), throughput at a larger batch where the runtime takes one;
- size, params, MACs, the memory that loading and running added to the process, and the
  fraction of this CPU's measured peak MAC rate the artifact reaches.

Rows go to ``results.json`` (``device_bench.results``, the schema devices write too) and
``results.csv``; the terminal shows one table.
"""

from __future__ import annotations

import copy
import os
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from edgederm.candidates import Candidate, failed_peer
from edgederm.errors import EdgeDermError
from edgederm.manifest import Artifact, Manifest
from edgederm.progress import log
from edgederm.tasks import task_of

KEPT_METRICS = {"classification": ("balanced_accuracy", "macro_auroc", "mel_sensitivity_at_spec80", "accuracy"),
                "segmentation": ("dice", "jaccard", "thresholded_jaccard")}


@dataclass
class BenchConfig:
    images: int | None = None  # None: the whole test split
    threads: tuple[int, ...] = (1, 2)
    throughput_batch: int = 8
    warmup: int = 10
    runs: int = 100
    max_seconds: float = 15.0
    n_boot: int = 1000
    peers: bool = True
    only: tuple[str, ...] = ()  # artifact names; empty = all
    rounds: int = 10  # latency: interleaved rounds over all candidates (see measure_interleaved)
    gpu: str = "auto"  # auto: CUDA rows when a GPU is present | off | only (GPU rows alone)
    peak: bool = True  # measure this CPU's peak MAC rate for the physical-limit column
    seed: int = 0


# --- scoring -------------------------------------------------------------------------------
def scorer(task: str, targets: np.ndarray, classes: list[str], output: dict | None = None):
    """Per-task scoring: outputs -> per-image statistics -> metric functions on index sets (the task's own)."""
    return task_of(task).scorer(targets, classes, output)


def metrics_with_ci(fns: dict, n: int, n_boot: int, seed: int) -> dict:
    from edgederm.metrics import with_ci

    return {k: with_ci(f, n, n_boot, seed).to_dict() for k, f in fns.items()}


def paired_deltas(fns: dict, ref_fns: dict, n: int, n_boot: int, seed: int) -> dict:
    """artifact - original on the same bootstrap resamples: a CI of the drop, not of two metrics."""
    from edgederm.metrics import with_ci

    return {k: with_ci(lambda i, f=f, g=ref_fns[k]: f(i) - g(i), n, n_boot, seed).to_dict()
            for k, f in fns.items() if k in ref_fns}


# --- the candidates ------------------------------------------------------------------------
def torch_candidate(model, manifest: Manifest, stats: dict, device: str = "cpu", precision: str = "fp32",
                    compiled: bool = False) -> Candidate:
    import torch

    prep = manifest.preprocessing
    dev = torch.device(device)

    opened = {}  # a GPU copy ignores thread counts: open it once (and compile it once)

    def open_(threads):
        if device == "cpu":
            torch.set_num_threads(threads)
        elif "fn" in opened:
            return opened["fn"]
        # each candidate its own copy: .to() and .half() work in place; NHWC suits cuDNN's fp16 kernels too
        m = copy.deepcopy(model).to(dev).eval().to(memory_format=torch.channels_last)
        if precision == "fp16":
            m = m.half()
        if compiled:  # CUDA graphs: at batch 1 a small CNN is bound by kernel launches
            m = torch.compile(m, mode="reduce-overhead" if dev.type == "cuda" else "default")
        sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)

        def run(x):
            with torch.inference_mode():
                t = torch.from_numpy(x).to(dev)
                t = t.half() if precision == "fp16" else t
                y = m(t.contiguous(memory_format=torch.channels_last)).float()
                sync()
                return y.cpu().numpy()
        if device != "cpu":
            opened["fn"] = run
        return run

    name = f"pytorch_{device.split(':')[0]}_{precision}" + ("_compiled" if compiled else "")
    runtime = f"torch {torch.__version__}" + (" (torch.compile)" if compiled else "")
    provider = torch.cuda.get_device_name(dev) if dev.type == "cuda" else "eager CPU"
    row = {"artifact": name, "format": "torch", "precision": precision, "role": "original", "runtime": runtime,
           "provider": provider, "size_bytes": stats.get("checkpoint_bytes"), "params": stats.get("params"),
           "macs": stats.get("macs"), "status": "ok"}
    if dev.type == "cuda":  # what a GPU figure includes, so nobody compares it with kernel-only timings
        row["notes"] = ["end to end per call: host-to-GPU copy, forward, GPU-to-host copy, synchronised"]
    # a compiled copy scores at batch 1, the shape it is timed at: every new batch size is another compile
    return Candidate(row, open_, lambda u8: prep.normalize(u8), static_batch=False, accuracy_batch=1 if compiled else 32)


def artifact_candidate(artifact: Artifact, folder: Path, manifest: Manifest, stats: dict,
                       provider: str | None = None) -> Candidate:
    from device_bench.runners import open_runner
    from edgederm.verify import artifact_input, to_reference_layout

    path = manifest.artifact_file(folder, artifact)
    options = {"providers": [provider]} if provider else {}

    def open_(threads):
        return open_runner(path, artifact.format, threads=threads, **options)

    row = {"artifact": artifact.name, "format": artifact.format, "precision": artifact.precision, "role": "artifact",
           "path": artifact.path, "sha256": artifact.sha256, "size_bytes": artifact.size_bytes,
           "params": stats.get("params"), "macs": stats.get("macs"), "status": "ok",
           "verify": (artifact.verify or {}).get("status")}
    return Candidate(row, open_, lambda u8: artifact_input(artifact, u8, manifest),
                     lambda y: to_reference_layout(artifact, y, manifest.task),
                     outputs_prob=artifact.format == "coreml" and task_of(manifest.task).has_class_labels,
                     static_batch=artifact.inputs[0].shape[0] == 1)


def peer_candidates(model, manifest: Manifest, stats: dict, workdir: Path, calibration: np.ndarray) -> list[Candidate]:
    """What a user would do without EdgeDerm: ``torch.onnx.export`` with defaults, then ONNX Runtime,
    fp32 and ONNX Runtime's own ``quantize_static`` with its defaults (QDQ, int8, per-tensor)."""
    import torch

    h, w = manifest.preprocessing.input_size
    fp32 = workdir / "peer_fp32.onnx"
    int8 = workdir / "peer_int8.onnx"
    cands = []
    try:
        if not fp32.exists():
            torch.onnx.export(model.eval(), (torch.zeros(1, 3, h, w),), str(fp32), input_names=["input"],
                              output_names=["output"], opset_version=17, dynamo=False)
        cands.append(_peer(fp32, "peer_onnx_fp32", "fp32", manifest, stats))
    except Exception as e:  # the peer path failing is a finding, not a crash of the bench
        cands.append(failed_peer("peer_onnx_fp32", "fp32", f"torch.onnx.export failed: {str(e).splitlines()[0]}"))
        return cands
    try:
        if not int8.exists():
            from onnxruntime.quantization import CalibrationDataReader, quantize_static
            from onnxruntime.quantization.shape_inference import quant_pre_process

            x = manifest.preprocessing.normalize(calibration)

            class Reader(CalibrationDataReader):
                def __init__(self):
                    self.items = iter([{"input": x[i:i + 1]} for i in range(len(x))])

                def get_next(self):
                    return next(self.items, None)

            pre = workdir / "peer_pre.onnx"
            quant_pre_process(str(fp32), str(pre))
            quantize_static(str(pre), str(int8), Reader())
        cands.append(_peer(int8, "peer_onnx_int8", "int8", manifest, stats))
    except Exception as e:
        cands.append(failed_peer("peer_onnx_int8", "int8", f"onnxruntime quantize_static failed: {str(e).splitlines()[0]}"))
    return cands


def peer_calibration(manifest: Manifest, data_root, n: int = 64) -> np.ndarray:
    """64 class-stratified *training* images for the peer's int8 calibration (test images would leak)."""
    from edgederm.data import load_dataset
    from edgederm.data.arrays import load_arrays
    from edgederm.data.layouts import find_dataset

    root = find_dataset(manifest.model.get("dataset"), data_root, "peer calibration data")
    ds = load_dataset(root).split("train").subset(n, seed=0)
    return load_arrays(ds, manifest.preprocessing, desc="bench: peer calibration images").images


def _peer(path: Path, name: str, precision: str, manifest: Manifest, stats: dict) -> Candidate:
    from device_bench.runners import open_runner

    row = {"artifact": name, "format": "onnx", "precision": precision, "role": "peer", "path": str(path),
           "size_bytes": path.stat().st_size, "params": stats.get("params"), "macs": stats.get("macs"), "status": "ok",
           "notes": ["plain torch.onnx.export + ONNX Runtime defaults (what a user would do without EdgeDerm)"]}
    return Candidate(row, lambda t: open_runner(path, "onnx", threads=t), manifest.preprocessing.normalize)


def gpu_targets(cuda_available: bool, ort_providers: list[str], mode: str) -> list[tuple[str, str, bool]]:
    """Which GPU rows to measure: (runtime, precision or provider, compiled). Empty without a GPU."""
    if mode == "off":
        return []
    rows = []
    if cuda_available:
        rows += [("torch", "fp32", False), ("torch", "fp16", False), ("torch", "fp16", True)]
    for provider in ("CUDAExecutionProvider", "TensorrtExecutionProvider"):
        if provider in ort_providers:
            rows.append(("onnxruntime", provider, False))
    return rows


# --- measuring -----------------------------------------------------------------------------
def rss_mb() -> float:
    import psutil

    return psutil.Process().memory_info().rss / 2**20


@dataclass
class Scored:
    """A candidate after its accuracy pass: its rows' shared fields and the inputs kept for timing."""

    cand: Candidate
    fields: dict
    one: np.ndarray  # batch 1 in the candidate's input form
    many: np.ndarray  # the throughput batch (or fewer images)
    fns: dict


def score_candidate(cand: Candidate, images: np.ndarray, config: BenchConfig, score, ref_fns, n: int,
                    per_image_fn) -> Scored | dict:
    """Run the candidate on every test image once (at the largest thread count) and score it.
    Returns the ``Scored`` candidate, or the finished row of one that was skipped or failed."""
    from device_bench.runners import RunnerUnavailable, run_batched

    if cand.open is None:
        return cand.row
    try:
        before = rss_mb()
        fn = cand.open(max(config.threads))
        x = cand.make_input(images)
        batch = cand.accuracy_batch or (1 if cand.static_batch else 32)
        out = cand.to_reference(run_batched(fn, x, batch).astype(np.float32))
        fns = score(per_image_fn(out, cand.outputs_prob))
        fields = {"metrics": metrics_with_ci(fns, n, config.n_boot, config.seed),
                  "delta": paired_deltas(fns, ref_fns, n, config.n_boot, config.seed) if ref_fns else {},
                  "rss_added_mb": round(rss_mb() - before, 1), "images": n}
    except RunnerUnavailable as e:
        return {**cand.row, "status": "skipped", "reason": str(e)}
    except Exception as e:  # a runtime that crashes on an artifact is a result to show, not a crash
        return {**cand.row, "status": "failed", "reason": _one_line(e)}
    b = max(1, config.throughput_batch)
    return Scored(cand, fields, np.ascontiguousarray(x[:1]), np.ascontiguousarray(x[:b]), fns)


def time_candidates(scored: list[Scored], config: BenchConfig) -> tuple[list[dict], dict]:
    """Latency of every scored candidate, per thread count, in interleaved rounds
    (``device_bench.timing.measure_interleaved``): one row per candidate and thread count, and
    per thread count the machine's own noise (a fixed GEMM timed in the same rounds)."""
    from device_bench.timing import measure, measure_interleaved, probe

    rows, noise = [], {}
    for threads in config.threads:
        opened = {}
        for i, s in enumerate(scored):
            try:
                opened[i] = s.cand.open(threads)
            except Exception as e:
                rows.append({**s.cand.row, **s.fields, "threads": threads, "status": "failed",
                             "reason": f"could not open at {threads} thread(s): {_one_line(e)}"})
        log(f"bench: timing {len(opened)} candidates at {threads} thread(s), {config.rounds} interleaved rounds")
        calls = {i: (lambda fn=fn, x=scored[i].one: fn(x)) for i, fn in opened.items()}
        calls["probe"] = probe()
        latency = measure_interleaved(calls, warmup=config.warmup, runs=config.runs, rounds=config.rounds,
                                      max_seconds=config.max_seconds)
        p = latency.pop("probe")
        noise[str(threads)] = {"probe": "numpy fp32 GEMM 192x192", "median_ms": round(p["median_ms"], 4),
                               "round_spread": p["round_spread"]}
        for i, fn in opened.items():
            s = scored[i]
            row = {**s.cand.row, "threads": threads, "batch": 1, **s.fields, "latency": latency[i]}
            if getattr(fn, "runtime", None):
                row["runtime"] = fn.runtime
                row["provider"] = getattr(fn, "delegate", row.get("provider"))
            b = config.throughput_batch
            if b > 1 and len(s.many) >= b and (not s.cand.static_batch or s.cand.row["format"] == "tflite"):
                try:
                    t = measure(fn, s.many, warmup=2, runs=10, max_seconds=config.max_seconds)
                    row["throughput"] = {"batch": b, "images_per_s": round(1e3 * b / t["median_ms"], 2)}
                except Exception:  # a file whose batch dimension is fixed: no throughput row
                    pass
            rows.append(row)
        opened.clear()
    for s in scored:
        if s.cand.cleanup:
            s.cand.cleanup()
    return rows, noise


def _one_line(e: Exception) -> str:
    return f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"


def bench(folder: str | os.PathLike, config: BenchConfig | None = None, data_root=None, checkpoint: str | None = None,
          out: str | os.PathLike | None = None, meta=None, weights=None, trust_source: bool = False):
    """Measure every artifact in ``folder`` and the original; returns ``device_bench.results.Results``."""
    import tempfile

    from device_bench.results import Results, ids_sha256
    from edgederm.byom import original_from_manifest
    from edgederm.environment import environment_facts
    from edgederm.models import model_stats
    from edgederm.verify import verification_arrays

    config = config or BenchConfig()
    folder = Path(folder)
    manifest = Manifest.load(folder)
    folder = folder if folder.is_dir() else folder.parent
    manifest.require_complete(folder)
    for a in manifest.artifacts:  # every file measured is the file the manifest records, before any slow work
        if config.gpu != "only" and (not config.only or a.name in config.only):
            manifest.artifact_file(folder, a)
    unknown = set(config.only) - {a.name for a in manifest.artifacts}
    if unknown:
        raise EdgeDermError(f"--only {','.join(sorted(unknown))}: no such artifact in {folder / 'manifest.json'} "
                            f"(it has {', '.join(a.name for a in manifest.artifacts)})")
    model, source = original_from_manifest(manifest, folder, checkpoint, meta, weights, trust=trust_source)
    started = time.perf_counter()
    images, targets, ids = verification_arrays(manifest, data_root, config.images or 10**9, with_ids=True)
    n = len(images)
    log(f"bench: {manifest.model['name']} on {n} test images of {manifest.model.get('dataset')}")
    stats = {}
    try:
        stats = model_stats(model, tuple(manifest.preprocessing.input_size))
    except Exception as e:  # an exported program may refuse the FLOP counter
        log(f"bench: could not count MACs ({type(e).__name__}); the column stays empty")
    if Path(source).exists():
        stats["checkpoint_bytes"] = Path(source).stat().st_size
    env_key, env = environment_facts()
    model_facts = ("name", "architecture", "task", "classes", "dataset", "checkpoint_sha256")
    results = Results(environments={env_key: env}, source="edgederm bench",
                      model={k: manifest.model.get(k) for k in model_facts},
                      data={"split": "test", "images": n, "selection": "whole split" if not config.images else
                            f"class-stratified sample of {config.images}, seed 0", "dataset": manifest.model.get("dataset"),
                            "ids_sha256": ids_sha256(ids)})
    if config.peak:
        from edgederm.peak import peak_mac_rate

        env["peak_gmacs"] = {str(t): peak_mac_rate(t) for t in config.threads}
    per_image, score = scorer(manifest.task, targets, manifest.classes, manifest.output)

    import torch

    original = torch_candidate(model, manifest, stats)
    cands = [] if config.gpu == "only" else [original]
    gpu = gpu_candidates(model, manifest, stats, folder, config)
    if config.gpu == "only" and not any(c.open for c in gpu):
        raise EdgeDermError("--gpu only: no CUDA device (torch) and no CUDA/TensorRT provider (onnxruntime) here; "
                            "run it on the GPU machine or use --gpu auto")
    cands += gpu
    if config.gpu != "only":
        for a in manifest.artifacts:
            if not config.only or a.name in config.only:
                cands.append(artifact_candidate(a, folder, manifest, stats))
    tmp = None
    if config.peers and config.gpu != "only":  # removed below; a killed run's folder is swept at the next start
        tmp = tempfile.TemporaryDirectory(prefix="edgederm-peer-")
        calibration = peer_calibration(manifest, data_root)
        cands += peer_candidates(model, manifest, stats, Path(tmp.name), calibration)
        from edgederm.peer_executorch import executorch_peers  # the plain ExecuTorch XNNPACK path

        cands += executorch_peers(model, manifest, stats, Path(tmp.name), calibration)
    ref_fns = None
    if config.gpu == "only":  # the GPU rows' deltas are still against the CPU original (accuracy only)
        log("bench: the CPU original, for the reference accuracy")
        ref = score_candidate(original, images, replace(config, threads=(os.cpu_count() or 1,)), score, None, n, per_image)
        ref_fns = ref.fns if isinstance(ref, Scored) else None
    scored, unmeasured = [], []
    for i, cand in enumerate(cands):
        if cand.open is not None:
            log(f"bench: [{i + 1}/{len(cands)}] {cand.row['artifact']}: accuracy on {n} images")
        s = score_candidate(cand, images, config, score, ref_fns, n, per_image)
        if isinstance(s, dict):
            unmeasured.append(s)
            continue
        scored.append(s)
        if i == 0 and ref_fns is None:  # the first candidate is the original: deltas are against it
            ref_fns = s.fns
    timed, noise = time_candidates(scored, config)
    for row in timed + unmeasured:
        results.add({**row, "device": env_key})
    results.data["machine_noise"] = noise  # the probe's round-to-round spread: how far to trust small differences
    if tmp is not None:
        tmp.cleanup()
    torch.set_num_threads(max(config.threads))
    results.data["seconds"] = round(time.perf_counter() - started, 1)
    add_speedups(results)
    if out is not None:
        write_results(results, Path(out))
    return results


def gpu_candidates(model, manifest, stats, folder, config) -> list[Candidate]:
    import torch

    try:
        import onnxruntime as ort

        providers = ort.get_available_providers()
    except ImportError:
        providers = []
    cands = []
    onnx_art = next((a for a in manifest.artifacts if a.format == "onnx" and a.precision == "fp32"), None)
    cuda = torch.cuda.is_available()
    for runtime, what, compiled in gpu_targets(cuda, providers, config.gpu):
        if runtime == "torch":
            cands.append(torch_candidate(model, manifest, stats, "cuda", what, compiled))
        elif onnx_art is not None and (folder / onnx_art.path).exists():
            cand = artifact_candidate(onnx_art, folder, manifest, stats, provider=what)
            cand.row["artifact"] = _ort_gpu_name(onnx_art.name, what)
            cands.append(cand)
        else:
            cands.append(_skipped(_ort_gpu_name("onnx_fp32", what), "onnx", "fp32",
                                  "no fp32 ONNX file in this folder to run on the GPU provider"))
    if cuda and config.gpu != "off":  # say why the ONNX Runtime GPU rows are missing rather than drop them
        for what in ("CUDAExecutionProvider", "TensorrtExecutionProvider"):
            if what not in providers:
                cands.append(_skipped(_ort_gpu_name("onnx_fp32", what), "onnx", "fp32",
                                      f"this onnxruntime has no {what} (install onnxruntime-gpu"
                                      f"{' and TensorRT' if 'Tensorrt' in what else ''})"))
    return cands


def _ort_gpu_name(artifact: str, provider: str) -> str:
    return f"{artifact}_{provider.replace('ExecutionProvider', '').lower()}"


def _skipped(name: str, fmt: str, precision: str, reason: str) -> Candidate:
    return Candidate({"artifact": name, "format": fmt, "precision": precision, "role": "artifact",
                      "status": "skipped", "reason": reason}, None, None)


def add_speedups(results) -> None:
    """speedup = the CPU original's median ms on the same machine at the same thread count / this
    row's median ms. Where the results hold the original on a GPU (eager fp32, batch 1), every row
    also gets ``gpu_original_ratio`` = its median ms / that GPU figure: how far an edge artifact is
    from the original served on a GPU."""
    base = {(r.get("device"), r["threads"]): r["latency"]["median_ms"] for r in results.rows
            if r.get("role") == "original" and r["format"] == "torch" and r.get("provider") == "eager CPU"
            and r["status"] == "ok"}
    gpu = [r["latency"]["median_ms"] for r in results.rows
           if r.get("artifact") == "pytorch_cuda_fp32" and r["status"] == "ok" and r.get("latency")]
    for r in results.rows:
        if r["status"] == "ok" and (r.get("device"), r.get("threads")) in base:
            r["speedup_vs_original"] = round(base[(r.get("device"), r["threads"])] / r["latency"]["median_ms"], 3)
        if gpu and r["status"] == "ok" and r.get("latency"):
            r["gpu_original_ratio"] = round(r["latency"]["median_ms"] / min(gpu), 3)
        peak = results.environments.get(r.get("device", ""), {}).get("peak_gmacs", {})
        if r["status"] == "ok" and r.get("macs") and str(r.get("threads")) in peak:
            p = peak[str(r["threads"])]
            integer = r["precision"].startswith(("int8", "w8a8"))  # int8 arithmetic: compare with the int8 GEMM
            rate = p["int8"] if integer and p.get("int8") else p["fp32"]
            r["peak_fraction"] = round(r["macs"] / (r["latency"]["median_ms"] * 1e-3) / (rate * 1e9), 4)


# --- output --------------------------------------------------------------------------------
def write_results(results, out: Path) -> tuple[Path, Path]:
    import csv
    import io

    from edgederm.paths import atomic_path

    out.mkdir(parents=True, exist_ok=True)
    json_path = results.save(out / "results.json")
    fields = ["device", "artifact", "role", "format", "precision", "runtime", "provider", "threads", "batch", "status",
              "size_bytes", "params", "macs", "metric", "value", "low", "high", "delta", "delta_low", "delta_high",
              "median_ms", "p90_ms", "min_ms", "speedup_vs_original", "gpu_original_ratio", "peak_fraction", "round_spread", "reason"]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=fields, extrasaction="ignore")
    writer.writeheader()
    for r in results.rows:
        base = {k: r.get(k) for k in fields}
        base.update({k: (r.get("latency") or {}).get(k) for k in ("median_ms", "p90_ms", "min_ms", "round_spread")})
        for metric, est in (r.get("metrics") or {"": {}}).items():
            d = (r.get("delta") or {}).get(metric, {})
            writer.writerow({**base, "metric": metric, **{k: est.get(k) for k in ("value", "low", "high")},
                             "delta": d.get("value"), "delta_low": d.get("low"), "delta_high": d.get("high")})
    csv_path = out / "results.csv"
    tmp = atomic_path(csv_path)
    tmp.write_text(buf.getvalue())
    os.replace(tmp, csv_path)
    return json_path, csv_path


def config_dict(config: BenchConfig) -> dict:
    return asdict(config)
