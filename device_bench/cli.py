"""``python -m device_bench``: run a bundle on this device, parse a recorded tool log, or show the device facts.

    python -m device_bench run BUNDLE [--threads 1,4] [--runtime onnxruntime,litert,coreml,tensorrt] [--out results.json]
    python -m device_bench parse trtexec|benchmark_model LOG --artifact NAME [--precision P] [--out results.json]
    python -m device_bench env

Errors the user can fix print one line and exit 2; a run where an artifact failed (sha256
mismatch, runtime error) still writes its results and exits 1.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from device_bench.console import non_negative_int, positive_int, say, thread_list
from device_bench.errors import DeviceBenchError


def _csv(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def _fmt(v, digits=2) -> str:
    if v is None:
        return "-"
    return f"{v:.{digits}f}" if isinstance(v, float) else str(v)


def table(rows: list[dict]) -> str:
    """The terminal table of a run: one line per row."""
    out = []
    for r in rows:
        metric = next(iter(k for k in ("balanced_accuracy", "dice") if k in (r.get("metrics") or {})), None)
        lat = r.get("latency") or {}
        pl = r.get("placement") or {}
        out.append({"artifact": r["artifact"], "runtime": (r.get("runtime") or "-").split(" (")[0],
                    "provider": r.get("provider") or "-", "threads": _fmt(r.get("threads")), "status": r["status"],
                    "metric": metric or "-", "value": _fmt(r["metrics"][metric]["value"], 4) if metric else "-",
                    "median ms": _fmt(lat.get("median_ms")), "p90 ms": _fmt(lat.get("p90_ms")),
                    "delegated": f"{pl['accelerated_ops']}/{pl['total_ops']}" if "total_ops" in pl else "-",
                    "reason": (r.get("reason") or "")[:70]})
    if not out:
        return "(no rows)"
    cols = list(dict.fromkeys(k for r in out for k in r))
    width = {c: max(len(c), *(len(str(r.get(c, ""))) for r in out)) for c in cols}
    line = lambda vals: "  ".join(str(v).ljust(width[c]) for c, v in zip(cols, vals)).rstrip()  # noqa: E731
    return "\n".join([line(cols), line("-" * width[c] for c in cols), *(line(r.get(c, "") for c in cols) for r in out)])


def cmd_run(args) -> int:
    from device_bench import bench
    from device_bench import bundle as bundle_io

    b = bundle_io.load(args.bundle)
    config = bench.DeviceBenchConfig(threads=list(args.threads),
                                     runtimes=_csv(args.runtime) if args.runtime else None,
                                     artifacts=_csv(args.artifact) if args.artifact else None,
                                     compute_units=_csv(args.compute_units), trt_precisions=_csv(args.trt_precisions),
                                     warmup=args.warmup, runs=args.runs, max_seconds=args.max_seconds,
                                     n_boot=args.bootstrap, images=args.images, device=args.device,
                                     placement=not args.no_placement, quiet=args.quiet)
    results = bench.run(b, config, engines_dir=Path(args.engines) if args.engines else None)
    out = results.save(Path(args.out) if args.out else b.root / "results.json")
    print(table(results.rows))
    print(f"\nresults: {out}  (device {next(iter(results.environments))})")
    failed = [r for r in results.rows if r["status"] == "failed"]
    for r in failed:
        say(f"device_bench: error: {r['artifact']} ({r.get('runtime') or '-'}): {r.get('reason')}")
    return 1 if failed else 0


def cmd_parse(args) -> int:
    from device_bench import environment
    from device_bench.parsers import benchmark_model, trtexec
    from device_bench.results import Results

    path = Path(args.log)
    if not path.exists():
        raise DeviceBenchError(f"{path} does not exist: pass the file holding the tool's output")
    text = path.read_text(errors="replace")
    device = args.device or "unknown device"
    if args.tool == "trtexec":
        parsed = trtexec.parse(text, str(path))
        row = trtexec.to_row(parsed, args.artifact, device=device, log=str(path))
    else:
        parsed = benchmark_model.parse(text, str(path))
        row = benchmark_model.to_row(parsed, args.artifact, args.precision or "fp32", device=device, log=str(path))
    env = {"recorded_log": str(path)} if args.device else {**environment.collect(), "note": "facts of the parsing machine"}
    results = Results(environments={device: env}, source=f"device_bench parse {args.tool}")
    results.add(row)
    if args.out:
        print(f"results: {results.save(args.out)}")
    print(table(results.rows))
    return 0


def cmd_env(args) -> int:
    from device_bench import environment

    facts = environment.collect()
    print(json.dumps({"device": environment.device_key(facts), **facts}, indent=2))
    return 0


def build_parser() -> argparse.ArgumentParser:
    from device_bench.console import OneLineParser

    p = OneLineParser(prog="python -m device_bench", description="Benchmark an EdgeDerm bundle on this device.")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    sp = sub.add_parser("run", help="accuracy and latency of every artifact in a bundle, with every runtime found")
    sp.add_argument("bundle", help="the bundle folder (made by edgederm bundle; unpack the .tar.gz first)")
    sp.add_argument("--threads", type=thread_list, default=(1, 4), help="CPU thread counts, comma-separated (default 1,4)")
    sp.add_argument("--runtime", help="only these: onnxruntime, litert, coreml, tensorrt (default: all found)")
    sp.add_argument("--artifact", help="only these artifact names (comma-separated)")
    sp.add_argument("--compute-units", default="cpu,gpu,ane", help="Core ML compute units to try (macOS)")
    sp.add_argument("--trt-precisions", default="fp16,int8", help="TensorRT engines trtexec builds from the ONNX file")
    sp.add_argument("--engines", help="folder for TensorRT engines and trtexec logs (default BUNDLE/engines)")
    sp.add_argument("--images", type=positive_int, help="use only the first N bundled images (slow devices)")
    sp.add_argument("--warmup", type=non_negative_int, default=5)
    sp.add_argument("--runs", type=positive_int, default=30)
    sp.add_argument("--max-seconds", type=float, default=20.0, help="stop timing after this long (>= 5 runs kept)")
    sp.add_argument("--bootstrap", type=positive_int, default=1000, help="bootstrap resamples for the 95%% CIs")
    sp.add_argument("--device", help="the key of this device in results.json (default: board or CPU model/hostname)")
    sp.add_argument("--no-placement", action="store_true", help="skip the extra profiled run that counts delegated ops")
    sp.add_argument("--out", help="results file (default BUNDLE/results.json)")
    sp.add_argument("--quiet", action="store_true")
    sp.set_defaults(func=cmd_run)

    sp = sub.add_parser("parse", help="turn a recorded trtexec or benchmark_model log into a results row")
    sp.add_argument("tool", choices=["trtexec", "benchmark_model"])
    sp.add_argument("log")
    sp.add_argument("--artifact", required=True, help="the row's artifact name, e.g. trt_fp16 or tflite_fp16")
    sp.add_argument("--precision", help="benchmark_model: the .tflite file's precision (fp32, fp16, int8)")
    sp.add_argument("--device", help="the device the log was recorded on")
    sp.add_argument("--out")
    sp.set_defaults(func=cmd_parse)

    sp = sub.add_parser("env", help="print the facts recorded about this device")
    sp.set_defaults(func=cmd_env)
    return p


def main(argv: list[str] | None = None) -> int:
    """Exit 0 done, 1 an artifact failed, 2 fix your input, 3 internal error (traceback in the named log)."""
    import os

    from device_bench.console import run_command
    from device_bench.lifecycle import run_scope
    from device_bench.results import ResultsError

    try:
        args = build_parser().parse_args(argv)
    except SystemExit as e:  # --help, --version, or a bad option (its one line is printed): the code, not an exception
        return e.code if isinstance(e.code, int) else 2
    logs = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "device_bench" / "logs"
    with run_scope(logs=logs):
        return run_command("device_bench", lambda: args.func(args), (DeviceBenchError, ResultsError), logs,
                           verbose=args.verbose, debug=args.debug)
