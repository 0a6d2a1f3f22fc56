"""Readers for the on-disk layouts EdgeDerm understands, registered by name."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Callable

from edgederm.data.dataset import HAM10000_CLASSES, SPLITS, LesionDataset, Sample
from edgederm.data.split import grouped_stratified_split
from edgederm.data.sources import with_sources
from edgederm.errors import EdgeDermError
from edgederm.registry import Registry

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")
LAYOUTS: Registry[Callable[..., LesionDataset]] = Registry("data layout")


def _read_csv(path: Path, required: tuple[str, ...]) -> list[dict[str, str]]:
    try:
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f))
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise EdgeDermError(f"cannot read {path}: {e}") from None
    missing = [c for c in required if not rows or c not in rows[0]]
    if missing:
        raise EdgeDermError(f"{path} lacks column(s) {', '.join(missing)}: expected {', '.join(required)}")
    return rows


def _class_index(dx: str, classes: tuple[str, ...], path: Path, line: int) -> int:
    try:
        return classes.index(dx)
    except ValueError:
        raise EdgeDermError(f"{path} line {line}: unknown class {dx!r}; expected one of "
                            f"{', '.join(classes)}") from None


def _check_split(value: str, path: Path, line: int) -> str:
    if value not in SPLITS:
        raise EdgeDermError(f"{path} line {line}: split {value!r} is not one of {', '.join(SPLITS)}")
    return value


def _with_split(ds: LesionDataset, seed: int) -> LesionDataset:
    """Give a dataset without splits a lesion-grouped, class-stratified one."""
    if all(s.split for s in ds.samples):
        return ds
    labels = [s.label if s.label is not None else 0 for s in ds.samples]
    groups = [s.group or s.id for s in ds.samples]
    assigned = grouped_stratified_split(labels, groups, seed=seed)
    ds.samples = [Sample(**{**s.__dict__, "split": a}) for s, a in zip(ds.samples, assigned)]
    ds.split_source = f"made (grouped by lesion, stratified, seed {seed})"
    return ds


@LAYOUTS.register("derm7")
def read_derm7(root: Path, seed: int = 0) -> LesionDataset:
    """``images/<image_id>.jpg`` + ``labels.csv`` (image_id, lesion_id, dx, split)."""
    path = root / "labels.csv"
    rows = _read_csv(path, ("image_id", "lesion_id", "dx"))
    has_split = "split" in rows[0]
    samples = []
    for line, r in enumerate(rows, start=2):
        samples.append(Sample(
            id=r["image_id"], image=root / "images" / f"{r['image_id']}.jpg",
            label=_class_index(r["dx"], HAM10000_CLASSES, path, line), group=r["lesion_id"],
            split=_check_split(r["split"], path, line) if has_split and r["split"] else None))
    ds = LesionDataset("derm7", "classification", HAM10000_CLASSES, samples, root, "derm7")
    return _with_split(ds, seed)


@LAYOUTS.register("lesionseg")
def read_lesionseg(root: Path, seed: int = 0) -> LesionDataset:
    """``images/<id>.jpg`` + ``masks/<id>.png`` (0/255) + ``split.csv`` (id, split)."""
    split_csv = root / "split.csv"
    if split_csv.exists():
        rows = _read_csv(split_csv, ("id", "split"))
        ids = [(r["id"], _check_split(r["split"], split_csv, i)) for i, r in enumerate(rows, start=2)]
    else:
        ids = [(p.stem, None) for p in sorted((root / "images").glob("*.jpg"))]
    samples = [Sample(id=i, image=root / "images" / f"{i}.jpg", mask=root / "masks" / f"{i}.png",
                      group=i, split=s) for i, s in ids]
    ds = LesionDataset("lesionseg", "segmentation", ("background", "lesion"), samples, root, "lesionseg")
    return _with_split(ds, seed)


@LAYOUTS.register("ham10000")
def read_ham10000(root: Path, seed: int = 0) -> LesionDataset:
    """The original release: ``HAM10000_metadata.csv`` + images in any subfolder(s)."""
    path = root / "HAM10000_metadata.csv"
    rows = _read_csv(path, ("lesion_id", "image_id", "dx"))
    found = {p.stem: p for p in root.rglob("ISIC_*") if p.suffix.lower() in IMAGE_SUFFIXES}
    samples = []
    for line, r in enumerate(rows, start=2):
        if r["image_id"] not in found:
            raise EdgeDermError(f"{path} line {line}: image {r['image_id']} not found under {root}")
        samples.append(Sample(id=r["image_id"], image=found[r["image_id"]],
                              label=_class_index(r["dx"], HAM10000_CLASSES, path, line),
                              group=r["lesion_id"]))
    ds = LesionDataset("ham10000", "classification", HAM10000_CLASSES, samples, root, "ham10000")
    return _with_split(ds, seed)


@LAYOUTS.register("isic_task1")
def read_isic_task1(root: Path, seed: int = 0) -> LesionDataset:
    """ISIC Task 1: ``ISIC_xxxxxxx.jpg`` with ``ISIC_xxxxxxx_segmentation.png`` anywhere below root."""
    masks = {p.name[: -len("_segmentation.png")]: p for p in root.rglob("ISIC_*_segmentation.png")}
    images = {p.stem: p for p in root.rglob("ISIC_*.jpg")}
    missing = sorted(set(images) - set(masks))
    if missing:
        raise EdgeDermError(f"{len(missing)} image(s) under {root} have no mask, e.g. {images[missing[0]]}: "
                            "expected ISIC_xxxxxxx_segmentation.png beside the ground truth")
    samples = [Sample(id=i, image=images[i], mask=masks[i], group=i) for i in sorted(images)]
    ds = LesionDataset("isic_task1", "segmentation", ("background", "lesion"), samples, root, "isic_task1")
    return _with_split(ds, seed)


@LAYOUTS.register("folder")
def read_folder(root: Path, seed: int = 0) -> LesionDataset:
    """A class-per-folder tree, ``root/<class>/*.jpg``, optionally under ``root/<split>/``.

    No lesion ids exist in such a tree, so each image is its own group; say so in the split.
    """
    split_dirs = [d for d in SPLITS if (root / d).is_dir()]
    bases = [(root / d, d) for d in split_dirs] if split_dirs else [(root, None)]
    classes = sorted({c.name for base, _ in bases for c in base.iterdir() if c.is_dir()})
    if not classes:
        raise EdgeDermError(f"{root} has no class folders: expected {root}/<class>/<image>.jpg")
    samples = []
    for base, split in bases:
        for ci, cls in enumerate(classes):
            for p in sorted((base / cls).glob("*")):
                if p.suffix.lower() in IMAGE_SUFFIXES:
                    samples.append(Sample(id=p.stem, image=p, label=ci, group=p.stem, split=split))
    ds = LesionDataset(root.name, "classification", tuple(classes), samples, root, "folder")
    return _with_split(ds, seed)


def detect_layout(root: Path) -> str:
    """Name of the layout found at ``root``; a one-line error listing what was looked for otherwise."""
    if (root / "labels.csv").exists() and (root / "images").is_dir():
        return "derm7"
    if (root / "masks").is_dir() and (root / "images").is_dir():
        return "lesionseg"
    if (root / "HAM10000_metadata.csv").exists():
        return "ham10000"
    if next(root.rglob("ISIC_*_segmentation.png"), None) is not None:
        return "isic_task1"
    if any(d.is_dir() and any(d.iterdir()) for d in root.iterdir()):
        return "folder"
    raise EdgeDermError(f"no known data layout in {root}: expected labels.csv+images/ (derm7), "
                        "images/+masks/ (lesionseg), HAM10000_metadata.csv, ISIC_*_segmentation.png, "
                        "or class folders")


def load_dataset(path, layout: str | None = None, seed: int = 0) -> LesionDataset:
    """Read the dataset at ``path`` (layout detected unless given)."""
    root = Path(path).expanduser()
    if not root.is_dir():
        raise EdgeDermError(f"data folder {root} does not exist: pass --data or set EDGEDERM_DATA")
    return with_sources(_checked(LAYOUTS.get(layout or detect_layout(root))(root, seed=seed), root))


def _checked(ds: LesionDataset, root: Path) -> LesionDataset:
    """Image ids are unique and every file a label table names stays inside the dataset folder."""
    seen: set[str] = set()
    for s in ds.samples:
        if s.id in seen:
            raise EdgeDermError(f"{root}: image id {s.id!r} appears twice in the label table: keep one row per image")
        seen.add(s.id)
    for s in ds.samples:  # lexically: a dataset may be a farm of symlinks, but no row may say '..'
        for f in (s.image, s.mask):
            if f is None:
                continue
            try:
                rel = Path(f).relative_to(root)
            except ValueError:
                rel = Path("..")
            if ".." in rel.parts:
                raise EdgeDermError(f"{root}: image id {s.id!r} names a file outside the dataset folder; refused")
    return ds


def find_dataset(name: str | None, data_root=None, what: str = "dataset") -> Path:
    """The folder for a dataset ``name`` (below ``data_root``, or a path), with a one-line error if absent."""
    candidates = []
    if name and data_root is not None:
        candidates.append(Path(data_root) / name)
    if name:
        candidates.append(Path(name).expanduser())
    root = next((c for c in candidates if c.is_dir()), None)
    if root is None:
        raise EdgeDermError(f"{what} {name!r} not found: pass --data DIR (holding {name}/) or a dataset path, "
                            "or set EDGEDERM_DATA")
    return root
