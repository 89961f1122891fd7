"""Channel attention: the squeeze-and-excitation block as one layer."""

from __future__ import annotations

import keras
from keras import ops

GATES = ("sigmoid", "hard_sigmoid")


@keras.saving.register_keras_serializable(package="kerasnets")
class SqueezeExcitation(keras.layers.Layer):
    """Squeeze-and-excitation (Hu et al. 2018), as in the users' notes.

    global average pool -> FC(C / ratio) -> ReLU -> FC(C) -> gate -> scale the
    input channel-wise. The two FCs are the layer's own weights
    (`squeeze_kernel` (C, C_r), `squeeze_bias`, `excite_kernel` (C_r, C),
    `excite_bias`), so a model that uses it saves and loads without Lambda
    layers and weight importers address it by one layer name.

    Args:
        ratio: reduction ratio r (16 in the paper), used when
            `squeeze_channels` is None: C_r = max(1, C // ratio).
        squeeze_channels: explicit bottleneck width (MobileNetV3 uses
            make_divisible(C / 4, 8)).
        gate: `"sigmoid"` (paper) or `"hard_sigmoid"` (MobileNetV3,
            relu6(x + 3) / 6).
        use_bias: whether the FCs have biases.
    """

    def __init__(self, ratio=16, squeeze_channels=None, gate="sigmoid", use_bias=True, **kwargs):
        super().__init__(**kwargs)
        if squeeze_channels is None and (not isinstance(ratio, (int, float)) or ratio <= 0):
            raise ValueError(f"`ratio` must be a positive number. Received: ratio={ratio!r}")
        if squeeze_channels is not None and (not isinstance(squeeze_channels, int) or squeeze_channels < 1):
            raise ValueError(
                f"`squeeze_channels` must be a positive integer or None. Received: {squeeze_channels!r}"
            )
        if gate not in GATES:
            raise ValueError(f"`gate` must be one of {GATES}. Received: gate={gate!r}")
        self.ratio = ratio
        self.squeeze_channels = squeeze_channels
        self.gate = gate
        self.use_bias = use_bias

    def build(self, input_shape):
        channels = input_shape[-1]
        if channels is None:
            raise ValueError("SqueezeExcitation needs a known channel count.")
        reduced = self.squeeze_channels or max(1, int(channels // self.ratio))
        self.squeeze_kernel = self.add_weight(
            name="squeeze_kernel", shape=(channels, reduced), initializer="glorot_uniform"
        )
        self.excite_kernel = self.add_weight(
            name="excite_kernel", shape=(reduced, channels), initializer="glorot_uniform"
        )
        if self.use_bias:
            self.squeeze_bias = self.add_weight(name="squeeze_bias", shape=(reduced,), initializer="zeros")
            self.excite_bias = self.add_weight(name="excite_bias", shape=(channels,), initializer="zeros")

    def channel_weights(self, inputs):
        """The per-channel gate in [0, 1], shape (batch, C): what the notes plot."""
        if not self.built:
            self.build(inputs.shape)
            self.built = True
        squeezed = ops.mean(inputs, axis=tuple(range(1, len(inputs.shape) - 1)))
        hidden = ops.matmul(squeezed, self.squeeze_kernel)
        if self.use_bias:
            hidden = hidden + self.squeeze_bias
        excited = ops.matmul(ops.relu(hidden), self.excite_kernel)
        if self.use_bias:
            excited = excited + self.excite_bias
        if self.gate == "sigmoid":
            return ops.sigmoid(excited)
        return ops.relu6(excited + 3.0) / 6.0

    def call(self, inputs):
        weights = self.channel_weights(inputs)
        broadcast = ops.reshape(weights, (-1,) + (1,) * (len(inputs.shape) - 2) + (inputs.shape[-1],))
        return inputs * ops.cast(broadcast, inputs.dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(
            ratio=self.ratio, squeeze_channels=self.squeeze_channels, gate=self.gate, use_bias=self.use_bias
        )
        return config
