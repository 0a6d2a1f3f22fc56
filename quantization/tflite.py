"""TFLite/LiteRT schemes: onnx2tf's integer variants, calibrated on our own images.

Route: the export folder's ONNX file -> onnx2tf with ``-oiqt -qt per-channel -cind`` (in a child
process, ``converters.onnx2tflite``). One onnx2tf run writes every variant, so all TFLite schemes
asked for in one ``quantize`` call share it (``ctx.cache``):

* ``dynamic``: int8 weights, float activations (no calibration);
* ``int8``: full int8 with int8 input/output (the input's scale/zero point are in the manifest);
* ``int8_floatio``: full int8 inside, float32 input/output;
* ``int16x8``: int16 activations, int8 weights, float I/O (runs on reference kernels: slow).

Why onnx2tf's ``-oiqt`` rather than ``TFLiteConverter.from_saved_model`` with a representative
dataset: toolchain notes measured identical int8 outputs for the two, and onnx2tf is the route
export already uses for fp32/fp16, so the quantized files come from the same graph (same NHWC
transposes, same I/O names) as the verified float ones, with no second TensorFlow code path.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from edgederm.errors import EdgeDermError
from edgederm.manifest import Artifact

VARIANTS = ("dynamic", "int8", "int8_floatio", "int16x8", "fp16")


@dataclass(frozen=True)
class TFLiteConfig:
    """Attributes:
        variant: which onnx2tf output (``dynamic``, ``int8``, ``int8_floatio``, ``int16x8``, ``fp16``).
        quant_type: ``per-channel`` (weights) or ``per-tensor``.
        io_dtype: integer I/O type of the ``int8`` variant: ``int8`` or ``uint8``.
    """

    variant: str = "int8"
    quant_type: str = "per-channel"
    io_dtype: str = "int8"

    def __post_init__(self):
        if self.variant not in VARIANTS:
            raise EdgeDermError(f"TFLite variant {self.variant!r} is not one of {', '.join(VARIANTS)}")
        if self.quant_type not in ("per-channel", "per-tensor"):
            raise EdgeDermError(f"TFLite quant_type {self.quant_type!r} must be per-channel or per-tensor")
        if self.io_dtype not in ("int8", "uint8"):
            raise EdgeDermError(f"TFLite io_dtype {self.io_dtype!r} must be int8 or uint8")


def _outputs(ctx, config: TFLiteConfig) -> dict[str, Path]:
    """onnx2tf's files for every TFLite variant this run plans, made once per (quant_type, io_dtype)."""
    from converters.onnx2tflite import CALIBRATED, produce

    planned = {s.config.variant for s in ctx.planned("tflite") if isinstance(s.config, TFLiteConfig)}
    planned = planned | {config.variant}
    calibrated = bool(planned & set(CALIBRATED))
    key = ("onnx2tf", config.quant_type, config.io_dtype, calibrated)
    have = ctx.cache.get(key)
    if have is None or config.variant not in have:
        import tempfile

        work = Path(tempfile.mkdtemp(prefix="onnx2tf-", dir=ctx.work))
        cal = ctx.calibration if calibrated else None
        have = produce(ctx.onnx_path(), work, sorted(planned), calibration=cal.inputs("NHWC") if cal else None,
                       calibration_images=cal.images if cal else None, quant_type=config.quant_type,
                       io_dtype=config.io_dtype)
        ctx.cache[key] = have
    return have


def quantize(ctx, config: TFLiteConfig, target: Path) -> Artifact:
    """Handler for ``dynamic|int8|int8_floatio|int16x8:tflite``."""
    from converters.onnx2tflite import install

    produced = _outputs(ctx, config)[config.variant]
    artifact = install(produced, target, ctx.manifest, config.variant)
    artifact.converter = (f"onnx2tflite (onnx2tf -oiqt, {config.variant}, weights {config.quant_type}"
                          + (f", {config.io_dtype} I/O" if config.variant == "int8" else "") + ")")
    if config.variant == "int8":
        q = artifact.inputs[0].quantization or {}
        artifact.notes.append(f"integer I/O: feed {artifact.inputs[0].dtype} = round(x / {q.get('scale', 0):.6g} + "
                              f"{q.get('zero_point', 0)}) of the normalised input; read outputs as "
                              "(y - zero_point) * scale (manifest inputs/outputs carry both)")
    if config.variant == "int16x8":
        artifact.notes.append("int16 activations run on LiteRT's reference kernels (no XNNPACK): accurate but slow")
    return artifact


def fp16(ctx, config, target: Path) -> Artifact:
    """``fp16:tflite`` delegates to export: the folder's ``tflite_fp16`` if present, else made the same way."""
    existing = ctx.existing("tflite_fp16")
    if existing is not None:
        return existing
    from converters.onnx2tflite import install

    return install(_outputs(ctx, config)["fp16"], target, ctx.manifest, "fp16")  # shares the integer run if any
