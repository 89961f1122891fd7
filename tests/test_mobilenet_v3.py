"""MobileNetV3: parameter counts, keras.applications parity (incl. alpha/minimalistic), features, save/load, fit, errors."""

from __future__ import annotations

import keras
import numpy as np
import pytest

import kerasnets
import weights_io
from kerasnets.mobilenet_v3 import make_divisible
from kerasnets.registry import build_for_shapes
from tests.conftest import check_save_load_and_fit, copy_keras_weights
from tests.references import assert_parity, build_uninitialised, heal_keras, infer

# torchvision counts: trainable + BN affine.
REFERENCE_PARAMS = {"mobilenet_v3_large": 5_483_032, "mobilenet_v3_small": 2_542_856}


@pytest.mark.parametrize("name", sorted(REFERENCE_PARAMS))
def test_parameter_count(name):
    assert kerasnets.parameter_count(build_for_shapes(name, input_shape=(32, 32, 3))) == REFERENCE_PARAMS[name]


def test_make_divisible():
    # TF-slim / torchvision rule: nearest multiple of 8, never more than 10% below.
    assert [make_divisible(v) for v in (3, 16, 18, 72 / 4, 120 / 4, 480 / 4, 10, 36)] == [8, 16, 24, 24, 32, 120, 16, 40]


@pytest.mark.parametrize("reference, size, options", [
    ("MobileNetV3Large", "large", {}),
    ("MobileNetV3Small", "small", {}),
    ("MobileNetV3Small", "small", dict(minimalistic=True)),
    ("MobileNetV3Large", "large", dict(alpha=0.75)),
])
def test_keras_applications_parity(reference, size, options, tmp_path):
    shape = (64, 64, 3)
    theirs = build_uninitialised(getattr(keras.applications, reference),
                                 weights=None, input_shape=shape, classifier_activation=None, **options)
    heal_keras(theirs, np.random.default_rng(1).uniform(0, 255, size=(8,) + shape))
    ours = build_uninitialised(kerasnets.build_mobilenet_v3, size, input_shape=shape, classifier_activation=None,
                               **options)
    assert kerasnets.parameter_count(ours, bn_moving_stats=True) == theirs.count_params()
    report = copy_keras_weights(theirs, ours, tmp_path)
    assert report.ok and not report.unexpected
    x = np.random.default_rng(0).uniform(0, 255, size=(2,) + shape).astype("float32")
    assert_parity(infer(ours, x), infer(theirs, x),
                                      what=f"{reference} {options}")


@pytest.mark.parametrize("name, widths", [
    ("mobilenet_v3_large", (16, 24, 40, 112, 960)),
    ("mobilenet_v3_small", (16, 16, 24, 48, 576)),
])
def test_features_are_the_stage_outputs(name, widths):
    model = kerasnets.build(name, include_top=False, features=True, input_shape=(64, 64, 3))
    assert [tuple(t.shape[1:]) for t in model.outputs] == [
        (64 // s, 64 // s, w) for s, w in zip((2, 4, 8, 16, 32), widths)
    ]


def test_torch_padding_is_symmetric():
    model = kerasnets.build_mobilenet_v3_small(padding="torch", include_preprocessing=False, input_shape=(64, 64, 3))
    assert model.get_layer("conv_pad").padding == ((1, 1), (1, 1))
    assert model.get_layer("expanded_conv_3_depthwise_pad").padding == ((2, 2), (2, 2))
    assert "rescaling" not in [layer.name for layer in model.layers]


SMALL_CONFIGS = {
    "small": dict(size="small"),
    "large_minimalistic_torch": dict(size="large", minimalistic=True, padding="torch", include_preprocessing=False),
}


@pytest.mark.parametrize("config", sorted(SMALL_CONFIGS))
def test_save_load_and_fit(config, tmp_path):
    model = kerasnets.build_mobilenet_v3(input_shape=(32, 32, 3), classes=3, **SMALL_CONFIGS[config])
    x = np.random.default_rng(0).uniform(0, 255, size=(2, 32, 32, 3)).astype("float32")
    check_save_load_and_fit(model, x, np.array([0, 2]), tmp_path)


@pytest.mark.parametrize("kwargs, message", [
    (dict(size="medium"), "size"),
    (dict(alpha=0), "alpha"),
    (dict(minimalistic="yes"), "minimalistic"),
    (dict(dropout_rate=1.0), "dropout_rate"),
    (dict(include_preprocessing=None), "include_preprocessing"),
    (dict(padding="same"), "padding"),
    (dict(features=True), "features"),
    (dict(input_shape=(224, 224)), "input_shape"),
])
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        kerasnets.build_mobilenet_v3(**kwargs)


def test_unknown_option_is_rejected():
    with pytest.raises(ValueError, match="Unknown option"):
        kerasnets.build_mobilenet_v3_large(width_multiplier=0.5)


def test_keras_legacy_layout_names():
    """tf.keras-era names (keras.applications' hosted .h5 files), spot-checked against tf.keras' source."""
    model = kerasnets.build_mobilenet_v3_small(input_shape=(64, 64, 3))
    names = [layer.name for layer in weights_io.assign.weighted_layers(model)]
    mapping = weights_io.get_layout("keras-legacy-mobilenet-v3").map_names(names)
    assert set(mapping) == set(names) and len(set(mapping.values())) == len(names)
    expected = {
        "conv": "Conv", "conv_bn": "Conv/BatchNorm", "expanded_conv_depthwise": "expanded_conv/depthwise",
        "expanded_conv_squeeze_excite_conv": "expanded_conv/squeeze_excite/Conv",
        "expanded_conv_1_expand_bn": "expanded_conv_1/expand/BatchNorm",
        "expanded_conv_10_squeeze_excite_conv_1": "expanded_conv_10/squeeze_excite/Conv_1",
        "expanded_conv_10_project": "expanded_conv_10/project", "conv_1_bn": "Conv_1/BatchNorm",
        "conv_2": "Conv_2", "logits": "Logits",
    }
    assert {k: mapping[k] for k in expected} == expected
