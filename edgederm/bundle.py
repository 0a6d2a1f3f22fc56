"""A self-contained folder (and .tar.gz) to benchmark an export on one kind of device.

It holds the artifacts that suit the target, the manifest trimmed to them (sha256 kept), a
labelled evaluation set drawn class-stratified from the test split (uint8 images at the model's
input size, so the device needs no JPEG decoder and no resize code that could differ), the
``device_bench`` runner (numpy plus one runtime; no torch) and a README with the exact command.
Nothing else: no checkpoint, no training data beyond the evaluation images.
"""

from __future__ import annotations

import os
import shutil
import tarfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgederm.errors import EdgeDermError
from edgederm.manifest import Manifest
from edgederm.paths import safe_name
from edgederm.tasks import task_of


@dataclass(frozen=True)
class BundleTarget:
    """A kind of device a bundle is made for: which artifacts go in, and how to run them there."""

    name: str
    formats: tuple[str, ...]  # artifact formats that go in, in this order
    device: str
    setup: str  # shell lines run on the device before device_bench
    run_flags: str = ""


BUNDLE_TARGETS: dict[str, BundleTarget] = {t.name: t for t in (
    BundleTarget("jetson", ("onnx",), "NVIDIA Jetson (JetPack 6)",
           "sudo nvpmodel -m 0 && sudo jetson_clocks       # a fixed power mode; recorded in results.json either way\n"
           "export PATH=$PATH:/usr/src/tensorrt/bin         # trtexec (JetPack): the latency-only fallback\n"
           "sudo apt install python3-libnvinfer             # TensorRT's Python API: engines with accuracy\n"
           "python3 -m pip install --user numpy cuda-python onnxruntime # or NVIDIA's onnxruntime-gpu wheel for Jetson (CUDA + TensorRT providers)",
           "--threads 1,4 --runtime tensorrt,onnxruntime --trt-precisions fp32,fp16,int8"),
    BundleTarget("android", ("tflite", "executorch"), "Android phone (adb)", ""),
    BundleTarget("rpi", ("tflite", "onnx"), "Raspberry Pi 4/5 (64-bit Raspberry Pi OS)",
           "python3 -m venv ~/edgederm-venv && . ~/edgederm-venv/bin/activate\n"
           "pip install numpy ai-edge-litert onnxruntime", "--threads 1,4"),
    BundleTarget("macos", ("coreml", "tflite", "onnx"), "Mac (Apple silicon or Intel)",
           "python3 -m venv ~/edgederm-venv && . ~/edgederm-venv/bin/activate\n"
           "pip install numpy pillow coremltools ai-edge-litert onnxruntime", "--threads 1,4 --compute-units cpu,gpu,ane"),
    BundleTarget("ios", ("coreml", "executorch"), "iPhone / iPad (Core ML, ExecuTorch)", ""),
)}


@dataclass
class BundleOutcome:
    folder: Path
    archive: Path
    artifacts: list[str]
    images: int


def select_artifacts(manifest: Manifest, target: BundleTarget, export_folder: Path):
    chosen = [a for fmt in target.formats for a in manifest.artifacts if a.format == fmt]
    if not chosen:
        have = ", ".join(sorted({a.format for a in manifest.artifacts})) or "none"
        raise EdgeDermError(f"{export_folder} has no {' or '.join(target.formats)} artifact for --target {target.name} "
                            f"(it has: {have}): run edgederm export --to {target.formats[0]} first")
    return chosen


def eval_set(manifest: Manifest, data_root, n: int):
    """(arrays, info): ``n`` test images drawn class-stratified (seed 0), decoded through the model's preprocessing."""
    from edgederm.data import load_dataset
    from edgederm.data.arrays import load_arrays
    from edgederm.data.layouts import find_dataset

    name = manifest.model.get("dataset")
    root = find_dataset(name, data_root, "the evaluation data for the bundle")
    ds = load_dataset(root).split("test")
    if n > len(ds.samples):
        n = len(ds.samples)
    arrays = load_arrays(ds.subset(n, seed=0), manifest.preprocessing, desc="bundle: decode test images")
    info = {"task": manifest.task, "classes": manifest.classes, "dataset": name, "dataset_root": str(root),
            "split": "test", "selection": f"class-stratified subset of the test split, seed 0 ({len(arrays)} of "
            f"{len(ds.samples)})", "images": len(arrays), "input_size": list(manifest.preprocessing.input_size),
            "image_format": "uint8 RGB [N, H, W, 3] at the input size, resized by the manifest's preprocessing",
            "ids": list(arrays.ids)}
    if task_of(manifest.task).has_class_labels:
        info["labels"] = [int(v) for v in arrays.targets]
    else:
        info["mask_format"] = "uint8 [N, H, W], 1 = lesion"
    return arrays, info


def _copy_runner(dest: Path) -> None:
    import device_bench

    src = Path(device_bench.__file__).parent
    for f in sorted(src.rglob("*.py")):
        target = dest / f.relative_to(src)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(f, target)


def readme(target: BundleTarget, name: str, manifest: Manifest, artifacts, n: int) -> str:
    folder = f"{name}-{target.name}"
    lines = [f"# {name} on {target.device}", "",
             f"Bundle made by EdgeDerm for `--target {target.name}`: {manifest.task} model `{manifest.model.get('architecture')}`, "
             f"{n} labelled test images of `{manifest.model.get('dataset')}` (`eval/`), and the `device_bench` runner "
             "(numpy plus one runtime; no PyTorch).", "", "| artifact | file | precision | sha256 |", "|---|---|---|---|"]
    lines += [f"| {a.name} | `{a.path}` | {a.precision} | `{a.sha256[:16]}…` |" for a in artifacts]
    lines += [""]
    run = f"python3 -m device_bench run . {target.run_flags} --out results.json".replace("  ", " ")
    if target.name in ("jetson", "rpi", "macos"):
        lines += ["## Run", "", "```bash", f"tar xzf {folder}.tar.gz && cd {folder}", target.setup, run, "```", ""]
        if target.name == "jetson":
            lines += ["TensorRT engines are built here, on the device, from `model.onnx` by `trtexec` (fp16 and int8, "
                      "into `engines/`): an engine only runs on the GPU and TensorRT version that built it. The int8 "
                      "engine has no calibration cache, so its row is latency only.", ""]
    elif target.name == "android" and not any(a.format == "tflite" for a in artifacts):
        lines += executorch_lines(artifacts)
    elif target.name == "android":
        tfl = next(a for a in artifacts if a.format == "tflite")
        lines += ["## Run (from the workstation, phone on USB with debugging on)", "", "```bash",
                  f"edgederm device android {folder} --benchmark-model PATH/TO/android_aarch64_benchmark_model "
                  "--delegate xnnpack --out results.json",
                  "# the same by hand:",
                  f"adb push {tfl.path} /data/local/tmp/ && adb push benchmark_model /data/local/tmp/",
                  f"adb shell /data/local/tmp/benchmark_model --graph=/data/local/tmp/{tfl.path} --num_threads=4 "
                  "--use_xnnpack=true --warmup_runs=5 --num_runs=30", "```", "",
                  "`benchmark_model` (the TFLite tool, a prebuilt Android binary) measures latency and delegation on "
                  "random inputs. Accuracy of these very files on these images: run `python3 -m device_bench run .` on "
                  "any Linux or macOS machine with ai-edge-litert (there is no LiteRT Python wheel for Android).", ""]
    elif not any(a.format == "coreml" for a in artifacts):  # ios, ExecuTorch programs only
        lines += executorch_lines(artifacts)
    else:  # ios
        lines += ["## Run", "", "There is no Python on iOS. Latency and per-op compute-unit placement on the phone: "
                  f"open `{artifacts[0].path}` in Xcode 15+, Performance tab, pick the connected device. Accuracy of "
                  "the same file on these images (same Core ML compute units) on a Mac:", "", "```bash",
                  f"tar xzf {folder}.tar.gz && cd {folder}", BUNDLE_TARGETS['macos'].setup,
                  "python3 -m device_bench run . --compute-units cpu,gpu,ane --out results.json", "```", ""]
    if target.name in ("android", "ios") and any(a.format == "coreml" or a.format == "tflite" for a in artifacts):
        lines += executorch_lines(artifacts)
    lines += ["Bring `results.json` back and fold it into the others with "
              "`edgederm results merge results.json other.json --out merged.json`.", "",
              "Every artifact's sha256 is checked against `manifest.json` before it runs; a changed file is not run.", ""]
    return "\n".join(lines)


def make_bundle(export_folder, target: str, out=None, n_images: int = 200, data_root=None) -> BundleOutcome:
    from device_bench.integrity import sha256_file, write_json

    if target not in BUNDLE_TARGETS:
        raise EdgeDermError(f"--target {target!r} is unknown: use one of {', '.join(BUNDLE_TARGETS)}")
    if n_images < 2:
        raise EdgeDermError(f"--images {n_images} is too few: use at least 2 (default 200)")
    t = BUNDLE_TARGETS[target]
    export_folder = Path(export_folder)
    manifest = Manifest.load(export_folder)
    export_folder = export_folder if export_folder.is_dir() else export_folder.parent
    manifest.require_complete(export_folder)
    artifacts = select_artifacts(manifest, t, export_folder)
    for a in artifacts:  # never ship a file that no longer matches its manifest
        manifest.artifact_file(export_folder, a)
    arrays, info = eval_set(manifest, data_root, n_images)

    name = safe_name(manifest.model.get("name") or export_folder.name)
    out = Path(out) if out else Path("bundles")
    folder, archive = out / f"{name}-{target}", out / f"{name}-{target}.tar.gz"
    tmp = out / f".{folder.name}.tmp-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    (tmp / "eval").mkdir(parents=True)
    try:
        for a in artifacts:
            src, dst = export_folder / a.path, tmp / a.path
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copytree(src, dst) if src.is_dir() else shutil.copy2(src, dst)
        payload = {"images": arrays.images}
        if not task_of(manifest.task).has_class_labels:  # per-pixel targets travel as masks
            payload["masks"] = arrays.targets.astype(np.uint8)
        np.savez_compressed(tmp / "eval" / "images.npz", **payload)
        info["npz_sha256"] = sha256_file(tmp / "eval" / "images.npz")
        write_json(tmp / "eval" / "labels.json", info, indent=1)
        trimmed = Manifest.from_dict(manifest.to_dict())
        trimmed.bundle = {"files": {f"eval/{n}": sha256_file(tmp / "eval" / n) for n in ("images.npz", "labels.json")}}
        trimmed.artifacts = [a for a in trimmed.artifacts if a.name in {x.name for x in artifacts}]
        trimmed.add_step("bundle", target=target, artifacts=[a.name for a in artifacts], images=len(arrays),
                         dataset=info["dataset"], ids_sha256=_ids_sha(info["ids"]))
        trimmed.save(tmp)
        _copy_runner(tmp / "device_bench")
        (tmp / "README.md").write_text(readme(t, name, manifest, artifacts, len(arrays)))
        if folder.exists():
            shutil.rmtree(folder)
        os.replace(tmp, folder)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    tmp_archive = archive.with_name(f".{archive.name}.tmp-{os.getpid()}")
    with tarfile.open(tmp_archive, "w:gz") as tar:
        tar.add(folder, arcname=folder.name, filter=lambda ti: None if "__pycache__" in ti.name else ti)
    os.replace(tmp_archive, archive)
    return BundleOutcome(folder, archive, [a.name for a in artifacts], len(arrays))


def _ids_sha(ids: list[str]) -> str:
    from device_bench.bundle import ids_fingerprint

    return ids_fingerprint(ids)


def executorch_lines(artifacts) -> list[str]:
    """README lines for the bundle's ExecuTorch ``.pte`` programs (none when it has none)."""
    pte = [a for a in artifacts if a.format == "executorch"]
    if not pte:
        return []
    return ["## ExecuTorch programs", "",
            f"{', '.join(f'`{a.path}`' for a in pte)}: XNNPACK-lowered programs, fed normalised float32 NCHW "
            "(the manifest's mean/std). On the phone they load with ExecuTorch's `Module` API (Android "
            "`org.pytorch.executorch`, iOS the ExecuTorch Swift package) or its `executor_runner` tool. Accuracy of "
            "these very files on these images, on any Linux or macOS machine:", "", "```bash",
            "pip install numpy executorch", "python3 -m device_bench run . --out results.json", "```", ""]
