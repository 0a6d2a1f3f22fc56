"""The CLI end to end on generated data, and its one-line errors (no tracebacks, exit 2)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest


def run_cli(*args, env_extra=None, timeout=600):
    env = {**os.environ, **(env_extra or {})}
    return subprocess.run([sys.executable, "-m", "edgederm.cli", *map(str, args)], capture_output=True,
                          text=True, env=env, timeout=timeout)


def assert_one_line_error(result, *needles):
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.strip().splitlines() if line.startswith("edgederm: error:")]
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


def test_missing_data_folder():
    assert_one_line_error(run_cli("data", "info", "--data", "/no/such/folder"), "/no/such/folder", "--data")


def test_unknown_model_suggests_a_name(tmp_path):
    r = run_cli("train", "--model", "efficientnet_lite", "--data", tmp_path)
    assert_one_line_error(r, "unknown model 'efficientnet_lite'", "did you mean 'efficientnet_lite0'")


def test_unknown_recipe():
    assert_one_line_error(run_cli("train", "--recipe", "lite0"), "unknown recipe")


def test_corrupt_checkpoint(tmp_path):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a checkpoint")
    (tmp_path / "bad.json").write_text(json.dumps({"architecture": "efficientnet_lite0", "task": "classification",
                                                   "classes": ["a"], "preprocessing": {}}))
    assert_one_line_error(run_cli("eval", bad), str(bad), "corrupt")


def test_csv_with_unknown_class(tmp_path):
    from PIL import Image

    root = tmp_path / "derm7"
    (root / "images").mkdir(parents=True)
    Image.new("RGB", (8, 8)).save(root / "images" / "x.jpg")
    (root / "labels.csv").write_text("image_id,lesion_id,dx\nx,L1,cancerish\n")
    assert_one_line_error(run_cli("data", "info", "--data", tmp_path, "--dataset", root),
                          "labels.csv line 2", "unknown class 'cancerish'")


def test_train_eval_round_trip_on_synthetic(synthetic_root, tmp_path):
    out = tmp_path / "tiny.safetensors"
    r = run_cli("train", "--model", "mobilenetv3_small", "--data", synthetic_root, "--dataset", "derm7",
                "--epochs", "2", "--batch-size", "16", "--lr", "3e-3", "--input-size", "48", "64",
                "--bootstrap", "50", "--out", out)
    assert r.returncode == 0, r.stderr[-2000:]
    card = json.loads(out.with_suffix(".json").read_text())
    assert card["architecture"] == "mobilenetv3_small" and card["preprocessing"]["input_size"] == [48, 64]
    assert card["data"]["split"].startswith("made (grouped by lesion")
    assert {"balanced_accuracy", "macro_auroc", "mel_sensitivity_at_spec80"} <= set(card["metrics"])
    r = run_cli("eval", out, "--data", synthetic_root, "--bootstrap", "50", "--json")
    assert r.returncode == 0, r.stderr[-2000:]
    result = json.loads(r.stdout)
    bal = result["metrics"]["balanced_accuracy"]
    assert bal["low"] <= bal["value"] <= bal["high"]
    # The same checkpoint on the same split gives the number the card recorded at training time.
    assert bal["value"] == pytest.approx(card["metrics"]["balanced_accuracy"]["value"], abs=1e-9)


def test_demo_on_synthetic_data_says_so():
    r = run_cli("demo", "--synthetic", "--quick", env_extra={"EDGEDERM_QUIET": ""})
    assert r.returncode == 0, r.stderr[-3000:]
    assert "SYNTHETIC" in r.stderr and "SYNTHETIC" in r.stdout
    assert "balanced_accuracy" in r.stdout


def test_bad_gate_flag():
    assert_one_line_error(run_cli("export", "x.safetensors", "--gate", "fp16-top1-0.9"), "--gate", "PRECISION:FIGURE:VALUE")


def test_export_unknown_format_suggests(tmp_path):
    assert_one_line_error(run_cli("export", "x.safetensors", "--to", "onnx,tflte"), "unknown format 'tflte'",
                          "did you mean 'tflite'")
