"""Converters, one small module per route, named input->output, registered by name.

A *route* turns one representation into another (``torch2onnx``, ``onnx2tflite``,
``torch2coreml``, ``torch2executorch``); a *format* is what a user asks for (``onnx``, ``tflite``,
``coreml``, ``executorch``, ``executorch_coreml``) and
names the chain of routes that produces it. Heavy libraries are imported inside the route
that needs them; every route writes to a temporary path and renames it into place.
"""

from __future__ import annotations

from dataclasses import dataclass

from edgederm.registry import Registry


@dataclass(frozen=True)
class Route:
    name: str
    source: str  # "torch" | "onnx"
    target: str  # "onnx" | "tflite" | "coreml"
    handler: str  # "module:function"
    precisions: tuple[str, ...]
    description: str


@dataclass(frozen=True)
class Format:
    name: str
    suffix: str
    routes: tuple[str, ...]  # applied in order
    precisions: tuple[str, ...]
    default_precisions: tuple[str, ...]
    runner: str  # device_bench runner that executes it
    layout: str  # image input layout of the artifact
    # "module:function" that makes this format's artifacts from the model, called by edgederm.export
    # as fn(model, manifest, folder, stem, precisions, calibration_images=..., dynamic_batch=...) -> list[Artifact]
    exporter: str
    requires: tuple[str, ...] = ()  # formats whose files this one is made from (made first; dropped if not asked for)
    per_precision: bool = False  # one exporter call per precision, so one failing precision spares the others
    needs_images: bool = False  # its conversion reads real images (TFLite's integer ranges)


ROUTES: Registry[Route] = Registry("conversion route")
FORMATS: Registry[Format] = Registry("format")

ROUTES.register("torch2onnx", Route("torch2onnx", "torch", "onnx", "converters.torch2onnx:convert", ("fp32",),
                                    "torch.onnx.export (TorchScript exporter, opset 17; dynamo fallback), onnxslim, checker"))
ROUTES.register("onnx2tflite", Route("onnx2tflite", "onnx", "tflite", "converters.onnx2tflite:convert", ("fp32", "fp16"),
                                     "onnx2tf (offline calibration file), NCHW->NHWC"))
ROUTES.register("torch2executorch", Route("torch2executorch", "torch", "executorch", "converters.torch2executorch:convert",
                                          ("fp32",), "torch.export + to_edge_transform_and_lower (XNNPACK partitioner), .pte"))
ROUTES.register("torch2coreml", Route("torch2coreml", "torch", "coreml", "converters.torch2coreml:convert", ("fp16", "fp32"),
                                      "coremltools mlprogram from torch.jit.trace, ImageType input"))
ROUTES.register("onnx2onnx", Route("onnx2onnx", "onnx", "onnx", "converters.onnx2onnx:convert", ("fp32",),
                                   "a user's ONNX file: checked, static [1,3,H,W] input, output adapted (edgederm.adapters)"))

FORMATS.register("onnx", Format("onnx", ".onnx", ("torch2onnx",), ("fp32",), ("fp32",), "onnxruntime", "NCHW",
                                exporter="converters.formats:export_onnx"))
FORMATS.register("tflite", Format("tflite", ".tflite", ("torch2onnx", "onnx2tflite"), ("fp32", "fp16"),
                                  ("fp32", "fp16"), "litert", "NHWC", exporter="converters.formats:export_tflite",
                                  requires=("onnx",), needs_images=True))
FORMATS.register("coreml", Format("coreml", ".mlpackage", ("torch2coreml",), ("fp16", "fp32"), ("fp16",), "coreml", "image",
                                  exporter="converters.formats:export_coreml", per_precision=True))
FORMATS.register("executorch", Format("executorch", ".pte", ("torch2executorch",), ("fp32",), ("fp32",), "executorch",
                                      "NCHW", exporter="converters.torch2executorch:export_format"))
FORMATS.register("executorch_coreml", Format("executorch_coreml", ".pte", ("torch2executorch",), ("fp16", "fp32"), ("fp16",),
                                             "executorch", "NCHW", per_precision=True,
                                             exporter="converters.torch2executorch:export_coreml_format"))

DEFAULT_EXPORT = ("onnx", "tflite", "coreml")  # what `edgederm export` makes without --to, in this order


def handler(route: str):
    import importlib

    module, _, fn = ROUTES.get(route).handler.partition(":")
    return getattr(importlib.import_module(module), fn)


def exporter(fmt: Format):
    """The callable behind ``fmt.exporter`` (imported on first use)."""
    import importlib

    module, _, fn = fmt.exporter.partition(":")
    return getattr(importlib.import_module(module), fn)
