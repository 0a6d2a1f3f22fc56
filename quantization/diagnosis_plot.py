"""The diagnosis as a picture: the worst layers' own SQNR as bars, the accumulated SQNR as dots."""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np

from edgederm.paths import atomic_path
from quantization.diagnosis import Diagnosis


def plot(diag: Diagnosis, path: str | os.PathLike, top: int = 30) -> Path:
    """Bar chart of the worst layers' own SQNR, with the accumulated SQNR as dots (headless, written atomically)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    layers = diag.layers[:top][::-1]
    fig, ax = plt.subplots(figsize=(9, 0.28 * len(layers) + 1.4))
    ys = np.arange(len(layers))
    ax.barh(ys, [e.own_sqnr_db if math.isfinite(e.own_sqnr_db) else np.nan for e in layers], color="#c0504d",
            label="own SQNR (this op alone)" if diag.format == "tflite" else "own SQNR (this quantizer alone)")
    accumulated = [(e.sqnr_db, y) for e, y in zip(layers, ys) if math.isfinite(e.sqnr_db)]
    if accumulated:  # the TFLite route measures each op's own error only
        ax.scatter(*zip(*accumulated), color="#1f497d", zorder=3, s=14, label="model SQNR (accumulated)")
    ax.set_yticks(ys, [f"{'…' + e.layer[-38:] if len(e.layer) > 39 else e.layer} ({e.op_type})" for e in layers],
                  fontsize=7)
    ax.set_xlabel("SQNR, dB (higher is better)")
    ax.set_title(f"{diag.model}: {diag.format} int8, worst {len(layers)} layers on {diag.stat_images} calibration images",
                 fontsize=9)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    path = Path(path)
    tmp = atomic_path(path)
    fig.savefig(tmp, dpi=120, format=path.suffix.lstrip(".") or "png")
    plt.close(fig)
    os.replace(tmp, path)
    return path
