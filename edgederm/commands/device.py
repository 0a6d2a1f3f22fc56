"""``edgederm device android BUNDLE --benchmark-model PATH``: latency on a phone over adb."""

from __future__ import annotations

from edgederm.commands.common import add_json_option, emit, non_negative_int, positive_int


def register(sub) -> None:
    sp = sub.add_parser("device", help="benchmark a bundle on a device driven from here (android over adb)")
    dsub = sp.add_subparsers(dest="device_kind", required=True, metavar="KIND")
    a = dsub.add_parser("android", help="push the .tflite files and TFLite benchmark_model with adb, parse its output")
    a.add_argument("bundle", help="bundle folder made by edgederm bundle --target android")
    a.add_argument("--benchmark-model", required=True, help="the prebuilt Android benchmark_model binary")
    a.add_argument("--delegate", default="xnnpack", help="cpu, xnnpack, gpu, nnapi (comma-separated; default xnnpack)")
    a.add_argument("--threads", default="1,4", help="CPU thread counts (default 1,4)")
    a.add_argument("--serial", help="the device's adb serial when several are connected")
    a.add_argument("--runs", type=positive_int, default=30)
    a.add_argument("--warmup", type=non_negative_int, default=5)
    a.add_argument("--device", help="this phone's key in results.json (default: manufacturer model/serial)")
    a.add_argument("--out", help="results file (default BUNDLE/results_android.json)")
    add_json_option(a)
    a.set_defaults(func=run)


def run(args) -> int:
    from pathlib import Path

    from device_bench.cli import table
    from edgederm.device_android import AndroidConfig, run_android
    from edgederm.errors import EdgeDermError

    try:
        threads = [int(t) for t in args.threads.split(",") if t.strip()]
    except ValueError:
        raise EdgeDermError(f"--threads {args.threads!r} must be comma-separated integers, e.g. 1,4") from None
    config = AndroidConfig(delegates=[d.strip() for d in args.delegate.split(",") if d.strip()], threads=threads,
                           warmup=args.warmup, runs=args.runs, serial=args.serial)
    results = run_android(args.bundle, args.benchmark_model, config, device=args.device)
    out = results.save(Path(args.out) if args.out else Path(args.bundle) / "results_android.json")
    emit({"results": str(out), "rows": results.rows}, args,
         lambda s: print(f"{table(s['rows'])}\n\nresults: {s['results']}"))
    return 1 if any(r["status"] == "failed" for r in results.rows) else 0
