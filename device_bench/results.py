"""The results schema shared by ``edgederm bench`` and ``device_bench`` (``results.json``).

One file holds one run on one machine: the environment it ran in, the model it measured
and one row per (artifact, runtime, provider, threads) measured. Rows from other machines
are folded in by ``edgederm results merge``; each row names its environment by ``device``.
Documented in ``docs/results.md``. numpy-free on purpose: a device needs only the stdlib here.

Row fields (all optional but ``artifact``, ``format``, ``precision``, ``status``):
  artifact, format, precision, path, sha256, size_bytes, params, macs,
  runtime ("onnxruntime 1.32.0"), provider ("CPUExecutionProvider", "XNNPACK", "CUDA"),
  device (environment key), threads, batch,
  status ("ok" | "failed" | "skipped"), reason,
  metrics {name: {value, low, high}}, delta {name: {value, low, high}} (artifact - original, paired bootstrap),
  latency {median_ms, p90_ms, min_ms, mean_ms, runs, warmup}, throughput {batch, images_per_s},
  peak_rss_mb, placement {accelerated_ops, total_ops, fallback: [...]}, per_image {ids, ...},
  role ("original" | "artifact" | "peer"), notes [...]
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SCHEMA = "edgederm.results"
SCHEMA_VERSION = 1
FILENAME = "results.json"
REQUIRED_ROW_KEYS = ("artifact", "format", "precision", "status")
STATUSES = ("ok", "failed", "skipped")


class ResultsError(ValueError):
    """A results file that is not valid; the message names the file and the problem."""


@dataclass
class Results:
    environments: dict[str, dict[str, Any]] = field(default_factory=dict)  # device key -> facts
    model: dict[str, Any] = field(default_factory=dict)  # name, task, classes, dataset
    data: dict[str, Any] = field(default_factory=dict)  # split, images, source, selection
    rows: list[dict[str, Any]] = field(default_factory=list)
    created: str = field(default_factory=lambda: time.strftime("%Y-%m-%dT%H:%M:%S%z"))
    source: str = ""  # "edgederm bench" | "device_bench" | "edgederm gpu-bench" | "merge"
    schema: str = SCHEMA
    version: int = SCHEMA_VERSION

    def add(self, row: dict[str, Any]) -> dict[str, Any]:
        check_row(row, "row")
        self.rows.append(row)
        return row

    def to_dict(self) -> dict[str, Any]:
        return {"schema": self.schema, "version": self.version, "created": self.created, "source": self.source,
                "environments": self.environments, "model": self.model, "data": self.data, "rows": self.rows}

    @classmethod
    def from_dict(cls, d: dict[str, Any], origin: str = "results") -> "Results":
        if not isinstance(d, dict) or d.get("schema") != SCHEMA:
            raise ResultsError(f"{origin} is not an EdgeDerm results file (schema {d.get('schema') if isinstance(d, dict) else None!r})")
        if int(d.get("version", 0)) > SCHEMA_VERSION:
            raise ResultsError(f"{origin} has results version {d['version']}, newer than this reader ({SCHEMA_VERSION}): upgrade")
        rows = d.get("rows", [])
        if not isinstance(rows, list):
            raise ResultsError(f"{origin}: 'rows' must be a list")
        for i, row in enumerate(rows):
            check_row(row, f"{origin} row {i}")
        return cls(environments=dict(d.get("environments", {})), model=dict(d.get("model", {})),
                   data=dict(d.get("data", {})), rows=list(rows), created=d.get("created", ""),
                   source=d.get("source", ""), version=int(d.get("version", SCHEMA_VERSION)))

    def save(self, path: str | os.PathLike) -> Path:
        """Write atomically (temporary sibling, then rename)."""
        path = Path(path)
        if path.is_dir() or path.suffix != ".json":
            path = path / FILENAME
        from device_bench.integrity import write_json

        return write_json(path, self.to_dict(), default=_jsonable)  # NaN -> null: JSON has no NaN

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Results":
        path = Path(path)
        if path.is_dir():
            path = path / FILENAME
        if not path.exists():
            raise ResultsError(f"no results at {path}: pass a results.json or the folder holding one")
        try:
            d = json.loads(path.read_text())
        except json.JSONDecodeError as e:
            raise ResultsError(f"{path} is not valid JSON ({e.msg} at line {e.lineno})") from None
        except (OSError, UnicodeDecodeError) as e:
            raise ResultsError(f"{path} cannot be read ({type(e).__name__}): pass a results.json") from None
        if not isinstance(d, dict):
            raise ResultsError(f"{path} is not a results object: pass a results.json written by EdgeDerm")
        try:
            return cls.from_dict(d, str(path))
        except ResultsError:
            raise
        except (TypeError, ValueError, AttributeError) as e:
            raise ResultsError(f"{path} is not a valid results file ({type(e).__name__}: {str(e)[:100]})") from None


def check_row(row: Any, where: str) -> None:
    if not isinstance(row, dict):
        raise ResultsError(f"{where} is not an object")
    missing = [k for k in REQUIRED_ROW_KEYS if k not in row]
    if missing:
        raise ResultsError(f"{where} lacks {', '.join(missing)}")
    if row["status"] not in STATUSES:
        raise ResultsError(f"{where} has status {row['status']!r}; expected one of {', '.join(STATUSES)}")


def estimate(value: float, low: float | None = None, high: float | None = None) -> dict[str, float | None]:
    return {"value": value, "low": low, "high": high}


def _jsonable(o):
    """numpy scalars/arrays without importing numpy here."""
    if hasattr(o, "tolist"):
        return o.tolist()
    if hasattr(o, "item"):
        return o.item()
    raise TypeError(f"{type(o).__name__} is not JSON serialisable")


# --- helpers for device_bench and ``edgederm results merge`` --------------------------------
MODEL_IDENTITY = ("name", "task", "classes", "checkpoint_sha256")
DATA_IDENTITY = ("dataset", "split", "images", "ids_sha256")


def ids_sha256(ids) -> str:
    """Fingerprint of the evaluated image ids, in order (``data.ids_sha256``): equal iff the same images."""
    import hashlib

    return hashlib.sha256("\n".join(map(str, ids)).encode()).hexdigest()


def merge(items: list[tuple[str, "Results"]]) -> "Results":
    """Fold results of several machines into one; ``items`` are (origin, results).

    Model and data must agree on every identity field both files give (else ``ResultsError``
    naming the two files and the field). Environments are keyed by device; the same key with
    different facts is renamed ``key#2`` and its rows follow.
    """
    if not items:
        raise ResultsError("nothing to merge: pass two or more results files")
    first_origin, first = items[0]
    merged = Results(model=dict(first.model), data=dict(first.data), source="merge")
    for origin, res in items:
        for block, keys in (("model", MODEL_IDENTITY), ("data", DATA_IDENTITY)):
            mine, theirs = getattr(merged, block), getattr(res, block)
            for k in keys:
                if k in mine and k in theirs and mine[k] != theirs[k]:
                    raise ResultsError(f"{origin} measured a different {block} than {first_origin}: {block}.{k} is "
                                       f"{_short(theirs[k])} there and {_short(mine[k])} here; merge only results of "
                                       "the same model on the same images (same bundle)")
                if k not in mine and k in theirs:
                    mine[k] = theirs[k]
        rename = {}
        for key, facts in res.environments.items():
            new = key
            i = 1
            while new in merged.environments and merged.environments[new] != facts:
                i += 1
                new = f"{key}#{i}"
            merged.environments[new] = facts
            rename[key] = new
        only = next(iter(res.environments)) if len(res.environments) == 1 else None
        for row in res.rows:
            row = dict(row)
            device = row.get("device") or only
            if device is None:
                raise ResultsError(f"{origin}: a row of {row.get('artifact')} names no device and the file has "
                                   f"{len(res.environments)} environments; cannot tell where it ran")
            row["device"] = rename.get(device, device)
            row.setdefault("origin", origin)
            merged.add(row)
    return merged


def _short(v) -> str:
    text = repr(v)
    return text if len(text) <= 40 else text[:37] + "..."
