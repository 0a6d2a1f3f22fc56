"""Ways a foreign model comes in, one registered entry per source form, each with its loader.

``edgederm.byom`` asks ``find_form(source)`` first; a form registered here loads the model,
otherwise byom's own ``.pt2`` / TorchScript / ``module:factory`` loaders do.

- ``timm:NAME`` and ``torchvision:NAME`` build the architecture with the meta file's class
  count (``num_classes``; 1 or 2 mask channels for a segmenter, after ``output.kind``) and load
  ``--weights`` (a state dict: .safetensors, or a tensors-only pickle; ``edgederm.checkpoint.
  read_state_dict``). ``--weights pretrained`` downloads the published weights as they are, for
  online users: their class count must then equal the meta file's. Without ``--weights`` the
  source is refused: exporting random weights proves nothing.
- ``model.onnx``: an existing ONNX file (``edgederm.onnx_source``). It exports to ONNX (checked,
  copied) and TFLite; Core ML has no ONNX frontend.

Every source's output then goes through the meta file's adapter (``edgederm.adapters``) and is
checked once against EdgeDerm's contract (logits ``[1, C]`` / mask logits ``[1, 1, H, W]``)
before any slow work.
"""

from __future__ import annotations

import difflib
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from edgederm.errors import EdgeDermError
from edgederm.registry import Registry, lazy
from edgederm.tasks import task_of

PRETRAINED = "pretrained"


@dataclass(frozen=True)
class SourceForm:
    name: str
    example: str
    matches: Callable[[str], bool]
    loader: Callable  # (source, meta, weights) -> (model, kind)
    unsupported: dict[str, str] = field(default_factory=dict)  # format -> why it cannot be made from this form
    description: str = ""


SOURCES: Registry[SourceForm] = Registry("model source form")


def find_form(source: str) -> SourceForm | None:
    """The registered form that claims ``source``, or None (byom's own loaders then)."""
    for _, form in SOURCES.items():
        if form.matches(str(source)):
            return form
    return None


def output_channels(meta: dict) -> int:
    """The head size a builder needs: classes for a classifier; 1 or 2 mask channels for a segmenter."""
    task = task_of(meta["task"])
    if not task.has_class_labels and str((meta.get("output") or {}).get("kind", "")).startswith("two_class"):
        return 2  # a two-class softmax mask head; its adapter makes the one mask logit
    return task.output_channels(meta["classes"])


def _closest(name: str, known: list[str], what: str) -> EdgeDermError:
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
    return EdgeDermError(f"{what} has no model {name!r}" + (f"; did you mean {close[0]!r}?" if close else "")
                         + " (check the name in the source)")


def load_weights(model, weights: str, source: str):
    """``--weights FILE`` onto ``model``, strictly: every tensor present, every shape right."""
    from edgederm.checkpoint import read_state_dict

    state = read_state_dict(weights)
    if getattr(state, "_metadata", None) is None:
        # safetensors keeps no per-module versions; take the architecture's own, as built here
        # (torchvision MNASNet refuses a state dict without them: "version should be set to 1 or 2")
        state = OrderedDict(state)
        state._metadata = model.state_dict()._metadata
    try:
        result = model.load_state_dict(state, strict=False)
    except RuntimeError as e:  # same names, other shapes
        raise _check_shape_mismatch(e, weights, source) or e from None
    if result.missing_keys or result.unexpected_keys:
        first = (result.missing_keys or result.unexpected_keys)[0]
        raise EdgeDermError(f"--weights {weights} does not fit {source} ({len(result.missing_keys)} missing, "
                            f"{len(result.unexpected_keys)} unexpected tensors, e.g. {first!r}): check the "
                            "architecture name and the meta file's classes")
    return model


def _need_weights(source: str, weights) -> None:
    if not weights:
        raise EdgeDermError(f"{source} needs --weights FILE (your trained state dict, .safetensors or a tensors-only "
                            f"pickle), or --weights {PRETRAINED} for the published weights (downloads)")


def _check_shape_mismatch(e: Exception, weights, source: str):
    if "size mismatch" in str(e):
        line = next((ln.strip() for ln in str(e).splitlines() if "size mismatch" in ln), str(e)[:160])
        return EdgeDermError(f"--weights {weights} does not fit {source}: {line[:200]}; check the meta file's classes")
    return None


def load_timm(source: str, meta: dict, weights) -> tuple:
    import timm

    name = source.split(":", 1)[1]
    _need_weights(source, weights)
    if not task_of(meta["task"]).has_class_labels:
        raise EdgeDermError(f"{source}: timm builds classifiers; for a segmenter use torchvision:NAME or "
                            "package.module:factory")
    if name not in timm.list_models():
        raise _closest(name, timm.list_models(), "timm")
    if weights == PRETRAINED:
        model = timm.create_model(name, pretrained=True)
        kind = "timm (published weights)"
    else:
        model = _timm_build(timm, name, meta)
        load_weights(model, weights, source)
        kind = "timm + --weights"
    return model.eval(), kind


def _timm_build(timm, name: str, meta: dict):
    """Random-init architecture at the meta file's input size: attention models (EfficientFormerV2,
    LeViT, ...) size their position-bias tables from ``img_size``, so a state dict trained at 96 px
    only fits a model built at 96 px. Models without ``img_size`` are built without it."""
    h, w = (meta.get("preprocessing") or {}).get("input_size", (224, 224))
    try:
        return timm.create_model(name, pretrained=False, num_classes=output_channels(meta),
                                 img_size=h if h == w else (h, w))
    except TypeError:
        return timm.create_model(name, pretrained=False, num_classes=output_channels(meta))


def load_torchvision(source: str, meta: dict, weights) -> tuple:
    from torchvision import models

    name = source.split(":", 1)[1]
    _need_weights(source, weights)
    known = models.list_models()
    if name not in known:
        raise _closest(name, known, "torchvision")
    builder = models.get_model_builder(name)
    segmenter = builder.__module__.startswith("torchvision.models.segmentation.")
    if not segmenter and builder.__module__.count(".") != 2:  # detection / video / optical_flow / quantization
        raise EdgeDermError(f"{source} ({builder.__module__}): only torchvision classifiers and segmenters are supported")
    if task_of(meta["task"]).has_class_labels == segmenter:
        raise EdgeDermError(f"{source} is a {'segmenter' if segmenter else 'classifier'} but the meta file says "
                            f"task: {meta['task']}")
    extra = {"weights_backbone": None} if segmenter else {}  # never download a backbone behind the user's back
    if weights == PRETRAINED:
        model = builder(weights="DEFAULT")
        kind = "torchvision (published weights)"
    else:
        model = builder(weights=None, num_classes=output_channels(meta), **extra)
        load_weights(model, weights, source)
        kind = "torchvision + --weights"
    return model.eval(), kind


def check_contract(model, meta: dict) -> None:
    """One forward pass at the meta file's input size: the adapted output must be EdgeDerm's contract."""
    import torch

    from edgederm.preprocessing import Preprocessing

    h, w = Preprocessing.from_dict(meta.get("preprocessing") or {}).input_size  # a bad record fails here, by name
    task = task_of(meta["task"])
    want = task.output_shape(meta["classes"], h, w)
    with torch.no_grad():
        try:
            y = model(torch.zeros(1, 3, h, w))
        except Exception as e:  # noqa: BLE001 - a model that refuses the declared input is the meta file's mismatch
            first = str(e).strip().splitlines()[0][:120] if str(e).strip() else ""
            raise EdgeDermError(f"the model does not run on a [1, 3, {h}, {w}] input ({type(e).__name__}: {first}): set "
                                "preprocessing.input_size in the meta file to the size it was exported at") from None
    got = list(y.shape) if hasattr(y, "shape") else type(y).__name__
    if got != want:
        what = "logits [1, classes]" if task.has_class_labels else "one mask logit per pixel [1, 1, H, W]"
        raise EdgeDermError(f"the model's output is {got}, EdgeDerm needs {what} = {want}: fix classes, "
                            "preprocessing.input_size or output (key/index/kind) in the meta file (docs/byom.md)")


def _prefix(p: str) -> Callable[[str], bool]:
    return lambda source: source.startswith(p) and len(source) > len(p) and not Path(source).exists()


SOURCES.register("timm", SourceForm("timm", "timm:mobilenetv4_conv_small --weights w.safetensors", _prefix("timm:"),
                                    load_timm, description="a timm architecture by name + a state dict"))
SOURCES.register("torchvision", SourceForm(
    "torchvision", "torchvision:lraspp_mobilenet_v3_large --weights w.safetensors", _prefix("torchvision:"),
    load_torchvision, description="a torchvision classifier or segmenter by name + a state dict"))
SOURCES.register("onnx", SourceForm(
    "onnx", "model.onnx", lambda source: Path(source).suffix == ".onnx", lazy("edgederm.onnx_source:load"),
    unsupported={"coreml": "coremltools has no ONNX frontend (it converts PyTorch, TensorFlow and MIL): export Core ML "
                           "from the PyTorch model instead"},
    description="an existing ONNX file: ONNX and TFLite, verify, quantize, bench"))


def default_out_name(source: str) -> str:
    """The folder ``export`` writes to without ``--out``: a file's stem; for a named source
    (``timm:NAME``, ``torchvision:NAME``, ``package.module:factory``) the whole name; either made a
    safe folder name (``timm_NAME``: no colon, which Windows refuses in a folder name)."""
    from edgederm.paths import safe_name

    path = Path(str(source))
    return safe_name(path.stem if path.exists() else str(source))
