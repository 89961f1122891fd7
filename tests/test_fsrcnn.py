"""FSRCNN: the notes' parameter count, torch's ConvTranspose2d geometry, save/load, a training step, bad arguments."""

from __future__ import annotations

import keras
import numpy as np
import pytest

import kerasnets
import weights_io
from kerasnets.fsrcnn import torch_conv_transpose
from tests.conftest import assert_close
from tests.references import infer


def _expected_params(num_channels=1, d=56, s=12, m=4):
    # conv + bias + per-channel PReLU, by hand from the notes' model.
    conv = lambda cin, cout, k: cin * cout * k * k + cout + cout  # noqa: E731
    return (conv(num_channels, d, 5) + conv(d, s, 1) + m * conv(s, s, 3) + conv(s, d, 1)
            + d * num_channels * 81 + num_channels)


def test_parameter_count_matches_reference():
    assert kerasnets.parameter_count(kerasnets.build_fsrcnn(2)) == 12_809 == _expected_params()
    assert kerasnets.parameter_count(kerasnets.build_fsrcnn(3, 3, 32, 5, 1)) == _expected_params(3, 32, 5, 1)


@pytest.mark.parametrize("scale", [1, 2, 3, 4, 8])
def test_output_is_scale_times_input(scale):
    model = kerasnets.build_fsrcnn(scale, m=1)
    out = infer(model, np.zeros((1, 7, 5, 1), "float32"))
    assert out.shape == (1, 7 * scale, 5 * scale, 1)


def _numpy_conv_transpose(x, kernel, bias, stride, padding, output_padding):
    """torch.nn.functional.conv_transpose2d by its definition: scatter-add, grow, crop."""
    n, h, w, _ = x.shape
    kh, kw, cout, _ = kernel.shape
    full = np.zeros((n, (h - 1) * stride + kh + output_padding, (w - 1) * stride + kw + output_padding, cout))
    for i in range(h):
        for j in range(w):
            full[:, i * stride:i * stride + kh, j * stride:j * stride + kw] += np.einsum("nc,hwoc->nhwo", x[:, i, j], kernel)
    full += bias
    return full[:, padding:full.shape[1] - padding, padding:full.shape[2] - padding]


@pytest.mark.parametrize("stride, padding, output_padding", [(2, 4, 1), (3, 4, 2), (2, 1, 1), (4, 0, 3), (1, 2, 0)])
def test_torch_conv_transpose_geometry(stride, padding, output_padding):
    inputs = keras.Input((5, 6, 3))
    out = torch_conv_transpose(inputs, 2, 9 if padding == 4 else 3, stride=stride, padding=padding,
                               output_padding=output_padding, name="deconv")
    model = keras.Model(inputs, out)
    layer = model.get_layer("deconv")
    rng = np.random.default_rng(stride)
    layer.set_weights([rng.normal(size=layer.kernel.shape), rng.normal(size=2)])
    x = rng.normal(size=(2, 5, 6, 3)).astype("float32")
    expected = _numpy_conv_transpose(x, *layer.get_weights(), stride, padding, output_padding)
    assert_close(infer(model, x), expected)


def test_layer_names_and_layout_cover_the_model():
    model = kerasnets.build_fsrcnn(2, m=2)
    mapping = weights_io.get_layout("fsrcnn-pytorch").map_names([l.name for l in model.layers if l.weights])
    assert mapping == {
        "extract_conv": "first_part.0", "extract_prelu": "first_part.1", "shrink_conv": "mid_part.0",
        "shrink_prelu": "mid_part.1", "map1_conv": "mid_part.2", "map1_prelu": "mid_part.3",
        "map2_conv": "mid_part.4", "map2_prelu": "mid_part.5", "expand_conv": "mid_part.6",
        "expand_prelu": "mid_part.7", "deconv": "last_part",
    }
    assert model.get_layer("extract_prelu").alpha.shape == (1, 1, 56)


@pytest.mark.parametrize("suffix", [".keras", ".h5"])
def test_save_and_reload(tmp_path, suffix):
    model = kerasnets.build_fsrcnn(3)
    for layer in model.layers:
        for w in layer.weights:
            w.assign(np.random.default_rng(0).normal(0, 0.1, w.shape).astype("float32"))
    x = np.random.default_rng(1).uniform(0, 1, (2, 9, 11, 1)).astype("float32")
    model.save(tmp_path / f"fsrcnn{suffix}")
    loaded = keras.models.load_model(tmp_path / f"fsrcnn{suffix}")
    np.testing.assert_array_equal(infer(loaded, x), infer(model, x))


def test_one_training_step():
    model = kerasnets.build_fsrcnn(2, input_shape=(12, 12, 1))
    x = np.random.default_rng(2).uniform(0, 1, (4, 12, 12, 1)).astype("float32")
    y = np.random.default_rng(3).uniform(0, 1, (4, 24, 24, 1)).astype("float32")
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="mse", run_eagerly=True)  # tracing costs more than the step
    before = [w.copy() for w in model.get_weights()]
    history = model.fit(x, y, epochs=1, batch_size=4, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    assert all(not np.array_equal(a, b) for a, b in zip(before, model.get_weights()))


@pytest.mark.parametrize(
    "kwargs, message",
    [({"scale": 0}, "scale"), ({"d": 2.5}, "`d`"), ({"m": -1}, "`m`"), ({"input_shape": (8, 8, 3)}, "channels"),
     ({"num_channels": 0}, "num_channels"), ({"bogus": 1}, "Unknown option")],
)
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        kerasnets.build_fsrcnn(**kwargs)
