"""ResNet / ResNeXt / SE-ResNet: parameter counts, keras.applications parity, features, save/load, fit, errors."""

from __future__ import annotations

import keras
import numpy as np
import pytest

import kerasnets
from kerasnets.resnet import CADENE_SENET, KERAS_APPLICATIONS
from kerasnets.registry import build_for_shapes
from tests.conftest import check_save_load_and_fit, copy_keras_weights, randomize_bn_statistics
from tests.references import assert_parity, build_uninitialised, heal_keras, infer

# torchvision (resnet*, resnext*) and timm (se*) counts: trainable + BN affine.
REFERENCE_PARAMS = {
    "resnet18": 11_689_512,
    "resnet34": 21_797_672,
    "resnet50": 25_557_032,
    "resnet101": 44_549_160,
    "resnet152": 60_192_808,
    "resnext50_32x4d": 25_028_904,
    "resnext101_32x8d": 88_791_336,
    "se_resnet50": 28_088_024,  # timm seresnet50
    "se_resnext50_32x4d": 27_559_896,  # timm seresnext50_32x4d
}


@pytest.mark.parametrize("name", sorted(REFERENCE_PARAMS))
def test_parameter_count(name):
    model = build_for_shapes(name, input_shape=(32, 32, 3))
    assert kerasnets.parameter_count(model) == REFERENCE_PARAMS[name]


@pytest.mark.parametrize(
    "name, reference, via_file",
    [("resnet50", "ResNet50", True), ("resnet101", "ResNet101", False), ("resnet152", "ResNet152", False)],
)
def test_keras_applications_parity(name, reference, via_file, tmp_path):
    shape = (64, 64, 3)
    theirs = build_uninitialised(getattr(keras.applications, reference), weights=None, input_shape=shape,
                                 classifier_activation=None)
    x = np.random.default_rng(0).normal(size=(2,) + shape).astype("float32")
    heal_keras(theirs, np.random.default_rng(1).normal(size=(8,) + shape))
    ours = build_uninitialised(kerasnets.build, name, input_shape=shape, classifier_activation=None,
                               **KERAS_APPLICATIONS)  # their weights give every value
    assert kerasnets.parameter_count(ours, bn_moving_stats=True) == theirs.count_params()
    report = copy_keras_weights(theirs, ours, tmp_path if via_file else None)
    assert report.ok and not report.unexpected
    assert_parity(infer(ours, x), infer(theirs, x), what=name)


def test_stride_placement_changes_the_network():
    """v1 and v1.5 have the same weights but differ in output: the option is not a no-op."""
    shape = (32, 32, 3)
    v15 = kerasnets.build_resnet((1, 1, 1, 1), input_shape=shape, classes=4, classifier_activation=None)
    v1 = kerasnets.build_resnet((1, 1, 1, 1), input_shape=shape, classes=4, classifier_activation=None,
                                stride_placement="v1")
    v1.set_weights(v15.get_weights())
    assert v1.get_layer("conv3_block1_1_conv").strides == (2, 2)
    assert v15.get_layer("conv3_block1_2_conv").strides == (2, 2)
    x = np.random.default_rng(1).normal(size=(1,) + shape).astype("float32")
    assert np.abs(infer(v1, x) - infer(v15, x)).max() > 1e-3


def _torch_ceil_max_pool(x, k=3, s=2):
    """NHWC max-pool as torch's MaxPool2d(k, s, ceil_mode=True): windows clipped at the bottom/right edge."""
    def starts(n):
        out = -(-(n - k) // s) + 1
        return [i * s for i in range(out) if i * s < n]  # torch drops a window starting past the input
    rows, cols = starts(x.shape[1]), starts(x.shape[2])
    return np.stack([np.stack([x[:, r:r + k, c:c + k].max(axis=(1, 2)) for c in cols], 1) for r in rows], 1)


@pytest.mark.parametrize("size, pooled", [((64, 64), (16, 16)), ((66, 64), (16, 16)), ((62, 66), (15, 16))])
def test_stem_pool_ceil_is_torch_ceil_mode(size, pooled):
    """Even stem outputs (32) get an extra bottom/right window; odd ones (33) none: as torch's ceil_mode."""
    model = kerasnets.build_resnet((1, 1, 1, 1), include_top=False, input_shape=size + (3,), stem_pool="ceil")
    randomize_bn_statistics(model)
    taps = keras.Model(model.input, [model.get_layer("conv1_relu").output, model.get_layer("pool1_pool").output])
    x = np.random.default_rng(2).normal(size=(2,) + size + (3,)).astype("float32")
    stem, pool = infer(taps, x)
    assert pool.shape[1:3] == pooled
    np.testing.assert_array_equal(pool, _torch_ceil_max_pool(stem))
    padded = kerasnets.build_resnet((1, 1, 1, 1), include_top=False, input_shape=size + (3,))
    assert padded.get_layer("pool1_pool").output.shape[1:3] == tuple(-(-n // 4) for n in size)


@pytest.mark.parametrize("name, widths", [
    ("resnet18", (64, 64, 128, 256, 512)),
    ("resnet50", (64, 256, 512, 1024, 2048)),
])
def test_features_are_the_stage_outputs(name, widths):
    model = kerasnets.build(name, include_top=False, features=True, input_shape=(64, 64, 3))
    assert [tuple(t.shape[1:]) for t in model.outputs] == [
        (64 // s, 64 // s, w) for s, w in zip((2, 4, 8, 16, 32), widths)
    ]
    outputs = infer(model, np.zeros((1, 64, 64, 3), "float32"))
    assert isinstance(outputs, list) and len(outputs) == 5


SMALL_CONFIGS = {
    "se_resnext_tiny": lambda: kerasnets.build_resnet(
        (1, 1, 1, 1), "bottleneck", input_shape=(32, 32, 3), classes=3, groups=4, width_per_group=16, se_ratio=16,
    ),
    "resnet_basic_keras_style": lambda: kerasnets.build_resnet(
        (1, 1, 1, 1), "basic", input_shape=(32, 32, 3), classes=3, **KERAS_APPLICATIONS,
    ),
}


@pytest.mark.parametrize("config", sorted(SMALL_CONFIGS))
def test_save_load_and_fit(config, tmp_path):
    model = SMALL_CONFIGS[config]()
    x = np.random.default_rng(0).normal(size=(2, 32, 32, 3)).astype("float32")
    check_save_load_and_fit(model, x, np.array([0, 2]), tmp_path)


def test_resnet50_features_round_trip(tmp_path):
    model = kerasnets.build_resnet50(include_top=False, features=True, input_shape=(32, 32, 3))
    model.save(tmp_path / "features.keras")
    assert len(keras.models.load_model(tmp_path / "features.keras").outputs) == 5


@pytest.mark.parametrize("kwargs, message", [
    (dict(block="wide"), "block"),
    (dict(blocks=(3, 4, 6)), "blocks"),
    (dict(stride_placement="v2"), "stride_placement"),
    (dict(padding="reflect"), "padding"),
    (dict(stem_pool="same"), "stem_pool"),
    (dict(stem_pool="ceil", include_top=False, input_shape=(None, None, 3)), "fixed input_shape"),
    (dict(groups=0), "groups"),
    (dict(block="basic", groups=32), "basic block"),
    (dict(se_ratio=0), "se_ratio"),
    (dict(bn_epsilon=-1.0), "bn_epsilon"),
    (dict(conv_bias="yes"), "conv_bias"),
    (dict(features=True), "features"),
    (dict(include_top=False, pooling="avg", features=True), "features"),
    (dict(input_shape=(16, 16, 3)), "at least 32"),
    (dict(pooling="sum"), "pooling"),
])
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        kerasnets.build_resnet(**kwargs)


def test_se_variants_take_stem_pool():
    model = kerasnets.build_se_resnet50(input_shape=(64, 64, 3), **CADENE_SENET["se_resnet50"])
    assert model.get_layer("pool1_pad").padding == ((0, 1), (0, 1))
    assert model.get_layer("conv3_block1_1_conv").strides == (2, 2)
    with pytest.raises(ValueError, match="stem_pool"):
        kerasnets.build_se_resnext50_32x4d(stem_pool="floor")


def test_unknown_option_is_rejected():
    with pytest.raises(ValueError, match="Unknown option"):
        kerasnets.build_resnet50(stride="v1")
