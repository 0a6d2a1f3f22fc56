"""ExecuTorch ``.pte`` programs through ``executorch.runtime`` (the pip wheel's Python runtime, XNNPACK
kernels linked in). Input: normalised float32 NCHW at the program's static shape; output: float32.

Threads: the runtime has one process-wide XNNPACK threadpool, and a loaded method keeps a
pointer to the pool it was loaded with; resizing the pool (``_unsafe_reset_threadpool``)
leaves every method loaded before it dangling (a segfault at its next call). So the pool is
sized *before* loading, every resize bumps a generation counter, and a runner whose method is
older than the pool reloads it before running. The runtime's C++ logging (cpuinfo lines at
load) goes to stderr, which is silenced while loading unless ``EDGEDERM_VERBOSE`` is set.
"""

from __future__ import annotations

import os
import sys
from contextlib import contextmanager

import numpy as np

from device_bench.runners import RunnerUnavailable


@contextmanager
def _quiet_stderr():
    """Point file descriptor 2 at /dev/null for the duration (C++ logging bypasses sys.stderr)."""
    if os.environ.get("EDGEDERM_VERBOSE"):
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def _runtime():
    try:
        with _quiet_stderr():
            from executorch.runtime import Runtime

            return Runtime.get()
    except ImportError as e:
        raise RunnerUnavailable(f"executorch is not installed ({e}): pip install executorch") from None


COREML_ONLY_ON_APPLE = "the Core ML delegate runs only on Apple devices (macOS/iOS)"


def _needs_missing_coreml(runtime, path: str) -> bool:
    """A program lowered to the Core ML delegate (its backend id is in the file) on a runtime without it."""
    registry = getattr(runtime, "backend_registry", None)  # absent from older executorch wheels
    if registry is not None and registry.is_available("CoreMLBackend"):
        return False
    with open(path, "rb") as f:
        return b"CoreMLBackend" in f.read()


_POOL = {"generation": 0}  # bumped at every resize of the shared threadpool


def set_threads(threads: int | None) -> int:
    """Size the process-wide XNNPACK threadpool (no-op when ``threads`` is None or already that size);
    returns the pool's generation (methods loaded under an older one must be reloaded)."""
    if threads:
        from executorch.extension.pybindings import portable_lib

        reset = getattr(portable_lib, "_unsafe_reset_threadpool", None)
        if reset is not None and portable_lib._threadpool_get_thread_count() != threads:
            reset(int(threads))
            _POOL["generation"] += 1
    return _POOL["generation"]


def _pool_size() -> int:
    from executorch.extension.pybindings import portable_lib

    return portable_lib._threadpool_get_thread_count()


class Runner:
    def __init__(self, path: str, threads: int | None = None, method: str = "forward"):
        import torch

        self._torch = torch
        runtime = _runtime()
        self.threads, self._method_name, self._path, self._rt = threads, method, path, runtime
        try:
            with _quiet_stderr():
                self._load()
        except Exception as e:  # a corrupt file or a program needing a backend this build lacks
            if _needs_missing_coreml(runtime, path):
                raise RunnerUnavailable(COREML_ONLY_ON_APPLE) from None
            first = str(e).splitlines()[0] if str(e) else type(e).__name__
            raise RunnerUnavailable(f"ExecuTorch cannot load {path}: {first}") from None
        meta = self.method.metadata
        self._input_shape = [int(d) for d in meta.input_tensor_meta(0).sizes()]
        from importlib.metadata import version

        self.runtime = f"executorch {version('executorch')}"
        self.delegate = "XNNPACK"

    def _load(self) -> None:
        """Size the pool for this runner, then load program and method against it. The program is loaded
        again too: a second ``load_method`` on the same program segfaulted at its first call here
        (executorch 1.5.1, XNNPACK-lowered program), a fresh program does not."""
        self._generation = set_threads(self.threads)
        self.program = self._rt.load_program(self._path)
        self.method = self.program.load_method(self._method_name)

    @property
    def input_shape(self):
        return list(self._input_shape)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        if list(x.shape) != self._input_shape:
            raise ValueError(f"this .pte takes input shape {self._input_shape}, not {list(x.shape)} (static shapes)")
        if (self.threads and _pool_size() != self.threads) or self._generation != _POOL["generation"]:
            with _quiet_stderr():
                self._load()  # the pool was resized since this method was loaded: its pointer is stale
        t = self._torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
        return self.method.execute([t])[0].numpy()
