"""Segmenters built by segmentation_models_pytorch (U-Net, U-Net++, DeepLabV3+, MiT hybrid)."""

from __future__ import annotations

from edgederm.models.entry import ModelEntry


def build(entry: ModelEntry, num_classes: int, pretrained, arch: str, encoder: str, **kwargs):
    import segmentation_models_pytorch as smp

    online = pretrained in (True, "online")
    weights = "imagenet" if online else None
    model = smp.create_model(arch, encoder_name=encoder, encoder_weights=weights, classes=1, **kwargs)
    if pretrained == "imagenet" and encoder == "tu-efficientnet_lite0":
        from edgederm.models.efficientnet_lite import load_lite0_imagenet_into_encoder

        load_lite0_imagenet_into_encoder(model.encoder.model)
    return model
