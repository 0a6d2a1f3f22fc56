"""Parsers for the text that device tools print (trtexec, TFLite ``benchmark_model``) into results rows.

A parser never guesses: output that is truncated, failed or lacks the figures raises
``ParseError`` naming the source and what is missing, never a silent zero.
"""

from __future__ import annotations

import re

from device_bench.errors import DeviceBenchError


class ParseError(DeviceBenchError):
    """Tool output that cannot be turned into a row; the message names the source and the missing part."""


NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"


def fields(text: str) -> dict[str, float]:
    """``key = 1.5 ms, percentile(90%) = 2 ms`` or ``min=3 max=4`` -> {key: value} (units dropped)."""
    return {k.strip(): float(v) for k, v in re.findall(rf"([A-Za-z0-9_()% ]+?)\s*=\s*({NUMBER})", text)}
