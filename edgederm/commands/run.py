"""``edgederm run RECIPE``: the whole road from a YAML recipe (or a built-in one), resumable."""

from __future__ import annotations

from edgederm.commands.common import add_json_option, emit, positive_int


def register(sub) -> None:
    sp = sub.add_parser("run", help="train/prune/export/quantize/bench/report from a YAML recipe, resumable")
    sp.add_argument("recipe", help="recipe YAML, or a built-in name: lite0, lite0_pruned")
    sp.add_argument("--jobs", type=positive_int, default=1, help="models run in parallel processes (default 1)")
    sp.add_argument("--ray", metavar="ADDRESS", help="run each model as a Ray task on this cluster ('auto', "
                                                     "'ray://host:10001', or 'local' for a fresh local cluster)")
    sp.add_argument("--out", help="output folder (overrides the recipe's 'out')")
    sp.add_argument("--data", help="data root (overrides the recipe's 'data')")
    add_json_option(sp)
    sp.set_defaults(func=run)


def run(args) -> int:
    from pathlib import Path

    from edgederm.errors import EdgeDermError
    from edgederm.pipeline import load_recipe, run_recipe

    recipe = load_recipe(args.recipe)
    if args.out:
        recipe.out = Path(args.out)
    if args.data:
        recipe.data = args.data
    if args.jobs < 1:
        raise EdgeDermError("--jobs must be at least 1")
    summaries = run_recipe(recipe, jobs=args.jobs, ray_address=args.ray)
    rows = [{"model": s["model"], **{e["stage"]: f"{e['status']} {e['seconds']:.0f}s" for e in s["events"]},
             "minutes": s["minutes"], "folder": s["folder"]} for s in summaries]
    reports = [{"model": s["model"], "report": str(Path(s["folder"]) / "report" / "report.html")} for s in summaries]
    emit({"rows": rows, "reports": reports, "sweep": str(recipe.out / "sweep.md") if len(summaries) > 1 else None},
         args, show)
    return 0


def show(s: dict) -> None:
    from edgederm.table import print_table

    print_table(s["rows"])
    for r in s["reports"]:
        print(f"{r['model']}: report {r['report']}")
    if s["sweep"]:
        print(f"sweep ranking: {s['sweep']}")
