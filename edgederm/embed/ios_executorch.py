"""iOS kit, ExecuTorch variant: the ``.pte`` + a Swift class on the ExecuTorch Swift package's ``Module``
API (``edgederm embed --platform ios-executorch``).

Same kit layout and manifest-derived ``EdgeDermSpec`` as the Core ML kit (``edgederm.embed.ios``, whose
values it reuses): the model, ``labels.txt``, ``model_info.json``, ``manifest.json``, ``EdgeDermModel.swift``
and ``README.md``. Unlike the ``.mlpackage``, the ``.pte`` takes normalised float32 NCHW
(``converters/torch2executorch.py``), so the Swift code fits, normalises and applies the softmax or
sigmoid itself. The ``.pte`` is copied from the source that ``embed`` proved against its sha256.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

from edgederm.embed import copy_artifact, num, quoted, render, write_common
from edgederm.embed.ios import swift_values
from edgederm.embed.task_samples import task_sample
from edgederm.errors import EdgeDermError

LANGUAGE = "swift-executorch"  # the task_samples rows this kit's code comes from
PACKAGE_URL = "https://github.com/pytorch/executorch"
SWIFTPM_FALLBACK = "swiftpm-1.0.0"  # the ExecuTorch docs' example, when the writing version is unknown
PRODUCTS = ("executorch", "backend_xnnpack", "kernels_optimized")  # runtime, the delegate, CPU kernels for the rest


def executorch_values(manifest, artifact, info) -> dict[str, str]:
    """The Core ML kit's Swift values, with the ExecuTorch task code and the program's I/O facts."""
    inp, out = artifact.inputs[0], artifact.outputs[0]
    if inp.layout != "NCHW" or inp.dtype != "float32":
        raise EdgeDermError(f"artifact {artifact.name} takes {inp.dtype} {inp.layout}; the ExecuTorch sample feeds "
                            "float32 NCHW (pick an executorch artifact with --artifact)")
    elements = math.prod(int(d) for d in out.shape)
    sample = task_sample(manifest.task, LANGUAGE)
    return {**swift_values(manifest, artifact, info, LANGUAGE), "TASK_INIT": sample.init,
            "ARTIFACT_SHA256": artifact.sha256, "OUTPUT_ELEMENTS": str(elements),
            "OUTPUT_SHAPE": str(list(out.shape)), "OUTPUT_LAYOUT": out.layout, "LAYOUT_LITERAL": quoted(inp.layout)}


def swiftpm_branch(executorch_version: str) -> str:
    """The package's release branch (``swiftpm-<version>``) of the executorch that wrote the ``.pte``."""
    release = re.match(r"^(\d+\.\d+\.\d+)", executorch_version)  # 1.5.1+cpu -> 1.5.1
    return f"swiftpm-{release.group(1)}" if release else SWIFTPM_FALLBACK


def write(folder: Path, manifest, artifact, source: Path, info, **_) -> None:
    values = executorch_values(manifest, artifact, info)
    write_common(folder, manifest, info)
    copy_artifact(source, folder / Path(artifact.path).name)
    (folder / "EdgeDermModel.swift").write_text(render("ios_executorch/EdgeDermModel.swift", values))
    pre = manifest.preprocessing
    version = artifact.tool_versions.get("executorch", "?")
    (folder / "README.md").write_text(render("ios_executorch/README.md", {
        **values, "VERIFY_STATUS": info.artifact["verify_status"],
        "WARNINGS": "".join(f"\n> **Warning:** {w}\n" for w in info.warnings),
        "EXECUTORCH_VERSION": version, "SWIFTPM_BRANCH": swiftpm_branch(version),
        "USAGE": task_sample(manifest.task, LANGUAGE).usage, "PACKAGE_URL": PACKAGE_URL,
        "PRODUCTS_TEXT": ", ".join(f"`{p}`" for p in PRODUCTS),
        "PRODUCT_LINES": "\n".join(f'    .product(name: "{p}", package: "executorch"),' for p in PRODUCTS),
        "RESIZE": pre.resize, "SCALE": num(pre.scale), "CHANNEL_ORDER": pre.channel_order,
        "MEAN_TEXT": list(pre.mean), "STD_TEXT": list(pre.std), "LAYOUT": artifact.inputs[0].layout,
        "MEANING": manifest.output.get("meaning", "")}))
