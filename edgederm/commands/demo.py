"""``edgederm demo``: the main job on an offline default (real data if found, else synthetic)."""

from __future__ import annotations

from edgederm.commands.common import add_data_option, add_json_option, emit


def register(sub) -> None:
    sp = sub.add_parser("demo", help="the main job on an offline default: real data if found, else synthetic")
    add_data_option(sp)
    sp.add_argument("--synthetic", action="store_true", help="use the generated image set even if real data exists")
    sp.add_argument("--quick", action="store_true", help="smallest run (for tests)")
    add_json_option(sp)
    sp.set_defaults(func=run)


def run(args) -> int:
    from edgederm.demo import print_demo, run_demo

    code, payload = run_demo(data=args.data, synthetic=args.synthetic, quick=args.quick)
    emit(payload, args, print_demo)
    return code
