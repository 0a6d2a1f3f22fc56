"""The on-device path: bundles, ``python -m device_bench run`` without torch/tensorflow/edgederm,
tool-output parsers, Android over a fake ``adb``, TensorRT over a fake ``trtexec``, results merge.

What cannot run here (a Jetson's TensorRT, a phone, Core ML prediction off macOS) is driven
through stand-in executables that replay recorded outputs in the tools' documented formats
(tests/fixtures/README.md), so every line of our code on those paths runs.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest

from device_bench import metrics as dm
from device_bench.parsers import ParseError, benchmark_model, trtexec
from device_bench.results import Results

FIXTURES = Path(__file__).parent / "fixtures"
BLOCKED = ("torch", "tensorflow", "edgederm", "sklearn", "keras", "tf_keras", "timm")


def _write_exe(path: Path, body: str) -> Path:
    path.write_text(f"#!{sys.executable}\n{body}")
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return path


@pytest.fixture(scope="module")
def blocker(tmp_path_factory) -> Path:
    """A sitecustomize that makes torch, tensorflow, edgederm and scikit-learn unimportable."""
    d = tmp_path_factory.mktemp("blocker")
    (d / "sitecustomize.py").write_text(
        "import sys\n"
        f"BLOCKED = {BLOCKED!r}\n"
        "class _Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in BLOCKED:\n"
        "            raise ImportError(name + ' is blocked for device_bench')\n"
        "sys.meta_path.insert(0, _Block())\n")
    return d


@pytest.fixture(scope="module")
def fake_trtexec(tmp_path_factory) -> Path:
    """A ``trtexec`` that replays the fp16 or int8 fixture log for the flags it is given."""
    d = tmp_path_factory.mktemp("fakebin")
    _write_exe(d / "trtexec", f"import sys\nfx = {str(FIXTURES)!r}\n"
               "name = 'trtexec_int8_trt86.log' if '--int8' in sys.argv else 'trtexec_fp16_orin.log'\n"
               "sys.stdout.write(open(fx + '/' + name).read())\n")
    return d


def device_bench_run(bundle: Path, blocker: Path, *args: str, path_prefix: Path | None = None):
    env = {**os.environ, "PYTHONPATH": str(blocker)}
    if path_prefix:
        env["PATH"] = f"{path_prefix}{os.pathsep}{env['PATH']}"
    return subprocess.run([sys.executable, "-m", "device_bench", "run", ".", "--runs", "5", "--warmup", "1",
                           "--bootstrap", "50", *args], cwd=bundle, env=env, capture_output=True, text=True,
                          timeout=600)


def _stale_hashes(folder: Path) -> list[str]:
    from device_bench.integrity import sha256_path

    manifest = json.loads((folder / "manifest.json").read_text())
    return [a["name"] for a in manifest["artifacts"] if sha256_path(folder / a["path"]) != a["sha256"]]


@pytest.fixture(scope="module")
def raw_cls_export(tiny_classifier, synthetic_root, tmp_path_factory) -> Path:
    from edgederm.export import export

    out = tmp_path_factory.mktemp("exp") / "cls"
    export(tiny_classifier, out, formats=["onnx", "tflite"], data_root=synthetic_root, n_verify=16)
    return out


@pytest.fixture(scope="module")
def cls_export(raw_cls_export, tmp_path_factory) -> Path:
    """The export with its manifest's sha256 brought up to date where the exporter left them stale
    (test_export_hashes_match_files records that bug), so the bundle path can be tested."""
    import shutil

    from device_bench.integrity import sha256_path

    out = tmp_path_factory.mktemp("exp") / "cls_rehashed"
    shutil.copytree(raw_cls_export, out)
    manifest = json.loads((out / "manifest.json").read_text())
    for a in manifest["artifacts"]:
        a["sha256"], a["size_bytes"] = sha256_path(out / a["path"]), (out / a["path"]).stat().st_size
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return out


@pytest.mark.tflite
def test_export_hashes_match_files(raw_cls_export):
    assert _stale_hashes(raw_cls_export) == []


@pytest.fixture(scope="module")
def seg_export(tiny_segmenter, synthetic_root, tmp_path_factory) -> Path:
    from edgederm.export import export

    out = tmp_path_factory.mktemp("exp") / "seg"
    export(tiny_segmenter, out, formats=["onnx"], data_root=synthetic_root, n_verify=8)
    return out


@pytest.fixture(scope="module")
def cls_bundle(cls_export, synthetic_root, tmp_path_factory):
    from edgederm.bundle import make_bundle

    return make_bundle(cls_export, "rpi", out=tmp_path_factory.mktemp("bundles"), n_images=40, data_root=synthetic_root)


@pytest.fixture(scope="module")
def cls_run(cls_bundle, blocker):
    proc = device_bench_run(cls_bundle.folder, blocker, "--threads", "1,2")
    assert proc.returncode == 0, proc.stderr[-2000:]
    return Results.load(cls_bundle.folder / "results.json")


# --- bundle ------------------------------------------------------------------------------
@pytest.mark.tflite
def test_bundle_holds_exactly_what_the_target_needs(cls_bundle, cls_export, synthetic_root):
    from edgederm.data import load_dataset

    folder = cls_bundle.folder
    assert sorted(p.name for p in folder.iterdir()) == ["README.md", "device_bench", "eval", "manifest.json",
                                                        "model.onnx", "model_fp16.tflite", "model_fp32.tflite"]
    assert sorted(p.name for p in (folder / "eval").iterdir()) == ["images.npz", "labels.json"]
    manifest = json.loads((folder / "manifest.json").read_text())
    source = json.loads((cls_export / "manifest.json").read_text())
    assert [(a["name"], a["sha256"]) for a in manifest["artifacts"]] == \
        [(a["name"], a["sha256"]) for a in source["artifacts"] if a["format"] in ("onnx", "tflite")]
    assert manifest["steps"][-1]["stage"] == "bundle" and manifest["steps"][-1]["target"] == "rpi"
    labels = json.loads((folder / "eval" / "labels.json").read_text())
    test = load_dataset(synthetic_root / "derm7").split("test")
    n = cls_bundle.images  # 40 asked; the synthetic test split is smaller, so all of it
    assert len(labels["ids"]) == len(labels["labels"]) == n == min(40, len(test.samples))
    assert sorted(labels["labels"]) == sorted(test.labels)
    with np.load(folder / "eval" / "images.npz") as z:
        assert z["images"].shape == (n, 48, 64, 3) and z["images"].dtype == np.uint8
    readme = (folder / "README.md").read_text()
    assert "python3 -m device_bench run . --threads 1,4 --out results.json" in readme
    with tarfile.open(cls_bundle.archive) as tar:
        names = tar.getnames()
    assert f"{folder.name}/eval/images.npz" in names and f"{folder.name}/device_bench/cli.py" in names
    assert not any("__pycache__" in n or n.endswith(".safetensors") for n in names)


def test_bundle_refuses_a_target_without_its_format(seg_export, synthetic_root, tmp_path):
    from edgederm.cli import main

    code = main(["bundle", str(seg_export), "--target", "android", "--out", str(tmp_path), "--data", str(synthetic_root)])
    assert code == 2 and not any(tmp_path.iterdir())


# --- device run (no torch, tensorflow, edgederm or scikit-learn) -------------------------
@pytest.mark.tflite
def test_device_run_without_torch_matches_edgederm(cls_run, cls_bundle, cls_export, tiny_classifier, synthetic_root):
    from edgederm.checkpoint import load_checkpoint
    from edgederm.data import load_dataset
    from edgederm.data.arrays import load_arrays
    from edgederm.manifest import Manifest
    from edgederm.metrics import classification_metrics
    from edgederm.tensors import softmax
    from edgederm.verify import artifact_input, reference_outputs

    res = cls_run
    env = next(iter(res.environments.values()))
    assert res.source == "device_bench" and env["device_bench_path"].startswith(str(cls_bundle.folder))
    ok = [r for r in res.rows if r["status"] == "ok"]
    assert {(r["artifact"], r["threads"]) for r in ok} == {(a, t) for a in ("onnx_fp32", "tflite_fp32", "tflite_fp16")
                                                            for t in (1, 2)}
    # The same 40 test images, decoded by edgederm, are the bundled ones.
    manifest = Manifest.load(cls_export)
    ds = load_dataset(synthetic_root / "derm7").split("test").subset(40, seed=0)
    arrays = load_arrays(ds, manifest.preprocessing)
    with np.load(cls_bundle.folder / "eval" / "images.npz") as z:
        np.testing.assert_array_equal(z["images"], arrays.images)
    from device_bench.runners import open_runner, run_batched

    onnx = next(r for r in ok if r["artifact"] == "onnx_fp32" and r["threads"] == 1)
    assert onnx["per_image"]["ids"] == list(arrays.ids)
    probs = softmax(run_batched(open_runner(cls_export / "model.onnx", "onnx"),
                                artifact_input(manifest.artifact("onnx_fp32"), arrays.images, manifest)))
    expected = classification_metrics(arrays.targets, probs, manifest.classes, n_boot=50)
    for name in ("accuracy", "balanced_accuracy", "macro_auroc", "mel_sensitivity_at_spec80"):
        for f in ("value", "low", "high"):
            assert onnx["metrics"][name][f] == pytest.approx(getattr(expected[name], f), abs=1e-9), (name, f)
    np.testing.assert_allclose(onnx["per_image"]["probs"], probs, atol=1e-6)
    # ... and the device's ONNX predictions are the PyTorch original's.
    model = load_checkpoint(tiny_classifier)[0]
    torch_pred = reference_outputs(model, arrays.images, manifest).argmax(1)
    assert np.mean(torch_pred == np.asarray(onnx["per_image"]["probs"]).argmax(1)) == 1.0
    for r in ok:
        assert r["latency"]["runs"] == 5 and r["latency"]["median_ms"] > 0 and r["device"] in res.environments
        assert r["placement"]["total_ops"] > 0
    tfl = next(r for r in ok if r["artifact"] == "tflite_fp32")
    assert tfl["provider"] == "XNNPACK" and tfl["placement"]["accelerated_ops"] > 0


@pytest.mark.tflite
def test_sha256_mismatch_is_not_run(cls_bundle, blocker, tmp_path):
    import shutil

    copy = tmp_path / "b"
    shutil.copytree(cls_bundle.folder, copy)
    data = bytearray((copy / "model.onnx").read_bytes())
    data[-10] ^= 0xFF
    (copy / "model.onnx").write_bytes(bytes(data))
    proc = device_bench_run(copy, blocker, "--threads", "1", "--runtime", "onnxruntime,litert", "--no-placement")
    assert proc.returncode == 1
    assert "onnx_fp32" in proc.stderr and "sha256" in proc.stderr
    rows = Results.load(copy / "results.json").rows
    bad = [r for r in rows if r["artifact"] == "onnx_fp32"]
    assert len(bad) == 1 and bad[0]["status"] == "failed" and "copy the bundle again" in bad[0]["reason"]
    assert all(r["status"] == "ok" for r in rows if r["format"] == "tflite")


@pytest.mark.tflite
def test_bundle_refuses_a_changed_export(cls_export, synthetic_root, tmp_path):
    import shutil

    from edgederm.cli import main

    copy = tmp_path / "exp"
    shutil.copytree(cls_export, copy)
    (copy / "model_fp16.tflite").write_bytes(b"not the model")
    assert main(["bundle", str(copy), "--target", "android", "--out", str(tmp_path / "o"),
                 "--data", str(synthetic_root)]) == 2


def test_device_bench_cli_errors(tmp_path, blocker):
    env = {**os.environ, "PYTHONPATH": str(blocker)}
    proc = subprocess.run([sys.executable, "-m", "device_bench", "run", str(tmp_path)], env=env,
                          capture_output=True, text=True, cwd=Path(__file__).parent.parent)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "not a bundle" in proc.stderr


# --- segmenter on a "Jetson": ORT CPU + TensorRT through a replaying trtexec; then merge --------
@pytest.mark.tflite
def test_segmenter_jetson_bundle_trtexec_and_merge(seg_export, synthetic_root, blocker, fake_trtexec, cls_run,
                                                   tmp_path):
    from edgederm.bundle import make_bundle
    from edgederm.cli import main
    from edgederm.manifest import Manifest
    from edgederm.metrics import per_image_overlap

    b = make_bundle(seg_export, "jetson", out=tmp_path, n_images=12, data_root=synthetic_root)
    assert sorted(p.name for p in b.folder.iterdir()) == ["README.md", "device_bench", "eval", "manifest.json",
                                                          "model.onnx"]
    proc = device_bench_run(b.folder, blocker, "--threads", "1", "--device", "jetson-a", path_prefix=fake_trtexec)
    assert proc.returncode == 0, proc.stderr[-2000:]
    res = Results.load(b.folder / "results.json")
    ort = next(r for r in res.rows if r["runtime"].startswith("onnxruntime"))
    trt = {r["artifact"]: r for r in res.rows if r["format"] == "tensorrt"}
    assert set(trt) == {"trt_fp16", "trt_int8"} and all(r["status"] == "ok" for r in trt.values())
    assert trt["trt_fp16"]["latency"]["median_ms"] == pytest.approx(1.22412)
    assert trt["trt_int8"]["precision"] == "int8" and any("latency only" in n for n in trt["trt_int8"]["notes"])
    assert Path(trt["trt_fp16"]["log"]).exists()
    # Dice on the device equals edgederm's on the same images and masks.
    with np.load(b.folder / "eval" / "images.npz") as z:
        images, masks = z["images"], z["masks"]
    manifest = Manifest.load(seg_export)
    from device_bench.runners import open_runner, run_batched
    from edgederm.verify import artifact_input

    logits = run_batched(open_runner(seg_export / "model.onnx", "onnx"),
                         artifact_input(manifest.artifact("onnx_fp32"), images, manifest))
    dice, jac = per_image_overlap(logits[:, 0] > 0, masks)
    np.testing.assert_allclose(ort["per_image"]["dice"], dice)
    assert ort["metrics"]["dice"]["value"] == pytest.approx(dice.mean(), abs=1e-12)
    assert ort["metrics"]["thresholded_jaccard"]["value"] == pytest.approx(np.where(jac < 0.65, 0, jac).mean())

    # A second "device" measured the same bundle; merge keys environments by device.
    proc = device_bench_run(b.folder, blocker, "--threads", "1", "--runtime", "onnxruntime", "--device", "rpi-b",
                            "--out", str(tmp_path / "rpi.json"), "--no-placement")
    assert proc.returncode == 0, proc.stderr[-2000:]
    merged = tmp_path / "merged.json"
    assert main(["results", "merge", str(b.folder / "results.json"), str(tmp_path / "rpi.json"), "--out", str(merged)]) == 0
    m = Results.load(merged)
    assert set(m.environments) == {"jetson-a", "rpi-b"} and {r["device"] for r in m.rows} == {"jetson-a", "rpi-b"}
    assert len(m.rows) == len(res.rows) + 1 and m.data["ids_sha256"] == res.data["ids_sha256"]
    from edgederm.report import device_columns, render

    page = render(m, tmp_path / "report")["report.html"].read_text()
    assert len(device_columns(m)[0]) == 2 and "Devices (median ms per image)" in page and "trt_fp16" in page
    # A classifier's results are another model: refused.
    assert main(["results", "merge", str(merged), str(cls_run_path(cls_run)), "--out", str(tmp_path / "x.json")]) == 2


def cls_run_path(results: Results) -> Path:
    return Path(next(iter(results.environments.values()))["device_bench_path"]).parent / "results.json"


def test_merge_rejects_other_images_and_renames_clashing_devices(tmp_path):
    from device_bench.results import ResultsError, merge

    def res(ids_sha, facts):
        r = Results(environments={"pi/raspberrypi": facts}, model={"name": "m", "task": "classification"},
                    data={"images": 3, "ids_sha256": ids_sha}, source="device_bench")
        r.add({"artifact": "a", "format": "tflite", "precision": "fp32", "status": "ok", "device": "pi/raspberrypi"})
        return r

    with pytest.raises(ResultsError, match="ids_sha256"):
        merge([("a.json", res("x", {"cpu": 1})), ("b.json", res("y", {"cpu": 1}))])
    m = merge([("a.json", res("x", {"cpu": 1})), ("b.json", res("x", {"cpu": 2}))])
    assert set(m.environments) == {"pi/raspberrypi", "pi/raspberrypi#2"}
    assert [r["device"] for r in m.rows] == ["pi/raspberrypi", "pi/raspberrypi#2"]


# --- Android over a fake adb ---------------------------------------------------------------
FAKE_ADB = """import os, shutil, sys
log = os.environ["FAKE_ADB_LOG"]
open(log, "a").write(" ".join(sys.argv[1:]) + "\\n")
args = sys.argv[1:]
if args[:1] == ["-s"]:
    args = args[2:]
if args[0] == "devices":
    print("List of devices attached")
    if not os.environ.get("FAKE_ADB_NONE"):
        print("FAKE123\\tdevice")
elif args[0] == "shell" and args[1].startswith("getprop"):
    print({"ro.product.manufacturer": "Google", "ro.product.model": "Pixel 8"}.get(args[1].split()[1], ""))
elif args[0] == "pull":
    name = "benchmark_model_gpu_partial.txt" if "_gpu_" in args[1] else "benchmark_model_xnnpack.txt"
    if "_nnapi_" in args[1]:
        open(args[2], "w").write("ERROR: NNAPI delegate is not supported on this device\\nBenchmarking failed.\\n")
    else:
        shutil.copyfile(os.path.join(os.environ["FAKE_ADB_FIXTURES"], name), args[2])
"""


@pytest.mark.tflite
def test_android_over_fake_adb(cls_bundle, tmp_path, monkeypatch):
    from edgederm.cli import main

    bindir = tmp_path / "bin"
    bindir.mkdir()
    _write_exe(bindir / "adb", FAKE_ADB)
    log = tmp_path / "adb.log"
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_ADB_LOG", str(log))
    monkeypatch.setenv("FAKE_ADB_FIXTURES", str(FIXTURES))
    monkeypatch.delenv("ADB", raising=False)
    bm = tmp_path / "benchmark_model"
    bm.write_bytes(b"\x7fELF")
    out = tmp_path / "android.json"
    code = main(["device", "android", str(cls_bundle.folder), "--benchmark-model", str(bm),
                 "--delegate", "xnnpack,gpu,nnapi", "--threads", "4", "--out", str(out)])
    assert code == 1  # the nnapi run failed, and says so
    rows = Results.load(out).rows
    by = {(r["artifact"], r.get("requested_delegate") or r["provider"]): r for r in rows}
    x = by[("tflite_fp16", "xnnpack")]
    assert x["status"] == "ok" and x["latency"]["median_ms"] == pytest.approx(7.987)
    assert x["placement"]["fully_delegated"] is True and x["device"] == "Google Pixel 8/FAKE123"
    g = by[("tflite_fp32", "gpu")]
    assert g["latency"]["median_ms"] is None and g["latency"]["mean_ms"] == pytest.approx(12.9883)
    assert g["placement"] == {"delegate": "GPU", "fully_delegated": False, "partitions": 3}
    n = by[("tflite_fp32", "nnapi")]
    assert n["status"] == "failed" and "NNAPI delegate is not supported" in n["reason"]
    calls = log.read_text()
    assert "push" in calls and "model_fp16.tflite /data/local/tmp/edgederm/model_fp16.tflite" in calls
    assert "--use_gpu=true" in calls and "--num_threads=4" in calls and "-s FAKE123" in calls
    monkeypatch.setenv("FAKE_ADB_NONE", "1")
    assert main(["device", "android", str(cls_bundle.folder), "--benchmark-model", str(bm)]) == 2


# --- parsers -----------------------------------------------------------------------------
def test_trtexec_parser_reads_fixtures():
    p = trtexec.parse((FIXTURES / "trtexec_fp16_orin.log").read_text())
    assert p["precision"] == "fp16" and p["version"] == "10.3.0" and p["device"] == "Orin"
    assert p["latency"] == {"median_ms": 1.22412, "p90_ms": 1.25781, "min_ms": 1.18408, "mean_ms": 1.23047,
                            "max_ms": 2.51294, "p99_ms": 1.41333}
    assert p["throughput_qps"] == 811.752 and p["gpu_compute"]["median_ms"] == 1.09692
    row = trtexec.to_row(p, "trt_fp16", device="orin")
    assert row["status"] == "ok" and row["throughput"]["images_per_s"] == 811.752
    q = trtexec.parse((FIXTURES / "trtexec_int8_trt86.log").read_text())
    assert q["precision"] == "int8" and q["version"] == "8.6.1" and q["latency"]["p90_ms"] == 0.812012


@pytest.mark.parametrize("cut", ["=== Performance summary ===", "percentile(90%) = 1.25781", "GPU Compute Time",
                                 "&&&& PASSED", "Throughput: 811"])
def test_trtexec_parser_rejects_truncated_output(cut):
    text = (FIXTURES / "trtexec_fp16_orin.log").read_text()
    with pytest.raises(ParseError, match="trtexec|truncated|cut short"):
        trtexec.parse(text[:text.index(cut)])


def test_trtexec_parser_reports_failure():
    with pytest.raises(ParseError, match="trtexec failed: Engine set up failed"):
        trtexec.parse((FIXTURES / "trtexec_failed.log").read_text())
    with pytest.raises(ParseError, match="empty"):
        trtexec.parse("")


def test_benchmark_model_parser_reads_fixtures():
    p = benchmark_model.parse((FIXTURES / "benchmark_model_xnnpack.txt").read_text())
    assert p["threads"] == 4 and p["delegate"] == "XNNPACK" and p["fully_delegated"] is True
    assert p["latency"]["median_ms"] == pytest.approx(7.987) and p["latency"]["runs"] == 124  # the timed run, not warm-up
    assert p["latency"]["mean_ms"] == pytest.approx(8.0542) and p["latency"]["p90_ms"] is None
    assert p["throughput_ips"] == pytest.approx(1e6 / 8054.2) and p["init_ms"] == pytest.approx(48.114)
    q = benchmark_model.parse((FIXTURES / "benchmark_model_gpu_partial.txt").read_text())
    assert (q["delegate"], q["fully_delegated"], q["delegate_kernels"]) == ("GPU", False, 3)
    assert q["latency"]["median_ms"] is None and q["latency"]["min_ms"] == pytest.approx(12.391)
    row = benchmark_model.to_row(q, "tflite_fp32", "fp32")
    assert any("no median" in n for n in row["notes"])


@pytest.mark.parametrize("cut", ["INFO: Inference timings in us", "Inference (avg): 8054", "INFO: count=61",
                                 "Warmup (avg)"])
def test_benchmark_model_parser_rejects_truncated_output(cut):
    text = (FIXTURES / "benchmark_model_xnnpack.txt").read_text()
    with pytest.raises(ParseError):
        benchmark_model.parse(text[:text.index(cut)])


def test_benchmark_model_parser_names_the_error():
    with pytest.raises(ParseError, match="Failed to apply GPU delegate"):
        benchmark_model.parse("INFO: Use gpu: [1]\nERROR: Failed to apply GPU delegate.\nBenchmarking failed.\n")


def test_device_bench_parse_cli(tmp_path):
    from device_bench.cli import main

    out = tmp_path / "r.json"
    assert main(["parse", "trtexec", str(FIXTURES / "trtexec_fp16_orin.log"), "--artifact", "trt_fp16",
                 "--device", "orin", "--out", str(out)]) == 0
    assert Results.load(out).rows[0]["latency"]["median_ms"] == 1.22412
    bad = tmp_path / "cut.log"
    bad.write_text((FIXTURES / "trtexec_fp16_orin.log").read_text()[:3000])
    assert main(["parse", "trtexec", str(bad), "--artifact", "x"]) == 2


# --- numpy metrics agree with edgederm's (scikit-learn) ------------------------------------------
def test_numpy_metrics_equal_sklearn_based_ones():
    from edgederm import metrics as em

    classes = ["akiec", "bcc", "bkl", "df", "mel", "nv", "vasc"]
    rng = np.random.default_rng(3)
    for trial in range(40):
        n = int(rng.integers(8, 90))
        y = rng.integers(0, 7 if trial % 3 else 3, n)
        prob = rng.random((n, 7))
        if trial % 2:
            prob = np.round(prob, 1)  # ties
        prob /= prob.sum(1, keepdims=True)
        assert dm.balanced_accuracy(y, prob.argmax(1)) == pytest.approx(em.balanced_accuracy(y, prob.argmax(1)), abs=1e-12)
        assert dm.macro_auroc(y, prob) == pytest.approx(em.macro_auroc(y, prob), abs=1e-12, nan_ok=True)
        assert dm.sensitivity_at_specificity(y == 4, prob[:, 4]) == pytest.approx(
            em.sensitivity_at_specificity(y == 4, prob[:, 4]), abs=1e-12, nan_ok=True)
    got = dm.classification_metrics(y, prob, classes, n_boot=100)
    want = em.classification_metrics(y, prob, classes, n_boot=100)
    for k, v in got.items():
        assert v == pytest.approx(want[k].to_dict(), abs=1e-12, nan_ok=True), k
    masks_p, masks_t = rng.random((6, 8, 8)) > 0.5, rng.random((6, 8, 8)) > 0.6
    masks_p[0] = masks_t[0] = False  # two empty masks agree fully
    d, j = dm.per_image_overlap(masks_p, masks_t)
    assert d[0] == 1.0
    got = dm.segmentation_scores(d, j, n_boot=100)
    want = em.segmentation_scores(*em.per_image_overlap(masks_p, masks_t), n_boot=100)
    assert all(got[k] == pytest.approx(want[k].to_dict(), abs=1e-12) for k in got)


def test_environment_facts():
    from device_bench import environment

    facts = environment.collect()
    assert facts["python"] and facts["machine"] and "numpy" in facts
    assert environment.device_key({"board_model": "Raspberry Pi 5 Model B Rev 1.0", "hostname": "raspberrypi"}) == \
        "Raspberry Pi 5 Model B/raspberrypi"


@pytest.mark.tflite
def test_host_bench_and_device_run_merge_into_one_report(cls_run, cls_export, synthetic_root, tmp_path):
    """bundle -> device run -> results merge -> report: the device gets its own column, and the host's
    `edgederm bench` on the same images agrees with the device on every metric within the CI."""
    from device_bench.results import merge
    from edgederm.bench import BenchConfig, bench
    from edgederm.report import device_columns, render

    host = bench(cls_export, BenchConfig(images=40, threads=(1,), runs=3, warmup=1, n_boot=50, peers=False, peak=False,
                                         throughput_batch=0), synthetic_root)
    assert host.data["ids_sha256"] == cls_run.data["ids_sha256"]
    merged = merge([("host", host), ("device", cls_run)])
    devices, table = device_columns(merged)
    assert len(devices) == 2
    row = next(r for r in table if r["artifact"] == "onnx_fp32" and r["threads"] == 1)
    assert sum(k.startswith("ms · ") for k in row) == 2
    h = next(r for r in host.rows if r["artifact"] == "onnx_fp32")["metrics"]["balanced_accuracy"]
    d = next(r for r in cls_run.rows if r["artifact"] == "onnx_fp32" and r["status"] == "ok")["metrics"]["balanced_accuracy"]
    assert d["low"] <= h["value"] <= d["high"]
    page = render(merged, tmp_path)["report.html"].read_text()
    assert "Devices (median ms per image)" in page
