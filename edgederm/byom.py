"""Bring your own model: export programs, TorchScript files, or ``module.path:factory`` + weights.

Zoo checkpoints carry a model card; a foreign model needs a small YAML/JSON description
instead (``--meta``):

```yaml
name: my_classifier            # optional
task: classification           # or segmentation
classes: [akiec, bcc, bkl, df, mel, nv, vasc]
dataset: derm7                 # for verification (folder below --data)
preprocessing: {input_size: [224, 224], mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5]}
```

Accepted sources: ``model.pt2`` (``torch.export.save``; inspected first, any pickled entry
refused: ``edgederm.untrusted``), a TorchScript file (``.ts``/``.pt`` from ``torch.jit.save``;
a program, so only with ``--trust-source``), or ``package.module:factory`` with ``--weights``
(.safetensors, or a tensors-only pickle; the factory is the user's own code). A ``.pt`` that is
a pickled state dict is refused as a source: pass its architecture and ``--weights`` it.
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path

from edgederm.checkpoint import ModelCard, read_state_dict
from edgederm.errors import EdgeDermError
from edgederm.preprocessing import Preprocessing
from edgederm.tasks import TASKS, task_of


def _program_module_class():
    import torch

    class ProgramModule(torch.nn.Module):
        """Holds an exported program's module without registering it: its ``eval()``/``train()``
        raise (torch 2.14), and an exported program is already in inference form."""

        static_batch = True  # exported with batch 1; its guards refuse other batch sizes

        def __init__(self, gm):
            super().__init__()
            object.__setattr__(self, "_gm", gm)

        def forward(self, x):
            return self._gm(x)

    return ProgramModule


def _ProgramModule(gm):
    return _program_module_class()(gm)


def is_foreign(source: str) -> bool:
    """True for sources that are not EdgeDerm checkpoints (.safetensors with a card)."""
    p = Path(source)
    return p.suffix in (".pt2", ".ts", ".pt", ".pth", ".jit", ".onnx") or (":" in source and not p.exists())


def _is_factory(source: str) -> bool:
    """``package.module:factory``: code named on the command line, not a file."""
    return ":" in source and not Path(source).exists() and Path(source).suffix not in (".pt2", ".ts", ".pt", ".pth", ".jit",
                                                                                     ".onnx")


def read_meta(path: str | Path | dict | None) -> dict:
    if isinstance(path, dict):  # carried in a manifest (model.meta)
        return _checked_meta(dict(path), "the manifest's model.meta")
    if path is None:
        raise EdgeDermError("a foreign model needs --meta FILE (YAML/JSON with task, classes, preprocessing); "
                            "see docs/byom.md")
    path = Path(path)
    if not path.exists():
        raise EdgeDermError(f"--meta {path} does not exist")
    text = path.read_text()
    try:
        if path.suffix in (".yaml", ".yml"):
            import yaml

            meta = yaml.safe_load(text)
        else:
            meta = json.loads(text)
    except Exception as e:
        raise EdgeDermError(f"--meta {path} is not valid {'YAML' if path.suffix in ('.yaml', '.yml') else 'JSON'} ({e})") from None
    return _checked_meta(meta, f"--meta {path}")


def _checked_meta(meta, where: str) -> dict:
    if not isinstance(meta, dict):
        raise EdgeDermError(f"{where} must be a mapping with task, classes and preprocessing (docs/byom.md)")
    missing = [k for k in ("task", "classes") if k not in meta]
    if missing:
        raise EdgeDermError(f"{where} lacks {', '.join(missing)}")
    if meta["task"] not in TASKS:
        raise EdgeDermError(f"{where}: task must be {' or '.join(TASKS.names())}, not {meta['task']!r}")
    if not isinstance(meta["classes"], list) or not meta["classes"] or not all(isinstance(c, str) for c in meta["classes"]):
        raise EdgeDermError(f"{where}: classes must be a non-empty list of names")
    return meta


def load_foreign(source: str, meta_path=None, weights: str | None = None, trust: bool = False):
    """(module in eval mode, ModelCard) for a foreign model; ``trust`` lets a TorchScript file or a
    ``.pt2`` with pickled entries load (``--trust-source``: only for files the user made)."""
    from edgederm.model_sources import find_form

    meta = read_meta(meta_path)
    p = Path(source)
    form = find_form(source)  # timm:NAME, torchvision:NAME, model.onnx (edgederm.model_sources)
    if form is not None:
        model, kind = form.loader(source, meta, weights)
    elif p.suffix == ".pt2":
        from edgederm.untrusted import load_export_program

        model = _ProgramModule(load_export_program(p, trust=trust).module())
        kind = "torch.export program"
    elif p.suffix in (".ts", ".pt", ".pth", ".jit"):
        from edgederm.untrusted import load_torchscript

        model = load_torchscript(p, trust=trust)
        kind = "TorchScript"
    else:
        module_name, _, factory = source.partition(":")
        try:
            model = getattr(importlib.import_module(module_name), factory)()
        except (ImportError, AttributeError) as e:
            raise EdgeDermError(f"cannot build {source!r}: {e}") from None
        if weights:
            result = model.load_state_dict(read_state_dict(weights), strict=False)
            if result.missing_keys or result.unexpected_keys:
                raise EdgeDermError(f"--weights {weights} does not fit {source} ({len(result.missing_keys)} missing, "
                                    f"{len(result.unexpected_keys)} unexpected tensors)")
        kind = "factory"
    if hasattr(model, "eval"):
        model.eval()
    model = _adapted(model, meta)
    prep = Preprocessing.from_dict(meta.get("preprocessing", {}))
    card = ModelCard(architecture=f"custom:{p.name if p.suffix else source}", task=meta["task"],
                     classes=list(meta["classes"]), preprocessing=prep,
                     data={"dataset": meta.get("dataset", task_of(meta["task"]).default_dataset)},
                     training={"source": str(source), "kind": kind, "meta": meta, **_weights_record(weights)})
    return model, card


def _adapted(model, meta: dict):
    """The model with the meta file's output adapter (edgederm.adapters), its output shape checked once."""
    from edgederm.adapters import adapted, parse_adapter
    from edgederm.model_sources import check_contract

    adapter = parse_adapter(meta)
    if not getattr(model, "onnx_route", None):  # an ONNX source applies its adapter itself (edgederm.onnx_source)
        model = adapted(model, adapter)
    check_contract(model, meta)
    return model


def _weights_record(weights) -> dict:
    """--weights as the manifest keeps it (absolute path + sha256), so later stages rebuild the same original."""
    from edgederm.checkpoint import sha256_file
    from edgederm.model_sources import PRETRAINED

    if not weights:
        return {}
    if str(weights) == PRETRAINED:
        return {"weights": PRETRAINED}
    path = Path(weights).resolve()
    return {"weights": str(path), "weights_sha256": sha256_file(path) if path.is_file() else ""}


def load_original(source: str, meta=None, weights: str | None = None, trust: bool = False):
    """(model in eval mode, card) for any source: an EdgeDerm checkpoint or a foreign model.

    The one loader every stage uses for "the PyTorch original" (export, verify, quantize, bench)."""
    from edgederm.checkpoint import load_checkpoint

    source = str(source)
    if is_foreign(source):
        return load_foreign(source, meta, weights, trust=trust)
    return load_checkpoint(source)


def original_from_manifest(manifest, folder, checkpoint: str | None = None, meta=None, weights=None,
                           trust: bool = False):
    """(model, source) of the original a manifest was exported from, its bytes proven.

    The recorded checkpoint is taken as stored (absolute), or relative to the manifest's folder
    (older manifests stored it as typed); its sha256 must match what export recorded. An
    explicit ``checkpoint`` (``--checkpoint``) replaces it and is the user's word.
    """
    from edgederm.checkpoint import sha256_file

    recorded = manifest.model.get("checkpoint") or ""
    source = str(checkpoint or recorded)
    if not source:
        raise EdgeDermError("the manifest names no original model: pass --checkpoint with the PyTorch original")
    if not checkpoint and not is_foreign(source) and not Path(source).is_absolute() and (Path(folder) / source).exists():
        source = str(Path(folder) / source)
    if not _is_factory(source):
        if not Path(source).is_file():
            raise EdgeDermError(f"the original model {source!r} named in the manifest is not here: "
                                "pass --checkpoint with the PyTorch original")
        want = manifest.model.get("checkpoint_sha256")
        if not checkpoint and want and sha256_file(Path(source)) != want:
            raise EdgeDermError(f"{source} changed since the export (its sha256 differs from the manifest's): pass "
                                "--checkpoint with the original, or re-export")
    model, _ = load_original(source, meta if meta is not None else manifest.model.get("meta"),
                             weights or _recorded_weights(manifest), trust=trust)
    return model, source


def _recorded_weights(manifest) -> str | None:
    """The --weights file export recorded (model.weights), its sha256 re-proven; None when there was none."""
    from edgederm.checkpoint import sha256_file

    recorded = manifest.model.get("weights")
    if not recorded or recorded == "pretrained":
        return recorded
    path = Path(recorded)
    if not path.is_file():
        raise EdgeDermError(f"the weights {recorded} named in the manifest are not here: pass --weights with them")
    want = manifest.model.get("weights_sha256")
    if want and sha256_file(path) != want:
        raise EdgeDermError(f"{recorded} changed since the export (its sha256 differs from the manifest's): pass "
                            "--weights with the original weights, or re-export")
    return recorded
