"""Where EdgeDerm finds data and keeps its cache (trained weights, artifacts, reports)."""

from __future__ import annotations

import os
import re
from pathlib import Path

from edgederm.errors import EdgeDermError


def home() -> Path:
    """The cache folder: ``$EDGEDERM_HOME``, else ``$XDG_CACHE_HOME/edgederm`` or ``~/.cache/edgederm``."""
    if os.environ.get("EDGEDERM_HOME"):
        return Path(os.environ["EDGEDERM_HOME"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "edgederm"


def candidate_data_roots() -> list[Path]:
    """Places searched for the derm data, in order: ``$EDGEDERM_DATA``, then ``../shared/data`` near the repo."""
    roots = []
    if os.environ.get("EDGEDERM_DATA"):
        roots.append(Path(os.environ["EDGEDERM_DATA"]).expanduser())
    repo = Path(__file__).resolve().parent.parent
    roots += [repo.parent / "shared" / "data", Path.cwd().parent / "shared" / "data"]
    return roots


def find_data_root(explicit: str | os.PathLike | None = None) -> Path | None:
    """The data root from ``--data``, else the first existing candidate, else None."""
    if explicit is not None:
        root = Path(explicit).expanduser()
        if not root.exists():
            raise EdgeDermError(f"data folder {root} does not exist: pass --data with an existing folder "
                                "or set EDGEDERM_DATA")
        return root
    for root in candidate_data_roots():
        if root.is_dir():
            return root
    return None


def atomic_path(target: Path) -> Path:
    """A temporary sibling of ``target``: write there, then ``os.replace`` it onto ``target``."""
    target.parent.mkdir(parents=True, exist_ok=True)
    return target.with_name(f".{target.name}.tmp-{os.getpid()}")


def safe_name(name: str) -> str:
    """A manifest's model name as a file name: no separators, no '..', nothing outside --out."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "_", str(name)).strip("._") or "model"
    return cleaned[:80]
