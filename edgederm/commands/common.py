"""What the verbs share: option types that refuse bad values before any slow work, the options
several verbs take (``--data``, ``--trust-source``, the gates, ``--json``), ``emit`` (a verb's
table, or the same rows as strict JSON), and how export/quantize/verify turn failures into one
line each and an exit code."""

from __future__ import annotations

import argparse
import math
import os
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

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


def print_export(outcome, args) -> int:
    """An export folder's artifacts and verdicts (``export``, ``verify``): the table or ``--json``."""
    from edgederm.report import export_rows

    def show(payload: dict) -> None:
        print_table_of(payload["rows"])
        print(f"\nmanifest: {payload['manifest']}")

    emit({"manifest": str(outcome.folder / "manifest.json"), "rows": export_rows(outcome)}, args, show)
    sys.stdout.flush()  # the table before the error lines on stderr
    return exit_status([f"export to {f['format']} {f['precision']} failed: {f['error']}" for f in outcome.failures],
                       outcome.verify)


# --- options several verbs take ------------------------------------------------------------
def add_data_option(sp, text: str | None = None) -> None:
    sp.add_argument("--data", help=text or "data root holding derm7/ and lesionseg/ (default: $EDGEDERM_DATA, ../shared/data)")


def data_root(args) -> Path | None:
    from edgederm.paths import find_data_root

    return find_data_root(getattr(args, "data", None))


def add_trust_option(sp) -> None:
    sp.add_argument("--trust-source", action="store_true",
                    help="load a TorchScript file, or a .pt2 with pickled entries (they run code): only for files you made")


def add_verifying_options(sp) -> None:
    """What export and verify share: trusting a source, the data root, the gates and ``--json``."""
    add_trust_option(sp)
    add_data_option(sp)
    add_gate_options(sp)
    add_json_option(sp)


def add_gate_options(sp) -> None:
    """``--verify-images`` and ``--gate`` of export and verify (``gates_from_args`` reads the gates)."""
    sp.add_argument("--verify-images", type=positive_int, default=128, help="real test images for the parity gates")
    sp.add_argument("--gate", action="append", metavar="PRECISION:FIGURE:VALUE",
                    help="override a gate, e.g. fp16:min_top1_agreement:0.98 (repeatable)")


# --- --json: every verb that prints a table can print the same rows as strict JSON instead ---
JSON_STDOUT = "-"
_json_out = None  # the real stdout while a verb runs with --json; see json_stdout


def json_target(text: str) -> str:
    """``--json``'s optional FILE: ``-`` (stdout) or a path ending in .json. Anything else is most
    likely a positional argument written after ``--json``: refused, so it is not taken for a file."""
    if text == JSON_STDOUT or text.lower().endswith(".json"):
        return text
    raise argparse.ArgumentTypeError(f"{text!r} is not a .json file: give --json FILE.json, or put --json after "
                                     "the positional arguments to print JSON on stdout")


def add_json_option(sp) -> None:
    """The one ``--json [FILE]`` option of every verb that prints a table (see ``emit``)."""
    sp.add_argument("--json", nargs="?", const=JSON_STDOUT, type=json_target, metavar="FILE",
                    help="print the result as strict JSON on stdout instead of the table; with FILE (.json): "
                         "print the table and also write the JSON there")


def _plain(o):
    """What strict JSON cannot hold directly: numpy scalars, sets, paths, objects with ``to_dict``."""
    if hasattr(o, "item") and getattr(o, "shape", None) == ():
        return o.item()
    if isinstance(o, (set, frozenset)):
        return sorted(o)
    if isinstance(o, os.PathLike):
        return os.fspath(o)
    if hasattr(o, "to_dict"):
        return o.to_dict()
    raise TypeError(f"{type(o).__name__} is not JSON serialisable")


def print_table_of(rows: list[dict]) -> None:
    from edgederm.table import print_table

    print_table(rows)


def emit(rows_or_obj, args, show: Callable | None = None) -> None:
    """A verb's result: ``show(rows_or_obj)`` prints it for people (default: ``rows_or_obj`` is a
    list of rows, printed as one table). With ``--json`` the same object is printed as strict JSON
    on stdout instead (NaN becomes null, nothing else on stdout); with ``--json FILE`` it is shown
    and also written to FILE. A verb that calls this has ``add_json_option`` on its parser."""
    from device_bench.integrity import dumps, write_json

    target = args.json  # AttributeError here: the verb's parser lacks add_json_option
    if target == JSON_STDOUT:
        print(dumps(rows_or_obj, default=_plain), file=json_stream(), flush=True)
        return
    (show or print_table_of)(rows_or_obj)
    if target:
        print(f"json: {write_json(Path(target), rows_or_obj, default=_plain)}")


def json_stream():
    """Where ``--json`` output goes: the real stdout (``sys.stdout`` outside ``json_stdout``)."""
    return _json_out or sys.stdout


@contextmanager
def json_stdout(args) -> Iterator[None]:
    """While a verb runs with ``--json`` (no FILE), everything else printed on stdout (ours, and
    other libraries' chatter down to the file descriptor, e.g. ONNX Runtime's calibration) goes to
    stderr, which is the log unless ``--verbose``: stdout holds only what ``emit`` prints."""
    global _json_out
    if getattr(args, "json", None) != JSON_STDOUT:
        yield
        return
    real = sys.stdout
    real.flush()
    try:
        on_fd1 = real.fileno() == 1
    except (AttributeError, OSError, ValueError):  # a test's capture object: Python-level prints only
        on_fd1 = False
    saved = os.dup(1) if on_fd1 else None
    if on_fd1:
        sys.stderr.flush()
        os.dup2(2, 1)
    _json_out = open(saved, "w", closefd=False) if on_fd1 else real  # noqa: SIM115 - closed below
    sys.stdout = sys.stderr
    try:
        yield
    finally:
        sys.stdout.flush()
        _json_out.flush()
        if on_fd1:
            _json_out.close()
            os.dup2(saved, 1)
            os.close(saved)
        sys.stdout, _json_out = real, None
