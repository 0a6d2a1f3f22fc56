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

Accepted sources: ``model.pt2`` (``torch.export.save``), a TorchScript file (``.pt``/``.ts``
from ``torch.jit.save``), or ``package.module:factory`` with ``--weights`` (.safetensors, or a
tensors-only pickle). Loading never unpickles arbitrary Python objects.
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path

from edgederm.checkpoint import ModelCard, read_state_dict
from edgederm.errors import EdgeDermError
from edgederm.preprocessing import Preprocessing


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
    return p.suffix in (".pt2", ".ts", ".pt", ".jit") or (":" in source and not p.exists())


def read_meta(path: str | Path | None) -> dict:
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
    missing = [k for k in ("task", "classes") if k not in (meta or {})]
    if missing:
        raise EdgeDermError(f"--meta {path} lacks {', '.join(missing)}")
    if meta["task"] not in ("classification", "segmentation"):
        raise EdgeDermError(f"--meta {path}: task must be classification or segmentation, not {meta['task']!r}")
    return meta


def load_foreign(source: str, meta_path=None, weights: str | None = None):
    """(module in eval mode, ModelCard) for a foreign model."""
    import torch

    meta = read_meta(meta_path)
    p = Path(source)
    if p.suffix == ".pt2":
        if not p.exists():
            raise EdgeDermError(f"export program {p} does not exist")
        try:
            program = torch.export.load(str(p))
        except Exception as e:
            raise EdgeDermError(f"{p} is not a torch.export program ({type(e).__name__}: {str(e)[:120]})") from None
        model = _ProgramModule(program.module())
        kind = "torch.export program"
    elif p.suffix in (".ts", ".pt", ".jit"):
        if not p.exists():
            raise EdgeDermError(f"TorchScript file {p} does not exist")
        try:
            model = torch.jit.load(str(p), map_location="cpu")
        except Exception as e:
            raise EdgeDermError(f"{p} is not a TorchScript file ({type(e).__name__}: {str(e)[:120]}); for a state "
                                "dict use module.path:factory --weights FILE") from None
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
    prep = Preprocessing.from_dict(meta.get("preprocessing", {}))
    card = ModelCard(architecture=f"custom:{p.name if p.suffix else source}", task=meta["task"],
                     classes=list(meta["classes"]), preprocessing=prep,
                     data={"dataset": meta.get("dataset", "derm7" if meta["task"] == "classification" else "lesionseg")},
                     training={"source": str(source), "kind": kind})
    return model, card
