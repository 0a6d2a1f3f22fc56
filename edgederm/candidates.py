"""What ``edgederm bench`` measures: a candidate (the original, an artifact, a peer path) as data.

Its own module so that the peer builders (``edgederm.peer_executorch``) and the bench both use it
without importing each other.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np


@dataclass
class Candidate:
    """Something to measure: a callable on a batch in its own input form, plus how to describe it."""

    row: dict
    open: Callable[[int], Callable]  # threads -> fn(x)
    make_input: Callable[[np.ndarray], np.ndarray]  # uint8 NHWC -> the callable's input
    to_reference: Callable[[np.ndarray], np.ndarray] = lambda y: y  # output -> original's layout
    outputs_prob: bool = False
    static_batch: bool = True
    accuracy_batch: int | None = None  # batch for the accuracy pass (default: 1 if static_batch else 32)
    cleanup: Callable[[], None] | None = None


def failed_peer(name: str, precision: str, reason: str, fmt: str = "onnx") -> Candidate:
    """A peer path that could not be built: a row that says why (a finding, not a crash)."""
    row = {"artifact": name, "format": fmt, "precision": precision, "role": "peer", "status": "failed", "reason": reason}
    return Candidate(row, None, None)
