"""``edgederm demo``: the main job on a default that works offline.

Real data is used when found (``--data``, ``$EDGEDERM_DATA`` or ``../shared/data``), otherwise
a small generated image set, and the output says which. The reference EfficientNet-Lite0
checkpoint is loaded from the cache when a recipe has trained it; otherwise a short
fine-tune from the offline ImageNet weights runs first (about 3 minutes on 2 cores). Then
the whole road: export to ONNX, TFLite fp32/fp16 and Core ML, verify every artifact on test
images, time each on this CPU, and print one table.
"""

from __future__ import annotations

import time

from edgederm.progress import log


def run_demo(data: str | None = None, synthetic: bool = False, quick: bool = False) -> int:
    from edgederm.data.synthetic import ensure_synthetic
    from edgederm.evaluate import evaluate_checkpoint
    from edgederm.paths import find_data_root, home
    from edgederm.table import print_table
    from edgederm.train import TrainConfig, train

    started = time.perf_counter()
    root = None if synthetic else find_data_root(data)
    real = root is not None and (root / "derm7").is_dir()
    if real:
        log(f"demo: using real dermoscopy data at {root} (derm7: HAM10000 images, split by lesion)")
    else:
        root = ensure_synthetic(home() / "synthetic")
        log(f"demo: no real data found; using a SYNTHETIC generated image set at {root} "
            "(coloured ellipses: the figures below say nothing about dermoscopy)")
    reference = home() / "checkpoints" / "lite0_derm7.safetensors"
    tag = "real" if real else "synthetic"
    if real and reference.exists() and not quick:
        log(f"demo: loading the reference checkpoint {reference}")
        ckpt = reference
    else:
        limit, epochs = (300, 1) if quick else ((1500, 2) if real else (None, 3))
        config = TrainConfig("efficientnet_lite0", "derm7", epochs=epochs, batch_size=32, lr=1e-3,
                             warmup_steps=20, pretrained="imagenet", train_limit=limit)
        log(f"demo: fine-tuning EfficientNet-Lite0 (offline ImageNet weights) on "
            f"{limit or 'all'} training images for {epochs} epoch(s)")
        ckpt = train(config, root, home() / "demo" / f"lite0_{tag}", n_boot=200 if quick else 1000)
    n_boot = 200 if quick else 1000
    metrics, card, n = evaluate_checkpoint(ckpt, root, split="test", n_boot=n_boot, limit=300 if quick else None)
    label = "real" if real else "SYNTHETIC"
    print(f"\nEfficientNet-Lite0 on {n} {label} test images ({card.data.get('dataset')}, 95% bootstrap CI)")
    print_table([{"metric": k, "value": f"{v.value:.4f}", "95% CI": f"[{v.low:.4f}, {v.high:.4f}]"}
                 for k, v in metrics.items() if not k.startswith("sensitivity_")])

    formats = ["onnx", "coreml"] if quick else ["onnx", "tflite", "coreml"]
    out = home() / "demo" / f"export_{tag}"
    from edgederm.export import export

    outcome = export(ckpt, out, formats=formats, data_root=root, n_verify=64 if quick else 128)
    rows = demo_rows(outcome, card)
    print(f"\nExport and verification on {label} test images (this CPU, batch 1, 2 threads):")
    columns = list(dict.fromkeys(k for r in rows[1:] for k in r if k not in ("ms/img", "note")))
    print_table(rows, columns + ["ms/img", "note"])
    from edgederm.report import LEGEND

    print(LEGEND)
    print(f"\ncheckpoint: {ckpt}\nartifacts and manifest: {out}\n"
          f"demo finished in {(time.perf_counter() - started) / 60:.1f} min")
    failed = outcome.failures or [r for r in outcome.verify if r.status == "fail"]
    return 1 if failed else 0


def demo_rows(outcome, card) -> list[dict]:
    """The export table plus the PyTorch original's row and ms per image for each runnable artifact."""
    import numpy as np
    import torch

    from device_bench.runners import RunnerUnavailable, open_runner
    from device_bench.timing import measure
    from edgederm.checkpoint import load_checkpoint
    from edgederm.report import export_rows
    from edgederm.verify import artifact_input

    manifest = outcome.manifest
    h, w = manifest.preprocessing.input_size
    pixels = np.random.default_rng(0).integers(0, 256, (1, h, w, 3), dtype=np.uint8)
    torch.set_num_threads(2)
    model, _ = load_checkpoint(manifest.model["checkpoint"])
    x = torch.from_numpy(manifest.preprocessing.normalize(pixels))
    with torch.inference_mode():
        torch_ms = measure(model, x, warmup=3, runs=20)["median_ms"]
    figures = next((r.figures for r in outcome.verify if "images" in r.figures), {})
    original = {"bal-acc": f"{figures['balanced_accuracy_original']:.4f}"} if "balanced_accuracy_original" in figures \
        else {"Dice vs truth": f"{figures['dice_original']:.4f}"} if "dice_original" in figures else {}
    rows = [{"artifact": "pytorch (original)", "format": "torch", "precision": "fp32", "size MB": "-",
             "status": "✅", **original, "ms/img": f"{torch_ms:.2f}", "note": ""}]
    for row, artifact in zip(export_rows(outcome), manifest.artifacts):
        try:
            runner = open_runner(outcome.folder / artifact.path, artifact.format, threads=2)
            row["ms/img"] = f"{measure(runner, artifact_input(artifact, pixels, manifest), runs=20)['median_ms']:.2f}"
        except RunnerUnavailable:
            row["ms/img"] = "-"
        rows.append(row)
    rows += export_rows(outcome)[len(manifest.artifacts):]  # failed exports
    return rows
