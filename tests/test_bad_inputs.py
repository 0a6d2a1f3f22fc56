"""Bad inputs across every verb, table-driven: each gives its exit code (2 fix your input, 1 a
verdict), exactly one stderr line and no traceback, leaves nothing half-done or outside its
folder, and runs no code (a canary file proves it). docs/reliability.md states the guarantees.

Each case is ``(id, setup, expected exit code, regex the line must match)``; ``setup(w)`` gets a
workspace ``w`` (fresh folder, a verified tiny export, the synthetic data root, a canary path)
and returns the argv (``python -m device_bench`` argv start with ``"device_bench"``).
"""

from __future__ import annotations

import json
import os
import pickle
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest


@dataclass
class W:
    dir: Path  # this case's own folder
    export: Path  # a copy of a verified tiny ONNX export, this case's to damage
    checkpoint: Path  # the tiny classifier's checkpoint (a copy)
    data: Path  # synthetic data root
    canary: Path  # must never exist: its creation means a file ran code
    victim: Path  # a file outside every output folder: must stay as it is

    def manifest(self) -> dict:
        return json.loads((self.export / "manifest.json").read_text())

    def write_manifest(self, d: dict) -> None:
        (self.export / "manifest.json").write_text(json.dumps(d))

    def onnx(self) -> Path:
        return self.export / "model.onnx"


class Canary:
    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


@pytest.fixture(scope="module")
def base_export(tiny_classifier, synthetic_root, tmp_path_factory):
    from edgederm.export import export

    out = tmp_path_factory.mktemp("bad") / "export"
    outcome = export(tiny_classifier, out, formats=["onnx"], data_root=synthetic_root, n_verify=16)
    assert not outcome.failures and all(r.status == "pass" for r in outcome.verify)
    return out


@pytest.fixture()
def w(base_export, tiny_classifier, synthetic_root, tmp_path):
    ck = tmp_path / "ck"
    ck.mkdir()
    for f in (tiny_classifier, tiny_classifier.with_suffix(".json")):
        shutil.copy2(f, ck / f.name)
    export = tmp_path / "export"
    shutil.copytree(base_export, export)
    m = json.loads((export / "manifest.json").read_text())  # the copy points at the copied checkpoint
    m["model"]["checkpoint"] = str(ck / tiny_classifier.name)
    (export / "manifest.json").write_text(json.dumps(m))
    victim = tmp_path / "outside" / "VICTIM.txt"
    victim.parent.mkdir()
    victim.write_text("original")
    return W(tmp_path / "case", export, ck / tiny_classifier.name, synthetic_root, tmp_path / "CANARY", victim)


# --- case builders -----------------------------------------------------------------------------
def meta(w: W, text: str | None = None) -> Path:
    p = w.dir / "meta.yaml"
    p.parent.mkdir(exist_ok=True)
    p.write_text(text or "task: classification\nclasses: [akiec, bcc, bkl, df, mel, nv, vasc]\n"
                         "dataset: derm7\npreprocessing: {input_size: [48, 64]}\n")
    return p


def card_edit(w: W, **changes) -> list[str]:
    card = w.checkpoint.with_suffix(".json")
    d = json.loads(card.read_text())
    for k, v in changes.items():
        if k == "std":
            d["preprocessing"]["std"] = v
        elif v is None:
            d.pop(k)
        else:
            d[k] = v
    card.write_text(json.dumps(d))
    return ["export", w.checkpoint, "--to", "onnx", "--out", w.dir / "o", "--data", w.data]


def export_args(w: W, *extra) -> list:
    return ["export", w.checkpoint, "--to", "onnx", "--out", w.dir / "o", "--data", w.data, "--verify-images", "8", *extra]


def artifact_path(w: W, path: str) -> W:
    d = w.manifest()
    d["artifacts"][0]["path"] = path
    w.write_manifest(d)
    return w


def pt2(w: W, target: str) -> Path:
    """A real .pt2 whose weight (or sample inputs) entry is a pickle that writes the canary."""
    import torch
    import zipfile

    src, dst = w.dir / "clean.pt2", w.dir / "evil.pt2"
    src.parent.mkdir(exist_ok=True)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 7, 3), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten()).eval()
    torch.export.save(torch.export.export(model, (torch.randn(1, 3, 48, 64),)), str(src))
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", zipfile.ZIP_STORED) as zout:
        for info in zin.infolist():
            data = zin.read(info.filename)
            if target == "weights" and info.filename.endswith("model_weights_config.json"):
                cfg = json.loads(data)
                next(iter(cfg["config"].values()))["use_pickle"] = True
                data = json.dumps(cfg).encode()
            if target == "weights" and info.filename.endswith("data/weights/weight_0"):
                data = pickle.dumps(Canary(w.canary))
            if target == "inputs" and info.filename.endswith("sample_inputs/model.pt"):
                data = pickle.dumps(Canary(w.canary))
            zout.writestr(info.filename, data)
    return dst


def evil_pickle(w: W, name: str) -> Path:
    p = w.dir / name
    p.parent.mkdir(exist_ok=True)
    p.write_bytes(pickle.dumps({"w": Canary(w.canary)}))
    return p


def recipe(w: W, text: str) -> Path:
    p = w.dir / "recipe.yaml"
    p.parent.mkdir(exist_ok=True)
    p.write_text(text)
    return p


def results_file(w: W, text: str) -> Path:
    p = w.dir / "results.json"
    p.parent.mkdir(exist_ok=True)
    p.write_text(text)
    return p


def dataset(w: W, rows: list[str]) -> Path:
    root = w.dir / "data" / "derm7"
    shutil.copytree(w.data / "derm7" / "images", root / "images")
    (root / "labels.csv").write_text("image_id,lesion_id,dx,split\n" + "\n".join(rows) + "\n")
    return root


def first_ids(w: W, n: int) -> list[str]:
    return sorted(p.stem for p in (w.data / "derm7" / "images").glob("*.jpg"))[:n]


def bundle(w: W) -> Path:
    from edgederm.bundle import make_bundle

    out = make_bundle(w.export, "jetson", out=w.dir / "bundles", n_images=8, data_root=w.data)
    return out.folder


def bundle_edit(w: W, edit) -> list:
    folder = bundle(w)
    edit(folder)
    return ["device_bench", "run", folder, "--threads", "1", "--runs", "2", "--warmup", "0", "--bootstrap", "10"]


def bundle_manifest(folder: Path, fn) -> None:
    d = json.loads((folder / "manifest.json").read_text())
    fn(d)
    (folder / "manifest.json").write_text(json.dumps(d))


def trim_labels(folder: Path) -> None:
    p = folder / "eval" / "labels.json"
    d = json.loads(p.read_text())
    d["classes"] = d["classes"][:5] if "classes" in d else ["a"] * 5
    p.write_text(json.dumps(d))


def incomplete(w: W) -> W:
    d = w.manifest()
    d["state"] = "incomplete"
    w.write_manifest(d)
    return w


def change_bytes(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))


def symlink_out(w: W) -> W:
    link = w.export / "link.onnx"
    link.symlink_to(w.victim)
    return artifact_path(w, "link.onnx")


def junk_onnx_same_sha(w: W) -> W:
    from device_bench.integrity import sha256_file

    w.onnx().write_bytes(b"this is not an onnx model")
    d = w.manifest()
    d["artifacts"][0]["sha256"] = sha256_file(w.onnx())
    w.write_manifest(d)
    return w


V = ["verify"]
CASES = [
    # --- model files and sources --------------------------------------------------------------
    ("export-missing-checkpoint", lambda w: ["export", w.dir / "nope.safetensors"], 2, r"does not exist"),
    ("export-corrupt-safetensors", lambda w: (w.checkpoint.write_bytes(b"junk" * 10), export_args(w))[1], 2, r"corrupt|not safetensors"),
    ("export-card-not-json", lambda w: (w.checkpoint.with_suffix(".json").write_text("{oops"), export_args(w))[1], 2, r"not valid JSON"),
    ("export-card-std-zero", lambda w: card_edit(w, std=[0, 0, 0]), 2, r"std .* above 0"),
    ("export-card-std-strings", lambda w: card_edit(w, std=["a", "b", "c"]), 2, r"must be numbers"),
    ("export-card-no-preprocessing", lambda w: card_edit(w, preprocessing=None), 2, r"not a valid EdgeDerm model card"),
    ("export-card-unknown-architecture", lambda w: card_edit(w, architecture="no_such_net"), 2, r"no_such_net"),
    ("export-pt2-pickled-weights", lambda w: ["export", pt2(w, "weights"), "--meta", meta(w), "--to", "onnx"], 2, r"use_pickle.*--trust-source"),
    ("export-pt2-pickled-inputs", lambda w: ["export", pt2(w, "inputs"), "--meta", meta(w), "--to", "onnx"], 2, r"sample_inputs.*--trust-source"),
    ("verify-pt2-pickled-weights", lambda w: ["verify", w.export, "--checkpoint", pt2(w, "weights"), "--meta", meta(w)], 2, r"use_pickle"),
    ("export-pt2-junk", lambda w: ["export", evil_pickle(w, "m.pt2"), "--meta", meta(w)], 2, r"not a torch.export archive"),
    ("export-torchscript-untrusted", lambda w: ["export", ts_file(w), "--meta", meta(w)], 2, r"TorchScript.*--trust-source"),
    ("export-pt-pickle-source", lambda w: ["export", evil_pickle(w, "m.pt"), "--meta", meta(w)], 2, r"not a TorchScript archive"),
    ("export-factory-evil-weights", lambda w: ["export", "tests.test_bad_inputs:tiny", "--weights", evil_pickle(w, "w.pt"),
                                               "--meta", meta(w), "--to", "onnx"], 2, r"would run code.*refused"),
    ("export-foreign-no-meta", lambda w: ["export", pt2(w, "none")], 2, r"needs --meta"),
    ("export-meta-bad-yaml", lambda w: ["export", pt2(w, "none"), "--meta", meta(w, "task: [unclosed\n")], 2, r"not valid YAML"),
    ("export-meta-python-tag", lambda w: ["export", pt2(w, "none"), "--meta",
                                          meta(w, f"!!python/object/apply:builtins.open ['{w.canary}', 'w']\n")], 2, r"not valid YAML"),
    ("export-meta-bad-task", lambda w: ["export", pt2(w, "none"), "--meta", meta(w, "task: detection\nclasses: [a]\n")], 2, r"task must be"),
    ("export-meta-classes-not-list", lambda w: ["export", pt2(w, "none"), "--meta", meta(w, "task: classification\nclasses: 7\n")], 2, r"classes must be"),
    ("export-meta-std-zero", lambda w: ["export", pt2(w, "none"), "--meta", meta(w, "task: classification\nclasses: [a, b]\n"
                                                                                  "preprocessing: {std: [0, 0, 0]}\n")], 2, r"std"),
    # --- export flags ---------------------------------------------------------------------------
    ("export-to-empty", lambda w: export_args(w, "--to", ""), 2, r"--to is empty"),
    ("export-to-unknown", lambda w: export_args(w, "--to", "onnxx"), 2, r"onnxx"),
    ("export-gate-unknown-precision", lambda w: export_args(w, "--gate", "fp99:max_abs_prob:1"), 2, r"unknown precision 'fp99'"),
    ("export-gate-unknown-figure", lambda w: export_args(w, "--gate", "fp32:bogus:1"), 2, r"unknown figure 'bogus'"),
    ("export-gate-negative", lambda w: export_args(w, "--gate", "fp32:max_abs_prob:-1"), 2, r"out of range"),
    ("export-gate-nan", lambda w: export_args(w, "--gate", "fp32:max_abs_prob:nan"), 2, r"out of range"),
    ("export-gate-agreement-above-1", lambda w: export_args(w, "--gate", "fp32:min_top1_agreement:2"), 2, r"out of range"),
    ("export-gate-malformed", lambda w: export_args(w, "--gate", "fp32"), 2, r"PRECISION:FIGURE:VALUE"),
    ("export-verify-images-negative", lambda w: export_args(w, "--verify-images", "-3"), 2, r"--verify-images.*at least 1"),
    ("export-verify-images-zero", lambda w: export_args(w, "--verify-images", "0"), 2, r"at least 1"),
    ("export-dynamic-batch-tflite", lambda w: export_args(w, "--to", "tflite", "--dynamic-batch"), 2, r"--dynamic-batch"),
    ("export-coreml-precision", lambda w: export_args(w, "--coreml-precision", "int3"), 2, r"--coreml-precision"),
    ("export-out-users-folder", lambda w: users_folder(w), 2, r"not empty.*--force"),
    ("export-out-is-file", lambda w: (w.dir.mkdir(), (w.dir / "o").write_text("x"), export_args(w))[2], 2, r"is a file"),
    ("export-unknown-flag", lambda w: export_args(w, "--bogus"), 2, r"unrecognized arguments"),
    ("export-data-missing", lambda w: ["export", w.checkpoint, "--to", "onnx", "--out", w.dir / "o", "--data", w.dir / "nodata"], 2, r"does not exist"),
    # --- data folders ----------------------------------------------------------------------------
    ("eval-duplicate-ids", lambda w: ["eval", w.checkpoint, "--dataset",
                                      dataset(w, [f"{i},L{i},nv,test" for i in first_ids(w, 3)] + [f"{first_ids(w, 1)[0]},L9,mel,test"])],
     2, r"appears twice"),
    ("eval-traversal-id", lambda w: ["eval", w.checkpoint, "--dataset",
                                     dataset(w, [f"{i},L{i},nv,test" for i in first_ids(w, 3)] + ["../../outside/VICTIM,L9,mel,test"])],
     2, r"outside the dataset folder"),
    ("eval-unknown-class", lambda w: ["eval", w.checkpoint, "--dataset", dataset(w, [f"{first_ids(w, 1)[0]},L1,xyz,test"])], 2, r"xyz"),
    ("eval-missing-checkpoint", lambda w: ["eval", w.dir / "none.safetensors"], 2, r"does not exist"),
    ("train-epochs-zero", lambda w: ["train", "--model", "mobilenetv3_small", "--epochs", "0"], 2, r"--epochs"),
    ("train-unknown-model", lambda w: ["train", "--model", "nonet", "--data", w.data], 2, r"nonet"),
    ("prune-threads-huge", lambda w: ["prune", w.checkpoint, "--threads", "9999"], 2, r"--threads"),
    # --- manifests: verify -----------------------------------------------------------------------
    ("verify-no-manifest", lambda w: ["verify", w.dir], 2, r"no manifest"),
    ("verify-manifest-junk", lambda w: ((w.export / "manifest.json").write_text("{junk"), V + [w.export])[1], 2, r"not a valid manifest"),
    ("verify-manifest-foreign-schema", lambda w: (w.write_manifest({"schema": "other"}), V + [w.export])[1], 2, r"not an EdgeDerm manifest"),
    ("verify-manifest-no-task", lambda w: (w.write_manifest({**w.manifest(), "model": {"name": "x"}}), V + [w.export])[1], 2, r"model.task"),
    ("verify-path-traversal", lambda w: V + [artifact_path(w, "../../outside/VICTIM.txt").export], 2, r"no '\.\.'"),
    ("verify-path-absolute", lambda w: V + [artifact_path(w, "/etc/passwd").export], 2, r"no absolute path"),
    ("verify-path-symlink-out", lambda w: V + [symlink_out(w).export], 2, r"outside"),
    ("verify-artifact-deleted", lambda w: (w.onnx().unlink(), V + [w.export, "--data", w.data, "--verify-images", "8"])[1], 1, r"missing"),
    ("verify-artifact-changed", lambda w: (change_bytes(w.onnx()), V + [w.export, "--data", w.data, "--verify-images", "8"])[1], 1, r"sha256"),
    ("verify-onnx-does-not-parse", lambda w: V + [junk_onnx_same_sha(w).export, "--data", w.data, "--verify-images", "8"], 1, r"does not run"),
    ("verify-incomplete", lambda w: V + [incomplete(w).export], 2, r"interrupted"),
    ("verify-checkpoint-changed", lambda w: (change_bytes(w.checkpoint), V + [w.export, "--data", w.data])[1], 2, r"changed since the export"),
    # --- manifests: bench ------------------------------------------------------------------------
    ("bench-artifact-deleted", lambda w: (w.onnx().unlink(), ["bench", w.export])[1], 2, r"missing"),
    ("bench-artifact-changed", lambda w: (change_bytes(w.onnx()), ["bench", w.export])[1], 2, r"sha256"),
    ("bench-path-absolute", lambda w: ["bench", artifact_path(w, "/etc/passwd").export], 2, r"no absolute path"),
    ("bench-threads-huge", lambda w: ["bench", w.export, "--threads", "9999"], 2, r"--threads"),
    ("bench-threads-text", lambda w: ["bench", w.export, "--threads", "two"], 2, r"--threads"),
    ("bench-runs-zero", lambda w: ["bench", w.export, "--runs", "0"], 2, r"--runs"),
    ("bench-images-negative", lambda w: ["bench", w.export, "--images", "-5"], 2, r"--images"),
    ("bench-only-unknown", lambda w: ["bench", w.export, "--only", "nosuch"], 2, r"nosuch"),
    ("bench-incomplete", lambda w: ["bench", incomplete(w).export], 2, r"interrupted"),
    # --- bundles and app kits ---------------------------------------------------------------------
    ("bundle-path-traversal", lambda w: ["bundle", artifact_path(w, "../outside/VICTIM.txt").export, "--target", "jetson",
                                         "--out", w.dir], 2, r"no '\.\.'"),
    ("bundle-path-absolute", lambda w: ["bundle", artifact_path(w, "/etc/passwd").export, "--target", "jetson", "--out", w.dir], 2, r"absolute"),
    ("bundle-unknown-target", lambda w: ["bundle", w.export, "--target", "toaster", "--out", w.dir], 2, r"toaster"),
    ("bundle-artifact-changed", lambda w: (change_bytes(w.onnx()), ["bundle", w.export, "--target", "jetson", "--out", w.dir])[1], 2, r"sha256"),
    ("bundle-incomplete", lambda w: ["bundle", incomplete(w).export, "--target", "jetson", "--out", w.dir], 2, r"interrupted"),
    ("bundle-images-zero", lambda w: ["bundle", w.export, "--target", "jetson", "--images", "0"], 2, r"--images"),
    ("embed-path-absolute", lambda w: ["embed", artifact_path(w, "/etc/passwd").export, "--platform", "web", "--out", w.dir / "kit"], 2, r"absolute"),
    ("embed-unknown-platform", lambda w: ["embed", w.export, "--platform", "toaster", "--out", w.dir / "kit"], 2, r"toaster"),
    ("embed-artifact-changed", lambda w: (change_bytes(w.onnx()), ["embed", w.export, "--platform", "web", "--out", w.dir / "kit"])[1], 2, r"sha256"),
    ("embed-incomplete", lambda w: ["embed", incomplete(w).export, "--platform", "web", "--out", w.dir / "kit"], 2, r"interrupted"),
    ("quantize-incomplete", lambda w: ["quantize", incomplete(w).export, "--scheme", "int8"], 2, r"interrupted"),
    ("quantize-unknown-scheme", lambda w: ["quantize", w.export, "--scheme", "int3"], 2, r"int3"),
    ("quantize-verify-images-zero", lambda w: ["quantize", w.export, "--verify-images", "0"], 2, r"--verify-images"),
    ("quantize-max-drop-negative", lambda w: ["quantize", w.export, "--max-drop", "-1"], 2, r"--max-drop"),
    ("quantize-artifact-changed", lambda w: (change_bytes(w.onnx()), ["quantize", w.export, "--scheme", "int8", "--format", "onnx",
                                                                      "--data", w.data])[1], 1, r"sha256"),
    # --- results and reports ----------------------------------------------------------------------
    ("report-junk", lambda w: ["report", results_file(w, "{junk")], 2, r"not valid JSON"),
    ("report-not-object", lambda w: ["report", results_file(w, "[1, 2]")], 2, r"not a results object"),
    ("report-missing", lambda w: ["report", w.dir / "none.json"], 2, r"no results"),
    ("report-out-is-file", lambda w: ["report", good_results(w), "--out", w.victim], 2, r"is a file"),
    ("merge-junk", lambda w: ["results", "merge", good_results(w), results_file(w, "{junk"), "--out", w.dir / "m.json"], 2, r"not valid JSON"),
    # --- recipes --------------------------------------------------------------------------------
    ("run-recipe-missing", lambda w: ["run", w.dir / "none.yaml"], 2, r"not found"),
    ("run-recipe-bad-yaml", lambda w: ["run", recipe(w, "models: [unclosed\n")], 2, r"not valid YAML"),
    ("run-recipe-python-tag", lambda w: ["run", recipe(w, f"!!python/object/apply:builtins.open ['{w.canary}', 'w']\n")], 2, r"not valid YAML"),
    ("run-recipe-wrong-type", lambda w: ["run", recipe(w, f"models: [{{checkpoint: {w.checkpoint}}}]\nbench: {{threads: two}}\n")], 2, r"bench.threads"),
    ("run-recipe-negative-images", lambda w: ["run", recipe(w, f"models: [{{checkpoint: {w.checkpoint}}}]\nexport: {{verify_images: -1}}\n")], 2, r"verify_images"),
    ("run-recipe-unknown-key", lambda w: ["run", recipe(w, "models: []\nspeed: max\n")], 2, r"unknown key"),
    ("run-recipe-no-models", lambda w: ["run", recipe(w, "name: x\n")], 2, r"models"),
    ("run-jobs-zero", lambda w: ["run", "lite0", "--jobs", "0"], 2, r"--jobs"),
    ("run-checkpoint-missing", lambda w: ["run", recipe(w, f"models: [{{checkpoint: {w.dir / 'none.safetensors'}}}]\n"
                                                          f"out: {w.dir / 'runs'}\n")], 2, r"not found"),
    # --- bundles on the device (python -m device_bench) ------------------------------------------
    ("device-not-a-bundle", lambda w: ["device_bench", "run", w.dir], 2, r"not a bundle"),
    ("device-path-traversal", lambda w: bundle_edit(w, lambda f: bundle_manifest(f, lambda d: d["artifacts"][0].update(path="../../x"))), 2, r"no '\.\.'"),
    ("device-path-absolute", lambda w: bundle_edit(w, lambda f: bundle_manifest(f, lambda d: d["artifacts"][0].update(path="/etc/passwd"))), 2, r"absolute"),
    ("device-labels-trimmed", lambda w: bundle_edit(w, trim_labels), 2, r"labels.json"),
    ("device-images-changed", lambda w: bundle_edit(w, lambda f: change_bytes(f / "eval" / "images.npz")), 2, r"images.npz"),
    ("device-hashes-missing", lambda w: bundle_edit(w, lambda f: bundle_manifest(f, lambda d: d.pop("bundle"))), 2, r"records no sha256"),
    ("device-manifest-junk", lambda w: bundle_edit(w, lambda f: (f / "manifest.json").write_text("{x")), 2, r"not valid JSON"),
    ("device-threads-zero", lambda w: ["device_bench", "run", w.dir, "--threads", "0"], 2, r"--threads"),
]


def tiny():
    import torch

    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Conv2d(3, 7, 3), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten())


def ts_file(w: W) -> Path:
    import torch

    p = w.dir / "m.ts"
    p.parent.mkdir(exist_ok=True)
    torch.jit.save(torch.jit.trace(tiny().eval(), torch.randn(1, 3, 48, 64)), str(p))
    return p


def users_folder(w: W) -> list:
    (w.dir / "o").mkdir(parents=True)
    (w.dir / "o" / "model.onnx").write_text("the user's own file")
    return export_args(w)


def good_results(w: W) -> Path:
    from device_bench.results import Results

    return Results(environments={"here": {}}, model={"name": "m", "task": "classification", "classes": ["a"]},
                   data={"split": "test", "images": 1}).save(w.dir / "good" / "results.json")


def run_case(argv: list, capfd) -> tuple[int, list[str]]:
    capfd.readouterr()
    if argv and argv[0] == "device_bench":
        from device_bench.cli import main as device_main

        rc = _exit_code(lambda: device_main([str(a) for a in argv[1:]]))
    else:
        from edgederm.cli import main

        rc = _exit_code(lambda: main([str(a) for a in argv]))
    err = capfd.readouterr().err
    return rc, [line for line in err.splitlines() if line.strip()]


def _exit_code(fn) -> int:
    try:
        return fn()
    except SystemExit as e:  # argparse
        return int(e.code)


def _leftovers(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if re.search(r"\.(tmp|partial)-|^\.partial-|\.tmp-\d", p.name)]


def _temp_runs() -> set[str]:
    return {p.name for p in Path(tempfile.gettempdir()).glob("edgederm-*")}


@pytest.mark.parametrize("case_id, setup, code, pattern", CASES, ids=[c[0] for c in CASES])
def test_bad_input(case_id, setup, code, pattern, w, capfd, monkeypatch):
    monkeypatch.chdir(w.export.parent)
    argv = setup(w)
    before_temp = _temp_runs()
    manifest_before = (w.export / "manifest.json").read_bytes() if (w.export / "manifest.json").exists() else None
    rc, lines = run_case(argv, capfd)
    assert rc == code, (rc, lines)
    assert len(lines) == 1 or (code == 1 and lines and all("error:" in line for line in lines[-1:])), lines
    line = lines[-1]
    assert "Traceback" not in "\n".join(lines)
    assert re.search(pattern, line), line
    assert not w.canary.exists(), "an input ran code"
    assert w.victim.read_text() == "original", "a file outside the output folder changed"
    assert not _leftovers(w.export.parent), _leftovers(w.export.parent)
    assert _temp_runs() <= before_temp, "a temp folder was left behind"
    if code == 2 and manifest_before is not None and not case_id.startswith("verify-artifact"):
        assert (w.export / "manifest.json").read_bytes() == manifest_before, "a refused input still rewrote the manifest"
    if case_id == "run-checkpoint-missing":
        assert not (w.dir / "runs").exists(), "a refused recipe left its folders"
    if case_id == "export-out-users-folder":
        assert (w.dir / "o" / "model.onnx").read_text() == "the user's own file"
    if code == 2 and case_id.startswith("export") and case_id not in ("export-out-users-folder", "export-out-is-file"):
        assert not (w.dir / "o").exists(), "a refused export left a folder"


def test_there_are_enough_cases():
    assert len(CASES) >= 80
    assert len({c[0] for c in CASES}) == len(CASES)


def test_internal_error_is_one_line_exit_3_with_log(w, capfd, monkeypatch):
    """An unexpected failure: exit 3, one line naming the log file, the traceback in that file."""
    import edgederm.cli as cli

    def boom(args):
        raise ZeroDivisionError("an internal fault")

    real = cli.build_parser

    def parser():
        p = real()
        for action in p._subparsers._group_actions[0].choices.values():
            action.set_defaults(func=boom)
        return p

    monkeypatch.setattr(cli, "build_parser", parser)
    rc, lines = run_case(["models"], capfd)
    assert rc == 3 and len(lines) == 1, lines
    log = Path(re.search(r"traceback in (\S+)$", lines[0]).group(1))
    assert "ZeroDivisionError" in log.read_text() and "Traceback" in log.read_text()


def test_fuzzed_files_never_crash(w, capfd, monkeypatch):
    """Random byte flips and truncations of a manifest, a card, a results file and a recipe: every
    run ends with exit 0, 1 or 2 and at most one error line, never an internal error (3)."""
    monkeypatch.chdir(w.export.parent)
    rng = np.random.default_rng(0)
    sources = {"manifest": w.export / "manifest.json", "card": w.checkpoint.with_suffix(".json"),
               "results": good_results(w), "recipe": recipe(w, f"models: [{{checkpoint: {w.checkpoint}}}]\nbench: {{runs: 3}}\n")}
    originals = {k: p.read_bytes() for k, p in sources.items()}
    argv = {"manifest": ["bundle", w.export, "--target", "jetson", "--out", w.dir / "b", "--images", "4", "--data", w.data],
            "card": ["eval", w.checkpoint, "--data", w.data, "--limit", "4", "--bootstrap", "5"],
            "results": ["report", sources["results"], "--out", w.dir / "r"],
            "recipe": ["run", sources["recipe"], "--out", w.dir / "runs"]}
    tried = 0
    for kind in sources:
        for _ in range(6):
            data = bytearray(originals[kind])
            if rng.random() < 0.5:
                data = data[: int(rng.integers(0, len(data)))]
            else:
                for i in rng.integers(0, len(data), size=3):
                    data[i] = int(rng.integers(32, 127))
            sources[kind].write_bytes(bytes(data))
            if kind == "recipe" and b"checkpoint" in data:  # a surviving recipe would run the whole road: stop at parse
                from edgederm.pipeline import load_recipe
                from edgederm.errors import EdgeDermError

                try:
                    load_recipe(sources[kind])
                except EdgeDermError:
                    pass
                continue
            rc, lines = run_case(argv[kind], capfd)
            tried += 1
            assert rc in (0, 1, 2), (kind, rc, lines)
            assert "Traceback" not in "\n".join(lines)
            assert rc == 0 or len([ln for ln in lines if "error:" in ln]) >= 1
        sources[kind].write_bytes(originals[kind])
    assert tried >= 12
    assert not w.canary.exists()
