"""Calibration images for post-training quantization, always through the model's own preprocessing.

A calibration set is held as uint8 RGB pixels at the model's input size (``[N, H, W, 3]``),
exactly what ``Preprocessing.resize_image`` gives; every quantizer receives them normalised by
``CalibrationSet.inputs(layout)``, which is ``Preprocessing.normalize`` with the manifest's
mean/std/scale/channel order. There is no second normalisation path to get wrong.

Sources (``CalibrationConfig.source``):

* ``None`` (default): a seeded sample of the **train** split of the model's dataset, class-
  stratified for classifiers (200 images), random for segmenters (100 images);
* a folder of image files (``.jpg .jpeg .png .bmp``), each resized by the model's preprocessing;
* a ``.npy`` file holding uint8 RGB pixels ``[N, H, W, 3]`` at the model's input size (float
  arrays in 0..1 are accepted and scaled to 0..255; normalised or NCHW arrays are refused).

What was used is recorded (``CalibrationSet.record``): count, source, split, selection method,
per-class counts and a sha256 of the chosen image ids, so a quantized artifact can be traced to
the exact images that set its ranges.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from edgederm.errors import EdgeDermError
from edgederm.manifest import Manifest
from edgederm.preprocessing import Preprocessing
from edgederm.tasks import task_of

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")


@dataclass(frozen=True)
class CalibrationConfig:
    """Which images calibrate the quantizers.

    Attributes:
        source: ``None`` for the model's dataset, else a folder of images or a ``.npy`` file.
        size: images to use (default: the task's ``calibration_images``, 200 for classification,
            100 for segmentation); a folder or array with more is sub-sampled with ``seed``.
        split: dataset split to draw from (only for ``source=None``); ``train`` keeps the
            verification (test) images out of calibration.
        seed: selection seed.
        dataset: dataset folder name or path, overriding the manifest's ``model.dataset``.
    """

    source: str | None = None
    size: int | None = None
    split: str = "train"
    seed: int = 0
    dataset: str | None = None

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class CalibrationSet:
    """Calibration pixels (uint8 NHWC RGB at the model's input size) and how they were chosen."""

    images: np.ndarray
    preprocessing: Preprocessing
    record: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.images)

    def inputs(self, layout: str = "NCHW") -> np.ndarray:
        """The normalised float32 batch a quantizer feeds the model, in ``layout`` (NCHW or NHWC)."""
        return self.preprocessing.replace(layout=layout).normalize(self.images)


def ids_hash(ids: list[str]) -> str:
    """sha256 of the chosen ids (sorted, newline-joined): the same images give the same hash."""
    return hashlib.sha256("\n".join(sorted(ids)).encode()).hexdigest()


def default_size(task: str) -> int:
    """The task's default calibration sample (``TaskSpec.calibration_images``)."""
    return task_of(task).calibration_images


def load_calibration(manifest: Manifest, config: CalibrationConfig | None = None,
                     data_root: str | Path | None = None) -> CalibrationSet:
    """The calibration set for ``manifest``'s model as ``config`` says (see the module docstring)."""
    config = config or CalibrationConfig()
    size = config.size if config.size is not None else default_size(manifest.task)
    if size < 1:
        raise EdgeDermError(f"--calibration-size {size} must be at least 1")
    if config.source is None:
        return from_dataset(manifest, config, size, data_root)
    path = Path(config.source).expanduser()
    if not path.exists():
        raise EdgeDermError(f"calibration source {path} does not exist: pass --calibration with a folder of "
                            "images or a .npy file")
    if path.is_dir():
        return from_folder(path, manifest.preprocessing, size, config.seed)
    if path.suffix.lower() == ".npy":
        return from_npy(path, manifest.preprocessing, size, config.seed)
    raise EdgeDermError(f"calibration source {path} is neither a folder nor a .npy file: pass a folder of images "
                        "or a uint8 [N, H, W, 3] .npy array")


def from_dataset(manifest: Manifest, config: CalibrationConfig, size: int, data_root) -> CalibrationSet:
    from edgederm.data import load_dataset
    from edgederm.data.arrays import load_arrays
    from edgederm.data.layouts import find_dataset

    name = config.dataset or manifest.model.get("dataset")
    root = find_dataset(name, data_root, "calibration data (or pass --calibration DIR)")
    full = load_dataset(root).split(config.split)
    ds = full.subset(size, seed=config.seed)
    arrays = load_arrays(ds, manifest.preprocessing, desc=f"quantize: decode {len(ds.samples)} calibration images")
    classify = task_of(ds.task).has_class_labels
    per_class = None
    if classify:
        counts = np.bincount(np.asarray(ds.labels), minlength=len(ds.classes))
        per_class = {c: int(n) for c, n in zip(ds.classes, counts)}
    record = {"count": len(arrays), "source": str(root), "dataset": ds.name, "split": config.split,
              "method": ("class-stratified" if classify else "random") + f" (seed {config.seed})"
                        + ("" if len(ds.samples) < len(full.samples) else ", whole split"),
              "per_class": per_class, "ids_sha256": ids_hash(arrays.ids)}
    return CalibrationSet(arrays.images, manifest.preprocessing, record)


def _pick(n_total: int, size: int, seed: int) -> list[int]:
    if size >= n_total:
        return list(range(n_total))
    return sorted(np.random.default_rng(seed).choice(n_total, size, replace=False).tolist())


def from_folder(folder: Path, prep: Preprocessing, size: int, seed: int = 0) -> CalibrationSet:
    """Image files in ``folder`` (not recursive), resized by the model's preprocessing."""
    from edgederm.data.arrays import open_image

    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise EdgeDermError(f"calibration folder {folder} holds no images ({', '.join(IMAGE_SUFFIXES)}): "
                            "put RGB images from the model's domain there, or drop --calibration to use the "
                            "dataset's train split")
    chosen = [files[i] for i in _pick(len(files), size, seed)]
    images = np.stack([prep.resize_image(open_image(p)) for p in chosen])  # open_image: one-line error naming the file
    record = {"count": len(chosen), "source": str(folder), "dataset": None, "split": None,
              "method": f"image folder, {'all' if len(chosen) == len(files) else f'random {len(chosen)} of {len(files)}'} "
                        f"(seed {seed}), resized by the model's preprocessing",
              "per_class": None, "ids_sha256": ids_hash([p.name for p in chosen])}
    return CalibrationSet(images, prep, record)


def from_npy(path: Path, prep: Preprocessing, size: int, seed: int = 0) -> CalibrationSet:
    """A ``.npy`` of RGB pixels ``[N, H, W, 3]`` at the model's input size (uint8, or float in 0..1)."""
    h, w = prep.input_size
    want = f"uint8 RGB pixels shaped [N, {h}, {w}, 3] (NHWC, the model's input size, before mean/std)"
    try:
        arr = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise EdgeDermError(f"calibration array {path} cannot be read ({str(e).splitlines()[0]}): save {want} "
                            "with numpy.save") from None
    shape = list(arr.shape)
    if arr.ndim == 3 and list(arr.shape) == [h, w, 3]:
        raise EdgeDermError(f"calibration array {path} is one image {shape}: add the batch axis, {want}")
    if arr.ndim != 4 or len(arr) == 0:
        raise EdgeDermError(f"calibration array {path} has shape {shape}: expected {want}")
    if arr.shape[1] == 3 and list(arr.shape[2:]) == [h, w]:
        raise EdgeDermError(f"calibration array {path} is NCHW {shape}: transpose it to NHWC with "
                            f"arr.transpose(0, 2, 3, 1), i.e. {want}")
    if arr.shape[3] != 3:
        raise EdgeDermError(f"calibration array {path} has shape {shape} ({arr.shape[3]} channels last): expected {want}")
    if list(arr.shape[1:3]) != [h, w]:
        raise EdgeDermError(f"calibration array {path} has images of {arr.shape[1]}x{arr.shape[2]} (HxW), the model "
                            f"takes {h}x{w}: resize them with the model's preprocessing, or pass the image folder "
                            f"instead (EdgeDerm resizes files); expected {want}")
    if arr.dtype != np.uint8:
        if not np.issubdtype(arr.dtype, np.floating) or not np.isfinite(arr).all():
            raise EdgeDermError(f"calibration array {path} has dtype {arr.dtype}: expected {want}")
        lo, hi = float(arr.min()), float(arr.max())
        if lo < 0 or hi > 255:
            raise EdgeDermError(f"calibration array {path} holds values {lo:.3g}..{hi:.3g}, which look already "
                                f"normalised: EdgeDerm applies the model's mean/std itself, so save {want}")
        arr = np.clip(np.round(arr * (255.0 if hi <= 1.0 else 1.0)), 0, 255).astype(np.uint8)
    idx = _pick(len(arr), size, seed)
    images = np.ascontiguousarray(arr[idx])
    record = {"count": len(idx), "source": str(path), "dataset": None, "split": None,
              "method": f"npy array, {'all' if len(idx) == len(arr) else f'random {len(idx)} of {len(arr)}'} (seed {seed})",
              "per_class": None, "ids_sha256": hashlib.sha256(images.tobytes()).hexdigest()}  # content: the array has no ids
    return CalibrationSet(images, prep, record)


class BatchReader:
    """ONNX Runtime's calibration reader over a normalised batch, one image per call (the one reader
    every ORT quantizer here uses; ``quantize_static`` only calls ``get_next``)."""

    def __init__(self, x: np.ndarray, input_name: str):
        self.x, self.input_name, self.i = x, input_name, 0

    def get_next(self):
        if self.i >= len(self.x):
            return None
        self.i += 1
        return {self.input_name: self.x[self.i - 1:self.i]}

    def rewind(self):
        self.i = 0

    def __len__(self):
        return len(self.x)

