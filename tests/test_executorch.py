"""ExecuTorch as a target: the torch2executorch route, the device_bench runner, the int8:executorch scheme."""

from __future__ import annotations

import shutil
import sys

import numpy as np
import pytest

from edgederm.manifest import Manifest
from edgederm.verify import Gate

pytest.importorskip("executorch", reason="executorch is not installed (requirements.txt pins it)")

LOOSE = {"int8": Gate(min_top1_agreement=0.5, min_mask_dice=0.5)}  # a dozen synthetic images: noise


@pytest.fixture(scope="module")
def et_export(tiny_classifier, synthetic_root, tmp_path_factory):
    from edgederm.export import export

    folder = tmp_path_factory.mktemp("et_cls") / "export"
    outcome = export(tiny_classifier, folder, formats=["executorch"], data_root=synthetic_root, n_verify=32)
    assert not outcome.failures, outcome.failures
    return folder


def test_export_writes_a_verified_pte_with_delegation(et_export, tiny_classifier):
    from device_bench.integrity import sha256_path

    m = Manifest.load(et_export)
    assert [a.name for a in m.artifacts] == ["executorch_fp32"]
    a = m.artifact("executorch_fp32")
    assert a.path == "model_fp32.pte" and a.format == "executorch" and a.precision == "fp32"
    assert a.sha256 == sha256_path(et_export / a.path) and a.size_bytes > 10_000
    assert a.inputs[0].shape == [1, 3, 48, 64] and a.inputs[0].layout == "NCHW"
    assert a.outputs[0].name == "logits" and a.outputs[0].shape == [1, len(m.classes)]
    assert a.verify["status"] == "pass", a.verify
    f = a.verify["figures"]
    assert f["max_abs_prob"] < 1e-4 and f["top1_agreement"] == 1.0 and f["runtime"].startswith("executorch")
    d = a.delegation
    assert d["backend"] == "XnnpackBackend" and d["delegated_nodes"] > 20 and d["delegated_subgraphs"] >= 1
    assert 0 < d["coverage"] <= 1 and sum(d["portable_ops"].values()) == d["portable_nodes"]
    assert "executorch" in a.tool_versions and not list(et_export.glob(".partial-*"))
    # the manifest on disk carries the delegation record too
    import json

    on_disk = json.loads((et_export / "manifest.json").read_text())["artifacts"][0]
    assert on_disk["delegation"]["delegated_nodes"] == d["delegated_nodes"]


@pytest.mark.coreml
def test_coreml_delegate_pte_is_written_with_coverage_and_skipped_here(tiny_classifier, synthetic_root, tmp_path):
    """Core ML lowering runs on Linux (coremltools compiles the delegate); only Apple's ExecuTorch runtime has the
    backend, so verification is skipped with that reason, not failed."""
    pytest.importorskip("coremltools")
    from device_bench.runners.executorch_runner import COREML_ONLY_ON_APPLE
    from edgederm.export import export

    if sys.platform == "darwin":
        pytest.skip("on macOS the Core ML delegate may run: the skip is the Linux behaviour")
    folder = tmp_path / "export"
    outcome = export(tiny_classifier, folder, formats=["executorch_coreml"], data_root=synthetic_root, n_verify=8)
    assert not outcome.failures, outcome.failures
    a = Manifest.load(folder).artifact("executorch_coreml_fp16")
    assert a.path == "model_coreml_fp16.pte" and a.format == "executorch_coreml" and a.precision == "fp16"
    assert (folder / a.path).stat().st_size > 1_000 and "coremltools" in a.tool_versions
    d = a.delegation
    assert d["backend"] == "CoreMLBackend" and d["delegated_nodes"] > 0 and d["delegated_subgraphs"] >= 1
    assert 0 < d["coverage"] <= 1 and sum(d["portable_ops"].values()) == d["portable_nodes"]
    assert a.verify["status"] == "skipped" and COREML_ONLY_ON_APPLE in a.verify["reason"], a.verify


def test_runner_matches_pytorch_and_checks_shape(et_export, tiny_classifier):
    import torch

    from device_bench.runners import open_runner
    from edgederm.checkpoint import load_checkpoint

    model, _ = load_checkpoint(tiny_classifier)
    x = np.random.default_rng(0).standard_normal((1, 3, 48, 64)).astype(np.float32)
    runner = open_runner(et_export / "model_fp32.pte", "executorch", threads=1)
    assert runner.input_shape == [1, 3, 48, 64] and runner.delegate == "XNNPACK"
    with torch.no_grad():
        ref = model.eval()(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(runner(x), ref, atol=1e-4, rtol=1e-4)
    with pytest.raises(ValueError, match="static shapes"):
        runner(np.zeros((2, 3, 48, 64), np.float32))


def test_runner_unavailable_reasons(tmp_path, monkeypatch):
    import sys

    from device_bench.runners import RunnerUnavailable, open_runner

    bad = tmp_path / "broken.pte"
    bad.write_bytes(b"not a program" * 10)
    with pytest.raises(RunnerUnavailable, match="ExecuTorch cannot load"):
        open_runner(bad, "executorch")
    monkeypatch.setitem(sys.modules, "executorch.runtime", None)  # as on a device without the wheel
    with pytest.raises(RunnerUnavailable, match="executorch is not installed"):
        open_runner(bad, "executorch")


def test_int8_scheme_quantizes_with_the_shared_calibration(et_export, synthetic_root, tmp_path):
    from quantization import SCHEMES, quantize

    folder = tmp_path / "export"
    shutil.copytree(et_export, folder)
    assert SCHEMES.get("int8:executorch").artifact == "executorch_int8"
    outcome = quantize(folder, "int8", ["executorch"], data_root=synthetic_root, gates=LOOSE, n_verify=32)
    assert not outcome.failures and outcome.produced == ["executorch_int8"]
    m = Manifest.load(folder)
    a, fp32 = m.artifact("executorch_int8"), m.artifact("executorch_fp32")
    assert a.path == "model_int8.pte" and a.precision == "int8" and a.verify["status"] in ("pass", "fail")
    assert a.size_bytes < 0.5 * fp32.size_bytes  # int8 weights
    assert any("calibrated on" in n for n in a.notes) and "per-channel" in a.converter
    assert a.delegation["delegated_nodes"] > 0
    f = a.verify["figures"]
    assert f["top1_agreement"] >= 0.5 and f["logit_cosine_mean"] > 0.9, f


def _relu6_net(x):
    """conv+BN+ReLU6 with depthwise blocks, BN statistics from ``x``, wide pre-activation tails (as trained nets)."""
    import torch
    from torch import nn

    torch.manual_seed(0)

    def block(cin, cout, groups=1):
        bn = nn.BatchNorm2d(cout, momentum=None)
        with torch.no_grad():
            bn.weight.uniform_(1.0, 4.0)
            bn.bias.uniform_(-3.0, 1.0)
        return [nn.Conv2d(cin, cout, 3, padding=1, groups=groups, bias=False), bn, nn.ReLU6()]

    model = nn.Sequential(*block(3, 16), *block(16, 16, groups=16), *block(16, 32), *block(32, 32, groups=32),
                          *block(32, 32), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 7))
    with torch.no_grad():
        model.train()(x)
    return model.eval()


def test_int8_fuses_relu6_into_conv_and_keeps_its_precision(tmp_path):
    """The stock XNNPACKQuantizer quantizes a conv's output *before* ReLU6 (logits SQNR ~24 dB on this net,
    ~13 pt balanced accuracy lost on EfficientNet-Lite0); fused, the range is taken after the clamp (~35 dB)."""
    import types

    import torch

    from converters.torch2executorch import lower
    from device_bench.runners import open_runner
    from quantization.executorch import ExecuTorchInt8Config, quantize_model

    x = torch.randn(40, 3, 24, 32, generator=torch.Generator().manual_seed(1))
    model = _relu6_net(x)
    program = quantize_model(model, x[:24], ExecuTorchInt8Config(), "relu6_net")
    graph = program.graph_module.graph
    clamps = [n for n in graph.nodes if n.op == "call_function" and "hardtanh" in str(n.target)]
    assert len(clamps) == 5 and all("conv" in str(n.args[0].target) for n in clamps)  # no q/dq between
    with torch.no_grad():
        ref = torch.cat([model(x[i:i + 1]) for i in range(24, 40)])
        q = torch.cat([program.module()(x[i:i + 1]) for i in range(24, 40)])
    sqnr = 10 * torch.log10(ref.pow(2).sum() / (q - ref).pow(2).sum())
    assert sqnr > 30, f"int8 logits SQNR {sqnr:.1f} dB: is ReLU6 still quantized apart from its conv?"
    coverage = lower(program, types.SimpleNamespace(model={"name": "relu6_net"}), tmp_path / "m.pte")
    assert coverage["portable_nodes"] == 0 and coverage["delegated_subgraphs"] == 1, coverage
    pte = open_runner(tmp_path / "m.pte", "executorch", threads=1)(x[24:25].numpy())
    np.testing.assert_allclose(pte, q[:1].numpy(), atol=0.05 * float(ref.abs().max()))


@pytest.mark.slow  # 35 s on a quiet machine (peer exports + 5 candidates x 2 thread counts), 10 min under load
def test_bench_measures_the_pte_and_the_plain_executorch_peers(et_export, synthetic_root, tmp_path):
    from edgederm.bench import BenchConfig, bench
    from edgederm.report import table_rows

    folder = tmp_path / "export"
    shutil.copytree(et_export, folder)
    config = BenchConfig(images=24, threads=(1, 2), runs=3, rounds=2, warmup=1, n_boot=50, peak=False,
                         throughput_batch=1)
    results = bench(folder, config, synthetic_root)
    rows = {(r["artifact"], r.get("threads")): r for r in results.rows}
    for t in (1, 2):
        et = rows[("executorch_fp32", t)]
        assert et["status"] == "ok" and et["runtime"].startswith("executorch") and et["latency"]["runs"] >= 3, et
        assert et["delta"]["balanced_accuracy"]["value"] == pytest.approx(0.0, abs=1e-9)  # same function
        for p in ("fp32", "int8"):
            peer = rows[(f"peer_executorch_{p}", t)]
            assert peer["role"] == "peer" and peer["format"] == "executorch" and peer["status"] == "ok", peer
    assert rows[("peer_executorch_int8", 1)]["size_bytes"] < 0.5 * rows[("peer_executorch_fp32", 1)]["size_bytes"]
    assert any(r["artifact"] == "peer_executorch_int8" for r in table_rows(results))


def test_android_bundle_carries_the_pte_and_device_bench_runs_it(et_export, synthetic_root, tmp_path):
    import subprocess
    import sys

    from device_bench.results import Results
    from edgederm.bundle import make_bundle

    b = make_bundle(et_export, "android", out=tmp_path, n_images=12, data_root=synthetic_root)
    assert (b.folder / "model_fp32.pte").exists() and b.artifacts == ["executorch_fp32"]
    readme = (b.folder / "README.md").read_text()
    assert "ExecuTorch" in readme and "model_fp32.pte" in readme and "benchmark_model" not in readme
    # the ExecuTorch Python runtime needs torch (its wheel depends on it), so no import blocker here
    proc = subprocess.run([sys.executable, "-m", "device_bench", "run", ".", "--runs", "3", "--warmup", "1",
                           "--bootstrap", "20", "--threads", "1"], cwd=b.folder, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = [r for r in Results.load(b.folder / "results.json").rows if r["artifact"] == "executorch_fp32"]
    assert rows and rows[0]["status"] == "ok" and rows[0]["runtime"].startswith("executorch"), rows
    assert rows[0]["latency"]["median_ms"] > 0


def test_android_executorch_kit_encodes_the_manifest(et_export, tmp_path):
    import re

    from edgederm.embed import embed

    m = Manifest.load(et_export)
    kit = embed(et_export, "android-executorch", out=tmp_path / "kit", package="org.example.derm")
    assert kit.artifact == "executorch_fp32"  # no verified int8 in this export
    text = (kit.folder / "EdgeDermModel.kt").read_text()

    def one(pattern):
        found = re.findall(pattern, text)
        assert len(found) == 1, (pattern, found)
        return found[0]

    floats = lambda name: [float(v) for v in one(rf"val {name} = floatArrayOf\(([^)]*)\)").replace("f", "").split(",")]
    pre = m.preprocessing
    assert (int(one(r"const val INPUT_HEIGHT = (\d+)")), int(one(r"const val INPUT_WIDTH = (\d+)"))) == tuple(pre.input_size)
    assert floats("MEAN") == list(pre.mean) and floats("STD") == list(pre.std)
    assert one(r'const val LAYOUT = "(\w+)"') == "NCHW"
    assert int(one(r"const val OUTPUT_ELEMENTS = (\d+)")) == len(m.classes)
    assert re.findall(r'"([^"]*)"', one(r"val LABELS = arrayOf\(([^)]*)\)")) == m.classes
    model_file = one(r'const val MODEL_FILE = "([^"]+)"')
    assert model_file == "model_fp32.pte" and (kit.folder / "assets" / model_file).is_file()
    assert "import org.pytorch.executorch.Module" in text and "Module.load(" in text and "org.tensorflow" not in text
    assert "fun classify(bitmap: Bitmap)" in text and text.splitlines()[4] == "package org.example.derm"
    readme = (kit.folder / "README.md").read_text()
    assert "org.pytorch:executorch-android:" in readme and "{{" not in readme + text
