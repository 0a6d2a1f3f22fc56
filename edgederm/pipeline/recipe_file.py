"""Run recipes (``edgederm run RECIPE.yaml``): read, checked key by key, into a ``RunRecipe``.

A wrong key or a setting of the wrong type is a one-line error naming the file and the key at
load time, not a traceback mid-run. ``BUILTIN`` holds the recipes that run by name.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from edgederm.errors import EdgeDermError

STAGES = ("train", "prune", "export", "quantize", "bench", "report")
SECTION_KEYS = {
    "prune": {"sparsity", "macs_budget", "importance", "finetune_epochs", "distill", "protect", "global_pruning",
              "round_to", "train_limit", "seed"},
    "export": {"formats", "tflite_precisions", "coreml_precisions", "verify_images"},
    "quantize": {"schemes", "formats", "calibration_size", "verify_images"},
    "bench": {"threads", "images", "runs", "warmup", "bootstrap", "peers", "throughput_batch", "peak"},
}
TOP_KEYS = {"name", "out", "data", "models", "report", *SECTION_KEYS}
# What each setting must be; a wrong type is a one-line error at load time, not a traceback mid-run.
_KINDS = {"fraction": "a number above 0 and at most 1", "count": "a whole number >= 0", "pos": "a whole number >= 1",
          "bool": "true or false", "str": "a name", "strlist": "a list of names", "poslist": "a list of whole numbers >= 1"}
SETTING_KINDS = {"sparsity": "fraction", "macs_budget": "fraction", "importance": "str", "finetune_epochs": "count",
                 "distill": "bool", "protect": "strlist", "global_pruning": "bool", "round_to": "pos",
                 "train_limit": "pos", "seed": "count", "formats": "strlist", "tflite_precisions": "strlist",
                 "coreml_precisions": "strlist", "verify_images": "pos", "schemes": "strlist", "calibration_size": "pos",
                 "threads": "poslist", "images": "pos", "runs": "pos", "warmup": "count", "bootstrap": "pos",
                 "peers": "bool", "throughput_batch": "count", "peak": "bool"}


def _fits(kind: str, v) -> bool:
    is_int = isinstance(v, int) and not isinstance(v, bool)
    return {"fraction": lambda: isinstance(v, (int, float)) and not isinstance(v, bool) and 0 < v <= 1,
            "count": lambda: is_int and v >= 0, "pos": lambda: is_int and v >= 1,
            "bool": lambda: isinstance(v, bool), "str": lambda: isinstance(v, str) and bool(v),
            "strlist": lambda: isinstance(v, list) and bool(v) and all(isinstance(x, str) and x for x in v),
            "poslist": lambda: isinstance(v, list) and bool(v) and all(isinstance(x, int) and not isinstance(x, bool)
                                                                        and x >= 1 for x in v)}[kind]()


BUILTIN: dict[str, dict] = {
    "lite0": {"name": "lite0", "models": [{"recipe": "lite0_derm7"}],
              "export": {"formats": ["onnx", "tflite", "coreml"]},
              "quantize": {"schemes": ["int8"], "formats": ["tflite", "onnx", "coreml"]},
              "bench": {"threads": [1, 2]}, "report": True},
    "lite0_pruned": {"name": "lite0_pruned", "models": [{"recipe": "lite0_derm7"}],
                     "prune": {"macs_budget": 0.6, "finetune_epochs": 1, "distill": True, "train_limit": 2000},
                     "export": {"formats": ["onnx", "tflite", "coreml"]},
                     "quantize": {"schemes": ["int8"], "formats": ["tflite", "onnx", "coreml"]},
                     "bench": {"threads": [2], "runs": 30}, "report": True},
}


@dataclass
class RunRecipe:
    """A parsed run recipe: which models go down which stages, into which folder."""

    name: str
    models: list[dict]
    out: Path
    data: str | None = None
    sections: dict[str, dict] = field(default_factory=dict)  # prune/export/quantize/bench settings
    report: bool = True

    def job(self, model: dict) -> "ModelJob":
        return ModelJob(self.name, model, self.out / model_name(model), self.data, self.sections, self.report)


@dataclass
class ModelJob:
    """One model's road; plain data so that a process pool or Ray can ship it."""

    recipe: str
    model: dict
    folder: Path
    data: str | None
    sections: dict[str, dict]
    report: bool


def model_name(model: dict) -> str:
    """The model's folder name below the recipe's ``out`` (never a path of its own)."""
    from edgederm.paths import safe_name

    if "name" in model:
        return safe_name(str(model["name"]))
    if "recipe" in model:
        return safe_name(str(model["recipe"]))
    return safe_name(Path(str(model["checkpoint"])).stem)


def _read(source: str | os.PathLike) -> tuple[dict, str]:
    """(the recipe's mapping, where it came from for error lines): a built-in name or a YAML/JSON file."""
    import yaml

    text_source = str(source)
    if text_source in BUILTIN and not Path(text_source).exists():
        return json.loads(json.dumps(BUILTIN[text_source])), f"built-in recipe {text_source!r}"
    path = Path(source)
    if not path.is_file():
        raise EdgeDermError(f"recipe {path} not found: pass a YAML file or a built-in name ({', '.join(BUILTIN)})")
    try:
        d = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise EdgeDermError(f"{path} is not valid YAML: {str(e).splitlines()[0]}") from None
    return d, str(path)


def _check_sections(d: dict, where: str) -> None:
    for section, allowed in SECTION_KEYS.items():
        value = d.get(section)
        if value is False and section == "bench":  # export/quantize now, measure later on a quiet machine
            continue
        if value is not None and not isinstance(value, dict):
            raise EdgeDermError(f"{where}: '{section}' must be a mapping (or left out)")
        bad = set(value or {}) - allowed
        if bad:
            raise EdgeDermError(f"{where}: unknown {section} setting(s) {', '.join(sorted(bad))}; "
                                f"known: {', '.join(sorted(allowed))}")
        for key, v in (value or {}).items():
            if not _fits(SETTING_KINDS[key], v):
                raise EdgeDermError(f"{where}: {section}.{key} is {v!r}; it must be {_KINDS[SETTING_KINDS[key]]}")


def _check_models(models, where: str) -> None:
    if not models or not isinstance(models, list):
        raise EdgeDermError(f"{where}: 'models' must list at least one model (checkpoint: PATH or recipe: NAME)")
    for m in models:
        if not isinstance(m, dict) or not ({"checkpoint", "recipe"} & set(m)):
            raise EdgeDermError(f"{where}: each model needs 'checkpoint: PATH' or 'recipe: NAME' (got {m!r})")
        odd = [k for k in ("checkpoint", "recipe", "name") if k in m and not (isinstance(m[k], str) and m[k])]
        if odd:
            raise EdgeDermError(f"{where}: model {odd[0]} must be a non-empty string (got {m[odd[0]]!r})")
    names = [model_name(m) for m in models]
    if len(set(names)) != len(names):
        raise EdgeDermError(f"{where}: two models share a name ({names}); give one a 'name:'")


def load_recipe(source: str | os.PathLike) -> RunRecipe:
    """A recipe from a YAML/JSON file or a built-in name; one-line errors name the file and the key."""
    d, where = _read(source)
    if not isinstance(d, dict):
        raise EdgeDermError(f"{where}: a recipe is a mapping with at least 'models'")
    unknown = set(d) - TOP_KEYS
    if unknown:
        raise EdgeDermError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}; known: {', '.join(sorted(TOP_KEYS))}")
    _check_sections(d, where)
    for key in ("name", "out", "data"):
        if d.get(key) is not None and not isinstance(d[key], str):
            raise EdgeDermError(f"{where}: '{key}' must be a string, not {d[key]!r}")
    models = d.get("models")
    _check_models(models, where)
    name = str(d.get("name") or Path(str(source)).stem)
    sections = {k: dict(d[k]) for k in SECTION_KEYS if d.get(k) not in (None, False)}
    sections.setdefault("export", {})
    if d.get("bench") is not False:
        sections.setdefault("bench", {})
    return RunRecipe(name, models, Path(d.get("out") or Path("runs") / name).expanduser(), d.get("data"), sections,
                     bool(d.get("report", True)))
