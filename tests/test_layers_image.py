"""Image-to-image layers against independent references: numpy loops, tf.nn.depth_to_space, scikit-image."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from kerasnets.layers import (
    InstanceNormalization,
    MaxPoolingWithArgmax2D,
    MaxUnpooling2D,
    PixelShuffle,
    ReflectionPadding2D,
    RGBToHSV,
    RGBToLab,
)
from tests.conftest import assert_close


def _torch_pixel_shuffle(x, r):
    """torch.nn.PixelShuffle by its definition: out[c, h*r+i, w*r+j] = in[c*r*r + i*r + j, h, w]."""
    n, h, w, crr = x.shape
    c = crr // (r * r)
    out = np.empty((n, h * r, w * r, c), x.dtype)
    for ch in range(c):
        for i in range(r):
            for j in range(r):
                out[:, i::r, j::r, ch] = x[..., ch * r * r + i * r + j]
    return out


@pytest.mark.parametrize("r", [2, 3])
def test_pixel_shuffle_orders(r):
    x = np.random.default_rng(r).normal(size=(2, 3, 4, 2 * r * r)).astype("float32")
    np.testing.assert_array_equal(np.asarray(PixelShuffle(r)(x)), _torch_pixel_shuffle(x, r))
    tf = pytest.importorskip("tensorflow")
    np.testing.assert_array_equal(np.asarray(PixelShuffle(r, channel_order="tf")(x)), tf.nn.depth_to_space(x, r).numpy())
    assert not np.array_equal(np.asarray(PixelShuffle(r)(x)), np.asarray(PixelShuffle(r, channel_order="tf")(x)))


def test_reflection_padding_is_numpy_reflect():
    x = np.random.default_rng(0).normal(size=(1, 5, 6, 2)).astype("float32")
    expected = np.pad(x, ((0, 0), (1, 2), (3, 0), (0, 0)), mode="reflect")
    np.testing.assert_array_equal(np.asarray(ReflectionPadding2D(((1, 2), (3, 0)))(x)), expected)
    with pytest.raises(ValueError, match="larger"):
        ReflectionPadding2D(5)(x)


def test_argmax_pool_and_unpool_match_torch_definition():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(2, 6, 8, 3)).astype("float32")
    x[0, 0, 0, 0] = x[0, 0, 1, 0] = x[0, 1, 0, 0] = 9.0  # tie: torch keeps the first in row-major order
    pooled, indices = MaxPoolingWithArgmax2D(2)(x)
    windows = x.reshape(2, 3, 2, 4, 2, 3).transpose(0, 1, 3, 5, 2, 4).reshape(2, 3, 4, 3, 4)
    np.testing.assert_array_equal(np.asarray(pooled), windows.max(-1))
    local = windows.argmax(-1)
    rows = np.arange(3)[None, :, None, None] * 2 + local // 2
    cols = np.arange(4)[None, None, :, None] * 2 + local % 2
    np.testing.assert_array_equal(np.asarray(indices), rows * 8 + cols)
    assert np.asarray(indices)[0, 0, 0, 0] == 0
    unpooled = np.asarray(MaxUnpooling2D(2)([pooled, indices]))
    flat = unpooled.transpose(0, 3, 1, 2).reshape(2, 3, -1)
    np.testing.assert_array_equal(np.take_along_axis(flat, np.asarray(indices).transpose(0, 3, 1, 2).reshape(2, 3, -1), -1),
                                  np.asarray(pooled).transpose(0, 3, 1, 2).reshape(2, 3, -1))
    assert np.count_nonzero(unpooled) == pooled.shape[1] * pooled.shape[2] * 3 * 2
    with pytest.raises(ValueError, match="ceil_mode"):
        MaxPoolingWithArgmax2D(2)(x[:, :5])


@pytest.mark.parametrize("height, width", [(5, 7), (45, 60), (1, 2)])
def test_ceil_mode_pools_any_size_and_unpools_back_to_it(height, width):
    """Caffe's rounding (SegNet's 360x480 nets): partial last windows, indices into the unpadded map."""
    rng = np.random.default_rng(5)
    x = rng.normal(size=(2, height, width, 3)).astype("float32")
    pooled, indices = MaxPoolingWithArgmax2D(2, ceil_mode=True)(x)
    out_h, out_w = -(-height // 2), -(-width // 2)
    expected_values = np.empty((2, out_h, out_w, 3), "float32")
    expected_indices = np.empty((2, out_h, out_w, 3), "int64")
    for i in range(out_h):
        for j in range(out_w):
            window = x[:, 2 * i:2 * i + 2, 2 * j:2 * j + 2]  # numpy clips the partial windows
            flat = window.transpose(0, 3, 1, 2).reshape(2, 3, -1)
            local = flat.argmax(-1)
            expected_values[:, i, j] = flat.max(-1)
            expected_indices[:, i, j] = (2 * i + local // window.shape[2]) * width + 2 * j + local % window.shape[2]
    np.testing.assert_array_equal(np.asarray(pooled), expected_values)
    np.testing.assert_array_equal(np.asarray(indices), expected_indices)
    unpooled = np.asarray(MaxUnpooling2D(2)([pooled, indices, x]))
    assert unpooled.shape == x.shape
    expected = np.zeros_like(x)
    n, c = np.meshgrid(np.arange(2), np.arange(3), indexing="ij")
    for i in range(out_h):
        for j in range(out_w):
            flat_index = expected_indices[:, i, j]
            expected[n, flat_index // width, flat_index % width, c] = expected_values[:, i, j]
    np.testing.assert_array_equal(unpooled, expected)
    layer = MaxPoolingWithArgmax2D(2, ceil_mode=True)
    assert layer.compute_output_shape((None, height, width, 3))[0] == (None, out_h, out_w, 3)
    assert MaxPoolingWithArgmax2D.from_config(layer.get_config()).ceil_mode


def test_unpooling_passes_gradients_to_the_maxima_only():
    tf = pytest.importorskip("tensorflow")
    x = tf.constant(np.random.default_rng(2).normal(size=(2, 4, 4, 1)).astype("float32"))
    with tf.GradientTape() as tape:
        tape.watch(x)
        pooled, indices = MaxPoolingWithArgmax2D(2)(x)
        y = tf.reduce_sum(MaxUnpooling2D(2)([pooled, indices]))
    grad = tape.gradient(y, x).numpy()
    np.testing.assert_array_equal(grad, (np.asarray(MaxUnpooling2D(2)([pooled, indices])) != 0).astype("float32"))


def test_instance_norm_matches_numpy():
    x = np.random.default_rng(3).normal(2, 3, size=(2, 5, 7, 4)).astype("float32")
    mean, var = x.mean((1, 2), keepdims=True), x.var((1, 2), keepdims=True)
    assert_close(InstanceNormalization()(x), (x - mean) / np.sqrt(var + 1e-5))
    layer = InstanceNormalization(center=True, scale=True)
    layer.build(x.shape)
    assert len(layer.weights) == 2
    assert len(InstanceNormalization().weights) == 0


def test_colour_conversions_match_scikit_image():
    color = pytest.importorskip("skimage.color")
    rng = np.random.default_rng(4)
    x = rng.uniform(0, 1, (2, 9, 9, 3)).astype("float32")
    x[0, 0, :6] = [[0.5, 0.5, 0.5], [0.7, 0.7, 0.2], [0.1, 0.7, 0.7], [0.7, 0.1, 0.7], [0, 0, 0], [0.01, 0.004, 0.02]]
    assert_close(RGBToHSV()(x), color.rgb2hsv(x.astype("float64")), what="hsv")
    assert_close(RGBToLab()(x), color.rgb2lab(x.astype("float64")), what="lab")


def test_lab_and_hsv_have_finite_gradients_at_black_and_grey():
    tf = pytest.importorskip("tensorflow")
    x = tf.constant(np.stack([np.zeros((2, 2, 3)), np.full((2, 2, 3), 0.5)]).astype("float32"))
    for layer in (RGBToLab(), RGBToHSV()):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = tf.reduce_sum(layer(x))
        assert np.isfinite(tape.gradient(y, x).numpy()).all(), type(layer).__name__


@pytest.mark.parametrize("layer", [PixelShuffle(2, channel_order="tf"), ReflectionPadding2D(2), InstanceNormalization(scale=True),
                                   RGBToHSV(), RGBToLab(normalize=True)])
def test_layers_round_trip_in_a_saved_model(tmp_path, layer):
    inputs = keras.Input((4, 4, 12 if isinstance(layer, PixelShuffle) else 3))
    model = keras.Model(inputs, layer(inputs))
    x = np.random.default_rng(5).uniform(0, 1, (1,) + tuple(inputs.shape[1:])).astype("float32")
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    np.testing.assert_array_equal(np.asarray(loaded(x)), np.asarray(model(x)))
    assert type(loaded.layers[-1]).from_config(layer.get_config()).get_config() == layer.get_config()
