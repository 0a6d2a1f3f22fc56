"""What a diagnosis holds: its settings, one row per quantized layer, the measured float fallbacks,
and their tables. The task's figures come from its ``TaskSpec``: the agreement figure with the
float model (``spec.agreement``) and the headline metric against the truth (``spec.headline``)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

from edgederm.tasks import TaskSpec, task_of
from quantization.onnx import OrtStaticConfig

# The fallback table's short column names, by figure; a figure not listed shows its own name.
SHORT_NAMES = {"top1_agreement": "top-1 agree", "mask_dice_mean": "mask Dice vs float",
               "balanced_accuracy": "bal-acc", "dice": "Dice"}


@dataclass(frozen=True)
class DiagnoseConfig:
    """What ``edgederm diagnose`` measures.

    Attributes:
        format: ``onnx`` or ``tflite``.
        calibration_images: train images that set the int8 ranges.
        stat_images: how many of those the per-layer statistics run on.
        eval_images: verification (test) images for the fallback gains.
        top: layers shown in the table.
        fallback: how many of the worst layers are re-quantized with a float fallback (0: none).
        ort: ``quantization.onnx.OrtStaticConfig`` of the ``int8:onnx`` scheme being diagnosed
            (types, per-channel, range method, pre-processing); the diagnosis always uses its
            QDQ form, which has the same ranges and rounding and shows every quantized tensor.
    """

    format: str = "onnx"
    calibration_images: int = 64
    stat_images: int = 32
    eval_images: int = 128
    top: int = 10
    fallback: int = 5
    ort: OrtStaticConfig = field(default_factory=OrtStaticConfig)


@dataclass
class LayerError:
    layer: str  # the node producing the tensor ("<graph input>" for the input)
    op_type: str
    tensor: str
    own_sqnr_db: float
    own_cosine: float
    channel_sqnr_db: float  # own error, median channel (see RunningStats.channel_sqnr_db)
    sqnr_db: float  # int8 model vs float model at this tensor
    cosine: float
    added_db: float  # how much this layer lowered the model SQNR (worst input's minus its own)
    scale: float
    steps_per_std: float
    weight_sqnr_db: float | None = None
    fallback_nodes: list[str] = field(default_factory=list)


@dataclass
class Fallback:
    layer: str
    nodes: list[str]
    agreement: float  # the task's agreement figure with the float model (top-1 agreement, mask Dice)
    metric: float  # the task's headline metric against the truth (balanced accuracy, Dice)
    agreement_gain: float = 0.0
    metric_gain: float = 0.0


def improves(metric_gain: float, agreement_gain: float) -> bool:
    """Better on one figure and worse on neither: a fallback must not trade the task metric for
    agreement with the float model, nor the reverse (the verification gates check both)."""
    return metric_gain >= 0 and agreement_gain >= 0 and (metric_gain > 0 or agreement_gain > 0)


def _cell(value, spec: str) -> str:
    """``-`` for what this format's route does not measure."""
    return "-" if value is None or not math.isfinite(value) else format(value, spec)


@dataclass
class Diagnosis:
    format: str
    model: str
    task: str
    stat_images: int
    eval_images: int
    layers: list[LayerError]  # worst first
    float_figures: dict
    int8_figures: dict
    fallbacks: list[Fallback] = field(default_factory=list)  # largest gain first
    combined: Fallback | None = None  # the greedy combination of helpful layers (``greedy_combination``)
    settings: dict = field(default_factory=dict)

    @property
    def spec(self) -> TaskSpec:
        return task_of(self.task)

    @property
    def agreement_name(self) -> str:
        return self.spec.agreement

    @property
    def metric_name(self) -> str:
        return self.spec.headline

    @property
    def metric_key(self) -> str:
        """The parity figure holding the headline metric of the model under test."""
        return f"{self.spec.headline}_artifact"

    def fallback_from(self, label: str, nodes: list[str], figures: dict) -> Fallback:
        """A measured fallback (``figures``: parity with the float model) and its gains over plain int8."""
        a, m = figures[self.agreement_name], figures[self.metric_key]
        return Fallback(label, list(nodes), a, m, a - self.int8_figures[self.agreement_name],
                        m - self.int8_figures[self.metric_key])

    def rank_fallbacks(self) -> None:
        self.fallbacks.sort(key=lambda f: (f.agreement_gain, f.metric_gain), reverse=True)

    def sensitive_nodes(self, k: int | None = None) -> list[str]:
        """Nodes to keep in float: those of the fallbacks that helped, best first (deduplicated)."""
        chosen = [f for f in self.fallbacks if f.agreement_gain > 0 or f.metric_gain > 0][:k]
        return list(dict.fromkeys(n for f in chosen for n in f.nodes))

    def recommended(self) -> Fallback | None:
        """The measured fallback to build: the greedy combination, else the best single layer, if it
        is no worse than plain int8 on both figures and better on one."""
        candidates = ([self.combined] if self.combined else []) + self.fallbacks
        return next((f for f in candidates if improves(f.metric_gain, f.agreement_gain)), None)

    def to_dict(self) -> dict:
        return asdict(self)

    def layer_rows(self, top: int | None = None) -> list[dict]:
        f = _cell
        return [{"#": i, "layer": e.layer, "op": e.op_type, "own SQNR dB": f(e.own_sqnr_db, ".1f"),
                 "own cos": f(e.own_cosine, ".4f"), "chan SQNR dB": f(e.channel_sqnr_db, ".1f"),
                 "model SQNR dB": f(e.sqnr_db, ".1f"), "model cos": f(e.cosine, ".4f"),
                 "added dB": f(e.added_db, "+.1f"), "steps/σ": f(e.steps_per_std, ".1f"),
                 "weight SQNR dB": f(e.weight_sqnr_db, ".1f")}
                for i, e in enumerate(self.layers[:top], 1)]

    def fallback_rows(self) -> list[dict]:
        """Plain int8, each fallback (and the greedy combination), then the float model."""
        agree = SHORT_NAMES.get(self.agreement_name, self.agreement_name)
        metric = SHORT_NAMES.get(self.metric_name, self.metric_name)
        rows = [{"kept in float": "(nothing: plain int8)", agree: f"{self.int8_figures[self.agreement_name]:.4f}",
                 "Δ agree": "", metric: f"{self.int8_figures[self.metric_key]:.4f}", f"Δ {metric} pt": "",
                 "nodes": 0}]
        for f in self.fallbacks + ([self.combined] if self.combined else []):
            label = f.layer if f is not self.combined else f"greedy: {f.layer}"
            rows.append({"kept in float": label, agree: f"{f.agreement:.4f}", "Δ agree": f"{f.agreement_gain:+.4f}",
                         metric: f"{f.metric:.4f}", f"Δ {metric} pt": f"{100 * f.metric_gain:+.2f}",
                         "nodes": len(f.nodes)})
        rows.append({"kept in float": "(everything: float model)", agree: "1.0000", "Δ agree": "",
                     metric: f"{self.float_figures[self.metric_key]:.4f}", f"Δ {metric} pt": "", "nodes": "all"})
        return rows
