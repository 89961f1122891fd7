"""Ucolor: the parameter count recomputed layer by layer, the guidance and colour inputs, save/load, a training step."""

from __future__ import annotations

import keras
import numpy as np
import pytest

import kerasnets
from kerasnets.registry import build_for_shapes
from tests.conftest import assert_close


def _c(cin, cout):
    return 9 * cin * cout + cout


def _expected_params(f=128):
    total, cin = 0, 3
    for w in (f, 2 * f, 4 * f):
        total += 2 * (_c(cin, w) + 7 * _c(w, w))      # hsv, lab streams
        total += _c(cin, w) + 7 * _c(3 * w, w)        # rgb stream, dense links
        r = 3 * w // 16
        total += 2 * 3 * w * r + r + 3 * w            # SE on the 3w concat
        total += _c(3 * w, w)                          # fusion conv
        cin = w
    total += 8 * _c(4 * f, 4 * f)
    total += _c(6 * f, 2 * f) + 7 * _c(2 * f, 2 * f)
    total += _c(3 * f, f) + 7 * _c(f, f)
    return total + _c(f, 3)


@pytest.fixture(scope="module")
def small():
    return kerasnets.build_ucolor(input_shape=(16, 16, 3), filters=16)


def _inputs(seed, batch=1, size=16):
    rng = np.random.default_rng(seed)
    return [rng.uniform(0, 1, (batch, size, size, 3)).astype("float32"),
            rng.uniform(0, 1, (batch, size, size, 1)).astype("float32")]


def test_parameter_count_layer_by_layer(small):
    assert kerasnets.parameter_count(build_for_shapes("ucolor")) == _expected_params() == 148_774_059
    assert kerasnets.parameter_count(small) == _expected_params(16)


def test_shapes_and_fully_convolutional(small):
    assert small.output_shape == (None, 16, 16, 3)
    assert [tuple(t.shape[1:]) for t in small.inputs] == [(16, 16, 3), (16, 16, 1)]
    assert small.get_layer("fusion3_se").input.shape[-1] == 3 * 64
    assert small.get_layer("rgb_stage2_conv2_links").output.shape[-1] == 3 * 32


def test_colour_views_are_scikit_image(small):
    skimage_color = pytest.importorskip("skimage.color")
    x = _inputs(0)[0]
    hsv = keras.Model(small.inputs[0], small.get_layer("to_hsv").output)(x)
    assert_close(hsv, skimage_color.rgb2hsv(x.astype("float64")), what="hsv")
    lab = np.asarray(keras.Model(small.inputs[0], small.get_layer("to_lab").output)(x))
    ref = skimage_color.rgb2lab(x.astype("float64"))
    assert_close(lab, np.stack([ref[..., 0] / 100, (ref[..., 1] + 128) / 255, (ref[..., 2] + 128) / 255], -1), what="lab")


def test_reverse_transmission_guidance(small):
    """guide = f * (1 + maxpool(1 - t)); and t changes the output."""
    image, t = _inputs(1)
    probe = keras.Model(small.inputs, [small.get_layer("fusion2_conv").output, small.get_layer("guide2_add").output])
    fused, guided = (np.asarray(a) for a in probe([image, t]))
    rmt = (1 - t).reshape(1, 8, 2, 8, 2, 1).max(axis=(2, 4))
    assert_close(guided, fused * (1 + rmt))
    assert not np.allclose(np.asarray(small([image, t])), np.asarray(small([image, 1 - t])))


@pytest.mark.parametrize("suffix", [".keras", ".h5"])
def test_save_and_reload(tmp_path, small, suffix):
    x = _inputs(2)
    small.save(tmp_path / f"ucolor{suffix}")
    loaded = keras.models.load_model(tmp_path / f"ucolor{suffix}")
    np.testing.assert_array_equal(np.asarray(loaded(x)), np.asarray(small(x)))


def test_one_training_step():
    model = kerasnets.build_ucolor(input_shape=(8, 8, 3), filters=16)
    x = _inputs(3, batch=2, size=8)
    y = np.random.default_rng(4).uniform(0, 1, (2, 8, 8, 3)).astype("float32")
    model.compile(optimizer=keras.optimizers.Adam(1e-4), loss="mse", run_eagerly=True)
    before = model.get_layer("rgb_stage1_conv1").kernel.numpy().copy()
    model.fit(x, y, epochs=1, batch_size=2, verbose=0)
    assert not np.array_equal(before, model.get_layer("rgb_stage1_conv1").kernel.numpy())


@pytest.mark.parametrize("kwargs, message", [({"input_shape": (18, 18, 3)}, "multiples of 4"),
                                             ({"input_shape": (16, 16, 1)}, "3 input channels"),
                                             ({"filters": 4}, "filters"), ({"bogus": 1}, "Unknown option")])
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        kerasnets.build_ucolor(**kwargs)
