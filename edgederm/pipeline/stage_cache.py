"""The stage cache that makes ``edgederm run`` resumable.

Each stage records a key (hash of its settings and of its input's fingerprint) and its output's
fingerprint under ``<model folder>/.stages/``; a stage whose key is unchanged and whose output
is still there with the same fingerprint is reused, not recomputed.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from edgederm.progress import log


def digest(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def file_fingerprint(path: Path) -> str:
    from edgederm.checkpoint import sha256_file

    return sha256_file(path)[:16] if path.is_file() else ""


def artifacts_fingerprint(folder: Path, names: list[str]) -> str:
    """The named artifacts as the manifest records them now, each re-hashed from disk."""
    from edgederm.checkpoint import sha256_file
    from edgederm.manifest import Manifest

    if not (folder / "manifest.json").exists():
        return ""
    manifest = Manifest.load(folder)
    have = {a.name: a for a in manifest.artifacts}
    if any(n not in have for n in names):
        return ""
    parts = []
    for n in sorted(names):
        p = folder / have[n].path
        if not p.exists():
            return ""
        parts.append((n, have[n].sha256, sha256_file(p) if p.is_file() else have[n].sha256))
    return digest(parts)


def manifest_fingerprint(export_dir: Path) -> str:
    """Every artifact the manifest records now (name and sha256), without re-hashing the files."""
    from edgederm.manifest import Manifest

    if not (export_dir / "manifest.json").exists():
        return ""
    return digest(sorted((a.name, a.sha256) for a in Manifest.load(export_dir).artifacts))


@dataclass
class StageRecord:
    key: str
    output: dict  # what the stage made: {"kind": "file", "path"} or {"kind": "artifacts", "folder", "names"}
    fingerprint: str
    seconds: float
    finished: str


class StageCache:
    def __init__(self, folder: Path):
        self.dir = folder / ".stages"

    def _path(self, stage: str) -> Path:
        return self.dir / f"{stage}.json"

    def get(self, stage: str) -> StageRecord | None:
        p = self._path(stage)
        if not p.exists():
            return None
        try:
            return StageRecord(**json.loads(p.read_text()))
        except (json.JSONDecodeError, TypeError):
            return None  # a damaged record only costs a recompute

    def put(self, stage: str, record: StageRecord) -> None:
        from edgederm.paths import atomic_path

        self.dir.mkdir(parents=True, exist_ok=True)
        target = self._path(stage)
        tmp = atomic_path(target)
        tmp.write_text(json.dumps(record.__dict__, indent=2))
        os.replace(tmp, target)


def current_fingerprint(output: dict) -> str:
    if output["kind"] == "file":
        return file_fingerprint(Path(output["path"]))
    return artifacts_fingerprint(Path(output["folder"]), output["names"])


def run_stage(cache: StageCache, folder: Path, stage: str, key: str, work: Callable[[], dict],
              events: list) -> str:
    """Run ``work`` unless the record for ``stage`` has this key and its output is intact; returns
    the output fingerprint (the next stage's input)."""
    record = cache.get(stage)
    if record and record.key == key and current_fingerprint(record.output) == record.fingerprint != "":
        log(f"run: {folder.name}: {stage} unchanged, reused")
        events.append({"stage": stage, "status": "reused", "seconds": 0.0})
        return record.fingerprint
    log(f"run: {folder.name}: {stage} ...")
    t0 = time.perf_counter()
    output = work()
    seconds = round(time.perf_counter() - t0, 1)
    fingerprint = current_fingerprint(output)
    cache.put(stage, StageRecord(key, output, fingerprint, seconds, time.strftime("%Y-%m-%dT%H:%M:%S%z")))
    events.append({"stage": stage, "status": "ran", "seconds": seconds})
    return fingerprint
