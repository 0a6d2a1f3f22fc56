"""Tracing helpers shared by the routes that trace a PyTorch module (torch2onnx, torch2coreml)."""

from __future__ import annotations

from contextlib import contextmanager


@contextmanager
def frozen_parameters(model):
    """Every parameter reachable from ``model`` with ``requires_grad`` off inside the block, then restored.

    ``torch.jit.trace`` (used by coremltools' input and by the TorchScript ONNX exporter)
    records the tensors it meets outside the registered module tree as constants, and refuses
    one that requires grad ("Cannot insert a Tensor that requires grad as a constant"). An
    exported program's module is such a case: ``edgederm.byom`` holds it as a plain attribute
    (its ``eval()``/``train()`` raise), so its parameters are found here by walking every module
    attribute, registered or not. Keep the block open until the traced graph is consumed: its
    constants are these very tensors.
    """
    import torch

    seen, stack, params = set(), [model], []
    while stack:
        m = stack.pop()
        if id(m) in seen:
            continue
        seen.add(id(m))
        params += [p for p in m.parameters(recurse=False) if p.requires_grad]
        stack += list(m.children()) + [v for v in vars(m).values() if isinstance(v, torch.nn.Module)]
    for p in params:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p in params:
            p.requires_grad_(True)
