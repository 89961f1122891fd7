"""Inception v2/v3/v4 and Inception-ResNet v1/v2: counts, keras.applications parity, save/load, fit, errors.

keras.applications names the conv units of InceptionV3 and InceptionResNetV2
by a session-global counter (`conv2d_17`), so their weights are paired with
ours by build order: both graphs create the same layers in the same order,
which the test checks (layer type and every weight shape) before copying
through `weights_io.assign_weights(strict=True)`.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest

import kerasnets
from kerasnets.registry import build_for_shapes
import weights_io
from weights_io.assign import weighted_layers
from tests.conftest import randomize_bn_statistics
from tests.references import assert_parity, build_uninitialised, heal_keras

SMALL = (75, 75, 3)  # the smallest input keras.applications accepts for both


def _np(out):
    return keras.ops.convert_to_numpy(out)


def _conv(cin, cout, kh, kw=None):
    """Bias-free conv + BN (gamma, beta): how torchvision and timm count a unit."""
    return cin * cout * kh * (kh if kw is None else kw) + 2 * cout


def _bn_inception_count(classes=1000, conv_bias=False):
    """From the BN-Inception paper's Fig. 5 (1x1, 3x3red, 3x3, d3x3red, d3x3, proj; 0 = absent/pass-through).

    `conv_bias`: Cadene's Caffe port keeps a bias in every conv before its BN.
    """
    def unit(cin, cout, k):
        return _conv(cin, cout, k) + (cout if conv_bias else 0)

    rows = [(64, 64, 64, 64, 96, 32), (64, 64, 96, 64, 96, 64), (0, 128, 160, 64, 96, 0),
            (224, 64, 96, 96, 128, 128), (192, 96, 128, 96, 128, 128), (160, 128, 160, 128, 160, 128),
            (96, 128, 192, 160, 192, 128), (0, 128, 192, 192, 256, 0), (352, 192, 320, 160, 224, 128),
            (352, 192, 320, 192, 224, 128)]
    total, cin = unit(3, 64, 7) + unit(64, 64, 1) + unit(64, 192, 3), 192
    for c1, c3r, c3, d3r, d3, proj in rows:
        total += (unit(cin, c1, 1) if c1 else 0) + unit(cin, c3r, 1) + unit(c3r, c3, 3)
        total += unit(cin, d3r, 1) + unit(d3r, d3, 3) + unit(d3, d3, 3) + (unit(cin, proj, 1) if proj else 0)
        cin = c1 + c3 + d3 + (proj or cin)
    return total + cin * classes + classes


def _inception_v4_count(classes=1000):
    """From the paper's Figs. 3-8 (timm's inception_v4 model card: 42.68M)."""
    c = _conv
    stem = c(3, 32, 3) + c(32, 32, 3) + c(32, 64, 3) + c(64, 96, 3)
    stem += c(160, 64, 1) + c(64, 96, 3) + c(160, 64, 1) + c(64, 64, 1, 7) + c(64, 64, 7, 1) + c(64, 96, 3)
    stem += c(192, 192, 3)
    block_a = c(384, 96, 1) + c(384, 64, 1) + c(64, 96, 3) + c(384, 64, 1) + c(64, 96, 3) + c(96, 96, 3) + c(384, 96, 1)
    red_a = c(384, 384, 3) + c(384, 192, 1) + c(192, 224, 3) + c(224, 256, 3)
    block_b = (c(1024, 384, 1) + c(1024, 192, 1) + c(192, 224, 1, 7) + c(224, 256, 7, 1) + c(1024, 192, 1)
               + c(192, 192, 7, 1) + c(192, 224, 1, 7) + c(224, 224, 7, 1) + c(224, 256, 1, 7) + c(1024, 128, 1))
    red_b = c(1024, 192, 1) + c(192, 192, 3) + c(1024, 256, 1) + c(256, 256, 1, 7) + c(256, 320, 7, 1) + c(320, 320, 3)
    block_c = (c(1536, 256, 1) + c(1536, 384, 1) + 2 * c(384, 256, 1, 3) + c(1536, 384, 1) + c(384, 448, 3, 1)
               + c(448, 512, 1, 3) + 2 * c(512, 256, 1, 3) + c(1536, 256, 1))
    return stem + 4 * block_a + red_a + 7 * block_b + red_b + 3 * block_c + 1536 * classes + classes


def _inception_resnet_v1_count(classes=1000):
    """Paper Figs. 14-20 widths, 5/10/5(+1 linear) blocks, 1x1 projections with bias."""
    c = _conv
    stem = c(3, 32, 3) + c(32, 32, 3) + c(32, 64, 3) + c(64, 80, 1) + c(80, 192, 3) + c(192, 256, 3)
    block35 = c(256, 32, 1) + c(256, 32, 1) + c(32, 32, 3) + c(256, 32, 1) + 2 * c(32, 32, 3) + 96 * 256 + 256
    red_a = c(256, 384, 3) + c(256, 192, 1) + c(192, 192, 3) + c(192, 256, 3)
    block17 = c(896, 128, 1) + c(896, 128, 1) + c(128, 128, 1, 7) + c(128, 128, 7, 1) + 256 * 896 + 896
    red_b = c(896, 256, 1) * 3 + c(256, 384, 3) + c(256, 256, 3) + c(256, 256, 3) + c(256, 256, 3)
    block8 = c(1792, 192, 1) * 2 + c(192, 192, 1, 3) + c(192, 192, 3, 1) + 384 * 1792 + 1792
    return stem + 5 * block35 + red_a + 10 * block17 + red_b + 6 * block8 + 1792 * classes + classes


# torchvision inception_v3 aux head: conv0 768->128, conv1 128->768 5x5 (BN affine), fc 768->classes.
V3_TORCHVISION_AUX = _conv(768, 128, 1) + _conv(128, 768, 5) + 768 * 1000 + 1000


@pytest.mark.parametrize("name, options, shape, expected", [
    ("inception_v3", dict(variant="torchvision", aux_logits=True), (299, 299, 3), 23_834_568 + V3_TORCHVISION_AUX),
    ("inception_v4", dict(), SMALL, _inception_v4_count()),
    ("inception_v2", dict(), (224, 224, 3), _bn_inception_count()),
    ("inception_v2", dict(variant="cadene"), (224, 224, 3), _bn_inception_count(conv_bias=True)),
])
def test_parameter_count(name, options, shape, expected):
    model = build_for_shapes(name, input_shape=shape, **options)
    assert kerasnets.parameter_count(model) == expected


def test_inception_v4_count_is_timms():
    assert _inception_v4_count() == 42_679_816  # rounds to timm's 42.68M


def test_bn_inception_counts():
    assert _bn_inception_count() == 11_285_224  # the registry's (README) count
    # pretrainedmodels' BNInception: sum(p.numel() for p in bninception(pretrained=None).parameters())
    assert _bn_inception_count(conv_bias=True) == 11_295_240


@pytest.mark.parametrize("size, pool1", [(224, 56), (226, 56)])
def test_bn_inception_cadene_padding(size, pool1):
    """Torch's conv1 (pad 3 on every side) and Caffe's ceil-mode pool1 (pad 0), computed from their formulas."""
    model = kerasnets.build_inception_v2(input_shape=(size, size, 3), variant="cadene")
    conv1 = (size + 2 * 3 - 7) // 2 + 1
    assert model.get_layer("conv1_7x7_s2_pad").padding == ((3, 3), (3, 3))
    assert model.get_layer("conv1_7x7_s2_conv").output.shape[1] == conv1
    assert model.get_layer("pool1_3x3_s2").output.shape[1] == -(-(conv1 - 3) // 2) + 1 == pool1
    assert model.get_layer("inception3a_pool_pad").padding == ((1, 1), (1, 1))  # count_include_pad
    assert model.get_layer("inception3c_3x3_pad").padding == ((1, 1), (1, 1))
    assert model.get_layer("conv1_7x7_s2_bn").epsilon == 1e-5
    assert model.get_layer("conv1_7x7_s2_conv").use_bias
    paper = kerasnets.build_inception_v2(input_shape=(size, size, 3))
    assert not [layer.name for layer in paper.layers if layer.name.endswith("_pad")]
    assert paper.get_layer("pool1_3x3_s2").output.shape[1] == -(-conv1 // 2)  # keras 'same': 57 at 226


def copy_by_build_order(source, target):
    """keras.applications -> ours, pairing weighted layers in order; checks the pairing first."""
    theirs, ours = weighted_layers(source), weighted_layers(target)
    assert len(theirs) == len(ours)
    for a, b in zip(theirs, ours):
        # ours may be a subclass (the fused BatchNormalization); the pairing is by class and shapes
        assert isinstance(b, type(a)) and [v.shape for v in a.weights] == [v.shape for v in b.weights], (a.name, b.name)
    tensors = {b.name: {v.name: _np(v) for v in a.weights} for a, b in zip(theirs, ours)}
    wf = weights_io.WeightFile(tensors=tensors, convention="keras", format="keras-model")
    return weights_io.assign_weights(target, wf, weights_io.get_layout("keras"), strict=True)


@pytest.fixture(scope="module")
def inception_resnet_v2():
    return kerasnets.build_inception_resnet_v2(input_shape=SMALL, classifier_activation=None)


@pytest.mark.parametrize("name, reference", [("inception_v3", "InceptionV3"),
                                             ("inception_resnet_v2", "InceptionResNetV2")])
def test_keras_applications_parity(name, reference, request):
    theirs = build_uninitialised(getattr(keras.applications, reference), weights=None, input_shape=SMALL,
                                 classifier_activation=None)
    heal_keras(theirs, np.random.default_rng(1).normal(size=(8,) + SMALL))
    if name == "inception_resnet_v2":
        ours = request.getfixturevalue("inception_resnet_v2")
    else:
        ours = kerasnets.build(name, input_shape=SMALL, classifier_activation=None)
    assert kerasnets.parameter_count(ours, bn_moving_stats=True) == theirs.count_params()
    assert not [layer.name for layer in ours.layers if layer.name.endswith("_pool_pad")]  # keras 'same' pools
    report = copy_by_build_order(theirs, ours)
    assert report.ok and not report.unexpected
    x = np.random.default_rng(0).normal(size=(2,) + SMALL).astype("float32")
    assert_parity(_np(ours(x, training=False)), _np(theirs(x, training=False)), what=name)


def test_inception_resnet_v2_structure(inception_resnet_v2):
    model = inception_resnet_v2
    assert kerasnets.parameter_count(model, bn_moving_stats=True) == 55_873_736  # REFERENCE.md
    scales = [model.get_layer(f"{b}_{i}_scale").scale for b, n in (("block35", 10), ("block17", 20), ("block8", 10))
              for i in range(1, n + 1)]
    assert scales == [0.17] * 10 + [0.1] * 20 + [0.2] * 9 + [1.0]
    names = {layer.name for layer in model.layers}
    assert "block8_9_ac" in names and "block8_10_ac" not in names  # the last block8 is linear


# Small inputs; each model's count is checked (3 classes), then it is saved as .keras and .h5,
# reloaded, and trained one step. v4 and IRv2 are the heaviest to rebuild: slow.
SAVE_CASES = [
    ("inception_v2", dict(), (32, 32, 3), _bn_inception_count(3)),
    # 23,834,568 with 1000 classes (REFERENCE.md); torch's count_include_pad pools and transform_input.
    ("inception_v3", dict(variant="torchvision", transform_input=True), SMALL, 23_834_568 - 997 * 2049),
    pytest.param("inception_v4", dict(), SMALL, _inception_v4_count(3), marks=pytest.mark.slow),
    ("inception_resnet_v1", dict(), SMALL, _inception_resnet_v1_count(3)),
]


def _save_load_fit(model, shape, tmp_path):
    randomize_bn_statistics(model)
    x = np.random.default_rng(0).normal(size=(2,) + shape).astype("float32")
    before = _np(model(x, training=False))
    for fmt in ("keras", "h5"):
        model.save(tmp_path / f"model.{fmt}")
        restored = keras.models.load_model(tmp_path / f"model.{fmt}")
        # the file holds keras' own BatchNormalization (what the fused layer saves as): equal to float
        # rounding over ~200 normalisations, within 1e-5 of the output's scale
        np.testing.assert_allclose(_np(restored(x, training=False)), before, rtol=0,
                                   atol=1e-5 * np.abs(before).max(), err_msg=fmt)
    restored.compile(optimizer="sgd", loss="sparse_categorical_crossentropy", run_eagerly=True)
    history = restored.fit(x, np.array([0, 2]), batch_size=2, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])


@pytest.mark.parametrize("name, options, shape, expected", SAVE_CASES)
def test_count_save_load_and_fit(name, options, shape, expected, tmp_path):
    model = kerasnets.build(name, input_shape=shape, classes=3, **options)
    assert kerasnets.parameter_count(model) == expected
    if options.get("variant") == "torchvision":
        # count_include_pad average pools: explicit zero padding, absent from the keras variant.
        assert isinstance(model.get_layer("mixed0_pool_pad"), keras.layers.ZeroPadding2D)
    _save_load_fit(model, shape, tmp_path)


@pytest.mark.slow
def test_inception_resnet_v2_save_load_and_fit(inception_resnet_v2, tmp_path):
    _save_load_fit(inception_resnet_v2, SMALL, tmp_path)


def test_inception_v3_aux_head_outputs():
    model = kerasnets.build_inception_v3(classes=7, aux_logits=True)
    assert [tuple(o.shape) for o in model.outputs] == [(None, 7), (None, 7)]
    assert model.get_layer("aux_pool").input.shape[1:] == (17, 17, 768)


@pytest.mark.parametrize("builder, kwargs, message", [
    (kerasnets.build_inception_v3, dict(variant="slim"), "variant"),
    (kerasnets.build_inception_v3, dict(aux_logits=True, input_shape=SMALL), "299x299"),
    (kerasnets.build_inception_v3, dict(aux_logits=True, include_top=False), "include_top"),
    (kerasnets.build_inception_v3, dict(transform_input=1), "transform_input"),
    (kerasnets.build_inception_v3, dict(bn_epsilon=0), "bn_epsilon"),
    (kerasnets.build_inception_v3, dict(input_shape=(64, 64, 3)), "at least 75"),
    (kerasnets.build_inception_v2, dict(bn_scale="no"), "bn_scale"),
    (kerasnets.build_inception_v2, dict(dropout=-0.1), "dropout"),
    (kerasnets.build_inception_v2, dict(variant="caffe"), r"variant.*\('paper', 'cadene'\)"),
    (kerasnets.build_inception_v2, dict(variant="cadene", input_shape=(None, None, 3)), "fixed input size"),
    (kerasnets.build_inception_v4, dict(input_shape=(299, 299)), "input_shape"),
    (kerasnets.build_inception_v4, dict(aux_logits=True), "Unknown option"),
    (kerasnets.build_inception_resnet_v1, dict(classes=-1), "classes"),
    (kerasnets.build_inception_resnet_v2, dict(pooling="median", include_top=False), "pooling"),
    (kerasnets.build_inception_resnet_v2, dict(weights="imagenet"), "preset"),
])
def test_bad_arguments(builder, kwargs, message):
    with pytest.raises(ValueError, match=message):
        builder(**kwargs)
