"""Small generated image sets in the derm7 and lesionseg layouts, for unit tests and offline demos.

They are clearly synthetic (coloured ellipses on a skin-toned background with noise): a
model can learn them in seconds, which exercises every code path, but their numbers say
nothing about dermoscopy. Each "lesion" is photographed twice (two images, one lesion_id)
so the lesion-grouped split is exercised too.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from edgederm.data.dataset import HAM10000_CLASSES

# One hue per class (RGB), so the classes are separable by colour.
_CLASS_RGB = [(150, 60, 50), (200, 120, 140), (120, 90, 60), (170, 140, 90), (40, 30, 30), (110, 70, 45), (170, 30, 60)]


def _draw(rng, h: int, w: int, rgb) -> tuple[np.ndarray, np.ndarray]:
    yy, xx = np.mgrid[0:h, 0:w]
    cy, cx = rng.uniform(0.35, 0.65) * h, rng.uniform(0.35, 0.65) * w
    ry, rx = rng.uniform(0.15, 0.35) * h, rng.uniform(0.15, 0.35) * w
    mask = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1.0
    skin = np.array([224, 180, 160]) + rng.normal(0, 8, 3)
    img = np.broadcast_to(skin, (h, w, 3)).copy()
    img[mask] = np.array(rgb) + rng.normal(0, 10, 3)
    img += rng.normal(0, 6, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8), mask


def make_derm7(root: Path, lesions_per_class: int = 8, size=(48, 64), seed: int = 0,
               classes=HAM10000_CLASSES) -> Path:
    """Write ``images/`` and ``labels.csv`` (no split column: the reader makes a grouped one)."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True, exist_ok=True)
    rows = []
    for ci, cls in enumerate(classes):
        for li in range(lesions_per_class):
            lesion = f"SYN_L{ci}{li:04d}"
            for k in range(2):
                image_id = f"SYN_{ci}{li:04d}{k}"
                img, _ = _draw(rng, *size, _CLASS_RGB[ci % len(_CLASS_RGB)])
                Image.fromarray(img).save(root / "images" / f"{image_id}.jpg", quality=92)
                rows.append((image_id, lesion, cls))
    with open(root / "labels.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["image_id", "lesion_id", "dx"])
        writer.writerows(rows)
    return root


def make_lesionseg(root: Path, n: int = 48, size=(64, 96), seed: int = 0) -> Path:
    """Write ``images/``, ``masks/`` (0/255 PNG) and ``split.csv`` (70/15/15)."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "masks").mkdir(parents=True, exist_ok=True)
    splits = ["train"] * int(n * 0.7) + ["val"] * int(n * 0.15)
    splits += ["test"] * (n - len(splits))
    with open(root / "split.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["id", "split"])
        for i in range(n):
            sid = f"SYN_{i:07d}"
            img, mask = _draw(rng, *size, _CLASS_RGB[i % len(_CLASS_RGB)])
            Image.fromarray(img).save(root / "images" / f"{sid}.jpg", quality=92)
            Image.fromarray((mask * 255).astype(np.uint8)).save(root / "masks" / f"{sid}.png")
            writer.writerow([sid, splits[i]])
    return root


def ensure_synthetic(base: Path) -> Path:
    """``base/derm7`` and ``base/lesionseg`` made once; returns ``base`` (a data root)."""
    if not (base / "derm7" / "labels.csv").exists():
        make_derm7(base / "derm7")
    if not (base / "lesionseg" / "split.csv").exists():
        make_lesionseg(base / "lesionseg")
    return base
