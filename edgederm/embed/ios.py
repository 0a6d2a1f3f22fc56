"""iOS kit: the Core ML ``.mlpackage`` + a Swift class on Vision (``VNCoreMLRequest``).

The Core ML artifact carries the mean/std normalisation (and a classifier's softmax) inside
(``converters/torch2coreml.py``), so the app passes plain RGB; Vision's crop-and-scale option
stands in for the manifest's resize policy.
"""

from __future__ import annotations

from pathlib import Path

from edgederm.embed import copy_artifact, num, quoted, render, write_common

CROP_AND_SCALE = {"stretch": ".scaleFill", "shorter_side_center_crop": ".centerCrop"}


def swift_decision_spec(manifest) -> str:
    """Spec lines for the manifest's temperature and operating points (refer if P(class) >= threshold)."""
    t = manifest.output.get("temperature") or 1.0
    points = [r for r in manifest.output.get("operating_points") or [] if r.get("threshold") is not None]
    items = ", ".join(f"(name: {quoted(r['name'])}, label: {quoted(r['class'])}, threshold: {num(r['threshold'])})"
                      for r in points)
    return (f"    static let temperature: Float = {num(t)}  // probabilities = softmax(logits / temperature)\n"
            f"    static let operatingPoints: [(name: String, label: String, threshold: Float)] = [{items}]"
            "  // from the manifest: refer if P(label) >= threshold")


def swift_values(manifest, artifact, info) -> dict[str, str]:
    from edgederm import __version__

    pre = manifest.preprocessing
    h, w = pre.input_size
    classify = manifest.task == "classification"
    activation = manifest.output["activation"]
    if classify:
        task_spec = (f"    static let labels: [String] = [{', '.join(quoted(c) for c in manifest.classes)}]  // output order\n"
                     + swift_decision_spec(manifest))
        task_code = render("ios/classify.swift", {"ACTIVATION": activation})
    else:
        task_spec = f"    static let threshold: Float = {num(manifest.output['threshold'])}  // {activation}(logit) > threshold marks lesion"
        task_code = render("ios/segment.swift", {"ACTIVATION": activation})
    return {
        "EDGEDERM_VERSION": __version__, "MODEL_NAME": manifest.model["name"], "ARTIFACT_NAME": artifact.name,
        "ARTIFACT_FILE": Path(artifact.path).name, "PRECISION": artifact.precision, "NOTICE": info.notice,
        "MODEL_RESOURCE_LITERAL": quoted(Path(artifact.path).stem), "INPUT_NAME_LITERAL": quoted(artifact.inputs[0].name),
        "INPUT_WIDTH": str(w), "INPUT_HEIGHT": str(h), "LAYOUT_LITERAL": quoted(artifact.inputs[0].layout),
        "RESIZE_LITERAL": quoted(pre.resize), "CROP_AND_SCALE": CROP_AND_SCALE[pre.resize],
        "CHANNEL_ORDER_LITERAL": quoted(pre.channel_order), "SCALE": num(pre.scale),
        "MEAN": ", ".join(num(v) for v in pre.mean), "STD": ", ".join(num(v) for v in pre.std),
        "OUTPUT_NAME_LITERAL": quoted(info.output["name"]), "ACTIVATION_LITERAL": quoted(activation),
        "TASK": manifest.task, "RESULT_DESCRIPTION": "labels with probabilities" if classify else "a lesion mask",
        "TASK_SPEC": task_spec, "TASK_CODE": task_code,
    }


def write(folder: Path, manifest, artifact, source: Path, info, **_) -> None:
    values = swift_values(manifest, artifact, info)
    write_common(folder, manifest, info)
    copy_artifact(source, folder / Path(artifact.path).name)
    (folder / "EdgeDermModel.swift").write_text(render("ios/EdgeDermModel.swift", values))
    pre = manifest.preprocessing
    usage = ('let ranked = try model.classify(cgImage)  // [(label, probability)], most probable first'
             if manifest.task == "classification" else
             'let mask = try model.segment(cgImage)     // mask.overlay() is a CGImage of the model input frame')
    (folder / "README.md").write_text(render("ios/README.md", {
        **values, "VERIFY_STATUS": info.artifact["verify_status"],
        "WARNINGS": "".join(f"\n> **Warning:** {w}\n" for w in info.warnings),
        "MODEL_RESOURCE": Path(artifact.path).stem, "USAGE": usage, "RESIZE": pre.resize,
        "MEAN_TEXT": list(pre.mean), "STD_TEXT": list(pre.std), "MEANING": manifest.output.get("meaning", "")}))
