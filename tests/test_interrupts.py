"""Interrupted runs leave nothing behind: SIGTERM during a TFLite export unwinds (exit 143), kills
the onnx2tf child and removes the temp and output folders; after SIGKILL the child dies with its
parent (PR_SET_PDEATHSIG) and the next command sweeps the dead run's temp folder."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="process-group and parent-death "
                                "guards are Linux features; elsewhere only the temp sweep applies")


def _start_export(tiny_classifier, synthetic_root, tmp_path) -> tuple[subprocess.Popen, Path, Path]:
    temp = tmp_path / "tmp"
    temp.mkdir()
    out = tmp_path / "export"
    env = {**os.environ, "TMPDIR": str(temp)}
    proc = subprocess.Popen([sys.executable, "-m", "edgederm.cli", "export", str(tiny_classifier), "--to", "tflite",
                             "--out", str(out), "--data", str(synthetic_root), "--verify-images", "8"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return proc, temp, out


def _wait_for_child(proc: subprocess.Popen, timeout: float = 240) -> psutil.Process:
    """The onnx2tf child, once it runs."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        kids = [k for k in psutil.Process(proc.pid).children(recursive=True) if "onnx2tf" in " ".join(k.cmdline())]
        if kids:
            return kids[0]
        if proc.poll() is not None:
            pytest.fail(f"export ended before onnx2tf started: {proc.communicate()}")
        time.sleep(0.2)
    proc.kill()
    pytest.fail("onnx2tf never started")


def _gone(p: psutil.Process, timeout: float = 15) -> bool:
    try:
        p.wait(timeout=timeout)
    except psutil.TimeoutExpired:
        return False
    return True


@pytest.mark.tflite
def test_sigterm_during_export_cleans_up(tiny_classifier, synthetic_root, tmp_path):
    proc, temp, out = _start_export(tiny_classifier, synthetic_root, tmp_path)
    child = _wait_for_child(proc)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    assert err.strip().splitlines()[-1] == "edgederm: terminated", err
    assert _gone(child), "the onnx2tf child outlived its parent"
    assert not list(temp.iterdir()), list(temp.iterdir())
    assert not out.exists(), "an interrupted first export left its folder"


@pytest.mark.tflite
def test_sigkill_child_dies_and_next_run_sweeps(tiny_classifier, synthetic_root, tmp_path):
    proc, temp, out = _start_export(tiny_classifier, synthetic_root, tmp_path)
    child = _wait_for_child(proc)
    proc.kill()
    proc.wait(timeout=30)
    assert _gone(child), "the onnx2tf child outlived a SIGKILLed parent"
    left = list(temp.glob("edgederm-run-*"))
    assert left, "the killed run's temp folder should still be there before the sweep"
    subprocess.run([sys.executable, "-m", "edgederm.cli", "models", "lite0*"], env={**os.environ, "TMPDIR": str(temp)},
                   capture_output=True, timeout=120, check=True)
    assert not list(temp.glob("edgederm-run-*")), "the next run did not sweep the dead run's temp folder"
    if (out / "manifest.json").exists():  # what a kill leaves is marked, and stages refuse it
        import json

        assert json.loads((out / "manifest.json").read_text())["state"] == "incomplete"
