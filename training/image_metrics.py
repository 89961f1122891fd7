"""Image-quality metrics for super-resolution and image-to-image nets: PSNR and SSIM.

Written with `keras.ops` only, so they run on every backend and inside a
compiled `train_step` / `model.fit` as metrics.

* PSNR is FSRCNN-pytorch's ``calc_psnr``, ``10 * log10(max_val**2 / mse)``
  with images in ``[0, max_val]`` (1 in the repository), evaluated per image
  (the repository evaluates batch size 1, so its batch mean is the image's);
  it equals scikit-image's ``peak_signal_noise_ratio(..., data_range=max_val)``.
* SSIM is Wang et al. 2004 with an 11x11 Gaussian window (sigma 1.5),
  population covariance, K1 = 0.01, K2 = 0.03: scikit-image's
  ``structural_similarity(..., gaussian_weights=True, sigma=1.5,
  use_sample_covariance=False, data_range=max_val, channel_axis=-1)``, the
  convention SRGAN reports. scikit-image filters with ``mode='reflect'`` and
  then drops the 5-pixel border, so only windows fully inside the image count:
  here that is a 'valid' separable Gaussian convolution (the same numbers).
  Colour images: the mean over channels of the per-channel SSIM.
"""

from __future__ import annotations

import math

import keras
import numpy as np
from keras import ops

__all__ = ["PSNR", "SSIM", "gaussian_kernel_1d", "psnr", "rgb_to_y", "ssim"]

SSIM_K1 = 0.01
SSIM_K2 = 0.03
SSIM_SIGMA = 1.5
SSIM_TRUNCATE = 3.5  # scikit-image's choice for an 11-tap window at sigma 1.5


def rgb_to_y(image):
    """ITU-R BT.601 luma as FSRCNN-pytorch computes it: Y = 16 + (64.738 R + 129.057 G + 25.064 B) / 256.

    Args:
        image: RGB array or tensor (..., 3) in 0..255.

    Returns:
        Y in 16..235, shape (...), float (numpy in, numpy out).
    """
    if isinstance(image, np.ndarray):
        image = image.astype(np.float32)
        return 16.0 + (64.738 * image[..., 0] + 129.057 * image[..., 1] + 25.064 * image[..., 2]) / 256.0
    image = ops.cast(image, "float32")
    return 16.0 + (64.738 * image[..., 0] + 129.057 * image[..., 1] + 25.064 * image[..., 2]) / 256.0


def _reduce_axes(x):
    return tuple(range(1, len(x.shape)))


def psnr(y_true, y_pred, max_val=1.0):
    """Peak signal-to-noise ratio per image, in dB.

    Args:
        y_true: reference images (N, H, W, C) in [0, max_val].
        y_pred: images to score, same shape.
        max_val: the data range (1.0 for [0, 1], 255 for 8-bit values).

    Returns:
        Tensor (N,): ``10 * log10(max_val**2 / mean((y_true - y_pred)**2))``
        per image (``inf`` for identical images, as scikit-image).
    """
    y_true = ops.cast(y_true, "float32")
    y_pred = ops.cast(y_pred, "float32")
    mse = ops.mean(ops.square(y_true - y_pred), axis=_reduce_axes(y_true))
    return 10.0 * ops.log(float(max_val) ** 2 / mse) / math.log(10.0)


def gaussian_kernel_1d(sigma=SSIM_SIGMA, truncate=SSIM_TRUNCATE):
    """scipy.ndimage's normalised 1-D Gaussian taps (radius ``int(truncate * sigma + 0.5)``)."""
    radius = int(truncate * sigma + 0.5)
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    taps = np.exp(-0.5 * (x / sigma) ** 2)
    return (taps / taps.sum()).astype(np.float32)


def _gaussian_filter_valid(x, taps):
    # separable depthwise convolution: rows then columns, 'valid' (windows fully inside)
    channels = x.shape[-1]
    k = len(taps)
    rows = np.tile(taps.reshape(k, 1, 1, 1), (1, 1, channels, 1))
    cols = np.tile(taps.reshape(1, k, 1, 1), (1, 1, channels, 1))
    x = ops.depthwise_conv(x, ops.convert_to_tensor(rows), strides=1, padding="valid")
    return ops.depthwise_conv(x, ops.convert_to_tensor(cols), strides=1, padding="valid")


def ssim(y_true, y_pred, max_val=1.0, sigma=SSIM_SIGMA, k1=SSIM_K1, k2=SSIM_K2):
    """Mean structural similarity per image (Gaussian window; see the module docstring).

    Args:
        y_true: reference images (N, H, W, C) in [0, max_val]; H, W >= 11.
        y_pred: images to score, same shape.
        max_val: the data range (scikit-image's ``data_range``).
        sigma: Gaussian window width (1.5; the window spans
            ``2 * int(3.5 * sigma + 0.5) + 1`` pixels).
        k1, k2: the stabilising constants' factors.

    Returns:
        Tensor (N,) of SSIM values in [-1, 1].
    """
    taps = gaussian_kernel_1d(sigma)
    if len(y_true.shape) != 4:
        raise ValueError(f"`ssim` expects (N, H, W, C) images. Received shape: {tuple(y_true.shape)}")
    for size in y_true.shape[1:3]:
        if size is not None and size < len(taps):
            raise ValueError(
                f"`ssim` needs images of at least {len(taps)}x{len(taps)} pixels (the Gaussian window). "
                f"Received shape: {tuple(y_true.shape)}"
            )
    x = ops.cast(y_true, "float32")
    y = ops.cast(y_pred, "float32")
    c1 = (k1 * max_val) ** 2
    c2 = (k2 * max_val) ** 2
    # one filter pass over the five moment images stacked on the channel axis
    channels = x.shape[-1]
    moments = _gaussian_filter_valid(ops.concatenate([x, y, x * x, y * y, x * y], axis=-1), taps)
    ux, uy, uxx, uyy, uxy = (moments[..., i * channels:(i + 1) * channels] for i in range(5))
    vx = uxx - ux * ux
    vy = uyy - uy * uy
    vxy = uxy - ux * uy
    s = ((2.0 * ux * uy + c1) * (2.0 * vxy + c2)) / ((ux * ux + uy * uy + c1) * (vx + vy + c2))
    return ops.mean(s, axis=(1, 2, 3))


class _ClippedImageMetric(keras.metrics.MeanMetricWrapper):
    """Mean of a per-image score (`score_fn(y_true, y_pred, max_val)`), predictions clipped first."""

    score_fn = None

    def __init__(self, max_val=1.0, clip=True, name=None, dtype=None):
        self.max_val = float(max_val)
        self.clip = bool(clip)
        super().__init__(fn=self._score, name=name, dtype=dtype)

    def _score(self, y_true, y_pred):
        if self.clip:
            y_pred = ops.clip(ops.cast(y_pred, "float32"), 0.0, self.max_val)
        return type(self).score_fn(y_true, y_pred, self.max_val)

    def get_config(self):
        return {"max_val": self.max_val, "clip": self.clip, "name": self.name, "dtype": self.dtype}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


@keras.saving.register_keras_serializable(package="kerasnets")
class PSNR(_ClippedImageMetric):
    """Mean per-image PSNR (dB) over everything seen; see `psnr`.

    Args:
        max_val: the data range of the images (1.0 for [0, 1]).
        clip: clip predictions to [0, max_val] first, as FSRCNN-pytorch's
            evaluation does (``preds.clamp(0.0, 1.0)``).
        name, dtype: as for any Keras metric.
    """

    score_fn = staticmethod(psnr)

    def __init__(self, max_val=1.0, clip=True, name="psnr", dtype=None):
        super().__init__(max_val=max_val, clip=clip, name=name, dtype=dtype)


@keras.saving.register_keras_serializable(package="kerasnets")
class SSIM(_ClippedImageMetric):
    """Mean per-image SSIM over everything seen; see `ssim`.

    Args:
        max_val: the data range of the images.
        clip: clip predictions to [0, max_val] first.
        name, dtype: as for any Keras metric.
    """

    score_fn = staticmethod(ssim)

    def __init__(self, max_val=1.0, clip=True, name="ssim", dtype=None):
        super().__init__(max_val=max_val, clip=clip, name=name, dtype=dtype)
