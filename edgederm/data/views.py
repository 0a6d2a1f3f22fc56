"""Derived dataset folders: a derm7-layout view of some acquisition sources, tables only."""

from __future__ import annotations

import csv
import os
from pathlib import Path

from edgederm.data.layouts import load_dataset
from edgederm.data.sources import read_sources, read_table_rows
from edgederm.errors import EdgeDermError


def write_source_view(root: Path, out: Path, sources: list[str]) -> Path:
    """A derm7-layout folder at ``out`` with only ``sources``' rows, its ``images`` linked to root's.

    Splits stay those of the full dataset (given, or made there and written into the view), so
    the view's test split is the same images as the full dataset's test split for those sources.
    Nothing is copied but the two tables.
    """
    root, out = Path(root), Path(out)
    labels = root / "labels.csv"
    if not labels.is_file() or not (root / "images").is_dir():
        raise EdgeDermError(f"{root} is not a derm7-layout folder (labels.csv + images/): pass one")
    split_of = {s.id: s.split for s in load_dataset(root, layout="derm7").samples}
    sources_of = read_sources(root)
    keep = set(sources)
    missing = keep - set(sources_of.values())
    if missing:
        raise EdgeDermError(f"{root} has no images from source(s) {', '.join(sorted(missing))}")
    out.mkdir(parents=True, exist_ok=True)
    for name in ("labels.csv", "metadata.csv"):
        if not (root / name).is_file():
            continue
        rows = read_table_rows(root / name)
        kept = [r for r in rows if sources_of.get(r.get("image_id", r.get("id", ""))) in keep]
        fields = list(rows[0])
        if name == "labels.csv":
            kept = [{**r, "split": split_of[r["image_id"]]} for r in kept]
            fields += [] if "split" in fields else ["split"]
        tmp = out / f".{name}.tmp"
        with open(tmp, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=fields)
            w.writeheader()
            w.writerows(kept)
        os.replace(tmp, out / name)
    link = out / "images"
    if not link.exists():
        link.symlink_to((root / "images").resolve(), target_is_directory=True)
    return out
