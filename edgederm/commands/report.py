"""``edgederm report RESULTS...``: Markdown + self-contained HTML with the accuracy-vs-latency plot."""

from __future__ import annotations

from pathlib import Path


def register(sub) -> None:
    sp = sub.add_parser("report", help="render results.json (one or several, merged) as Markdown + HTML with plots")
    sp.add_argument("results", nargs="+", help="results.json files or folders holding one")
    sp.add_argument("--out", help="output folder (default: beside the first results file, report/)")
    sp.set_defaults(func=run)


def run(args) -> int:
    from device_bench.results import Results, ResultsError
    from edgederm.errors import EdgeDermError
    from edgederm.report import render

    try:
        loaded = [Results.load(p) for p in args.results]
    except ResultsError as e:
        raise EdgeDermError(str(e)) from None
    if len(loaded) > 1:
        from device_bench.results import merge  # the same fold as `edgederm results merge`

        try:
            results = merge(list(zip(args.results, loaded)))
        except ResultsError as e:
            raise EdgeDermError(str(e)) from None
    else:
        results = loaded[0]
    first = Path(args.results[0])
    out = Path(args.out) if args.out else (first if first.is_dir() else first.parent) / "report"
    if out.exists() and not out.is_dir():
        raise EdgeDermError(f"--out {out} is a file: pass a folder for report.html and report.md")
    written = render(results, out)
    print(f"report: {written['report.html']}\n        {written['report.md']}")
    return 0
