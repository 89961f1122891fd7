"""Instance normalization (Ulyanov et al. 2016), as CycleGAN and pix2pix use it."""

from __future__ import annotations

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="kerasnets")
class InstanceNormalization(keras.layers.Layer):
    """Normalizes each channel of each image over its own H x W.

    The defaults are `torch.nn.InstanceNorm2d`'s (eps 1e-5, no affine, no
    running statistics), CycleGAN's setting, so training and inference
    behave the same.

    Args:
        epsilon: added to the variance.
        center: learn a per-channel offset `beta`.
        scale: learn a per-channel factor `gamma`.
    """

    def __init__(self, epsilon=1e-5, center=False, scale=False, **kwargs):
        super().__init__(**kwargs)
        self.epsilon = float(epsilon)
        self.center = bool(center)
        self.scale = bool(scale)

    def build(self, input_shape):
        channels = input_shape[-1]
        if self.scale:
            self.gamma = self.add_weight(name="gamma", shape=(channels,), initializer="ones")
        if self.center:
            self.beta = self.add_weight(name="beta", shape=(channels,), initializer="zeros")

    def call(self, inputs):
        axes = tuple(range(1, len(inputs.shape) - 1))
        mean = ops.mean(inputs, axis=axes, keepdims=True)
        variance = ops.mean(ops.square(inputs - mean), axis=axes, keepdims=True)
        x = (inputs - mean) * ops.rsqrt(variance + self.epsilon)
        if self.scale:
            x = x * self.gamma
        if self.center:
            x = x + self.beta
        return x

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(epsilon=self.epsilon, center=self.center, scale=self.scale)
        return config
