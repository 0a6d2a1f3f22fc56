"""The task registry: each TaskSpec on a tiny synthetic case of its own kind.

``CASES`` holds one case per registered task (classes, input size, targets, and outputs that
are exactly right); ``test_every_task_has_a_case`` fails for a task registered without one, and
every other test here runs over all of ``TASKS.names()``: output spec and shape, parity of an
artifact against itself and against a worse one, the bootstrap scorer against ``metrics``, and a
loss whose gradient points downhill (with and without a distillation teacher).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from edgederm.errors import EdgeDermError
from edgederm.manifest import output_spec
from edgederm.tasks import TASKS, task_of
from edgederm.verify import Gate

N, H, W = 21, 8, 12
DERM7 = ["akiec", "bcc", "bkl", "df", "mel", "nv", "vasc"]


def classification_case(rng):
    targets = np.arange(N) % len(DERM7)
    logits = rng.normal(0, 0.5, (N, len(DERM7))) + 4.0 * np.eye(len(DERM7))[targets]  # argmax is the truth
    return DERM7, targets.astype(np.int64), logits.astype(np.float32)


def segmentation_case(rng):
    masks = np.zeros((N, H, W), np.uint8)
    for i in range(N):  # a lesion rectangle of its own size and place per image
        top, left = rng.integers(0, H // 2), rng.integers(0, W // 2)
        masks[i, top:top + 2 + i % 3, left:left + 3 + i % 4] = 1
    logits = np.where(masks[:, None], 4.0, -4.0) + rng.normal(0, 0.5, (N, 1, H, W))  # sign is the truth
    return ["lesion"], masks, logits.astype(np.float32)


CASES = {"classification": classification_case, "segmentation": segmentation_case}
TASK_NAMES = TASKS.names()


def case(name):
    return CASES[name](np.random.default_rng(0))


def worse(name, logits):
    """Outputs that get about a third of the images wrong (a damaged artifact)."""
    bad = logits.copy()
    if name == "classification":
        bad[::3] = np.roll(bad[::3], 1, axis=1)
    else:
        bad[::3] = -bad[::3]
    return bad


def test_every_task_has_a_case():
    assert set(TASK_NAMES) == set(CASES), \
        f"tasks without a synthetic case in tests/test_tasks.py CASES (add one): {sorted(set(TASK_NAMES) - set(CASES))}"


def test_unknown_task_suggests_a_name():
    with pytest.raises(EdgeDermError, match="did you mean 'segmentation'"):
        task_of("segmentaton")


@pytest.mark.parametrize("name", TASK_NAMES)
def test_spec_fields_agree_with_each_other(name):
    spec = task_of(name)
    assert spec.name == name and spec.description and spec.headline_name and spec.output_name
    gate_fields = {f.name for f in dataclasses.fields(Gate)}
    for figure, gate_field, direction in spec.gate_figures:
        assert gate_field in gate_fields and direction in ("<=", ">="), (figure, gate_field, direction)
    from edgederm.data.layouts import LAYOUTS

    assert spec.default_dataset in LAYOUTS
    assert 0.0 <= spec.label_smoothing < 1.0


@pytest.mark.parametrize("name", TASK_NAMES)
def test_output_spec_and_shape(name):
    spec = task_of(name)
    classes, targets, logits = case(name)
    out = spec.output_spec(classes)
    assert out == output_spec(name, classes)  # the manifest writes the spec's record
    assert {"kind", "activation", "meaning"} <= set(out)
    assert spec.output_channels(classes) == logits.shape[1]
    assert spec.output_shape(classes, H, W, batch=N) == list(logits.shape)
    assert spec.output_shape(classes, H, W, batch="N")[0] == "N"
    empty = spec.empty_targets(0, H, W)
    assert empty.dtype == targets.dtype and empty.shape[1:] == targets.shape[1:]
    assert spec.scoring_classes(classes) == (classes if spec.has_class_labels else None)


@pytest.mark.parametrize("name", TASK_NAMES)
def test_parity_of_an_artifact_with_itself_and_a_worse_one(name):
    spec = task_of(name)
    classes, targets, logits = case(name)
    same = spec.parity(logits, logits, targets, False)
    assert same["images"] == N and same[spec.agreement] == 1.0 and same["max_abs_prob"] == 0.0
    assert same["logit_cosine_min"] == pytest.approx(1.0) and same["logit_rel_error"] == 0.0
    for figure, _, _ in spec.gate_figures:  # every gated figure is computed
        assert figure in same, figure
    drops = [f for f, _, _ in spec.gate_figures if f.endswith("_drop")]
    assert drops and all(same[f] == 0.0 for f in drops)
    bad = spec.parity(logits, worse(name, logits), targets, False)
    assert bad[spec.agreement] < 0.8 and all(bad[f] > 0 for f in drops)
    assert bad["logit_cosine_min"] < 0.5


def test_classifier_parity_on_probabilities_has_no_logit_figures():
    spec = task_of("classification")
    classes, targets, logits = case("classification")
    from edgederm.tensors import softmax

    f = spec.parity(logits, softmax(logits), targets, True)
    assert f["top1_agreement"] == 1.0 and f["max_abs_prob"] < 1e-6
    assert f["max_abs_logit"] is None and f["logit_cosine_min"] is None


@pytest.mark.parametrize("name", TASK_NAMES)
def test_metrics_lead_with_the_headline(name):
    spec = task_of(name)
    classes, targets, logits = case(name)
    m = spec.metrics(logits, targets, classes, n_boot=20)
    assert m[spec.headline].value == pytest.approx(1.0)
    assert m[spec.headline].low <= m[spec.headline].value <= m[spec.headline].high
    assert spec.metrics(worse(name, logits), targets, classes, n_boot=0)[spec.headline].value < 0.9


@pytest.mark.parametrize("name", TASK_NAMES)
def test_scorer_agrees_with_metrics(name):
    spec = task_of(name)
    classes, targets, logits = case(name)
    bad = worse(name, logits)
    per_image, functions = spec.scorer(targets, classes, spec.output_spec(classes))
    fns = functions(per_image(bad, False))
    everything = np.arange(N)
    expected = spec.metrics(bad, targets, classes, n_boot=0)
    assert spec.headline in fns
    for key in set(fns) & set(expected):
        assert fns[key](everything) == pytest.approx(expected[key].value, abs=1e-6), key  # float32 vs float64 softmax


@pytest.mark.parametrize("name", TASK_NAMES)
def test_loss_gradient_points_downhill(name):
    torch = pytest.importorskip("torch")
    spec = task_of(name)
    classes, targets, logits = case(name)
    x = torch.tensor(worse(name, logits), requires_grad=True)
    y = torch.from_numpy(targets)
    value = spec.loss(x, y, label_smoothing=spec.label_smoothing)
    assert value.ndim == 0 and torch.isfinite(value)
    value.backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    with torch.no_grad():
        assert spec.loss(x - 0.5 * x.grad / x.grad.norm(), y, label_smoothing=spec.label_smoothing) < value
    teacher = torch.tensor(logits)
    distilled = spec.loss(x.detach(), y, teacher_logits=teacher, temperature=2.0, alpha=0.5)
    assert torch.isfinite(distilled) and distilled != spec.loss(x.detach(), y)
