"""Which layers pruning may touch: run order, layers that keep their channels, hidden couplings,
and the shape attributes a pruned model's card records."""

from __future__ import annotations

from typing import Any

from edgederm.errors import EdgeDermError


def prunable_types() -> tuple:
    import torch.nn as nn

    return (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose2d, nn.Linear)


def execution_order(model, example) -> list[str]:
    """Names of the conv/linear layers in the order a forward pass runs them."""
    import torch

    names = {m: n for n, m in model.named_modules()}
    order: list[str] = []
    hooks = [m.register_forward_hook(lambda mod, i, o: order.append(names[mod]))
             for m in model.modules() if isinstance(m, prunable_types())]
    try:
        with torch.no_grad():
            model(example)
    finally:
        for h in hooks:
            h.remove()
    return list(dict.fromkeys(order))


def default_protected(model, example) -> dict[str, str]:
    """name -> reason for the layers whose output channels pruning must keep by default.

    Found generically: the first conv run (the stem, whose few channels carry everything),
    and the output head (smp's ``segmentation_head``, timm's ``get_classifier()``, or else
    the last conv/linear run) - the head's outputs are the classes or the mask.
    """
    order = execution_order(model, example)
    if not order:
        raise EdgeDermError(f"{type(model).__name__} has no conv or linear layers to prune")
    protected = {order[0]: "stem (first conv)"}
    names = {m: n for n, m in model.named_modules()}
    head = getattr(model, "segmentation_head", None)
    if head is None and callable(getattr(model, "get_classifier", None)):
        head = model.get_classifier()
    head_layers = [names[m] for m in head.modules() if isinstance(m, prunable_types())] if head is not None else []
    for name in head_layers or [order[-1]]:
        protected[name] = "output head"
    return protected


def protected_layers(model, example, defaults: bool, extra: list[str]) -> dict[str, str]:
    """The default protected layers (when ``defaults``) plus the user's ``--protect`` names, checked."""
    import difflib

    modules = dict(model.named_modules())
    protected = default_protected(model, example) if defaults else {}
    for name in extra:
        if name not in modules or not name:
            close = difflib.get_close_matches(name, [n for n in modules if n], n=1, cutoff=0.6)
            hint = f"; did you mean {close[0]!r}?" if close else " (module names as in model.named_modules())"
            raise EdgeDermError(f"--protect {name!r}: no such layer in {type(model).__name__}{hint}")
        protected[name] = "--protect"
    return protected


def _pooled_unpooled_tensors(model, example) -> list[tuple[Any, Any]]:
    """(tensor max-pooled with indices, tensor max-unpooled with those indices) from one forward pass."""
    import torch
    from torch.overrides import TorchFunctionMode

    pool_inputs: dict[int, Any] = {}
    pairs: list[tuple[Any, Any]] = []

    class Watch(TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):
            kwargs = kwargs or {}
            out = func(*args, **kwargs)
            name = getattr(func, "__name__", "")
            if name.startswith("max_pool") and name.endswith("with_indices") and isinstance(out, tuple):
                pool_inputs[id(out[1])] = (args[0], out[1])  # keep the indices alive so ids stay unique
            elif name.startswith("max_unpool"):
                indices = args[1] if len(args) > 1 else kwargs.get("indices")
                if id(indices) in pool_inputs:
                    pairs.append((pool_inputs[id(indices)][0], args[0]))
            return out

    with torch.enable_grad(), Watch():
        model(example)
    return pairs


def _nearest_layer(t, param_owner: dict[int, str]) -> str | None:
    """The conv/linear layer nearest behind tensor ``t`` in its autograd graph (breadth first)."""
    seen, queue = set(), [t.grad_fn]
    while queue:
        fn = queue.pop(0)
        if fn is None or fn in seen:
            continue
        seen.add(fn)
        if type(fn).__name__.startswith("Convolution") or type(fn).__name__.startswith("Addmm"):
            for nxt, _ in fn.next_functions:
                var = getattr(nxt, "variable", None)
                if var is not None and id(var) in param_owner and var.dim() > 1:
                    return param_owner[id(var)]
        queue.extend(nxt for nxt, _ in fn.next_functions)
    return None


def index_coupled_layers(model, example) -> list[tuple[str, str]]:
    """(encoder layer, decoder layer) pairs whose output channels must stay aligned.

    ``max_unpool2d(x, indices)`` needs ``x`` to have exactly the channels of the pooled
    encoder map that produced ``indices``. The indices carry no gradient, so torch-pruning's
    graph does not see this coupling (SegNet). Found by watching one forward pass: the
    nearest conv behind the pooled map and behind the unpooled input form a pair.
    """
    tensor_pairs = _pooled_unpooled_tensors(model, example)
    if not tensor_pairs:
        return []
    param_owner = {id(p): n for n, m in model.named_modules() if isinstance(m, prunable_types())
                   for p in m.parameters(recurse=False)}
    pairs = []
    for source, follower in tensor_pairs:
        a, b = _nearest_layer(source, param_owner), _nearest_layer(follower, param_owner)
        if a and b and a != b:
            pairs.append((a, b))
    return pairs


# --- recording pruned shapes ---------------------------------------------------------------
def _shape_attrs(module) -> tuple[str, ...]:
    import torch.nn as nn

    if isinstance(module, nn.modules.conv._ConvNd):
        return ("in_channels", "out_channels", "groups")
    if isinstance(module, nn.modules.batchnorm._NormBase):
        return ("num_features",)
    if isinstance(module, nn.Linear):
        return ("in_features", "out_features")
    if isinstance(module, nn.GroupNorm):
        return ("num_groups", "num_channels")
    return ()


def pruned_layout(pruned, reference) -> dict[str, dict[str, int]]:
    """Shape attributes of every layer of ``pruned`` that differ from ``reference`` (the zoo build)."""
    ref = dict(reference.named_modules())
    layout = {}
    for name, m in pruned.named_modules():
        attrs = _shape_attrs(m)
        if attrs and name in ref:
            now = {a: int(getattr(m, a)) for a in attrs}
            if now != {a: int(getattr(ref[name], a)) for a in attrs}:
                layout[name] = now
    return layout
