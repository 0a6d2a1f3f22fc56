"""What the verbs share: option types that refuse bad values before any slow work, the gate
overrides, and how export/quantize/verify turn failures into one line each and an exit code."""

from __future__ import annotations

import math
import sys

from device_bench.console import (non_negative_int, positive_float, positive_int, thread_count,  # noqa: F401
                                  thread_list)  # the verbs' option types, one home with device_bench's
from edgederm.errors import EdgeDermError

def csv_list(text: str, flag: str) -> list[str]:
    items = [t.strip() for t in str(text).split(",") if t.strip()]
    if not items:
        raise EdgeDermError(f"{flag} is empty: give at least one name")
    return items


def known_precisions() -> list[str]:
    """Every precision an artifact can have: the gates' own, the formats', the quantization schemes'."""
    from converters import FORMATS
    from edgederm.verify import DEFAULT_GATES
    from quantization import SCHEMES

    names = list(DEFAULT_GATES) + [p for f in FORMATS.names() for p in FORMATS.get(f).precisions]
    names += [SCHEMES.get(k).precision for k in SCHEMES.names()]
    return sorted(set(names))


def _gate_value(item: str, figure: str, text: str) -> float:
    low, high = (-1.0, 1.0) if figure == "min_logit_cosine" else (0.0, 1.0) if figure.startswith("min_") else (0.0, math.inf)
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or not low <= value <= high:
        raise EdgeDermError(f"--gate {item!r}: {text!r} is out of range for {figure} "
                            f"(a number from {low:g} to {high:g})")
    return value


def gates_from_args(args) -> dict:
    """``--gate PRECISION:FIGURE:VALUE`` overrides, every part checked (known precision and figure,
    a finite value in the figure's range)."""
    from edgederm.verify import DEFAULT_GATES, Gate

    overrides: dict = {}
    for item in getattr(args, "gate", None) or []:
        parts = item.split(":")
        if len(parts) != 3:
            raise EdgeDermError(f"--gate {item!r} must be PRECISION:FIGURE:VALUE, e.g. fp16:min_top1_agreement:0.98")
        precision, figure, text = parts
        if precision not in known_precisions():
            raise EdgeDermError(f"--gate {item!r}: unknown precision {precision!r} (known: {', '.join(known_precisions())})")
        if figure not in Gate.__dataclass_fields__:
            raise EdgeDermError(f"--gate {item!r}: unknown figure {figure!r} "
                                f"(figures: {', '.join(Gate.__dataclass_fields__)})")
        base = overrides.get(precision, DEFAULT_GATES.get(precision, Gate()))
        overrides[precision] = Gate(**{**base.__dict__, figure: _gate_value(item, figure, text)})
    return overrides


def exit_status(failures: list[str], verify) -> int:
    """Print each failure and failed gate as one error line; 1 (a verdict) if there was any."""
    from device_bench.console import VERDICT, say

    bad = [r for r in verify if r.status == "fail"]
    for message in failures:
        say(f"edgederm: error: {message}")
    for r in bad:
        say(f"edgederm: error: verification failed: {r.reason}")
    return VERDICT if (bad or failures) else 0


def print_export(outcome) -> int:
    from edgederm.report import export_rows
    from edgederm.table import print_table

    print_table(export_rows(outcome))
    print(f"\nmanifest: {outcome.folder / 'manifest.json'}")
    sys.stdout.flush()
    return exit_status([f"export to {f['format']} {f['precision']} failed: {f['error']}" for f in outcome.failures],
                       outcome.verify)
