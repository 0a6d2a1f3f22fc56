"""What gets converted: a model rebuilt at its pruned shapes, or its registered deployable twin.

Pruned shapes and deployable twins live with the models, so loading a checkpoint, exporting
and quantizing all reach them without importing one another.
"""

from __future__ import annotations

from edgederm.errors import EdgeDermError
from edgederm.tasks import task_of


def apply_pruned_shapes(model, layout: dict[str, dict[str, int]]) -> None:
    """Resize the named layers of a freshly built model in place to the recorded shapes.

    Parameters and buffers become uninitialised tensors of the new shape: load the pruned
    state dict (strictly) right after.
    """
    import torch
    import torch.nn as nn

    def resized(t, shape):
        if t is None:
            return None
        new = torch.empty(shape, dtype=t.dtype, device=t.device)
        return nn.Parameter(new, requires_grad=t.requires_grad) if isinstance(t, nn.Parameter) else new

    for name, attrs in layout.items():
        try:
            m = model.get_submodule(name)
        except AttributeError:
            raise EdgeDermError(f"pruned layer {name!r} of the model card is not in {type(model).__name__}: "
                                "the card belongs to another architecture") from None
        for a, v in attrs.items():
            setattr(m, a, v)
        if isinstance(m, nn.modules.conv._ConvNd):
            k = tuple(m.kernel_size)
            w = (m.in_channels, m.out_channels // m.groups) if m.transposed else (m.out_channels, m.in_channels // m.groups)
            m.weight = resized(m.weight, w + k)
            m.bias = resized(m.bias, (m.out_channels,))
        elif isinstance(m, nn.modules.batchnorm._NormBase):
            n = m.num_features
            m.weight, m.bias = resized(m.weight, (n,)), resized(m.bias, (n,))
            if m.running_mean is not None:
                m.running_mean, m.running_var = resized(m.running_mean, (n,)), resized(m.running_var, (n,))
        elif isinstance(m, nn.Linear):
            m.weight = resized(m.weight, (m.out_features, m.in_features))
            m.bias = resized(m.bias, (m.out_features,))
        elif isinstance(m, nn.GroupNorm):
            m.weight, m.bias = resized(m.weight, (m.num_channels,)), resized(m.bias, (m.num_channels,))
        else:
            raise EdgeDermError(f"pruned layer {name!r} is a {type(m).__name__}, which EdgeDerm cannot resize")


def deployable(model, card):
    """The module to convert: the model itself, or its registered deployable twin with the same weights.

    SegNet's index unpooling converts to neither TFLite builtins nor Core ML; its twin
    ``segnet_mobile`` computes the same function from convertible ops. Verification still
    compares every artifact with the original.
    """
    from edgederm.models import MODELS, create_model, get_entry

    get_entry("efficientnet_lite0")  # fills the registry
    variant = MODELS.get(card.architecture).deploy_variant if card.architecture in MODELS else None
    if not variant:
        return model, ""
    twin = create_model(variant, num_classes=task_of(card.task).output_channels(card.classes))
    if (getattr(card, "pruning", None) or {}).get("layers"):  # a pruned original: the twin gets its channel counts
        apply_pruned_shapes(twin, card.pruning["layers"])
    twin.load_state_dict(model.state_dict(), strict=True)
    return twin.eval(), f"converted from {variant} (same weights as {card.architecture}, convertible unpooling)"
