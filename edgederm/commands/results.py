"""``edgederm results merge A.json B.json ... --out merged.json``: one file from several machines."""

from __future__ import annotations

from edgederm.commands.common import add_json_option, emit


def register(sub) -> None:
    sp = sub.add_parser("results", help="work with results.json files (merge those of several machines)")
    sp.add_argument("action", choices=["merge"])
    sp.add_argument("files", nargs="+", help="results.json files (or folders holding one)")
    sp.add_argument("--out", required=True, help="the merged results file")
    add_json_option(sp)
    sp.set_defaults(func=run)


def run(args) -> int:
    from device_bench.results import Results, ResultsError, merge
    from edgederm.errors import EdgeDermError

    try:
        merged = merge([(f, Results.load(f)) for f in args.files])
    except ResultsError as e:
        raise EdgeDermError(str(e)) from None
    from edgederm.bench import add_speedups

    add_speedups(merged)  # per machine; and against the GPU original when one of the files holds it
    path = merged.save(args.out)
    rows = {}
    for r in merged.rows:
        rows.setdefault(r["device"], {"device": r["device"], "rows": 0, "ok": 0})
        rows[r["device"]]["rows"] += 1
        rows[r["device"]]["ok"] += r["status"] == "ok"
    emit({"merged": str(path), "files": len(args.files), "rows_merged": len(merged.rows),
          "devices": len(merged.environments), "rows": list(rows.values())}, args, show)
    return 0


def show(s: dict) -> None:
    from edgederm.table import print_table

    print_table(s["rows"])
    print(f"\nmerged {s['files']} files, {s['rows_merged']} rows, {s['devices']} devices: {s['merged']}")
