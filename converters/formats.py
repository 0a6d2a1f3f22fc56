"""Each format's exporter: the routes of ``converters.FORMATS`` applied to a model, one function per format.

``edgederm.export`` calls ``fn(model, manifest, folder, stem, precisions, calibration_images=..., dynamic_batch=...)``
for every format asked for (and the formats they need first, ``Format.requires``); an exporter takes
the keywords it uses and ignores the rest. A new format is its entry in ``FORMATS`` and a function here
or in its route's module.
"""

from __future__ import annotations

from pathlib import Path

from converters import handler
from edgederm.errors import EdgeDermError
from edgederm.manifest import Artifact, Manifest


def export_onnx(model, manifest: Manifest, folder: Path, stem: str, precisions=("fp32",), *,
                dynamic_batch: bool = False, **_) -> list[Artifact]:
    """``<stem>.onnx``: the torch2onnx route, or onnx2onnx when the source is already an ONNX file."""
    route = getattr(model, "onnx_route", "torch2onnx")
    return [handler(route)(model, manifest, Path(folder) / f"{stem}.onnx", dynamic_batch=dynamic_batch)]


def export_tflite(model, manifest: Manifest, folder: Path, stem: str, precisions=("fp32", "fp16"), *,
                  calibration_images=None, **_) -> list[Artifact]:
    """``<stem>_<precision>.tflite`` from the ONNX file made before it (``Format.requires``)."""
    onnx_path = Path(folder) / f"{stem}.onnx"
    if not onnx_path.exists():
        raise EdgeDermError("needs the ONNX file, whose export failed")
    return handler("onnx2tflite")(onnx_path, manifest, Path(folder), precisions=tuple(precisions),
                                  calibration_images=calibration_images, stem=stem)


def export_coreml(model, manifest: Manifest, folder: Path, stem: str, precisions=("fp16",), **_) -> list[Artifact]:
    """``<stem>_<precision>.mlpackage`` per precision (export calls it once per precision: ``Format.per_precision``)."""
    return [handler("torch2coreml")(model, manifest, Path(folder) / f"{stem}_{p}.mlpackage", p) for p in precisions]
