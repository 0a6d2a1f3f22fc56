"""Model archives from elsewhere, opened without running their code.

``torch.export.load`` unpickles with ``weights_only=False`` whatever an archive marks as
pickled (weights or constants with ``use_pickle``, custom and opaque objects, legacy weight
files, ``sample_inputs`` that fail the tensors-only loader), and loads compiled AOTInductor
libraries. A ``.pt2`` is therefore inspected first, in memory: every such entry is refused by
name, and the same bytes that passed are what torch then reads (no second read of the file).

A TorchScript archive is a program (its ``code/`` runs when called, its ``.pkl`` records are
unpickled by TorchScript's loader), so it is loaded only when the user says ``--trust-source``.
A ``module:factory`` source runs the user's own Python by definition: it is their code, named
on their command line, not a file from elsewhere.
"""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

from edgederm.errors import EdgeDermError

TRUST_HINT = "re-export it with torch.export.save from plain tensors, or pass --trust-source if you made this file yourself"

# Archive folders whose contents are compiled code or runtimes' own binaries: never for us.
_CODE_DIRS = ("data/aotinductor/", "data/executorch/", "data/mtia", "xl_model_weights/")


def read_bytes(path: Path, what: str) -> bytes:
    if not path.is_file():
        raise EdgeDermError(f"{what} {path} does not exist")
    return path.read_bytes()


def _refuse(path: Path, entry: str, why: str):
    raise EdgeDermError(f"{path} is refused: archive entry {entry!r} {why}, and loading it would run code; {TRUST_HINT}")


def _tensors_only(payload: bytes) -> bool:
    import torch

    try:
        torch.load(io.BytesIO(payload), map_location="cpu", weights_only=True)
        return True
    except Exception:
        return False


def check_export_archive(path: Path, data: bytes) -> None:
    """Raise ``EdgeDermError`` naming the first entry of a ``.pt2`` that would unpickle or load code."""
    from torch.export.pt2_archive._package import PT2ArchiveReader

    if not zipfile.is_zipfile(io.BytesIO(data)):
        raise EdgeDermError(f"{path} is not a torch.export archive (not a zip file): save it with torch.export.save")
    try:
        reader = PT2ArchiveReader(io.BytesIO(data))
        names = reader.get_file_names()
    except Exception as e:
        raise EdgeDermError(f"{path} is not a torch.export archive ({type(e).__name__}): save it with torch.export.save") from None
    for name in names:
        if name.startswith(_CODE_DIRS):
            _refuse(path, name, "holds compiled code")
        if name == "version" or name.endswith(".pkl"):
            _refuse(path, name, "is an old-format or pickled record")
    models = [n[len("models/"):-len(".json")] for n in names if n.startswith("models/") and n.endswith(".json")]
    if not models:
        raise EdgeDermError(f"{path} holds no exported program (no models/*.json): save it with torch.export.save")

    def config(entry: str) -> dict:
        if entry not in names:
            _refuse(path, entry, "is missing (a legacy archive, whose weights are one pickle)")
        try:
            return json.loads(reader.read_string(entry)).get("config", {})
        except (ValueError, AttributeError):
            raise EdgeDermError(f"{path}: archive entry {entry!r} is not valid JSON; re-export the model") from None

    for model in models:
        for legacy in (f"data/weights/{model}.pt", f"data/constants/{model}.pt"):
            if legacy in names:
                _refuse(path, legacy, "is a legacy pickle")
        for kind in ("weights", "constants"):
            for fqn, meta in config(f"data/{kind}/{model}_{kind}_config.json").items():
                file = str((meta or {}).get("path_name", ""))
                if (meta or {}).get("use_pickle"):
                    _refuse(path, f"data/{kind}/{file}", f"({fqn}) is marked use_pickle")
                if kind == "constants" and not file.startswith("tensor_"):
                    _refuse(path, f"data/constants/{file}", f"({fqn}) is a custom or opaque Python object")
        sample = f"data/sample_inputs/{model}.pt"
        if sample in names and not _tensors_only(reader.read_bytes(sample)):
            _refuse(path, sample, "does not load as plain tensors")


def load_export_program(path: Path, trust: bool = False):
    """The ``ExportedProgram`` in ``path``, after ``check_export_archive`` unless ``trust``."""
    import torch

    data = read_bytes(path, "export program")
    if not trust:
        check_export_archive(path, data)
    try:
        return torch.export.load(io.BytesIO(data))
    except Exception as e:
        raise EdgeDermError(f"{path} is not a loadable torch.export program ({type(e).__name__}: "
                            f"{str(e).splitlines()[0][:120] if str(e) else ''}); save it with torch.export.save") from None


def is_torchscript(data: bytes) -> bool:
    """A zip whose records include TorchScript code (``*/code/``): torch.jit.save's layout."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            return any("/code/" in n for n in z.namelist())
    except zipfile.BadZipFile:
        return False


def load_torchscript(path: Path, trust: bool = False):
    import torch

    data = read_bytes(path, "TorchScript file")
    if not is_torchscript(data):
        raise EdgeDermError(f"{path} is not a TorchScript archive: for a state dict pass its architecture as the source "
                            "and the file as --weights (e.g. timm:NAME or module.path:factory)")
    if not trust:
        raise EdgeDermError(f"{path} is TorchScript, a program that runs when loaded and called; refused without "
                            "--trust-source (give it only for a file you made), or export a .pt2 with torch.export.save")
    try:
        return torch.jit.load(io.BytesIO(data), map_location="cpu")
    except Exception as e:
        raise EdgeDermError(f"{path} is not a loadable TorchScript file ({type(e).__name__}: {str(e)[:120]})") from None
