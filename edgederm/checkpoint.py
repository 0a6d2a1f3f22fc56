"""Checkpoints: safetensors weights plus a JSON model card, loaded without unpickling.

``NAME.safetensors`` holds the weights; ``NAME.json`` beside it is the model card:
architecture, task, classes, preprocessing, data and split used, training recipe, metrics
and the weights' sha256. A pickle checkpoint (.pt/.pth) is read only with
``torch.load(weights_only=True)``; one that would run code is refused with a clear message.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from device_bench.integrity import dumps
from edgederm.errors import EdgeDermError
from edgederm.paths import atomic_path
from edgederm.preprocessing import Preprocessing
from edgederm.tasks import task_of

CARD_VERSION = 1


@dataclass
class ModelCard:
    """Everything needed to rebuild and use a trained model, written next to its weights."""

    architecture: str
    task: str
    classes: list[str]
    preprocessing: Preprocessing
    data: dict[str, Any] = field(default_factory=dict)
    training: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    pruning: dict[str, Any] = field(default_factory=dict)  # pruned layers' shapes + recipe (edgederm.prune)
    weights_sha256: str = ""
    edgederm_version: str = ""
    card_version: int = CARD_VERSION

    def to_dict(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d["preprocessing"] = self.preprocessing.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any], source: Path | str = "model card") -> "ModelCard":
        try:
            d = dict(d)
            d["preprocessing"] = Preprocessing.from_dict(d["preprocessing"])
            known = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
            return cls(**known)
        except (KeyError, TypeError) as e:
            raise EdgeDermError(f"{source} is not a valid EdgeDerm model card ({e}): re-create it with "
                                "edgederm train or write one as documented in docs/checkpoints.md") from None


def sha256_file(path: Path) -> str:
    from device_bench.integrity import sha256_file as device_sha256  # one implementation, devices use it too

    return device_sha256(path)


def card_path(weights: Path) -> Path:
    return weights.with_suffix(".json")


def save_checkpoint(model, card: ModelCard, path: str | os.PathLike) -> Path:
    """Write ``path`` (.safetensors) and its card atomically; returns the weights path."""
    from safetensors.torch import save_file

    from edgederm import __version__

    path = Path(path).with_suffix(".safetensors")
    tmp = atomic_path(path)
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    save_file(state, str(tmp), metadata={"format": "pt", "architecture": card.architecture})
    card.weights_sha256 = sha256_file(tmp)
    card.edgederm_version = __version__
    tmp_card = atomic_path(card_path(path))
    tmp_card.write_text(dumps(card.to_dict()) + "\n")
    os.replace(tmp, path)
    os.replace(tmp_card, card_path(path))
    return path


def read_card(path: str | os.PathLike) -> ModelCard:
    path = Path(path)
    cp = path if path.suffix == ".json" else card_path(path)
    if not cp.exists():
        raise EdgeDermError(f"no model card {cp} next to {path}: pass a checkpoint written by edgederm train, "
                            "or give --arch and a card (docs/checkpoints.md)")
    try:
        return ModelCard.from_dict(json.loads(cp.read_text()), cp)
    except json.JSONDecodeError as e:
        raise EdgeDermError(f"model card {cp} is not valid JSON ({e})") from None


def read_state_dict(path: str | os.PathLike) -> dict:
    """Tensors of a .safetensors file, or of a pickle file that holds only tensors."""
    path = Path(path)
    if not path.exists():
        raise EdgeDermError(f"checkpoint {path} does not exist")
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
        except (SafetensorError, OSError, ValueError) as e:
            raise EdgeDermError(f"checkpoint {path} is corrupt or not safetensors ({e}): re-create or re-download it") from None
    import pickle

    import torch

    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        raise EdgeDermError(f"checkpoint {path} holds Python objects that would run code when unpickled; "
                            f"refused. Convert it to safetensors in a trusted environment ({str(e).splitlines()[0][:120]})") from None
    except Exception as e:  # torch raises RuntimeError/EOFError/zipfile errors for damaged files
        raise EdgeDermError(f"checkpoint {path} is corrupt ({type(e).__name__}: {str(e)[:120]})") from None
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise EdgeDermError(f"checkpoint {path} is not a state dict of tensors")
    return obj


def load_checkpoint(path: str | os.PathLike, card: ModelCard | None = None):
    """(model in eval mode, card) from a checkpoint; errors name the file and the mismatch."""
    from edgederm.models import create_model

    path = Path(path)
    if path.suffix == ".json":
        path = path.with_suffix(".safetensors")
    if not path.exists():
        raise EdgeDermError(f"checkpoint {path} does not exist: check the path (edgederm train writes "
                            "$EDGEDERM_HOME/checkpoints/NAME.safetensors)")
    card = card or read_card(path)
    state = read_state_dict(path)
    model = create_model(card.architecture, num_classes=task_of(card.task).output_channels(card.classes))
    if card.pruning.get("layers"):  # a pruned model: resize the zoo build's layers to the recorded shapes
        from edgederm.models.deploy import apply_pruned_shapes

        apply_pruned_shapes(model, card.pruning["layers"])
    try:
        result = model.load_state_dict(state, strict=False)
    except RuntimeError as e:  # same names, other shapes
        raise EdgeDermError(f"checkpoint {path} does not fit architecture {card.architecture!r}: "
                            f"{str(e).splitlines()[1].strip()[:160] if len(str(e).splitlines()) > 1 else e}") from None
    if result.missing_keys or result.unexpected_keys:
        bad = (result.missing_keys or result.unexpected_keys)[:2]
        raise EdgeDermError(f"checkpoint {path} does not fit architecture {card.architecture!r} "
                            f"({len(result.missing_keys)} missing, {len(result.unexpected_keys)} unexpected "
                            f"tensors, e.g. {bad}): pass the matching --arch or model card")
    return model.eval(), card
