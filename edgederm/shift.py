"""Site shift: metrics per acquisition source with CIs, and reliability (calibration) plots.

``scores_by`` scores one set of outputs as a whole and per group (``--by source``), with the
same metrics and bootstrap as ``edgederm.metrics``; ``plot_reliability`` draws the top-1
reliability diagram (bins as in ``device_bench.metrics.reliability_bins``, whose ECE it shows).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from edgederm.errors import EdgeDermError
from edgederm.metrics import Estimate, format_metrics
from edgederm.tasks import task_of

ALL = "all"


def scores_by(outputs: np.ndarray, targets: np.ndarray, ds, classes, by: str | None, n_boot: int = 1000,
              temperature: float = 1.0, rules: list[dict] | None = None) -> dict[str, dict]:
    """{group: {"images": n, "metrics": {name: Estimate}}}, ``all`` first; groups from ``ds`` samples."""
    from edgederm.data.sources import group_indices
    from edgederm.evaluate import score_outputs

    groups = {ALL: list(range(len(targets)))}
    if by:
        groups.update(group_indices(ds, by))
    out = {}
    for name, idx in groups.items():
        idx = np.asarray(idx)
        o = outputs[idx] / temperature if classes is not None else outputs[idx]
        m = score_outputs(o, targets[idx], classes, n_boot=n_boot)
        if classes is not None and rules:
            from device_bench.decision import decision_metrics, softmax

            m.update({k: Estimate(**v) for k, v in decision_metrics(
                targets[idx], softmax(outputs[idx], temperature), list(classes), rules, n_boot=n_boot).items()})
        out[name] = {"images": int(len(idx)), "metrics": m}
    return out


def by_table(scored: dict[str, dict], keys: tuple[str, ...]) -> list[dict]:
    """Rows for ``print_table``: one per group, a column per metric ``value [low, high]``."""
    rows = []
    for name, g in scored.items():
        row = {"group": name, "images": g["images"]}
        for k in keys:
            e = g["metrics"].get(k)
            row[k] = "-" if e is None or np.isnan(e.value) else (
                f"{e.value:.3f}" if np.isnan(e.low) else f"{e.value:.3f} [{e.low:.3f}, {e.high:.3f}]")
        rows.append(row)
    return rows


def to_json(scored: dict[str, dict]) -> dict:
    """JSON-safe (NaN becomes null)."""
    def clean(v):
        return None if isinstance(v, float) and np.isnan(v) else v
    return {name: {"images": g["images"], "metrics": {k: {kk: clean(vv) for kk, vv in e.to_dict().items()}
                                                      for k, e in g["metrics"].items()}}
            for name, g in scored.items()}


def plot_reliability(curves: dict[str, tuple[np.ndarray, np.ndarray]], path, title: str = "") -> Path:
    """One reliability diagram, a line per named (labels, probabilities), ECE in the legend; written atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from device_bench.metrics import expected_calibration_error, reliability_bins
    from edgederm.paths import atomic_path

    fig, ax = plt.subplots(figsize=(5, 5))
    ax.plot([0, 1], [0, 1], color="grey", lw=1, ls="--", label="perfectly calibrated")
    for name, (y, prob) in curves.items():
        b = reliability_bins(y, prob)
        pts = [(c, a) for c, a in zip(b["confidence"], b["accuracy"]) if c is not None]
        if pts:
            xs, ys = zip(*pts)
            ax.plot(xs, ys, marker="o", ms=3, label=f"{name} (ECE {expected_calibration_error(y, prob):.3f}, n={len(y)})")
    ax.set_xlabel("top-1 confidence")
    ax.set_ylabel("accuracy")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_title(title or "reliability (15 equal-width bins)")
    ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    path = Path(path)
    tmp = atomic_path(path)
    fig.savefig(tmp, format=path.suffix.lstrip(".") or "png")
    plt.close(fig)
    os.replace(tmp, path)
    return path


def eval_command(args, data_root) -> int:
    """``edgederm eval CK --by source`` / ``--reliability PNG``: overall and per-group metrics with CIs."""
    from edgederm.evaluate import checkpoint_outputs
    from edgederm.table import print_table
    from edgederm.tensors import softmax

    if args.reliability and Path(args.reliability).suffix.lower() not in (".png", ".svg", ".pdf"):
        raise EdgeDermError(f"--reliability {args.reliability}: give a .png, .svg or .pdf path")
    outputs, targets, ds, card = checkpoint_outputs(args.checkpoint, data_root, args.split, args.dataset,
                                                    args.limit, args.arch)
    classes = task_of(card.task).scoring_classes(card.classes)
    if args.reliability and classes is None:
        raise EdgeDermError("--reliability needs a classifier: segmentation has no class confidence")
    scored = scores_by(outputs, targets, ds, classes, args.by, n_boot=args.bootstrap)
    if args.reliability:
        from edgederm.data.sources import group_indices

        curves = {ALL: (targets, softmax(outputs))}
        for g, idx in (group_indices(ds, args.by).items() if args.by else []):
            curves[g] = (targets[idx], softmax(outputs[idx]))
        plot_reliability(curves, args.reliability, f"{card.architecture} on {args.split}")
    if args.json:
        from device_bench.integrity import dumps

        print(dumps({"checkpoint": str(args.checkpoint), "architecture": card.architecture,
                     "split": args.split, "by": args.by, "images": len(targets), "groups": to_json(scored)}))
        return 0
    print(f"{card.architecture} on {len(targets)} {args.split} images (95% bootstrap CI, {args.bootstrap} resamples)")
    print(format_metrics(scored[ALL]["metrics"]))
    if args.by:
        keys = ("balanced_accuracy", "macro_auroc", "mel_sensitivity_at_spec80", "sensitivity_mel", "ece") \
            if classes is not None else ("dice", "jaccard", "thresholded_jaccard")
        print(f"\nby {args.by}:")
        print_table(by_table(scored, keys))
    if args.reliability:
        print(f"\nreliability plot: {args.reliability}")
    return 0
