"""DenseNet: parameter counts, keras.applications parity, the notes' small DenseNet, features, save/load, fit, errors."""

from __future__ import annotations

import keras
import numpy as np
import pytest

import kerasnets
from kerasnets.registry import build_for_shapes
from tests.conftest import check_save_load_and_fit, copy_keras_weights
from tests.references import assert_parity, build_uninitialised, heal_keras, infer

# torchvision counts: trainable + BN affine.
REFERENCE_PARAMS = {
    "densenet121": 7_978_856,
    "densenet161": 28_681_000,
    "densenet169": 14_149_480,
    "densenet201": 20_013_928,
}

NOTES_DENSENET = dict(blocks=(4, 4, 4, 4), growth_rate=32, init_filters=64, bn_size=None, conv_bias=True,
                      classes=10, input_shape=(96, 96, 1))


@pytest.mark.parametrize("name", sorted(REFERENCE_PARAMS))
def test_parameter_count(name):
    model = build_for_shapes(name, input_shape=(32, 32, 3))
    assert kerasnets.parameter_count(model) == REFERENCE_PARAMS[name]


def _notes_count(blocks=(4, 4, 4, 4), channels=64, growth=32, classes=10):
    """The notes' PyTorch DenseNet counted by hand: conv (w + b), BN (gamma + beta)."""
    total = 1 * 64 * 7 * 7 + 64 + 2 * 64
    for i, layers in enumerate(blocks):
        for j in range(layers):
            cin = channels + j * growth
            total += 2 * cin + 9 * cin * growth + growth
        channels += layers * growth
        if i != len(blocks) - 1:
            total += 2 * channels + channels * (channels // 2) + channels // 2
            channels //= 2
    return total + 2 * channels + channels * classes + classes


def test_notes_small_densenet():
    model = kerasnets.build_densenet(**NOTES_DENSENET)
    assert kerasnets.parameter_count(model) == _notes_count() == 758_226
    assert model.output.shape[1:] == (10,)
    # The notes' layer is BN-ReLU-Conv3x3: no 1x1 bottleneck.
    assert "conv2_block1_1_conv" not in [layer.name for layer in model.layers]


@pytest.mark.parametrize(
    "name, reference, via_file",
    [("densenet121", "DenseNet121", True), ("densenet169", "DenseNet169", False), ("densenet201", "DenseNet201", False)],
)
def test_keras_applications_parity(name, reference, via_file, tmp_path):
    shape = (64, 64, 3)
    theirs = build_uninitialised(getattr(keras.applications, reference), weights=None, input_shape=shape,
                                 classifier_activation=None)
    heal_keras(theirs, np.random.default_rng(1).normal(size=(8,) + shape))
    ours = build_uninitialised(kerasnets.build, name, input_shape=shape, classifier_activation=None)
    assert kerasnets.parameter_count(ours, bn_moving_stats=True) == theirs.count_params()
    report = copy_keras_weights(theirs, ours, tmp_path if via_file else None)
    assert report.ok and not report.unexpected
    x = np.random.default_rng(0).normal(size=(2,) + shape).astype("float32")
    assert_parity(infer(ours, x), infer(theirs, x), what=name)


def test_features_are_the_stage_outputs():
    model = kerasnets.build_densenet121(include_top=False, features=True, input_shape=(64, 64, 3))
    widths = (64, 256, 512, 1024, 1024)
    assert [tuple(t.shape[1:]) for t in model.outputs] == [
        (64 // s, 64 // s, w) for s, w in zip((2, 4, 8, 16, 32), widths)
    ]


SMALL_CONFIGS = {
    "notes": {**NOTES_DENSENET, "input_shape": (32, 32, 1)},
    "bc_tiny": dict(blocks=(2, 2, 2, 2), growth_rate=8, init_filters=16, classes=10, input_shape=(32, 32, 1)),
}


@pytest.mark.parametrize("config", sorted(SMALL_CONFIGS))
def test_save_load_and_fit(config, tmp_path):
    model = kerasnets.build_densenet(**SMALL_CONFIGS[config])
    x = np.random.default_rng(0).normal(size=(2, 32, 32, 1)).astype("float32")
    check_save_load_and_fit(model, x, np.array([0, 9]), tmp_path)


@pytest.mark.parametrize("kwargs, message", [
    (dict(blocks=(6, 12, 24)), "blocks"),
    (dict(growth_rate=0), "growth_rate"),
    (dict(init_filters=-64), "init_filters"),
    (dict(bn_size=0), "bn_size"),
    (dict(compression=0.0), "compression"),
    (dict(compression=1.5), "compression"),
    (dict(conv_bias=1), "conv_bias"),
    (dict(bn_epsilon=0), "bn_epsilon"),
    (dict(features=True), "features"),
    (dict(classes=0), "classes"),
])
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        kerasnets.build_densenet(**kwargs)


def test_unknown_option_is_rejected():
    with pytest.raises(ValueError, match="Unknown option"):
        kerasnets.build_densenet121(growth_rate=12)
