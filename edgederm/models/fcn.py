"""FCN-8s (Long et al. 2015) decoder on a MobileNetV2 encoder from segmentation_models_pytorch."""

from __future__ import annotations

from edgederm.models.entry import ModelEntry


def build(entry: ModelEntry, num_classes: int, pretrained, encoder: str = "mobilenet_v2", **kwargs):
    import segmentation_models_pytorch as smp
    import torch.nn as nn
    import torch.nn.functional as F

    class FCN8s(nn.Module):
        """Per-pixel scores from strides 32, 16 and 8, fused by upsample-and-sum, then x8 to the input."""

        def __init__(self):
            super().__init__()
            online = pretrained in (True, "online")
            self.encoder = smp.encoders.get_encoder(encoder, weights="imagenet" if online else None, depth=5)
            ch = self.encoder.out_channels
            self.score32 = nn.Sequential(nn.Conv2d(ch[5], 256, 3, padding=1, bias=False),
                                         nn.BatchNorm2d(256), nn.ReLU(inplace=True), nn.Conv2d(256, 1, 1))
            self.score16 = nn.Conv2d(ch[4], 1, 1)
            self.score8 = nn.Conv2d(ch[3], 1, 1)

        def forward(self, x):
            f = self.encoder(x)
            s = F.interpolate(self.score32(f[5]), scale_factor=2.0, mode="bilinear") + self.score16(f[4])
            s = F.interpolate(s, scale_factor=2.0, mode="bilinear") + self.score8(f[3])
            return F.interpolate(s, scale_factor=8.0, mode="bilinear")

    return FCN8s()
