"""iOS kit: the Core ML ``.mlpackage`` + a Swift class on Vision (``VNCoreMLRequest``).

The Core ML artifact carries the mean/std normalisation (and a classifier's softmax) inside
(``converters/torch2coreml.py``), so the app passes plain RGB; Vision's crop-and-scale option
stands in for the manifest's resize policy.
"""

from __future__ import annotations

from pathlib import Path

from edgederm.embed import copy_artifact, num, quoted, render, write_common
from edgederm.embed.task_samples import task_sample

CROP_AND_SCALE = {"stretch": ".scaleFill", "shorter_side_center_crop": ".centerCrop"}


def swift_values(manifest, artifact, info, language: str = "swift") -> dict[str, str]:
    """Template values from the manifest; ``language`` picks the task code (Core ML, or ExecuTorch's ``swift-executorch``)."""
    from edgederm import __version__

    pre = manifest.preprocessing
    h, w = pre.input_size
    sample = task_sample(manifest.task, language)
    activation = manifest.output["activation"]
    return {
        "EDGEDERM_VERSION": __version__, "MODEL_NAME": manifest.model["name"], "ARTIFACT_NAME": artifact.name,
        "ARTIFACT_FILE": Path(artifact.path).name, "PRECISION": artifact.precision, "NOTICE": info.notice,
        "MODEL_RESOURCE_LITERAL": quoted(Path(artifact.path).stem), "INPUT_NAME_LITERAL": quoted(artifact.inputs[0].name),
        "INPUT_WIDTH": str(w), "INPUT_HEIGHT": str(h), "LAYOUT_LITERAL": quoted(artifact.inputs[0].layout),
        "RESIZE_LITERAL": quoted(pre.resize), "CROP_AND_SCALE": CROP_AND_SCALE[pre.resize],
        "CHANNEL_ORDER_LITERAL": quoted(pre.channel_order), "SCALE": num(pre.scale),
        "MEAN": ", ".join(num(v) for v in pre.mean), "STD": ", ".join(num(v) for v in pre.std),
        "OUTPUT_NAME_LITERAL": quoted(info.output["name"]), "ACTIVATION_LITERAL": quoted(activation),
        "TASK": manifest.task, "RESULT_DESCRIPTION": sample.result,
        "TASK_SPEC": sample.spec(manifest),
        "TASK_CODE": render(sample.code, {"ACTIVATION": activation, "MASK_STRUCT": render("ios/mask.swift", {})}),
    }


def write(folder: Path, manifest, artifact, source: Path, info, **_) -> None:
    values = swift_values(manifest, artifact, info)
    write_common(folder, manifest, info)
    copy_artifact(source, folder / Path(artifact.path).name)
    (folder / "EdgeDermModel.swift").write_text(render("ios/EdgeDermModel.swift", values))
    pre = manifest.preprocessing
    usage = task_sample(manifest.task, "swift").usage
    (folder / "README.md").write_text(render("ios/README.md", {
        **values, "VERIFY_STATUS": info.artifact["verify_status"],
        "WARNINGS": "".join(f"\n> **Warning:** {w}\n" for w in info.warnings),
        "MODEL_RESOURCE": Path(artifact.path).stem, "USAGE": usage, "RESIZE": pre.resize,
        "MEAN_TEXT": list(pre.mean), "STD_TEXT": list(pre.std), "MEANING": manifest.output.get("meaning", "")}))
