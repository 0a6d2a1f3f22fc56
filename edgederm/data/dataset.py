"""The dataset record every reader returns."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path

from edgederm.errors import EdgeDermError
from edgederm.tasks import task_of

# ISIC 2018 Task 3 / HAM10000 diagnosis codes, in the challenge's (alphabetical) order.
HAM10000_CLASSES = ("akiec", "bcc", "bkl", "df", "mel", "nv", "vasc")
HAM10000_NAMES = {
    "akiec": "actinic keratosis / intraepithelial carcinoma", "bcc": "basal cell carcinoma",
    "bkl": "benign keratosis", "df": "dermatofibroma", "mel": "melanoma",
    "nv": "melanocytic nevus", "vasc": "vascular lesion",
}
SPLITS = ("train", "val", "test")
ALL_SPLITS = "all"  # every sample, whatever its split


@dataclass(frozen=True)
class Sample:
    """One image: its label (classification) or mask (segmentation), its lesion group and split."""

    id: str
    image: Path
    label: int | None = None
    mask: Path | None = None
    group: str = ""
    split: str | None = None
    source: str = ""  # acquisition site / device, from metadata (edgederm.data.sources)


@dataclass
class LesionDataset:
    """Samples of one task with their class names; ``layout`` names the reader that made it."""

    name: str
    task: str  # a task name of edgederm.tasks.TASKS
    classes: tuple[str, ...]
    samples: list[Sample]
    root: Path
    layout: str
    split_source: str = "given"  # "given" by the files, or "made" by grouped_stratified_split
    info: dict = field(default_factory=dict)

    def __post_init__(self):
        if not self.samples:
            raise EdgeDermError(f"no images found in {self.root} ({self.layout} layout): check the --data folder")

    def split(self, name: str) -> "LesionDataset":
        """The samples of one split; ``all`` is the whole dataset (an external set has no splits)."""
        if name == ALL_SPLITS:
            return self
        if name not in SPLITS:
            raise EdgeDermError(f"unknown split {name!r}: use one of {', '.join(SPLITS)} or {ALL_SPLITS}")
        chosen = [s for s in self.samples if s.split == name]
        if not chosen:
            raise EdgeDermError(f"split {name!r} of {self.root} is empty")
        return replace(self, samples=chosen)

    def subset(self, n: int, seed: int = 0) -> "LesionDataset":
        """A class-stratified subset of about ``n`` samples (all classes kept when possible)."""
        if n >= len(self.samples):
            return self
        import numpy as np

        rng = np.random.default_rng(seed)
        if task_of(self.task).has_class_labels:
            from sklearn.model_selection import train_test_split

            labels = [s.label for s in self.samples]
            counts = Counter(labels)
            # sklearn needs both sides of the split to hold every class at least once
            can_stratify = min(counts.values()) >= 2 and min(n, len(labels) - n) >= len(counts)
            idx, _ = train_test_split(range(len(self.samples)), train_size=n, random_state=seed,
                                      stratify=labels if can_stratify else None)
            idx = sorted(idx)
        else:
            idx = sorted(rng.choice(len(self.samples), n, replace=False).tolist())
        return replace(self, samples=[self.samples[i] for i in idx])

    @property
    def labels(self) -> list[int]:
        return [s.label for s in self.samples]

    def counts(self) -> dict[str, dict[str, int]]:
        """{split: {class: count}} (a task without class labels: {split: {"images": count}})."""
        by_class = task_of(self.task).has_class_labels
        table: dict[str, dict[str, int]] = {}
        for s in self.samples:
            row = table.setdefault(s.split or "none", {})
            key = self.classes[s.label] if by_class else "images"
            row[key] = row.get(key, 0) + 1
        return table

    def describe(self) -> str:
        lines = [f"{self.name}: {len(self.samples)} images, {self.task}, layout {self.layout}, "
                 f"split {self.split_source}, from {self.root}"]
        for split, row in sorted(self.counts().items()):
            lines.append(f"  {split:<5} " + "  ".join(f"{k} {v}" for k, v in sorted(row.items())))
        if self.info.get("sources"):  # acquisition sources from metadata (edgederm.data.sources)
            lines.append("  sources " + "  ".join(f"{k} {v}" for k, v in sorted(self.info["sources"].items())))
        return "\n".join(lines)
