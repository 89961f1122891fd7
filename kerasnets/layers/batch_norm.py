"""keras' BatchNormalization, run as TensorFlow's fused kernel when Keras runs on TensorFlow.

Why: keras 3 normalises with a chain of portable ops (moments, then scale and shift), several passes
over each activation forwards and backwards; TensorFlow's FusedBatchNormV3 does each direction in one.
ResNet-50 and DenseNet-121 train faster with it (docs/benchmarks.md). Every builder uses this class.

It is keras' layer in all that is saved: the same variables, config and weight names, and it saves as
`keras.layers.BatchNormalization` in `.keras` and `.h5` files, so a saved model reloads with plain keras,
without kerasnets. On JAX and PyTorch, for masks, renorm, synchronized statistics, inputs that are not
4-D channels-last, and float64, it is keras' own code path.

The fused kernel's batch variance output is Bessel-corrected (n / (n - 1)); keras' moving variance uses
the biased one, so the update undoes the correction: moving statistics match keras' to float rounding.
"""

from __future__ import annotations

import sys

import keras

_FUSED_DTYPES = ("float32", "float16", "bfloat16")


class BatchNormalization(keras.layers.BatchNormalization):
    """`keras.layers.BatchNormalization` with TensorFlow's fused kernel on the TensorFlow backend."""

    def _fused_module(self, inputs, mask):
        """TensorFlow, when the fused kernel computes exactly what keras' code would; else None."""
        if keras.backend.backend() != "tensorflow" or mask is not None or self.renorm or self.synchronized:
            return None
        if len(inputs.shape) != 4 or self.axis not in (3, -1):
            return None
        if keras.backend.standardize_dtype(inputs.dtype) not in _FUSED_DTYPES:
            return None
        return sys.modules.get("tensorflow")

    def call(self, inputs, training=None, mask=None):
        tf = self._fused_module(inputs, mask)
        if tf is None:
            return super().call(inputs, training=training, mask=mask)
        channels = inputs.shape[-1]
        gamma = self.gamma if self.scale else tf.ones((channels,), "float32")
        beta = self.beta if self.center else tf.zeros((channels,), "float32")
        gamma, beta = tf.cast(gamma, "float32"), tf.cast(beta, "float32")
        x = tf.convert_to_tensor(inputs)
        if training and self.trainable:
            y, mean, variance, _, _, _ = tf.raw_ops.FusedBatchNormV3(
                x=x, scale=gamma, offset=beta, mean=tf.constant([], "float32"), variance=tf.constant([], "float32"),
                epsilon=self.epsilon, exponential_avg_factor=1.0, data_format="NHWC", is_training=True)
            count = tf.cast(tf.size(x) // channels, "float32")
            variance = variance * ((count - 1.0) / count)  # undo the Bessel correction: keras' biased variance
            momentum = self.momentum
            self.moving_mean.assign(self.moving_mean * momentum + tf.stop_gradient(mean) * (1.0 - momentum))
            self.moving_variance.assign(
                self.moving_variance * momentum + tf.stop_gradient(variance) * (1.0 - momentum))
        else:
            y, _, _, _, _, _ = tf.raw_ops.FusedBatchNormV3(
                x=x, scale=gamma, offset=beta, mean=tf.cast(self.moving_mean, "float32"),
                variance=tf.cast(self.moving_variance, "float32"), epsilon=self.epsilon, exponential_avg_factor=1.0,
                data_format="NHWC", is_training=False)
        return tf.cast(y, self.compute_dtype)


def _save_as_keras_layer(cls):
    """Has keras' serializer write `cls` as keras.layers.BatchNormalization (its public name), so saved
    models reload without kerasnets; loading resolves that name to keras' own class."""
    try:
        from keras.src import api_export
    except ImportError:  # a keras without the registry: the class name alone still reads as keras' layer
        return
    api_export.REGISTERED_OBJS_TO_NAMES.setdefault(cls, "keras.layers.BatchNormalization")


_save_as_keras_layer(BatchNormalization)
