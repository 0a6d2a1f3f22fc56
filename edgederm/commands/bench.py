"""``edgederm bench FOLDER``: accuracy vs latency of every artifact and the original, one table."""

from __future__ import annotations

from pathlib import Path

from edgederm.commands.common import add_json_option, emit, non_negative_int, positive_int, thread_list


def register(sub) -> None:
    sp = sub.add_parser("bench", help="accuracy vs latency of every artifact and the PyTorch original")
    sp.add_argument("folder", help="export folder (or its manifest.json)")
    sp.add_argument("--data", help="data root holding derm7/ and lesionseg/ (default: $EDGEDERM_DATA, ../shared/data)")
    sp.add_argument("--checkpoint", help="the PyTorch original (default: the one the manifest names)")
    sp.add_argument("--images", type=positive_int, help="class-stratified test sample of this size (default: the whole split)")
    sp.add_argument("--threads", type=thread_list, default=(1, 2), help="thread counts to time, comma-separated (default 1,2)")
    sp.add_argument("--runs", type=positive_int, default=100, help="timed runs per figure after warm-up (default 100)")
    sp.add_argument("--warmup", type=non_negative_int, default=10)
    sp.add_argument("--rounds", type=positive_int, default=10,
                    help="latency runs are split into this many rounds interleaved across candidates (default 10)")
    sp.add_argument("--throughput-batch", type=non_negative_int, default=8, help="batch for the throughput figure (0: none)")
    sp.add_argument("--bootstrap", type=positive_int, default=1000, help="bootstrap resamples for the CIs")
    sp.add_argument("--only", help="artifact names to measure, comma-separated (default: all)")
    sp.add_argument("--no-peers", action="store_true", help="skip the peer paths (plain ONNX + ORT, plain ExecuTorch XNNPACK)")
    sp.add_argument("--no-peak", action="store_true", help="skip the peak-GEMM measurement")
    sp.add_argument("--gpu", choices=["auto", "off", "only"], default="auto",
                    help="CUDA rows of the original when a GPU is present (only: just those, appended to --append)")
    sp.add_argument("--append", help="add the rows to this existing results.json instead of starting a new one")
    sp.add_argument("--out", help="folder for results.json and results.csv (default FOLDER/bench)")
    sp.add_argument("--trust-source", action="store_true",
                    help="load a TorchScript original, or a .pt2 with pickled entries (they run code): only for files you made")
    add_json_option(sp)
    sp.set_defaults(func=run)


def run(args) -> int:
    from edgederm.bench import BenchConfig, add_speedups, bench, write_results
    from edgederm.errors import EdgeDermError
    from edgederm.paths import find_data_root

    config = BenchConfig(images=args.images, threads=tuple(args.threads), runs=args.runs, warmup=args.warmup, rounds=args.rounds,
                         throughput_batch=args.throughput_batch, n_boot=args.bootstrap,
                         only=tuple(a for a in (args.only or "").split(",") if a), peers=not args.no_peers,
                         gpu=args.gpu, peak=not args.no_peak)
    folder = Path(args.folder)
    out = Path(args.out) if args.out else (folder if folder.is_dir() else folder.parent) / "bench"
    results = bench(folder, config, find_data_root(args.data), checkpoint=args.checkpoint, trust_source=args.trust_source)
    if args.append:  # same model and images or a one-line error (device_bench.results.merge checks)
        from device_bench.results import Results, ResultsError, merge

        try:
            results = merge([(args.append, Results.load(args.append)), ("this run", results)])
        except (ResultsError, OSError) as e:
            raise EdgeDermError(f"--append {args.append}: {e}") from None
        results.source = "edgederm bench"
        add_speedups(results)
    json_path, csv_path = write_results(results, out)
    emit(summary(results, json_path, csv_path), args, show)
    failed = [r for r in results.rows if r["status"] == "failed" and r.get("role") != "peer"]
    return 1 if failed else 0


def summary(results, json_path: Path, csv_path: Path) -> dict:
    """What the terminal shows: one table per thread count (rows without a thread count are in each)."""
    from edgederm.report import noise_text, table_rows

    threads = sorted({r.get("threads") for r in results.rows if r.get("threads")})
    return {"model": results.model.get("name"), "task": results.model.get("task"), "images": results.data.get("images"),
            "tables": [{"threads": t, "rows": table_rows(results, t)} for t in threads],
            "noise": noise_text(results.data) or None,
            "results": str(json_path), "csv": str(csv_path)}


def show(s: dict) -> None:
    from edgederm.report import LEGEND_BENCH
    from edgederm.table import print_table

    print(f"\n{s['model']} ({s['task']}) on {s['images']} test images; "
          f"batch 1; Δ = artifact - original, paired bootstrap 95% CI")
    for table in s["tables"]:
        print(f"\n{table['threads']} thread(s):")
        print_table(table["rows"])
    if s["noise"]:
        print("\n" + s["noise"])
    print("\n" + LEGEND_BENCH)
    print(f"results: {s['results']}\n         {s['csv']}\nreport:  edgederm report {s['results']}")
