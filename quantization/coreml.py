"""Core ML schemes: weight compression of the exported mlprogram, and W8A8 calibrated in torch.

``w8``/``palette6``/``palette4`` compress the weights of the export's ``.mlpackage`` with
``coremltools.optimize.coreml`` (works on Linux: it rewrites the program, no prediction).
``w8a8`` quantizes activations too; coremltools' own activation calibration
(``experimental.linear_quantize_activations``) needs ``predict`` and so macOS, so here the
torch model is calibrated with ``coremltools.optimize.torch``'s ``LinearQuantizer`` (observers
on, fed our calibration images, then finalized) and converted with quantize/dequantize ops for
iOS 17. On Linux every Core ML artifact gets the structural check export uses
(``converters.torch2coreml.inspect``); numeric parity needs a Mac.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path

from converters.common import atomic_output, unsupported_op_error, versions
from edgederm.errors import EdgeDermError
from edgederm.manifest import Artifact


@dataclass(frozen=True)
class CoreMLWeightConfig:
    """Weight-only compression of an mlprogram.

    Attributes:
        kind: ``linear`` (``linear_quantize_weights``) or ``palettize`` (``palettize_weights``).
        nbits: 8 for linear; 1, 2, 3, 4, 6 or 8 for palettization.
        granularity: ``per_channel`` (linear), ``per_tensor`` or ``per_grouped_channel`` (palettize).
        mode: ``linear_symmetric``/``linear`` (linear) or ``kmeans``/``uniform`` (palettize).
        group_size: output channels per palette with ``per_grouped_channel``.
        weight_threshold: tensors with fewer elements stay in float (biases, tiny convs).
    """

    kind: str = "linear"
    nbits: int = 8
    granularity: str = "per_channel"
    mode: str = ""
    group_size: int = 16
    weight_threshold: int = 2048

    def __post_init__(self):
        if self.kind not in ("linear", "palettize"):
            raise EdgeDermError(f"Core ML weight compression kind {self.kind!r} must be linear or palettize")


@dataclass(frozen=True)
class CoreMLW8A8Config:
    """Attributes:
        minimum_target: deployment target of the package (activation quantize ops need iOS 17).
        scheme: ``symmetric`` or ``affine`` (coremltools.optimize.torch quantization scheme).
        weight_per_channel: per-channel weight scales.
    """

    minimum_target: str = "iOS17"
    scheme: str = "symmetric"
    weight_per_channel: bool = True


def _source_package(ctx) -> tuple[Path, Artifact]:
    """The float mlprogram to compress: the export's (fp32 preferred), else converted now at fp16."""
    for name in ("coreml_fp32", "coreml_fp16"):
        art = ctx.existing(name)
        if art is not None:
            return ctx.folder / art.path, art
    if "coreml_source" not in ctx.cache:
        from converters import handler

        path = ctx.work / "model_fp16.mlpackage"
        art = handler("torch2coreml")(ctx.deployable()[0], ctx.manifest, path, "fp16")
        ctx.cache["coreml_source"] = (path, art)
    return ctx.cache["coreml_source"]


def _like(source: Artifact, target: Path, converter: str, notes: list[str]) -> Artifact:
    return Artifact(name="", path=str(target), format="coreml", precision="", inputs=copy.deepcopy(source.inputs),
                    outputs=copy.deepcopy(source.outputs), converter=converter,
                    tool_versions=versions("coremltools"), notes=[*source.notes, *notes])


def compress_weights(ctx, config: CoreMLWeightConfig, target: Path) -> Artifact:
    """Handler for ``w8|palette6|palette4:coreml``: compress the package's weights."""
    import coremltools as ct
    import coremltools.optimize.coreml as cto

    path, source = _source_package(ctx)
    mlmodel = ct.models.MLModel(str(path), skip_model_load=True)
    if config.kind == "linear":
        op = cto.OpLinearQuantizerConfig(mode=config.mode or "linear_symmetric", dtype=f"int{config.nbits}",
                                         granularity=config.granularity, weight_threshold=config.weight_threshold)
        what = f"linear_quantize_weights (int{config.nbits}, {config.mode or 'linear_symmetric'}, {config.granularity})"
    else:
        kwargs = {"group_size": config.group_size} if config.granularity == "per_grouped_channel" else {}
        op = cto.OpPalettizerConfig(nbits=config.nbits, mode=config.mode or "kmeans", granularity=config.granularity,
                                    weight_threshold=config.weight_threshold, **kwargs)
        what = f"palettize_weights ({config.nbits}-bit {config.mode or 'kmeans'}, {config.granularity})"
    fn = cto.linear_quantize_weights if config.kind == "linear" else cto.palettize_weights
    try:
        compressed = fn(mlmodel, cto.OptimizationConfig(global_config=op))
    except Exception as e:
        raise EdgeDermError(f"coremltools {what} failed on {path.name}: {type(e).__name__}: "
                            f"{str(e).splitlines()[0][:200]}") from None
    with atomic_output(target) as tmp:
        compressed.save(str(tmp))
    return _like(source, target, f"coremltools.optimize.coreml.{what} of {path.name}",
                 ["weights compressed; activations run in the source package's precision"])


def fp16(ctx, config, target: Path) -> Artifact:
    """``fp16:coreml`` delegates to export: the folder's ``coreml_fp16`` if present, else converted as export does."""
    existing = ctx.existing("coreml_fp16")
    if existing is not None:
        return existing
    from converters import handler

    return handler("torch2coreml")(ctx.deployable()[0], ctx.manifest, target, "fp16")


def w8a8(ctx, config: CoreMLW8A8Config, target: Path) -> Artifact:
    """Handler for ``w8a8:coreml``: LinearQuantizer calibrated on our images, converted for iOS 17."""
    import torch
    from coremltools.optimize.torch.quantization import (LinearQuantizer, LinearQuantizerConfig,
                                                         ModuleLinearQuantizerConfig)

    import converters.torch2coreml as t2c

    model = copy.deepcopy(ctx.deployable()[0]).eval()
    x = torch.from_numpy(ctx.calibration.inputs("NCHW"))
    # milestones: observers on at step 0, fake-quant on at 0, observers frozen late, BN frozen from 0
    qconfig = LinearQuantizerConfig(global_config=ModuleLinearQuantizerConfig(
        quantization_scheme=config.scheme, weight_per_channel=config.weight_per_channel,
        milestones=[0, 0, 10_000, 0]))
    try:
        quantizer = LinearQuantizer(model, qconfig)
        prepared = quantizer.prepare(example_inputs=(x[:1],), inplace=False)
        quantizer.step()
        prepared.eval()
        with torch.no_grad():
            for i in range(0, len(x), 16):
                prepared(x[i:i + 16])
        finalized = quantizer.finalize(prepared, inplace=False).eval()
    except Exception as e:
        raise EdgeDermError(f"coremltools.optimize.torch LinearQuantizer failed on "
                            f"{ctx.manifest.model['architecture']}: {type(e).__name__}: "
                            f"{str(e).splitlines()[0][:200]}") from None
    old = t2c.MINIMUM_TARGET
    t2c.MINIMUM_TARGET = config.minimum_target  # activation quantize/dequantize ops exist from iOS 17
    try:
        artifact = t2c.convert(finalized, ctx.manifest, target, "fp16")
    except EdgeDermError:
        raise
    except Exception as e:
        raise unsupported_op_error(e, "Core ML (W8A8)", ctx.manifest.model["name"]) from None
    finally:
        t2c.MINIMUM_TARGET = old
    artifact.converter = (f"coremltools.optimize.torch LinearQuantizer ({config.scheme}, calibrated on "
                          f"{len(x)} images) + torch2coreml (mlprogram, {config.minimum_target})")
    artifact.notes.append("int8 weights and activations (quantize/dequantize ops); runs on macOS 14 / iOS 17 and newer")
    return artifact
