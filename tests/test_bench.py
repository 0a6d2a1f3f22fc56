"""edgederm bench / report / run: timing protocol, CIs, results schema, report rendering, stage cache, Ray."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import numpy as np
import pytest

from device_bench.results import Results, ResultsError
from device_bench.timing import measure, measure_interleaved, summarize
from edgederm.errors import EdgeDermError


# --- timing protocol -----------------------------------------------------------------------
def test_warmup_calls_are_not_timed():
    calls = []

    def fn(x):
        calls.append(x)
        time.sleep(0.05 if len(calls) <= 3 else 0.001)  # the first calls are slow, as cold runs are

    stats = measure(fn, 0, warmup=3, runs=10)
    assert len(calls) == 13 and stats["runs"] == 10 and stats["warmup"] == 3
    assert stats["median_ms"] < 20 and stats["min_ms"] >= 1.0


def test_summary_statistics_are_exact():
    times = [5.0, 1.0, 3.0, 2.0, 4.0, 10.0, 6.0, 7.0, 8.0, 9.0]
    s = summarize(times)
    assert s["median_ms"] == 5.5 and s["min_ms"] == 1.0 and s["mean_ms"] == 5.5
    assert s["p90_ms"] == pytest.approx(np.percentile(times, 90)) == pytest.approx(9.1)


def test_interleaved_rounds_rotate_and_share_a_burst_of_load():
    k, warmup, block_warmup, per_block, rounds = 3, 2, 1, 4, 5
    log = []
    burst = range(k * warmup + 2 * k * (block_warmup + per_block), k * warmup + 3 * k * (block_warmup + per_block))

    def make(name):
        def fn():
            time.sleep(0.012 if len(log) in burst else 0.002)  # round 2 runs while "another job" has the CPU
            log.append(name)
        return fn

    out = measure_interleaved({n: make(n) for n in "abc"}, warmup=warmup, runs=per_block * rounds, rounds=rounds,
                              block_warmup=block_warmup)
    assert len(log) == k * (warmup + rounds * (block_warmup + per_block))
    blocks = log[k * warmup:]
    orders = ["".join(blocks[r * k * (block_warmup + per_block) + i * (block_warmup + per_block)] for i in range(k))
              for r in range(rounds)]
    assert all(sorted(o) == ["a", "b", "c"] for o in orders) and len(set(orders)) > 1  # each round all, in new orders
    for name in "abc":
        s = out[name]
        assert s["runs"] == per_block * rounds and s["warmup"] == warmup and len(s["round_medians_ms"]) == rounds
        assert max(s["round_medians_ms"]) == s["round_medians_ms"][2] > 10  # the burst hit every candidate in round 2
        assert s["median_ms"] < 8 and s["round_spread"] > 2  # ... and the median of all runs shrugs it off


def test_speedups_compare_within_a_machine_and_against_the_gpu_original():
    from edgederm.bench_results import add_speedups

    def row(artifact, device, ms, **kw):
        return {"artifact": artifact, "format": kw.pop("format", "onnx"), "precision": "fp32", "status": "ok",
                "device": device, "threads": 1, "latency": {"median_ms": ms}, **kw}

    res = Results(environments={"host": {}, "phone": {}, "gpu": {}}, rows=[
        row("pytorch_cpu_fp32", "host", 10.0, format="torch", role="original", provider="eager CPU"),
        row("onnx_fp32", "host", 2.0, role="artifact"), row("onnx_fp32", "phone", 4.0, role="artifact"),
        row("pytorch_cuda_fp32", "gpu", 1.0, format="torch", role="original", provider="H200")])
    add_speedups(res)
    by = {(r["artifact"], r["device"]): r for r in res.rows}
    assert by[("onnx_fp32", "host")]["speedup_vs_original"] == 5.0
    assert "speedup_vs_original" not in by[("onnx_fp32", "phone")]  # another machine: no ratio to the host's original
    assert by[("onnx_fp32", "phone")]["gpu_original_ratio"] == 4.0 and by[("pytorch_cpu_fp32", "host")]["gpu_original_ratio"] == 10.0


# --- confidence intervals --------------------------------------------------------------------
def test_paired_delta_of_identical_outputs_is_exactly_zero():
    from edgederm.bench_scoring import paired_deltas, scorer

    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(7), 10)
    logits = rng.normal(size=(70, 7)).astype(np.float32)
    per_image, score = scorer("classification", y, ["akiec", "bcc", "bkl", "df", "mel", "nv", "vasc"])
    fns = score(per_image(logits, False))
    d = paired_deltas(fns, fns, 70, 200, 0)
    assert d["balanced_accuracy"] == {"value": 0.0, "low": 0.0, "high": 0.0}


def test_paired_delta_value_and_ci_match_hand_computation():
    from edgederm.bench_scoring import metrics_with_ci, paired_deltas, scorer

    y = np.repeat(np.arange(2), 50)
    good = np.eye(2)[y] * 5.0  # every image right
    bad = good.copy()
    bad[:10] = bad[:10][:, ::-1]  # 10 of the 50 class-0 images wrong
    per_image, score = scorer("classification", y, ["nv", "mel"])
    ref, art = score(per_image(good, False)), score(per_image(bad, False))
    d = paired_deltas(art, ref, 100, 500, 0)["accuracy"]
    assert d["value"] == pytest.approx(-0.10)
    assert d["low"] < -0.10 < d["high"] <= -0.03  # resampled images: the drop stays negative
    m = metrics_with_ci(art, 100, 500, 0)["balanced_accuracy"]
    assert m["value"] == pytest.approx((40 / 50 + 1.0) / 2)
    assert m["low"] <= m["value"] <= m["high"]


def test_segmentation_scores_per_image():
    from edgederm.bench_scoring import scorer

    truth = np.zeros((2, 4, 4), bool)
    truth[:, :2] = True  # 8 pixels each
    out = np.full((2, 1, 4, 4), -5.0, np.float32)
    out[0, 0, :2] = 5.0  # image 0 exact
    out[1, 0, :1] = 5.0  # image 1: 4 of 8 pixels -> Dice 2*4/12, IoU 0.5
    per_image, score = scorer("segmentation", truth, [])
    fns = score(per_image(out, False))
    idx = np.arange(2)
    assert fns["dice"](idx) == pytest.approx((1 + 8 / 12) / 2)
    assert fns["jaccard"](idx) == pytest.approx(0.75)
    assert fns["thresholded_jaccard"](idx) == pytest.approx(0.5)  # IoU 0.5 < 0.65 counts as 0


# --- results schema --------------------------------------------------------------------------
def test_results_round_trip(tmp_path):
    r = Results(environments={"cpu x2": {"cpu": "cpu"}}, model={"name": "m", "task": "classification"},
                data={"images": 3}, source="edgederm bench")
    r.add({"artifact": "onnx_fp32", "format": "onnx", "precision": "fp32", "status": "ok",
           "latency": summarize([1.0, 2.0, 3.0]), "metrics": {"accuracy": {"value": 1.0, "low": 1.0, "high": 1.0}}})
    path = r.save(tmp_path)
    back = Results.load(path)
    assert back.to_dict() == r.to_dict()
    assert not list(tmp_path.glob(".*tmp*"))


@pytest.mark.parametrize("doc, message", [
    ({"schema": "other"}, "not an EdgeDerm results file"),
    ({"schema": "edgederm.results", "version": 99}, "newer than this reader"),
    ({"schema": "edgederm.results", "version": 1, "rows": [{"artifact": "a"}]}, "lacks format, precision, status"),
    ({"schema": "edgederm.results", "version": 1, "rows": [
        {"artifact": "a", "format": "onnx", "precision": "fp32", "status": "fine"}]}, "status 'fine'"),
])
def test_invalid_results_are_named(tmp_path, doc, message):
    p = tmp_path / "results.json"
    p.write_text(json.dumps(doc))
    with pytest.raises(ResultsError, match=message):
        Results.load(p)


def test_gpu_rows_are_chosen_only_with_a_gpu():
    from edgederm.bench_candidates import gpu_targets

    assert gpu_targets(False, ["CPUExecutionProvider"], "auto") == []
    assert gpu_targets(True, ["CPUExecutionProvider"], "off") == []
    rows = gpu_targets(True, ["CUDAExecutionProvider", "CPUExecutionProvider"], "auto")
    assert ("torch", "fp32", False) in rows and ("torch", "fp16", True) in rows
    assert ("onnxruntime", "CUDAExecutionProvider", False) in rows
    assert gpu_targets(False, ["TensorrtExecutionProvider"], "auto") == [("onnxruntime", "TensorrtExecutionProvider", False)]


def test_pareto_front():
    from edgederm.report import pareto_front

    pts = [(10.0, 0.70), (5.0, 0.69), (20.0, 0.71), (12.0, 0.65), (5.0, 0.60)]
    assert sorted(pareto_front(pts)) == [0, 1, 2]


# --- end to end on a tiny export -------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_export(tiny_classifier, synthetic_root, tmp_path_factory):
    from edgederm.export import export

    folder = tmp_path_factory.mktemp("bench_export")
    export(tiny_classifier, folder, formats=["onnx", "coreml"], data_root=synthetic_root, n_verify=32)
    return folder


@pytest.fixture(scope="module")
def tiny_results(tiny_export, synthetic_root):
    from edgederm.bench import BenchConfig, bench

    config = BenchConfig(images=48, threads=(1, 2), runs=5, rounds=5, warmup=2, n_boot=100, peak=True, throughput_batch=4)
    return bench(tiny_export, config, synthetic_root, out=tiny_export / "bench")


@pytest.mark.coreml
def test_bench_rows(tiny_results, tiny_export):
    rows = {(r["artifact"], r.get("threads")): r for r in tiny_results.rows}
    original = rows[("pytorch_cpu_fp32", 2)]
    onnx = rows[("onnx_fp32", 2)]
    assert original["role"] == "original" and original["macs"] > 0 and original["params"] > 0
    # The ONNX file is the same function: the paired difference is zero on every resample.
    assert onnx["delta"]["balanced_accuracy"]["value"] == pytest.approx(0.0, abs=1e-9)
    assert onnx["metrics"]["balanced_accuracy"]["value"] == pytest.approx(original["metrics"]["balanced_accuracy"]["value"])
    assert onnx["latency"]["runs"] == 5 and onnx["speedup_vs_original"] > 0
    assert onnx["peak_fraction"] > 0  # its ceiling is not testable: load moves the peak measured at the start
    assert rows[("coreml_fp16", None)]["status"] == "skipped" and "macOS" in rows[("coreml_fp16", None)]["reason"]
    assert {"peer_onnx_fp32", "peer_onnx_int8"} <= {r["artifact"] for r in tiny_results.rows}
    assert original["throughput"]["batch"] == 4
    back = Results.load(tiny_export / "bench" / "results.json")
    assert len(back.rows) == len(tiny_results.rows) and 0 < back.data["images"] <= 48
    csv = (tiny_export / "bench" / "results.csv").read_text().splitlines()
    assert csv[0].startswith("device,artifact") and any("onnx_fp32" in line for line in csv[1:])
    env = next(iter(back.environments.values()))
    assert env["peak_gmacs"]["1"]["fp32"] > 0


@pytest.mark.coreml
def test_gpu_only_rows_append_to_the_cpu_results(tiny_results, tiny_export, synthetic_root, tmp_path, monkeypatch, capsys):
    """The GPU script's path, with the CPU standing in for CUDA: GPU rows are scored against the CPU
    original, the missing ONNX Runtime GPU providers are named, and --append merges on the same images."""
    import torch

    import edgederm.bench_candidates as B
    from edgederm.cli import main

    real = B.torch_candidate

    def stand_in(model, manifest, stats, device="cpu", precision="fp32", compiled=False):
        cand = real(model, manifest, stats, "cpu", "fp32", False)  # fp16 and inductor on CPU are not the point here
        if device == "cuda":
            cand.row.update(artifact=f"pytorch_cuda_{precision}" + ("_compiled" if compiled else ""), provider="FAKE GPU")
        return cand

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *a: "FAKE GPU")
    monkeypatch.setattr(B, "torch_candidate", stand_in)
    shutil.copytree(tiny_export / "bench", tmp_path / "bench")
    code = main(["bench", str(tiny_export), "--data", str(synthetic_root), "--gpu", "only", "--threads", "1",
                 "--images", "48", "--runs", "5", "--warmup", "1", "--bootstrap", "50", "--no-peers", "--no-peak",
                 "--append", str(tmp_path / "bench" / "results.json"), "--out", str(tmp_path / "bench")])
    assert code == 0
    merged = Results.load(tmp_path / "bench" / "results.json")
    gpu = {r["artifact"]: r for r in merged.rows if r["artifact"].startswith(("pytorch_cuda", "onnx_fp32_"))}
    assert set(gpu) == {"pytorch_cuda_fp32", "pytorch_cuda_fp16", "pytorch_cuda_fp16_compiled", "onnx_fp32_cuda",
                        "onnx_fp32_tensorrt"}
    assert gpu["pytorch_cuda_fp32"]["delta"]["balanced_accuracy"]["value"] == pytest.approx(0.0, abs=1e-9)
    assert "onnxruntime-gpu" in gpu["onnx_fp32_cuda"]["reason"] and gpu["onnx_fp32_cuda"]["status"] == "skipped"
    assert len(merged.rows) == len(tiny_results.rows) + 5
    cpu_onnx = next(r for r in merged.rows if r["artifact"] == "onnx_fp32" and r.get("threads") == 1)
    assert cpu_onnx["gpu_original_ratio"] == pytest.approx(
        cpu_onnx["latency"]["median_ms"] / gpu["pytorch_cuda_fp32"]["latency"]["median_ms"], rel=1e-2)
    assert "× GPU ms" in capsys.readouterr().out


@pytest.mark.coreml
def test_report_shows_every_artifact(tiny_results, tmp_path):
    import base64
    import io
    import re

    from PIL import Image

    from edgederm.report import label, measured, render

    written = render(tiny_results, tmp_path)
    page = written["report.html"].read_text()
    assert "Machine noise while timing: a fixed GEMM varied" in page  # the drift the latencies were taken under
    measured_rows = measured(tiny_results.rows)
    assert sorted(written["plotted"]) == sorted(label(r, False) for r in measured_rows)
    images = re.findall(r'src="data:image/png;base64,([^"]+)"', page)
    assert len(images) == 2
    for b64 in images:
        img = Image.open(io.BytesIO(base64.b64decode(b64))).convert("L")
        assert img.size[0] > 500 and np.asarray(img).std() > 5  # a drawn plot, not a blank canvas
    for r in tiny_results.rows:
        assert r["artifact"] in page
    assert "Environment" in page and "pareto.png" in written["report.md"].read_text()


@pytest.mark.browser
@pytest.mark.coreml
def test_report_renders_in_headless_chromium(tiny_results, tmp_path):
    import subprocess

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if not chromium:
        pytest.skip("Chromium not installed (Debian package 'chromium'; .ci/run installs it)")
    written = render_html(tiny_results, tmp_path)
    shot = tmp_path / "shot.png"
    subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                    "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={shot}",
                    "--window-size=1400,2000", written.as_uri()], capture_output=True, timeout=120)
    from PIL import Image

    img = np.asarray(Image.open(shot).convert("L"))
    assert img.std() > 5 and (img < 128).mean() > 0.005  # text and plots drawn


def render_html(results, folder) -> Path:
    from edgederm.report import render

    return render(results, folder)["report.html"]


@pytest.mark.coreml
def test_cli_bench_and_report(tiny_export, synthetic_root, tmp_path, capsys):
    from edgederm.cli import main

    assert main(["bench", str(tiny_export), "--data", str(synthetic_root), "--images", "24", "--threads", "1",
                 "--runs", "3", "--warmup", "1", "--bootstrap", "50", "--no-peers", "--no-peak",
                 "--out", str(tmp_path / "b")]) == 0
    out = capsys.readouterr().out
    assert "pytorch_cpu_fp32" in out and "onnx_fp32" in out and "ms median" in out
    assert main(["report", str(tmp_path / "b" / "results.json"), "--out", str(tmp_path / "r")]) == 0
    assert (tmp_path / "r" / "report.html").exists()
    assert main(["bench", str(tiny_export), "--threads", "two"]) == 2


# --- stage cache and recipes -----------------------------------------------------------------
def test_stage_cache_reuses_and_recomputes(tmp_path):
    from edgederm.pipeline import StageCache, run_stage

    out = tmp_path / "out.txt"
    calls = []

    def work(text="a"):
        calls.append(text)
        out.write_text(text)
        return {"kind": "file", "path": str(out)}

    cache, events = StageCache(tmp_path), []
    run_stage(cache, tmp_path, "s", "k1", work, events)
    run_stage(cache, tmp_path, "s", "k1", work, events)  # unchanged: reused
    assert calls == ["a"] and [e["status"] for e in events] == ["ran", "reused"]
    run_stage(cache, tmp_path, "s", "k2", lambda: work("b"), events)  # changed input: recomputed
    assert calls == ["a", "b"]
    out.write_text("tampered")  # output changed behind our back: recomputed
    run_stage(cache, tmp_path, "s", "k2", lambda: work("b"), events)
    assert calls == ["a", "b", "b"]


@pytest.mark.parametrize("text, message", [
    ("models: []", "must list at least one model"),
    ("models: [{checkpoint: a.safetensors}]\nexprot: {}", "unknown key"),
    ("models: [{checkpoint: a.safetensors}]\nbench: {thread: [1]}", "unknown bench setting"),
    ("models: [{foo: 1}]", "checkpoint: PATH"),
    ("models: [{checkpoint: a}, {checkpoint: b/a}]", "share a name"),
    ("models: [unclosed", "not valid YAML"),
])
def test_bad_recipes(tmp_path, text, message):
    from edgederm.pipeline import load_recipe

    p = tmp_path / "r.yaml"
    p.write_text(text)
    with pytest.raises(EdgeDermError, match=message):
        load_recipe(p)


def _recipe(tmp_path, checkpoint, synthetic_root, models=None, runs=3) -> Path:
    import yaml

    doc = {"name": "t", "out": str(tmp_path / "run"), "data": str(synthetic_root),
           "models": models or [{"checkpoint": str(checkpoint)}],
           "export": {"formats": ["onnx"], "verify_images": 16},
           "bench": {"threads": [1], "images": 16, "runs": runs, "warmup": 1, "bootstrap": 20, "peers": False,
                     "peak": False, "throughput_batch": 0}}
    p = tmp_path / "recipe.yaml"
    p.write_text(yaml.safe_dump(doc))
    return p


def test_run_is_resumable(tiny_classifier, synthetic_root, tmp_path):
    from edgederm.pipeline import load_recipe, run_recipe

    recipe_path = _recipe(tmp_path, tiny_classifier, synthetic_root)
    first = run_recipe(load_recipe(recipe_path))[0]
    assert [e["status"] for e in first["events"]] == ["ran", "ran", "ran"]  # export, bench, report
    second = run_recipe(load_recipe(recipe_path))[0]
    assert [e["status"] for e in second["events"]] == ["reused", "reused", "reused"]
    _recipe(tmp_path, tiny_classifier, synthetic_root, runs=4)  # only the bench settings change
    third = run_recipe(load_recipe(recipe_path))[0]
    assert {e["stage"]: e["status"] for e in third["events"]} == {"export": "reused", "bench": "ran", "report": "ran"}
    assert (tmp_path / "run" / Path(tiny_classifier).stem / "report" / "report.html").exists()


def test_sweep_on_a_local_ray_cluster(tiny_classifier, synthetic_root, tmp_path):
    pytest.importorskip("ray")
    from edgederm.pipeline import load_recipe, run_recipe

    models = [{"checkpoint": str(tiny_classifier), "name": "a"}, {"checkpoint": str(tiny_classifier), "name": "b"}]
    recipe = load_recipe(_recipe(tmp_path, tiny_classifier, synthetic_root, models=models))
    try:
        summaries = run_recipe(recipe, ray_address="local")
    finally:
        import ray

        ray.shutdown()
    assert sorted(s["model"] for s in summaries) == ["a", "b"]
    sweep = (tmp_path / "run" / "sweep.md").read_text()
    assert "★" in sweep and "| a |" in sweep and "| b |" in sweep
