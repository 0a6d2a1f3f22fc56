"""Decode a dataset once into uint8 arrays at the model's input size (cached in EDGEDERM_HOME).

CPU training is dominated by JPEG decoding unless images are decoded once: 9,310 derm7
images at 144x192 are 0.8 GB of uint8, which fits in memory and reloads in a second.
"""

from __future__ import annotations

import hashlib
import json
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgederm.data.dataset import LesionDataset
from edgederm.errors import EdgeDermError
from edgederm.paths import home
from edgederm.preprocessing import Preprocessing
from edgederm.progress import progress
from edgederm.tasks import task_of

CACHE_VERSION = 1


@dataclass
class Arrays:
    """Images as uint8 NHWC RGB; ``targets`` are int64 labels or uint8 NHW 0/1 masks."""

    images: np.ndarray
    targets: np.ndarray
    ids: list[str]

    def __len__(self) -> int:
        return len(self.ids)


def open_image(path: Path):
    """The decoded PIL image at ``path``; a missing or corrupt file is a one-line error naming it."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            im.load()
            return im.copy()
    except FileNotFoundError:
        raise EdgeDermError(f"image {path} is missing: check the data folder") from None
    except (UnidentifiedImageError, OSError, SyntaxError) as e:
        raise EdgeDermError(f"image {path} is corrupt or not an image ({e}): remove or replace it") from None


def _decode(ds: LesionDataset, prep: Preprocessing, i: int):
    s = ds.samples[i]
    image = prep.resize_image(open_image(s.image))
    if task_of(ds.task).has_class_labels:
        return image, s.label
    return image, prep.resize_mask(open_image(s.mask))


def _cache_key(ds: LesionDataset, prep: Preprocessing) -> str:
    payload = json.dumps([CACHE_VERSION, str(Path(ds.root).resolve()), ds.layout, ds.task,
                          [s.id for s in ds.samples], list(prep.input_size), prep.resize,
                          prep.interpolation], sort_keys=True)
    return hashlib.sha1(payload.encode()).hexdigest()[:16]


def load_arrays(ds: LesionDataset, prep: Preprocessing, cache: bool = True, desc: str = "decode") -> Arrays:
    """Decode every sample of ``ds`` resized by ``prep`` (normalisation happens later, in torch)."""
    cache_dir = home() / "arrays"
    key = _cache_key(ds, prep)
    img_file, tgt_file = cache_dir / f"{key}.images.npy", cache_dir / f"{key}.targets.npy"
    ids = [s.id for s in ds.samples]
    if cache and img_file.exists() and tgt_file.exists():
        targets = np.load(tgt_file, allow_pickle=False)
        if task_of(ds.task).has_class_labels:  # labels are not in the cache key: take them from ds, never stale
            targets = np.asarray([s.label for s in ds.samples], np.int64)
        return Arrays(np.load(img_file, allow_pickle=False), targets, ids)
    n = len(ds.samples)
    h, w = prep.input_size
    images = np.empty((n, h, w, 3), np.uint8)
    targets = task_of(ds.task).empty_targets(n, h, w)
    with ThreadPoolExecutor(max_workers=min(8, (os.cpu_count() or 2) * 2)) as pool:
        for i, (im, t) in progress(enumerate(pool.map(lambda j: _decode(ds, prep, j), range(n))),
                                   total=n, desc=desc):
            images[i], targets[i] = im, t
    if cache:
        cache_dir.mkdir(parents=True, exist_ok=True)
        for arr, dst in ((images, img_file), (targets, tgt_file)):
            tmp = dst.with_name(f".{dst.name}.{os.getpid()}.tmp.npy")
            np.save(tmp, arr)
            os.replace(tmp, dst)
    return Arrays(images, targets, ids)
