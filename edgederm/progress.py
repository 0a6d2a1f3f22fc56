"""Progress lines for long work, without a dependency: one line rewritten in a terminal,
occasional plain lines in a log (CI), nothing when EDGEDERM_QUIET is set."""

from __future__ import annotations

import os
import time
from typing import Iterable, Iterator, TypeVar

from device_bench.console import stream

T = TypeVar("T")


def progress(items: Iterable[T], total: int | None = None, desc: str = "", every_s: float = 2.0) -> Iterator[T]:
    if os.environ.get("EDGEDERM_QUIET"):
        yield from items
        return
    total = total if total is not None else (len(items) if hasattr(items, "__len__") else None)
    out = stream()  # the real stderr, while other tools' chatter goes to the log
    tty = out.isatty()
    start = last = time.perf_counter()
    i = 0
    for i, item in enumerate(items, start=1):
        yield item
        now = time.perf_counter()
        if now - last >= (0.2 if tty else every_s * 5) or i == total:
            last = now
            rate = i / max(now - start, 1e-9)
            of = f"/{total}" if total else ""
            eta = f", {((total - i) / rate):.0f}s left" if total and rate > 0 else ""
            msg = f"{desc}: {i}{of} ({rate:.1f}/s{eta})"
            out.write(("\r" + msg + " " * 8) if tty else msg + "\n")
            out.flush()
    if tty and i:
        out.write("\n")


def log(msg: str) -> None:
    """A status line on stderr (so stdout stays parseable tables/JSON)."""
    if not os.environ.get("EDGEDERM_QUIET"):
        print(msg, file=stream(), flush=True)
