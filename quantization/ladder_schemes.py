"""The schemes only the ``--max-drop`` ladder builds (not in ``SCHEMES``): int16 activations and
fp16 for ONNX, the TFLite float fallback, and QAT for both formats. Each is a ``QuantScheme``
whose handler (``fn(ctx, config, target) -> Artifact``) lives here."""

from __future__ import annotations

from pathlib import Path

from converters.common import atomic_output, versions
from edgederm.manifest import Artifact
from quantization.api import QuantScheme
from quantization.calibration import BatchReader
from quantization.qat import QATConfig, qat, qat_float_model
from quantization.tflite import TFLiteFallbackConfig


def int16_scheme() -> QuantScheme:
    return QuantScheme("int16x8", "onnx", None, "quantization.ladder_schemes:ort_int16", "onnx_int16x8",
                       "QDQ int16 activations, int8 weights (onnxruntime)", precision="int16x8")


def ort_int16(ctx, config, target: Path) -> Artifact:
    """int16 activations / int8 weights, QDQ (onnxruntime runs it on CPU; ``com.microsoft`` Q/DQ ops)."""
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    source = ctx.onnx_path()
    x = ctx.calibration.inputs("NCHW")
    name = onnx.load(str(source), load_external_data=False).graph.input[0].name
    with atomic_output(target) as tmp:
        quantize_static(str(source), str(tmp), BatchReader(x, name), quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QInt16, weight_type=QuantType.QInt8,
                        calibrate_method=CalibrationMethod.MinMax,
                        extra_options={"ActivationSymmetric": True, "UseQDQContribOps": True})
    base = ctx.onnx_artifact()
    return Artifact(name="", path=str(target), format="onnx", precision="", inputs=list(base.inputs),
                    outputs=list(base.outputs), converter="onnxruntime quantize_static (QDQ, int16 activations, "
                    "int8 weights per-channel, MinMax)", tool_versions=versions("onnxruntime", "onnx"))


def tflite_fallback_scheme() -> QuantScheme:
    """int8 with the ops the diagnosis names kept in float (``TFLiteFallbackConfig``: the ops, the calibrated model)."""
    return QuantScheme("int8_fallback", "tflite", TFLiteFallbackConfig(), "quantization.tflite:int8_fallback",
                       "tflite_int8_fallback", "full int8, the most sensitive ops in float, float I/O",
                       precision="int8")


def qat_scheme(steps: int) -> QuantScheme:
    return QuantScheme("qat", "onnx", QATConfig(steps=steps), "quantization.ladder_schemes:qat_onnx", "onnx_int8_qat",
                       "NNCF quantization-aware training, QDQ int8", precision="int8")


def qat_onnx(ctx, config, target: Path) -> Artifact:
    """NNCF QAT of the deployable model, exported as QDQ int8 ONNX."""
    result = qat(ctx.deployable()[0], ctx.manifest, target, config, ctx.data_root, calibration=ctx.calibration)
    base = ctx.onnx_artifact()
    return Artifact(name="", path=str(target), format="onnx", precision="", inputs=list(base.inputs),
                    outputs=list(base.outputs), converter=f"NNCF QAT ({result.record()['steps']} steps) -> QDQ ONNX",
                    tool_versions=versions("nncf", "torch", "onnx"), notes=[f"qat: {result.record()}"])


def qat_tflite_scheme(steps: int) -> QuantScheme:
    return QuantScheme("qat", "tflite", QATConfig(steps=steps), "quantization.ladder_schemes:qat_tflite",
                       "tflite_int8_qat", "NNCF QAT-tuned weights, TFLite full int8 (float I/O)", precision="int8")


def qat_tflite(ctx, config, target: Path) -> Artifact:
    """QAT's tuned weights in the float model -> ONNX -> onnx2tf full int8 on the same calibration images."""
    import tempfile

    from converters import handler
    from converters.onnx2tflite import install, produce

    model, result = qat_float_model(ctx.deployable()[0], ctx.manifest, config, ctx.data_root,
                                    calibration=ctx.calibration)
    work = Path(tempfile.mkdtemp(prefix="qat-tflite-", dir=ctx.work))
    onnx_path = work / "float" / "model.onnx"  # onnx2tf works on its own copy in ``work``
    onnx_path.parent.mkdir()
    handler("torch2onnx")(model, ctx.manifest, onnx_path)
    cal = ctx.calibration
    produced = produce(onnx_path, work, ["int8_floatio"], calibration=cal.inputs("NHWC"), calibration_images=cal.images)
    artifact = install(produced["int8_floatio"], target, ctx.manifest, "int8_floatio")
    artifact.converter = (f"NNCF QAT ({result.record()['steps']} steps) weights -> torch2onnx -> onnx2tf full int8 "
                          "(float I/O, re-calibrated)")
    artifact.tool_versions = {**artifact.tool_versions, **versions("nncf", "torch")}
    artifact.notes.append(f"qat: {result.record()}")
    return artifact


def fp16_onnx_scheme() -> QuantScheme:
    return QuantScheme("fp16", "onnx", None, "quantization.ladder_schemes:onnx_fp16", "onnx_fp16",
                       "fp16 weights and compute, float32 I/O", precision="fp16", calibrated=False)


def onnx_fp16(ctx, config, target: Path) -> Artifact:
    """fp16 weights and compute with float32 I/O (onnxruntime's float16 converter)."""
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = convert_float_to_float16(onnx.load(str(ctx.onnx_path())), keep_io_types=True)
    with atomic_output(target) as tmp:
        onnx.save(model, str(tmp))
    base = ctx.onnx_artifact()
    return Artifact(name="", path=str(target), format="onnx", precision="", inputs=list(base.inputs),
                    outputs=list(base.outputs), converter="onnxruntime.transformers float16 (keep_io_types)",
                    tool_versions=versions("onnxruntime", "onnx"))

