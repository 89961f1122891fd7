"""VGG19 content loss: weights through weights_io, frozen, equal to keras.applications' VGG19 by hand."""

from __future__ import annotations

import keras
import numpy as np
import pytest

import weights_io
from tests.references import uniform_draws
from training.perceptual import PERCEPTUAL_PRESETS, VGGContentLoss, build_feature_extractor

VGG19_CONVS = [(b, c, w) for b, (n, w) in enumerate(zip((2, 2, 4, 4, 4), (64, 128, 256, 512, 512)), 1)
               for c in range(1, n + 1)]


@pytest.fixture(scope="module")
def vgg19_npy(tmp_path_factory):
    """Random He-scaled VGG19 conv weights in the tensorflow-vgg layout (name -> [W, b])."""
    rng = np.random.default_rng(0)
    weights, cin = {}, 3
    for b, c, w in VGG19_CONVS:
        weights[f"conv{b}_{c}"] = [uniform_draws(rng, (3, 3, cin, w), np.sqrt(2.0 / (9 * cin))),
                                   uniform_draws(rng, (w,), 0.05)]
        cin = w
    path = tmp_path_factory.mktemp("vgg") / "vgg19.npy"
    np.save(path, np.array(weights, dtype=object), allow_pickle=True)
    return path, weights


_REFERENCE = {}


def _reference_features(weights, images_255, layer, bgr_caffe):
    """keras.applications VGG19 with the same arrays set by hand; its own preprocess_input."""
    if layer not in _REFERENCE:
        ref = keras.applications.VGG19(weights=None, include_top=False, input_shape=(None, None, 3))
        for b, c, _ in VGG19_CONVS:
            ref.get_layer(f"block{b}_conv{c}").set_weights(weights[f"conv{b}_{c}"])
        _REFERENCE[layer] = keras.Model(ref.input, ref.get_layer(layer).output)
    if bgr_caffe:
        x = keras.applications.vgg19.preprocess_input(images_255.copy())
    else:
        x = images_255 - np.array([123.68, 116.779, 103.939], np.float32)
    return keras.ops.convert_to_numpy(_REFERENCE[layer](x))


def test_srgan_preset_equals_reference(vgg19_npy):
    path, weights = vgg19_npy
    rng = np.random.default_rng(1)
    hr = rng.uniform(-1, 1, (2, 32, 32, 3)).astype(np.float32)
    sr = np.clip(hr + rng.normal(0, 0.2, hr.shape), -1, 1).astype(np.float32)
    loss = VGGContentLoss(path, preset="srgan")
    got = float(loss(hr, sr))
    f_hr = _reference_features(weights, (hr + 1) * 127.5, "block5_conv4", True)
    f_sr = _reference_features(weights, (sr + 1) * 127.5, "block5_conv4", True)
    want = np.mean(((f_hr - f_sr) / 12.75) ** 2)
    print(f"SRGAN VGG54 content loss {got:.6g}, reference {want:.6g}")
    assert f_hr.min() >= 0 and (f_hr > 0).any()  # after block5_conv4's ReLU
    assert got == pytest.approx(want, rel=1e-4)
    assert got > 0


def test_ucolor_preset_and_other_layer(vgg19_npy):
    path, weights = vgg19_npy
    rng = np.random.default_rng(2)
    a = rng.uniform(0, 1, (1, 32, 32, 3)).astype(np.float32)
    b = rng.uniform(0, 1, (1, 32, 32, 3)).astype(np.float32)
    loss = VGGContentLoss(path, preset="ucolor")
    assert (loss.layer, loss.feature_scale, loss.preprocessing) == ("block5_conv4", 1.0, "matconvnet")
    want = np.mean((_reference_features(weights, a * 255, "block5_conv4", False)
                    - _reference_features(weights, b * 255, "block5_conv4", False)) ** 2)
    assert float(loss(a, b)) == pytest.approx(want, rel=1e-4)
    shallow = VGGContentLoss(path, preset=None, layer="block2_conv2", input_range=(0, 1), preprocessing="caffe")
    want = np.mean((_reference_features(weights, a * 255, "block2_conv2", True)
                    - _reference_features(weights, b * 255, "block2_conv2", True)) ** 2)
    assert float(shallow(a, b)) == pytest.approx(want, rel=1e-4)
    assert shallow.extractor.output.shape[1:] == (None, None, 128)


def test_frozen_inside_fit(vgg19_npy):
    """Training a model with the loss moves the model's weights, never VGG's."""
    path, _ = vgg19_npy
    loss = VGGContentLoss(path, preset="srgan")
    assert loss.extractor.trainable_weights == []
    vgg_before = [keras.ops.convert_to_numpy(w) for w in loss.extractor.weights]
    inputs = keras.Input((16, 16, 3))
    net = keras.Model(inputs, keras.layers.Conv2D(3, 3, padding="same", activation="tanh")(inputs))
    net_before = [keras.ops.convert_to_numpy(w) for w in net.weights]
    net.compile(keras.optimizers.Adam(1e-2), loss=loss)
    rng = np.random.default_rng(3)
    x = rng.uniform(-1, 1, (4, 16, 16, 3)).astype(np.float32)
    history = net.fit(x, x, epochs=6, batch_size=4, verbose=0).history["loss"]
    assert history[-1] < history[0]
    assert all(np.abs(keras.ops.convert_to_numpy(w) - b).max() > 0 for w, b in zip(net.weights, net_before))
    for w, b in zip(loss.extractor.weights, vgg_before):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(w), b)


def test_weights_must_cover_the_cut_network(vgg19_npy, tmp_path):
    _, weights = vgg19_npy
    partial = {k: v for k, v in weights.items() if k != "conv5_4"}
    path = tmp_path / "partial.npy"
    np.save(path, np.array(partial, dtype=object), allow_pickle=True)
    with pytest.raises(weights_io.WeightMismatchError, match="block5_conv4"):
        build_feature_extractor(path, "block5_conv4", source="tensorflow-vgg")
    # a cut before the missing layer needs none of it
    model = build_feature_extractor(path, "block4_conv4", source="tensorflow-vgg")
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(model.get_layer("block1_conv1").kernel),
                                  weights["conv1_1"][0])


def test_bad_arguments(vgg19_npy):
    path, _ = vgg19_npy
    with pytest.raises(ValueError, match="layer"):
        build_feature_extractor(None, "fc1")
    with pytest.raises(ValueError, match="preset"):
        VGGContentLoss(path, preset="esrgan")
    with pytest.raises(ValueError, match="mode"):
        VGGContentLoss(path, preprocessing="bgr")
    with pytest.raises(ValueError, match="input_range"):
        VGGContentLoss(path, input_range=(1, 0))
    assert set(PERCEPTUAL_PRESETS) == {"srgan", "ucolor"}


def test_config_round_trip(vgg19_npy):
    path, _ = vgg19_npy
    loss = VGGContentLoss(path, preset="srgan", feature_scale=0.5)
    again = VGGContentLoss.from_config(loss.get_config())
    x = np.random.default_rng(5).uniform(-1, 1, (1, 16, 16, 3)).astype(np.float32)
    assert float(again(x, -x)) == pytest.approx(float(loss(x, -x)), rel=1e-6)
    assert again.feature_scale == 0.5


def test_srgan_trainer_uses_the_content_loss(vgg19_npy):
    """SRGAN's generator loss = VGG54/12.75 content loss + 1e-3 adversarial, measured at the first step."""
    from training.adversarial import SRGANTrainer

    path, _ = vgg19_npy
    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.UpSampling2D(2)(inputs)
    generator = keras.Model(inputs, keras.layers.Conv2D(3, 3, padding="same", activation="tanh")(x))
    discriminator = keras.Sequential([keras.Input((16, 16, 3)), keras.layers.Flatten(), keras.layers.Dense(1)])
    rng = np.random.default_rng(6)
    hr = rng.uniform(-1, 1, (2, 16, 16, 3)).astype(np.float32)
    lr = hr.reshape(2, 8, 2, 8, 2, 3).mean(axis=(2, 4))
    content = VGGContentLoss(path, preset="srgan")
    want = float(content(hr, generator(lr)))
    trainer = SRGANTrainer(generator, discriminator, content_loss=content)
    trainer.compile(run_eagerly=True)
    logs = trainer.fit(lr, hr, batch_size=2, epochs=1, verbose=0).history
    assert logs["content_loss"][0] == pytest.approx(want, rel=1e-5)
    assert logs["g_loss"][0] == pytest.approx(want + 1e-3 * logs["adversarial_loss"][0], rel=1e-5)
