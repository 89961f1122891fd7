"""Max pooling that remembers where each maximum came from, and its inverse (SegNet)."""

from __future__ import annotations

import keras
from keras import ops


def _pool_size(value):
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"`pool_size` must be a positive integer. Received: pool_size={value!r}")
    return value


@keras.saving.register_keras_serializable(package="kerasnets")
class MaxPoolingWithArgmax2D(keras.layers.Layer):
    """Non-overlapping k x k max pooling returning `(pooled, indices)`.

    `indices` follow `torch.nn.MaxPool2d(return_indices=True)`: for each
    batch item and channel, the flat position ``h * W + w`` of the maximum in
    the (H, W) input map, int32; ties go to the first element in row-major
    window order, as in torch. Windows are read with reshapes and `argmax`
    (keras.ops only, every backend) instead of `tf.nn.max_pool_with_argmax`,
    whose indices also mix in the batch and channel axes.

    H and W must be multiples of `pool_size` so unpooling can restore them.

    Args:
        pool_size: k (window size and stride).
    """

    def __init__(self, pool_size=2, **kwargs):
        super().__init__(**kwargs)
        self.pool_size = _pool_size(pool_size)

    def build(self, input_shape):
        for size in input_shape[1:3]:
            if size is not None and size % self.pool_size:
                raise ValueError(
                    f"MaxPoolingWithArgmax2D({self.pool_size}) needs height and width divisible by "
                    f"{self.pool_size}. Received input shape {tuple(input_shape)}"
                )

    def call(self, inputs):
        k = self.pool_size
        channels = inputs.shape[-1]
        shape = ops.shape(inputs)
        out_h, out_w = shape[1] // k, shape[2] // k
        windows = ops.reshape(inputs, (-1, out_h, k, out_w, k, channels))
        windows = ops.reshape(ops.transpose(windows, (0, 1, 3, 5, 2, 4)), (-1, out_h, out_w, channels, k * k))
        pooled = ops.max(windows, axis=-1)
        local = ops.cast(ops.argmax(windows, axis=-1), "int32")
        rows = ops.reshape(ops.arange(out_h, dtype="int32") * k, (1, -1, 1, 1)) + local // k
        cols = ops.reshape(ops.arange(out_w, dtype="int32") * k, (1, 1, -1, 1)) + local % k
        return pooled, rows * ops.cast(out_w * k, "int32") + cols

    def compute_output_shape(self, input_shape):
        batch, height, width, channels = input_shape
        shrink = lambda d: None if d is None else d // self.pool_size  # noqa: E731
        shape = (batch, shrink(height), shrink(width), channels)
        return shape, shape

    def compute_output_spec(self, inputs):
        shape = self.compute_output_shape(inputs.shape)[0]
        return keras.KerasTensor(shape, dtype=inputs.dtype), keras.KerasTensor(shape, dtype="int32")

    def get_config(self):
        config = super().get_config()
        config.update(pool_size=self.pool_size)
        return config


@keras.saving.register_keras_serializable(package="kerasnets")
class MaxUnpooling2D(keras.layers.Layer):
    """Inverse of `MaxPoolingWithArgmax2D`: each value goes back to its argmax, zeros elsewhere.

    Called on `[values, indices]`; output (H*k, W*k, C) like
    `torch.nn.MaxUnpool2d(k)`. Indices that point outside a value's own
    window (not produced by `MaxPoolingWithArgmax2D(k)`) are dropped.

    Args:
        pool_size: k of the pooling being inverted.
    """

    def __init__(self, pool_size=2, **kwargs):
        super().__init__(**kwargs)
        self.pool_size = _pool_size(pool_size)

    def call(self, inputs):
        values, indices = inputs
        k = self.pool_size
        channels = values.shape[-1]
        shape = ops.shape(values)
        in_h, in_w = shape[1], shape[2]
        indices = ops.cast(indices, "int32")
        width = ops.cast(in_w * k, "int32")
        rows = indices // width - ops.reshape(ops.arange(in_h, dtype="int32") * k, (1, -1, 1, 1))
        cols = indices % width - ops.reshape(ops.arange(in_w, dtype="int32") * k, (1, 1, -1, 1))
        local = rows * k + cols
        scattered = ops.one_hot(local, k * k, dtype=values.dtype) * ops.expand_dims(values, -1)
        x = ops.reshape(scattered, (-1, in_h, in_w, channels, k, k))
        x = ops.transpose(x, (0, 1, 4, 2, 5, 3))
        return ops.reshape(x, (-1, in_h * k, in_w * k, channels))

    def compute_output_shape(self, input_shape):
        batch, height, width, channels = input_shape[0]
        grow = lambda d: None if d is None else d * self.pool_size  # noqa: E731
        return (batch, grow(height), grow(width), channels)

    def get_config(self):
        config = super().get_config()
        config.update(pool_size=self.pool_size)
        return config
