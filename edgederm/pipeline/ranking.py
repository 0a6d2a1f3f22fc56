"""The sweep report: every measured row of every model of a recipe, ranked.

★ marks the Pareto front per task and thread count, drawn as the bench report draws it
(``edgederm.pareto``): only the original and artifacts that passed their gates may be on it.
A row that failed its gate, could not be verified, or is the ungated peer path is ranked but
never starred, and its ``gate`` cell says why.
"""

from __future__ import annotations

import os
from pathlib import Path

from edgederm.pipeline.recipe_file import RunRecipe
from edgederm.progress import log

LEGEND = ("★ = on the Pareto front (no other row is both faster and more accurate) within its task and "
          "thread count; only the original and artifacts that passed their gates may be on it.")


def sweep_rows(summaries: list[dict]) -> list[tuple[dict, dict]]:
    """(table row, its bench results row) for every measured row of every model that has results."""
    from device_bench.results import Results
    from edgederm.report import measured
    from edgederm.tasks import task_of

    rows = []
    for s in summaries:
        path = Path(s["results"])
        if not path.exists():
            continue
        res = Results.load(path)
        key = task_of(res.model.get("task", "classification")).headline
        for r in measured(res.rows):
            rows.append(({"task": res.model.get("task"), "model": s["model"], "artifact": r["artifact"],
                          "precision": r["precision"], "threads": r.get("threads"), "metric": key,
                          "value": r["metrics"][key]["value"], "ms": r["latency"]["median_ms"],
                          "size MB": round((r.get("size_bytes") or 0) / 1e6, 2)}, r))
    return rows


def rank(rows: list[tuple[dict, dict]]) -> list[dict]:
    """Per (task, threads): ★ on the gate-passed Pareto front, front first, then by metric and latency."""
    from edgederm.pareto import front_members, gate_note
    from edgederm.report import pareto_front

    ranked = []
    for group in sorted({(t["task"], t["threads"]) for t, _ in rows}, key=str):
        members = [(t, r) for t, r in rows if (t["task"], t["threads"]) == group]
        points = [(t["ms"], t["value"]) for t, _ in members]
        front = set(front_members([r for _, r in members], points, pareto_front))
        for i, (t, r) in enumerate(members):
            t["pareto"] = "★" if i in front else ""
            t["gate"] = gate_note(r).strip(" ()")  # why a row may not be on the front; empty where it may
        ranked += sorted((t for t, _ in members), key=lambda t: (t["pareto"] != "★", -t["value"], t["ms"]))
    return ranked


def sweep_report(recipe: RunRecipe, summaries: list[dict]) -> Path:
    """Write ``<out>/sweep.md``: every measured row of every model, ranked (see ``rank``)."""
    from edgederm.paths import atomic_path
    from edgederm.report import markdown_table

    ranked = rank(sweep_rows(summaries))
    for r in ranked:
        r["value"], r["ms"] = f"{r['value']:.4f}", f"{r['ms']:.2f}"
    target = recipe.out / "sweep.md"
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = atomic_path(target)
    tmp.write_text(f"# Sweep {recipe.name}\n\n{LEGEND}\n\n" + markdown_table(ranked))
    os.replace(tmp, target)
    log(f"run: sweep report {target}")
    return target
