"""``edgederm demo``: the main job on a default that works offline.

Real data is used when found (``--data``, ``$EDGEDERM_DATA`` or ``../shared/data``), otherwise
a small generated image set, and the output says which. The reference EfficientNet-Lite0
checkpoint is loaded from the cache when a recipe has trained it; otherwise a short
fine-tune from the offline ImageNet weights runs first (about 3 minutes on 2 cores). Then
the whole road: export to ONNX, TFLite fp32/fp16 and Core ML, quantize to int8 (TFLite and ONNX),
verify every artifact on test images, benchmark accuracy vs latency against the original and
the plain-ONNX peer path, and write the HTML report. ``run_demo`` returns what it found;
``print_demo`` shows it at the end (``edgederm demo --json`` prints it as JSON instead).
"""

from __future__ import annotations

import time
from pathlib import Path

from edgederm.progress import log


def run_demo(data: str | None = None, synthetic: bool = False, quick: bool = False) -> tuple[int, dict]:
    """The whole road; (exit status, what it found) for ``print_demo`` or ``--json``. The status is 1
    on a broken export or a float artifact that lost parity; an int8 miss is a finding, not a failure."""
    from edgederm.paths import home

    started = time.perf_counter()
    root, real = pick_data(data, synthetic)
    label, tag = ("real", "real") if real else ("SYNTHETIC", "synthetic")
    ckpt = demo_checkpoint(root, real, quick, tag)
    out = home() / "demo" / f"export_{tag}"
    evaluated = evaluate_step(ckpt, root, quick, label)
    outcome, exported = export_step(ckpt, root, quick, out, label)
    missed = quantize_step(out, root, quick)
    benched, report = bench_step(out, root, quick, label)
    payload = {"data": {"root": str(root), "real": real}, "evaluation": evaluated, "export": exported,
               "bench": benched, "checkpoint": str(ckpt), "folder": str(out), "report": str(report),
               "minutes": round((time.perf_counter() - started) / 60, 1), "int8_missed": missed}
    failed = outcome.failures or [r for r in outcome.verify if r.status == "fail"]
    return (1 if failed else 0), payload


def pick_data(data: str | None, synthetic: bool) -> tuple[Path, bool]:
    """(data root, whether it is the real derm data): real when found, else the generated set, said loudly."""
    from edgederm.data.synthetic import ensure_synthetic
    from edgederm.paths import find_data_root, home

    root = None if synthetic else find_data_root(data)
    if root is not None and (root / "derm7").is_dir():
        log(f"demo: using real dermoscopy data at {root} (derm7: HAM10000 images, split by lesion)")
        return root, True
    root = ensure_synthetic(home() / "synthetic")
    log(f"demo: no real data found; using a SYNTHETIC generated image set at {root} "
        "(coloured ellipses: the figures below say nothing about dermoscopy)")
    return root, False


def demo_checkpoint(root: Path, real: bool, quick: bool, tag: str) -> Path:
    """The cached reference checkpoint on real data, else a short fine-tune from the offline ImageNet weights."""
    from edgederm.paths import home
    from edgederm.train import TrainConfig, train

    reference = home() / "checkpoints" / "lite0_derm7.safetensors"
    if real and reference.exists() and not quick:
        log(f"demo: loading the reference checkpoint {reference}")
        return reference
    limit, epochs = (300, 1) if quick else ((1500, 2) if real else (None, 3))
    config = TrainConfig("efficientnet_lite0", "derm7", epochs=epochs, batch_size=32, lr=1e-3,
                         warmup_steps=20, pretrained="imagenet", train_limit=limit, freeze_blocks=2)
    log(f"demo: fine-tuning EfficientNet-Lite0 (offline ImageNet weights) on "
        f"{limit or 'all'} training images for {epochs} epoch(s)")
    return train(config, root, home() / "demo" / f"lite0_{tag}", n_boot=200 if quick else 1000)


def evaluate_step(ckpt: Path, root: Path, quick: bool, label: str) -> dict:
    from edgederm.evaluate import evaluate_checkpoint

    metrics, card, n = evaluate_checkpoint(ckpt, root, split="test", n_boot=200 if quick else 1000,
                                           limit=300 if quick else None)
    return {"title": f"EfficientNet-Lite0 on {n} {label} test images ({card.data.get('dataset')}, 95% bootstrap CI)",
            "rows": [{"metric": k, "value": f"{v.value:.4f}", "95% CI": f"[{v.low:.4f}, {v.high:.4f}]"}
                     for k, v in metrics.items() if not k.startswith("sensitivity_")]}


def export_step(ckpt: Path, root: Path, quick: bool, out: Path, label: str):
    """(export outcome, its table): ONNX, TFLite and Core ML (no TFLite when quick), verified."""
    from edgederm.export import export
    from edgederm.report import export_rows

    formats = ["onnx", "coreml"] if quick else ["onnx", "tflite", "coreml"]
    outcome = export(ckpt, out, formats=formats, data_root=root, n_verify=64 if quick else 128)
    return outcome, {"title": f"Export and verification on {label} test images:", "rows": export_rows(outcome)}


def quantize_step(out: Path, root: Path, quick: bool) -> list[str]:
    """int8, calibrated on training images through the model's own preprocessing, verified like the
    rest; the int8 artifacts that missed their gate."""
    from quantization import quantize

    q = quantize(out, ["int8"], ["onnx"] if quick else ["tflite", "onnx"], data_root=root, n_verify=64 if quick else 256)
    for f in q.failures:
        log(f"demo: int8 {f.get('scheme')} failed: {f.get('error')}")
    return [r.artifact for r in q.verify if r.status == "fail"]


def bench_step(out: Path, root: Path, quick: bool, label: str) -> tuple[dict, Path]:
    """(accuracy-vs-latency table at 2 threads, the HTML report)."""
    from edgederm.bench import BenchConfig, bench
    from edgederm.report import render, table_rows

    config = BenchConfig(images=32 if quick else 300, threads=(2,), runs=5 if quick else 30, warmup=2 if quick else 5,
                         n_boot=200 if quick else 1000, peers=not quick, peak=not quick, throughput_batch=0)
    results = bench(out, config, root, out=out / "bench")
    report = render(results, out / "report")
    return ({"title": f"Accuracy vs latency on {results.data['images']} {label} test images (this CPU, batch 1, "
                      "2 threads; Δ = artifact - original, paired bootstrap 95% CI):",
             "rows": table_rows(results, 2)}, report["report.html"])


def print_demo(payload: dict) -> None:
    """The demo's tables and where everything went, for people."""
    from edgederm.report import LEGEND
    from edgederm.table import print_table

    for key in ("evaluation", "export", "bench"):
        print(f"\n{payload[key]['title']}")
        print_table(payload[key]["rows"])
        if key == "export":
            print(LEGEND)
    print(f"\ncheckpoint: {payload['checkpoint']}\nartifacts and manifest: {payload['folder']}\n"
          f"report: {payload['report']}\ndemo finished in {payload['minutes']:.1f} min")
    if payload["int8_missed"]:
        out = payload["folder"]
        print(f"note: {', '.join(payload['int8_missed'])} missed the int8 gate here (❎ above); `edgederm diagnose "
              f"{out}` shows why and `edgederm quantize {out} --scheme int8 --max-drop 0.5` escalates until one fits")
