"""The escalation policy of ``--max-drop``, with no I/O: try rungs cheapest first, keep the first
whose task-metric drop fits the budget and that passes the last check (the verification gates).
Unit-testable with fake rungs; ``quantization.control`` gives it the real ones."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Callable

from edgederm.errors import EdgeDermError
from edgederm.progress import log


@dataclass
class Trial:
    """One rung tried: what it made and how it did."""

    rung: str
    artifact: str = ""
    metric: float | None = None
    drop_pt: float | None = None
    latency_ms: float | None = None
    size_bytes: int | None = None
    verdict: str = ""  # chosen | over budget | failed gate | error | skipped | not tried
    detail: str = ""
    handle: object = field(default=None, repr=False, compare=False)  # what accept/discard act on

    def row(self, metric_name: str) -> dict:
        return {"scheme": self.rung, "artifact": self.artifact or "-",
                metric_name: "-" if self.metric is None else f"{self.metric:.4f}",
                "drop pt": "-" if self.drop_pt is None else f"{self.drop_pt:+.2f}",
                "latency ms": "-" if self.latency_ms is None else f"{self.latency_ms:.2f}",
                "size MB": "-" if not self.size_bytes else f"{self.size_bytes / 1e6:.2f}",
                "verdict": self.verdict, "detail": self.detail[:80]}

    def to_dict(self) -> dict:
        d = asdict(self)
        d.pop("handle")
        return d


@dataclass(frozen=True)
class Rung:
    """A ladder step: ``make()`` builds and measures one candidate (a ``Trial`` with ``metric``),
    or raises ``EdgeDermError`` / returns a Trial with verdict ``skipped`` when it cannot."""

    name: str
    make: Callable[[], Trial]


@dataclass
class ControlResult:
    max_drop_pt: float
    baseline: float
    metric_name: str
    trials: list[Trial]
    chosen: Trial | None
    why: str

    def rows(self) -> list[dict]:
        return [t.row(self.metric_name) for t in self.trials]

    def to_dict(self) -> dict:
        return {"max_drop_pt": self.max_drop_pt, "baseline": self.baseline, "metric": self.metric_name,
                "chosen": self.chosen.rung if self.chosen else None, "why": self.why,
                "trials": [t.to_dict() for t in self.trials]}


class BudgetNotMet(EdgeDermError):
    """No rung met the budget; ``result`` holds the table and the best reached."""

    def __init__(self, message: str, result: ControlResult):
        super().__init__(message)
        self.result = result


def explain(trials: list[Trial], chosen: Trial | None, max_drop_pt: float, metric_name: str) -> str:
    """Why ``chosen`` was chosen (and what the cheaper rungs did), or the best drop reached without one."""
    if chosen is not None:
        cheaper = [t for t in trials if t is not chosen and t.verdict not in ("not tried",)]
        return (f"{chosen.rung}: drop {chosen.drop_pt:+.2f} pt <= budget {max_drop_pt:g} pt"
                + (f"; cheaper rungs missed it ({', '.join(f'{t.rung}: {t.verdict}' for t in cheaper)})" if cheaper else
                   "; the cheapest rung already fits"))
    measured = [t for t in trials if t.drop_pt is not None]
    if not measured:
        return "no rung produced a measurable artifact"
    best = min(measured, key=lambda t: t.drop_pt)
    return f"best reached: {best.rung}, {metric_name} {best.metric:.4f}, drop {best.drop_pt:+.2f} pt ({best.verdict})"


def try_rung(rung: Rung) -> Trial:
    """The rung's trial; an ``EdgeDermError`` becomes a trial with verdict ``error``."""
    log(f"control: trying {rung.name} ...")
    try:
        trial = rung.make()
    except EdgeDermError as e:
        return Trial(rung.name, verdict="error", detail=str(e))
    trial.rung = rung.name
    if trial.verdict != "skipped" and trial.metric is None:
        raise ValueError(f"rung {rung.name} returned no metric")
    return trial


def escalate(rungs: list[Rung], baseline: float, max_drop_pt: float, metric_name: str = "metric",
             accept: Callable[[Trial], tuple[bool, str]] | None = None,
             discard: Callable[[Trial], None] | None = None) -> ControlResult:
    """Try ``rungs`` in order; the first whose drop is within ``max_drop_pt`` and that ``accept`` passes wins.

    ``accept(trial) -> (ok, reason)`` is the last check (the verification gates); ``discard``
    cleans up a candidate that is not chosen. Rungs after the chosen one are listed as
    ``not tried``. Raises ``BudgetNotMet`` (with the table) when none fits.
    """
    if not (max_drop_pt >= 0 and math.isfinite(max_drop_pt)):
        raise EdgeDermError(f"--max-drop {max_drop_pt} must be a non-negative number of points")
    trials: list[Trial] = []
    chosen = None
    for i, rung in enumerate(rungs):
        trial = try_rung(rung)
        trials.append(trial)
        if trial.verdict == "skipped" or trial.metric is None:  # skipped, or raised (verdict "error")
            continue
        trial.drop_pt = 100.0 * (baseline - trial.metric)
        if trial.drop_pt > max_drop_pt + 1e-9:
            trial.verdict = "over budget"
        else:
            ok, reason = accept(trial) if accept else (True, "")
            if ok:
                trial.verdict = "chosen"
                chosen = trial
                trials += [Trial(r.name, verdict="not tried") for r in rungs[i + 1:]]
                break
            trial.verdict, trial.detail = "failed gate", reason
        if discard:
            discard(trial)
        log(f"control: {rung.name}: {trial.verdict} (drop {trial.drop_pt:+.2f} pt)")
    result = ControlResult(max_drop_pt, baseline, metric_name, trials, chosen,
                           explain(trials, chosen, max_drop_pt, metric_name))
    if chosen is None:
        raise BudgetNotMet(f"no scheme met --max-drop {max_drop_pt:g} pt of {metric_name}: {result.why}; "
                           f"raise --max-drop or improve the fp32 model", result)
    return result
