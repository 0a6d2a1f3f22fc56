"""Android kit, ExecuTorch variant: the ``.pte`` + a Kotlin class on ExecuTorch's ``org.pytorch.executorch``
``Module`` API (``edgederm embed --platform android-executorch``).

Same layout and the same manifest-derived ``Spec`` as the LiteRT kit (``edgederm.embed.android``,
whose values and task code it reuses): ``assets/`` (model, labels.txt, model_info.json),
``EdgeDermModel.kt``, ``manifest.json``, ``README.md``. The program takes normalised float32 NCHW.
"""

from __future__ import annotations

from pathlib import Path

from edgederm.embed import num, render
from edgederm.embed.android import write_kotlin_kit
from edgederm.embed.task_samples import task_sample
from edgederm.errors import EdgeDermError

GRADLE_DEPENDENCY = "org.pytorch:executorch-android:1.0.1"  # Maven Central's ExecuTorch AAR (Module API, XNNPACK)


def write(folder: Path, manifest, artifact, source: Path, info, package: str | None = None, **_) -> None:
    inp = artifact.inputs[0]
    if inp.layout != "NCHW" or inp.dtype != "float32":
        raise EdgeDermError(f"artifact {artifact.name} takes {inp.dtype} {inp.layout}; the ExecuTorch sample feeds "
                            "float32 NCHW (pick an executorch artifact with --artifact)")
    values, package = write_kotlin_kit(folder, manifest, artifact, source, info, package,
                                       "android_executorch/EdgeDermModel.kt")
    pre = manifest.preprocessing
    usage = task_sample(manifest.task, "kotlin").usage
    (folder / "README.md").write_text(render("android_executorch/README.md", {
        **values, "PRECISION": artifact.precision, "VERIFY_STATUS": info.artifact["verify_status"],
        "WARNINGS": "".join(f"\n> **Warning:** {w}\n" for w in info.warnings),
        "PACKAGE_PATH": package.replace(".", "/"), "GRADLE_DEPENDENCY": GRADLE_DEPENDENCY, "USAGE": usage,
        "EXECUTORCH_VERSION": artifact.tool_versions.get("executorch", "?"), "RESIZE": pre.resize,
        "SCALE": num(pre.scale), "MEAN_TEXT": list(pre.mean), "STD_TEXT": list(pre.std),
        "CHANNEL_ORDER": pre.channel_order, "LAYOUT": inp.layout, "MEANING": manifest.output.get("meaning", "")}))
