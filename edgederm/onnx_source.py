"""An existing ONNX file as the original model (source form ``model.onnx``).

The "PyTorch original" of every other source is here the user's ONNX file run in ONNX
Runtime (CPU, batch 1), its output adapted in PyTorch as the meta file says; export writes the
ONNX artifact with the ``onnx2onnx`` route and TFLite from it; Core ML is refused with the
reason (``edgederm.model_sources``).
"""

from __future__ import annotations

from pathlib import Path

from edgederm.errors import EdgeDermError


def _module_class():
    import torch

    class OnnxOriginal(torch.nn.Module):
        """The user's ONNX model, callable like a PyTorch module (float32 NCHW in, adapted output out)."""

        static_batch = True  # fixed to batch 1 in the export; the reference runs image by image too
        onnx_route = "onnx2onnx"  # export: the ONNX artifact comes from this file, not from torch.onnx.export

        @property
        def unsupported_formats(self) -> dict:
            from edgederm.model_sources import SOURCES

            return SOURCES.get("onnx").unsupported

        def __init__(self, path: Path, adapter):
            super().__init__()
            import onnxruntime as ort

            self.onnx_path = str(path)
            self.adapter = adapter
            options = ort.SessionOptions()
            options.log_severity_level = 3
            self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
            self.input_name = self.session.get_inputs()[0].name
            self.output_names = [o.name for o in self.session.get_outputs()]

        def forward(self, x):
            import numpy as np

            from edgederm.adapters import to_contract

            outs = [self.session.run(None, {self.input_name: item[None]}) for item in x.detach().cpu().float().numpy()]
            raw = [torch.from_numpy(np.concatenate([o[i] for o in outs])) for i in range(len(self.output_names))]
            y = self._select(raw)
            return to_contract(y, self.adapter)

        def _select(self, raw):
            a = self.adapter
            if a.key is not None:
                if a.key not in self.output_names:
                    raise EdgeDermError(f"output.key {a.key!r}: the ONNX file has outputs {self.output_names}")
                return raw[self.output_names.index(a.key)]
            if a.index is not None:
                return raw[a.index]
            if len(raw) != 1:
                raise EdgeDermError(f"the ONNX file has outputs {self.output_names}: pick one with output.key or "
                                    "output.index in the meta file")
            return raw[0]

    return OnnxOriginal


def load(source: str, meta: dict, weights) -> tuple:
    """(OnnxOriginal, kind) for ``source``, an .onnx file; ``--weights`` has no meaning here."""
    from edgederm.adapters import parse_adapter

    path = Path(source)
    if weights:
        raise EdgeDermError(f"--weights goes with timm:/torchvision:/module:factory sources; {path.name} holds its own")
    if not path.is_file():
        raise EdgeDermError(f"ONNX file {path} does not exist")
    try:
        model = _module_class()(path, parse_adapter(meta))
    except EdgeDermError:
        raise
    except Exception as e:
        raise EdgeDermError(f"{path} does not load in ONNX Runtime ({type(e).__name__}: "
                            f"{str(e).splitlines()[0][:160]})") from None
    return model, "ONNX file"
