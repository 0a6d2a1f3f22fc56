"""The preprocessing record carried with a model everywhere (like timm's pretrained config).

Training, evaluation, the converters and the app manifest all read input size, resize
policy, mean/std and channel layout from this one record, so a phone app and the PyTorch
original feed the network the same numbers.
"""

from __future__ import annotations

import math

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from edgederm.errors import EdgeDermError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
RESIZE_MODES = ("stretch", "shorter_side_center_crop")


@dataclass(frozen=True)
class Preprocessing:
    """How an RGB image becomes the model's input tensor.

    Steps, in order: decode as RGB uint8; resize to ``input_size`` (``stretch``) or resize the
    shorter side and centre-crop (``shorter_side_center_crop``) with ``interpolation``;
    ``x = (pixel * scale - mean) / std`` per channel; arrange as ``layout``.

    Attributes:
        input_size: (height, width) in pixels.
        mean, std: per-channel, in ``channel_order``, applied after ``scale``.
        scale: multiplies uint8 pixels before normalisation (1/255 maps them to 0..1).
        channel_order: "RGB" (what PIL, Android ``Bitmap`` and Core ML give).
        layout: "NCHW" for PyTorch/ONNX; the TFLite converters record "NHWC" for their artifact.
    """

    input_size: tuple[int, int] = (192, 256)
    resize: str = "stretch"
    interpolation: str = "bilinear"
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    scale: float = 1.0 / 255.0
    channel_order: str = "RGB"
    layout: str = "NCHW"
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    def __post_init__(self):
        if self.resize not in RESIZE_MODES:
            raise EdgeDermError(f"preprocessing resize {self.resize!r} is not one of {RESIZE_MODES}")
        try:
            size = tuple(int(v) for v in self.input_size)
            mean, std = tuple(float(v) for v in self.mean), tuple(float(v) for v in self.std)
            scale = float(self.scale)
        except (TypeError, ValueError):
            raise EdgeDermError(f"preprocessing {self.input_size=}, {self.mean=}, {self.std=}, {self.scale=} must be "
                                "numbers: input_size [height, width], mean and std three per channel") from None
        if len(size) != 2 or min(size) < 8 or max(size) > 8192:
            raise EdgeDermError(f"preprocessing input_size {list(size)} must be [height, width], each 8 to 8192")
        if len(mean) != 3 or len(std) != 3 or not all(math.isfinite(v) for v in mean + std + (scale,)):
            raise EdgeDermError(f"preprocessing mean {list(mean)} and std {list(std)} must be three finite numbers each")
        if min(std) <= 0 or scale <= 0:
            raise EdgeDermError(f"preprocessing std {list(std)} and scale {scale} must be above 0 (they divide and "
                                "multiply every pixel)")
        if self.channel_order not in ("RGB", "BGR") or self.layout not in ("NCHW", "NHWC"):
            raise EdgeDermError(f"preprocessing channel_order {self.channel_order!r} / layout {self.layout!r} must be "
                                "RGB or BGR / NCHW or NHWC")
        object.__setattr__(self, "input_size", size)
        object.__setattr__(self, "mean", mean)
        object.__setattr__(self, "std", std)
        object.__setattr__(self, "scale", scale)

    # --- serialisation -------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["input_size"] = list(self.input_size)
        d["mean"], d["std"] = list(self.mean), list(self.std)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Preprocessing":
        if not isinstance(d, dict):
            raise EdgeDermError(f"preprocessing must be a mapping (input_size, mean, std, ...), not {type(d).__name__}")
        known = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        return cls(**known)

    def replace(self, **changes) -> "Preprocessing":
        return Preprocessing.from_dict({**self.to_dict(), **changes})

    # --- application -----------------------------------------------------------------------
    def _fit(self, image, resample):
        """Resize (and centre-crop) a PIL image to ``input_size`` by the record's policy."""
        h, w = self.input_size
        if self.resize == "stretch":
            return image.resize((w, h), resample)
        s = max(h / image.height, w / image.width)
        new = (max(w, round(image.width * s)), max(h, round(image.height * s)))
        image = image.resize(new, resample)
        left, top = (new[0] - w) // 2, (new[1] - h) // 2
        return image.crop((left, top, left + w, top + h))

    def resize_image(self, image) -> np.ndarray:
        """PIL image (any mode) -> uint8 HWC RGB array at ``input_size``."""
        from PIL import Image

        resample = {"bilinear": Image.BILINEAR, "bicubic": Image.BICUBIC,
                    "nearest": Image.NEAREST, "lanczos": Image.LANCZOS}[self.interpolation]
        return np.asarray(self._fit(image.convert("RGB"), resample), dtype=np.uint8)

    def resize_mask(self, mask) -> np.ndarray:
        """PIL mask -> uint8 HW array of 0/1 at ``input_size`` (nearest neighbour, same geometry)."""
        from PIL import Image

        return (np.asarray(self._fit(mask.convert("L"), Image.NEAREST)) >= 128).astype(np.uint8)

    def normalize(self, pixels: np.ndarray) -> np.ndarray:
        """uint8 ``[..., H, W, 3]`` RGB -> float32 normalised, in ``layout`` (batch dims kept)."""
        if self.channel_order == "BGR":  # mean/std are given in channel_order
            pixels = pixels[..., ::-1]
        x = pixels.astype(np.float32) * np.float32(self.scale)
        x = (x - np.asarray(self.mean, np.float32)) / np.asarray(self.std, np.float32)
        if self.layout == "NCHW":
            x = np.moveaxis(x, -1, -3)
        return np.ascontiguousarray(x, dtype=np.float32)

    def __call__(self, image) -> np.ndarray:
        """PIL image -> float32 CHW (or HWC) input for one image."""
        return self.normalize(self.resize_image(image))
