"""Output adapters: a foreign model's output turned into what EdgeDerm exports and verifies.

EdgeDerm's contract (``docs/manifest.md``): a classifier returns logits ``[N, C]`` (softmax
outside the model); a segmenter returns one mask logit per pixel ``[N, 1, H, W]`` (sigmoid
> 0.5 marks lesion). A model from elsewhere often returns something else; the meta file says
what, under ``output``, and a wrapper module computes the contract's tensor from it exactly,
before export, so every format gets the same graph and verification compares like with like:

```yaml
output:
  key: out                 # dict output (torchvision segmenters: {"out": ..., "aux": ...})
  index: 0                 # tuple/list output: which element
  kind: logits             # classifier: logits (default) | probabilities (softmax already applied)
                           # segmenter: mask_logit (default, 1 channel) | mask_probability (1 channel, sigmoid applied)
                           #            | two_class_logits | two_class_probabilities (2-channel softmax masks)
  lesion_channel: 1        # two-class masks: the lesion's channel (default 1)
```

Probabilities become logits as ``log p`` (classifiers: softmax(log p) = p) or ``log p - log(1-p)``
(masks: sigmoid of it = p); two-class softmax masks become ``l_lesion - l_background``
(softmax over two channels is the sigmoid of that difference). Probabilities are clamped to
[1e-4, 1] first (a mask probability to [1e-4, 1 - 1e-3]): a saturated 0 gives a finite logit,
never -inf, and the bounds are fp16 numbers, so fp16 artifacts clamp where the original does
(1e-12 rounds to 0 in fp16, and its log to -inf). Below the clamp, ranks among near-zero
classes are lost; the top classes' probabilities are unchanged to 1e-4.
"""

from __future__ import annotations

from dataclasses import dataclass

from edgederm.errors import EdgeDermError
from edgederm.tasks import task_of

CLASSIFIER_KINDS = ("logits", "probabilities")  # a task with class labels: one score per class
MASK_KINDS = ("mask_logit", "mask_probability", "two_class_logits", "two_class_probabilities")
EPS = 1e-4  # smallest probability kept: an fp16 normal number (fp16 artifacts clamp the same)
MASK_HIGH = 1.0 - 1e-3  # a mask probability's upper clamp: 1 - 1e-7 would round to 1 in fp16


@dataclass(frozen=True)
class OutputAdapter:
    key: str | None = None
    index: int | None = None
    kind: str = "logits"
    lesion_channel: int = 1

    @property
    def identity(self) -> bool:
        return self.key is None and self.index is None and self.kind in ("logits", "mask_logit")

    def to_dict(self) -> dict:
        return {"key": self.key, "index": self.index, "kind": self.kind, "lesion_channel": self.lesion_channel}


def parse_adapter(meta: dict, where: str = "--meta") -> OutputAdapter:
    """The meta file's ``output`` mapping as an ``OutputAdapter``; one-line errors name the field."""
    spec = meta.get("output") or {}
    if not isinstance(spec, dict):
        raise EdgeDermError(f"{where}: output must be a mapping (key, index, kind, lesion_channel); see docs/byom.md")
    unknown = sorted(set(spec) - {"key", "index", "kind", "lesion_channel"})
    if unknown:
        raise EdgeDermError(f"{where}: output has unknown field(s) {', '.join(unknown)}; known: key, index, kind, "
                            "lesion_channel")
    task = meta.get("task", "classification")
    kinds = CLASSIFIER_KINDS if task_of(task).has_class_labels else MASK_KINDS
    kind = spec.get("kind", kinds[0])
    if kind not in kinds:
        raise EdgeDermError(f"{where}: output.kind {kind!r} is not one of {', '.join(kinds)} for a {task} model")
    if spec.get("key") is not None and spec.get("index") is not None:
        raise EdgeDermError(f"{where}: give output.key (dict outputs) or output.index (tuple outputs), not both")
    for field_, typ in (("key", str), ("index", int), ("lesion_channel", int)):
        value = spec.get(field_)
        if value is not None and (not isinstance(value, typ) or isinstance(value, bool)):
            raise EdgeDermError(f"{where}: output.{field_} must be {'a string' if typ is str else 'an integer'}, "
                                f"not {value!r}")
    lesion = spec.get("lesion_channel", 1)
    if lesion not in (0, 1):
        raise EdgeDermError(f"{where}: output.lesion_channel must be 0 or 1, not {lesion}")
    return OutputAdapter(spec.get("key"), spec.get("index"), kind, lesion)


def select(y, adapter: OutputAdapter):
    """The one tensor the adapter names out of a model's (dict / tuple / tensor) output."""
    if adapter.key is not None:
        if not isinstance(y, dict) or adapter.key not in y:
            have = f"keys {sorted(y)}" if isinstance(y, dict) else type(y).__name__
            raise EdgeDermError(f"output.key {adapter.key!r}: the model returned {have}; fix output.key in the meta file")
        return y[adapter.key]
    if adapter.index is not None:
        if not isinstance(y, (tuple, list)) or not -len(y) <= adapter.index < len(y):
            have = f"{len(y)} outputs" if isinstance(y, (tuple, list)) else type(y).__name__
            raise EdgeDermError(f"output.index {adapter.index}: the model returned {have}; fix output.index in the meta file")
        return y[adapter.index]
    if isinstance(y, dict):
        raise EdgeDermError(f"the model returns a dict (keys {sorted(y)}): name one with output.key in the meta file")
    if isinstance(y, (tuple, list)):
        raise EdgeDermError(f"the model returns {len(y)} outputs: pick one with output.index in the meta file")
    return y


def to_contract(t, adapter: OutputAdapter):
    """The selected tensor as EdgeDerm's logits / mask logits (see the module docstring)."""
    import torch

    kind = adapter.kind
    if kind == "probabilities":
        return torch.log(t.clamp(EPS, 1.0))
    if kind in ("mask_logit", "mask_probability"):
        if t.shape[1] != 1:
            raise EdgeDermError(f"output.kind {kind} expects 1 mask channel, the model gives {t.shape[1]}: "
                                "use two_class_logits / two_class_probabilities for 2-channel masks")
        if kind == "mask_probability":
            p = t.clamp(EPS, MASK_HIGH)
            return torch.log(p) - torch.log1p(-p)
        return t
    if kind in ("two_class_logits", "two_class_probabilities"):
        if t.shape[1] != 2:
            raise EdgeDermError(f"output.kind {kind} expects 2 mask channels, the model gives {t.shape[1]}")
        c = adapter.lesion_channel
        lesion, background = t[:, c:c + 1], t[:, 1 - c:2 - c]
        if kind == "two_class_probabilities":
            lesion, background = torch.log(lesion.clamp(EPS, 1.0)), torch.log(background.clamp(EPS, 1.0))
        return lesion - background
    return t


def adapted(model, adapter: OutputAdapter):
    """``model`` itself when the adapter changes nothing, else a wrapper module applying it."""
    if adapter.identity:
        return model
    import torch

    class Adapted(torch.nn.Module):
        """A foreign model with its output adapted to EdgeDerm's contract (edgederm.adapters)."""

        static_batch = getattr(model, "static_batch", False)

        def __init__(self):
            super().__init__()
            self.model = model

        def forward(self, x):
            return to_contract(select(self.model(x), adapter), adapter)

    return Adapted().eval()
