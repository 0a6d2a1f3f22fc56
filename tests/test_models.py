"""The model zoo: every registered entry builds, runs at its default input size, and is accounted for.

``EXPECTED`` is the explicit table of what each zoo model is (task, measured size, measured
compute at the entry's default input). A model added to the registry without a row here fails
``test_every_registered_model_is_in_the_table`` (like optimum's ``test_all_models_tested``), so
no zoo entry ships without being built and run by this file.
"""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from edgederm.errors import EdgeDermError  # noqa: E402
from edgederm.models import MODELS, create_model, get_entry, model_stats  # noqa: E402

get_entry("mobilenetv2")  # importing the zoo fills the registry before parametrisation
ALL_MODELS = MODELS.names()

CLS, SEG = "classification", "segmentation"

# name -> (task, params in millions, GMACs at batch 1 and the entry's default input size).
# Measured with torch 2.x FlopCounterMode, timm 1.0.31, smp 0.6.0; num_classes=7 for classifiers.
EXPECTED: dict[str, tuple[str, float, float]] = {
    "mobilenetv2": (CLS, 2.233, 0.170),
    "mobilenetv3_small": (CLS, 1.525, 0.032),
    "mobilenetv3_large": (CLS, 4.211, 0.123),
    "efficientnet_b0": (CLS, 4.017, 0.220),
    "efficientnet_lite0": (CLS, 3.380, 0.219),
    "resnet18": (CLS, 11.180, 1.024),
    "resnet50": (CLS, 23.522, 2.295),
    "densenet121": (CLS, 6.961, 1.555),
    "vit_tiny": (CLS, 5.509, 0.595),
    "swin_tiny": (CLS, 27.525, 4.490),
    "unet_lite0": (SEG, 5.198, 2.161),
    "unet_mobilenetv2": (SEG, 6.629, 2.509),
    "unetpp_mobilenetv2": (SEG, 6.825, 3.332),
    "deeplabv3plus_mobilenetv2": (SEG, 4.379, 1.111),
    "unet_mit_b0": (SEG, 5.549, 2.219),
    "fcn_mobilenetv2": (SEG, 5.174, 0.435),
    "segnet": (SEG, 1.181, 1.501),
    "segnet_mobile": (SEG, 1.181, 1.501),
}
PARAMS_TOL = 0.05
MACS_TOL = 0.15  # FLOP counting rules drift a little across torch versions; a wrong input size does not


# --- the table covers the registry ------------------------------------------------------------

def test_every_registered_model_is_in_the_table():
    missing = sorted(set(ALL_MODELS) - set(EXPECTED))
    assert not missing, f"zoo models without a row in tests/test_models.py EXPECTED (measure and add): {missing}"


def test_table_has_no_stale_rows():
    stale = sorted(set(EXPECTED) - set(ALL_MODELS))
    assert not stale, f"EXPECTED rows for models no longer registered: {stale}"


# --- build, forward, shape, stats --------------------------------------------------------------

@pytest.mark.parametrize("name", ALL_MODELS)
def test_model_builds_and_runs_at_default_size(name):
    entry = get_entry(name)
    h, w = entry.preprocessing.input_size
    assert h % entry.input_divisor == 0 and w % entry.input_divisor == 0, \
        f"{name}: default input {(h, w)} is not a multiple of its input_divisor {entry.input_divisor}"

    torch.manual_seed(0)
    model = create_model(name).eval()
    x = torch.randn(1, 3, h, w)
    with torch.no_grad():
        y = model(x)
    if entry.is_classifier:
        assert tuple(y.shape) == (1, 7), f"{name}: classifier output {tuple(y.shape)}"
    else:
        assert tuple(y.shape) == (1, 1, h, w), f"{name}: segmenter output {tuple(y.shape)} for input {(h, w)}"
    assert torch.isfinite(y).all(), f"{name}: non-finite output"

    stats = model_stats(model, (h, w))
    assert stats["params"] > 0 and stats["macs"] > 0, f"{name}: {stats}"
    assert not model.training, "model_stats must restore the eval/train mode"

    task, params_m, gmacs = EXPECTED[name]
    assert entry.task == task
    got_params = stats["params"] / 1e6
    assert abs(got_params - params_m) <= PARAMS_TOL * params_m, \
        f"{name}: {got_params:.3f}M params, table says {params_m}M (update EXPECTED if intended)"
    got_gmacs = stats["macs"] / 1e9
    assert abs(got_gmacs - gmacs) <= MACS_TOL * gmacs, \
        f"{name}: {got_gmacs:.3f} GMACs at {(h, w)}, table says {gmacs}"


def test_classifier_num_classes_is_honoured():
    model = create_model("mobilenetv3_small", num_classes=3).eval()
    with torch.no_grad():
        assert tuple(model(torch.randn(2, 3, *get_entry("mobilenetv3_small").preprocessing.input_size)).shape) == (2, 3)


def test_model_stats_restores_training_mode():
    model = create_model("mobilenetv3_small").train()
    model_stats(model, (64, 64))
    assert model.training


# --- the families the product promises ----------------------------------------------------------

def _entries(task):
    return [get_entry(n) for n in ALL_MODELS if get_entry(n).task == task]


@pytest.mark.parametrize("name", ["mobilenetv2", "mobilenetv3_small", "mobilenetv3_large", "efficientnet_b0",
                                  "efficientnet_lite0", "resnet18", "resnet50", "densenet121"])
def test_promised_classifier_is_registered(name):
    assert name in MODELS
    assert get_entry(name).is_classifier


@pytest.mark.parametrize("family", ["vit", "swin"])
def test_transformer_classifier_family_is_registered(family):
    assert any(e.family == family for e in _entries(CLS)), f"no {family} classifier in the zoo"


def _encoder(e):
    return str(e.builder_args.get("encoder", "mobilenet_v2" if e.family == "fcn" else ""))


@pytest.mark.parametrize("family, predicate", [
    ("U-Net with a mobile encoder",
     lambda e: e.family == "unet" and any(k in _encoder(e) for k in ("mobilenet", "lite"))),
    ("SegNet", lambda e: e.family == "segnet"),
    ("FCN", lambda e: e.family == "fcn"),
    ("DeepLabV3+ on a MobileNet encoder", lambda e: e.family == "deeplabv3plus" and "mobilenet" in _encoder(e)),
    ("U-Net++", lambda e: e.family == "unetplusplus"),
    ("CNN-Transformer hybrid", lambda e: e.family == "cnn_transformer"),
])
def test_promised_segmenter_family_is_registered(family, predicate):
    assert any(predicate(e) for e in _entries(SEG)), f"no {family} segmenter in the zoo"


def test_reference_models_are_flagged():
    refs = [n for n in ALL_MODELS if get_entry(n).reference]
    assert {"efficientnet_lite0", "mobilenetv3_large", "unet_lite0", "segnet"} <= set(refs)


# --- errors ----------------------------------------------------------------------------------------

def test_unknown_model_suggests_the_close_name():
    with pytest.raises(EdgeDermError, match="did you mean 'efficientnet_lite0'"):
        create_model("efficientnet_lite")


@pytest.mark.parametrize("name", [n for n in ALL_MODELS if not get_entry(n).offline_weights])
def test_offline_imagenet_weights_refused_where_there_are_none(name):
    with pytest.raises(EdgeDermError, match="no offline ImageNet weights"):
        create_model(name, pretrained="imagenet")


def test_offline_weights_are_declared_for_the_lite0_models():
    # offline weights need a numerical proof like tests/test_lite0_weights.py: add one with the entry
    assert {n for n in ALL_MODELS if get_entry(n).offline_weights} == {"efficientnet_lite0", "unet_lite0"}


# --- SegNet: the mobile unpooling is a drop-in for the index unpooling ------------------------------

@pytest.fixture(scope="module")
def segnet_pair():
    torch.manual_seed(0)
    ref = create_model("segnet").eval()
    mobile = create_model("segnet_mobile").eval()
    return ref, mobile


def test_segnet_variants_share_parameter_names_and_shapes(segnet_pair):
    ref, mobile = segnet_pair
    a = {k: tuple(v.shape) for k, v in ref.state_dict().items()}
    b = {k: tuple(v.shape) for k, v in mobile.state_dict().items()}
    assert a == b


@pytest.mark.parametrize("ties", [False, True], ids=["continuous", "ties"])
def test_segnet_unpool_modules_agree(segnet_pair, ties):
    """Mask unpooling puts the decoder's value where MaxUnpool does, ties included.

    The decoder map differs from the encoder's pooled map (as in the network), and with ``ties``
    the encoder activation has ReLU-style all-zero windows and repeated values: the mask variant
    must pick the same single position as ``max_pool2d``'s index (the first in scan order).
    """
    ref, mobile = segnet_pair
    torch.manual_seed(1)
    before = torch.randn(2, 8, 12, 16)
    if ties:
        before = torch.relu(torch.round(before * 2) / 2)  # many exact zeros and repeated values
    pooled, idx = torch.nn.functional.max_pool2d(before, 2, 2, return_indices=True)
    decoder = torch.randn_like(pooled) + 3.0  # never zero: a misplaced value would show
    want = ref.unpool(decoder, idx, before)
    got = mobile.unpool(decoder, None, before)
    torch.testing.assert_close(got, want, rtol=0, atol=0)
    assert int((got != 0).sum()) == pooled.numel(), "exactly one position per window"


def test_segnet_weights_load_into_segnet_mobile_with_same_output(segnet_pair):
    ref, mobile = segnet_pair
    # give BatchNorm non-trivial statistics so the check is not about a near-identity network
    with torch.no_grad():
        for m in ref.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
    mobile.load_state_dict(ref.state_dict(), strict=True)
    h, w = get_entry("segnet").preprocessing.input_size
    torch.manual_seed(2)
    x = torch.randn(1, 3, h, w)
    with torch.no_grad():
        a, b = ref(x), mobile(x)
    assert a.shape == b.shape == (1, 1, h, w)
    scale = a.abs().mean().item()
    assert scale > 0
    assert (a - b).abs().mean().item() <= 1e-4 * scale + 1e-7, "mean |diff| between unpoolings too large"
    assert (a - b).abs().max().item() <= 1e-3 * a.abs().max().item() + 1e-6
    agree = ((a > 0) == (b > 0)).float().mean().item()
    assert agree > 0.99, f"masks agree on only {agree:.2%} of pixels"
