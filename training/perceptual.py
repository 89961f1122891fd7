"""VGG19 content (perceptual) loss, as SRGAN and Ucolor use it.

The loss network is `kerasnets.build_vgg19(include_top=False)` cut at one
layer, with weights read through `weights_io` from a file the caller names
(tensorflow-vgg ``vgg19.npy``, MatConvNet ``imagenet-vgg-verydeep-19.mat``,
torchvision ``vgg19-*.pth``, keras.applications ``.h5``; nothing downloads),
and frozen. The loss is the mean squared difference of its features:

    loss = mean((feature_scale * (phi(y_true) - phi(y_pred)))**2)

Presets (`PERCEPTUAL_PRESETS`) hold the published settings:

* ``srgan``: features after block5_conv4's ReLU (``phi_5,4``) rescaled by
  1/12.75 (Ledig et al. 2017, Sec. 3.2/4.2); images in [-1, 1] as the
  paper's HR images; caffe preprocessing (BGR minus the ImageNet mean), what
  tensorflow-vgg / caffe weights expect.
* ``ucolor``: ``relu5_4`` (= block5_conv4 after ReLU) of images in [0, 1]
  multiplied by 255 and minus the RGB mean (the Ucolor TF code feeds
  ``vgg.preprocess(x * 255)`` to the MatConvNet VGG19); Ucolor weights this
  term 0.05 against 5 x pixel MSE: apply those weights where the losses are
  summed.

The preprocessing must follow the weights' training (`training.preprocessing.
MODES`): "caffe" for tensorflow-vgg/caffe/keras.applications weights,
"matconvnet" for MatConvNet's, "torch" for torchvision's.
"""

from __future__ import annotations

import dataclasses
import os

import keras
from keras import ops

import kerasnets
import weights_io
from training.preprocessing import MODES, get_mode

__all__ = ["PERCEPTUAL_PRESETS", "PerceptualPreset", "VGGContentLoss", "build_feature_extractor"]


@dataclasses.dataclass(frozen=True)
class PerceptualPreset:
    """A published content-loss setting; see the module docstring."""

    layer: str
    feature_scale: float
    input_range: tuple[float, float]
    preprocessing: str
    reference: str


PERCEPTUAL_PRESETS = {
    "srgan": PerceptualPreset(
        layer="block5_conv4", feature_scale=1 / 12.75, input_range=(-1.0, 1.0), preprocessing="caffe",
        reference="Ledig et al. 2017 (SRGAN): VGG54 loss, feature maps rescaled by 1/12.75",
    ),
    "ucolor": PerceptualPreset(
        layer="block5_conv4", feature_scale=1.0, input_range=(0.0, 1.0), preprocessing="matconvnet",
        reference="Li et al. 2021 (Ucolor) TF code: MSE of VGG19 relu5_4 features of x*255 minus the RGB mean",
    ),
}


def build_feature_extractor(weights, layer="block5_conv4", *, source=None, format=None):
    """VGG19 up to `layer` (inclusive; conv layers include their ReLU), weights loaded, frozen.

    Args:
        weights: path of a VGG19 weight file any `weights_io` reader takes, or
            None for random weights (only meaningful in tests).
        layer: a layer name of `kerasnets.build_vgg19` (``block{b}_conv{c}``
            or ``block{b}_pool``).
        source: `weights_io` layout name (``"tensorflow-vgg"``, ...), or None
            to detect it from the file's layer names.
        format: force a `weights_io` reader, or None to detect it.

    Returns:
        A frozen `keras.Model` mapping preprocessed (N, H, W, 3) images to the
        layer's features.
    """
    vgg = kerasnets.build_vgg19(include_top=False, input_shape=(None, None, 3))
    names = [l.name for l in vgg.layers if l.name.startswith("block")]
    if layer not in names:
        raise ValueError(f"`layer` must be one of VGG19's layers {names}. Received: layer={layer!r}")
    extractor = keras.Model(vgg.input, vgg.get_layer(layer).output, name=f"vgg19_{layer}")
    if weights is not None:
        # strict=False: the file also holds layers past the cut (and fc6-fc8);
        # every layer of the cut network must still be loaded, checked below.
        report = weights_io.load_weights(extractor, os.fspath(weights), source=source, strict=False, format=format)
        if report.missing or report.mismatched or not report.applied:
            raise weights_io.WeightMismatchError(report)
    extractor.trainable = False
    return extractor


@keras.saving.register_keras_serializable(package="kerasnets")
class VGGContentLoss(keras.losses.Loss):
    """Mean squared difference of frozen VGG19 features; see the module docstring.

    Args:
        weights: VGG19 weight file (see `build_feature_extractor`), or None.
        preset: ``"srgan"``, ``"ucolor"`` or None; supplies defaults for the
            next four arguments.
        layer: VGG19 layer whose output is compared.
        feature_scale: features are multiplied by this before the squared
            difference (SRGAN's 1/12.75).
        input_range: (low, high) of the images given to the loss; mapped
            linearly to 0..255 before `preprocessing`.
        preprocessing: a `training.preprocessing.MODES` key matching the weights.
        source, format: passed to `weights_io.load_weights`.
        reduction, name: as for any Keras loss.
    """

    def __init__(self, weights=None, preset="srgan", *, layer=None, feature_scale=None, input_range=None,
                 preprocessing=None, source=None, format=None, reduction="sum_over_batch_size",
                 name="vgg_content_loss", dtype=None):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        if preset is not None and preset not in PERCEPTUAL_PRESETS:
            raise ValueError(f"`preset` must be one of {tuple(PERCEPTUAL_PRESETS)} or None. Received: preset={preset!r}")
        defaults = PERCEPTUAL_PRESETS[preset] if preset else PerceptualPreset("block5_conv4", 1.0, (0.0, 1.0), "caffe", "")
        self.weights = None if weights is None else os.fspath(weights)
        self.preset = preset
        self.layer = layer or defaults.layer
        self.feature_scale = float(defaults.feature_scale if feature_scale is None else feature_scale)
        low, high = defaults.input_range if input_range is None else input_range
        if not high > low:
            raise ValueError(f"`input_range` must be (low, high) with high > low. Received: input_range={input_range!r}")
        self.input_range = (float(low), float(high))
        self.preprocessing = get_mode(preprocessing or defaults.preprocessing).name
        self.source = source
        self.format = format
        self.extractor = build_feature_extractor(self.weights, self.layer, source=source, format=format)

    def preprocess(self, images):
        """Images in `input_range` -> the VGG input the weights expect."""
        spec = MODES[self.preprocessing]
        low, high = self.input_range
        x = (ops.cast(images, "float32") - low) * (255.0 / (high - low))
        if spec.bgr:
            x = ops.flip(x, axis=-1)
        scale = ops.convert_to_tensor([spec.scale / s for s in spec.std], "float32")
        shift = ops.convert_to_tensor([(spec.offset - m) / s for m, s in zip(spec.mean, spec.std)], "float32")
        return x * scale + shift

    def features(self, images):
        """The scaled features compared by the loss, (N, h, w, C)."""
        return self.extractor(self.preprocess(images), training=False) * self.feature_scale

    def call(self, y_true, y_pred):
        diff = self.features(y_true) - self.features(y_pred)
        return ops.mean(ops.square(diff), axis=(1, 2, 3))

    def get_config(self):
        return {
            **super().get_config(), "weights": self.weights, "preset": self.preset, "layer": self.layer,
            "feature_scale": self.feature_scale, "input_range": list(self.input_range),
            "preprocessing": self.preprocessing, "source": self.source, "format": self.format,
        }
