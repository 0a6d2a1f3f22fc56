"""``edgederm bench``: accuracy versus latency for every artifact of an export folder and its original.

For each artifact, the PyTorch original (CPU, and CUDA when present) and the *peer path* a
user would otherwise take (plain ``torch.onnx.export`` run by ONNX Runtime, fp32 and ONNX
Runtime's own default int8), on the real test split:

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

import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from edgederm.errors import EdgeDermError
from edgederm.manifest import Artifact, Manifest
from edgederm.progress import log

HEADLINE = {"classification": "balanced_accuracy", "segmentation": "dice"}
KEPT_METRICS = {"classification": ("balanced_accuracy", "macro_auroc", "mel_sensitivity_at_spec80", "accuracy"),
                "segmentation": ("dice", "jaccard", "thresholded_jaccard")}


@dataclass
class BenchConfig:
    images: int | None = None  # None: the whole test split
    threads: tuple[int, ...] = (1, 2)
    throughput_batch: int = 8
    warmup: int = 10
    runs: int = 50
    max_seconds: float = 15.0
    n_boot: int = 1000
    peers: bool = True
    only: tuple[str, ...] = ()  # artifact names; empty = all
    gpu: str = "auto"  # auto: CUDA rows when a GPU is present | off | only (GPU rows alone)
    peak: bool = True  # measure this CPU's peak MAC rate for the physical-limit column
    seed: int = 0


@dataclass
class Candidate:
    """Something to measure: a callable on a batch in its own input form, plus how to describe it."""

    row: dict
    open: Callable[[int], Callable]  # threads -> fn(x)
    make_input: Callable[[np.ndarray], np.ndarray]  # uint8 NHWC -> the callable's input
    to_reference: Callable[[np.ndarray], np.ndarray] = lambda y: y  # output -> original's layout
    outputs_prob: bool = False
    static_batch: bool = True
    cleanup: Callable[[], None] | None = None


# --- scoring -------------------------------------------------------------------------------
def scorer(task: str, targets: np.ndarray, classes: list[str]):
    """Per-task scoring: outputs -> per-image statistics -> metric functions on index sets.

    The numpy metrics of ``device_bench`` (equal to the scikit-learn ones, tested): devices score
    with the same code, and a bootstrap of 1,000 resamples per metric per artifact needs their speed
    (scikit-learn's input validation made one AUROC bootstrap take tens of seconds).
    """
    from device_bench import metrics as M
    from edgederm.tensors import softmax

    if task == "classification":
        mel = classes.index("mel") if "mel" in classes else None

        def per_image(out, is_prob):
            return out if is_prob else softmax(out.astype(np.float64))

        def functions(prob):
            pred = prob.argmax(1)
            fns = {"balanced_accuracy": lambda i: M.balanced_accuracy(targets[i], pred[i]),
                   "macro_auroc": lambda i: M.macro_auroc(targets[i], prob[i]),
                   "accuracy": lambda i: float(np.mean(pred[i] == targets[i]))}
            if mel is not None:
                fns["mel_sensitivity_at_spec80"] = lambda i: M.sensitivity_at_specificity(targets[i] == mel, prob[i][:, mel])
            return fns
        return per_image, functions

    def per_image(out, is_prob):
        masks = (out[:, 0] > (0.5 if is_prob else 0.0))
        dice, jac = M.per_image_overlap(masks, targets)
        return np.stack([dice, jac], 1)

    def functions(stats):
        dice, jac = stats[:, 0], stats[:, 1]
        thr = np.where(jac < M.THRESHOLDED_JACCARD_CUTOFF, 0.0, jac)
        return {"dice": lambda i: float(dice[i].mean()), "jaccard": lambda i: float(jac[i].mean()),
                "thresholded_jaccard": lambda i: float(thr[i].mean())}
    return per_image, functions


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

    def open_(threads):
        if device == "cpu":
            torch.set_num_threads(threads)
        m = model.to(dev).eval()
        if device == "cpu":
            m = m.to(memory_format=torch.channels_last)
        if precision == "fp16":
            m = m.half()
        if compiled:
            m = torch.compile(m)
        sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)

        def run(x):
            with torch.inference_mode():
                t = torch.from_numpy(x).to(dev)
                t = t.half() if precision == "fp16" else t
                y = m(t.contiguous(memory_format=torch.channels_last)).float()
                sync()
                return y.cpu().numpy()
        return run

    name = f"pytorch_{device.split(':')[0]}_{precision}" + ("_compiled" if compiled else "")
    runtime = f"torch {torch.__version__}" + (" (torch.compile)" if compiled else "")
    provider = torch.cuda.get_device_name(dev) if dev.type == "cuda" else "eager CPU"
    row = {"artifact": name, "format": "torch", "precision": precision, "role": "original", "runtime": runtime,
           "provider": provider, "size_bytes": stats.get("checkpoint_bytes"), "params": stats.get("params"),
           "macs": stats.get("macs"), "status": "ok"}
    return Candidate(row, open_, lambda u8: prep.normalize(u8), static_batch=False)


def artifact_candidate(artifact: Artifact, folder: Path, manifest: Manifest, stats: dict,
                       provider: str | None = None) -> Candidate:
    from device_bench.runners import open_runner
    from edgederm.verify import artifact_input, to_reference_layout

    path = folder / artifact.path
    options = {"providers": [provider]} if provider else {}

    def open_(threads):
        return open_runner(path, artifact.format, threads=threads, **options)

    row = {"artifact": artifact.name, "format": artifact.format, "precision": artifact.precision, "role": "artifact",
           "path": artifact.path, "sha256": artifact.sha256, "size_bytes": artifact.size_bytes,
           "params": stats.get("params"), "macs": stats.get("macs"), "status": "ok",
           "verify": (artifact.verify or {}).get("status")}
    return Candidate(row, open_, lambda u8: artifact_input(artifact, u8, manifest),
                     lambda y: to_reference_layout(artifact, y, manifest.task),
                     outputs_prob=artifact.format == "coreml" and manifest.task == "classification",
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
        cands.append(_failed_peer("peer_onnx_fp32", "fp32", f"torch.onnx.export failed: {str(e).splitlines()[0]}"))
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
        cands.append(_failed_peer("peer_onnx_int8", "int8", f"onnxruntime quantize_static failed: {str(e).splitlines()[0]}"))
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


def _failed_peer(name, precision, reason) -> Candidate:
    row = {"artifact": name, "format": "onnx", "precision": precision, "role": "peer", "status": "failed", "reason": reason}
    return Candidate(row, None, None)


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


def measure_candidate(cand: Candidate, images: np.ndarray, config: BenchConfig, score, ref_fns, n: int,
                      per_image_fn) -> tuple[list[dict], dict | None]:
    """Accuracy once (at the largest thread count), then latency per thread count; one row per count.
    Also returns the candidate's metric functions (the original's serve the paired deltas)."""
    from device_bench.runners import RunnerUnavailable, run_batched
    from device_bench.timing import measure

    if cand.open is None:
        return [cand.row], None
    rows = []
    try:
        before = rss_mb()
        fn = cand.open(max(config.threads))
        x = cand.make_input(images)
        out = cand.to_reference(run_batched(fn, x, 1 if cand.static_batch else 32).astype(np.float32))
        stats = per_image_fn(out, cand.outputs_prob)
        fns = score(stats)
        metrics = metrics_with_ci(fns, n, config.n_boot, config.seed)
        deltas = paired_deltas(fns, ref_fns, n, config.n_boot, config.seed) if ref_fns else {}
        added_mb = rss_mb() - before
    except RunnerUnavailable as e:
        return [{**cand.row, "status": "skipped", "reason": str(e)}], None
    except Exception as e:  # a runtime that crashes on an artifact is a result to show, not a crash
        return [{**cand.row, "status": "failed", "reason": f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"}], None
    for threads in config.threads:
        fn = cand.open(threads)
        one = x[:1]
        lat = measure(fn, one, warmup=config.warmup, runs=config.runs, max_seconds=config.max_seconds)
        row = {**cand.row, "threads": threads, "batch": 1, "metrics": metrics, "delta": deltas, "latency": lat,
               "rss_added_mb": round(added_mb, 1), "images": n}
        runtime = getattr(fn, "runtime", None)
        if runtime:
            row["runtime"] = runtime
            row["provider"] = getattr(fn, "delegate", row.get("provider"))
        b = config.throughput_batch
        if b > 1 and len(x) >= b and (not cand.static_batch or cand.row["format"] == "tflite"):
            try:
                t = measure(fn, x[:b], warmup=2, runs=10, max_seconds=config.max_seconds)
                row["throughput"] = {"batch": b, "images_per_s": round(1e3 * b / t["median_ms"], 2)}
            except Exception:  # a file whose batch dimension is fixed: no throughput row
                pass
        rows.append(row)
    if cand.cleanup:
        cand.cleanup()
    return rows, fns


def load_original(manifest: Manifest, checkpoint: str | None = None, meta=None, weights=None):
    from edgederm.byom import is_foreign, load_foreign
    from edgederm.checkpoint import load_checkpoint

    source = checkpoint or manifest.model.get("checkpoint")
    if not source or not (is_foreign(source) or Path(source).exists()):
        raise EdgeDermError(f"the original model {source!r} named in the manifest is not here: "
                            "pass --checkpoint with the PyTorch original")
    return load_foreign(source, meta, weights)[0] if is_foreign(source) else load_checkpoint(source)[0], source


def bench(folder: str | os.PathLike, config: BenchConfig | None = None, data_root=None, checkpoint: str | None = None,
          out: str | os.PathLike | None = None, meta=None, weights=None):
    """Measure every artifact in ``folder`` and the original; returns ``device_bench.results.Results``."""
    import tempfile

    from device_bench.results import Results, ids_sha256
    from edgederm.environment import environment_facts
    from edgederm.models import model_stats
    from edgederm.verify import verification_arrays

    config = config or BenchConfig()
    folder = Path(folder)
    manifest = Manifest.load(folder)
    folder = folder if folder.is_dir() else folder.parent
    model, source = load_original(manifest, checkpoint, meta, weights)
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
    per_image, score = scorer(manifest.task, targets, manifest.classes)

    import torch

    cands = []
    if config.gpu != "only":
        cands.append(torch_candidate(model, manifest, stats))
    gpu = gpu_candidates(model, manifest, stats, folder, config)
    if config.gpu == "only" and not gpu:
        raise EdgeDermError("--gpu only: no CUDA device (torch) and no CUDA/TensorRT provider (onnxruntime) here; "
                            "run it on the GPU machine or use --gpu auto")
    cands += gpu
    if config.gpu != "only":
        for a in manifest.artifacts:
            if not config.only or a.name in config.only:
                cands.append(artifact_candidate(a, folder, manifest, stats))
    tmp = tempfile.TemporaryDirectory(prefix="edgederm-peer-")
    if config.peers and config.gpu != "only":
        cands += peer_candidates(model, manifest, stats, Path(tmp.name), peer_calibration(manifest, data_root))
    ref_fns = None
    for i, cand in enumerate(cands):
        log(f"bench: [{i + 1}/{len(cands)}] {cand.row['artifact']}")
        rows, fns = measure_candidate(cand, images, config, score, ref_fns, n, per_image)
        for row in rows:
            row["device"] = env_key
            results.add(row)
        if i == 0 and fns is not None:  # the first candidate is the original: deltas are against it
            ref_fns = fns
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
    for runtime, what, compiled in gpu_targets(torch.cuda.is_available(), providers, config.gpu):
        if runtime == "torch":
            cands.append(torch_candidate(model, manifest, stats, "cuda", what, compiled))
        elif onnx_art is not None:
            cand = artifact_candidate(onnx_art, folder, manifest, stats, provider=what)
            cand.row["artifact"] = f"{onnx_art.name}_{what.replace('ExecutionProvider', '').lower()}"
            cands.append(cand)
    return cands


def add_speedups(results) -> None:
    """speedup = original's median ms at the same thread count / this row's median ms (same machine)."""
    base = {r["threads"]: r["latency"]["median_ms"] for r in results.rows
            if r.get("role") == "original" and r["format"] == "torch" and r.get("provider") == "eager CPU"
            and r["status"] == "ok"}
    for r in results.rows:
        if r["status"] == "ok" and r.get("threads") in base:
            r["speedup_vs_original"] = round(base[r["threads"]] / r["latency"]["median_ms"], 3)
        peak = results.environments.get(r.get("device", ""), {}).get("peak_gmacs", {})
        if r["status"] == "ok" and r.get("macs") and str(r.get("threads")) in peak:
            p = peak[str(r["threads"])]
            integer = r["precision"].startswith(("int8", "w8a8"))  # int8 arithmetic: compare with the int8 GEMM
            rate = p["int8"] if integer and p.get("int8") else p["fp32"]
            r["peak_fraction"] = round(r["macs"] / (r["latency"]["median_ms"] * 1e-3) / (rate * 1e9), 4)


# --- output --------------------------------------------------------------------------------
STATUS = {"pass": "✅", "fail": "❎", "skipped": "➖", None: "✅"}


def table_rows(results, threads: int | None = None) -> list[dict]:
    task = results.model.get("task", "classification")
    key = HEADLINE[task]
    rows = []
    for r in results.rows:
        if threads is not None and r.get("threads") not in (threads, None):
            continue
        status = ("❌" if r["status"] == "failed" else "➖" if r["status"] == "skipped"
                  else "peer" if r.get("role") == "peer" else STATUS.get(r.get("verify"), "✅"))
        row = {"artifact": r["artifact"], "format": r["format"], "precision": r["precision"], "status": status,
               "size MB": f"{r['size_bytes'] / 1e6:.2f}" if r.get("size_bytes") else "-"}
        m, d, lat = r.get("metrics", {}).get(key), r.get("delta", {}).get(key), r.get("latency")
        row[key.replace("_", "-")] = f"{m['value']:.4f} ±{(m['high'] - m['low']) / 2:.3f}" if m and m.get("low") is not None else "-"
        row["Δ pt [95% CI]"] = (f"{100 * d['value']:+.2f} [{100 * d['low']:+.2f}, {100 * d['high']:+.2f}]"
                                if d and d.get("low") is not None else "-")
        row["threads"] = r.get("threads", "-")
        row["ms median"] = f"{lat['median_ms']:.2f}" if lat else "-"
        row["ms p90"] = f"{lat['p90_ms']:.2f}" if lat else "-"
        row["speed-up"] = f"{r['speedup_vs_original']:.2f}×" if r.get("speedup_vs_original") else "-"
        row["% peak"] = f"{100 * r['peak_fraction']:.1f}" if r.get("peak_fraction") else "-"
        row["note"] = (r.get("reason") or "")[:60]
        rows.append(row)
    return rows


def write_results(results, out: Path) -> tuple[Path, Path]:
    import csv
    import io

    from edgederm.paths import atomic_path

    out.mkdir(parents=True, exist_ok=True)
    json_path = results.save(out / "results.json")
    fields = ["device", "artifact", "role", "format", "precision", "runtime", "provider", "threads", "batch", "status",
              "size_bytes", "params", "macs", "metric", "value", "low", "high", "delta", "delta_low", "delta_high",
              "median_ms", "p90_ms", "min_ms", "speedup_vs_original", "peak_fraction", "reason"]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=fields, extrasaction="ignore")
    writer.writeheader()
    for r in results.rows:
        base = {k: r.get(k) for k in fields}
        base.update({k: (r.get("latency") or {}).get(k) for k in ("median_ms", "p90_ms", "min_ms")})
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
