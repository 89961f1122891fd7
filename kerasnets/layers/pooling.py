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

    `indices` follow `torch.nn.MaxPool2d(return_indices=True)` (and Caffe's
    pooling mask): for each batch item and channel, the flat position
    ``h * W + w`` of the maximum in the (H, W) input map, int32; ties go to
    the first element in row-major window order, as in torch and Caffe.
    Windows are read with reshapes and `argmax` (keras.ops only, every
    backend) instead of `tf.nn.max_pool_with_argmax`, whose indices also mix
    in the batch and channel axes.

    Args:
        pool_size: k (window size and stride).
        ceil_mode: False: H and W must be multiples of k. True: a last,
            partial window covers what is left (torch's `ceil_mode=True`,
            Caffe's rounding), so any size pools to ceil(H / k) x ceil(W / k);
            SegNet's 360x480 CamVid nets need it.
    """

    def __init__(self, pool_size=2, ceil_mode=False, **kwargs):
        super().__init__(**kwargs)
        self.pool_size = _pool_size(pool_size)
        self.ceil_mode = bool(ceil_mode)

    def build(self, input_shape):
        if self.ceil_mode:
            return
        for size in input_shape[1:3]:
            if size is not None and size % self.pool_size:
                raise ValueError(
                    f"MaxPoolingWithArgmax2D({self.pool_size}) needs height and width divisible by "
                    f"{self.pool_size} (or ceil_mode=True). Received input shape {tuple(input_shape)}"
                )

    def call(self, inputs):
        k = self.pool_size
        channels = inputs.shape[-1]
        shape = ops.shape(inputs)
        height, width = shape[1], shape[2]
        out_h, out_w = (height + k - 1) // k, (width + k - 1) // k
        if self.ceil_mode:  # the partial last windows see -inf where the map ends, so never pick it
            pads = [[0, 0], [0, out_h * k - height], [0, out_w * k - width], [0, 0]]
            inputs = ops.pad(inputs, pads, constant_values=float("-inf"))
        windows = ops.reshape(inputs, (-1, out_h, k, out_w, k, channels))
        windows = ops.reshape(ops.transpose(windows, (0, 1, 3, 5, 2, 4)), (-1, out_h, out_w, channels, k * k))
        pooled = ops.max(windows, axis=-1)
        local = ops.cast(ops.argmax(windows, axis=-1), "int32")
        rows = ops.reshape(ops.arange(out_h, dtype="int32") * k, (1, -1, 1, 1)) + local // k
        cols = ops.reshape(ops.arange(out_w, dtype="int32") * k, (1, 1, -1, 1)) + local % k
        return pooled, rows * ops.cast(width, "int32") + cols

    def compute_output_shape(self, input_shape):
        batch, height, width, channels = input_shape
        k = self.pool_size
        shrink = lambda d: None if d is None else -(-d // k) if self.ceil_mode else d // k  # noqa: E731
        shape = (batch, shrink(height), shrink(width), channels)
        return shape, shape

    def compute_output_spec(self, inputs):
        shape = self.compute_output_shape(inputs.shape)[0]
        return keras.KerasTensor(shape, dtype=inputs.dtype), keras.KerasTensor(shape, dtype="int32")

    def get_config(self):
        config = super().get_config()
        config.update(pool_size=self.pool_size, ceil_mode=self.ceil_mode)
        return config


@keras.saving.register_keras_serializable(package="kerasnets")
class MaxUnpooling2D(keras.layers.Layer):
    """Inverse of `MaxPoolingWithArgmax2D`: each value goes back to its argmax, zeros elsewhere.

    Called on `[values, indices]`, output (H*k, W*k, C) like
    `torch.nn.MaxUnpool2d(k)`; or on `[values, indices, like]`, output the
    height and width of `like` (the tensor that was pooled), like
    `MaxUnpool2d(k)(..., output_size=like.shape)` and caffe-segnet's
    Upsample with `upsample_h`/`upsample_w`: that undoes a ceil-mode pooling
    of odd sizes. Indices that point outside a value's own window (not
    produced by `MaxPoolingWithArgmax2D(k)`) are dropped.

    Args:
        pool_size: k of the pooling being inverted.
    """

    def __init__(self, pool_size=2, **kwargs):
        super().__init__(**kwargs)
        self.pool_size = _pool_size(pool_size)

    def call(self, inputs):
        values, indices = inputs[0], inputs[1]
        k = self.pool_size
        channels = values.shape[-1]
        shape = ops.shape(values)
        in_h, in_w = shape[1], shape[2]
        out_h, out_w = (ops.shape(inputs[2])[1], ops.shape(inputs[2])[2]) if len(inputs) > 2 else (in_h * k, in_w * k)
        indices = ops.cast(indices, "int32")
        width = ops.cast(out_w, "int32")
        rows = indices // width - ops.reshape(ops.arange(in_h, dtype="int32") * k, (1, -1, 1, 1))
        cols = indices % width - ops.reshape(ops.arange(in_w, dtype="int32") * k, (1, 1, -1, 1))
        local = rows * k + cols
        scattered = ops.one_hot(local, k * k, dtype=values.dtype) * ops.expand_dims(values, -1)
        x = ops.reshape(scattered, (-1, in_h, in_w, channels, k, k))
        x = ops.transpose(x, (0, 1, 4, 2, 5, 3))
        x = ops.reshape(x, (-1, in_h * k, in_w * k, channels))
        return x if len(inputs) == 2 else x[:, :out_h, :out_w, :]

    def compute_output_shape(self, input_shape):
        batch, height, width, channels = input_shape[0]
        if len(input_shape) > 2:
            return (batch, input_shape[2][1], input_shape[2][2], channels)
        grow = lambda d: None if d is None else d * self.pool_size  # noqa: E731
        return (batch, grow(height), grow(width), channels)

    def get_config(self):
        config = super().get_config()
        config.update(pool_size=self.pool_size)
        return config
