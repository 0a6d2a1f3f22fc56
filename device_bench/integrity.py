"""The one home of EdgeDerm's integrity checks, shared by the host and the device runner.

- ``sha256_file`` / ``sha256_path``: a file's hash; a folder (``.mlpackage``) hashes as its
  relative names and file hashes in order.
- ``contained``: a path read from a manifest, resolved inside its folder or refused
  (absolute paths, ``..``, and symlinks that lead out).
- ``proven``: ``contained`` + exists + sha256 equal to the recorded one.
- ``dumps`` / ``write_json``: JSON that never holds NaN or Infinity (null instead), written
  through a temporary sibling and a rename.

Standard library only (a device has numpy and one runtime, nothing else).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from pathlib import Path


class IntegrityError(ValueError):
    """A file read from elsewhere is not what its manifest says (path outside, missing, changed)."""


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def sha256_path(path: Path) -> str:
    """A file's sha256; for a folder (.mlpackage): relative names and file hashes in order."""
    path = Path(path)
    if not path.is_dir():
        return sha256_file(path)
    h = hashlib.sha256()
    for f in sorted(p for p in path.rglob("*") if p.is_file()):
        h.update(str(f.relative_to(path)).encode())
        h.update(bytes.fromhex(sha256_file(f)))
    return h.hexdigest()


def contained(root: Path, relative: str, what: str = "path") -> Path:
    """``root / relative`` if it stays inside ``root`` once resolved (symlinks included), else ``IntegrityError``."""
    if not isinstance(relative, str) or not relative.strip():
        raise IntegrityError(f"{what} {relative!r} is not a relative file name")
    rel = Path(relative)
    if rel.is_absolute() or relative.startswith(("/", "\\")) or ".." in rel.parts or ":" in rel.parts[0]:
        raise IntegrityError(f"{what} {relative!r} must be a plain path inside its folder (no absolute path, no '..')")
    base = Path(root).resolve()
    target = (base / rel).resolve()
    if target != base and base not in target.parents:
        raise IntegrityError(f"{what} {relative!r} leads outside {base} (through a symlink)")
    if target == base:
        raise IntegrityError(f"{what} {relative!r} names the folder itself, not a file in it")
    return base / rel


def proven(root: Path, relative: str, sha256: str | None, what: str = "artifact") -> Path:
    """The file at ``root / relative``, inside ``root``, present, and with the recorded sha256."""
    path = contained(root, relative, what)
    if not path.exists():
        raise IntegrityError(f"{what} {relative} is missing from {Path(root)}")
    if not sha256:
        raise IntegrityError(f"the manifest gives no sha256 for {what} {relative}")
    got = sha256_path(path)
    if got != sha256:
        raise IntegrityError(f"{what} {relative} has sha256 {got[:12]}..., the manifest says {str(sha256)[:12]}...: "
                             "the file was changed or damaged since it was recorded")
    return path


def finite(obj):
    """``obj`` with every NaN/Infinity float replaced by None (JSON has no such numbers)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite(v) for v in obj]
    if hasattr(obj, "item") and getattr(obj, "shape", None) == ():  # numpy scalar
        return finite(obj.item())
    return obj


def dumps(obj, indent: int | None = 2, default=None) -> str:
    """Strict JSON: NaN and Infinity become null; anything else not serialisable goes to ``default``."""
    if default is not None:
        obj = json.loads(json.dumps(obj, default=default))  # reduce to plain types first (NaN survives, then goes)
    return json.dumps(finite(obj), indent=indent, allow_nan=False)


def write_json(path: Path, obj, indent: int | None = 2, default=None) -> Path:
    """Write strict JSON to ``path`` through a temporary sibling and a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        tmp.write_text(dumps(obj, indent=indent, default=default) + "\n")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path
