"""Download public derm data for online users (never needed by tests; this machine is offline).

* DermaMNIST (MedMNIST v2; HAM10000 at 28/64/128/224 px, split by MedMNIST) via the ``medmnist``
  package, written in the derm7 layout so every EdgeDerm command reads it.
* ISIC Archive images via the official ``isic-cli`` (``isic image download``), e.g. for a
  collection or a search query; the metadata CSV it writes is turned into ``labels.csv``.
"""

from __future__ import annotations

import csv
import shutil
import subprocess
from pathlib import Path

from edgederm.data.dataset import HAM10000_CLASSES
from edgederm.errors import EdgeDermError

# DermaMNIST's label order (its INFO['dermamnist']['label']) in HAM10000 codes.
DERMAMNIST_CODES = ("akiec", "bcc", "bkl", "df", "mel", "nv", "vasc")


def download_dermamnist(out: Path, size: int = 224) -> Path:
    """Fetch DermaMNIST at ``size`` px into ``out`` (derm7 layout, MedMNIST's own split kept)."""
    try:
        import medmnist
    except ImportError:
        raise EdgeDermError("DermaMNIST download needs the medmnist package: pip install medmnist") from None
    from PIL import Image

    out.mkdir(parents=True, exist_ok=True)
    (out / "images").mkdir(exist_ok=True)
    rows = []
    for split in ("train", "val", "test"):
        ds = medmnist.DermaMNIST(split=split, download=True, size=size, root=str(out))
        for i in range(len(ds)):
            img, label = ds[i]
            image_id = f"DERMAMNIST_{split}_{i:05d}"
            (img if isinstance(img, Image.Image) else Image.fromarray(img)).save(out / "images" / f"{image_id}.jpg", quality=95)
            # MedMNIST gives no lesion ids; its split follows HAM10000's, so each image is its own group.
            rows.append((image_id, image_id, DERMAMNIST_CODES[int(label[0])], split))
    with open(out / "labels.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["image_id", "lesion_id", "dx", "split"])
        w.writerows(rows)
    return out


def download_isic(out: Path, search: str = "", collections: str = "", limit: int = 0) -> Path:
    """Fetch ISIC Archive images and metadata with ``isic image download`` into ``out`` (derm7 layout)."""
    if shutil.which("isic") is None:
        raise EdgeDermError("ISIC download needs the isic-cli tool: pip install isic-cli")
    images = out / "images"
    images.mkdir(parents=True, exist_ok=True)
    cmd = ["isic", "image", "download", str(images)]
    if search:
        cmd += ["--search", search]
    if collections:
        cmd += ["--collections", collections]
    if limit:
        cmd += ["--limit", str(limit)]
    if subprocess.run(cmd).returncode != 0:
        raise EdgeDermError(f"'{' '.join(cmd)}' failed: see its output above")
    meta = images / "metadata.csv"
    rows = []
    with open(meta, newline="") as f:
        for r in csv.DictReader(f):
            dx = _isic_dx(r)
            if dx in HAM10000_CLASSES:
                rows.append((r["isic_id"], r.get("lesion_id") or r["isic_id"], dx))
    with open(out / "labels.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["image_id", "lesion_id", "dx"])
        w.writerows(rows)
    return out


_ISIC_TO_CODE = {"nevus": "nv", "melanoma": "mel", "basal cell carcinoma": "bcc", "actinic keratosis": "akiec",
                 "squamous cell carcinoma": "akiec", "seborrheic keratosis": "bkl", "solar lentigo": "bkl",
                 "lichen planus like keratosis": "bkl", "dermatofibroma": "df", "vascular lesion": "vasc"}


def _isic_dx(row: dict) -> str:
    for key in ("diagnosis_3", "diagnosis_2", "diagnosis_1", "diagnosis"):
        value = (row.get(key) or "").strip().lower()
        for name, code in _ISIC_TO_CODE.items():
            if name in value:
                return code
    return ""
