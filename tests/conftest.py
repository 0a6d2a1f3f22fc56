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


@pytest.fixture(scope="session")
def tiny_classifier(synthetic_root, tmp_path_factory):
    """A MobileNetV3-Small checkpoint at 48x64, trained 3 epochs on the synthetic derm7 set."""
    from edgederm.train import TrainConfig, train

    out = tmp_path_factory.mktemp("ck") / "cls"
    return train(TrainConfig("mobilenetv3_small", "derm7", epochs=3, batch_size=16, lr=3e-3, warmup_steps=3,
                             input_size=(48, 64)), synthetic_root, out, n_boot=0)


@pytest.fixture(scope="session")
def tiny_segmenter(synthetic_root, tmp_path_factory):
    """A SegNet checkpoint at 64x96, trained 3 epochs on the synthetic lesionseg set."""
    from edgederm.train import TrainConfig, train

    out = tmp_path_factory.mktemp("ck") / "seg"
    return train(TrainConfig("segnet", "lesionseg", epochs=3, batch_size=8, lr=3e-3, warmup_steps=3,
                             input_size=(64, 96), label_smoothing=0.0, class_weighting="none"),
                 synthetic_root, out, n_boot=0)
