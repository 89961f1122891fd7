"""U-Net and SegNet: counts, shapes, encoders' names (weights load by name), unpooling indices, save/load, fit."""

from __future__ import annotations

import keras
import numpy as np
import pytest

import kerasnets
from kerasnets.registry import build_for_shapes
import weights_io
from tests.conftest import keras_weight_file
from tests.references import infer


def _c(cin, cout, k=3):
    return cin * cout * k * k + cout


def test_unet_paper_count_and_shape():
    model = build_for_shapes("unet")
    widths = [64, 128, 256, 512, 1024]
    enc = sum(_c(i, o) + _c(o, o) for i, o in zip([1] + widths[:-1], widths))
    dec = sum(_c(2 * o, o, 2) + _c(2 * o, o) + _c(o, o) for o in widths[:-1])  # 2x2 up-conv halves, then two convs
    assert kerasnets.parameter_count(model) == 31_030_658 == enc + dec + _c(64, 2, 1)
    assert model.output_shape == (None, 388, 388, 2)


def test_unet_same_padding_small():
    model = kerasnets.build_unet(padding="same", input_shape=(32, 32, 3), classes=4, filters=8)
    assert model.output_shape == (None, 32, 32, 4)
    assert kerasnets.parameter_count(model) == kerasnets.parameter_count(
        kerasnets.build_unet(padding="same", input_shape=(64, 64, 3), classes=4, filters=8))


def test_unet_batch_norm_drops_conv_bias_and_adds_bn():
    """milesial/Pytorch-UNet's DoubleConv: bias-free 3x3 convs, each followed by BN (gamma and beta counted)."""
    model = kerasnets.build_unet(padding="same", input_shape=(32, 32, 3), classes=2, filters=8, depth=3,
                                 batch_norm=True, bn_epsilon=1e-3)
    widths = [8, 16, 32]
    enc = sum(9 * i * o + 9 * o * o + 2 * 2 * o for i, o in zip([3] + widths[:-1], widths))
    dec = sum(_c(2 * o, o, 2) + 9 * 2 * o * o + 9 * o * o + 2 * 2 * o for o in widths[:-1])
    assert kerasnets.parameter_count(model) == enc + dec + _c(8, 2, 1)
    assert model.count_params() - kerasnets.parameter_count(model) == 2 * 2 * (sum(widths) + sum(widths[:-1]))
    assert model.get_layer("enc1_conv1").use_bias is False
    assert model.get_layer("dec1_conv2_bn").epsilon == 1e-3
    assert isinstance(model.get_layer("enc3_conv2_relu"), keras.layers.ReLU)
    plain = kerasnets.build_unet(padding="same", input_shape=(32, 32, 3), classes=2, filters=8, depth=3)
    assert kerasnets.parameter_count(plain) == sum(_c(i, o) + _c(o, o) for i, o in zip([3, 8, 16], widths)) + sum(
        _c(2 * o, o, 2) + _c(2 * o, o) + _c(o, o) for o in widths[:-1]) + _c(8, 2, 1)
    assert not any(layer.name.endswith(("_bn", "_relu")) for layer in plain.layers)


def test_unet_vgg16_encoder_loads_vgg16_weights_by_name():
    vgg = kerasnets.build_vgg16(include_top=False, input_shape=(32, 32, 3))
    unet = kerasnets.build_unet(encoder="vgg16", input_shape=(32, 32, 3))
    report = weights_io.assign_weights(unet, keras_weight_file(vgg), weights_io.get_layout("keras"), strict=False)
    assert not report.unexpected and len(report.loaded) == 26
    np.testing.assert_array_equal(unet.get_layer("block5_conv3").kernel.numpy(), vgg.get_layer("block5_conv3").kernel.numpy())
    assert unet.output_shape == (None, 32, 32, 2)


def test_unet_resnet50_encoder():
    model = kerasnets.build_unet(encoder="resnet50", input_shape=(32, 32, 3), classes=3)
    assert model.output_shape == (None, 32, 32, 3)
    assert model.get_layer("dec4_concat").input[0].shape[-1] == 1024  # C4 skip


def _numpy_unpool_reference(x, k=2):
    """torch MaxPool2d(return_indices) + MaxUnpool2d by loops."""
    n, h, w, c = x.shape
    out = np.zeros_like(x)
    for b in range(n):
        for ch in range(c):
            for i in range(0, h, k):
                for j in range(0, w, k):
                    win = x[b, i:i + k, j:j + k, ch]
                    r, s = np.unravel_index(np.argmax(win), win.shape)
                    out[b, i + r, j + s, ch] = win[r, s]
    return out


def test_segnet_shape_count_and_unpooling():
    model = kerasnets.build_segnet(input_shape=(32, 32, 3), classes=5)
    assert model.output_shape == (None, 32, 32, 5)
    vgg_bn_features = kerasnets.parameter_count(kerasnets.build_vgg16_bn(include_top=False, input_shape=(32, 32, 3)))
    decoder = (3 * (_c(512, 512) + 1024) + 2 * (_c(512, 512) + 1024) + _c(512, 256) + 512 + 2 * (_c(256, 256) + 512)
               + _c(256, 128) + 256 + _c(128, 128) + 256 + _c(128, 64) + 128 + _c(64, 64) + 128 + _c(64, 5))
    assert kerasnets.parameter_count(model) == vgg_bn_features + decoder
    x = np.random.default_rng(0).normal(size=(2, 32, 32, 3)).astype("float32")
    probe = keras.Model(model.input, [model.get_layer("block1_conv2_relu").output, model.get_layer("decoder1_unpool").input[0]])
    pre, _ = probe(x)
    pool = model.get_layer("block1_pool")
    values, indices = pool(pre)
    unpooled = kerasnets.layers.MaxUnpooling2D(2)([values, indices])
    np.testing.assert_array_equal(np.asarray(unpooled), _numpy_unpool_reference(np.asarray(pre)))


def test_segnet_takes_caffe_segnets_360x480():
    """CamVid's and SUN's 360x480: 45x60 pools to 23x30 and 12x15, and every unpooling restores its size."""
    model = kerasnets.build_segnet(input_shape=(360, 480, 3), classes=12)
    assert model.output_shape == (None, 360, 480, 12)
    assert model.get_layer("block5_pool").output[0].shape[1:3] == (12, 15)
    assert model.get_layer("decoder5_unpool").output.shape[1:3] == (23, 30)
    assert model.get_layer("decoder4_unpool").output.shape[1:3] == (45, 60)
    assert kerasnets.parameter_count(model) == kerasnets.parameter_count(
        kerasnets.build_segnet(input_shape=(224, 224, 3), classes=12))
    small = kerasnets.build_segnet(input_shape=(None, None, 3), classes=3)
    x = np.random.default_rng(1).uniform(0, 255, (1, 45, 60, 3)).astype("float32")
    assert infer(small, x).shape == (1, 45, 60, 3)


def test_segnet_vgg19_encoder_takes_torchvision_layout_names():
    model = kerasnets.build_segnet(encoder="vgg19_bn", input_shape=(32, 32, 3))
    mapping = weights_io.get_layout("torchvision-vgg").map_names([l.name for l in model.layers if l.weights])
    assert mapping["block5_conv4"] == "features.49" and mapping["block5_conv4_bn"] == "features.50"
    assert len(mapping) == 32


@pytest.mark.parametrize("builder, options", [
    ("unet", dict(padding="same", input_shape=(32, 32, 1), filters=4, depth=3)),
    ("unet", dict(input_shape=(44, 44, 1), filters=4, depth=2)),
    ("segnet", dict(input_shape=(32, 32, 3), classes=3)),
])
@pytest.mark.parametrize("suffix", [".keras", ".h5"])
def test_save_and_reload(tmp_path, builder, options, suffix):
    model = kerasnets.build(builder, **options)
    x = np.random.default_rng(1).uniform(0, 1, (2,) + model.input_shape[1:]).astype("float32")
    model.save(tmp_path / f"m{suffix}")
    loaded = keras.models.load_model(tmp_path / f"m{suffix}")
    np.testing.assert_array_equal(np.asarray(loaded(x)), np.asarray(model(x)))


@pytest.mark.parametrize("builder, options", [
    ("unet", dict(padding="same", input_shape=(32, 32, 1), filters=4, depth=3)),
    ("segnet", dict(input_shape=(32, 32, 3), classes=3)),
])
def test_one_training_step(builder, options):
    model = kerasnets.build(builder, **options)
    x = np.random.default_rng(2).uniform(0, 1, (2,) + model.input_shape[1:]).astype("float32")
    y = keras.utils.to_categorical(np.random.default_rng(3).integers(0, model.output_shape[-1], (2,) + model.output_shape[1:3]),
                                   model.output_shape[-1])
    model.compile(optimizer="adam", loss="categorical_crossentropy", run_eagerly=True)
    before = [w.copy() for w in model.get_weights()]
    model.fit(x, y, epochs=1, verbose=0)
    assert any(not np.array_equal(a, b) for a, b in zip(before, model.get_weights()))


@pytest.mark.parametrize("builder, kwargs, message", [
    ("unet", {"input_shape": (570, 570, 1)}, "even"),
    ("unet", {"padding": "reflect"}, "padding"),
    ("unet", {"encoder": "vgg19"}, "encoder"),
    ("unet", {"batch_norm": 1}, "batch_norm"),
    ("unet", {"bn_epsilon": 0}, "bn_epsilon"),
    ("unet", {"encoder": "vgg16", "input_shape": (48, 48, 3)}, "multiples of 32"),
    ("segnet", {"input_shape": (16, 48, 3)}, "at least 32"),
    ("segnet", {"encoder": "vgg16"}, "encoder"),
    ("segnet", {"classes": 0}, "classes"),
])
def test_bad_arguments(builder, kwargs, message):
    with pytest.raises(ValueError, match=message):
        kerasnets.build(builder, **kwargs)
