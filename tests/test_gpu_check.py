"""scripts/gpu_check.sh without a GPU: usage errors, the dry-run plan, and pack + run with the CPU standing in
(ONNX Runtime's CPU provider rows measured, TensorRT rows skipped with the reason, a report written)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "gpu_check.sh"
VENV = Path(sys.executable).parent


def sh(*args, **env):
    full = {**os.environ, "PYTHON": sys.executable, "EDGEDERM": str(VENV / "edgederm"), **env}
    return subprocess.run(["bash", str(SCRIPT), *map(str, args)], capture_output=True, text=True, env=full, timeout=600)


def test_usage_errors_are_one_line_and_exit_2(tmp_path):
    p = sh()
    assert p.returncode == 2 and "usage: scripts/gpu_check.sh pack" in p.stderr
    p = sh("run")
    assert p.returncode == 2 and p.stderr.strip().count("\n") == 0 and "needs the pack folder" in p.stderr
    p = sh("run", tmp_path)
    assert p.returncode == 2 and "holds no bundle" in p.stderr
    p = sh("pack", tmp_path)
    assert p.returncode == 2 and "pack needs --out PACK" in p.stderr
    p = sh("pack", "--out", tmp_path / "p", tmp_path)
    assert p.returncode == 2 and "has no manifest.json" in p.stderr
    p = sh("run", tmp_path, "--fast")
    assert p.returncode == 2 and "unknown option --fast" in p.stderr


def test_dry_run_prints_the_whole_plan(tmp_path):
    for name in ("lite0_derm7-jetson", "unet_lesionseg-jetson"):
        (tmp_path / "pack" / "bundles" / name).mkdir(parents=True)
        (tmp_path / "pack" / "bundles" / name / "manifest.json").write_text("{}")
    p = sh("run", tmp_path / "pack", "--dry-run", "--out", tmp_path / "out", PATH="/usr/bin:/bin")
    assert p.returncode == 0, p.stderr
    lines = [x for x in p.stdout.splitlines() if x.startswith("+ ")]
    assert lines[0].endswith("-m pip uninstall -q -y onnxruntime")
    assert lines[1].endswith("-m pip install -q -r requirements-gpu.txt")
    runs = [x for x in lines if "-m device_bench run" in x]
    assert len(runs) == 2 and all("--runtime onnxruntime,tensorrt" in x and "--trt-precisions fp32,fp16,int8" in x
                                  for x in runs)
    assert "--device no-nvidia-gpu" in runs[0] and f"{tmp_path / 'out'}/unet_lesionseg-jetson/results.json" in runs[1]
    assert sum("-m edgederm report" in x for x in lines) == 2
    assert "PyTorch GPU originals not run" in p.stdout
    p = sh("run", tmp_path / "pack", "--dry-run", "--no-install", "--out", tmp_path / "out",
           GPU_CHECK_EXPORTS="exports/lite0 exports/unet")
    assert "pip install" not in p.stdout and "gpu_originals.sh --out" in p.stdout and "exports/unet" in p.stdout


@pytest.mark.slow
def test_pack_and_run_with_the_cpu_standing_in(tiny_classifier, synthetic_root, tmp_path):
    from edgederm.export import export

    folder = tmp_path / "export"
    assert not export(tiny_classifier, folder, formats=["onnx"], data_root=synthetic_root, n_verify=32).failures
    p = sh("pack", "--out", tmp_path / "pack", "--images", 12, "--data", synthetic_root, folder)
    assert p.returncode == 0, p.stderr[-2000:]
    bundles = list((tmp_path / "pack" / "bundles").iterdir())
    assert len(bundles) == 1 and bundles[0].is_dir() and {"model.onnx", "model_int8_qdq.onnx"} <= \
        {x.name for x in bundles[0].iterdir()}
    p = sh("run", tmp_path / "pack", "--no-install", "--out", tmp_path / "out", GPU_CHECK_TIMEOUT="300")
    assert p.returncode == 0, (p.stdout[-2000:], p.stderr[-2000:])
    name = bundles[0].name
    res = json.loads((tmp_path / "out" / name / "results.json").read_text())
    rows = {(r["artifact"], r["runtime"].split(" ")[0] if r["runtime"] else None, r["status"]) for r in res["rows"]}
    assert ("onnx_fp32", "onnxruntime", "ok") in rows and ("onnx_int8_qdq", "onnxruntime", "ok") in rows
    trt = [r for r in res["rows"] if r["runtime"] == "tensorrt"]
    assert trt and all(r["status"] == "skipped" and "tensorrt Python module" in r["reason"] for r in trt)
    assert any((tmp_path / "out" / name / "report").glob("*.md")) and "done in" in p.stdout
