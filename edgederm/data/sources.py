"""Where each image comes from: per-image acquisition source (clinic, device) read from metadata.

Any layout may carry a ``source`` column: in ``metadata.csv`` at the dataset root (keyed by
``image_id`` or ``id``; derm7 ships one with ``source,dx_type,age,sex,localization``), in the
layout's own table (derm7 ``labels.csv``, lesionseg ``split.csv``), or, for the HAM10000
release, its ``dataset`` column. ``with_sources`` fills ``Sample.source``; images without one
are left at "" and grouped as ``unknown``. ``edgederm.data.views.write_source_view`` makes a derived dataset
folder holding only some sources (a table plus a link to the image folder, no copies), which is
how a model is trained on some sites and tested on another.
"""

from __future__ import annotations

import csv
from collections import Counter
from dataclasses import replace
from pathlib import Path

from edgederm.data.dataset import LesionDataset
from edgederm.errors import EdgeDermError

UNKNOWN = "unknown"
# (file, column holding the source); earlier files win when several give one image a source
SOURCE_COLUMNS = (("metadata.csv", "source"), ("labels.csv", "source"), ("split.csv", "source"),
                  ("HAM10000_metadata.csv", "source"), ("HAM10000_metadata.csv", "dataset"))


def read_table_rows(path: Path) -> list[dict[str, str]]:
    try:
        with open(path, newline="") as f:
            return list(csv.DictReader(f))
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise EdgeDermError(f"cannot read {path}: {e}") from None


def read_sources(root: Path) -> dict[str, str]:
    """{image id: source} from whatever table at ``root`` has a source column (empty if none)."""
    found: dict[str, str] = {}
    for name, column in SOURCE_COLUMNS:
        path = Path(root) / name
        if not path.is_file():
            continue
        rows = read_table_rows(path)
        if not rows or column not in rows[0]:
            continue
        key = "image_id" if "image_id" in rows[0] else "id" if "id" in rows[0] else None
        if key is None:
            raise EdgeDermError(f"{path} has a {column} column but no image_id/id column: add one")
        for r in rows:
            if r.get(column) and r[key] not in found:
                found[r[key]] = r[column].strip()
    return found


def with_sources(ds: LesionDataset) -> LesionDataset:
    """The dataset with ``Sample.source`` filled from its metadata (unchanged when it has none)."""
    sources = read_sources(ds.root)
    if not sources:
        return ds
    ds.samples = [replace(s, source=sources.get(s.id, "")) for s in ds.samples]
    ds.info["sources"] = dict(Counter(s.source or UNKNOWN for s in ds.samples))
    return ds


def source_of(sample) -> str:
    return sample.source or UNKNOWN


def group_indices(ds: LesionDataset, by: str = "source") -> dict[str, list[int]]:
    """{group: sample indices} for ``by`` (only "source" today), groups sorted by name."""
    if by != "source":
        raise EdgeDermError(f"--by {by!r} is not supported: use --by source")
    groups: dict[str, list[int]] = {}
    for i, s in enumerate(ds.samples):
        groups.setdefault(source_of(s), []).append(i)
    if set(groups) == {UNKNOWN}:
        raise EdgeDermError(f"{ds.root} gives no image a source: add a 'source' column to metadata.csv "
                            "(image_id,source) or to the layout's table")
    return dict(sorted(groups.items()))


def select_sources(ds: LesionDataset, sources: list[str]) -> LesionDataset:
    """Only the samples whose source is in ``sources`` (a one-line error naming the known ones)."""
    known = {source_of(s) for s in ds.samples}
    unknown = [s for s in sources if s not in known]
    if unknown:
        raise EdgeDermError(f"source(s) {', '.join(unknown)} not in {ds.root}: it has {', '.join(sorted(known))}")
    kept = [s for s in ds.samples if source_of(s) in sources]
    return replace(ds, samples=kept, info={**ds.info, "sources": dict(Counter(source_of(s) for s in kept))})
