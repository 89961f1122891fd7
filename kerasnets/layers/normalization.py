"""Normalization layers Keras 3 does not ship, written with `keras.ops` only."""

from __future__ import annotations

import keras
from keras import ops

CONVENTIONS = ("paper", "caffe")


@keras.saving.register_keras_serializable(package="kerasnets")
class LocalResponseNormalization(keras.layers.Layer):
    """Cross-channel local response normalization (AlexNet, GoogLeNet).

    ``y_c = x_c / (bias + a * sum_{j in window(c)} x_j ** 2) ** beta`` where the
    window holds `size` neighbouring channels (zeros past the edges).

    Two conventions exist for `a`. The paper and TensorFlow's
    `tf.nn.local_response_normalization(depth_radius=(size-1)//2, ...)` use
    ``a = alpha``; Caffe, MatConvNet-from-Caffe and `torch.nn.LocalResponseNorm`
    use ``a = alpha / size``. Pick the one the weights were trained with.

    Args:
        size: channels in the window (the paper's n); odd sizes are centred,
            even sizes take one more channel before than after, as torch does.
        alpha: scale of the squared sum.
        beta: exponent.
        bias: additive constant (the paper's k).
        convention: `"paper"` (alpha as given) or `"caffe"` (alpha / size).
    """

    def __init__(self, size=5, alpha=1e-4, beta=0.75, bias=2.0, convention="paper", **kwargs):
        super().__init__(**kwargs)
        if not isinstance(size, int) or size < 1:
            raise ValueError(f"`size` must be a positive integer. Received: size={size!r}")
        if convention not in CONVENTIONS:
            raise ValueError(f"`convention` must be one of {CONVENTIONS}. Received: convention={convention!r}")
        self.size = size
        self.alpha = float(alpha)
        self.beta = float(beta)
        self.bias = float(bias)
        self.convention = convention

    def call(self, inputs):
        squares = ops.square(inputs)
        before, after = self.size // 2, (self.size - 1) // 2
        padded = ops.pad(squares, [[0, 0]] * (len(inputs.shape) - 1) + [[before, after]])
        channels = inputs.shape[-1]
        window_sum = padded[..., 0:channels]
        for offset in range(1, self.size):
            window_sum = window_sum + padded[..., offset : offset + channels]
        scale = self.alpha / self.size if self.convention == "caffe" else self.alpha
        return inputs / ops.power(self.bias + scale * window_sum, self.beta)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(
            size=self.size, alpha=self.alpha, beta=self.beta, bias=self.bias, convention=self.convention
        )
        return config
