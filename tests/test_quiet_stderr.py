"""A successful export keeps other tools' banners and warnings (TensorFlow, LiteRT, coremltools)
off stderr: they go to the run's log file; --verbose shows them. JSON outputs hold no NaN."""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys

import pytest

THIRD_PARTY = re.compile(r"^(INFO|WARNING|[IWE]\d{4} )|XNNPACK delegate|oneDNN|absl|scikit-learn|cpu_feature_guard")


def _export(args, tiny_classifier, synthetic_root, out):
    env = {k: v for k, v in os.environ.items() if k != "EDGEDERM_QUIET"}
    return subprocess.run([sys.executable, "-m", "edgederm.cli", "export", str(tiny_classifier), "--to", "onnx,tflite",
                           "--out", str(out), "--data", str(synthetic_root), "--verify-images", "8", *args],
                          env=env, capture_output=True, text=True, timeout=900)


@pytest.mark.tflite
def test_export_stderr_is_ours_unless_verbose(tiny_classifier, synthetic_root, tmp_path):
    quiet = _export([], tiny_classifier, synthetic_root, tmp_path / "q")
    assert quiet.returncode == 0, quiet.stderr
    foreign = [ln for ln in quiet.stderr.splitlines() if THIRD_PARTY.search(ln)]
    assert not foreign, foreign
    loud = _export(["--verbose"], tiny_classifier, synthetic_root, tmp_path / "v")
    assert loud.returncode == 0, loud.stderr
    assert any(THIRD_PARTY.search(ln) for ln in loud.stderr.splitlines()), "nothing to filter: the test proves nothing"
    manifest = (tmp_path / "q" / "manifest.json").read_text()
    json.loads(manifest, parse_constant=lambda c: (_ for _ in ()).throw(ValueError(f"{c} in a manifest")))
    assert json.loads(manifest)["state"] == "complete"


def test_strict_json_has_no_nan(tmp_path):
    from device_bench.integrity import dumps, write_json
    from device_bench.results import Results

    obj = {"a": math.nan, "b": [1.0, math.inf, {"c": -math.inf}], "d": 2.5}
    assert json.loads(dumps(obj)) == {"a": None, "b": [1.0, None, {"c": None}], "d": 2.5}
    r = Results(environments={"x": {}}, model={"name": "m"}, data={"images": 1})
    r.add({"artifact": "a", "format": "onnx", "precision": "fp32", "status": "ok", "metrics": {"auroc": {"value": math.nan}}})
    text = r.save(tmp_path / "results.json").read_text()
    assert "NaN" not in text and json.loads(text)["rows"][0]["metrics"]["auroc"]["value"] is None
    assert "NaN" not in write_json(tmp_path / "x.json", obj).read_text()
