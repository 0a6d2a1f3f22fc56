"""Converters, one small module per route, named input->output, registered by name.

A *route* turns one representation into another (``torch2onnx``, ``onnx2tflite``,
``torch2coreml``); a *format* is what a user asks for (``onnx``, ``tflite``, ``coreml``) and
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


ROUTES: Registry[Route] = Registry("conversion route")
FORMATS: Registry[Format] = Registry("format")

ROUTES.register("torch2onnx", Route("torch2onnx", "torch", "onnx", "converters.torch2onnx:convert", ("fp32",),
                                    "torch.onnx.export (TorchScript exporter, opset 17; dynamo fallback), onnxslim, checker"))
ROUTES.register("onnx2tflite", Route("onnx2tflite", "onnx", "tflite", "converters.onnx2tflite:convert", ("fp32", "fp16"),
                                     "onnx2tf (offline calibration file), NCHW->NHWC"))
ROUTES.register("torch2coreml", Route("torch2coreml", "torch", "coreml", "converters.torch2coreml:convert", ("fp16", "fp32"),
                                      "coremltools mlprogram from torch.jit.trace, ImageType input"))

FORMATS.register("onnx", Format("onnx", ".onnx", ("torch2onnx",), ("fp32",), ("fp32",), "onnxruntime", "NCHW"))
FORMATS.register("tflite", Format("tflite", ".tflite", ("torch2onnx", "onnx2tflite"), ("fp32", "fp16"),
                                  ("fp32", "fp16"), "litert", "NHWC"))
FORMATS.register("coreml", Format("coreml", ".mlpackage", ("torch2coreml",), ("fp16", "fp32"), ("fp16",), "coreml", "image"))


def handler(route: str):
    import importlib

    module, _, fn = ROUTES.get(route).handler.partition(":")
    return getattr(importlib.import_module(module), fn)
