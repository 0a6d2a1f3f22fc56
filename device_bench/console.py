"""How EdgeDerm's command lines end: one line on stderr and an exit code that says whose move it is.

- 0: done; 1: a verdict (a gate or a benchmark row failed); 2: fix your input (the line names
  the file or flag and the fix); 3: an internal error (the line names the log file holding the
  traceback; ``--debug`` prints it); 130/143: interrupted (Ctrl-C / SIGTERM).
- Other tools' banners and warnings (TensorFlow, coremltools, LiteRT ...) go to that log file,
  not to the terminal, unless ``--verbose``: ``quiet_stderr`` moves file descriptor 2 and
  ``sys.stderr`` there, and our own lines go to ``stream()``.

Standard library only: ``device_bench`` on a device uses it too.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
import traceback
from contextlib import contextmanager
from pathlib import Path

OK, VERDICT, USER_ERROR, INTERNAL_ERROR = 0, 1, 2, 3
INTERRUPTED, TERMINATED = 130, 143

_stream = None  # where our own lines go while third-party stderr is diverted


def stream():
    """The stream for EdgeDerm's own status and error lines (the real stderr)."""
    return _stream or sys.stderr


def say(message: str) -> None:
    print(message, file=stream(), flush=True)


def log_path(folder: Path, prog: str) -> Path:
    """A new log file name under ``folder`` (created), falling back to the system temp folder."""
    import tempfile

    name = f"{prog.replace(' ', '_').replace('-m_', '')}-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.log"
    for base in (Path(folder), Path(tempfile.gettempdir())):
        try:
            base.mkdir(parents=True, exist_ok=True)
            probe = base / name
            probe.touch()
            return probe
        except OSError:
            continue
    return Path(os.devnull)


@contextmanager
def quiet_stderr(log: Path, enabled: bool = True):
    """Divert fd 2 and ``sys.stderr`` to ``log`` while the body runs; ``stream()`` stays the real stderr."""
    global _stream
    if not enabled or str(log) == os.devnull:
        yield
        return
    try:
        on_fd2 = sys.stderr.fileno() == 2
    except (AttributeError, OSError, ValueError):  # a test's capture object
        on_fd2 = False
    sys.stderr.flush()
    saved_fd = os.dup(2)
    ours = os.fdopen(os.dup(2), "w", buffering=1) if on_fd2 else sys.stderr
    old_sys, old_stream = sys.stderr, _stream
    logfile = open(log, "a", buffering=1)
    os.dup2(logfile.fileno(), 2)
    sys.stderr, _stream = logfile, ours
    try:
        yield
    finally:
        try:
            logfile.flush()
        finally:
            os.dup2(saved_fd, 2)
            os.close(saved_fd)
            sys.stderr, _stream = old_sys, old_stream
            logfile.close()
            if ours is not old_sys:
                ours.close()


# --- option types: bad values are refused by argparse (one line, exit 2) before any slow work ---
MAX_THREADS_PER_CORE = 4  # more threads than this per core only thrash (and a typo like 9999 would run for hours)


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None


def positive_int(text: str) -> int:
    """argparse type: a whole number >= 1."""
    value = _int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be at least 1")
    return value


def non_negative_int(text: str) -> int:
    """argparse type: a whole number >= 0."""
    value = _int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{value} must be 0 or more")
    return value


def max_threads() -> int:
    return MAX_THREADS_PER_CORE * (os.cpu_count() or 1)


def thread_count(text: str) -> int:
    """argparse type: a thread count from 1 to 4x this machine's cores."""
    value = positive_int(text)
    if value > max_threads():
        raise argparse.ArgumentTypeError(f"{value} threads on {os.cpu_count()} cores: use at most {max_threads()}")
    return value


def thread_list(text: str) -> tuple[int, ...]:
    """argparse type: comma-separated thread counts, e.g. 1,2."""
    items = [t.strip() for t in str(text).split(",") if t.strip()]
    if not items:
        raise argparse.ArgumentTypeError("give thread counts, e.g. 1,2")
    return tuple(dict.fromkeys(thread_count(t) for t in items))


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"{text} must be a finite number above 0")
    return value


def run_command(prog: str, body, user_errors: tuple, log_dir: Path, verbose: bool = False, debug: bool = False) -> int:
    """Run ``body()`` and turn its end into one line and an exit code (see the module doc)."""
    from device_bench.lifecycle import Terminated

    log = log_path(log_dir, prog)
    try:
        with quiet_stderr(log, enabled=not verbose):
            try:
                return body()
            except user_errors as e:
                say(f"{prog}: error: {_one_line(e)}")
                return USER_ERROR
            except KeyboardInterrupt:
                say(f"{prog}: interrupted")
                return INTERRUPTED
            except Terminated:
                say(f"{prog}: terminated")
                return TERMINATED
            except Exception as e:  # noqa: BLE001 - the one place an unexpected failure is caught
                with open(log, "a") as f:
                    f.write(f"\n{prog} {' '.join(sys.argv[1:])}\n")
                    traceback.print_exc(file=f)
                if debug:
                    traceback.print_exc(file=stream())
                say(f"{prog}: internal error ({type(e).__name__}: {_one_line(e)[:160]}); traceback in {log}")
                return INTERNAL_ERROR
    finally:
        try:
            if log.stat().st_size == 0:
                log.unlink()
        except OSError:
            pass


class OneLineParser(argparse.ArgumentParser):
    """argparse with one error line (no usage block) and exit 2; every verb has --verbose and --debug."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.add_help:  # SUPPRESS: given before or after the verb, the flag is seen once
            self.add_argument("--verbose", action="store_true", default=argparse.SUPPRESS,
                              help="show other tools' output on stderr (default: it goes to the log file)")
            self.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                              help="print the traceback of an internal error")

    def parse_known_args(self, args=None, namespace=None):
        namespace, rest = super().parse_known_args(args, namespace)
        for flag in ("verbose", "debug"):
            if not hasattr(namespace, flag):
                setattr(namespace, flag, False)
        return namespace, rest

    def error(self, message):
        say(f"{self.prog}: error: {message} (see {self.prog} --help)")
        raise SystemExit(USER_ERROR)


def _one_line(e: BaseException) -> str:
    text = " ".join(str(e).split())
    return text or type(e).__name__
