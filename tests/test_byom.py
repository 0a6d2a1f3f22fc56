"""Bring your own model: torch.export programs, TorchScript files and module:factory + weights."""

from __future__ import annotations

import json

import pytest
import torch

from edgederm.errors import EdgeDermError
from edgederm.export import export
from edgederm.manifest import Manifest


class TinyNet(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.fc = torch.nn.Linear(8, 7)

    def forward(self, x):
        return self.fc(self.conv(x).relu().mean((2, 3)))


def tiny_factory():
    torch.manual_seed(0)
    return TinyNet()


META = {"task": "classification", "classes": ["akiec", "bcc", "bkl", "df", "mel", "nv", "vasc"],
        "dataset": "derm7", "preprocessing": {"input_size": [32, 48]}}


@pytest.fixture()
def meta_file(tmp_path):
    path = tmp_path / "meta.json"
    path.write_text(json.dumps(META))
    return path


@pytest.mark.parametrize("kind", ["pt2", "torchscript", "factory"])
def test_foreign_sources_export_and_verify(kind, meta_file, synthetic_root, tmp_path):
    model = tiny_factory().eval()
    x = torch.randn(1, 3, 32, 48)
    weights = None
    if kind == "pt2":
        source = tmp_path / "m.pt2"
        torch.export.save(torch.export.export(model, (x,)), str(source))
    elif kind == "torchscript":
        source = tmp_path / "m.ts"
        torch.jit.save(torch.jit.trace(model, x), str(source))
    else:
        from safetensors.torch import save_file

        weights = tmp_path / "w.safetensors"
        save_file(model.state_dict(), str(weights))
        source = "tests.test_byom:tiny_factory"
    outcome = export(str(source), tmp_path / "out", formats=["onnx"], data_root=synthetic_root, n_verify=16,
                     meta=meta_file, weights=weights, trust_source=kind == "torchscript")  # TorchScript is a program
    assert not outcome.failures, outcome.failures
    m = Manifest.load(tmp_path / "out")
    assert m.model["architecture"].startswith("custom:")
    assert m.artifact("onnx_fp32").verify["status"] == "pass"


def test_foreign_model_needs_meta(tmp_path):
    source = tmp_path / "m.ts"
    torch.jit.save(torch.jit.trace(tiny_factory().eval(), torch.randn(1, 3, 8, 8)), str(source))
    with pytest.raises(EdgeDermError, match="needs --meta"):
        export(str(source), tmp_path / "out", formats=["onnx"], verify=False)
    bad = tmp_path / "bad.yaml"
    bad.write_text("task: detection\nclasses: [a]\n")
    with pytest.raises(EdgeDermError, match="task must be classification or segmentation"):
        export(str(source), tmp_path / "out", formats=["onnx"], verify=False, meta=bad)


@torch.library.custom_op("edgederm_test::mystery", mutates_args=())
def mystery(x: torch.Tensor) -> torch.Tensor:
    return x.clone()


@mystery.register_fake
def _(x):
    return torch.empty_like(x)


def test_unsupported_operator_is_named(tmp_path):
    """An operator with no ONNX translation fails with one line naming it, not a stack trace."""
    from converters.torch2onnx import convert
    from edgederm.manifest import Manifest, output_spec
    from edgederm.preprocessing import Preprocessing

    class Odd(torch.nn.Module):
        def forward(self, x):
            return mystery(x).mean((2, 3)).repeat(1, 3)[:, :7]

    manifest = Manifest({"name": "odd", "architecture": "custom", "task": "classification", "classes": list("abcdefg")},
                        Preprocessing(input_size=(16, 16)), output_spec("classification", list("abcdefg")))
    with pytest.raises(EdgeDermError, match=r"odd: operator .*mystery.* cannot be converted to ONNX") as err:
        convert(Odd(), manifest, tmp_path / "odd.onnx")
    assert "\n" not in str(err.value)
    assert not (tmp_path / "odd.onnx").exists()
