"""Post-training quantization of an export folder: one registry of schemes, one verb.

Public API (stable; ``quantization.diagnose``/``qat``/``control`` build on it):

``SCHEMES: Registry[QuantScheme]``, keyed ``"<scheme>:<format>"`` (``edgederm quantize --list``):

- ``fp16:tflite`` -> ``tflite_fp16``: export's fp16 file (reused, or made as export does)
- ``dynamic:tflite`` -> ``tflite_dynamic``: int8 weights, float activations (no calibration)
- ``int8:tflite`` -> ``tflite_int8``: full int8, int8 I/O (scale/zero point in the manifest)
- ``int8_floatio:tflite`` -> ``tflite_int8_floatio``: full int8, float32 I/O
- ``int16x8:tflite`` -> ``tflite_int16x8``: int16 activations, int8 weights (slow kernels)
- ``int8:onnx`` -> ``onnx_int8``: onnxruntime quantize_static, u8s8 QOperator, per-channel 7-bit weights
- ``int8_nncf:onnx`` -> ``onnx_int8_nncf``: nncf.quantize on the ONNX model (QDQ)
- ``int8_qdq:onnx`` -> ``onnx_int8_qdq``: TensorRT-ready QDQ (s8s8 symmetric, per-channel weights,
  Q/DQ where TensorRT fuses them; ``quantization.onnx_qdq``)
- ``fp16:coreml`` -> ``coreml_fp16``: export's fp16 package (reused, or converted)
- ``w8:coreml`` -> ``coreml_w8``: linear int8 weights (``linear_quantize_weights``);
  ``int8:coreml`` is an alias (as Ultralytics' ``coreml int8``)
- ``int8:executorch`` -> ``executorch_int8``: PT2E ``XNNPACKQuantizer`` (per-channel symmetric), XNNPACK ``.pte``
- ``palette6:coreml`` / ``palette4:coreml`` -> ``coreml_palette6/4``: k-means palettized weights
- ``w8a8:coreml`` -> ``coreml_w8a8``: int8 weights and activations, calibrated in torch

``QuantScheme(scheme, format, config, handler, artifact, description, precision, calibrated)``:
the config is a frozen dataclass (data: ``TFLiteConfig``, ``OrtStaticConfig``, ``NNCFConfig``,
``CoreMLWeightConfig``, ``CoreMLW8A8Config``); the handler is a ``"module:function"`` string
(code), called as ``fn(ctx, config, target) -> Artifact``. ``register_scheme(QuantScheme(...))``
adds one.

``quantize(source, schemes, formats=None, *, calibration=CalibrationConfig(), data_root=None,
verify=True, gates=None, n_verify=512, model=None, configs=None, verification=None)
-> QuantizeOutcome``: quantizes an export folder (or its manifest.json). ``schemes`` are names
expanded over ``formats`` (default: the formats the folder holds; missing pairs are skipped with
a note) or full keys. Each artifact is added to the manifest (path, sha256, size, I/O specs with
integer scale/zero point, converter, a calibration note) and verified by
``edgederm.verify.verify_manifest(..., only=produced)`` against the PyTorch original on
``n_verify`` test images, with the int8 task-metric gates (balanced accuracy / AUROC drop,
Dice / thresholded-Jaccard drop). The manifest gains a ``quantize`` step (schemes, configs,
calibration record, seconds) and a ``verify`` step. ``QuantizeOutcome(manifest, folder,
produced, failures, verify, calibration, notes, seconds)``; a failing scheme does not stop the
others. ``configs={"int8:onnx": OrtStaticConfig(quant_format="QDQ")}`` varies a scheme.

Lower level, for escalation loops: ``with QuantContext(folder, calibration=..., data_root=...)
as ctx: run_scheme(ctx, "int8:onnx", config, name="onnx_int8_try2")`` makes one artifact
(``ctx.manifest.put``; save it yourself), sharing one calibration set, one model load and one
onnx2tf run across calls. ``resolve(schemes, formats)`` expands names; ``summary_rows(outcome)``
gives the CLI table rows (size, ratio to fp32, verify figures, status).

Calibration (``quantization.calibration``): ``CalibrationConfig(source=None, size=None,
split="train", seed=0, dataset=None)``; ``load_calibration(manifest, config, data_root) ->
CalibrationSet(images uint8 NHWC, preprocessing, record)``; ``CalibrationSet.inputs(layout)`` is
the normalised float batch every quantizer is fed (the manifest's mean/std, one code path).
Default: class-stratified 200 train images (segmentation: 100 random); or a folder of images or
a uint8 ``[N, H, W, 3]`` ``.npy``. The record holds count, source, split, method, per-class
counts and ``ids_sha256``.

Heavy libraries (TensorFlow, onnxruntime, NNCF, coremltools, torch) are imported inside the
handlers; importing this package is light.
"""

from quantization.api import (SCHEMES, QuantContext, QuantizeOutcome, QuantScheme, artifact_filename, formats_in,
                              quantize, register_scheme, resolve, run_scheme, scheme_names)
from quantization.calibration import CalibrationConfig, CalibrationSet, load_calibration
from quantization.coreml import CoreMLW8A8Config, CoreMLWeightConfig
from quantization.executorch import ExecuTorchInt8Config
from quantization.onnx import NNCFConfig, OrtStaticConfig
from quantization.onnx_qdq import TensorRTQDQConfig
from quantization.summary import summary_rows
from quantization.tflite import TFLiteConfig

__all__ = ["SCHEMES", "CalibrationConfig", "CalibrationSet", "CoreMLW8A8Config", "CoreMLWeightConfig", "NNCFConfig",
           "OrtStaticConfig", "QuantContext", "TensorRTQDQConfig", "QuantScheme", "QuantizeOutcome", "TFLiteConfig", "artifact_filename",
           "formats_in", "load_calibration", "quantize", "register_scheme", "resolve", "run_scheme", "scheme_names",
           "summary_rows"]


def _register() -> None:
    t, o, c = "quantization.tflite", "quantization.onnx", "quantization.coreml"
    for s in [
        QuantScheme("fp16", "tflite", TFLiteConfig("fp16"), f"{t}:fp16", "tflite_fp16",
                    "fp16 weights (export's file, reused; made the same way if absent)", calibrated=False),
        QuantScheme("dynamic", "tflite", TFLiteConfig("dynamic"), f"{t}:quantize", "tflite_dynamic",
                    "dynamic range: int8 weights, float activations (onnx2tf)", calibrated=False),
        QuantScheme("int8", "tflite", TFLiteConfig("int8"), f"{t}:quantize", "tflite_int8",
                    "full int8, int8 input/output (onnx2tf -oiqt, per-channel, our calibration)"),
        QuantScheme("int8_floatio", "tflite", TFLiteConfig("int8_floatio"), f"{t}:quantize", "tflite_int8_floatio",
                    "full int8 inside, float32 input/output"),
        QuantScheme("int16x8", "tflite", TFLiteConfig("int16x8"), f"{t}:quantize", "tflite_int16x8",
                    "int16 activations, int8 weights, float I/O (LiteRT reference kernels: slow)"),
        QuantScheme("int8", "onnx", OrtStaticConfig(), f"{o}:ort_static", "onnx_int8",
                    "onnxruntime quantize_static: u8s8, QOperator, per-channel 7-bit weights, percentile ranges"),
        QuantScheme("int8_nncf", "onnx", NNCFConfig(), f"{o}:nncf_ptq", "onnx_int8_nncf",
                    "nncf.quantize on the ONNX model: QDQ, performance preset, bias correction"),
        QuantScheme("int8_qdq", "onnx", TensorRTQDQConfig(), "quantization.onnx_qdq:trt_qdq", "onnx_int8_qdq",
                    "TensorRT-ready QDQ: int8 symmetric, per-channel weights, per-tensor activations, Q/DQ on "
                    "the inputs TensorRT fuses (explicit quantization for trtexec / the tensorrt runner)"),
        QuantScheme("fp16", "coreml", None, f"{c}:fp16", "coreml_fp16",
                    "fp16 mlprogram (export's package, reused; converted if absent)", calibrated=False),
        QuantScheme("w8", "coreml", CoreMLWeightConfig("linear", 8), f"{c}:compress_weights", "coreml_w8",
                    "int8 weights, linear symmetric per-channel (coremltools linear_quantize_weights)",
                    calibrated=False),
        QuantScheme("int8", "coreml", CoreMLWeightConfig("linear", 8), f"{c}:compress_weights", "coreml_w8",
                    "alias of w8:coreml (weight-only int8, as Ultralytics' coreml int8)", precision="w8",
                    calibrated=False),
        QuantScheme("palette6", "coreml", CoreMLWeightConfig("palettize", 6, granularity="per_tensor"), f"{c}:compress_weights",
                    "coreml_palette6", "6-bit k-means palettized weights (coremltools palettize_weights)",
                    calibrated=False),
        QuantScheme("palette4", "coreml", CoreMLWeightConfig("palettize", 4, granularity="per_tensor"),
                    f"{c}:compress_weights", "coreml_palette4",
                    "4-bit k-means palettized weights (per tensor: grouped palettes need iOS 18)", calibrated=False),
        QuantScheme("w8a8", "coreml", CoreMLW8A8Config(), f"{c}:w8a8", "coreml_w8a8",
                    "int8 weights and activations: coremltools.optimize.torch LinearQuantizer calibrated on our "
                    "images, converted for iOS 17 (structure checked on Linux; runs on macOS/iOS)"),
        QuantScheme("int8", "executorch", ExecuTorchInt8Config(), "quantization.executorch:int8", "executorch_int8",
                    "PT2E static int8 (ExecuTorch XNNPACKQuantizer, symmetric, per-channel weights), lowered to "
                    "XNNPACK; float32 I/O"),
    ]:
        register_scheme(s)


_register()
