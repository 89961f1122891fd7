"""Caffe blobs through a layout, without OpenCV: BatchNorm's scale factor, Scale merged, all or nothing.

The caffemodels are written by tests/caffe_files.py (independent of weights_io); the expected values are
computed here from Caffe's definitions (BatchNorm stores sums and their normaliser; Scale holds gamma, beta).
"""

from __future__ import annotations

import dataclasses

import keras
import numpy as np
import pytest

import weights_io
from tests.caffe_files import caffemodel_bytes, layer
from weights_io.caffe_blobs import named_blobs
from weights_io.errors import WeightMismatchError

RNG = np.random.default_rng(0)
KERNEL = RNG.normal(size=(4, 3, 3, 3)).astype("float32")  # Caffe (out, in, kh, kw)
BIAS = RNG.normal(size=4).astype("float32")
MEAN, VAR = RNG.normal(size=4).astype("float32"), RNG.uniform(0.5, 2, 4).astype("float32")
GAMMA, BETA = RNG.uniform(0.5, 2, 4).astype("float32"), RNG.normal(size=4).astype("float32")
FC = RNG.normal(size=(5, 4 * 2 * 2)).astype("float32")  # (out, C*H*W)


def _tiny_model():
    """Our names for He's stem and classifier, on a 4x4 input: conv1_conv, conv1_bn, predictions."""
    inputs = keras.Input((4, 4, 3))
    x = keras.layers.Conv2D(4, 3, name="conv1_conv")(inputs)
    x = keras.layers.BatchNormalization(epsilon=1e-5, name="conv1_bn")(x)
    x = keras.layers.Flatten()(x)
    return keras.Model(inputs, keras.layers.Dense(5, name="predictions")(x))


# caffe-resnet's Scale rule and options on He's stem and classifier names (its own names need bottleneck blocks)
STEM = dataclasses.replace(weights_io.get_layout("caffe-resnet"), name="he-stem", map_names=lambda names: {
    "conv1_conv": "conv1", "conv1_bn": "bn_conv1", "predictions": "fc1000"})


def _file(tmp_path, factor=2.5, scale=True):
    layers = [
        layer("conv1", "Convolution", "data", blobs=[KERNEL, BIAS]),
        layer("bn_conv1", "BatchNorm", "conv1", "conv1", blobs=[MEAN * factor, VAR * factor,
                                                                 np.array([factor], "float32")]),
        layer("scale_conv1", "Scale", "conv1", "conv1", blobs=[GAMMA, BETA]),
        layer("fc1000", "InnerProduct", "conv1", blobs=[FC, np.zeros(5, "float32")]),
    ]
    if not scale:
        layers.pop(2)
    path = tmp_path / "net.caffemodel"
    path.write_bytes(caffemodel_bytes(layers))
    return path


def test_batchnorm_scale_factor_and_scale_merge(tmp_path):
    model = _tiny_model()
    report = weights_io.load_weights(model, _file(tmp_path), source=STEM, trusted=True)
    assert report.ok and not report.unexpected
    bn = model.get_layer("conv1_bn")
    np.testing.assert_allclose(bn.moving_mean.numpy(), MEAN, rtol=1e-6)  # divided by the factor 2.5
    np.testing.assert_allclose(bn.moving_variance.numpy(), VAR, rtol=1e-6)
    np.testing.assert_array_equal(bn.gamma.numpy(), GAMMA)
    np.testing.assert_array_equal(bn.beta.numpy(), BETA)
    np.testing.assert_array_equal(model.get_layer("conv1_conv").kernel.numpy(), KERNEL.transpose(2, 3, 1, 0))
    # Caffe flattens C, H, W: row (c, h, w) of Keras' H, W, C flattening is Caffe's column c*4 + h*2 + w
    dense = model.get_layer("predictions").kernel.numpy()
    np.testing.assert_array_equal(dense[(1 * 2 + 0) * 4 + 3], FC[:, 3 * 4 + 1 * 2 + 0])


def test_zero_scale_factor_gives_zero_statistics(tmp_path):
    """Caffe: scale = factor == 0 ? 0 : 1 / factor (a BatchNorm never updated)."""
    weight_file = weights_io.read_weights(_file(tmp_path, factor=0.0), trusted=True)
    view = named_blobs(weight_file, lambda name: "scale" + name[2:])
    assert not view.tensors["bn_conv1"]["running_mean"].any() and not view.tensors["bn_conv1"]["running_var"].any()
    assert set(view.tensors) == {"conv1", "bn_conv1", "fc1000"}  # the Scale merged into its BatchNorm


def test_missing_scale_fails_all_or_nothing(tmp_path):
    model = _tiny_model()
    before = [w.numpy().copy() for w in model.weights]
    with pytest.raises(WeightMismatchError) as error:
        weights_io.load_weights(model, _file(tmp_path, scale=False), source=STEM, trusted=True)
    message = str(error.value)
    assert "conv1_bn/gamma" in message and "conv1_bn/beta" in message and "bn_conv1.weight" in message
    assert all(np.array_equal(a, w.numpy()) for a, w in zip(before, model.weights))
