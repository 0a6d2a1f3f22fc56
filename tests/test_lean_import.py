"""``import edgederm`` and ``edgederm --help`` must not pull in torch, tensorflow or coremltools."""

import subprocess
import sys

HEAVY = ("torch", "tensorflow", "coremltools", "onnxruntime", "timm")


def test_import_is_lean():
    code = ("import sys, edgederm, edgederm.cli, edgederm.data, edgederm.metrics, edgederm.models, "
            "edgederm.registry, edgederm.preprocessing, converters, quantization, device_bench; "
            f"print([m for m in {HEAVY!r} if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_cli_help_is_lean_and_fast():
    out = subprocess.run([sys.executable, "-X", "importtime", "-m", "edgederm.cli", "--help"],
                         capture_output=True, text=True)
    assert out.returncode == 0 and "demo" in out.stdout
    assert not any(f"| {m}\n" in out.stderr or f"| {m}." in out.stderr for m in HEAVY)
