"""Input preprocessing modes as data: each mode says which weights expect it.

Pretrained weights only work on images prepared the way they were trained
(the notes: "注意别人的预处理方式"). A mode is a row of `MODES`; the same row
drives `preprocess_input` (numpy or tensors) and the serializable
`Preprocess` layer that `train_on_folder` puts at the front of a model, so a
saved model takes raw 0..255 RGB pixels and cannot be fed the wrong way.

All modes take RGB input in 0..255, channels last. This is the one table of
modes: `kerasnets.imagenet` (presets) and `training` (datasets, `train_on_folder`)
both read it.
"""

from __future__ import annotations

import dataclasses

import keras
import numpy as np


@dataclasses.dataclass(frozen=True)
class PreprocessingMode:
    """out = (in[..., channel_order] * scale - mean) / std, per channel."""

    name: str
    bgr: bool
    scale: float
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    offset: float
    weights: str


MODES = {
    "caffe": PreprocessingMode(
        "caffe", bgr=True, scale=1.0, mean=(103.939, 116.779, 123.68), std=(1.0, 1.0, 1.0), offset=0.0,
        weights="Caffe-trained VGG/AlexNet/ResNet (caffe-tensorflow .npy, tensorflow-vgg vgg16.npy/vgg19.npy, "
        "keras.applications VGG16/VGG19/ResNet50): BGR, 0..255 minus the ImageNet BGR mean.",
    ),
    "matconvnet": PreprocessingMode(
        "matconvnet", bgr=False, scale=1.0, mean=(123.68, 116.779, 103.939), std=(1.0, 1.0, 1.0), offset=0.0,
        weights="MatConvNet imports (imagenet-vgg-verydeep-16.mat, imagenet-caffe-alex.mat): RGB, 0..255 minus "
        "the ImageNet RGB mean (meta.normalization.averageImage).",
    ),
    "bninception": PreprocessingMode(
        "bninception", bgr=True, scale=1.0, mean=(104.0, 117.0, 128.0), std=(1.0, 1.0, 1.0), offset=0.0,
        weights="Caffe BN-Inception (Cadene pretrainedmodels bn_inception .pth): BGR, 0..255 minus the rounded "
        "BGR mean (104, 117, 128).",
    ),
    "segnet": PreprocessingMode(
        "segnet", bgr=True, scale=1.0, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0), offset=0.0,
        weights="SegNet's Caffe model zoo (caffe-segnet CamVid, SUN, Pascal): BGR, 0..255 as is (SegNet-Tutorial's "
        "scripts feed OpenCV's BGR frames unchanged).",
    ),
    "torch": PreprocessingMode(
        "torch", bgr=False, scale=1 / 255.0, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225), offset=0.0,
        weights="torchvision and timm .pth weights (ResNet, DenseNet, MobileNetV3, VGG, AlexNet): RGB in [0, 1], "
        "then (x - mean) / std with the ImageNet statistics.",
    ),
    "tf": PreprocessingMode(
        "tf", bgr=False, scale=1 / 127.5, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0), offset=-1.0,
        weights="TF-slim / keras.applications Inception v3, Inception-ResNet v2, MobileNet v1/v2: RGB in [-1, 1].",
    ),
    "none": PreprocessingMode(
        "none", bgr=False, scale=1 / 255.0, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0), offset=0.0,
        weights="Training from scratch, and milesial Pytorch-UNet's Carvana weights: RGB in [0, 1].",
    ),
    "raw": PreprocessingMode(
        "raw", bgr=False, scale=1.0, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0), offset=0.0,
        weights="keras.applications models with rescaling built in (MobileNetV3, EfficientNet): RGB 0..255 as is.",
    ),
}


def get_mode(mode):
    """The `PreprocessingMode` named `mode` (ValueError naming the known ones otherwise)."""
    if isinstance(mode, PreprocessingMode):
        return mode
    if mode not in MODES:
        raise ValueError(f"`mode` must be one of {tuple(MODES)}. Received: mode={mode!r}")
    return MODES[mode]


def _coefficients(spec):
    # out = x[..., order] * a + b, with a, b per output channel
    a = np.array([spec.scale / s for s in spec.std], "float32")
    b = np.array([(spec.offset - m) / s for m, s in zip(spec.mean, spec.std)], "float32")
    return a, b


def preprocess_input(x, mode="torch"):
    """Prepares RGB images in 0..255 for weights trained with `mode`.

    Args:
        x: array or tensor (..., H, W, 3), RGB, values 0..255.
        mode: a key of `MODES` ("caffe", "bninception", "matconvnet", "torch", "tf", "none", "raw").

    Returns:
        float32 array (numpy in, numpy out) or tensor of the same shape.
    """
    spec = get_mode(mode)
    a, b = _coefficients(spec)
    if isinstance(x, np.ndarray) or np.isscalar(x) or isinstance(x, (list, tuple)):
        x = np.asarray(x, "float32")
        if spec.bgr:
            x = x[..., ::-1]
        return x * a + b
    x = keras.ops.cast(x, "float32")
    if spec.bgr:
        x = keras.ops.flip(x, axis=-1)
    return x * a + b


@keras.saving.register_keras_serializable(package="kerasnets")
class Preprocess(keras.layers.Layer):
    """`preprocess_input(x, mode)` as a layer, so a saved model carries its preprocessing.

    Args:
        mode: a key of `MODES`.
    """

    def __init__(self, mode="torch", **kwargs):
        super().__init__(**kwargs)
        self.mode = get_mode(mode).name
        self.supports_masking = True

    def call(self, inputs):
        spec = get_mode(self.mode)
        a, b = _coefficients(spec)
        x = keras.ops.cast(inputs, self.compute_dtype)
        if spec.bgr:
            x = keras.ops.flip(x, axis=-1)
        return x * keras.ops.cast(a, x.dtype) + keras.ops.cast(b, x.dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "mode": self.mode}
