"""``int8:executorch``: PT2E static int8 for ExecuTorch's XNNPACK backend, calibrated on our images.

``torch.export`` -> ``torchao.quantization.pt2e.prepare_pt2e`` with ExecuTorch's
``XNNPACKQuantizer`` (int8 activations, per-channel symmetric int8 weights by default) plus
the conv -> hardtanh (ReLU6) fusion it lacks (``quantization.executorch_quantizer``: without
it EfficientNet-Lite0's logit cosine is ~0.80, with it ~0.985) -> the ``CalibrationSet``
every other scheme is fed (the manifest's normalisation, NCHW) -> ``convert_pt2e`` ->
``torch.export`` again -> XNNPACK lowering as the fp32 route
(``converters.torch2executorch.lower``). I/O stays float32 (quantize/dequantize run inside
the delegate), so the artifact is fed exactly like ``executorch_fp32``.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path

from edgederm.errors import EdgeDermError
from edgederm.manifest import Artifact


@dataclass(frozen=True)
class ExecuTorchInt8Config:
    """PT2E options: ``per_channel`` weights (False: one scale per tensor).

    Calibration runs one image per call: ``torch.export`` specialises the batch dimension to
    the example's 1, and the prepared graph guards it (``x.size()[0] == 1``).
    """

    per_channel: bool = True


def quantize_model(model, x, config: ExecuTorchInt8Config, name: str):
    """The PT2E-quantized ``torch.export`` program of ``model``, calibrated on the float NCHW batch ``x``."""
    import torch

    from converters.torch2executorch import quiet_torch_logs

    with quiet_torch_logs():
        from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

        from quantization.executorch_quantizer import xnnpack_int8_quantizer

        example = (x[:1],)
        try:
            graph = torch.export.export(copy.deepcopy(model).eval(), example).module()
            prepared = prepare_pt2e(graph, xnnpack_int8_quantizer(config.per_channel))
            with torch.no_grad():
                for i in range(len(x)):
                    prepared(x[i:i + 1])
            converted = convert_pt2e(prepared)
            return torch.export.export(converted, example)
        except Exception as e:
            raise EdgeDermError(f"{name}: PT2E int8 quantization for ExecuTorch failed: {type(e).__name__}: "
                                f"{str(e).strip().splitlines()[0][:200] if str(e).strip() else ''}") from None


def int8(ctx, config: ExecuTorchInt8Config, target: Path) -> Artifact:
    """Handler for ``int8:executorch``."""
    import torch

    from converters import torch2executorch as t2e

    x = torch.from_numpy(ctx.calibration.inputs("NCHW"))
    model = ctx.deployable()[0]
    program = quantize_model(model, x, config, ctx.manifest.model["name"])
    coverage = t2e.lower(program, ctx.manifest, target, "ExecuTorch (int8)")
    granularity = "per-channel" if config.per_channel else "per-tensor"
    artifact = t2e.artifact(ctx.manifest, target, "int8", coverage,
                            f"PT2E XNNPACKQuantizer (symmetric, {granularity} weights, conv+ReLU6 fused, "
                            f"calibrated on {len(x)} images) + torch2executorch (XNNPACK partitioner)")
    artifact.notes.append("int8 weights and activations inside the XNNPACK delegate; float32 input and output")
    return artifact
