"""``edgederm bundle EXPORT_FOLDER --target T``: a folder and .tar.gz to benchmark an export on a device."""

from __future__ import annotations

from edgederm.commands.common import add_json_option, emit, positive_int


def register(sub) -> None:
    from edgederm.bundle import BUNDLE_TARGETS

    sp = sub.add_parser("bundle", help="artifacts + labelled test images + device_bench runner for one device kind")
    sp.add_argument("folder", help="export folder (holding manifest.json)")
    sp.add_argument("--target", required=True, choices=list(BUNDLE_TARGETS), help="the device kind")
    sp.add_argument("--images", type=positive_int, default=200, help="labelled test images, class-stratified (default 200)")
    sp.add_argument("--out", help="where the folder and .tar.gz go (default bundles/)")
    sp.add_argument("--data", help="data root holding the model's dataset (default: $EDGEDERM_DATA, ../shared/data)")
    add_json_option(sp)
    sp.set_defaults(func=run)


def run(args) -> int:
    from edgederm.bundle import make_bundle
    from edgederm.paths import find_data_root

    outcome = make_bundle(args.folder, args.target, out=args.out, n_images=args.images,
                          data_root=find_data_root(args.data))
    rows = []
    for f in sorted(p for p in outcome.folder.rglob("*") if p.is_file() and "device_bench" not in p.parts):
        rows.append({"file": str(f.relative_to(outcome.folder)), "MB": f"{f.stat().st_size / 1e6:.2f}"})
    rows.append({"file": "device_bench/ (runner)", "MB": f"{sum(p.stat().st_size for p in (outcome.folder / 'device_bench').rglob('*') if p.is_file()) / 1e6:.2f}"})
    emit({"bundle": str(outcome.folder), "archive": str(outcome.archive),
          "archive_mb": round(outcome.archive.stat().st_size / 1e6, 1), "artifacts": len(outcome.artifacts),
          "images": outcome.images, "readme": str(outcome.folder / "README.md"), "rows": rows}, args, show)
    return 0


def show(s: dict) -> None:
    from edgederm.table import print_table

    print_table(s["rows"])
    print(f"\nbundle: {s['bundle']}\narchive: {s['archive']} ({s['archive_mb']:.1f} MB)"
          f"\n{s['artifacts']} artifacts, {s['images']} images; the command is in {s['readme']}")
