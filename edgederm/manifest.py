"""The manifest: one versioned JSON record beside the artifacts that every stage reads and extends.

An app developer reads only this file to embed a model: task, class names in output order,
preprocessing, what the output means, and per artifact its format, precision, input and
output names/shapes/layout, sha256, size, parity figures and tool versions. Schema:
``docs/manifest.md``. Stages (export, verify, quantize, bench) each add a ``steps`` entry.
"""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from device_bench.integrity import IntegrityError, contained, proven, sha256_path, write_json
from edgederm.errors import EdgeDermError
from edgederm.preprocessing import Preprocessing
from edgederm.tasks import task_of

SCHEMA = "edgederm.manifest"
SCHEMA_VERSION = 1
FILENAME = "manifest.json"
COMPLETE, INCOMPLETE = "complete", "incomplete"


@dataclass
class TensorSpec:
    name: str
    shape: list[int]
    dtype: str = "float32"
    layout: str = "NCHW"  # NCHW / NHWC for images; "NC" for class scores
    quantization: dict[str, float] | None = None  # {"scale": s, "zero_point": z} for integer I/O


@dataclass
class Artifact:
    """One deployable file (or .mlpackage folder) and what is known about it."""

    name: str  # unique key, e.g. "tflite_fp16"
    path: str  # relative to the manifest's folder
    format: str  # a converters.FORMATS name (onnx, tflite, coreml, executorch, executorch_coreml, ...)
    precision: str  # fp32 | fp16 | int8 | ...
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    size_bytes: int = 0
    sha256: str = ""
    converter: str = ""
    tool_versions: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    verify: dict[str, Any] | None = None  # figures and verdict, or {"skipped": True, "reason": ...}
    delegation: dict[str, Any] | None = None  # backend coverage (ExecuTorch: nodes delegated to XNNPACK)

    @classmethod
    def from_dict(cls, d: dict) -> "Artifact":
        d = dict(d)
        d["inputs"] = [TensorSpec(**t) for t in d.get("inputs", [])]
        d["outputs"] = [TensorSpec(**t) for t in d.get("outputs", [])]
        return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})


@dataclass
class Manifest:
    model: dict[str, Any]  # name, architecture, task, classes, checkpoint, checkpoint_sha256, metrics
    preprocessing: Preprocessing
    output: dict[str, Any]  # kind, activation, threshold (segmentation), meaning
    artifacts: list[Artifact] = field(default_factory=list)
    steps: list[dict[str, Any]] = field(default_factory=list)
    schema: str = SCHEMA
    version: int = SCHEMA_VERSION
    state: str = COMPLETE  # "incomplete" while a stage is writing the folder; stages refuse such a folder
    bundle: dict[str, Any] | None = None  # in a bundle: {"files": {relative name: sha256}} of its eval files

    # --- access ----------------------------------------------------------------------------
    @property
    def task(self) -> str:
        return self.model["task"]

    @property
    def classes(self) -> list[str]:
        return list(self.model["classes"])

    def artifact(self, name: str) -> Artifact:
        for a in self.artifacts:
            if a.name == name:
                return a
        raise EdgeDermError(f"manifest has no artifact {name!r}; it has {', '.join(a.name for a in self.artifacts)}")

    def put(self, artifact: Artifact) -> None:
        """Add or replace (by name) an artifact."""
        self.artifacts = [a for a in self.artifacts if a.name != artifact.name] + [artifact]

    def add_step(self, stage: str, **details) -> None:
        from edgederm import __version__

        self.steps.append({"stage": stage, "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                           "command": " ".join(sys.argv), "edgederm": __version__, **details})

    # --- serialisation ---------------------------------------------------------------------
    def artifact_file(self, folder: str | os.PathLike, artifact: Artifact) -> Path:
        """The artifact's file inside ``folder``, its existence and sha256 proven (every read goes through here)."""
        try:
            return proven(Path(folder), artifact.path, artifact.sha256, f"artifact {artifact.name}")
        except IntegrityError as e:
            raise EdgeDermError(f"{e}: re-export it, or run edgederm verify on {Path(folder)} to record what is there") from None

    def require_complete(self, folder: str | os.PathLike) -> None:
        if self.state != COMPLETE:
            raise EdgeDermError(f"{Path(folder) / FILENAME} is from an interrupted or failed run (state "
                                f"{self.state!r}): export again into that folder")

    def to_dict(self) -> dict[str, Any]:
        d = {"schema": self.schema, "version": self.version, "state": self.state, "model": self.model,
             "preprocessing": self.preprocessing.to_dict(), "output": self.output,
             "artifacts": [asdict(a) for a in self.artifacts], "steps": self.steps}
        if self.bundle is not None:
            d["bundle"] = self.bundle
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any], source: str = "manifest") -> "Manifest":
        if d.get("schema") != SCHEMA:
            raise EdgeDermError(f"{source} is not an EdgeDerm manifest (schema {d.get('schema')!r})")
        if int(d.get("version", 0)) > SCHEMA_VERSION:
            raise EdgeDermError(f"{source} has manifest version {d['version']}, newer than this EdgeDerm "
                                f"({SCHEMA_VERSION}): upgrade edgederm")
        if not isinstance(d.get("model"), dict) or not {"task", "classes"} <= set(d["model"]):
            raise EdgeDermError(f"{source} lacks model.task / model.classes: export again")
        artifacts = [Artifact.from_dict(a) for a in d.get("artifacts", [])]
        return cls(model=d["model"], preprocessing=Preprocessing.from_dict(d["preprocessing"]), output=d["output"],
                   artifacts=artifacts, steps=list(d.get("steps", [])), version=int(d["version"]),
                   state=str(d.get("state", COMPLETE)), bundle=d.get("bundle"))

    def save(self, folder: str | os.PathLike) -> Path:
        return write_json(Path(folder) / FILENAME, self.to_dict())

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Manifest":
        path = Path(path)
        if path.is_dir():
            path = path / FILENAME
        if not path.exists():
            raise EdgeDermError(f"no manifest at {path}: pass an export folder or its manifest.json")
        try:
            manifest = cls.from_dict(json.loads(path.read_text()), str(path))
        except (ValueError, KeyError, TypeError, AttributeError) as e:  # JSONDecodeError is a ValueError
            raise EdgeDermError(f"{path} is not a valid manifest ({type(e).__name__}: {str(e)[:120]}): export again") from None
        for a in manifest.artifacts:  # symlinks are resolved against the real folder
            try:
                contained(path.parent, a.path, f"artifact {a.name} path")
            except IntegrityError as e:
                raise EdgeDermError(f"{path}: {e}; refused (export again)") from None
        return manifest


def output_spec(task: str, classes: list[str]) -> dict[str, Any]:
    return task_of(task).output_spec(classes)


def record_file(artifact: Artifact, folder: str | os.PathLike) -> None:
    """Make the artifact's path relative to the manifest folder and record size and sha256."""
    path = Path(artifact.path)
    artifact.path = os.path.relpath(path, Path(folder))
    size = sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) if path.is_dir() else path.stat().st_size
    artifact.sha256, artifact.size_bytes = sha256_path(path), size
