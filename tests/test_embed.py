"""``edgederm embed``: kits whose generated code encodes exactly the manifest, and a web page that
gives the same probabilities as Python ONNX Runtime in a real headless Chromium.

The code-generation tests read the Kotlin/Swift text back and compare every number with the
manifest; the manifests are the tiny models' real ONNX exports, with TFLite / Core ML entries
described as the converters describe them (the generators read only the manifest; the real
converted files are covered by the slow test at the end).
"""

from __future__ import annotations

import functools
import hashlib
import http.server
import json
import os
import re
import shutil
import subprocess
import threading
from pathlib import Path

import numpy as np
import pytest

from device_bench.integrity import sha256_path
from edgederm import paths
from edgederm.embed import INFO_FILE, ModelInfo, choose_artifact, embed
from edgederm.embed.vendor import ORT_WEB_FILES, PLAYWRIGHT_VERSION, playwright_cache
from edgederm.errors import EdgeDermError
from edgederm.manifest import Artifact, Manifest, TensorSpec

# Install-time downloads (onnxruntime-web, playwright-core) live in the user's cache; conftest swaps
# EDGEDERM_HOME for an empty folder when the session starts, so remember the real one at import.
USER_HOME = paths.home()
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")


# --- fixtures ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def onnx_exports(tiny_classifier, tiny_segmenter, synthetic_root, tmp_path_factory):
    """Real ONNX exports (verified on the synthetic set) of the tiny classifier and segmenter."""
    from edgederm.export import export

    root = tmp_path_factory.mktemp("embed_exports")
    out = {}
    for name, ckpt in (("cls", tiny_classifier), ("seg", tiny_segmenter)):
        export(ckpt, root / name, formats=["onnx"], data_root=synthetic_root, n_verify=32)
        out[name] = root / name
    return out


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _add(folder: Path, m: Manifest, name: str, fmt: str, precision: str, status: str, inputs, outputs, notes=()):
    """A manifest entry shaped as the converter writes it, over a stand-in file (its sha256 recorded)."""
    suffix = {"tflite": ".tflite", "coreml": ".mlpackage", "executorch": ".pte"}[fmt]
    path = folder / f"model_{precision}{suffix}"
    if fmt == "coreml":
        path.mkdir(exist_ok=True)
        (path / "Manifest.json").write_text("{}")
    else:
        path.write_bytes(f"stand-in {name}".encode())
    m.put(Artifact(name=name, path=path.name, format=fmt, precision=precision, inputs=inputs, outputs=outputs,
                   size_bytes=0, sha256=sha256_path(path), notes=list(notes),
                   verify={"status": status, "reason": "" if status != "fail" else "top1 0.5 < 0.99"}))


def with_mobile_entries(src: Path, dst: Path, int8_status: str | None = None, **pre_changes) -> Path:
    """Copy of an export with TFLite fp32/fp16 (+int8) and Core ML entries; optional preprocessing changes."""
    shutil.copytree(src, dst)
    m = Manifest.load(dst)
    if pre_changes:
        m.preprocessing = m.preprocessing.replace(**pre_changes)
    h, w = m.preprocessing.input_size
    classify = m.task == "classification"
    out_nhwc = [1, len(m.classes)] if classify else [1, h, w, 1]
    for p in ("fp32", "fp16"):
        _add(dst, m, f"tflite_{p}", "tflite", p, "pass", [TensorSpec("serving_default_input:0", [1, h, w, 3], "float32", "NHWC")],
             [TensorSpec("PartitionedCall:0", out_nhwc, "float32", "NC" if classify else "NHWC")])
    if int8_status:
        _add(dst, m, "tflite_int8", "tflite", "int8", int8_status,
             [TensorSpec("serving_default_input:0", [1, h, w, 3], "int8", "NHWC", {"scale": 0.0186, "zero_point": -14})],
             [TensorSpec("PartitionedCall:0", out_nhwc, "int8", "NC" if classify else "NHWC", {"scale": 0.0723, "zero_point": 9})])
    outs = ([TensorSpec("classLabel", [1, len(m.classes)], "float32", "NC"),
             TensorSpec("classLabel_probs", [1, len(m.classes)], "dict", "NC")] if classify
            else [TensorSpec("mask_logits", [1, 1, h, w], "float32", "NCHW")])
    _add(dst, m, "coreml_fp16", "coreml", "fp16", "skipped", [TensorSpec("image", [1, h, w, 3], "uint8", "image RGB")], outs)
    onnx = m.artifact("onnx_fp32")  # keep the real ONNX consistent with changed preprocessing
    onnx.inputs[0].shape = [1, 3, h, w]
    m.save(dst)
    return dst


CHANGED = dict(input_size=(40, 72), mean=(0.5, 0.25, 0.125), std=(0.2, 0.3, 0.4), scale=1 / 127.5,
               resize="shorter_side_center_crop", channel_order="BGR")


@pytest.fixture(scope="module")
def exports(onnx_exports, tmp_path_factory):
    root = tmp_path_factory.mktemp("embed_variants")
    return {"cls": with_mobile_entries(onnx_exports["cls"], root / "cls"),
            "seg": with_mobile_entries(onnx_exports["seg"], root / "seg"),
            # numbers no template could know: proves every one comes from the manifest
            "cls_changed": with_mobile_entries(onnx_exports["cls"], root / "cls_changed", **CHANGED),
            "seg_changed": with_mobile_entries(onnx_exports["seg"], root / "seg_changed",
                                               **{k: v for k, v in CHANGED.items() if k != "input_size"})}


# --- reading generated code back ------------------------------------------------------------------
FLOAT = r"(-?[0-9.]+(?:[eE]-?[0-9]+)?)"


def _one(pattern: str, text: str) -> str:
    found = re.findall(pattern, text)
    assert len(found) == 1, f"{pattern!r} found {len(found)} times"
    return found[0]


def kotlin_spec(text: str) -> dict:
    floats = lambda name: [float(v) for v in re.findall(FLOAT + "f", _one(rf"val {name} = floatArrayOf\(([^)]*)\)", text))]
    spec = {"height": int(_one(r"const val INPUT_HEIGHT = (\d+)", text)),
            "width": int(_one(r"const val INPUT_WIDTH = (\d+)", text)),
            "layout": _one(r'const val LAYOUT = "(\w+)"', text), "resize": _one(r'const val RESIZE = "(\w+)"', text),
            "channel_order": _one(r'const val CHANNEL_ORDER = "(\w+)"', text),
            "scale": float(_one(rf"const val SCALE = {FLOAT}f", text)), "mean": floats("MEAN"), "std": floats("STD"),
            "model_file": _one(r'const val MODEL_FILE = "([^"]+)"', text),
            "input_quantized": _one(r"const val INPUT_QUANTIZED = (\w+)", text) == "true",
            "output_elements": int(_one(r"const val OUTPUT_ELEMENTS = (\d+)", text))}
    if "val LABELS = " in text:
        spec["labels"] = re.findall(r'"([^"]*)"', _one(r"val LABELS = arrayOf\(([^)]*)\)", text))
    if "const val THRESHOLD" in text:
        spec["threshold"] = float(_one(rf"const val THRESHOLD = {FLOAT}f", text))
    if spec["input_quantized"]:
        spec["q_scale"] = float(_one(rf"const val INPUT_Q_SCALE = {FLOAT}f", text))
        spec["q_zero"] = int(_one(r"const val INPUT_Q_ZERO_POINT = (-?\d+)", text))
    return spec


def swift_spec(text: str) -> dict:
    floats = lambda name: [float(v) for v in re.findall(FLOAT, _one(rf"static let {name}: \[Float\] = \[([^\]]*)\]", text))]
    spec = {"height": int(_one(r"static let inputHeight = (\d+)", text)),
            "width": int(_one(r"static let inputWidth = (\d+)", text)),
            "resize": _one(r'static let resize = "(\w+)"', text),
            "channel_order": _one(r'static let channelOrder = "(\w+)"', text),
            "layout": _one(r'static let layout = "([^"]+)"', text),
            "scale": float(_one(rf"static let scale: Float = {FLOAT}", text)), "mean": floats("mean"), "std": floats("std"),
            "resource": _one(r'static let modelResource = "([^"]+)"', text)}
    if "cropAndScale" in text:  # Vision (Core ML kit) only
        spec["crop"] = _one(r"static let cropAndScale: VNImageCropAndScaleOption = \.(\w+)", text)
    if "static let outputElements" in text:  # ExecuTorch kit only
        spec["output_elements"] = int(_one(r"static let outputElements = (\d+)", text))
    if "static let temperature" in text:
        spec["temperature"] = float(_one(rf"static let temperature: Float = {FLOAT}", text))
        spec["operating_points"] = [(n, lab, float(v)) for n, lab, v in re.findall(
            rf'\(name: "([^"]*)", label: "([^"]*)", threshold: {FLOAT}\)', _one(r"static let operatingPoints: [^=]+= \[(.*)\]", text))]
    if "static let labels" in text:
        spec["labels"] = re.findall(r'"([^"]*)"', _one(r"static let labels: \[String\] = \[([^\]]*)\]", text))
    if "static let threshold" in text:
        spec["threshold"] = float(_one(rf"static let threshold: Float = {FLOAT}", text))
    return spec


def _no_placeholders(kit: Path):
    for f in kit.rglob("*"):
        if f.is_file() and f.suffix in (".kt", ".swift", ".md", ".html", ".js"):
            assert "{{" not in f.read_text(), f"unfilled placeholder in {f.name}"


VARIANTS = ["cls", "seg", "cls_changed", "seg_changed"]


# --- Android ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("variant", VARIANTS)
def test_android_kotlin_encodes_the_manifest(exports, variant, tmp_path):
    m = Manifest.load(exports[variant])
    kit = embed(exports[variant], "android", out=tmp_path / "kit", package="org.example.derm")
    text = (kit.folder / "EdgeDermModel.kt").read_text()
    spec = kotlin_spec(text)
    pre = m.preprocessing
    art = m.artifact(kit.artifact)
    assert kit.artifact == "tflite_fp16"  # no int8: fp16 beats fp32
    assert (spec["height"], spec["width"]) == tuple(pre.input_size)
    assert spec["mean"] == list(pre.mean) and spec["std"] == list(pre.std) and spec["scale"] == pre.scale
    assert spec["layout"] == art.inputs[0].layout == "NHWC"
    assert spec["resize"] == pre.resize and spec["channel_order"] == pre.channel_order
    assert spec["output_elements"] == int(np.prod(art.outputs[0].shape))
    assert (kit.folder / "assets" / spec["model_file"]).is_file()
    if m.task == "classification":
        assert spec["labels"] == m.classes and "threshold" not in spec
        assert "fun classify(bitmap: Bitmap)" in text
    else:
        assert spec["threshold"] == m.output["threshold"] and "labels" not in spec
        assert "fun segment(bitmap: Bitmap)" in text
    assert text.splitlines()[4] == "package org.example.derm"
    readme = (kit.folder / "README.md").read_text()
    assert 'implementation("com.google.ai.edge.litert:litert:' in readme and "app/src/main/assets" in readme
    _no_placeholders(kit.folder)


def test_android_int8_quantization_numbers_and_choice(onnx_exports, tmp_path):
    passed = with_mobile_entries(onnx_exports["cls"], tmp_path / "pass", int8_status="pass")
    kit = embed(passed, "android", out=tmp_path / "kit")
    assert kit.artifact == "tflite_int8"
    spec = kotlin_spec((kit.folder / "EdgeDermModel.kt").read_text())
    q = Manifest.load(passed).artifact("tflite_int8").inputs[0].quantization
    assert spec["input_quantized"] and spec["q_scale"] == q["scale"] and spec["q_zero"] == q["zero_point"]
    failed = with_mobile_entries(onnx_exports["cls"], tmp_path / "fail", int8_status="fail")
    assert choose_artifact(Manifest.load(failed), "android").name == "tflite_fp16"
    kit = embed(failed, "android", artifact="tflite_int8", out=tmp_path / "forced")  # named: shipped, with a warning
    info = ModelInfo.load(kit.folder / "assets")
    assert info.artifact["verify_status"] == "fail" and "FAILED verification" in info.warnings[0]
    assert "Warning" in (kit.folder / "README.md").read_text()


# --- iOS -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("variant", VARIANTS)
def test_ios_swift_encodes_the_manifest(exports, variant, tmp_path):
    m = Manifest.load(exports[variant])
    kit = embed(exports[variant], "ios", out=tmp_path / "kit")
    text = (kit.folder / "EdgeDermModel.swift").read_text()
    spec = swift_spec(text)
    pre = m.preprocessing
    assert kit.artifact == "coreml_fp16"
    assert (spec["height"], spec["width"]) == tuple(pre.input_size)
    assert spec["mean"] == list(pre.mean) and spec["std"] == list(pre.std) and spec["scale"] == pre.scale
    assert spec["resize"] == pre.resize and spec["channel_order"] == pre.channel_order
    assert spec["crop"] == {"stretch": "scaleFill", "shorter_side_center_crop": "centerCrop"}[pre.resize]
    assert spec["layout"] == "image RGB"
    assert (kit.folder / f"{spec['resource']}.mlpackage").is_dir()
    if m.task == "classification":
        assert spec["labels"] == m.classes and "VNClassificationObservation" in text
    else:
        assert spec["threshold"] == m.output["threshold"] and "VNCoreMLFeatureValueObservation" in text
    assert "VNCoreMLRequest" in text
    _no_placeholders(kit.folder)


# --- iOS, ExecuTorch ------------------------------------------------------------------------------
RULES = {"temperature": 1.7, "operating_points": [{"name": "refer", "class": None, "threshold": 0.23},
                                                  {"name": "unfitted", "class": None, "threshold": None}]}


@pytest.fixture(scope="module")
def et_exports(exports, tmp_path_factory):
    """The mobile exports plus ExecuTorch entries shaped as converters/torch2executorch.py writes them
    (fp32 passed, int8 failed: the kit must ship fp32); classifiers get a temperature and operating points."""
    root = tmp_path_factory.mktemp("embed_et")
    out = {}
    for variant in VARIANTS:
        dst = root / variant
        shutil.copytree(exports[variant], dst)
        m = Manifest.load(dst)
        h, w = m.preprocessing.input_size
        classify = m.task == "classification"
        output = (TensorSpec("logits", [1, len(m.classes)], "float32", "NC") if classify
                  else TensorSpec("mask_logits", [1, 1, h, w], "float32", "NCHW"))
        for precision, status in (("fp32", "pass"), ("int8", "fail")):
            _add(dst, m, f"executorch_{precision}", "executorch", precision, status,
                 [TensorSpec("input", [1, 3, h, w], "float32", "NCHW")], [output])
            m.artifact(f"executorch_{precision}").tool_versions = {"executorch": "1.5.1"}
        if classify:
            points = [{**r, "class": m.classes[-1]} for r in RULES["operating_points"]]
            m.output = {**m.output, "temperature": RULES["temperature"], "operating_points": points}
        m.save(dst)
        out[variant] = dst
    return out


def balanced(swift: str) -> bool:
    """Brackets of Swift source pair up, outside string literals and // comments."""
    code = re.sub(r"//[^\n]*", "", re.sub(r'"(?:\\.|[^"\\\n])*"', '""', swift))
    stack = []
    for ch in code:
        if ch in "([{":
            stack.append(ch)
        elif ch in ")]}":
            if not stack or "([{"[")]}".index(ch)] != stack.pop():
                return False
    return not stack


@pytest.mark.parametrize("variant", VARIANTS)
def test_ios_executorch_swift_encodes_the_manifest(et_exports, variant, tmp_path):
    m = Manifest.load(et_exports[variant])
    kit = embed(et_exports[variant], "ios-executorch", out=tmp_path / "kit")
    assert kit.artifact == "executorch_fp32"  # int8 failed verification: not chosen by default
    art = m.artifact(kit.artifact)
    text = (kit.folder / "EdgeDermModel.swift").read_text()
    spec = swift_spec(text)
    pre = m.preprocessing
    assert balanced(text)
    assert (spec["height"], spec["width"]) == tuple(pre.input_size) and spec["layout"] == "NCHW"
    assert spec["mean"] == list(pre.mean) and spec["std"] == list(pre.std) and spec["scale"] == pre.scale
    assert spec["resize"] == pre.resize and spec["channel_order"] == pre.channel_order and "crop" not in spec
    elements = len(m.classes) if m.task == "classification" else pre.input_size[0] * pre.input_size[1]
    assert spec["output_elements"] == elements
    pte = kit.folder / f"{spec['resource']}.pte"
    assert pte.name == "model_fp32.pte" and _sha(pte) == art.sha256  # byte-identical to the export
    assert (kit.folder / "labels.txt").read_text().splitlines() == m.classes
    # the ExecuTorch Swift API as its docs write it; nothing of Core ML / Vision
    for call in ("import ExecuTorch", "Module(filePath: path)", 'try module.load("forward")',
                 "Tensor<Float>(x, shape: [1, 3, EdgeDermSpec.inputHeight, EdgeDermSpec.inputWidth])",
                 "try Tensor<Float>(module.forward(input))", ".scalars()"):
        assert call in text, call
    assert "import Vision" not in text and "import CoreML" not in text
    if m.task == "classification":
        assert spec["labels"] == m.classes and "func classify(_ image: CGImage) throws -> Prediction" in text
        assert spec["temperature"] == RULES["temperature"]
        assert spec["operating_points"] == [("refer", m.classes[-1], 0.23)]  # the unfitted rule is left out
        assert "labels.txt differs from EdgeDermSpec.labels" in text
    else:
        assert spec["threshold"] == m.output["threshold"] and "func segment(_ image: CGImage) throws -> Mask" in text
    readme = (kit.folder / "README.md").read_text()
    for fact in ("https://github.com/pytorch/executorch", "`executorch`", "`backend_xnnpack`", "`kernels_optimized`",
                 "-all_load", "executorch 1.5.1", 'branch: "swiftpm-1.5.1"', "model_fp32.pte"):
        assert fact in readme, fact
    assert balanced(readme.split("```swift")[1].split("```")[0])  # the Package.swift excerpt
    _no_placeholders(kit.folder)


def test_ios_executorch_kit_choice_and_errors(et_exports, exports, tmp_path):
    from edgederm.embed.ios_executorch import SWIFTPM_FALLBACK, swiftpm_branch

    assert swiftpm_branch("1.0.1+cpu") == "swiftpm-1.0.1" and swiftpm_branch("?") == SWIFTPM_FALLBACK
    m = Manifest.load(et_exports["cls"])
    assert choose_artifact(m, "ios-executorch").name == "executorch_fp32"
    m.artifact("executorch_int8").verify = {"status": "pass"}
    assert choose_artifact(m, "ios-executorch").name == "executorch_int8"  # verified int8 is preferred
    forced = embed(et_exports["cls"], "ios-executorch", artifact="executorch_int8", out=tmp_path / "forced")
    assert "FAILED verification" in (forced.folder / "README.md").read_text()
    msg = _one_line_error(lambda: embed(exports["cls"], "ios-executorch", out=tmp_path / "a"))
    assert "no executorch artifact for --platform ios-executorch" in msg and "--to executorch" in msg
    assert "needs a executorch artifact" in _one_line_error(
        lambda: embed(et_exports["cls"], "ios-executorch", artifact="coreml_fp16", out=tmp_path / "b"))


# --- labels, sidecar -------------------------------------------------------------------------------
@pytest.mark.parametrize("platform,data_dir", [("android", "assets"), ("ios", "."), ("web", ".")])
def test_labels_and_sidecar_round_trip(exports, platform, data_dir, tmp_path, monkeypatch, fake_ort_web):
    monkeypatch.setenv("EDGEDERM_ORT_WEB", str(fake_ort_web))
    m = Manifest.load(exports["cls_changed"])
    kit = embed(exports["cls_changed"], platform, out=tmp_path / "kit")
    data = kit.folder / data_dir
    assert (data / "labels.txt").read_text().splitlines() == m.classes
    raw = json.loads((data / INFO_FILE).read_text())
    info = ModelInfo.load(data)
    assert info.to_dict() == raw and ModelInfo.from_dict(raw).to_dict() == raw
    art = m.artifact(kit.artifact)
    assert info.preprocessor == m.preprocessing  # every preprocessing field survives
    assert info.input["shape"] == art.inputs[0].shape and info.input["layout"] == art.inputs[0].layout
    assert info.artifact["sha256"] == art.sha256 and info.model["classes"] == m.classes
    assert info.output["activation"] == "softmax" and "not a diagnosis" in info.notice
    assert info.preprocessing["normalization"] == ("inside_model" if platform == "ios" else "in_app")
    assert Manifest.load(kit.folder).to_dict() == m.to_dict()


# --- bad input -------------------------------------------------------------------------------------
@pytest.fixture
def fake_ort_web(tmp_path):
    """A folder shaped like onnxruntime-web's dist/ (the page is not run with it)."""
    d = tmp_path / "ortweb"
    d.mkdir()
    for f in ORT_WEB_FILES:
        (d / f).write_text("// stand-in")
    return d


def _one_line_error(fn) -> str:
    with pytest.raises(EdgeDermError) as e:
        fn()
    assert "\n" not in str(e.value)
    return str(e.value)


def test_bad_inputs_give_one_line_errors(onnx_exports, exports, tmp_path, monkeypatch):
    cls = onnx_exports["cls"]
    assert "unknown embed platform 'andriod'; did you mean 'android'?" in _one_line_error(
        lambda: embed(cls, "andriod", out=tmp_path / "a"))
    msg = _one_line_error(lambda: embed(cls, "android", out=tmp_path / "b"))  # ONNX-only export
    assert "no tflite artifact for --platform android" in msg and "--to tflite" in msg
    assert "--to coreml" in _one_line_error(lambda: embed(cls, "ios", out=tmp_path / "c"))
    assert "needs a tflite artifact" in _one_line_error(lambda: embed(exports["cls"], "android", artifact="onnx_fp32",
                                                                      out=tmp_path / "d"))
    assert "no manifest" in _one_line_error(lambda: embed(tmp_path, "web", out=tmp_path / "e"))
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "notes.txt").write_text("mine")
    assert "is not an EdgeDerm kit" in _one_line_error(lambda: embed(exports["cls"], "android", out=tmp_path / "taken"))
    assert (tmp_path / "taken" / "notes.txt").read_text() == "mine"
    monkeypatch.delenv("EDGEDERM_ORT_WEB", raising=False)
    msg = _one_line_error(lambda: embed(cls, "web", out=tmp_path / "f"))  # the test home has no vendor folder
    assert "onnxruntime-web" in msg and "python -m edgederm.embed.vendor" in msg and "--ort-web" in msg
    assert "--ort-web" in _one_line_error(lambda: embed(cls, "web", out=tmp_path / "g", ort_web=tmp_path))
    edited = tmp_path / "edited"
    shutil.copytree(cls, edited)
    with open(edited / "model.onnx", "ab") as f:
        f.write(b"\0")
    assert "the manifest says" in _one_line_error(lambda: embed(edited, "web", out=tmp_path / "h"))  # sha256 differs
    assert not any(p.name.startswith(".") for p in tmp_path.iterdir())  # no partial kits left behind


def test_cli_embed_exit_codes(exports, tmp_path, capsys):
    from edgederm.cli import main

    assert main(["embed", str(exports["seg"]), "--platform", "ios", "--out", str(tmp_path / "kit")]) == 0
    assert "ios kit for artifact coreml_fp16" in capsys.readouterr().out
    assert main(["embed", str(exports["seg"]), "--platform", "windows", "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("edgederm: error: unknown embed platform 'windows'") and "\n" not in err


def test_replacing_a_kit(exports, tmp_path):
    first = embed(exports["cls"], "android", out=tmp_path / "kit")
    (first.folder / "stale.txt").write_text("from an older kit")
    second = embed(exports["cls_changed"], "android", out=tmp_path / "kit")
    assert not (second.folder / "stale.txt").exists()
    assert kotlin_spec((second.folder / "EdgeDermModel.kt").read_text())["height"] == CHANGED["input_size"][0]


# --- the web page in a real browser ----------------------------------------------------------------
DRIVER = r"""
// node driver.js PLAYWRIGHT_DIR URL IMAGE PROFILE_DIR -> JSON on stdout
const [pw, url, image, profile] = process.argv.slice(2);
const { chromium } = require(pw);
(async () => {
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: process.env.CHROMIUM, headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
           '--disable-component-update', '--disable-sync'] });
  const page = context.pages()[0] || await context.newPage();
  const logs = [], requests = [];
  page.on('console', (m) => logs.push(`${m.type()}: ${m.text()}`));
  page.on('pageerror', (e) => logs.push(`pageerror: ${e}`));
  page.on('request', (r) => requests.push(r.url()));
  let out;
  try {
    await page.goto(url);
    await page.waitForFunction(() => window.edgederm && ['ready', 'error'].includes(window.edgederm.state), null, { timeout: 120000 });
    await page.setInputFiles('#file', image);
    await page.waitForFunction(() => ['done', 'error'].includes(window.edgederm.state), null, { timeout: 120000 });
    out = await page.evaluate(() => ({
      state: window.edgederm.state, error: window.edgederm.error,
      notice: document.getElementById('notice').textContent,
      rows: [...document.querySelectorAll('tr[data-label]')].map((r) => [r.dataset.label, Number(r.dataset.probability)]),
      lesion: document.getElementById('lesion') ? Number(document.getElementById('lesion').dataset.lesionFraction) : null,
      pixels: window.edgederm.last ? Array.from(window.edgederm.last.pixels) : null,
      probability: window.edgederm.last && window.edgederm.last.probability ? Array.from(window.edgederm.last.probability) : null,
    }));
  } catch (e) {
    out = { state: 'driver-error', error: String(e) };
  }
  out.logs = logs; out.requests = requests;
  process.stdout.write(JSON.stringify(out));
  await context.close();
})();
"""


def _browser_tools() -> tuple[Path, Path]:
    """(onnxruntime-web dist, playwright-core) or a skip naming what is missing and how to get it."""
    from edgederm.embed.vendor import _dist, ort_web_cache

    missing = []
    if not Path(CHROMIUM).exists():
        missing.append(f"Chromium at {CHROMIUM} (apt-get install chromium; .ci/run does)")
    if not shutil.which("node"):
        missing.append("node (Node.js 18+)")
    env_ort = os.environ.get("EDGEDERM_ORT_WEB")
    ort = _dist(Path(env_ort)) if env_ort else _dist(USER_HOME / ort_web_cache().relative_to(paths.home()))
    if not ort:
        missing.append(f"onnxruntime-web in {USER_HOME}/vendor (python -m edgederm.embed.vendor; install.sh does)")
    pw = Path(os.environ.get("EDGEDERM_PLAYWRIGHT") or USER_HOME / playwright_cache().relative_to(paths.home()))
    if not (pw / "package.json").is_file():
        missing.append(f"playwright-core {PLAYWRIGHT_VERSION} at {pw} (python -m edgederm.embed.vendor --test-tools; .ci/run does)")
    if missing:
        pytest.skip("web test needs " + "; ".join(missing))
    return ort, pw


@pytest.fixture
def browser_tools() -> tuple[Path, Path]:
    return _browser_tools()


@pytest.fixture
def served(tmp_path):
    """Serves a folder on 127.0.0.1 (a free port) from a thread; yields (folder, base URL)."""
    root = tmp_path / "site"
    root.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _drive(pw: Path, url: str, image: Path, tmp_path: Path) -> dict:
    driver = tmp_path / "driver.js"
    driver.write_text(DRIVER)
    profile = tmp_path / f"profile-{image.stem}"
    proc = subprocess.run(["node", str(driver), str(pw), url, str(image), str(profile)], capture_output=True, text=True,
                          timeout=300, env={**os.environ, "CHROMIUM": CHROMIUM})
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout)
    assert out["state"] == "done", f"page state {out['state']}: {out.get('error')}; console: {out['logs']}"
    return out


@pytest.mark.realdata
@pytest.mark.browser
def test_web_page_matches_onnxruntime_on_a_real_image(browser_tools, real_data_root, onnx_exports, served, tmp_path):
    """The page's probabilities equal Python ONNX Runtime's on the same real image within 1e-3.

    The page resizes with Pillow's own arithmetic (app.js), not canvas drawImage: measured on a
    derm7 image, drawImage's resize moved probabilities by 2.5e-3 to 4.7e-3, the port by < 1e-6.
    """
    import onnxruntime
    from PIL import Image

    from edgederm.data import load_dataset

    ort_web, pw = browser_tools  # first, so a machine without them skips before any model is trained
    root, base = served
    derm_image = load_dataset(real_data_root / "derm7").split("test").samples[0].image
    seg_image = load_dataset(real_data_root / "lesionseg").split("test").samples[0].image
    for name, image in (("cls", derm_image), ("seg", seg_image)):
        kit = embed(onnx_exports[name], "web", out=root / name, ort_web=ort_web)
        assert not [u for u in (kit.folder / "index.html").read_text().split('"') if u.startswith(("http:", "https:", "//"))]
        page = _drive(pw, f"{base}/{name}/", image, tmp_path)
        assert all(u.startswith(base) or u.startswith("data:") for u in page["requests"]), page["requests"]
        assert "not a diagnosis" in page["notice"].lower()
        assert not [line for line in page["logs"] if line.startswith(("error", "pageerror"))], page["logs"]

        info = ModelInfo.load(kit.folder)
        pre = info.preprocessor
        pixels = pre.resize_image(Image.open(image))
        js_pixels = np.asarray(page["pixels"], np.uint8).reshape(pixels.shape)
        # Chromium and Pillow both decode JPEG with libjpeg-turbo; allow one grey level for another decoder build.
        assert np.abs(js_pixels.astype(int) - pixels).max() <= 1
        session = onnxruntime.InferenceSession(str(kit.folder / info.artifact["file"]), providers=["CPUExecutionProvider"])
        y = session.run(None, {info.input["name"]: pre.normalize(pixels)[None]})[0][0].astype(np.float64)
        if name == "cls":
            expected = np.exp(y - y.max())
            expected /= expected.sum()
            assert [label for label, _ in page["rows"]] == info.model["classes"]
            got = np.array([p for _, p in page["rows"]])
        else:
            expected = 1 / (1 + np.exp(-y.ravel()))
            got = np.asarray(page["probability"])
            assert page["lesion"] == pytest.approx(float((got > info.output["threshold"]).mean()))
        assert np.abs(got - expected).max() < 1e-3


# --- the real converted artifacts ------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.tflite
@pytest.mark.coreml
def test_kits_from_real_tflite_and_coreml_exports(tiny_classifier, synthetic_root, tmp_path):
    """Full export (ONNX, TFLite, Core ML): the Android kit's Spec matches the real .tflite's tensors and
    its preprocessing, applied from model_info.json alone, reproduces ONNX Runtime; the iOS kit's
    Swift constants match the .mlpackage's own input size and labels; the web kit ships the ONNX file."""
    import onnxruntime
    from ai_edge_litert.interpreter import Interpreter
    from PIL import Image

    from converters.torch2coreml import inspect
    from edgederm.export import export

    export(tiny_classifier, tmp_path / "exp", formats=["onnx", "tflite", "coreml"], data_root=synthetic_root, n_verify=32)
    android = embed(tmp_path / "exp", "android", out=tmp_path / "android")
    spec = kotlin_spec((android.folder / "EdgeDermModel.kt").read_text())
    interp = Interpreter(model_path=str(android.folder / "assets" / spec["model_file"]))
    interp.allocate_tensors()
    detail = interp.get_input_details()[0]
    assert list(detail["shape"]) == [1, spec["height"], spec["width"], 3] and spec["layout"] == "NHWC"
    info = ModelInfo.load(android.folder / "assets")
    onnx = onnxruntime.InferenceSession(str(tmp_path / "exp" / "model.onnx"), providers=["CPUExecutionProvider"])
    images = sorted((synthetic_root / "derm7" / "images").glob("*.jpg"))[:4]
    for path in images:
        pixels = info.preprocessor.resize_image(Image.open(path))
        nhwc = ((pixels.astype(np.float32) * np.float32(spec["scale"]) - np.float32(spec["mean"])) / np.float32(spec["std"]))[None]
        interp.set_tensor(detail["index"], nhwc.astype(np.float32))
        interp.invoke()
        lite = interp.get_tensor(interp.get_output_details()[0]["index"])[0]
        ref = onnx.run(None, {"input": info.preprocessor.normalize(pixels)[None]})[0][0]
        soft = lambda v: np.exp(v - v.max()) / np.exp(v - v.max()).sum()
        assert np.abs(soft(lite) - soft(ref)).max() < 1e-2  # fp16 weights
    ios = embed(tmp_path / "exp", "ios", out=tmp_path / "ios")
    swift = swift_spec((ios.folder / "EdgeDermModel.swift").read_text())
    coreml = inspect(ios.folder / f"{swift['resource']}.mlpackage")
    assert coreml["input_size"] == [swift["height"], swift["width"]] and coreml["classifier_labels"] == swift["labels"]
    web = embed(tmp_path / "exp", "web", out=tmp_path / "web", ort_web=_fake_dist(tmp_path))
    assert (web.folder / "model.onnx").read_bytes() == (tmp_path / "exp" / "model.onnx").read_bytes()


def _fake_dist(tmp_path: Path) -> Path:
    d = tmp_path / "ortweb"
    d.mkdir(exist_ok=True)
    for f in ORT_WEB_FILES:
        (d / f).write_text("// stand-in")
    return d
