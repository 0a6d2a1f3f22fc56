"""Lesion-grouped, class-stratified splits: properties on generated labels, and the real splits."""

from __future__ import annotations

import csv
from collections import Counter, defaultdict

import numpy as np
import pytest

from edgederm.data import HAM10000_CLASSES, grouped_stratified_split, load_dataset
from edgederm.data.split import _allocate
from edgederm.errors import EdgeDermError

NAMES = ("train", "val", "test")


def make_groups(n_groups: int, seed: int, n_classes: int = 4, max_per_group: int = 4, skew: float = 2.0):
    """Random lesions of 1..max_per_group images; class per lesion, imbalanced (like HAM10000)."""
    rng = np.random.default_rng(seed)
    p = 1.0 / np.arange(1, n_classes + 1) ** skew
    p /= p.sum()
    labels, groups = [], []
    for g in range(n_groups):
        c = int(rng.choice(n_classes, p=p))
        for _ in range(int(rng.integers(1, max_per_group + 1))):
            labels.append(c)
            groups.append(f"L{g:05d}")
    # shuffle the item order so groups are not contiguous
    order = rng.permutation(len(labels))
    return [labels[i] for i in order], [groups[i] for i in order]


def splits_per_group(groups, assigned) -> dict[str, set[str]]:
    out = defaultdict(set)
    for g, a in zip(groups, assigned):
        out[g].add(a)
    return out


def leaked(groups, assigned) -> list[str]:
    return sorted(g for g, s in splits_per_group(groups, assigned).items() if len(s) > 1)


# --- properties --------------------------------------------------------------------------------------
@pytest.mark.parametrize("n_groups", [12, 40, 150, 600])
@pytest.mark.parametrize("seed", [0, 1, 2, 7, 123])
def test_no_group_in_two_splits(n_groups, seed):
    labels, groups = make_groups(n_groups, seed)
    out = grouped_stratified_split(labels, groups, seed=seed)
    assert len(out) == len(labels)
    assert set(out) <= set(NAMES) and "" not in out
    assert leaked(groups, out) == []


def test_inconsistent_labels_inside_a_group_still_stay_together():
    rng = np.random.default_rng(5)
    groups = [f"g{i // 3}" for i in range(300)]
    labels = rng.integers(0, 3, 300).tolist()  # a group's three items disagree on the class
    out = grouped_stratified_split(labels, groups, seed=5)
    assert leaked(groups, out) == []


@pytest.mark.parametrize("seed", [0, 3, 11])
def test_deterministic_per_seed(seed):
    labels, groups = make_groups(200, 99)
    a = grouped_stratified_split(labels, groups, seed=seed)
    b = grouped_stratified_split(list(labels), list(groups), seed=seed)
    assert a == b


def test_different_seeds_give_different_splits():
    labels, groups = make_groups(200, 99)
    outs = {tuple(grouped_stratified_split(labels, groups, seed=s)) for s in range(4)}
    assert len(outs) == 4


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_fractions_roughly_respected(seed):
    labels, groups = make_groups(500, seed)
    out = grouped_stratified_split(labels, groups, seed=seed)
    share = {k: v / len(out) for k, v in Counter(out).items()}
    assert abs(share["train"] - 0.70) < 0.05, share
    assert abs(share["val"] - 0.15) < 0.04, share
    assert abs(share["test"] - 0.15) < 0.04, share


def test_custom_fractions_and_names():
    labels, groups = make_groups(400, 4)
    out = grouped_stratified_split(labels, groups, fractions=(0.5, 0.5), seed=1, names=("fit", "holdout"))
    share = Counter(out)
    assert set(share) == {"fit", "holdout"}
    assert abs(share["fit"] / len(out) - 0.5) < 0.06
    assert leaked(groups, out) == []


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_class_stratification(seed):
    labels, groups = make_groups(600, seed, n_classes=4, skew=1.0)
    out = grouped_stratified_split(labels, groups, seed=seed)
    overall = Counter(labels)
    for split in NAMES:
        in_split = [lab for lab, a in zip(labels, out) if a == split]
        counts = Counter(in_split)
        for c in overall:
            # each class's share within the split stays close to its share overall
            assert abs(counts[c] / len(in_split) - overall[c] / len(labels)) < 0.06, (split, c, counts, overall)
        # and each split gets close to its fraction of every class
        frac = {"train": 0.7, "val": 0.15, "test": 0.15}[split]
        for c in overall:
            assert abs(counts[c] / overall[c] - frac) < 0.08, (split, c)


def test_rare_class_appears_in_every_split():
    labels = [0] * 400 + [1] * 30
    groups = [f"g{i}" for i in range(430)]
    out = grouped_stratified_split(labels, groups, seed=0)
    rare = Counter(a for lab, a in zip(labels, out) if lab == 1)
    assert set(rare) == set(NAMES)
    assert 15 <= rare["train"] <= 27


def test_small_balanced_set_splits():
    """7 classes x 10 single-image lesions: fewer items per class than the default 20 folds."""
    labels = [i % 7 for i in range(70)]
    groups = [f"img{i}" for i in range(70)]
    out = grouped_stratified_split(labels, groups, seed=0)
    assert set(out) == set(NAMES)
    assert Counter(out)["train"] > Counter(out)["val"]


@pytest.mark.parametrize("n_groups", [1, 2])
def test_too_few_groups(n_groups):
    labels = [0] * (3 * n_groups)
    groups = [f"g{i % n_groups}" for i in range(3 * n_groups)]
    with pytest.raises(EdgeDermError, match="lesion groups"):
        grouped_stratified_split(labels, groups)


def test_too_few_items_per_class_is_an_edgederm_error():
    # 3 groups but every class has fewer than 3 items: no 3-fold stratified split exists
    with pytest.raises(EdgeDermError):
        grouped_stratified_split([0, 1, 2], ["a", "b", "c"])


def test_bad_arguments():
    with pytest.raises(EdgeDermError, match="sum to 1"):
        grouped_stratified_split([0] * 30, list(range(30)), fractions=(0.7, 0.2, 0.2))
    with pytest.raises(ValueError):
        grouped_stratified_split([0, 1], ["a"])


@pytest.mark.parametrize("fractions, k, expected", [
    ((0.7, 0.15, 0.15), 20, [14, 3, 3]),
    ((0.8, 0.1, 0.1), 3, [1, 1, 1]),
    ((0.8, 0.1, 0.1), 10, [8, 1, 1]),
    ((0.5, 0.25, 0.25), 20, [10, 5, 5]),
    ((0.7, 0.15, 0.15), 12, [8, 2, 2]),
])
def test_allocate_folds(fractions, k, expected):
    got = _allocate(fractions, k)
    assert got == expected and sum(got) == k and min(got) >= 1


def test_synthetic_derm7_split_is_grouped(synthetic_root):
    ds = load_dataset(synthetic_root / "derm7", seed=0)
    assert ds.split_source.startswith("made")
    groups = [s.group for s in ds.samples]
    assert leaked(groups, [s.split for s in ds.samples]) == []
    assert {s.split for s in ds.samples} == set(NAMES)


# --- the real data -----------------------------------------------------------------------------------
# README table (shared/data/README.md): dx -> (train, val, test)
DERM7_TABLE = {
    "akiec": (229, 49, 49), "bcc": (360, 77, 77), "bkl": (769, 165, 165), "df": (80, 18, 17),
    "mel": (779, 167, 167), "nv": (4200, 900, 900), "vasc": (98, 22, 22),
}


@pytest.fixture(scope="module")
def real_derm7(real_data_root):
    return load_dataset(real_data_root / "derm7")


@pytest.mark.realdata
def test_real_derm7_given_split_counts(real_derm7):
    ds = real_derm7
    assert ds.layout == "derm7" and ds.split_source == "given"
    assert len(ds.samples) == 9310
    per_split = Counter(s.split for s in ds.samples)
    assert per_split == {"train": 6515, "val": 1398, "test": 1397}
    counts = ds.counts()
    for dx, row in DERM7_TABLE.items():
        assert tuple(counts[sp].get(dx, 0) for sp in NAMES) == row, dx


@pytest.mark.realdata
def test_real_derm7_given_split_has_no_lesion_leakage(real_derm7, real_data_root):
    assert leaked([s.group for s in real_derm7.samples], [s.split for s in real_derm7.samples]) == []
    # the same check straight from the CSV, independent of the reader
    with open(real_data_root / "derm7" / "labels.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert leaked([r["lesion_id"] for r in rows], [r["split"] for r in rows]) == []
    assert len({r["lesion_id"] for r in rows}) == 6907
    assert {r["dx"] for r in rows} == set(HAM10000_CLASSES)


@pytest.mark.realdata
def test_real_derm7_images_exist(real_derm7):
    missing = [s.image for s in real_derm7.samples if not s.image.is_file()]
    assert missing == []


@pytest.mark.realdata
def test_our_split_of_real_derm7_has_no_leakage(real_derm7):
    labels = real_derm7.labels
    groups = [s.group for s in real_derm7.samples]
    out = grouped_stratified_split(labels, groups, seed=1)
    assert leaked(groups, out) == []
    share = {k: v / len(out) for k, v in Counter(out).items()}
    assert abs(share["train"] - 0.7) < 0.02 and abs(share["val"] - 0.15) < 0.02, share
    # every class, even df (115 images), lands in every split
    for c in range(len(HAM10000_CLASSES)):
        assert {a for lab, a in zip(labels, out) if lab == c} == set(NAMES)


@pytest.mark.realdata
def test_real_lesionseg_split_counts(real_data_root):
    ds = load_dataset(real_data_root / "lesionseg")
    assert ds.layout == "lesionseg" and ds.split_source == "given"
    assert Counter(s.split for s in ds.samples) == {"train": 1793, "val": 385, "test": 385}
    assert len({s.id for s in ds.samples}) == 2563
    assert all(s.image.is_file() and s.mask.is_file() for s in ds.samples)
