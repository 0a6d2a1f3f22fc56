"""The accuracy pass of ``edgederm bench``: each candidate on every test image once, scored with the
task's metrics, bootstrap 95 % CIs, and the paired difference to the original (the same resampled
images for both, so the CI is of the drop itself)."""

from __future__ import annotations

import os
from dataclasses import dataclass, replace

import numpy as np

from device_bench.runners import RunnerUnavailable, run_batched
from edgederm.candidates import Candidate
from edgederm.metrics import with_ci
from edgederm.progress import log
from edgederm.tasks import task_of


def scorer(task: str, targets: np.ndarray, classes: list[str], output: dict | None = None):
    """Per-task scoring: outputs -> per-image statistics -> metric functions on index sets (the task's own)."""
    return task_of(task).scorer(targets, classes, output)


def metrics_with_ci(fns: dict, n: int, n_boot: int, seed: int) -> dict:
    return {k: with_ci(f, n, n_boot, seed).to_dict() for k, f in fns.items()}


def paired_deltas(fns: dict, ref_fns: dict, n: int, n_boot: int, seed: int) -> dict:
    """artifact - original on the same bootstrap resamples: a CI of the drop, not of two metrics."""
    return {k: with_ci(lambda i, f=f, g=ref_fns[k]: f(i) - g(i), n, n_boot, seed).to_dict()
            for k, f in fns.items() if k in ref_fns}


def rss_mb() -> float:
    import psutil

    return psutil.Process().memory_info().rss / 2**20


def failure_reason(e: Exception) -> str:
    """An exception as a row's one-line reason."""
    return f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"


@dataclass
class Scored:
    """A candidate after its accuracy pass: its rows' shared fields and the inputs kept for timing."""

    cand: Candidate
    fields: dict
    one: np.ndarray  # batch 1 in the candidate's input form
    many: np.ndarray  # the throughput batch (or fewer images)
    fns: dict


def score_candidate(cand: Candidate, images: np.ndarray, config, score, ref_fns, n: int,
                    per_image_fn) -> Scored | dict:
    """Run the candidate on every test image once (at ``config``'s largest thread count) and score it.
    Returns the ``Scored`` candidate, or the finished row of one that was skipped or failed."""
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
        return {**cand.row, "status": "failed", "reason": failure_reason(e)}
    b = max(1, config.throughput_batch)
    return Scored(cand, fields, np.ascontiguousarray(x[:1]), np.ascontiguousarray(x[:b]), fns)


def score_all(cands: list[Candidate], original: Candidate, images: np.ndarray, config, score,
              per_image_fn) -> tuple[list[Scored], list[dict]]:
    """The accuracy pass over every candidate: (scored ones, finished rows of the skipped and failed).
    Deltas are against the first candidate, the CPU original; with ``config.gpu == "only"`` it is not
    in ``cands``, so ``original`` is scored first for the reference alone."""
    n = len(images)
    ref_fns = None
    if config.gpu == "only":  # the GPU rows' deltas are still against the CPU original (accuracy only)
        log("bench: the CPU original, for the reference accuracy")
        ref = score_candidate(original, images, replace(config, threads=(os.cpu_count() or 1,)), score, None, n,
                              per_image_fn)
        ref_fns = ref.fns if isinstance(ref, Scored) else None
    scored, unmeasured = [], []
    for i, cand in enumerate(cands):
        if cand.open is not None:
            log(f"bench: [{i + 1}/{len(cands)}] {cand.row['artifact']}: accuracy on {n} images")
        s = score_candidate(cand, images, config, score, ref_fns, n, per_image_fn)
        if isinstance(s, dict):
            unmeasured.append(s)
            continue
        scored.append(s)
        if i == 0 and ref_fns is None:  # the first candidate is the original: deltas are against it
            ref_fns = s.fns
    return scored, unmeasured
