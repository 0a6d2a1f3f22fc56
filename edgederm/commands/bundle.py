"""``edgederm bundle EXPORT_FOLDER --target T``: a folder and .tar.gz to benchmark an export on a device."""

from __future__ import annotations

from edgederm.commands.common import positive_int


def register(sub) -> None:
    from edgederm.bundle import TARGETS

    sp = sub.add_parser("bundle", help="artifacts + labelled test images + device_bench runner for one device kind")
    sp.add_argument("folder", help="export folder (holding manifest.json)")
    sp.add_argument("--target", required=True, choices=list(TARGETS), help="the device kind")
    sp.add_argument("--images", type=positive_int, default=200, help="labelled test images, class-stratified (default 200)")
    sp.add_argument("--out", help="where the folder and .tar.gz go (default bundles/)")
    sp.add_argument("--data", help="data root holding the model's dataset (default: $EDGEDERM_DATA, ../shared/data)")
    sp.set_defaults(func=run)


def run(args) -> int:
    from edgederm.bundle import make_bundle
    from edgederm.paths import find_data_root
    from edgederm.table import print_table

    outcome = make_bundle(args.folder, args.target, out=args.out, n_images=args.images,
                          data_root=find_data_root(args.data))
    rows = []
    for f in sorted(p for p in outcome.folder.rglob("*") if p.is_file() and "device_bench" not in p.parts):
        rows.append({"file": str(f.relative_to(outcome.folder)), "MB": f"{f.stat().st_size / 1e6:.2f}"})
    rows.append({"file": "device_bench/ (runner)", "MB": f"{sum(p.stat().st_size for p in (outcome.folder / 'device_bench').rglob('*') if p.is_file()) / 1e6:.2f}"})
    print_table(rows)
    print(f"\nbundle: {outcome.folder}\narchive: {outcome.archive} ({outcome.archive.stat().st_size / 1e6:.1f} MB)"
          f"\n{len(outcome.artifacts)} artifacts, {outcome.images} images; the command is in {outcome.folder / 'README.md'}")
    return 0
