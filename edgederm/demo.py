"""``edgederm demo``: the main job on a default that works offline.

Real data is used when found (``--data``, ``$EDGEDERM_DATA`` or ``../shared/data``), otherwise
a small generated image set, and the output says which. The reference checkpoint is
loaded from the cache when a recipe has trained it; otherwise a short EfficientNet-Lite0
fine-tune from the offline ImageNet weights runs first (about 3 minutes on 2 cores).
"""

from __future__ import annotations

import time
from pathlib import Path

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
    if real and reference.exists() and not quick:
        log(f"demo: loading the reference checkpoint {reference}")
        ckpt = reference
    else:
        limit, epochs = (300, 1) if quick else ((1500, 2) if real else (None, 3))
        config = TrainConfig("efficientnet_lite0", "derm7", epochs=epochs, batch_size=32, lr=1e-3,
                             warmup_steps=20, pretrained="imagenet", train_limit=limit)
        log(f"demo: fine-tuning EfficientNet-Lite0 (offline ImageNet weights) on "
            f"{limit or 'all'} training images for {epochs} epoch(s)")
        tag = "real" if real else "synthetic"
        ckpt = train(config, root, home() / "demo" / f"lite0_{tag}", n_boot=200 if quick else 1000)
    metrics, card, n = evaluate_checkpoint(ckpt, root, split="test", n_boot=200 if quick else 1000,
                                           limit=300 if quick else None)
    print(f"\nEfficientNet-Lite0 on {n} {'real' if real else 'SYNTHETIC'} test images "
          f"({card.data.get('dataset')}, 95% bootstrap CI)")
    print_table([{"metric": k, "value": f"{v.value:.4f}", "95% CI": f"[{v.low:.4f}, {v.high:.4f}]"}
                 for k, v in metrics.items()])
    print(f"\ncheckpoint: {ckpt}\nmodel card: {Path(ckpt).with_suffix('.json')}\n"
          f"demo finished in {(time.perf_counter() - started) / 60:.1f} min")
    return 0
