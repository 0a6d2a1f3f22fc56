"""Measured latency of a pruned checkpoint against its original: PyTorch eager, and exported
ONNX / TFLite fp32 artifacts, timed in alternating rounds."""

from __future__ import annotations

import tempfile
from dataclasses import replace
from pathlib import Path

from edgederm.errors import EdgeDermError
from edgederm.progress import log

BENCH_RUNTIMES = ("torch", "onnx", "tflite")


def deployable_twin(model, card):
    """``export.deployable`` with the card renamed to the twin's architecture (for the latency bench)."""
    from edgederm.models.deploy import deployable

    twin, note = deployable(model, card)
    if not note:
        return model, card
    from edgederm.models import MODELS

    return twin, replace(card, architecture=MODELS.get(card.architecture).deploy_variant)


def _eager_runs(loaded: list, input_size, threads: int) -> tuple[list, list]:
    """([original run, pruned run], [input, input]) for channels-last PyTorch eager inference."""
    import torch

    torch.set_num_threads(threads)

    def eager(m):
        m = m.eval().to(memory_format=torch.channels_last)

        def run(x):
            with torch.inference_mode():
                return m(x)
        return run
    x = torch.randn(1, 3, *input_size).contiguous(memory_format=torch.channels_last)
    return [eager(m) for m, _ in loaded], [x, x]


def _add_exported_runs(runs: dict, sizes: dict, inputs: dict, loaded: list, sources: tuple[Path, Path],
                       formats: list[str], threads: int, data_root, folder: Path) -> None:
    """Export original and pruned (fp32, unverified) below ``folder`` and open a runner on each
    artifact; fills ``runs``, ``sizes`` (artifact bytes) and ``inputs``, each format as [original, pruned]."""
    import numpy as np

    from device_bench.runners import open_runner
    from edgederm.export import export

    for fmt in formats:
        runs[fmt], sizes[fmt], inputs[fmt] = [], [], []
    for label, (m, c), src in zip(("original", "pruned"), loaded, sources):
        out = folder / label
        twin, twin_card = deployable_twin(m, c)
        log(f"prune bench: exporting the {label} model to {', '.join(formats)} (fp32) ...")
        outcome = export(src, out, formats=["onnx"] + (["tflite"] if "tflite" in formats else []),
                         tflite_precisions=("fp32",), verify=False, data_root=data_root, model=twin,
                         card=twin_card)
        if outcome.failures:
            raise EdgeDermError(f"export of the {label} model for latency failed: {outcome.failures[0]['error']}")
        files = {"onnx": out / "model.onnx", "tflite": out / "model_fp32.tflite"}
        for fmt in formats:
            runner = open_runner(files[fmt], fmt, threads=threads)
            runs[fmt].append(runner)
            sizes[fmt].append(files[fmt].stat().st_size)
            inputs[fmt].append(np.random.default_rng(0).standard_normal(runner.input_shape).astype(np.float32))


def _measure(runs: dict, inputs: dict, sizes: dict, rounds: int, runs_per_round: int) -> dict[str, dict]:
    from device_bench.timing import measure_interleaved

    results = {}
    for rt, (fa, fb) in runs.items():
        (xa, xb) = inputs[rt]
        lat = measure_interleaved({"before": lambda: fa(xa), "after": lambda: fb(xb)}, warmup=3,
                                  runs=rounds * runs_per_round, rounds=rounds, max_seconds=10 * rounds)
        results[rt] = {"before_ms": lat["before"]["median_ms"], "after_ms": lat["after"]["median_ms"],
                       "artifact_bytes": sizes.get(rt)}
    return results


def compare_latency(original: Path, pruned: Path, runtimes=BENCH_RUNTIMES, threads: int = 2, rounds: int = 3,
                    runs: int = 10, data_root=None, workdir: Path | None = None) -> dict[str, dict]:
    """runtime -> {"before_ms", "after_ms", "artifact_bytes"}: batch-1 medians, original and pruned
    measured in alternating rounds so that load from other jobs hits both alike."""
    from edgederm.checkpoint import load_checkpoint

    unknown = [r for r in runtimes if r not in BENCH_RUNTIMES]
    if unknown:
        raise EdgeDermError(f"--bench {unknown[0]!r}: choose from {', '.join(BENCH_RUNTIMES)} or none")
    loaded = [load_checkpoint(p) for p in (original, pruned)]
    fns: dict[str, list] = {}
    sizes: dict[str, list] = {}
    inputs: dict[str, list] = {}
    if "torch" in runtimes:
        fns["torch"], inputs["torch"] = _eager_runs(loaded, loaded[0][1].preprocessing.input_size, threads)
    formats = [f for f in ("onnx", "tflite") if f in runtimes]
    tmp = tempfile.TemporaryDirectory(dir=workdir, prefix="edgederm-prune-bench-") if formats else None
    try:
        if tmp is not None:
            _add_exported_runs(fns, sizes, inputs, loaded, (original, pruned), formats, threads, data_root,
                               Path(tmp.name))
        return _measure(fns, inputs, sizes, rounds, runs)
    finally:
        fns.clear()  # runners hold files in the temporary folder: close them before it goes
        if tmp is not None:
            tmp.cleanup()


def speedup_text(before_ms: float, after_ms: float) -> str:
    ratio = before_ms / after_ms if after_ms > 0 else float("inf")
    return f"{ratio:.2f}x faster" if ratio > 1.02 else f"not faster ({ratio:.2f}x)"
