"""The sweep report of ``edgederm run``: its ★ (Pareto front) goes only to rows that may ship."""

from __future__ import annotations

from device_bench.results import Results
from edgederm.pipeline import RunRecipe, sweep_report
from edgederm.pipeline.ranking import rank, sweep_rows


def _row(artifact: str, role: str, ms: float, value: float, verify: str | None = None) -> dict:
    row = {"artifact": artifact, "format": "onnx", "precision": "fp32", "status": "ok", "role": role, "threads": 1,
           "latency": {"median_ms": ms}, "metrics": {"balanced_accuracy": {"value": value}}, "size_bytes": 1_000_000}
    if role == "artifact":
        row["verify"] = verify
    return row


def _results(tmp_path, name: str, rows: list[dict]) -> dict:
    (tmp_path / name).mkdir()
    path = Results(model={"name": name, "task": "classification"}, rows=rows).save(tmp_path / name / "results.json")
    return {"model": name, "results": str(path)}


def test_a_failed_gate_row_is_never_starred(tmp_path):
    # The failed int8 artifact is faster and more accurate than everything: ungated, it would be the
    # whole front. The peer path and an unverified artifact dominate the rest likewise.
    summaries = [
        _results(tmp_path, "a", [_row("pytorch_cpu_fp32", "original", 10.0, 0.83),
                                 _row("onnx_int8", "artifact", 1.0, 0.95, verify="fail"),
                                 _row("onnx_fp16", "artifact", 5.0, 0.79, verify="pass")]),
        _results(tmp_path, "b", [_row("onnx_fp32", "artifact", 8.0, 0.81, verify=None),
                                 _row("onnx_peer", "peer", 2.0, 0.90),
                                 _row("tflite_int8", "artifact", 1.5, 0.92, verify="skipped")]),
    ]
    ranked = rank(sweep_rows(summaries))
    star = {(r["model"], r["artifact"]): r["pareto"] for r in ranked}
    assert star[("a", "onnx_int8")] == star[("b", "onnx_peer")] == star[("b", "tflite_int8")] == ""
    # among rows that passed their gates (or the original), the front is the usual one
    assert star[("a", "onnx_fp16")] == star[("b", "onnx_fp32")] == star[("a", "pytorch_cpu_fp32")] == "★"
    gate = {r["artifact"]: r["gate"] for r in ranked}
    assert gate["onnx_int8"] == "✗ failed gate" and gate["onnx_fp16"] == "" and gate["onnx_peer"]

    target = sweep_report(RunRecipe("t", [], tmp_path / "run"), summaries)
    lines = [ln for ln in target.read_text().splitlines() if ln.startswith("| ")]
    failed = next(ln for ln in lines if "| onnx_int8 |" in ln)
    assert "★" not in failed and "failed gate" in failed
    assert sum("★" in ln for ln in lines[1:]) == 3
