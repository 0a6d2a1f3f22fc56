"""The ``edgederm`` command line: each verb is one module in ``edgederm/commands/`` (listed in
``commands.MODULES``) that adds its own subparser; the options several verbs share (``--data``,
the gates, ``--json``...) and ``emit`` live in ``commands/common.py``.

Every command ends through ``device_bench.console.run_command``: one line and exit 2 for input to
fix, 1 for a verdict, 3 for an internal error (traceback in the named log); other tools' stderr
goes to that log unless ``--verbose`` (``docs/reliability.md``).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from edgederm.errors import EdgeDermError


def build_parser() -> argparse.ArgumentParser:
    from device_bench.console import OneLineParser
    from edgederm import __version__
    from edgederm.commands import MODULES

    p = OneLineParser(prog="edgederm", description="Skin-lesion models from PyTorch to phones, verified.")
    p.add_argument("--version", action="version", version=f"edgederm {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=OneLineParser)
    for module in MODULES:  # each verb adds its subparser, in the order `edgederm --help` lists them
        importlib.import_module(module).register(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    """Exit 0 done, 1 a verdict (gate or benchmark row failed), 2 fix your input, 3 internal error
    (traceback in the log file the line names), 130/143 interrupted (``device_bench.console``)."""
    from device_bench.console import run_command
    from device_bench.errors import DeviceBenchError
    from device_bench.lifecycle import run_scope
    from device_bench.results import ResultsError
    from edgederm.paths import home

    os.environ.setdefault("NNCF_CI", "1")  # NNCF telemetry would try the network
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as e:  # --help, --version, or a bad option (its one line is printed): the code, not an exception
        return e.code if isinstance(e.code, int) else 2
    logs = home() / "logs"
    with run_scope(logs=logs):
        return run_command("edgederm", lambda: run_verb(args), (EdgeDermError, DeviceBenchError, ResultsError),
                           logs, verbose=args.verbose, debug=args.debug)


def run_verb(args) -> int:
    from edgederm.commands.common import json_stdout

    with json_stdout(args):  # with --json, stdout is the JSON's alone
        return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
