"""ExecuTorch's ``XNNPACKQuantizer`` taught one more pattern: conv -> hardtanh (ReLU6) as one partition.

The stock quantizer (executorch 1.5.1) fuses conv with ``relu`` only. A conv followed by
``hardtanh`` (``nn.ReLU6``: EfficientNet-Lite, MobileNetV2) gets its int8 output range from the
*pre*-activation tensor, whose negative tail (BN folded in) is wide and then clipped away: on
EfficientNet-Lite0 with ImageNet weights a median 62 of the 256 levels (7 at worst) land in
[0, 6], every layer loses ~10 dB of SQNR and the logit cosine falls to ~0.80
(docs/benchmarks.md, ExecuTorch section).

Annotated here as TFLite and ORT quantize it: the conv's input and weights are observed, its
output is not, and the int8 range is taken after the hardtanh. The converted graph is then
``dq -> conv -> hardtanh -> q``, which the XNNPACK backend lowers as one convolution with the
clamp fused into its output min/max (``FuseActivationPass``).

Imports executorch and torchao at module level: import it only where they are needed.
"""

from __future__ import annotations

import torch
from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (CONV_TARGETS, XNNPACKQuantizer,
                                                                     get_symmetric_quantization_config)
from torch.fx import GraphModule, Node
from torchao.quantization.pt2e.quantizer import (QuantizationAnnotation, QuantizationConfig, get_bias_qspec,
                                                 get_input_act_qspec, get_output_act_qspec, get_weight_qspec)
from torchao.quantization.pt2e.quantizer.quantizer import Q_ANNOTATION_KEY

HARDTANH = (torch.ops.aten.hardtanh.default, torch.ops.aten.hardtanh_.default)


def _conv_feeding(act: Node) -> Node | None:
    """The conv whose only user is the hardtanh ``act``, not yet annotated; else None."""
    if act.op != "call_function" or act.target not in HARDTANH:
        return None
    conv = act.args[0]
    if not isinstance(conv, Node) or conv.op != "call_function" or conv.target not in CONV_TARGETS:
        return None
    if len(conv.users) > 1 or Q_ANNOTATION_KEY in conv.meta or Q_ANNOTATION_KEY in act.meta:
        return None  # another user needs the pre-activation values, or another pattern took it
    return conv


def annotate_conv_hardtanh(gm: GraphModule, config: QuantizationConfig) -> int:
    """Annotate every conv -> hardtanh pair of ``gm`` as one quantized partition; returns how many."""
    count = 0
    for act in gm.graph.nodes:
        conv = _conv_feeding(act)
        if conv is None:
            continue
        weight, bias = conv.args[1], conv.args[2] if len(conv.args) > 2 else None
        qspecs = {conv.args[0]: get_input_act_qspec(config), weight: get_weight_qspec(config)}
        if isinstance(bias, Node):
            qspecs[bias] = get_bias_qspec(config)
        # _annotated=True is how PT2E annotators claim nodes, so the stock "conv" pattern skips them
        conv.meta[Q_ANNOTATION_KEY] = QuantizationAnnotation(input_qspec_map=qspecs, _annotated=True)
        act.meta[Q_ANNOTATION_KEY] = QuantizationAnnotation(output_qspec=get_output_act_qspec(config),
                                                            _annotated=True)
        for param in (weight, bias):
            if isinstance(param, Node):
                param.meta.setdefault(Q_ANNOTATION_KEY, QuantizationAnnotation())._annotated = True
        count += 1
    return count


class ReLU6XNNPACKQuantizer(XNNPACKQuantizer):
    """``XNNPACKQuantizer`` with a global config, conv -> hardtanh annotated before its own patterns."""

    def __init__(self, config: QuantizationConfig):
        super().__init__()
        self.set_global(config)
        self.fused_hardtanh = 0  # how many conv -> hardtanh pairs the last annotate() fused

    def annotate(self, model: GraphModule) -> GraphModule:
        self.fused_hardtanh = annotate_conv_hardtanh(model, self.global_config)
        return super().annotate(model)


def xnnpack_int8_quantizer(per_channel: bool = True) -> ReLU6XNNPACKQuantizer:
    """Symmetric int8 (per-channel or per-tensor weights) for XNNPACK, ReLU6 fused."""
    return ReLU6XNNPACKQuantizer(get_symmetric_quantization_config(is_per_channel=per_channel))
