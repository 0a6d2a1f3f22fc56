"""A lightweight SegNet (Badrinarayanan et al. 2017): the encoder's max-pool indices drive the decoder.

The unpooling is swappable because ``MaxUnpool`` converts neither to TFLite builtins nor to
Core ML. Both variants have the same parameters, so a ``segnet`` checkpoint loads unchanged
into ``segnet_mobile``:

* ``indices``: ``MaxPool2d(return_indices=True)`` -> ``MaxUnpool2d`` (the paper; PyTorch original).
* ``mask``: nearest x2 upsampling of the decoder map, kept only at the position of each
  encoder window's maximum (the pre-pool activation equal to its 2x2 window's max). Ties
  (common: windows that ReLU zeroed entirely) go to the first position in scan order, which
  is where ``max_pool2d``'s index points, so the result equals ``MaxUnpool``. Built from
  MaxPool/Resize/Equal/Mul and one fixed stride-2 ConvTranspose, which every format has.
"""

from __future__ import annotations

from edgederm.models.entry import ModelEntry

WIDTHS = (16, 32, 64, 128, 128)  # light: 2 CPU cores must train it in ~20 min


def build(entry: ModelEntry, num_classes: int, pretrained, unpool: str = "indices", widths=WIDTHS, **kwargs):
    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    def conv_bn(cin, cout):
        return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout),
                             nn.ReLU(inplace=True))

    class IndexUnpool(nn.Module):
        def forward(self, pooled, indices, before_pool):
            return F.max_unpool2d(pooled, indices, kernel_size=2, stride=2, output_size=before_pool.shape[-2:])

    def up2(t):
        return F.interpolate(t, scale_factor=2.0, mode="nearest")

    class MaskUnpool(nn.Module):
        def __init__(self):
            super().__init__()
            # scan-order rank inside each 2x2 window (first position highest); not in the state dict
            self.register_buffer("rank", torch.tensor([[[[4.0, 3.0], [2.0, 1.0]]]]), persistent=False)

        def forward(self, pooled, indices, before_pool):
            # the mask comes from the encoder activation alone: ``pooled`` is the decoder's map
            is_max = (before_pool == up2(F.max_pool2d(before_pool, 2, 2))).to(pooled.dtype)
            rank = F.conv_transpose2d(torch.ones_like(pooled[:, :1]), self.rank.to(pooled.dtype), stride=2)
            # expanded, not broadcast: onnx2tf mis-lays-out a [1,1,H,W] constant broadcast over channels
            score = is_max * rank.expand_as(is_max)  # > 0 at every window max, and distinct within a window
            first = (score == up2(F.max_pool2d(score, 2, 2))).to(pooled.dtype)
            return up2(pooled) * first

    class SegNet(nn.Module):
        def __init__(self):
            super().__init__()
            chans = (3,) + tuple(widths)
            self.enc = nn.ModuleList(nn.Sequential(conv_bn(chans[i], chans[i + 1]), conv_bn(chans[i + 1], chans[i + 1]))
                                     for i in range(len(widths)))
            self.dec = nn.ModuleList(nn.Sequential(conv_bn(chans[i + 1], chans[i + 1]),
                                                   conv_bn(chans[i + 1], max(chans[i], widths[0])))
                                     for i in reversed(range(len(widths))))
            self.unpool = {"indices": IndexUnpool, "mask": MaskUnpool}[unpool]()
            self.head = nn.Conv2d(widths[0], 1, 3, padding=1)

        def forward(self, x):
            skips = []
            for block in self.enc:
                x = block(x)
                if unpool == "indices":
                    pooled, idx = F.max_pool2d(x, kernel_size=2, stride=2, return_indices=True)
                else:  # no MaxPoolWithArgmax in the exported graph
                    pooled, idx = F.max_pool2d(x, kernel_size=2, stride=2), None
                skips.append((idx, x))
                x = pooled
            for block, (idx, before) in zip(self.dec, reversed(skips)):
                x = block(self.unpool(x, idx, before))
            return self.head(x)

    if unpool not in ("indices", "mask"):
        raise ValueError(f"unpool {unpool!r}")
    return SegNet()
