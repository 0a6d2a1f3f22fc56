"""Which layers to keep in float: candidates from the per-layer table, each measured alone, then
the greedy combination of those that helped. A ranking is a hypothesis; the measured gain decides."""

from __future__ import annotations

from typing import Callable

from edgederm.progress import log, progress
from quantization.diagnosis import Diagnosis, Fallback, LayerError, improves

# try_nodes(nodes, label="") -> Fallback: the int8 model re-quantized with ``nodes`` in float, measured.
TryNodes = Callable[..., Fallback]


def fallback_candidates(layers: list[LayerError], k: int) -> list[LayerError]:
    """The ``k`` layers to try in float, taken in turn from three rankings: worst own SQNR, worst
    median-channel SQNR (an outlier channel), largest added model error (a layer where error
    compounds, e.g. an SE gate or hard-swish). Each is a hypothesis; the measured gain decides.
    """
    by_added = sorted(layers, key=lambda e: -e.added_db)
    by_channel = sorted(layers, key=lambda e: e.channel_sqnr_db)
    out: dict[str, LayerError] = {}
    for a, b, c in zip(layers, by_channel, by_added):
        for e in (a, b, c):
            if e.fallback_nodes and len(out) < k:
                out.setdefault(e.tensor, e)
        if len(out) >= k:
            break
    return list(out.values())


def search_fallbacks(diag: Diagnosis, candidates: list[LayerError], try_nodes: TryNodes) -> None:
    """Measure each candidate alone into ``diag.fallbacks`` (largest gain first), then ``diag.combined``."""
    for e in progress(candidates, desc="diagnose: float fallbacks"):
        diag.fallbacks.append(try_nodes(e.fallback_nodes, e.layer))
    diag.rank_fallbacks()
    diag.combined = greedy_combination(diag, try_nodes)


def greedy_combination(diag: Diagnosis, try_nodes: TryNodes) -> Fallback | None:
    """Add the helpful layers one at a time, best single gain first, keeping each only if the
    combination improves on what is kept so far (``improves``): single gains do not add up
    (MobileNetV3-L: three layers that each helped lost more together than plain int8).
    ``try_nodes(nodes) -> Fallback`` measures one combination. None unless two or more are kept.
    """
    helpful = [f for f in diag.fallbacks if improves(f.metric_gain, f.agreement_gain)]
    if len(helpful) < 2:
        return None
    kept, labels, best = list(helpful[0].nodes), [helpful[0].layer], helpful[0]
    for f in helpful[1:]:
        nodes = list(dict.fromkeys(kept + f.nodes))
        if nodes == kept:
            continue
        trial = try_nodes(nodes)
        log(f"diagnose: greedy + {f.layer}: metric {trial.metric:.4f}, agreement {trial.agreement:.4f} "
            f"(kept so far {best.metric:.4f}, {best.agreement:.4f})")
        if improves(trial.metric - best.metric, trial.agreement - best.agreement):
            kept, best = nodes, trial
            labels.append(f.layer)
    if len(labels) < 2:
        return None
    best.layer = " + ".join(labels)
    return best
