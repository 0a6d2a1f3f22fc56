"""Checkpoints load safely and fail with one-line, actionable errors."""

from __future__ import annotations

import json
import os

import pytest
import torch

from edgederm.checkpoint import ModelCard, load_checkpoint, read_state_dict, save_checkpoint
from edgederm.errors import EdgeDermError
from edgederm.models import create_model, get_entry


def _save(tmp_path, arch="mobilenetv3_small", classes=("a", "b", "c")):
    model = create_model(arch, num_classes=len(classes)).eval()
    card = ModelCard(arch, "classification", list(classes), get_entry(arch).preprocessing.replace(input_size=[64, 64]))
    return model, save_checkpoint(model, card, tmp_path / "m")


def test_round_trip_reproduces_outputs(tmp_path):
    model, path = _save(tmp_path)
    loaded, card = load_checkpoint(path)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(model(x), loaded(x))
    assert card.classes == ["a", "b", "c"] and card.preprocessing.input_size == (64, 64)
    assert len(card.weights_sha256) == 64
    assert not any(p.name.startswith(".") for p in tmp_path.iterdir()), "temporary files left behind"


def test_corrupt_safetensors_is_one_line_error(tmp_path):
    _, path = _save(tmp_path)
    path.write_bytes(b"\x00garbage" * 10)
    with pytest.raises(EdgeDermError, match="corrupt"):
        load_checkpoint(path)


def test_wrong_architecture_names_the_mismatch(tmp_path):
    _, path = _save(tmp_path)
    card_file = path.with_suffix(".json")
    card = json.loads(card_file.read_text())
    card["architecture"] = "mobilenetv2"
    card_file.write_text(json.dumps(card))
    with pytest.raises(EdgeDermError, match="does not fit architecture 'mobilenetv2'"):
        load_checkpoint(path)


def test_wrong_class_count_names_the_mismatch(tmp_path):
    _, path = _save(tmp_path)
    card_file = path.with_suffix(".json")
    card = json.loads(card_file.read_text())
    card["classes"] = ["a", "b"]
    card_file.write_text(json.dumps(card))
    with pytest.raises(EdgeDermError, match="does not fit"):
        load_checkpoint(path)


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned > /dev/null",))


def test_pickle_that_would_run_code_is_refused(tmp_path):
    bad = tmp_path / "evil.pt"
    torch.save({"weight": torch.zeros(1), "payload": _Evil()}, bad)
    with pytest.raises(EdgeDermError, match="would run code"):
        read_state_dict(bad)


def test_plain_tensor_pickle_is_accepted(tmp_path):
    ok = tmp_path / "ok.pth"
    torch.save({"state_dict": {"w": torch.ones(2)}}, ok)
    assert torch.equal(read_state_dict(ok)["w"], torch.ones(2))


def test_missing_and_cardless_checkpoints(tmp_path):
    with pytest.raises(EdgeDermError, match="does not exist"):
        load_checkpoint(tmp_path / "nope.safetensors")
    _, path = _save(tmp_path)
    path.with_suffix(".json").unlink()
    with pytest.raises(EdgeDermError, match="no model card"):
        load_checkpoint(path)
    path.with_suffix(".json").write_text("{not json")
    with pytest.raises(EdgeDermError, match="not valid JSON"):
        load_checkpoint(path)
