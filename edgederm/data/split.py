"""Seeded train/val/test splits grouped by lesion (no lesion in two splits) and stratified by class."""

from __future__ import annotations

from collections import Counter, defaultdict

from edgederm.errors import EdgeDermError


def grouped_stratified_split(labels, groups, fractions=(0.7, 0.15, 0.15), seed: int = 0,
                             names=("train", "val", "test")) -> list[str]:
    """Assign every item a split name; all items of a group share one split.

    Uses scikit-learn's ``StratifiedGroupKFold`` with ``k`` folds and gives each split a
    number of folds proportional to its fraction, so class proportions stay close to the
    whole set's while groups (lesions) never straddle two splits.

    Args:
        labels: class per item (a group's items should share one class; the group's most
            common class is used for stratification otherwise).
        groups: group key per item (``lesion_id``; the image id where none exists).
        fractions: share of items per split, summing to 1.
    """
    from sklearn.model_selection import StratifiedGroupKFold

    if len(labels) != len(groups):
        raise ValueError("labels and groups differ in length")
    if abs(sum(fractions) - 1) > 1e-6:
        raise EdgeDermError(f"split fractions {fractions} must sum to 1")
    n_groups = len(set(groups))
    # Stratify by the group's majority class so a group's items are labelled consistently.
    by_group = defaultdict(Counter)
    for lab, g in zip(labels, groups):
        by_group[g][lab] += 1
    group_label = {g: c.most_common(1)[0][0] for g, c in by_group.items()}
    strat = [group_label[g] for g in groups]
    # StratifiedGroupKFold refuses more folds than the largest class has items.
    largest = max(Counter(strat).values(), default=0)
    k = min(20, n_groups, largest)
    if k < len(names):
        raise EdgeDermError(f"too few items to split: {n_groups} lesion groups, largest class {largest} "
                            f"item(s); at least {len(names)} of each are needed")
    folds_per_split = _allocate(fractions, k)
    fold_to_split = [name for name, n in zip(names, folds_per_split) for _ in range(n)]
    splitter = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
    out = [""] * len(labels)
    for fold, (_, test_idx) in enumerate(splitter.split(list(range(len(labels))), strat, groups)):
        for i in test_idx:
            out[i] = fold_to_split[fold]
    return out


def _allocate(fractions, k: int) -> list[int]:
    """Whole folds per split, at least one each, summing to k (largest remainder)."""
    raw = [f * k for f in fractions]
    counts = [max(1, int(r)) for r in raw]
    while sum(counts) < k:
        i = max(range(len(raw)), key=lambda j: raw[j] - counts[j])
        counts[i] += 1
    while sum(counts) > k:
        i = max(range(len(raw)), key=lambda j: counts[j] - raw[j] if counts[j] > 1 else -1e9)
        counts[i] -= 1
    return counts
