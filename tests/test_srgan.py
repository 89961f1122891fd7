"""SRResNet / SRGAN: hand-computed counts, x2/x4/x8 shapes, save/load, a training step, bad arguments."""

from __future__ import annotations

import keras
import numpy as np
import pytest

import kerasnets
from kerasnets.registry import build_for_shapes
from tests.conftest import assert_reloaded_outputs


def _conv(cin, cout, k):
    return cin * cout * k * k + cout


def _srresnet_params(scale, blocks=16, f=64):
    block = 2 * _conv(f, f, 3) + 2 * 2 * f + 1  # two convs, two BN (gamma, beta), one PReLU slope
    ups = int(np.log2(scale)) * (_conv(f, 4 * f, 3) + 1)
    return _conv(3, f, 9) + 1 + blocks * block + _conv(f, f, 3) + 2 * f + ups + _conv(f, 3, 9)


def _discriminator_params(size=96):
    convs, cin = 0, 3
    for i, (filters, _) in enumerate(kerasnets.srgan.DISCRIMINATOR_CONVS):
        convs += _conv(cin, filters, 3) + (2 * filters if i else 0)
        cin = filters
    return convs + (size // 16) ** 2 * 512 * 1024 + 1024 + 1024 + 1


@pytest.mark.parametrize("scale", [2, 4, 8])
def test_generator_shape_and_count(scale):
    model = kerasnets.build_srresnet(scale)
    assert kerasnets.parameter_count(model) == _srresnet_params(scale)
    out = model(np.zeros((1, 6, 5, 3), "float32"))
    assert out.shape == (1, 6 * scale, 5 * scale, 3)
    assert kerasnets.parameter_count(build_for_shapes("srgan_generator", scale=scale)) == _srresnet_params(scale)


def test_srresnet_x4_is_the_usual_1_5m():
    assert kerasnets.parameter_count(build_for_shapes("srresnet", scale=4)) == 1_549_462


def test_discriminator_shape_and_count():
    model = build_for_shapes("srgan_discriminator")
    assert kerasnets.parameter_count(model) == _discriminator_params() == 23_565_505
    assert model.output_shape == (None, 1)
    assert kerasnets.parameter_count(build_for_shapes("srgan_discriminator", input_shape=(32, 32, 3))) == _discriminator_params(32)


def test_global_skip_and_channel_order_matter():
    """Same weights, other pixel-shuffle order -> a different image (the option is not a no-op)."""
    torch_order = kerasnets.build_srresnet(2, blocks=1, output_activation=None)
    tf_order = kerasnets.build_srresnet(2, blocks=1, output_activation=None, channel_order="tf")
    tf_order.set_weights(torch_order.get_weights())
    x = np.random.default_rng(0).uniform(0, 1, (1, 6, 6, 3)).astype("float32")
    assert not np.allclose(np.asarray(torch_order(x)), np.asarray(tf_order(x)))


@pytest.mark.parametrize("builder, options, shape", [
    ("srresnet", dict(scale=2, blocks=2, filters=8), (8, 8, 3)),
    ("srgan_discriminator", dict(input_shape=(32, 32, 3)), (32, 32, 3)),
])
@pytest.mark.parametrize("suffix", [".keras", ".h5"])
def test_save_and_reload(tmp_path, builder, options, shape, suffix):
    model = kerasnets.build(builder, **options)
    x = np.random.default_rng(1).uniform(0, 1, (2,) + shape).astype("float32")
    model.save(tmp_path / f"m{suffix}")
    loaded = keras.models.load_model(tmp_path / f"m{suffix}")
    assert_reloaded_outputs(np.asarray(loaded(x)), np.asarray(model(x)), model)


def test_one_training_step_generator_and_discriminator():
    gen = kerasnets.build_srresnet(2, input_shape=(8, 8, 3), blocks=2, filters=8)
    disc = kerasnets.build_srgan_discriminator(input_shape=(16, 16, 3))
    rng = np.random.default_rng(2)
    for model, x, y in ((gen, rng.uniform(0, 1, (2, 8, 8, 3)), rng.uniform(-1, 1, (2, 16, 16, 3))),
                        (disc, rng.uniform(-1, 1, (2, 16, 16, 3)), np.array([[1.0], [0.0]]))):
        model.compile(optimizer="adam", loss="mse", run_eagerly=True)
        before = [w.copy() for w in model.get_weights()]
        model.fit(x.astype("float32"), y.astype("float32"), epochs=1, verbose=0)
        assert any(not np.array_equal(a, b) for a, b in zip(before, model.get_weights()))


@pytest.mark.parametrize("builder, kwargs, message", [
    ("srresnet", {"scale": 3}, "scale"),
    ("srresnet", {"channel_order": "caffe"}, "channel_order"),
    ("srresnet", {"blocks": 0}, "blocks"),
    ("srgan_discriminator", {"input_shape": (None, None, 3)}, "fixed"),
    ("srgan_discriminator", {"input_shape": (40, 40, 3)}, "multiples of 16"),
])
def test_bad_arguments(builder, kwargs, message):
    with pytest.raises(ValueError, match=message):
        kerasnets.build(builder, **kwargs)
