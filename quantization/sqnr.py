"""How far a quantized tensor is from its float original: SQNR, cosine, and int8 rounding by hand.

SQNR is ``20 log10(||x|| / ||x - y||)`` in dB (higher is better), cosine ``x.y / (||x|| ||y||)``,
with ``x`` the float reference. ``RunningStats`` accumulates both over many images without
keeping any activation in memory.
"""

from __future__ import annotations

import math

import numpy as np

EPS = float(np.finfo(np.float32).eps)


def sqnr_db(x: np.ndarray, y: np.ndarray) -> float:
    """``20 log10(||x|| / ||x - y||)`` in dB (x the float reference)."""
    x, y = np.asarray(x, np.float64).ravel(), np.asarray(y, np.float64).ravel()
    return 20 * math.log10(max(np.linalg.norm(x), EPS) / max(np.linalg.norm(x - y), EPS))


def fake_quant(x: np.ndarray, scale, zero_point, qmin: int, qmax: int, axis: int | None = None) -> np.ndarray:
    """``(clip(round(x / s) + z) - z) * s``: round half to even, as QuantizeLinear does."""
    scale, zero_point = np.asarray(scale, np.float64), np.asarray(zero_point, np.float64)
    if axis is not None and scale.ndim == 1 and scale.size > 1:
        shape = [1] * x.ndim
        shape[axis] = -1
        scale, zero_point = scale.reshape(shape), zero_point.reshape(shape)
    q = np.clip(np.round(x / scale) + zero_point, qmin, qmax)
    return ((q - zero_point) * scale).astype(np.float32)


class RunningStats:
    """Running sums for SQNR and cosine over many images (no activation kept in memory)."""

    def __init__(self):
        self.xx = self.dd = self.yy = self.xy = 0.0
        self.sx = 0.0
        self.n = 0
        self.cxx = self.cdd = None  # per channel (axis 1)

    def add(self, x: np.ndarray, y: np.ndarray) -> None:
        if x.ndim >= 2:
            axes = tuple(i for i in range(x.ndim) if i != 1)
            d64 = x.astype(np.float64) - y
            cxx, cdd = np.square(x, dtype=np.float64).sum(axes), np.square(d64).sum(axes)
            self.cxx = cxx if self.cxx is None else self.cxx + cxx
            self.cdd = cdd if self.cdd is None else self.cdd + cdd
        x, y = x.astype(np.float64).ravel(), y.astype(np.float64).ravel()
        self.xx += float(x @ x)
        self.yy += float(y @ y)
        self.xy += float(x @ y)
        d = x - y
        self.dd += float(d @ d)
        self.sx += float(x.sum())
        self.n += x.size

    @property
    def sqnr_db(self) -> float:
        return 10 * math.log10(max(self.xx, EPS ** 2) / max(self.dd, EPS ** 2))

    @property
    def channel_sqnr_db(self) -> float:
        """Median over channels carrying signal of each channel's SQNR: one outlier channel that
        stretches a per-tensor range wipes out the others, which the tensor SQNR (dominated by the
        outlier's energy) hides."""
        if self.cxx is None:
            return self.sqnr_db
        live = self.cxx > 1e-12 * max(float(self.cxx.max()), EPS)
        if not live.any():
            return self.sqnr_db
        return float(np.median(10 * np.log10(self.cxx[live] / np.maximum(self.cdd[live], EPS ** 2))))

    @property
    def cosine(self) -> float:
        return self.xy / max(math.sqrt(self.xx * self.yy), EPS)

    @property
    def std(self) -> float:
        mean = self.sx / max(self.n, 1)
        return math.sqrt(max(self.xx / max(self.n, 1) - mean * mean, 0.0))
