"""``edgederm data info|download``: the datasets found and their splits, or public data fetched."""

from __future__ import annotations

from pathlib import Path

from edgederm.commands.common import add_data_option, data_root, non_negative_int, positive_int
from edgederm.errors import EdgeDermError


def register(sub) -> None:
    sp = sub.add_parser("data", help="describe or download datasets")
    sp.add_argument("action", choices=["info", "download"])
    sp.add_argument("source", nargs="?", choices=["dermamnist", "isic"], help="for download")
    add_data_option(sp)
    sp.add_argument("--dataset", help="one dataset folder (default: every folder in the data root)")
    sp.add_argument("--layout", help="force a layout: derm7, lesionseg, ham10000, isic_task1, folder")
    sp.add_argument("--out", default="derm-download", help="download destination")
    sp.add_argument("--size", type=positive_int, default=224, help="DermaMNIST image size (28, 64, 128, 224)")
    sp.add_argument("--search", default="", help="ISIC Archive search query")
    sp.add_argument("--collections", default="", help="ISIC Archive collection ids")
    sp.add_argument("--limit", type=non_negative_int, default=0)
    sp.set_defaults(func=run)


def run(args) -> int:
    if args.action == "download":
        return download(args)
    from edgederm.data import load_dataset

    root = data_root(args)
    if root is None:
        raise EdgeDermError("no data found: pass --data DIR or set EDGEDERM_DATA")
    targets = [Path(args.dataset)] if args.dataset else [d for d in sorted(root.iterdir()) if d.is_dir()]
    for t in targets:
        ds = load_dataset(t if t.is_absolute() or t.exists() else root / t, layout=args.layout)
        print(ds.describe())
    return 0


def download(args) -> int:
    from edgederm.data import download as fetch

    out = Path(args.out)
    if args.source == "dermamnist":
        fetch.download_dermamnist(out, size=args.size)
    else:
        fetch.download_isic(out, search=args.search, collections=args.collections, limit=args.limit)
    print(f"downloaded to {out}")
    return 0
