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

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from device_bench.errors import DeviceBenchError

MANIFEST = "manifest.json"
IMAGES = "eval/images.npz"
LABELS = "eval/labels.json"
MANIFEST_SCHEMA = "edgederm.manifest"


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def sha256_path(path: Path) -> str:
    """A file's sha256; for a folder (.mlpackage) the scheme of ``edgederm export``: relative names and file hashes in order."""
    path = Path(path)
    if not path.is_dir():
        return sha256_file(path)
    h = hashlib.sha256()
    for f in sorted(p for p in path.rglob("*") if p.is_file()):
        h.update(str(f.relative_to(path)).encode())
        h.update(bytes.fromhex(sha256_file(f)))
    return h.hexdigest()


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
        return self.root / artifact["path"]

    def check(self, artifact: dict) -> str | None:
        """None when the artifact's bytes match the manifest's sha256, else the reason they do not."""
        path = self.artifact_path(artifact)
        if not path.exists():
            return f"{artifact['path']} is missing from the bundle"
        want = artifact.get("sha256")
        if not want:
            return f"the manifest gives no sha256 for {artifact['path']}"
        got = sha256_path(path)
        if got != want:
            return (f"sha256 of {artifact['path']} is {got[:12]}..., the manifest says {want[:12]}...: "
                    "the file was changed or damaged in transfer; copy the bundle again")
        return None


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
    if manifest.get("schema") != MANIFEST_SCHEMA:
        raise DeviceBenchError(f"{root / MANIFEST} is not an EdgeDerm manifest (schema {manifest.get('schema')!r})")
    return Bundle(root, manifest, load_eval(root, manifest))


def load_eval(root: Path, manifest: dict) -> EvalSet:
    labels_path, images_path = root / LABELS, root / IMAGES
    for p in (labels_path, images_path):
        if not p.exists():
            raise DeviceBenchError(f"bundle {root} lacks {p.relative_to(root)}: make it again with edgederm bundle")
    info = json.loads(labels_path.read_text())
    if info.get("npz_sha256") and sha256_file(images_path) != info["npz_sha256"]:
        raise DeviceBenchError(f"{images_path} does not match the sha256 in {LABELS}: copy the bundle again")
    with np.load(images_path, allow_pickle=False) as z:
        images = z["images"]
        masks = z["masks"] if "masks" in z.files else None
    ids = list(info["ids"])
    if len(ids) != len(images):
        raise DeviceBenchError(f"{LABELS} lists {len(ids)} ids but {IMAGES} holds {len(images)} images: make the bundle again")
    task = info.get("task", manifest["model"]["task"])
    labels = np.asarray(info["labels"], np.int64) if task == "classification" else None
    if task == "segmentation" and masks is None:
        raise DeviceBenchError(f"{IMAGES} has no masks for a segmentation model: make the bundle again")
    return EvalSet(task, list(info.get("classes", manifest["model"]["classes"])), ids, images, labels, masks,
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
