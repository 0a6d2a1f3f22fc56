"""What coremltools 9.0's PyTorch frontend gets wrong with today's torch and NumPy, taught once.

Each fix replaces or adds one entry of coremltools' torch op registry, and only where the
released converter is missing or breaks; ``register()`` is idempotent.
"""

from __future__ import annotations

import numpy as np


def register() -> None:
    """Every fix below, once per process."""
    _alias_as_noop()
    _scalar_casts_from_one_element_arrays()


def _alias_as_noop() -> None:
    """``aten::alias`` is a view of the whole tensor, which an exported program's module emits for a
    full-range slice (timm GhostNet's ``out[:, :out_chs]``). coremltools 9 treats ``alias_copy``,
    ``clone`` and ``detach`` as no-ops but has no entry for ``alias`` ("operator alias cannot be
    converted to Core ML"); it gets the same no-op."""
    from coremltools.converters.mil.frontend.torch import ops
    from coremltools.converters.mil.frontend.torch.torch_op_registry import _TORCH_OPS_REGISTRY

    if _TORCH_OPS_REGISTRY.get_func("alias") is None:
        _TORCH_OPS_REGISTRY.set_func_by_name(ops.noop, "alias")


def _scalar_casts_from_one_element_arrays() -> None:
    """``aten::Int`` / ``aten::Bool`` of a traced shape value, made safe for NumPy >= 2.4.

    A traced ``x.size()`` arithmetic (torchvision ShuffleNetV2's ``num_channels // groups`` in
    ``channel_shuffle``, timm MobileViT's patch counts) reaches coremltools as a constant held in a
    one-element 1-D array; coremltools 9.0's ``_cast`` calls ``int(x.val)`` on it, which NumPy 2.4
    refuses ("TypeError: only 0-dimensional arrays can be converted to Python scalars"). Upstream
    fixed ``_cast`` after 9.0 (apple/coremltools#2632) by taking the scalar out first; the same
    happens here for that one case, the released converter does every other."""
    from coremltools.converters.mil import Builder as mb
    from coremltools.converters.mil.frontend.torch.torch_op_registry import _TORCH_OPS_REGISTRY

    for name, dtype in (("int", int), ("bool", bool)):
        released = _TORCH_OPS_REGISTRY.get_func(name)
        if released is None or getattr(released, "edgederm_fix", False):
            continue

        def cast(context, node, released=released, dtype=dtype):
            x = context[node.inputs[0]] if len(node.inputs) == 1 else None
            if x is not None and x.can_be_folded_to_const() and np.ndim(x.val) > 0 and np.size(x.val) == 1:
                context.add(mb.const(val=dtype(np.asarray(x.val).item()), name=node.name), node.name)
            else:
                released(context, node)

        cast.edgederm_fix = True
        _TORCH_OPS_REGISTRY.set_func_by_name(cast, name)
