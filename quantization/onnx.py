"""ONNX schemes: onnxruntime static int8 (u8s8) and NNCF post-training quantization (QDQ).

Both start from the export folder's fp32 ONNX file and calibrate on the calibration set's
NCHW inputs, normalised by the model's own preprocessing. The quantized file keeps the
EdgeDerm metadata (classes, preprocessing, output meaning) and the float I/O of the fp32 one.

``int8`` is ``onnxruntime.quantization.quantize_static`` with uint8 activations and int8
weights: the form ORT's x86 CPU kernels run fast (toolchain notes §2e: u8s8 QOperator and
per-tensor QDQ at 2.0 ms against 6 ms for s8s8 QDQ and NNCF's QDQ). The default (QOperator,
per-channel 7-bit weights, percentile ranges) was chosen on the Lite0 reference model, where
per-tensor QDQ collapses (top-1 agreement 0.47: EfficientNet's depthwise weights need
per-channel scales); the figures are in docs/quantization.md. ``int8_nncf`` is ``nncf.quantize`` on the ONNX model (QDQ, with bias
correction), kept as the second opinion: slower in ORT's CPU provider, but the QDQ form is
what TensorRT and OpenVINO take.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from converters.common import atomic_output, versions
from edgederm.errors import EdgeDermError
from edgederm.manifest import Artifact
from quantization.calibration import BatchReader

ORT_FORMATS = ("QOperator", "QDQ")
ORT_TYPES = ("QUInt8", "QInt8")
ORT_METHODS = ("MinMax", "Entropy", "Percentile", "Distribution")


@dataclass(frozen=True)
class OrtStaticConfig:
    """``onnxruntime.quantization.quantize_static`` settings.

    Attributes:
        quant_format: ``QOperator`` (QLinearConv ...) or ``QDQ`` (Quantize/DequantizeLinear pairs).
        per_channel: per-output-channel weight scales.
        activation_type, weight_type: ``QUInt8`` or ``QInt8`` (u8s8 is the fast x86 pair).
        calibrate_method: ``MinMax``, ``Entropy``, ``Percentile`` or ``Distribution``.
        reduce_range: 7-bit weights. ORT's u8s8 kernels on x86 without VNNI (AVX2, this project's
            machine) multiply-add pairs into int16 with saturation; 7-bit weights cannot saturate.
            Measured: top-1 agreement 0.85 -> 0.91 (Lite0), 0.70 -> 0.84 (MobileNetV3-L), same
            speed. Set ``False`` for VNNI/ARM targets, where 8-bit weights are safe.
        nodes_to_exclude: ONNX node names left in float (for accuracy escalation).
        preprocess: run ORT's ``quant_pre_process`` (shape inference, graph optimisation) first.
    """

    quant_format: str = "QOperator"
    per_channel: bool = True
    activation_type: str = "QUInt8"
    weight_type: str = "QInt8"
    calibrate_method: str = "Percentile"
    reduce_range: bool = True
    nodes_to_exclude: tuple[str, ...] = ()
    preprocess: bool = True

    def __post_init__(self):
        for value, allowed, what in ((self.quant_format, ORT_FORMATS, "quant_format"),
                                     (self.activation_type, ORT_TYPES, "activation_type"),
                                     (self.weight_type, ORT_TYPES, "weight_type"),
                                     (self.calibrate_method, ORT_METHODS, "calibrate_method")):
            if value not in allowed:
                raise EdgeDermError(f"ONNX Runtime {what} {value!r} is not one of {', '.join(allowed)}")


@dataclass(frozen=True)
class NNCFConfig:
    """``nncf.quantize`` settings for an ONNX model.

    Attributes:
        preset: ``performance`` (symmetric) or ``mixed`` (asymmetric activations).
        fast_bias_correction: NNCF's fast bias correction (``False`` runs the slower full one).
        subset_size: calibration images NNCF uses (default: all of the calibration set).
        ignored_names: ONNX node names left in float.
        model_type: ``None``, or ``transformer`` for attention models.
    """

    preset: str = "performance"
    fast_bias_correction: bool = True
    subset_size: int | None = None
    ignored_names: tuple[str, ...] = ()
    model_type: str | None = None


def describe_artifact(ctx, target: Path, converter: str, notes: list[str], tools: tuple[str, ...]) -> Artifact:
    """The quantized file keeps the fp32 ONNX I/O: copy its tensor specs."""
    base = ctx.onnx_artifact()
    return Artifact(name="", path=str(target), format="onnx", precision="", inputs=list(base.inputs),
                    outputs=list(base.outputs), converter=converter, tool_versions=versions(*tools), notes=notes)


def _keep_metadata(ctx, proto) -> None:
    """Carry the fp32 file's EdgeDerm metadata (classes, preprocessing, output) into the quantized one."""
    import onnx

    source = onnx.load(str(ctx.onnx_path()), load_external_data=False)
    have = {p.key for p in proto.metadata_props}
    for p in source.metadata_props:
        if p.key not in have:
            entry = proto.metadata_props.add()
            entry.key, entry.value = p.key, p.value
    proto.producer_name = "edgederm"


def _input_name(path: Path) -> str:
    import onnx

    return onnx.load(str(path), load_external_data=False).graph.input[0].name


def static_quantize(ctx, target: Path, preprocess: bool, what: str, check=None, **options) -> list[str]:
    """``quantize_static`` of the fp32 ONNX file into ``target`` (atomically), fed by the shared
    calibration set, after ORT's optional pre-processing; ``check(path)`` may refuse the result.
    Returns notes for the manifest. Used by ``int8:onnx`` and ``int8_qdq:onnx``."""
    import onnx
    from onnxruntime.quantization import quantize_static

    source = ctx.onnx_path()
    reader = BatchReader(ctx.calibration.inputs("NCHW"), _input_name(source))
    notes, model_input = [], source
    if preprocess:
        from onnxruntime.quantization.shape_inference import quant_pre_process

        pre = ctx.work / f"{target.stem}_preprocessed.onnx"
        try:
            quant_pre_process(str(source), str(pre), skip_symbolic_shape=True)
            model_input = pre
        except Exception as e:  # optional step: quantize the plain graph instead
            notes.append(f"quant_pre_process skipped ({type(e).__name__}: {str(e).splitlines()[0][:120]})")
    with atomic_output(target) as tmp:
        try:
            quantize_static(str(model_input), str(tmp), reader, **options)
        except Exception as e:
            raise EdgeDermError(f"onnxruntime quantize_static ({what}) failed on {source.name}: {type(e).__name__}: "
                                f"{str(e).splitlines()[0][:200]}") from None
        proto = onnx.load(str(tmp))
        _keep_metadata(ctx, proto)
        onnx.save(proto, str(tmp))
        if check is not None:
            notes += check(tmp)
    return notes


def ort_static(ctx, config: OrtStaticConfig, target: Path) -> Artifact:
    """Handler for ``int8:onnx``: ``quantize_static`` on the fp32 ONNX file."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType

    notes = static_quantize(ctx, target, config.preprocess, config.quant_format,
                            quant_format=getattr(QuantFormat, config.quant_format), per_channel=config.per_channel,
                            reduce_range=config.reduce_range, activation_type=getattr(QuantType, config.activation_type),
                            weight_type=getattr(QuantType, config.weight_type),
                            nodes_to_exclude=list(config.nodes_to_exclude) or None,
                            calibrate_method=getattr(CalibrationMethod, config.calibrate_method),
                            extra_options={"ActivationSymmetric": False, "WeightSymmetric": True})
    pair = f"{'u' if config.activation_type == 'QUInt8' else 's'}8{'u' if config.weight_type == 'QUInt8' else 's'}8"
    return describe_artifact(ctx, target, f"onnxruntime quantize_static ({config.quant_format}, {pair}, "
                     f"{'per-channel' if config.per_channel else 'per-tensor'}, {config.calibrate_method})",
                     notes, ("onnxruntime", "onnx"))


def nncf_ptq(ctx, config: NNCFConfig, target: Path) -> Artifact:
    """Handler for ``int8_nncf:onnx``: ``nncf.quantize`` on the ONNX model (QDQ)."""
    os.environ.setdefault("NNCF_CI", "1")  # NNCF telemetry would try the network
    import nncf
    import onnx

    source = ctx.onnx_path()
    name = _input_name(source)
    x = ctx.calibration.inputs("NCHW")
    items = [x[i:i + 1] for i in range(len(x))]
    kwargs = {}
    if config.ignored_names:
        kwargs["ignored_scope"] = nncf.IgnoredScope(names=list(config.ignored_names))
    if config.model_type:
        kwargs["model_type"] = getattr(nncf.ModelType, config.model_type.upper())
    try:
        quantized = nncf.quantize(onnx.load(str(source)), nncf.Dataset(items, lambda item: {name: item}),
                                  preset=getattr(nncf.QuantizationPreset, config.preset.upper()),
                                  subset_size=config.subset_size or len(items),
                                  fast_bias_correction=config.fast_bias_correction, **kwargs)
    except Exception as e:
        raise EdgeDermError(f"nncf.quantize failed on {source.name}: {type(e).__name__}: "
                            f"{str(e).splitlines()[0][:200]}") from None
    _keep_metadata(ctx, quantized)
    with atomic_output(target) as tmp:
        onnx.save(quantized, str(tmp))
    return describe_artifact(ctx, target, f"nncf.quantize (ONNX, QDQ, preset {config.preset}, "
                     f"{'fast ' if config.fast_bias_correction else ''}bias correction)", [], ("nncf", "onnx"))
