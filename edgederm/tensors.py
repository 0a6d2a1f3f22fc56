"""Torch-side batch work shared by training, evaluation and verification: normalisation,
dermoscopy augmentation on whole batches, and batched prediction."""

from __future__ import annotations

import math

import numpy as np

from edgederm.preprocessing import Preprocessing


def to_input(batch_uint8, prep: Preprocessing):
    """uint8 NHWC torch tensor -> normalised float NCHW (channels_last memory) for the model."""
    import torch

    x = batch_uint8.permute(0, 3, 1, 2).float().mul_(prep.scale)
    mean = torch.tensor(prep.mean).view(1, 3, 1, 1)
    std = torch.tensor(prep.std).view(1, 3, 1, 1)
    return ((x - mean) / std).contiguous(memory_format=torch.channels_last)


def augment(images, masks=None, generator=None, rotate_deg: float = 20.0, scale=(0.8, 1.0), jitter: float = 0.15,
            out_size: tuple[int, int] | None = None):
    """Dermoscopy augmentation on a float NCHW batch in 0..1 (before normalisation).

    Lesions have no canonical orientation, so: horizontal and vertical flips, rotation,
    zoom-in and brightness/contrast/saturation jitter. ``masks`` (float N1HW) get the same
    geometry (nearest neighbour). ``out_size`` (H, W) resamples to another size in the same
    pass, which is how progressive-resizing epochs get their smaller images for free.
    """
    import torch
    import torch.nn.functional as F

    n, _, h, w = images.shape
    oh, ow = out_size or (h, w)
    g = generator
    angle = (torch.rand(n, generator=g) * 2 - 1) * math.radians(rotate_deg)
    s = scale[0] + torch.rand(n, generator=g) * (scale[1] - scale[0])
    fx = torch.where(torch.rand(n, generator=g) < 0.5, -1.0, 1.0)
    fy = torch.where(torch.rand(n, generator=g) < 0.5, -1.0, 1.0)
    c, si = torch.cos(angle) * s, torch.sin(angle) * s
    # Rotation in pixel space, written in normalised coordinates (the H/W factors keep aspect).
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0], theta[:, 0, 1] = c * fx, -si * (h / w) * fy
    theta[:, 1, 0], theta[:, 1, 1] = si * (w / h) * fx, c * fy
    grid = F.affine_grid(theta, (n, 3, oh, ow), align_corners=False)
    images = F.grid_sample(images, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
    if masks is not None:
        masks = F.grid_sample(masks, grid, mode="nearest", padding_mode="reflection", align_corners=False)
    if jitter > 0:
        def rnd():
            return (1 + (torch.rand(n, 1, 1, 1, generator=g) * 2 - 1) * jitter)
        images = images * rnd()
        mean = images.mean(dim=(1, 2, 3), keepdim=True)
        images = (images - mean) * rnd() + mean
        grey = images.mean(dim=1, keepdim=True)
        images = (images - grey) * rnd() + grey
        images = images.clamp_(0, 1)
    return images, masks


def normalize_float(images01, prep: Preprocessing):
    import torch

    mean = torch.tensor(prep.mean).view(1, 3, 1, 1)
    std = torch.tensor(prep.std).view(1, 3, 1, 1)
    return ((images01 - mean) / std).contiguous(memory_format=torch.channels_last)


def predict(model, images_uint8: np.ndarray, prep: Preprocessing, batch_size: int = 64, desc: str = "") -> np.ndarray:
    """Model outputs (logits) for uint8 NHWC images, in batches, as float32 numpy."""
    import torch

    from edgederm.progress import progress

    if not getattr(model, "static_batch", False):  # exported programs refuse eval()/to()
        model.eval()
        model = model.to(memory_format=torch.channels_last)
    outs = []
    starts = range(0, len(images_uint8), batch_size)
    with torch.inference_mode():
        for i in progress(starts, total=len(starts), desc=desc or "predict"):
            x = to_input(torch.from_numpy(images_uint8[i:i + batch_size]), prep)
            outs.append(model(x).float().numpy())
    return np.concatenate(outs) if outs else np.zeros((0,), np.float32)


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def cosine(x: np.ndarray, y: np.ndarray) -> float:
    """Cosine similarity of two tensors, flattened (float64; 0 for an all-zero side)."""
    x, y = np.asarray(x, np.float64).ravel(), np.asarray(y, np.float64).ravel()
    return float(x @ y / max(np.linalg.norm(x) * np.linalg.norm(y), float(np.finfo(np.float32).eps)))

