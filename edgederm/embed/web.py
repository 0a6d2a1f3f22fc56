"""Web kit: a static page that runs the ONNX artifact in the browser with onnxruntime-web (wasm).

``app.js`` is not templated: it reads every number (input size, resize policy, mean/std,
scale, labels, threshold) from ``model_info.json`` and ``labels.txt`` at run time, and
resizes with the same separable convolution and fixed-point rounding as Pillow's
``Image.resize``, so the page feeds the model the tensor the Python pipeline would.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from edgederm.embed import TEMPLATES, copy_artifact, render, write_common
from edgederm.errors import EdgeDermError

JS_INTERPOLATIONS = ("bilinear", "bicubic", "lanczos", "nearest")


def write(folder: Path, manifest, artifact, source: Path, info, ort_web: str | None = None, **_) -> None:
    from edgederm import __version__
    from edgederm.embed.vendor import ORT_WEB_FILES, ORT_WEB_NOTICE, find_ort_web, ort_web_version

    pre = manifest.preprocessing
    if pre.interpolation not in JS_INTERPOLATIONS:
        raise EdgeDermError(f"preprocessing interpolation {pre.interpolation!r} has no browser implementation "
                            f"({', '.join(JS_INTERPOLATIONS)})")
    if artifact.inputs[0].dtype != "float32":
        raise EdgeDermError(f"artifact {artifact.name} takes {artifact.inputs[0].dtype}; the web page feeds float32 "
                            "(pick the ONNX fp32 artifact with --artifact)")
    dist = find_ort_web(ort_web)
    version = ort_web_version(dist)
    write_common(folder, manifest, info)
    copy_artifact(source, folder / Path(artifact.path).name)
    ort = folder / "ort"
    ort.mkdir()
    for f in ORT_WEB_FILES:
        shutil.copyfile(dist / f, ort / f)
    (ort / "NOTICE.txt").write_text(ORT_WEB_NOTICE.format(version=version))
    shutil.copyfile(TEMPLATES / "web" / "app.js", folder / "app.js")
    values = {"MODEL_NAME": manifest.model["name"], "TASK": manifest.task, "NOTICE": info.notice,
              "ORT_WEB_VERSION": version, "EDGEDERM_VERSION": __version__, "ARTIFACT_FILE": Path(artifact.path).name,
              "ARTIFACT_NAME": artifact.name, "VERIFY_STATUS": info.artifact["verify_status"],
              "WARNINGS": "".join(f"<p class=\"warning\">Warning: {w}</p>" for w in info.warnings)}
    (folder / "index.html").write_text(render("web/index.html", values))
    (folder / "README.md").write_text(render("web/README.md", {**values, "WARNINGS": "".join(
        f"\n> **Warning:** {w}\n" for w in info.warnings)}))
