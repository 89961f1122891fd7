"""ResNet v2 (pre-activation): keras.applications parity, heads, layer names, options, save/load."""

from __future__ import annotations

import keras
import numpy as np
import pytest

import kerasnets
import weights_io
from kerasnets.resnet import KERAS_APPLICATIONS_V2, TF_SLIM
from tests.conftest import check_save_load_and_fit, copy_keras_weights
from tests.references import assert_parity, build_uninitialised, heal_keras, infer
from weights_io.core import build_record

SHAPE = (64, 64, 3)
VARIANTS = [("resnet50_v2", "ResNet50V2"), ("resnet101_v2", "ResNet101V2"), ("resnet152_v2", "ResNet152V2")]


def _healed_reference(reference, **kwargs):
    theirs = build_uninitialised(getattr(keras.applications, reference), weights=None, input_shape=SHAPE, **kwargs)
    return heal_keras(theirs, np.random.default_rng(1).normal(size=(8,) + SHAPE))


@pytest.mark.parametrize("name, reference", VARIANTS)
def test_keras_applications_parity(name, reference, tmp_path):
    theirs = _healed_reference(reference, classifier_activation=None)
    ours = build_uninitialised(kerasnets.build, name, input_shape=SHAPE, classifier_activation=None)
    assert ours.count_params() == theirs.count_params()
    assert {w.path: tuple(w.shape) for w in ours.weights} == {w.path: tuple(w.shape) for w in theirs.weights}
    report = copy_keras_weights(theirs, ours, tmp_path if name == "resnet50_v2" else None)
    assert report.ok and not report.unexpected
    x = np.random.default_rng(0).normal(size=(2,) + SHAPE).astype("float32")
    assert_parity(infer(ours, x), infer(theirs, x), what=name)


@pytest.mark.parametrize("pooling", [None, "avg", "max"])
def test_headless_parity(pooling):
    theirs = _healed_reference("ResNet50V2", include_top=False, pooling=pooling)
    ours = build_uninitialised(kerasnets.build_resnet50_v2, include_top=False, pooling=pooling, input_shape=SHAPE)
    copy_keras_weights(theirs, ours)
    x = np.random.default_rng(0).normal(size=(2,) + SHAPE).astype("float32")
    out = infer(ours, x)
    assert out.shape == ((2, 2, 2, 2048) if pooling is None else (2, 2048))
    assert_parity(out, infer(theirs, x), what=f"resnet50_v2 pooling={pooling}")


def test_softmax_head_parity():
    theirs = _healed_reference("ResNet50V2", classes=10)
    ours = build_uninitialised(kerasnets.build_resnet50_v2, input_shape=SHAPE, classes=10)
    copy_keras_weights(theirs, ours)
    x = np.random.default_rng(0).normal(size=(2,) + SHAPE).astype("float32")
    probabilities = infer(ours, x)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)
    assert_parity(probabilities, infer(theirs, x), what="resnet50_v2 softmax")


def test_keras_layout_accepts_v2_and_refuses_v1_options():
    """keras.applications' Keras 2 files load into the v2 defaults; a v1-style build is loud."""
    layout = weights_io.get_layout("keras-applications")
    assert layout.option_differences(build_record(kerasnets.build_resnet50_v2(input_shape=SHAPE))) == []
    assert KERAS_APPLICATIONS_V2 == {k: v for k, v in build_record(
        kerasnets.build_resnet50_v2(input_shape=SHAPE)).options.items() if k in KERAS_APPLICATIONS_V2}
    slim = build_record(kerasnets.build_resnet50_v2(input_shape=SHAPE, **TF_SLIM))
    assert {key for key, _, _ in layout.option_differences(slim)} == {"bn_epsilon", "stem_pool"}


def test_stride_in_the_last_block():
    model = kerasnets.build_resnet50_v2(input_shape=SHAPE)
    assert model.get_layer("conv2_block3_2_conv").strides == (2, 2)
    assert model.get_layer("conv5_block3_2_conv").strides == (1, 1)
    assert model.get_layer("conv2_block3_0_pool").pool_size == (1, 1)
    assert model.get_layer("conv1_conv").use_bias and not model.get_layer("conv2_block1_1_conv").use_bias
    assert model.get_layer("post_bn").epsilon == pytest.approx(1.001e-5)


def test_tf_slim_stem_pool_is_tf_same():
    """At an even size TF 'SAME' pads after only; the pool reads v2's raw conv output, so never a zero."""
    model = kerasnets.build_resnet50_v2(include_top=False, input_shape=SHAPE, **TF_SLIM)
    stem = keras.Model(model.input, [model.get_layer("conv1_conv").output, model.get_layer("pool1_pool").output])
    x = np.random.default_rng(3).normal(size=(1,) + SHAPE).astype("float32")
    conv, pool = infer(stem, x)
    padded = np.pad(conv, ((0, 0), (0, 1), (0, 1), (0, 0)), constant_values=-np.inf)
    expected = np.stack([np.stack([padded[:, r:r + 3, c:c + 3].max(axis=(1, 2)) for c in range(0, 32, 2)], 1)
                         for r in range(0, 32, 2)], 1)
    np.testing.assert_array_equal(pool, expected)


def test_save_load_and_fit(tmp_path):
    model = kerasnets.build_resnet((1, 1, 1, 1), "preact_bottleneck", input_shape=(32, 32, 3), classes=3,
                                   stride_block="last")
    x = np.random.default_rng(0).normal(size=(2, 32, 32, 3)).astype("float32")
    check_save_load_and_fit(model, x, np.array([0, 2]), tmp_path)


@pytest.mark.parametrize("kwargs, message", [
    (dict(stride_block="middle"), "stride_block"),
    (dict(stem_pool="SAME"), "stem_pool"),
    (dict(include_top=False, features=True), "features"),
])
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        kerasnets.build_resnet50_v2(**kwargs)
