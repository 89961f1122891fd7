"""Caffe's layers where no stock Keras layer computes the same numbers (used by `kerasnets.from_caffe`).

Caffe's pooling rounds its output size up and counts padding in the average; its
within-channel LRN averages over a square with padding counted; its Scale and
weighted Eltwise have no Keras twin. Each is a serializable layer written with
`keras.ops` only, on channels-last tensors.
"""

from __future__ import annotations

import numpy as np

import keras
from keras import ops

POOL_MODES = ("max", "ave")


def pooled_size(size, kernel, stride, pad, ceil=True):
    """Caffe's pooled length: rounded up (or down), then one less if the last window would start at or past
    `size + pad` (Caffe checks this only when there is padding)."""
    span = size + 2 * pad - kernel
    out = (-(-span // stride) if ceil else span // stride) + 1
    if pad and (out - 1) * stride >= size + pad:
        out -= 1
    return out


def average_divisor(size, kernel, stride, pad, out):
    """Per output position, the window length Caffe's AVE pooling divides by: clipped to `size + pad`, so
    padding counts and the overhang past it does not."""
    starts = np.arange(out) * stride - pad
    return (np.minimum(starts + kernel, size + pad) - starts).astype("float32")


def _pair(value, what):
    value = tuple(int(v) for v in (value if isinstance(value, (list, tuple)) else (value, value)))
    if len(value) != 2 or min(value) < 0:
        raise ValueError(f"`{what}` must be two non-negative integers. Received: {what}={value!r}")
    return value


@keras.saving.register_keras_serializable(package="kerasnets")
class CaffePooling2D(keras.layers.Layer):
    """Caffe's MAX / AVE pooling: ceil-rounded output with the last-window rule, padding ignored by MAX and
    counted by AVE up to `size + pad` (`pooled_size`, `average_divisor`).

    Args:
        mode: "max" or "ave".
        pool_size, strides, padding: (height, width) pairs, as Caffe's kernel, stride and pad.
        ceil: Caffe's round_mode CEIL (the default) or FLOOR.
    """

    def __init__(self, mode="max", pool_size=(2, 2), strides=(2, 2), padding=(0, 0), ceil=True, **kwargs):
        super().__init__(**kwargs)
        if mode not in POOL_MODES:
            raise ValueError(f"`mode` must be one of {POOL_MODES}. Received: mode={mode!r}")
        self.mode = mode
        self.pool_size = _pair(pool_size, "pool_size")
        self.strides = _pair(strides, "strides")
        self.padding = _pair(padding, "padding")
        self.ceil = bool(ceil)

    def _geometry(self, input_shape):
        return [pooled_size(input_shape[1 + i], self.pool_size[i], self.strides[i], self.padding[i], self.ceil)
                for i in range(2)]

    def call(self, inputs):
        out = self._geometry(inputs.shape)
        # enough padding after for every window; the extra rows are sliced off below
        after = [max(0, (out[i] - 1) * self.strides[i] + self.pool_size[i] - self.padding[i] - inputs.shape[1 + i])
                 for i in range(2)]
        widths = [[0, 0], [self.padding[0], after[0]], [self.padding[1], after[1]], [0, 0]]
        if self.mode == "max":
            # Caffe's max skips padding: pad with the lowest float, which no window can pick up (pad < kernel)
            lowest = float(np.finfo(keras.backend.standardize_dtype(inputs.dtype)).min)
            padded = ops.pad(inputs, widths, constant_values=lowest)
            pooled = ops.max_pool(padded, self.pool_size, self.strides, padding="valid")
            return pooled[:, : out[0], : out[1], :]
        padded = ops.pad(inputs, widths)
        sums = ops.average_pool(padded, self.pool_size, self.strides, padding="valid")[:, : out[0], : out[1], :]
        sums = sums * float(self.pool_size[0] * self.pool_size[1])
        divisor = np.outer(*[average_divisor(inputs.shape[1 + i], self.pool_size[i], self.strides[i],
                                             self.padding[i], out[i]) for i in range(2)])
        return sums / ops.convert_to_tensor(divisor[None, :, :, None], dtype=sums.dtype)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], *self._geometry(input_shape), input_shape[3])

    def get_config(self):
        return {**super().get_config(), "mode": self.mode, "pool_size": self.pool_size, "strides": self.strides,
                "padding": self.padding, "ceil": self.ceil}


@keras.saving.register_keras_serializable(package="kerasnets")
class WithinChannelLRN(keras.layers.Layer):
    """Caffe's LRN with `norm_region: WITHIN_CHANNEL`: x * (1 + alpha / n^2 * sum x^2)^-beta, the sum over an
    n x n square of the same channel with zero padding (Caffe's AVE pooling of x^2; `k` plays no part).

    Args:
        size: n, odd (Caffe refuses even sizes).
        alpha, beta: as Caffe's LRNParameter.
    """

    def __init__(self, size=5, alpha=1.0, beta=0.75, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(size, int) or size < 1 or size % 2 == 0:
            raise ValueError(f"`size` must be a positive odd integer. Received: size={size!r}")
        self.size, self.alpha, self.beta = size, float(alpha), float(beta)

    def call(self, inputs):
        half = (self.size - 1) // 2
        squares = ops.pad(ops.square(inputs), [[0, 0], [half, half], [half, half], [0, 0]])
        mean = ops.average_pool(squares, self.size, 1, padding="valid")
        return inputs * ops.power(1.0 + self.alpha * mean, -self.beta)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "size": self.size, "alpha": self.alpha, "beta": self.beta}


@keras.saving.register_keras_serializable(package="kerasnets")
class ChannelScale(keras.layers.Layer):
    """Caffe's Scale layer (axis 1, one axis): a learned factor per channel (the last axis here), and a
    bias with `use_bias`."""

    def __init__(self, use_bias=False, **kwargs):
        super().__init__(**kwargs)
        self.use_bias = bool(use_bias)

    def build(self, input_shape):
        channels = input_shape[-1]
        self.gamma = self.add_weight(shape=(channels,), initializer="ones", name="gamma")
        self.beta = self.add_weight(shape=(channels,), initializer="zeros", name="beta") if self.use_bias else None

    def call(self, inputs):
        outputs = inputs * ops.cast(self.gamma, inputs.dtype)
        return outputs + ops.cast(self.beta, inputs.dtype) if self.use_bias else outputs

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "use_bias": self.use_bias}


@keras.saving.register_keras_serializable(package="kerasnets")
class WeightedSum(keras.layers.Layer):
    """Caffe's Eltwise SUM with `coeff`: sum_i coefficients[i] * inputs[i]."""

    def __init__(self, coefficients=(1.0, 1.0), **kwargs):
        super().__init__(**kwargs)
        self.coefficients = [float(c) for c in coefficients]

    def call(self, inputs):
        if len(inputs) != len(self.coefficients):
            raise ValueError(f"WeightedSum has {len(self.coefficients)} coefficients. Received: {len(inputs)} inputs")
        total = inputs[0] * self.coefficients[0]
        for coefficient, tensor in zip(self.coefficients[1:], inputs[1:]):
            total = total + tensor * coefficient
        return total

    def compute_output_shape(self, input_shape):
        return input_shape[0]

    def get_config(self):
        return {**super().get_config(), "coefficients": self.coefficients}
