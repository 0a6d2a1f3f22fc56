"""Classifiers built by timm (MobileNet, EfficientNet, ResNet, DenseNet, ViT, Swin)."""

from __future__ import annotations

from edgederm.models.entry import ModelEntry


def build(entry: ModelEntry, num_classes: int, pretrained, timm_name: str, set_img_size: bool = False, **kwargs):
    import timm

    if set_img_size:  # transformers bake the token grid into their position embeddings
        kwargs.setdefault("img_size", entry.preprocessing.input_size)
    online = pretrained in (True, "online")
    return timm.create_model(timm_name, pretrained=online, num_classes=num_classes, **kwargs)
