"""Colour-space conversions as layers, so a model can take RGB and see HSV and Lab (Ucolor).

Both follow scikit-image (`skimage.color.rgb2hsv`, `rgb2lab`) on RGB in
[0, 1], channels last, including its tie-breaking and constants, so data
prepared with scikit-image and the in-model conversion agree.
"""

from __future__ import annotations

import keras
from keras import ops

# sRGB (D65) -> CIE XYZ, and the D65 2-degree reference white: scikit-image's values.
XYZ_FROM_RGB = (
    (0.412453, 0.357580, 0.180423),
    (0.212671, 0.715160, 0.072169),
    (0.019334, 0.119193, 0.950227),
)
D65_WHITE = (0.95047, 1.0, 1.08883)


class _ColorConversion(keras.layers.Layer):
    def build(self, input_shape):
        if input_shape[-1] != 3:
            raise ValueError(f"{type(self).__name__} expects 3 RGB channels last. Received input shape {tuple(input_shape)}")

    def compute_output_shape(self, input_shape):
        return input_shape


@keras.saving.register_keras_serializable(package="kerasnets")
class RGBToHSV(_ColorConversion):
    """RGB in [0, 1] -> (hue, saturation, value), each in [0, 1].

    When two channels share the maximum, blue wins over green over red, and
    grey pixels get hue 0 and saturation 0, as in `skimage.color.rgb2hsv`.
    """

    def call(self, inputs):
        red, green, blue = inputs[..., 0], inputs[..., 1], inputs[..., 2]
        value = ops.max(inputs, axis=-1)
        delta = value - ops.min(inputs, axis=-1)
        grey = ops.equal(delta, 0.0)
        safe_delta = ops.where(grey, ops.ones_like(delta), delta)
        safe_value = ops.where(ops.equal(value, 0.0), ops.ones_like(value), value)
        saturation = ops.where(grey, ops.zeros_like(delta), delta / safe_value)
        hue = ops.where(
            ops.equal(blue, value),
            4.0 + (red - green) / safe_delta,
            ops.where(ops.equal(green, value), 2.0 + (blue - red) / safe_delta, (green - blue) / safe_delta),
        )
        hue = ops.where(grey, ops.zeros_like(hue), ops.mod(hue / 6.0, 1.0))
        return ops.stack([hue, saturation, value], axis=-1)


@keras.saving.register_keras_serializable(package="kerasnets")
class RGBToLab(_ColorConversion):
    """sRGB in [0, 1] -> CIE L*a*b* (D65, 2-degree observer), as `skimage.color.rgb2lab`.

    Raw values are L in [0, 100] and a, b in about [-128, 128]. With
    `normalize=True` the layer returns ``(L / 100, (a + 128) / 255,
    (b + 128) / 255)``, so a network sees Lab on the same [0, 1] scale as RGB
    and HSV.

    Args:
        normalize: rescale to about [0, 1] as above.
    """

    def __init__(self, normalize=False, **kwargs):
        super().__init__(**kwargs)
        self.normalize = bool(normalize)

    def call(self, inputs):
        linear = ops.where(
            inputs > 0.04045,
            ops.power((ops.maximum(inputs, 0.04045) + 0.055) / 1.055, 2.4),
            inputs / 12.92,
        )
        matrix = ops.convert_to_tensor(XYZ_FROM_RGB, dtype=inputs.dtype)
        xyz = ops.matmul(linear, ops.transpose(matrix)) / ops.convert_to_tensor(D65_WHITE, dtype=inputs.dtype)
        # The cube root's gradient is infinite at 0: feed it only values above the threshold.
        cube_root = ops.power(ops.maximum(xyz, 0.008856), 1.0 / 3.0)
        f = ops.where(xyz > 0.008856, cube_root, 7.787 * xyz + 16.0 / 116.0)
        fx, fy, fz = f[..., 0], f[..., 1], f[..., 2]
        lightness, a, b = 116.0 * fy - 16.0, 500.0 * (fx - fy), 200.0 * (fy - fz)
        if self.normalize:
            lightness, a, b = lightness / 100.0, (a + 128.0) / 255.0, (b + 128.0) / 255.0
        return ops.stack([lightness, a, b], axis=-1)

    def get_config(self):
        config = super().get_config()
        config.update(normalize=self.normalize)
        return config
