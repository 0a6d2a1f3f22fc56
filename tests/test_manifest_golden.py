"""The manifest of a demo-like export, held against a checked-in golden copy, so a refactor cannot change
the manifest's schema (a key, a record, a value a device or an app reads) without someone seeing it.

The road is ``edgederm demo --quick``'s on the tiny synthetic classifier: export to ONNX and Core ML,
verify, quantize to int8 ONNX. What differs from run to run is normalised away before the
comparison: times, the command line, versions, absolute paths, sha256 digests and file sizes,
the figures of training, verification and timing, tool versions (and Core ML's op and dtype
histograms, whose keys follow coremltools' version), and the pass/fail verdicts of gates (a tiny
model's int8 drop is a measurement). Everything else -- every key, every artifact's name, format,
precision, converter, tensor names, shapes, layouts and dtypes, notes, gate thresholds, the
preprocessing record, calibration and steps -- must match.

A deliberate change of the manifest: rerun with ``EDGEDERM_UPDATE_GOLDEN=1`` and commit the new
``tests/fixtures/manifest_golden.json`` with the change that made it (and a manifest version bump
where old readers would misread it).
"""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path

import pytest

GOLDEN = Path(__file__).parent / "fixtures" / "manifest_golden.json"
UPDATE = os.environ.get("EDGEDERM_UPDATE_GOLDEN") == "1"

# keys whose values change from run to run -> what stands in for them
VOLATILE = {"time": "<time>", "command": "<command>", "edgederm": "<version>", "edgederm_version": "<version>",
            "checkpoint": "<path>", "sha256": "<sha256>", "checkpoint_sha256": "<sha256>",
            "weights_sha256": "<sha256>", "size_bytes": "<int>"}
# subtrees whose numbers are measurements (training, parity figures, timings), not schema: keys stay
MEASURED = {"metrics", "figures", "seconds"}
# counts whose very keys follow the converter's version (Core ML op and dtype histograms)
HISTOGRAMS = {"ops", "dtypes"}
VERDICTS = {"pass", "fail"}  # a tiny model's int8 gate verdict is a measurement too ("skipped" is not)
VERSION = re.compile(r"\b\d+\.\d+(\.\d+)?([.+\-]?[\w]+)*\b")
DIGEST = re.compile(r"\b[0-9a-f]{16,64}\b")  # sha256 digests and their 16-character prefixes

pytestmark = [pytest.mark.coreml,
              pytest.mark.skipif(sys.platform != "linux", reason="Core ML verifies numerically on macOS: "
                                 "another (also right) manifest than the golden Linux one")]


def normalise(value, key: str = "", measured: bool = False, root: str = ""):
    """The manifest with what varies between runs replaced by placeholders (see the module docstring)."""
    if key in VOLATILE and value not in (None, ""):
        return VOLATILE[key]
    if key in HISTOGRAMS and isinstance(value, dict):
        return "<counts>"
    if key == "tool_versions" and isinstance(value, dict):
        return {tool: "<v>" for tool in value}
    if (key in ("status", "results") and isinstance(value, str) and value in VERDICTS) or (key == "reason" and "fails the gate" in str(value)):
        return "<verdict>"
    measured = measured or key in MEASURED
    if isinstance(value, dict):
        # a dict of verdicts by artifact ("results") reads each value under its parent's key
        return {k: normalise(v, key if key == "results" else k, measured, root) for k, v in value.items()}
    if isinstance(value, list):
        return [normalise(v, key, measured, root) for v in value]
    if measured and (value is None or isinstance(value, (int, float))) and not isinstance(value, bool):
        return "<number>"  # null where a metric is undefined on this tiny set (no positives of a class)
    if isinstance(value, float):
        return round(value, 6)
    if isinstance(value, str):
        value = DIGEST.sub("<sha256>", value.replace(root, "<tmp>") if root else value)
        return VERSION.sub("<v>", value) if key in ("converter", "runtime") else value
    return value


@pytest.fixture(scope="module")
def demo_manifest(tiny_classifier, synthetic_root, tmp_path_factory) -> dict:
    from edgederm.export import export
    from quantization import quantize

    out = tmp_path_factory.mktemp("golden") / "export"
    outcome = export(tiny_classifier, out, formats=["onnx", "coreml"], data_root=synthetic_root, n_verify=16)
    assert not outcome.failures, outcome.failures
    q = quantize(out, ["int8"], ["onnx"], data_root=synthetic_root, n_verify=16)
    assert not q.failures, q.failures
    manifest = json.loads((out / "manifest.json").read_text())
    return normalise(manifest, root=str(out.parent.parent))


def test_demo_manifest_matches_the_golden_copy(demo_manifest):
    if UPDATE or not GOLDEN.exists():
        GOLDEN.write_text(json.dumps(demo_manifest, indent=1, sort_keys=True) + "\n")
        if not UPDATE:
            pytest.fail(f"{GOLDEN} was missing and is now written: review and commit it")
    golden = json.loads(GOLDEN.read_text())
    assert demo_manifest == golden, (
        "the manifest changed (diff below). Deliberate? rerun with EDGEDERM_UPDATE_GOLDEN=1, commit "
        f"{GOLDEN.name}, and bump the manifest version if old readers would misread it.")


def test_the_normaliser_keeps_the_schema_and_drops_what_varies():
    raw = {"steps": [{"stage": "export", "time": "2024-01-01T00:00:00", "command": "x", "edgederm": "0.9",
                      "seconds": {"onnx_fp32": 1.5}, "results": {"onnx_fp32": "pass", "coreml_fp16": "skipped"}}],
           "artifacts": [{"name": "onnx_fp32", "sha256": "ab" * 32, "size_bytes": 123, "converter": "torch 2.5.1+cpu",
                          "verify": {"status": "fail", "reason": "x: auroc_drop 0.06 fails the gate <= 0.005",
                                     "figures": {"images": 16, "max_abs_prob": 1e-7, "auroc": None,
                                                 "structure": {"ops": {"conv": 3}, "input_name": "image"}}},
                          "tool_versions": {"torch": "2.5.1"}, "inputs": [{"shape": [1, 3, 48, 64]}]}],
           "preprocessing": {"mean": [0.485, 0.456, 0.406], "scale": 1 / 255},
           "model": {"checkpoint": "/tmp/x/cls.safetensors"},
           "notes": ["ids sha256 fe64333190d83fca", "from /tmp/x/data"]}
    assert normalise(raw, root="/tmp/x") == {
        "steps": [{"stage": "export", "time": "<time>", "command": "<command>", "edgederm": "<version>",
                   "seconds": {"onnx_fp32": "<number>"}, "results": {"onnx_fp32": "<verdict>", "coreml_fp16": "skipped"}}],
        "artifacts": [{"name": "onnx_fp32", "sha256": "<sha256>", "size_bytes": "<int>", "converter": "torch <v>",
                       "verify": {"status": "<verdict>", "reason": "<verdict>",
                                  "figures": {"images": "<number>", "max_abs_prob": "<number>", "auroc": "<number>",
                                              "structure": {"ops": "<counts>", "input_name": "image"}}},
                       "tool_versions": {"torch": "<v>"}, "inputs": [{"shape": [1, 3, 48, 64]}]}],
        "preprocessing": {"mean": [0.485, 0.456, 0.406], "scale": 0.003922},
        "model": {"checkpoint": "<path>"}, "notes": ["ids sha256 <sha256>", "from <tmp>/data"]}
