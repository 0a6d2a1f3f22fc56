"""Shared fixtures: an isolated EDGEDERM_HOME, generated data, and the real data when present."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
REAL_DATA = Path(os.environ.get("EDGEDERM_DATA", REPO.parent / "shared" / "data"))
NO_REAL_DATA = ("real derm data not found at ../shared/data or $EDGEDERM_DATA "
                "(derm7/ and lesionseg/); these tests need the real images")


@pytest.fixture(autouse=True, scope="session")
def _isolated_home(tmp_path_factory):
    """Every test run gets its own cache; nothing touches the user's ~/.cache/edgederm."""
    old = {k: os.environ.get(k) for k in ("EDGEDERM_HOME", "EDGEDERM_QUIET", "NNCF_CI")}
    os.environ["EDGEDERM_HOME"] = str(tmp_path_factory.mktemp("edgederm_home"))
    os.environ["EDGEDERM_QUIET"] = "1"
    os.environ["NNCF_CI"] = "1"
    yield
    for k, v in old.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture(scope="session")
def real_data_root() -> Path:
    if not (REAL_DATA / "derm7" / "labels.csv").exists() or not (REAL_DATA / "lesionseg" / "split.csv").exists():
        pytest.skip(NO_REAL_DATA)
    return REAL_DATA


@pytest.fixture(scope="session")
def synthetic_root(tmp_path_factory) -> Path:
    """A data root with small generated derm7/ and lesionseg/ sets (made once per run)."""
    from edgederm.data.synthetic import ensure_synthetic

    return ensure_synthetic(tmp_path_factory.mktemp("synthetic"))
