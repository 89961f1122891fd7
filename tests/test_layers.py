"""LRN and SE layers against independent references (explicit loops, TensorFlow's LRN)."""

import keras
import numpy as np
import pytest

from kerasnets.layers import LocalResponseNormalization, SqueezeExcitation
from tests.conftest import assert_close
from tests.references import infer


def lrn_loop(x, size, alpha, beta, bias, divide_by_size):
    """The paper's formula written as loops over channels."""
    out = np.empty_like(x, dtype=np.float64)
    channels = x.shape[-1]
    scale = alpha / size if divide_by_size else alpha
    for c in range(channels):
        lo, hi = max(0, c - size // 2), min(channels, c + (size - 1) // 2 + 1)
        denom = (bias + scale * np.sum(x[..., lo:hi].astype(np.float64) ** 2, axis=-1)) ** beta
        out[..., c] = x[..., c] / denom
    return out


@pytest.mark.parametrize("size", [5, 3, 4])
@pytest.mark.parametrize("convention", ["paper", "caffe"])
def test_lrn_matches_loop_reference(size, convention):
    x = np.random.default_rng(0).normal(0, 30, (2, 4, 5, 11)).astype("float32")
    layer = LocalResponseNormalization(size=size, alpha=1e-3, beta=0.75, bias=2.0, convention=convention)
    expected = lrn_loop(x, size, 1e-3, 0.75, 2.0, convention == "caffe")
    assert_close(keras.ops.convert_to_numpy(layer(x)), expected)


def test_lrn_paper_convention_equals_tensorflow():
    import tensorflow as tf

    x = np.random.default_rng(1).normal(0, 50, (2, 6, 6, 16)).astype("float32")
    ours = LocalResponseNormalization(size=5, alpha=1e-4, beta=0.75, bias=2.0)(x)
    ref = tf.nn.local_response_normalization(x, depth_radius=2, bias=2.0, alpha=1e-4, beta=0.75)
    assert_close(keras.ops.convert_to_numpy(ours), ref.numpy())


def test_lrn_rejects_bad_arguments():
    with pytest.raises(ValueError, match="convention"):
        LocalResponseNormalization(convention="torchy")
    with pytest.raises(ValueError, match="size"):
        LocalResponseNormalization(size=0)


def test_se_matches_numpy_reference():
    x = np.random.default_rng(2).normal(size=(3, 5, 7, 32)).astype("float32")
    layer = SqueezeExcitation(ratio=16)
    y = keras.ops.convert_to_numpy(layer(x))
    w1, b1 = layer.squeeze_kernel.numpy(), layer.squeeze_bias.numpy()
    w2, b2 = layer.excite_kernel.numpy(), layer.excite_bias.numpy()
    assert w1.shape == (32, 2) and w2.shape == (2, 32)
    squeezed = x.mean(axis=(1, 2))
    gate = 1 / (1 + np.exp(-(np.maximum(squeezed @ w1 + b1, 0) @ w2 + b2)))
    assert_close(y, x * gate[:, None, None, :])


def test_se_hard_sigmoid_gate_and_explicit_width():
    x = np.random.default_rng(3).normal(size=(2, 4, 4, 24)).astype("float32")
    layer = SqueezeExcitation(squeeze_channels=8, gate="hard_sigmoid")
    gate = keras.ops.convert_to_numpy(layer.channel_weights(x))
    hidden = np.maximum(x.mean(axis=(1, 2)) @ layer.squeeze_kernel.numpy() + layer.squeeze_bias.numpy(), 0)
    logits = hidden @ layer.excite_kernel.numpy() + layer.excite_bias.numpy()
    assert_close(gate, np.clip(logits + 3, 0, 6) / 6)
    assert layer.squeeze_kernel.shape == (24, 8)


@pytest.mark.parametrize("suffix", [".keras", ".h5"])
def test_custom_layers_round_trip(tmp_path, suffix):
    inputs = keras.Input((8, 8, 16))
    x = LocalResponseNormalization(size=3, convention="caffe", name="lrn")(inputs)
    outputs = SqueezeExcitation(ratio=4, name="se")(x)
    model = keras.Model(inputs, outputs)
    x = np.random.default_rng(4).normal(size=(2, 8, 8, 16)).astype("float32")
    path = tmp_path / f"m{suffix}"
    model.save(path)
    loaded = keras.models.load_model(path, safe_mode=True)
    assert loaded.get_layer("lrn").convention == "caffe"
    np.testing.assert_array_equal(infer(loaded, x), infer(model, x))
