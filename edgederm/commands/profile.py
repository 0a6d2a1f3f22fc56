"""``edgederm profile FOLDER``: where the milliseconds go, per operator type, for every artifact."""

from __future__ import annotations

from pathlib import Path

from edgederm.commands.common import add_json_option, emit, non_negative_int, positive_int


def register(sub) -> None:
    sp = sub.add_parser("profile", help="per-operator latency, MACs, bytes, roofline and coverage of every artifact")
    sp.add_argument("folder", help="export folder (or its manifest.json)")
    sp.add_argument("--threads", type=positive_int, default=1, help="runtime threads (default 1)")
    sp.add_argument("--runs", type=positive_int, default=20, help="profiled inferences per artifact (default 20)")
    sp.add_argument("--warmup", type=non_negative_int, default=5, help="untimed inferences first (default 5)")
    sp.add_argument("--rounds", type=positive_int, default=5,
                    help="profiled blocks, each after a block of plain timed runs (default 5): both see the same load")
    sp.add_argument("--artifacts", help="artifact names to profile, comma-separated (default: all)")
    sp.add_argument("--checkpoint", help="the PyTorch original (default: the one the manifest names)")
    sp.add_argument("--no-original", action="store_true", help="skip the PyTorch original")
    sp.add_argument("--no-roofline", action="store_true", help="skip measuring peak MAC rates and memory bandwidth")
    sp.add_argument("--top", type=positive_int, default=12, help="operator types shown per artifact (default 12)")
    sp.add_argument("--out", help="folder for profile.md and profile.png (default FOLDER/profile)")
    add_json_option(sp)  # the whole profile
    sp.set_defaults(func=run)


def run(args) -> int:
    from edgederm.profile import ProfileConfig, profile_folder

    config = ProfileConfig(threads=args.threads, runs=args.runs, warmup=args.warmup, rounds=args.rounds,
                           artifacts=tuple(a for a in (args.artifacts or "").split(",") if a),
                           original=not args.no_original, roofline=not args.no_roofline)
    config.validate()  # before the slow part
    folder = Path(args.folder)
    folder = folder if folder.is_dir() else folder.parent
    out = Path(args.out) if args.out else folder / "profile"
    prof = profile_folder(folder, config, checkpoint=args.checkpoint)
    md, png = write_report(prof, out, args.top)

    def show(_payload) -> None:
        from edgederm.profile_report import coverage_text, headline, roofline_text, table
        from edgederm.table import print_table

        print(roofline_text(prof))
        for e in prof["artifacts"]:
            print("\n" + headline(e))
            if e["status"] != "skipped":
                print(coverage_text(e))
                print_table(table(e, args.top))
        print(f"\nprofile: {md}" + (f"\n         {png}" if png else ""))

    emit(prof, args, show)
    return 0


def write_report(prof: dict, out: Path, top: int) -> tuple[Path, Path | None]:
    """profile.md (and profile.png when it could be drawn) in ``out``, written atomically."""
    from edgederm.paths import atomic_path
    from edgederm.profile_report import markdown, plot

    out.mkdir(parents=True, exist_ok=True)
    md = out / "profile.md"
    png = plot(prof, out / "profile.png")
    text = markdown(prof, top) + ("\n![ms by operator type](profile.png)\n" if png else "")
    tmp = atomic_path(md)
    tmp.write_text(text)
    tmp.replace(md)
    return md, png
