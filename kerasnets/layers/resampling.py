"""Resampling layers for image-to-image networks: pixel shuffle and reflection padding."""

from __future__ import annotations

import keras
from keras import ops

CHANNEL_ORDERS = ("torch", "tf")


def _positive_int(value, arg_name):
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"`{arg_name}` must be a positive integer. Received: {arg_name}={value!r}")
    return value


@keras.saving.register_keras_serializable(package="kerasnets")
class PixelShuffle(keras.layers.Layer):
    """Sub-pixel upsampling: (H, W, C*r*r) -> (H*r, W*r, C).

    The two frameworks read the C*r*r input channels in different orders, so
    weights trained in one only work with that one's order:

    * ``"torch"`` (`torch.nn.PixelShuffle`): input channel ``c*r*r + i*r + j``
      goes to output channel ``c`` at offset ``(i, j)``.
    * ``"tf"`` (`tf.nn.depth_to_space`, NHWC): input channel
      ``(i*r + j)*C + c`` goes to the same place.

    Args:
        upscale_factor: r.
        channel_order: ``"torch"`` or ``"tf"``.
        use_bias: add a learned bias per output channel after the shuffle
            (FSRCNN_Tensorflow adds its last bias after `depth_to_space`: one
            value per output channel, not one per sub-pixel).
    """

    def __init__(self, upscale_factor=2, channel_order="torch", use_bias=False, **kwargs):
        super().__init__(**kwargs)
        self.use_bias = bool(use_bias)
        self.upscale_factor = _positive_int(upscale_factor, "upscale_factor")
        if channel_order not in CHANNEL_ORDERS:
            raise ValueError(f"`channel_order` must be one of {CHANNEL_ORDERS}. Received: channel_order={channel_order!r}")
        self.channel_order = channel_order

    def build(self, input_shape):
        channels = input_shape[-1]
        if channels is None or channels % (self.upscale_factor**2):
            raise ValueError(
                f"PixelShuffle({self.upscale_factor}) needs a channel count divisible by "
                f"{self.upscale_factor ** 2}. Received input shape {tuple(input_shape)}"
            )
        if self.use_bias:
            self.bias = self.add_weight(shape=(channels // self.upscale_factor**2,), initializer="zeros", name="bias")

    def call(self, inputs):
        r = self.upscale_factor
        channels = inputs.shape[-1] // (r * r)
        shape = ops.shape(inputs)
        height, width = shape[1], shape[2]
        if self.channel_order == "torch":
            x = ops.reshape(inputs, (-1, height, width, channels, r, r))
            x = ops.transpose(x, (0, 1, 4, 2, 5, 3))
        else:
            x = ops.reshape(inputs, (-1, height, width, r, r, channels))
            x = ops.transpose(x, (0, 1, 3, 2, 4, 5))
        x = ops.reshape(x, (-1, height * r, width * r, channels))
        return x + ops.cast(self.bias, x.dtype) if self.use_bias else x

    def compute_output_shape(self, input_shape):
        r = self.upscale_factor
        batch, height, width, channels = input_shape
        scale = lambda d: None if d is None else d * r  # noqa: E731
        return (batch, scale(height), scale(width), channels // (r * r))

    def get_config(self):
        config = super().get_config()
        config.update(upscale_factor=self.upscale_factor, channel_order=self.channel_order, use_bias=self.use_bias)
        return config


@keras.saving.register_keras_serializable(package="kerasnets")
class ReflectionPadding2D(keras.layers.Layer):
    """Mirror padding without repeating the edge (`torch.nn.ReflectionPad2d`).

    CycleGAN pads this way so generated images have no dark borders.

    Args:
        padding: int (all sides), (rows, cols), or ((top, bottom), (left, right)).
    """

    def __init__(self, padding=1, **kwargs):
        super().__init__(**kwargs)
        if isinstance(padding, int):
            padding = ((padding, padding), (padding, padding))
        elif len(padding) == 2 and all(isinstance(p, int) for p in padding):
            padding = ((padding[0], padding[0]), (padding[1], padding[1]))
        padding = tuple(tuple(int(v) for v in pair) for pair in padding)
        if len(padding) != 2 or any(len(p) != 2 or min(p) < 0 for p in padding):
            raise ValueError(f"`padding` must be an int, (rows, cols) or ((top, bottom), (left, right)). Received: {padding!r}")
        self.padding = padding

    def build(self, input_shape):
        for axis, (before, after) in zip((1, 2), self.padding):
            size = input_shape[axis]
            if size is not None and max(before, after) >= size:
                raise ValueError(
                    f"Reflection padding {max(before, after)} needs a dimension larger than it. "
                    f"Received input shape {tuple(input_shape)}"
                )

    def call(self, inputs):
        return ops.pad(inputs, ((0, 0),) + self.padding + ((0, 0),), mode="reflect")

    def compute_output_shape(self, input_shape):
        batch, height, width, channels = input_shape
        (top, bottom), (left, right) = self.padding
        grow = lambda d, extra: None if d is None else d + extra  # noqa: E731
        return (batch, grow(height, top + bottom), grow(width, left + right), channels)

    def get_config(self):
        config = super().get_config()
        config.update(padding=self.padding)
        return config
