"""``int8_qdq:onnx``: an int8 ONNX file that TensorRT can trust (explicit quantization).

TensorRT's own int8 road is explicit quantization: QuantizeLinear/DequantizeLinear pairs whose
scales it honours instead of inventing ranges. Its rules (TensorRT developer guide, "Working with
Quantized Types"): signed int8 only, zero points 0 (symmetric), per-channel weight scales on the
output-channel axis, per-tensor activation scales, opset >= 13 for per-channel DequantizeLinear,
and Q/DQ on the *inputs* of the ops it fuses them into (Conv, ConvTranspose, Gemm, MatMul, the
residual Add, pooling), not on the outputs of weighted layers (it fuses Conv+activation first
and quantizes what follows); biases stay float (it has no int32 DequantizeLinear for them).

This is ``onnxruntime.quantization.quantize_static`` with exactly those settings (the same call
the ORT TensorRT execution-provider examples use), calibrated with the export's
``CalibrationSet`` like every other scheme, after ORT's ``quant_pre_process`` (BatchNorm folded
into Conv, shapes inferred). ``qdq_properties`` reads the result back and lists any rule broken;
the handler refuses to write a file that breaks one. On the CPU it runs through ORT's QDQ
kernels (verified like any artifact; not fast there: the u8s8 ``int8:onnx`` is the x86 form).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from edgederm.errors import EdgeDermError
from edgederm.manifest import Artifact
from quantization.onnx import describe_artifact, static_quantize

# ops whose inputs get Q/DQ: what TensorRT fuses a DequantizeLinear into (or runs in int8 as is)
TRT_OPS = ("Conv", "ConvTranspose", "Gemm", "MatMul", "Add", "AveragePool", "GlobalAveragePool", "MaxPool")
WEIGHTED = ("Conv", "ConvTranspose", "Gemm", "MatMul")  # their outputs stay float: TensorRT fuses the activation first
MIN_OPSET = 13  # per-channel (axis) QuantizeLinear/DequantizeLinear
INT8 = 3  # onnx.TensorProto.INT8


@dataclass(frozen=True)
class TensorRTQDQConfig:
    """Settings of the TensorRT-ready QDQ scheme.

    Attributes:
        calibrate_method: ORT calibration (``MinMax``, ``Entropy``, ``Percentile``); TensorRT's own
            int8 calibrators are entropy and min-max; percentile (99.999 %) clips rare outliers and
            was the better choice for the u8s8 scheme on Lite0 (docs/quantization.md).
        op_types: ops whose inputs are quantized (default: what TensorRT fuses).
        nodes_to_exclude: ONNX node names left in float (accuracy escalation).
        preprocess: ORT's ``quant_pre_process`` first (folds BatchNorm, so scales are per fused weight).
    """

    calibrate_method: str = "Percentile"
    op_types: tuple[str, ...] = TRT_OPS
    nodes_to_exclude: tuple[str, ...] = ()
    preprocess: bool = True


def qdq_properties(path) -> dict:
    """What TensorRT checks in a QDQ file, read back from ``path``.

    Returns ``{"opset", "quantize", "dequantize", "types", "nonzero_zero_points", "per_channel_weights",
    "per_tensor_weights", "per_tensor_activations", "per_channel_activations", "problems"}``;
    ``problems`` lists each broken rule in one line (empty: TensorRT-ready).
    """
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(path), load_external_data=False)
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    inits = {t.name: t for t in model.graph.initializer}
    consts = {n.output[0]: n.attribute[0].t for n in model.graph.node if n.op_type == "Constant" and n.attribute}
    tensors = {**consts, **inits}
    out = {"opset": opset, "quantize": 0, "dequantize": 0, "types": set(), "nonzero_zero_points": 0,
           "per_channel_weights": 0, "per_tensor_weights": 0, "per_tensor_activations": 0,
           "per_channel_activations": 0, "missing_zero_points": 0}
    for node in model.graph.node:
        if node.op_type not in ("QuantizeLinear", "DequantizeLinear"):
            continue
        out["quantize" if node.op_type == "QuantizeLinear" else "dequantize"] += 1
        if len(node.input) < 3 or node.input[2] not in tensors:
            out["missing_zero_points"] += 1  # no zero point means uint8 in opset 13
            out["types"].add("uint8 (default)")
            continue
        zp = tensors[node.input[2]]
        out["types"].add("int8" if zp.data_type == INT8 else onnx.TensorProto.DataType.Name(zp.data_type).lower())
        if numpy_helper.to_array(zp).any():
            out["nonzero_zero_points"] += 1
        if node.op_type == "DequantizeLinear":
            scale = numpy_helper.to_array(tensors[node.input[1]]) if node.input[1] in tensors else None
            per_channel = scale is not None and scale.size > 1
            weight = node.input[0] in inits  # an int8 initializer: a quantized weight
            key = ("per_channel_" if per_channel else "per_tensor_") + ("weights" if weight else "activations")
            out[key] += 1
    out["types"] = sorted(out["types"])
    problems = []
    if opset < MIN_OPSET:
        problems.append(f"opset {opset} < {MIN_OPSET}: per-channel DequantizeLinear needs opset {MIN_OPSET}")
    if out["quantize"] == 0:
        problems.append("no QuantizeLinear node: the file is not quantized")
    if out["types"] and out["types"] != ["int8"]:
        problems.append(f"Q/DQ types {out['types']}: TensorRT takes signed int8 only")
    if out["nonzero_zero_points"]:
        problems.append(f"{out['nonzero_zero_points']} Q/DQ nodes have non-zero zero points: TensorRT is symmetric only")
    if out["per_channel_activations"]:
        problems.append(f"{out['per_channel_activations']} activation DequantizeLinear nodes are per-channel")
    if out["per_tensor_weights"] and not out["per_channel_weights"]:
        problems.append("weights are quantized per tensor, not per output channel")
    out["problems"] = problems
    return out


def trt_qdq(ctx, config: TensorRTQDQConfig, target: Path) -> Artifact:
    """Handler for ``int8_qdq:onnx``: symmetric s8s8 QDQ, per-channel weights, TensorRT placement."""
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType

    if config.calibrate_method not in ("MinMax", "Entropy", "Percentile"):
        raise EdgeDermError(f"TensorRT QDQ calibrate_method {config.calibrate_method!r} is not MinMax, Entropy "
                            "or Percentile")
    source = ctx.onnx_path()
    opset = next((o.version for o in onnx.load(str(source), load_external_data=False).opset_import
                  if o.domain in ("", "ai.onnx")), 0)
    if opset < MIN_OPSET:
        raise EdgeDermError(f"{source.name} has opset {opset}; TensorRT's per-channel Q/DQ needs opset >= "
                            f"{MIN_OPSET}: export it again with edgederm export (opset 17)")

    def tensorrt_ready(path: Path) -> list[str]:
        props = qdq_properties(path)
        if props["problems"]:
            raise EdgeDermError(f"the QDQ file made from {source.name} is not TensorRT-ready: "
                                + "; ".join(props["problems"]))
        return [f"TensorRT explicit quantization: {props['quantize']} Q / {props['dequantize']} DQ, int8, "
                f"zero points 0, {props['per_channel_weights']} per-channel weights, opset {props['opset']}"]

    notes = static_quantize(ctx, target, config.preprocess, "TensorRT QDQ", check=tensorrt_ready,
                            quant_format=QuantFormat.QDQ, per_channel=True, reduce_range=False,
                            activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
                            op_types_to_quantize=list(config.op_types),
                            nodes_to_exclude=list(config.nodes_to_exclude) or None,
                            calibrate_method=getattr(CalibrationMethod, config.calibrate_method),
                            extra_options={"ActivationSymmetric": True, "WeightSymmetric": True,
                                           "OpTypesToExcludeOutputQuantization": list(WEIGHTED),
                                           "DedicatedQDQPair": False, "AddQDQPairToWeight": False,
                                           "QuantizeBias": False})  # TensorRT: float bias, no int32 DQ
    return describe_artifact(ctx, target, f"onnxruntime quantize_static (QDQ, s8s8 symmetric, per-channel weights, "
                             f"TensorRT placement, {config.calibrate_method})", notes, ("onnxruntime", "onnx"))
