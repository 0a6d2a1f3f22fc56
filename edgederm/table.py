"""Plain-text tables for the terminal (no dependency; aligned, unicode-safe widths)."""

from __future__ import annotations

import unicodedata

# A verification status as the tables and the report show it (the one mapping).
STATUS = {"pass": "✅", "fail": "❎", "skipped": "➖", "export_failed": "❌"}


def _width(s: str) -> int:
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 0 if unicodedata.combining(c) else 1 for c in s)


def format_table(rows: list[dict], columns: list[str] | None = None) -> str:
    if not rows:
        return "(no rows)"
    columns = columns or list(dict.fromkeys(k for r in rows for k in r))
    cells = [[str(r.get(c, "")) for c in columns] for r in rows]
    widths = [max(_width(c), *(_width(row[i]) for row in cells)) for i, c in enumerate(columns)]

    def line(values):
        return "  ".join(v + " " * (w - _width(v)) for v, w in zip(values, widths)).rstrip()

    return "\n".join([line(columns), line(["-" * w for w in widths]), *map(line, cells)])


def print_table(rows: list[dict], columns: list[str] | None = None) -> None:
    print(format_table(rows, columns))
