"""``edgederm compat``: which zoo model converts to which format (``--write`` the Markdown page)."""

from __future__ import annotations

from pathlib import Path

from edgederm.commands.common import add_json_option, emit


def register(sub) -> None:
    sp = sub.add_parser("compat", help="which zoo model converts to which format")
    sp.add_argument("--write", metavar="FILE", help="write the Markdown table (docs/compatibility.md)")
    add_json_option(sp)
    sp.set_defaults(func=run)


def run(args) -> int:
    from edgederm.compat import markdown, rows

    if not args.write:
        emit(rows(), args)
        return 0
    import os

    from edgederm.paths import atomic_path

    target = Path(args.write)
    tmp = atomic_path(target)
    tmp.write_text(markdown(previous=target.read_text() if target.exists() else None))  # keeps the conformance section
    os.replace(tmp, target)
    print(f"wrote {target}")
    return 0
