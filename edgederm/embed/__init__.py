"""``edgederm embed``: an export folder -> a ready-to-copy app kit (Android, iOS or a web page).

A kit holds one artifact, ``labels.txt`` (manifest class order), the manifest, a
``model_info.json`` sidecar (everything an app needs to feed the model and read its output)
and a small integration sample generated from templates in ``templates/``. Every number in a
sample comes from the manifest: templates hold ``{{NAME}}`` placeholders, never constants.

TFLite metadata (``tflite_support``'s writer) is not embedded in the ``.tflite``: that library
is archived and does not install beside numpy 2 / protobuf 7, and no maintained library writes
the metadata flatbuffer; the sidecar JSON carries the same facts (labels, normalisation).
"""

from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from device_bench.integrity import dumps
from edgederm.errors import EdgeDermError
from edgederm.registry import Registry, lazy
from edgederm.tasks import task_of

TEMPLATES = Path(__file__).parent / "templates"
INFO_FILE = "model_info.json"
LABELS_FILE = "labels.txt"
INFO_SCHEMA = "edgederm.model_info"
INFO_VERSION = 1
NOT_A_DIAGNOSIS = ("Research model. Its output is not a diagnosis and must not be used to make medical decisions; "
                   "see a dermatologist about any skin lesion that worries you.")

# platform name -> module:function that writes the platform's files into a kit folder
PLATFORMS: Registry = Registry("embed platform")
PLATFORMS.register("android", lazy("edgederm.embed.android:write"))
PLATFORMS.register("ios", lazy("edgederm.embed.ios:write"))
PLATFORMS.register("web", lazy("edgederm.embed.web:write"))
PLATFORMS.register("android-executorch", lazy("edgederm.embed.android_executorch:write"))
PLATFORMS.register("ios-executorch", lazy("edgederm.embed.ios_executorch:write"))


@dataclass(frozen=True)
class KitTarget:
    """What an app platform's kit deploys: one artifact format, and the precision preference when none is named."""

    format: str
    preference: tuple[str, ...]
    needs_pass: tuple[str, ...] = ()  # precisions chosen by default only when verification passed


# int8 = full integer (int8 I/O), int8_floatio = integer compute with float I/O (converters/onnx2tflite.py)
KIT_TARGETS = {"android": KitTarget("tflite", ("int8", "int8_floatio", "fp16", "fp32"), needs_pass=("int8", "int8_floatio")),
               "ios": KitTarget("coreml", ("fp16", "fp32")),
               "web": KitTarget("onnx", ("fp32", "fp16")),
               "android-executorch": KitTarget("executorch", ("int8", "fp32"), needs_pass=("int8",)),
               "ios-executorch": KitTarget("executorch", ("int8", "fp32"), needs_pass=("int8",))}


# --- the sidecar -------------------------------------------------------------------------------
@dataclass
class ModelInfo:
    """``model_info.json``: what an app needs to run one artifact, flattened from the manifest."""

    model: dict[str, Any]  # name, architecture, task, classes, dataset
    artifact: dict[str, Any]  # name, file, format, precision, sha256, size_bytes, verify_status
    input: dict[str, Any]  # name, shape, dtype, layout, quantization, height, width
    preprocessing: dict[str, Any]  # Preprocessing.to_dict() + where the normalisation happens
    output: dict[str, Any]  # name, shape, dtype, layout, quantization, kind, activation, threshold, meaning
    labels_file: str = LABELS_FILE
    notice: str = NOT_A_DIAGNOSIS
    warnings: list[str] = field(default_factory=list)
    schema: str = INFO_SCHEMA
    version: int = INFO_VERSION

    def to_dict(self) -> dict[str, Any]:
        return {"schema": self.schema, "version": self.version, "model": self.model, "artifact": self.artifact,
                "input": self.input, "preprocessing": self.preprocessing, "output": self.output,
                "labels_file": self.labels_file, "notice": self.notice, "warnings": self.warnings}

    @classmethod
    def from_dict(cls, d: dict[str, Any], source: str = INFO_FILE) -> "ModelInfo":
        if d.get("schema") != INFO_SCHEMA:
            raise EdgeDermError(f"{source} is not an EdgeDerm model_info file (schema {d.get('schema')!r})")
        if int(d.get("version", 0)) > INFO_VERSION:
            raise EdgeDermError(f"{source} has model_info version {d['version']}, newer than this EdgeDerm: upgrade edgederm")
        return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})

    def save(self, folder: Path) -> Path:
        path = Path(folder) / INFO_FILE
        path.write_text(dumps(self.to_dict()) + "\n")
        return path

    @classmethod
    def load(cls, folder: str | os.PathLike) -> "ModelInfo":
        path = Path(folder)
        path = path / INFO_FILE if path.is_dir() else path
        try:
            return cls.from_dict(json.loads(path.read_text()), str(path))
        except FileNotFoundError:
            raise EdgeDermError(f"no {INFO_FILE} at {path}: pass a kit folder written by edgederm embed") from None
        except (json.JSONDecodeError, TypeError) as e:
            raise EdgeDermError(f"{path} is not valid JSON ({e})") from None

    @property
    def preprocessor(self):
        """The :class:`~edgederm.Preprocessing` record, to feed the artifact from Python exactly as an app does."""
        from edgederm.preprocessing import Preprocessing

        return Preprocessing.from_dict(self.preprocessing)


def model_info(manifest, artifact) -> ModelInfo:
    """The sidecar for ``artifact`` of ``manifest``: input/output tensors, preprocessing, labels, meaning."""
    pre = manifest.preprocessing
    inp = artifact.inputs[0]
    outs = artifact.outputs
    classify = task_of(manifest.task).has_class_labels
    # Core ML classifiers have classLabel + classLabel_probs; the probabilities are what an app reads.
    out = next((o for o in outs if o.name.endswith("_probs")), outs[0]) if outs else None
    h, w = pre.input_size
    in_model = artifact.format == "coreml"  # torch2coreml folds mean/std (and the classifier's softmax) in
    preprocessing = {**pre.to_dict(), "normalization": "inside_model" if in_model else "in_app"}
    preprocessing.pop("extra", None)
    output = {"name": out.name if out else "", "shape": list(out.shape) if out else [],
              "dtype": out.dtype if out else "", "layout": out.layout if out else "",
              "quantization": out.quantization if out else None,
              "kind": manifest.output.get("kind"), "activation": manifest.output.get("activation"),
              "activation_inside_model": bool(in_model and classify),
              "threshold": manifest.output.get("threshold"), "meaning": manifest.output.get("meaning", "")}
    if classify:  # decision rules the app applies as written (device_bench.decision; docs/site-shift.md)
        output["temperature"] = manifest.output.get("temperature") or 1.0
        output["operating_points"] = [{k: r.get(k) for k in ("name", "class", "threshold", "target", "rule")}
                                      for r in manifest.output.get("operating_points") or []
                                      if r.get("threshold") is not None]
    verify = artifact.verify or {}
    warnings = []
    if verify.get("status") == "fail":
        warnings.append(f"artifact {artifact.name} FAILED verification: {verify.get('reason', '')}".strip())
    return ModelInfo(
        model={k: manifest.model.get(k) for k in ("name", "architecture", "task", "classes", "dataset")},
        artifact={"name": artifact.name, "file": Path(artifact.path).name, "format": artifact.format,
                  "precision": artifact.precision, "sha256": artifact.sha256, "size_bytes": artifact.size_bytes,
                  "verify_status": verify.get("status", "unknown")},
        input={"name": inp.name, "shape": list(inp.shape), "dtype": inp.dtype, "layout": inp.layout,
               "quantization": inp.quantization, "height": h, "width": w},
        preprocessing=preprocessing, output=output, warnings=warnings)


# --- choosing the artifact ------------------------------------------------------------------------
def _status(artifact) -> str:
    return (artifact.verify or {}).get("status", "unknown")


def choose_artifact(manifest, platform: str, name: str | None = None, source: str = "manifest"):
    """The artifact a ``platform`` kit ships: ``name`` if given, else the platform's best verified one."""
    target = KIT_TARGETS[platform]
    if name:
        artifact = manifest.artifact(name)
        if artifact.format != target.format:
            raise EdgeDermError(f"--artifact {name} is {artifact.format}; --platform {platform} needs a {target.format} "
                                f"artifact ({', '.join(a.name for a in manifest.artifacts if a.format == target.format) or 'none in this export'})")
        return artifact
    candidates = [a for a in manifest.artifacts if a.format == target.format]
    if not candidates:
        raise EdgeDermError(f"{source} has no {target.format} artifact for --platform {platform}: run "
                            f"edgederm export CHECKPOINT --to {target.format} first")
    usable = [a for a in candidates if _status(a) != "fail"]
    for precision in target.preference:
        for a in usable:
            if a.precision == precision and (precision not in target.needs_pass or _status(a) == "pass"):
                return a
    if not usable:
        raise EdgeDermError(f"every {target.format} artifact in {source} failed verification "
                            f"({', '.join(a.name for a in candidates)}): fix the export, or pass --artifact NAME to ship one anyway")
    return usable[0]


# --- templates ----------------------------------------------------------------------------------------
_PLACEHOLDER = re.compile(r"\{\{([A-Z0-9_]+)\}\}")


def render(template: str, values: dict[str, Any]) -> str:
    """Fill ``{{NAME}}`` placeholders of ``templates/<template>``; a missing value is a bug, so it raises."""
    text = (TEMPLATES / template).read_text()
    missing = sorted({m for m in _PLACEHOLDER.findall(text) if m not in values})
    if missing:
        raise KeyError(f"template {template} needs values for {', '.join(missing)}")
    return _PLACEHOLDER.sub(lambda m: str(values[m.group(1)]), text)


# --- the kit ------------------------------------------------------------------------------------------
@dataclass
class Kit:
    folder: Path
    platform: str
    artifact: str
    files: list[str]


def _place(tmp: Path, out: Path) -> None:
    """Move the finished kit onto ``out``; an existing kit there is replaced, anything else is refused."""
    if out.exists():
        if not ((out / INFO_FILE).exists() or (out / "assets" / INFO_FILE).exists()):  # android keeps it in assets/
            raise EdgeDermError(f"--out {out} exists and is not an EdgeDerm kit: pass a new folder")
        old = out.with_name(f".{out.name}.old-{os.getpid()}")
        os.replace(out, old)
        os.replace(tmp, out)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, out)


def embed(export_folder: str | os.PathLike, platform: str, artifact: str | None = None,
          out: str | os.PathLike | None = None, **options) -> Kit:
    """Write a ``platform`` kit for the export in ``export_folder``; returns where and what.

    Options go to the platform writer (``package`` for Android, ``ort_web`` for the web page).
    """
    from edgederm.manifest import Manifest
    from edgederm.paths import safe_name

    writer = PLATFORMS.get(platform)
    manifest = Manifest.load(export_folder)
    folder = Path(export_folder)
    folder = folder if folder.is_dir() else folder.parent
    manifest.require_complete(folder)
    chosen = choose_artifact(manifest, platform, artifact, str(folder / "manifest.json"))
    source = manifest.artifact_file(folder, chosen)  # an edited file must not ship
    info = model_info(manifest, chosen)
    out = Path(out) if out else Path(f"{safe_name(manifest.model['name'])}-{platform}")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.partial-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        writer(tmp, manifest, chosen, source, info, **options)
        _place(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    files = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file() and ".mlpackage/" not in str(p))
    return Kit(out, platform, chosen.name, files)


def write_common(folder: Path, manifest, info: ModelInfo, data_dir: Path | None = None) -> Path:
    """labels.txt, model_info.json and manifest.json into ``data_dir`` (default the kit folder)."""
    data_dir = data_dir or folder
    data_dir.mkdir(parents=True, exist_ok=True)
    (data_dir / LABELS_FILE).write_text("".join(f"{c}\n" for c in manifest.classes))
    info.save(data_dir)
    (folder / "manifest.json").write_text(dumps(manifest.to_dict()) + "\n")
    return data_dir


def copy_artifact(source: Path, target: Path) -> None:
    if source.is_dir():
        shutil.copytree(source, target)
    else:
        shutil.copyfile(source, target)


# --- literals for generated code ---------------------------------------------------------------
def num(value: float) -> str:
    """Shortest text that reads back as the same double (Python ``repr``), for code literals."""
    return repr(float(value))


def quoted(text: str, language: str = "swift") -> str:
    """A double-quoted string literal for ``language`` (kotlin, swift, js); labels are plain names."""
    text = str(text)
    if any(ord(ch) < 32 for ch in text):
        raise EdgeDermError(f"class or file name {text!r} has a control character: rename it in the model card")
    text = text.replace("\\", "\\\\").replace('"', '\\"')
    if language == "kotlin":
        text = text.replace("$", "\\$")  # "$x" is string interpolation in Kotlin
    return f'"{text}"'


def integer_range(dtype: str) -> tuple[int, int]:
    import numpy as np

    info = np.iinfo(np.dtype(dtype))
    return int(info.min), int(info.max)
