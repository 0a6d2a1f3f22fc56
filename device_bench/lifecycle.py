"""Nothing left behind: one temp folder per run, removed at exit and swept at the next start if
the run was killed; SIGTERM unwinds like Ctrl-C; child processes die with their parent.

- ``run_scope()``: makes ``$TMPDIR/edgederm-run-<pid>-*`` the process's temp folder (``tempfile``
  and child processes use it), turns SIGTERM into ``Terminated`` so ``finally`` blocks run,
  and removes the folder at the end. Folders of runs whose process is gone are swept first.
- ``child_kwargs()``: ``subprocess`` arguments that put a child in its own process group and
  have the kernel kill it if the parent dies (Linux ``PR_SET_PDEATHSIG``), so a SIGKILLed
  parent leaves no converter running; ``run_child`` kills the whole group on any exception.

Standard library only.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

PREFIX = "edgederm-run-"


class Terminated(BaseException):
    """SIGTERM arrived: unwind (cleanup runs), then exit 143."""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def sweep(base: Path | None = None, max_log_age_days: float = 14.0, logs: Path | None = None) -> list[Path]:
    """Remove temp folders of EdgeDerm runs whose process is gone (and logs older than the age)."""
    base = Path(base or tempfile.gettempdir())
    removed = []
    for d in base.glob(f"{PREFIX}*"):
        try:
            pid = int(d.name[len(PREFIX):].split("-")[0])
        except ValueError:
            continue
        if pid != os.getpid() and not _alive(pid):
            shutil.rmtree(d, ignore_errors=True)
            removed.append(d)
    if logs is not None and logs.is_dir():
        cutoff = time.time() - max_log_age_days * 86400
        for f in logs.glob("*.log"):
            try:
                if f.stat().st_mtime < cutoff:
                    f.unlink()
            except OSError:
                pass
    return removed


def _on_term(signum, frame):
    raise Terminated()


@contextmanager
def run_scope(logs: Path | None = None):
    """A process-wide temp folder and SIGTERM handling for one command line (see the module doc)."""
    sweep(logs=logs)
    base = Path(tempfile.mkdtemp(prefix=f"{PREFIX}{os.getpid()}-"))
    old = {k: os.environ.get(k) for k in ("TMPDIR", "TEMP", "TMP")}
    old_tempdir = tempfile.tempdir
    old_handler = signal.getsignal(signal.SIGTERM)
    for k in old:
        os.environ[k] = str(base)
    tempfile.tempdir = str(base)
    in_main = _in_main_thread()
    if in_main:
        signal.signal(signal.SIGTERM, _on_term)
    try:
        yield base
    finally:
        if in_main:
            signal.signal(signal.SIGTERM, old_handler)
        tempfile.tempdir = old_tempdir
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        shutil.rmtree(base, ignore_errors=True)


def _in_main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


def _die_with_parent():  # runs in the child between fork and exec
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        except Exception:  # noqa: BLE001 - best effort: the process group kill still applies
            pass


def child_kwargs() -> dict:
    """``subprocess`` keyword arguments: own process group, killed with the parent on Linux."""
    if os.name != "posix":
        return {}
    return {"start_new_session": True, "preexec_fn": _die_with_parent}


def run_child(argv: list[str], timeout: float | None = None, **kwargs) -> subprocess.CompletedProcess:
    """``subprocess.run`` whose child (and its children) never outlive an interrupted parent."""
    proc = subprocess.Popen(argv, **child_kwargs(), **kwargs)
    try:
        out, err = proc.communicate(timeout=timeout)
    except BaseException:
        _kill_group(proc)
        raise
    return subprocess.CompletedProcess(argv, proc.returncode, out, err)


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL) if os.name == "posix" else proc.kill()
    except (ProcessLookupError, PermissionError, OSError):
        pass
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        pass
