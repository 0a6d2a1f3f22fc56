"""``--json`` on every verb that prints a table: the same rows as strict JSON, nothing else on stdout.

Each verb runs twice: with ``--json FILE`` (the table is printed and the JSON written, from one
run, so the two can be compared row for row) and with a bare ``--json`` (strict JSON on stdout,
no table). Cheap verbs run for real on the tiny synthetic fixtures; the slow stages (bench,
prune, the pipeline, a phone, the demo) are replaced by canned outcomes, so what is tested is
the command layer: its rows, its JSON and its exit status.
"""

from __future__ import annotations

import ast
import inspect
import json
import shutil
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from edgederm.cli import build_parser, main

TABLE_PRINTERS = {"print_table", "format_table", "table"}  # a call of one of these prints a table
THROUGH_EMIT = {"emit", "print_export"}  # common.emit, and print_export which calls it


def strict(text: str):
    return json.loads(text, parse_constant=lambda c: pytest.fail(f"{c} in JSON"))


def run_verb(argv: list, capsys, monkeypatch) -> tuple[int, list[list[dict]], str]:
    """(exit code, the rows of every table printed, stdout)."""
    import edgederm.table as table

    tables: list[list[dict]] = []
    real = table.print_table

    def spy(rows, columns=None):
        tables.append([dict(r) for r in rows])
        real(rows, columns)

    monkeypatch.setattr(table, "print_table", spy)
    capsys.readouterr()
    code = main([str(a) for a in argv])
    return code, tables, capsys.readouterr().out


def tables_and_json(argv: list, tmp_path: Path, capsys, monkeypatch, code: int = 0):
    """The tables one run printed and the JSON it wrote (``--json FILE``); then a bare ``--json``
    run must print strict JSON only. Returns (tables, JSON of the first run, JSON of the second)."""
    target = tmp_path / "out.json"
    rc, tables, out = run_verb(argv + ["--json", target], capsys, monkeypatch)
    assert rc == code, out
    assert tables and f"json: {target}" in out
    written = strict(target.read_text())
    rc, quiet, out = run_verb(argv + ["--json"], capsys, monkeypatch)
    assert rc == code and quiet == [], "a table was printed with --json"
    return tables, written, strict(out)


def same_shape(a, b) -> None:
    """Two JSON results of separate runs: the same keys and rows (timings and figures may differ)."""
    if isinstance(a, dict):
        assert set(a) == set(b)
    elif isinstance(a, list):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            same_shape(x, y)


# --- the rule itself ---------------------------------------------------------------------------
def verbs(parser=None, prefix=""):
    """(verb name, its parser) for every verb and sub-verb (``device android``)."""
    import argparse

    parser = parser or build_parser()
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sp in action.choices.items():
                yield f"{prefix}{name}", sp
                yield from verbs(sp, f"{prefix}{name} ")


def called_names(module) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(inspect.getsource(module))):
        if isinstance(node, ast.Call):
            f = node.func
            names.add(f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) else "")
    return names


def test_every_verb_that_prints_a_table_has_json():
    checked = []
    for verb, sp in verbs():
        func = sp.get_default("func")
        if func is None:  # a group (device): its sub-verbs are checked
            continue
        module = sys.modules[func.__module__]
        calls = called_names(module)
        if calls & (TABLE_PRINTERS | THROUGH_EMIT):
            assert any("--json" in a.option_strings for a in sp._actions), f"{verb} prints a table but has no --json"
            checked.append(verb)
        if calls & TABLE_PRINTERS:
            assert calls & THROUGH_EMIT, f"{verb} prints a table without common.emit: --json would not replace it"
    assert {"models", "export", "verify", "quantize", "bench", "diagnose", "profile", "eval", "prune",
            "recalibrate", "bundle", "results", "run", "compat", "demo", "device android"} <= set(checked)


def test_json_file_must_be_a_json_file(capsys):
    """A positional written after --json is not taken for the file: one line, exit 2."""
    assert main(["models", "--json", "lite0*"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "is not a .json file" in err[0]


def test_emit_is_strict_json(capsys, tmp_path):
    import numpy as np

    from edgederm.commands.common import emit

    obj = {"nan": float("nan"), "f32": np.float32(0.5), "i64": np.int64(3), "set": {"b", "a"}, "path": tmp_path}
    emit(obj, SimpleNamespace(json="-"), show=lambda o: pytest.fail("shown with --json"))
    assert strict(capsys.readouterr().out) == {"nan": None, "f32": 0.5, "i64": 3, "set": ["a", "b"],
                                               "path": str(tmp_path)}
    shown = []
    emit([{"a": 1}], SimpleNamespace(json=str(tmp_path / "x.json")), show=shown.append)
    assert shown == [[{"a": 1}]] and strict((tmp_path / "x.json").read_text()) == [{"a": 1}]
    assert capsys.readouterr().out == f"json: {tmp_path / 'x.json'}\n"
    emit([{"a": 1}], SimpleNamespace(json=None))
    assert capsys.readouterr().out.splitlines()[0].strip() == "a"  # the table, as before
    with pytest.raises(AttributeError):  # a verb calling emit without add_json_option
        emit([], SimpleNamespace())


def test_other_output_leaves_stdout_to_the_json():
    """Libraries print on stdout (ONNX Runtime's calibration does, down at the file descriptor):
    with --json that goes to stderr, and stdout is the JSON alone."""
    import subprocess

    code = ("import os; from types import SimpleNamespace as N\n"
            "from edgederm.commands.common import emit, json_stdout\n"
            "args = N(json='-')\n"
            "with json_stdout(args):\n"
            "    os.write(1, b'fd chatter\\n'); print('print chatter'); emit({'a': 1}, args)\n"
            "print('after')\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert proc.stdout.splitlines()[-1] == "after" and strict(proc.stdout.rsplit("after", 1)[0]) == {"a": 1}
    assert "fd chatter" in proc.stderr and "print chatter" in proc.stderr


# --- cheap verbs, for real ---------------------------------------------------------------------
@pytest.mark.parametrize("argv", [["models", "*lite0*"], ["compat"], ["quantize", "--list"]], ids=str)
def test_listing_verbs(argv, tmp_path, capsys, monkeypatch):
    tables, written, printed = tables_and_json(argv, tmp_path, capsys, monkeypatch)
    assert tables == [written] == [printed]


def test_results_merge(tmp_path, capsys, monkeypatch):
    from device_bench.results import Results

    for name, device in (("a", "pi"), ("b", "jetson")):
        r = Results(environments={device: {}}, model={"name": "m", "task": "classification"},
                    data={"images": 3, "ids_sha256": "x"}, source="device_bench")
        r.add({"artifact": "onnx_fp32", "format": "onnx", "precision": "fp32", "status": "ok", "device": device})
        r.save(tmp_path / f"{name}.json")
    tables, written, printed = tables_and_json(["results", "merge", tmp_path / "a.json", tmp_path / "b.json",
                                                "--out", tmp_path / "m.json"], tmp_path, capsys, monkeypatch)
    assert tables == [written["rows"]] and written == printed
    assert {r["device"] for r in printed["rows"]} == {"pi", "jetson"} and printed["merged"] == str(tmp_path / "m.json")


@pytest.fixture(scope="module")
def onnx_export(tiny_classifier, synthetic_root, tmp_path_factory) -> Path:
    from edgederm.export import export

    out = tmp_path_factory.mktemp("json_export") / "exp"
    export(tiny_classifier, out, formats=["onnx"], data_root=synthetic_root, n_verify=16)
    return out


def test_export_and_verify(tiny_classifier, onnx_export, synthetic_root, tmp_path, capsys, monkeypatch):
    argv = ["export", tiny_classifier, "--to", "onnx", "--out", tmp_path / "e", "--data", synthetic_root,
            "--verify-images", "16"]
    tables, written, printed = tables_and_json(argv, tmp_path, capsys, monkeypatch)
    assert tables == [written["rows"]] and written["manifest"] == str(tmp_path / "e" / "manifest.json")
    assert [r["artifact"] for r in printed["rows"]] == ["onnx_fp32"] and printed["rows"][0]["status"] == "✅"
    tables, written, printed = tables_and_json(["verify", onnx_export, "--data", synthetic_root, "--verify-images",
                                                "16"], tmp_path, capsys, monkeypatch)
    assert tables == [written["rows"]] and [r["artifact"] for r in printed["rows"]] == ["onnx_fp32"]


def test_export_quantize_is_composed_in_the_command(tiny_classifier, synthetic_root, tmp_path, capsys, monkeypatch):
    """``export --quantize``: the export stage, then the quantization stage, one table; the export
    stage itself knows nothing of quantization, and an unknown scheme is refused before any work."""
    import edgederm.export

    tree = ast.parse(inspect.getsource(edgederm.export))
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)} | {
        a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    assert not [m for m in imported if m and m.split(".")[0] == "quantization"]
    assert main(["export", str(tiny_classifier), "--to", "onnx", "--quantize", "int9", "--out",
                 str(tmp_path / "x")]) == 2
    assert "unknown quantization scheme 'int9'" in capsys.readouterr().err and not (tmp_path / "x").exists()
    code, tables, out = run_verb(["export", tiny_classifier, "--to", "onnx", "--quantize", "int8", "--out",
                                  tmp_path / "q", "--data", synthetic_root, "--no-verify", "--json"],
                                 capsys, monkeypatch)
    assert code == 0, out
    rows = strict(out)["rows"]
    assert [r["artifact"] for r in rows] == ["onnx_fp32", "onnx_int8"] and all(r["status"] == "-" for r in rows)


def test_quantize(onnx_export, synthetic_root, tmp_path, capsys, monkeypatch):
    folder = tmp_path / "exp"
    shutil.copytree(onnx_export, folder)
    tables, written, printed = tables_and_json(["quantize", folder, "--scheme", "int8", "--format", "onnx",
                                                "--calibration-size", "16", "--data", synthetic_root, "--no-verify"],
                                               tmp_path, capsys, monkeypatch)
    assert tables == [written["rows"]] and [r["artifact"] for r in printed["rows"]] == ["onnx_int8"]
    assert printed["manifest"] == str(folder / "manifest.json")


def test_bundle(onnx_export, synthetic_root, tmp_path, capsys, monkeypatch):
    tables, written, printed = tables_and_json(["bundle", onnx_export, "--target", "jetson", "--images", "4",
                                                "--out", tmp_path / "b", "--data", synthetic_root],
                                               tmp_path, capsys, monkeypatch)
    assert tables == [written["rows"]]
    assert "model.onnx" in {r["file"] for r in printed["rows"]} and Path(printed["archive"]).is_file()


def test_eval(tiny_classifier, synthetic_root, tmp_path, capsys, monkeypatch):
    argv = ["eval", tiny_classifier, "--data", synthetic_root, "--limit", "16", "--bootstrap", "5"]
    code, _, out = run_verb(argv + ["--json", tmp_path / "e.json"], capsys, monkeypatch)
    written = strict((tmp_path / "e.json").read_text())
    assert code == 0 and all(name in out for name in written["metrics"])
    code, _, out = run_verb(argv + ["--json"], capsys, monkeypatch)
    assert code == 0 and strict(out) == written  # same images, same seed: the same figures
    assert main([str(a) for a in argv] + ["--by", "source", "--json", str(tmp_path / "x.json")]) == 2


def test_diagnose(onnx_export, synthetic_root, tmp_path, capsys, monkeypatch):
    argv = ["diagnose", onnx_export, "--data", synthetic_root, "--calibration-images", "8", "--stat-images", "4",
            "--fallback", "0", "--top", "5", "--threads", "1"]
    tables, written, printed = tables_and_json(argv, tmp_path, capsys, monkeypatch)
    assert [r["layer"] for r in tables[0]] == [layer["layer"] for layer in written["layers"][:5]]
    same_shape(written, printed)


def test_profile(onnx_export, tmp_path, capsys, monkeypatch):
    from edgederm.profile_report import table

    argv = ["profile", onnx_export, "--runs", "2", "--warmup", "0", "--rounds", "1", "--no-roofline",
            "--no-original", "--top", "4", "--out", tmp_path / "p"]
    tables, written, printed = tables_and_json(argv, tmp_path, capsys, monkeypatch)
    assert tables == [table(e, 4) for e in written["artifacts"] if e["status"] != "skipped"]
    assert [e["artifact"] for e in printed["artifacts"]] == ["onnx_fp32"]


# --- slow stages replaced by canned outcomes --------------------------------------------------
def canned_results(task: str = "classification"):
    from device_bench.results import Results

    r = Results(environments={"host": {}}, model={"name": "m", "task": task}, data={"images": 8, "split": "test"},
                source="edgederm bench")
    est = {"value": 0.5, "low": float("nan"), "high": float("nan")}
    for artifact, threads in (("pytorch_fp32", 1), ("onnx_fp32", 1), ("onnx_fp32", 2)):
        r.add({"artifact": artifact, "format": artifact.split("_")[0], "precision": "fp32", "status": "ok",
               "device": "host", "threads": threads, "size_bytes": 1000, "metrics": {"balanced_accuracy": est},
               "latency": {"median_ms": 1.0, "p90_ms": 1.5}})
    return r


def test_bench(onnx_export, tmp_path, capsys, monkeypatch):
    import edgederm.bench

    monkeypatch.setattr(edgederm.bench, "bench", lambda *a, **k: canned_results())
    tables, written, printed = tables_and_json(["bench", onnx_export, "--out", tmp_path / "b"], tmp_path, capsys,
                                               monkeypatch)
    assert tables == [t["rows"] for t in written["tables"]] and written == printed
    assert [t["threads"] for t in printed["tables"]] == [1, 2] and printed["results"].endswith("results.json")


def test_prune(tiny_classifier, tmp_path, capsys, monkeypatch):
    import edgederm.prune

    result = SimpleNamespace(params=(2e6, 1e6), macs=(4e7, 2e7), steps=1, layout={"a": 8},
                             protected={"stem": "input"})
    outcome = SimpleNamespace(result=result, size_bytes=(8e6, 4e6), val_before={"balanced_accuracy": 0.6},
                              val_after={"balanced_accuracy": 0.58}, original=str(tiny_classifier),
                              path=tmp_path / "p.safetensors", minutes=0.1)
    monkeypatch.setattr(edgederm.prune, "prune_checkpoint", lambda *a, **k: outcome)
    monkeypatch.setattr(edgederm.prune, "compare_latency",
                        lambda *a, **k: {"torch": {"before_ms": 2.0, "after_ms": 1.0}})
    tables, written, printed = tables_and_json(["prune", tiny_classifier, "--sparsity", "0.5", "--bench", "torch",
                                                "--out", tmp_path / "p.safetensors"], tmp_path, capsys, monkeypatch)
    assert tables == [written["rows"]] and written == printed
    assert [r["figure"] for r in printed["rows"]][-1] == "PyTorch eager ms" and printed["latency_threads"] == 2


def test_quantize_max_drop(onnx_export, tmp_path, capsys, monkeypatch):
    import quantization.control
    from quantization.escalation import BudgetNotMet

    rows = [{"rung": "int8", "artifact": "onnx_int8", "drop pt": "0.3"}]
    result = SimpleNamespace(metric_name="balanced_accuracy", baseline=0.61, why="int8 within 0.5 pt",
                             chosen=SimpleNamespace(artifact="onnx_int8"), rows=lambda: rows)
    monkeypatch.setattr(quantization.control, "control_folder", lambda *a, **k: result)
    argv = ["quantize", onnx_export, "--max-drop", "0.5", "--format", "onnx"]
    tables, written, printed = tables_and_json(argv, tmp_path, capsys, monkeypatch)
    assert tables == [rows] == [printed["rows"]] and printed["chosen"] == "onnx_int8" and written == printed

    def not_met(*a, **k):
        raise BudgetNotMet("no rung met 0.5 pt", SimpleNamespace(**{**vars(result), "chosen": None}))

    monkeypatch.setattr(quantization.control, "control_folder", not_met)
    tables, written, printed = tables_and_json(argv, tmp_path, capsys, monkeypatch, code=1)
    assert tables == [rows] and printed["chosen"] is None


def test_recalibrate(onnx_export, synthetic_root, tmp_path, capsys, monkeypatch):
    import edgederm.recalibrate

    est = {"value": 0.7, "low": 0.6, "high": 0.8}
    out = {"fit_images": 40, "temperature": {"before": 1.0, "after": 1.3}, "evaluated_on": "test (20 images)",
           "rules": [{"name": "refer_mel", "class": "mel", "threshold": 0.31, "target": "specificity=0.8"}],
           "before": {"ece": est, "balanced_accuracy": est}, "after": {"ece": est, "balanced_accuracy": est},
           "warnings": [], "written": None}
    monkeypatch.setattr(edgederm.recalibrate, "recalibrate", lambda *a, **k: out)
    tables, written, printed = tables_and_json(["recalibrate", onnx_export, "--data", synthetic_root / "derm7",
                                                "--dry-run"], tmp_path, capsys, monkeypatch)
    assert [r["figure"] for r in tables[0]] == ["ece", "balanced_accuracy"] and written == printed == out


def test_run(tmp_path, capsys, monkeypatch):
    import edgederm.pipeline

    summaries = [{"model": "lite0", "minutes": 1.5, "folder": str(tmp_path / "lite0"),
                  "events": [{"stage": "export", "status": "done", "seconds": 12.0}]}]
    monkeypatch.setattr(edgederm.pipeline, "load_recipe", lambda source: SimpleNamespace(out=tmp_path, data=None))
    monkeypatch.setattr(edgederm.pipeline, "run_recipe", lambda *a, **k: summaries)
    tables, written, printed = tables_and_json(["run", "lite0"], tmp_path, capsys, monkeypatch)
    assert tables == [written["rows"]] and written == printed
    assert printed["rows"][0]["export"] == "done 12s" and printed["reports"][0]["model"] == "lite0"


def test_device_android(tmp_path, capsys, monkeypatch):
    import edgederm.device_android

    monkeypatch.setattr(edgederm.device_android, "run_android", lambda *a, **k: canned_results())
    argv = ["device", "android", tmp_path, "--benchmark-model", tmp_path / "bm", "--out", tmp_path / "r.json"]
    target = tmp_path / "out.json"
    code, _, out = run_verb(argv + ["--json", target], capsys, monkeypatch)
    assert code == 0 and "onnx_fp32" in out and f"results: {tmp_path / 'r.json'}" in out  # device_bench's table
    code, _, out = run_verb(argv + ["--json"], capsys, monkeypatch)
    assert code == 0 and strict(out) == strict(target.read_text())
    assert [r["artifact"] for r in strict(out)["rows"]] == ["pytorch_fp32", "onnx_fp32", "onnx_fp32"]


def test_demo(tmp_path, capsys, monkeypatch):
    import edgederm.demo

    section = {"title": "SYNTHETIC", "rows": [{"artifact": "onnx_fp32", "status": "✅"}]}
    payload = {"data": {"root": str(tmp_path), "real": False}, "evaluation": section, "export": section,
               "bench": section, "checkpoint": "c", "folder": str(tmp_path), "report": "r.html", "minutes": 0.1,
               "int8_missed": ["onnx_int8"]}
    monkeypatch.setattr(edgederm.demo, "run_demo", lambda **k: (0, payload))
    tables, written, printed = tables_and_json(["demo", "--quick"], tmp_path, capsys, monkeypatch)
    assert tables == [section["rows"]] * 3 and written == printed == payload
