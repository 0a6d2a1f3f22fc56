"""Android kit: the TFLite artifact + a Kotlin class on the LiteRT ``Interpreter`` API.

Layout: ``assets/`` (model, labels.txt, model_info.json) for ``app/src/main/assets``,
``EdgeDermModel.kt``, ``manifest.json``, ``README.md``.
"""

from __future__ import annotations

import re
from pathlib import Path

from edgederm.embed import copy_artifact, integer_range, num, quoted, render, write_common
from edgederm.embed.task_samples import task_sample
from edgederm.errors import EdgeDermError

# The Interpreter API line of LiteRT (org.tensorflow.lite.Interpreter; 2.x moves to CompiledModel).
GRADLE_DEPENDENCY = "com.google.ai.edge.litert:litert:1.4.1"
DEFAULT_PACKAGE = "com.example.edgederm"
_PACKAGE = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*(\.[a-zA-Z_][a-zA-Z0-9_]*)*$")


def _quant(spec) -> tuple[str, str, str, int, int]:
    """(quantized, scale, zero_point, qmin, qmax) literals for a tensor spec."""
    q = spec.quantization
    if spec.dtype in ("int8", "uint8") and q:
        lo, hi = integer_range(spec.dtype)
        return "true", num(q["scale"]), str(int(q["zero_point"])), lo, hi
    if spec.dtype != "float32":
        raise EdgeDermError(f"tensor {spec.name!r} is {spec.dtype} without quantization parameters: the Android "
                            "sample feeds float32 or quantized int8/uint8 (re-export or pick another --artifact)")
    return "false", num(1.0), "0", -128, 127  # unused when not quantized


def kotlin_values(manifest, artifact, info, package: str) -> dict[str, str]:
    from edgederm import __version__

    pre = manifest.preprocessing
    inp, out = artifact.inputs[0], artifact.outputs[0]
    h, w = pre.input_size
    in_q, in_scale, in_zero, in_min, in_max = _quant(inp)
    out_q, out_scale, out_zero, _, _ = _quant(out)
    elements = 1
    for d in out.shape:
        elements *= int(d)
    sample = task_sample(manifest.task, "kotlin")
    return {
        "EDGEDERM_VERSION": __version__, "MODEL_NAME": manifest.model["name"], "ARTIFACT_NAME": artifact.name,
        "ARTIFACT_FILE": Path(artifact.path).name, "ARTIFACT_SHA256": artifact.sha256, "NOTICE": info.notice,
        "PACKAGE": package, "TASK": manifest.task,
        "RESULT_DESCRIPTION": sample.result,
        "MODEL_FILE_LITERAL": quoted(Path(artifact.path).name, "kotlin"), "LABELS_FILE_LITERAL": quoted(info.labels_file, "kotlin"),
        "INPUT_HEIGHT": str(h), "INPUT_WIDTH": str(w), "LAYOUT_LITERAL": quoted(inp.layout, "kotlin"),
        "RESIZE_LITERAL": quoted(pre.resize, "kotlin"), "CHANNEL_ORDER_LITERAL": quoted(pre.channel_order, "kotlin"),
        "SCALE": num(pre.scale), "MEAN": ", ".join(f"{num(v)}f" for v in pre.mean),
        "STD": ", ".join(f"{num(v)}f" for v in pre.std),
        "INPUT_QUANTIZED": in_q, "INPUT_Q_SCALE": in_scale, "INPUT_Q_ZERO_POINT": in_zero,
        "INPUT_Q_MIN": str(in_min), "INPUT_Q_MAX": str(in_max),
        "OUTPUT_QUANTIZED": out_q, "OUTPUT_Q_SCALE": out_scale, "OUTPUT_Q_ZERO_POINT": out_zero,
        "OUTPUT_Q_SIGNED": "true" if out.dtype == "int8" else "false",
        "OUTPUT_ELEMENTS": str(elements), "OUTPUT_SHAPE": str(list(out.shape)), "OUTPUT_LAYOUT": out.layout,
        "ACTIVATION_LITERAL": quoted(manifest.output["activation"], "kotlin"),
        "TASK_SPEC": sample.spec(manifest), "TASK_INIT": sample.init,
        "TASK_CODE": render(sample.code, {"ACTIVATION": manifest.output["activation"]}),
    }


def write_kotlin_kit(folder: Path, manifest, artifact, source: Path, info, package: str | None,
                     template: str) -> tuple[dict, str]:
    """What every Android kit does (LiteRT or ExecuTorch): check the package name, write the sidecar,
    labels and model under ``assets/``, render ``template`` as ``EdgeDermModel.kt``; returns (values, package)."""
    package = package or DEFAULT_PACKAGE
    if not _PACKAGE.match(package):
        raise EdgeDermError(f"--package {package!r} is not a Java/Kotlin package name (e.g. {DEFAULT_PACKAGE})")
    values = kotlin_values(manifest, artifact, info, package)
    assets = write_common(folder, manifest, info, folder / "assets")
    copy_artifact(source, assets / Path(artifact.path).name)
    (folder / "EdgeDermModel.kt").write_text(render(template, values))
    return values, package


def write(folder: Path, manifest, artifact, source: Path, info, package: str | None = None, **_) -> None:
    if artifact.inputs[0].layout not in ("NHWC", "NCHW"):
        raise EdgeDermError(f"artifact {artifact.name} has input layout {artifact.inputs[0].layout!r}; the Android "
                            "sample writes NHWC or NCHW tensors")
    values, package = write_kotlin_kit(folder, manifest, artifact, source, info, package, "android/EdgeDermModel.kt")
    pre = manifest.preprocessing
    usage = task_sample(manifest.task, "kotlin").usage
    warnings = "".join(f"\n> **Warning:** {w}\n" for w in info.warnings)
    (folder / "README.md").write_text(render("android/README.md", {
        **values, "MANIFEST_PATH": "manifest.json", "PRECISION": artifact.precision,
        "VERIFY_STATUS": info.artifact["verify_status"], "WARNINGS": warnings,
        "PACKAGE_PATH": package.replace(".", "/"), "GRADLE_DEPENDENCY": GRADLE_DEPENDENCY, "USAGE": usage,
        "RESIZE": pre.resize, "SCALE": num(pre.scale), "MEAN_TEXT": list(pre.mean), "STD_TEXT": list(pre.std),
        "CHANNEL_ORDER": pre.channel_order, "LAYOUT": artifact.inputs[0].layout, "INPUT_DTYPE": artifact.inputs[0].dtype,
        "MEANING": manifest.output.get("meaning", "")}))
