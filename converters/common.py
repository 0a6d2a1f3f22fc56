"""What every route shares: atomic output, tool versions, and one-line unsupported-op errors."""

from __future__ import annotations

import os
import re
import shutil
from contextlib import contextmanager
from pathlib import Path

from edgederm.errors import EdgeDermError


@contextmanager
def atomic_output(target: Path):
    """Yield a temporary path beside ``target``; on success rename it onto ``target``, else remove it.

    Works for files and folders (``.mlpackage``), so an interrupted export leaves nothing
    that looks like an artifact.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".partial-{os.getpid()}-{target.name}")  # keeps the suffix tools check
    _remove(tmp)
    try:
        yield tmp
        _remove(target)
        os.replace(tmp, target)
    finally:
        _remove(tmp)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists() or path.is_symlink():
        path.unlink()


def run_tensorflow_child(argv: list[str], cwd, timeout: int):
    """Run a TensorFlow job in a child process (TF and torch share a process badly), CPU only and
    without TF's C++ chatter; returns the ``subprocess.CompletedProcess`` (text output captured)."""
    import subprocess

    from device_bench.lifecycle import run_child

    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": ""}
    try:  # its own process group, killed with us: an interrupted export leaves no converter running
        return run_child(argv, timeout=timeout, cwd=str(cwd), env=env, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    except subprocess.TimeoutExpired:
        raise EdgeDermError(f"the TensorFlow converter ran past {timeout} s and was stopped: try a smaller model, or "
                            "--to onnx only") from None


def child_error_lines(proc, last: int = 3) -> list[str]:
    """The last lines of a failed child's output that name an error: TF's log lines bury them."""
    text = re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", proc.stderr + "\n" + proc.stdout)  # onnx2tf colours its errors
    lines = text.strip().splitlines()
    errors = [ln for ln in lines if "Error" in ln or "error:" in ln or "not supported" in ln]
    return errors[-last:] or lines[-last:]


def versions(*packages: str) -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for p in packages:
        try:
            out[p] = version(p)
        except PackageNotFoundError:
            pass
    return out


_OP_PATTERNS = [
    r"Exporting the operator '([^']+)'",
    r"unrecognized namespace ([\w:.]+)",
    r"No decompositions registered for .*?'([\w:.]+)'",
    r"Unsupported fx node (\w+)",
    r"Select TensorFlow op\(s\).*?\((\w+)\)",
    r"'tf\.(\w+)' op is neither a custom op nor a flex op",
    r"PyTorch convert function for op '(\w+)' not implemented",
    r"(\w+) is not supported",
]


def unsupported_op_error(exc: BaseException, fmt: str, model: str) -> EdgeDermError:
    """Turn a converter's stack-trace error into one line naming the operator and the format."""
    text = f"{exc}"
    for pattern in _OP_PATTERNS:
        m = re.search(pattern, text, re.S)
        if m:
            return EdgeDermError(f"{model}: operator {m.group(1)} cannot be converted to {fmt} "
                                 f"(docs/compatibility.md lists workarounds)")
    first = text.strip().splitlines()[0][:200] if text.strip() else type(exc).__name__
    return EdgeDermError(f"{model}: conversion to {fmt} failed: {type(exc).__name__}: {first}")
