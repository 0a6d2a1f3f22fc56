"""Reading a bundle made by ``edgederm bundle``: its manifest, its artifacts (sha256-checked) and its
labelled evaluation set, with nothing but the standard library and numpy.

Layout (``docs/devices.md``)::

    manifest.json            trimmed to this target's artifacts, sha256 kept
    model*.onnx|.tflite|.mlpackage
    eval/images.npz          images uint8 [N, H, W, 3] RGB at the model's input size (+ masks [N, H, W] 0/1)
    eval/labels.json         task, classes, ids, labels, where the images came from
    device_bench/            this runner
    README.md                the exact command for the target
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from device_bench.errors import DeviceBenchError
from device_bench.integrity import IntegrityError, contained, proven
from device_bench.tasks import device_task

MANIFEST = "manifest.json"
IMAGES = "eval/images.npz"
LABELS = "eval/labels.json"
MANIFEST_SCHEMA = "edgederm.manifest"


def ids_fingerprint(ids: list[str]) -> str:
    """sha256 of the image ids in order: two results files measured the same images iff these agree."""
    from device_bench.results import ids_sha256

    return ids_sha256(ids)


@dataclass
class EvalSet:
    task: str
    classes: list[str]
    ids: list[str]
    images: np.ndarray  # uint8 [N, H, W, 3]
    labels: np.ndarray | None = None  # int64 [N] (classification)
    masks: np.ndarray | None = None  # uint8 [N, H, W] 0/1 (segmentation)
    info: dict[str, Any] = field(default_factory=dict)


@dataclass
class Bundle:
    root: Path
    manifest: dict[str, Any]
    eval: EvalSet

    @property
    def task(self) -> str:
        return self.manifest["model"]["task"]

    @property
    def artifacts(self) -> list[dict[str, Any]]:
        return list(self.manifest.get("artifacts", []))

    def artifact_path(self, artifact: dict) -> Path:
        """The artifact's path inside the bundle (``load`` already refused any that leads out)."""
        return contained(self.root, artifact["path"], "artifact path")

    def check(self, artifact: dict) -> str | None:
        """None when the artifact's bytes match the manifest's sha256, else the reason they do not."""
        try:
            proven(self.root, artifact["path"], artifact.get("sha256"))
        except IntegrityError as e:
            return f"{e}; copy the bundle again"
        return None


def _check_paths(root: Path, manifest: dict) -> None:
    """Every path the manifest names stays inside the bundle, or the bundle is refused whole."""
    artifacts = manifest.get("artifacts")
    if not isinstance(artifacts, list) or not all(isinstance(a, dict) and "path" in a for a in artifacts):
        raise DeviceBenchError(f"{root / MANIFEST}: 'artifacts' must be a list of objects with a path: make the bundle again")
    for a in artifacts:
        try:
            contained(root, a["path"], f"artifact {a.get('name', '?')} path")
        except IntegrityError as e:
            raise DeviceBenchError(f"{root / MANIFEST}: {e}; refused (make the bundle again with edgederm bundle)") from None


def load(path: str | Path) -> Bundle:
    root = Path(path).resolve()
    if root.is_file() and root.name == MANIFEST:
        root = root.parent
    if root.suffix in (".gz", ".tgz") and root.is_file():
        raise DeviceBenchError(f"{root} is the archive: unpack it (tar xzf {root.name}) and pass the folder")
    if not (root / MANIFEST).exists():
        raise DeviceBenchError(f"{root} is not a bundle (no {MANIFEST}): pass the folder made by edgederm bundle")
    try:
        manifest = json.loads((root / MANIFEST).read_text())
    except json.JSONDecodeError as e:
        raise DeviceBenchError(f"{root / MANIFEST} is not valid JSON ({e.msg} at line {e.lineno}): copy the bundle again") from None
    if not isinstance(manifest, dict) or manifest.get("schema") != MANIFEST_SCHEMA:
        raise DeviceBenchError(f"{root / MANIFEST} is not an EdgeDerm manifest: copy the bundle again")
    if not isinstance(manifest.get("model"), dict) or not {"task", "classes"} <= set(manifest["model"]):
        raise DeviceBenchError(f"{root / MANIFEST} lacks model.task / model.classes: make the bundle again")
    _check_paths(root, manifest)
    return Bundle(root, manifest, load_eval(root, manifest))


def _proven_eval_file(root: Path, manifest: dict, name: str) -> Path:
    """An eval file, checked against the sha256 the manifest's ``bundle.files`` records for it."""
    recorded = (manifest.get("bundle") or {}).get("files") or {}
    if name not in recorded:
        raise DeviceBenchError(f"{root / MANIFEST} records no sha256 for {name} (a bundle from an older EdgeDerm, "
                               "or edited): make it again with edgederm bundle")
    try:
        return proven(root, name, recorded[name], "bundle file")
    except IntegrityError as e:
        raise DeviceBenchError(f"{e}; copy the bundle again") from None


def load_eval(root: Path, manifest: dict) -> EvalSet:
    labels_path, images_path = (_proven_eval_file(root, manifest, name) for name in (LABELS, IMAGES))
    try:
        info = json.loads(labels_path.read_text())
        with np.load(images_path, allow_pickle=False) as z:
            images = z["images"]
            masks = z["masks"] if "masks" in z.files else None
        ids = [str(i) for i in info["ids"]]
    except (ValueError, KeyError, TypeError, OSError) as e:
        raise DeviceBenchError(f"bundle {root}: its eval files do not read ({type(e).__name__}: {e}); make it again") from None
    if len(ids) != len(images) or images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
        raise DeviceBenchError(f"{LABELS} lists {len(ids)} ids but {IMAGES} holds images of shape {images.shape} "
                               f"({images.dtype}): make the bundle again")
    task = manifest["model"]["task"]
    classes = list(manifest["model"]["classes"])
    if info.get("task", task) != task or list(info.get("classes", classes)) != classes:
        raise DeviceBenchError(f"{LABELS} names another task or other classes than {MANIFEST}: make the bundle again")
    spec = device_task(task)
    labels = None
    if spec.has_class_labels:
        labels = np.asarray(info.get("labels", []), np.int64)
        if len(labels) != len(images) or (len(labels) and (labels.min() < 0 or labels.max() >= len(classes))):
            raise DeviceBenchError(f"{LABELS} holds {len(labels)} labels for {len(images)} images, or labels outside "
                                   f"the {len(classes)} classes: make the bundle again")
    if spec.needs_masks and (masks is None or masks.shape[:3] != images.shape[:3]):
        raise DeviceBenchError(f"{IMAGES} has no masks of the images' size for a segmentation model: make the bundle again")
    return EvalSet(task, classes, ids, images, labels, masks,
                   {k: v for k, v in info.items() if k not in ("ids", "labels")})


def normalize(pixels: np.ndarray, prep: dict, layout: str) -> np.ndarray:
    """uint8 [N, H, W, 3] RGB -> float32 ``(pixel * scale - mean) / std`` in ``layout`` (as ``edgederm.Preprocessing``)."""
    if prep.get("channel_order", "RGB") == "BGR":
        pixels = pixels[..., ::-1]
    x = pixels.astype(np.float32) * np.float32(prep.get("scale", 1.0 / 255.0))
    x = (x - np.asarray(prep["mean"], np.float32)) / np.asarray(prep["std"], np.float32)
    if layout == "NCHW":
        x = np.moveaxis(x, -1, -3)
    return np.ascontiguousarray(x, dtype=np.float32)


def artifact_input(artifact: dict, images: np.ndarray, prep: dict) -> np.ndarray:
    """What the artifact is fed: pixels for image inputs (Core ML), else normalised floats in its layout."""
    spec = artifact["inputs"][0]
    if spec.get("layout", "").startswith("image"):
        return images
    return normalize(images, prep, "NHWC" if spec.get("layout") == "NHWC" else "NCHW")
