"""Model files from elsewhere never run code: crafted .pt2 archives and TorchScript files are refused
by name before torch would unpickle them; a canary file proves no payload ran (and, with
--trust-source, that the payload was real)."""

from __future__ import annotations

import json
import pickle
import zipfile
from pathlib import Path

import pytest
import torch

from edgederm.errors import EdgeDermError
from edgederm.untrusted import load_export_program, load_torchscript


class Canary:
    """Unpickling this writes a file: the proof that a loader ran the archive's code."""

    def __init__(self, path: Path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def _program(path: Path) -> Path:
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU()).eval()
    torch.export.save(torch.export.export(model, (torch.randn(1, 3, 8, 8),)), str(path))
    return path


def _rewrite(src: Path, dst: Path, edit, extra: dict | None = None) -> Path:
    """Copy the archive entry by entry, letting ``edit(name, data) -> data`` change any of them."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", zipfile.ZIP_STORED) as zout:
        for info in zin.infolist():
            zout.writestr(info.filename, edit(info.filename, zin.read(info.filename)))
        root = zin.namelist()[0].split("/")[0]  # every record sits under the archive's root folder
        for name, data in (extra or {}).items():
            zout.writestr(f"{root}/{name}", data)
    return dst


def _weights_marked_pickle(tmp_path: Path, canary: Path) -> Path:
    def edit(name, data):
        if name.endswith("model_weights_config.json"):
            config = json.loads(data)
            config["config"]["0.weight"]["use_pickle"] = True
            return json.dumps(config).encode()
        if name.endswith("data/weights/weight_0"):
            return pickle.dumps(Canary(canary))
        return data

    return _rewrite(_program(tmp_path / "clean.pt2"), tmp_path / "evil.pt2", edit)


def _sample_inputs_pickle(tmp_path: Path, canary: Path) -> Path:
    def edit(name, data):
        return pickle.dumps(Canary(canary)) if name.endswith("sample_inputs/model.pt") else data

    return _rewrite(_program(tmp_path / "clean.pt2"), tmp_path / "evil_inputs.pt2", edit)


@pytest.mark.parametrize("craft, entry", [(_weights_marked_pickle, "data/weights/weight_0"),
                                          (_sample_inputs_pickle, "data/sample_inputs/model.pt")])
def test_crafted_export_archive_is_refused_by_entry(tmp_path, craft, entry):
    canary = tmp_path / "CANARY"
    evil = craft(tmp_path, canary)
    with pytest.raises(EdgeDermError, match=f"{entry}.*--trust-source") as err:
        load_export_program(evil)
    assert "\n" not in str(err.value)
    assert not canary.exists(), "the archive's pickle ran"


def test_the_crafted_payload_is_real(tmp_path):
    """Without the check, torch.export.load runs the payload: the refusal above is what protects."""
    canary = tmp_path / "CANARY"
    evil = _weights_marked_pickle(tmp_path, canary)
    try:
        load_export_program(evil, trust=True)
    except EdgeDermError:
        pass  # the payload is not a tensor, so loading fails after it ran
    assert canary.exists()


def test_clean_program_loads(tmp_path):
    program = load_export_program(_program(tmp_path / "m.pt2"))
    assert program.module()(torch.randn(1, 3, 8, 8)).shape == (1, 4, 6, 6)


def test_compiled_code_in_archive_is_refused(tmp_path):
    evil = _rewrite(_program(tmp_path / "clean.pt2"), tmp_path / "compiled.pt2", lambda n, d: d,
                    {"data/aotinductor/model/model.so": b"\x7fELF"})
    with pytest.raises(EdgeDermError, match="aotinductor.*compiled code"):
        load_export_program(evil)


def test_not_an_archive_is_one_line(tmp_path):
    junk = tmp_path / "junk.pt2"
    junk.write_bytes(b"not a zip at all")
    with pytest.raises(EdgeDermError, match="not a torch.export archive"):
        load_export_program(junk)


def test_torchscript_needs_trust(tmp_path):
    path = tmp_path / "m.ts"
    torch.jit.save(torch.jit.trace(torch.nn.Conv2d(3, 4, 3).eval(), torch.randn(1, 3, 8, 8)), str(path))
    with pytest.raises(EdgeDermError, match="TorchScript.*--trust-source"):
        load_torchscript(path)
    assert load_torchscript(path, trust=True)(torch.randn(1, 3, 8, 8)).shape == (1, 4, 6, 6)


def test_pt_state_dict_goes_to_weights(tmp_path):
    path = tmp_path / "w.pt"
    torch.save({"w": torch.zeros(2)}, path)
    with pytest.raises(EdgeDermError, match="not a TorchScript archive.*--weights"):
        load_torchscript(path, trust=True)
