"""The issue-2 slice: a tensorflow-vgg .npy into build_vgg16, checked against a by-hand forward pass.

The reference forward pass below reads the dict directly and applies it with
keras.ops (conv, max-pool, matmul) in the file's own layout: it shares no
code with weights_io's name mapping or transforms.
"""

import pickle

import keras
import numpy as np
import pytest

import kerasnets
from tests.conftest import assert_close
from tests.references import assert_parity, build_uninitialised, uniform_draws
from weights_io import (
    UnsafePickleError,
    WeightFileError,
    WeightMismatchError,
    load_npy_weights,
    load_weights,
    read_weights,
)

VGG16_CONVS = [(1, 2), (2, 2), (3, 3), (4, 3), (5, 3)]
WIDTHS = [64, 128, 256, 512, 512]


def tensorflow_vgg16_dict(rng, include_fc=True, classes=1000):
    """Random weights in tensorflow-vgg's layout: name -> [W (HWIO), b]; fc6 (25088, 4096)."""
    params, cin = {}, 3
    for (block, convs), width in zip(VGG16_CONVS, WIDTHS):
        for c in range(1, convs + 1):
            std = np.sqrt(2.0 / (9 * cin))
            params[f"conv{block}_{c}"] = [uniform_draws(rng, (3, 3, cin, width), std),
                                          uniform_draws(rng, (width,), 0.01)]
            cin = width
    if include_fc:
        for name, (i, o) in {"fc6": (25088, 4096), "fc7": (4096, 4096), "fc8": (4096, classes)}.items():
            params[name] = [uniform_draws(rng, (i, o), np.sqrt(2.0 / i)), uniform_draws(rng, (o,), 0.01)]
    return params


def reference_vgg16(params, x):
    """VGG16 straight from a tensorflow-vgg dict, in NHWC with keras.ops."""
    ops = keras.ops
    for block, convs in VGG16_CONVS:
        for c in range(1, convs + 1):
            w, b = params[f"conv{block}_{c}"]
            x = ops.relu(ops.conv(x, w, padding="same") + b)
        x = ops.max_pool(x, 2, 2)
    if "fc6" not in params:
        return x
    x = ops.reshape(x, (x.shape[0], -1))  # NHWC flatten: tensorflow-vgg's fc6 order
    for name in ("fc6", "fc7"):
        w, b = params[name]
        x = ops.relu(ops.matmul(x, w) + b)
    w, b = params["fc8"]
    return ops.matmul(x, w) + b


def save_npy_dict(path, obj, protocol=None):
    """np.save of a dict (an object array pickle), optionally with a chosen pickle protocol."""
    array = np.empty((), dtype=object)
    array[()] = obj
    if protocol is None:
        np.save(path, array, allow_pickle=True)
        return
    with open(path, "wb") as f:
        np.lib.format.write_array_header_1_0(f, np.lib.format.header_data_from_array_1_0(array))
        pickle.dump(array, f, protocol=protocol)


@pytest.fixture(scope="module")
def vgg16_npy(tmp_path_factory):
    params = tensorflow_vgg16_dict(np.random.default_rng(0))
    path = tmp_path_factory.mktemp("npy") / "vgg16.npy"
    save_npy_dict(path, params)
    return path, params


def test_full_size_vgg16_matches_reference_forward(vgg16_npy):
    path, params = vgg16_npy
    model = build_uninitialised(kerasnets.build_vgg16, classifier_activation=None)  # the file gives every value
    report = load_npy_weights(model, path)
    assert report.ok and report.layout == "tensorflow-vgg"
    assert len(report.loaded) == 32 and not report.unexpected
    x = np.random.default_rng(1).uniform(-120, 130, (2, 224, 224, 3)).astype("float32")
    assert_parity(model(x), reference_vgg16(params, x), what="vgg16 logits")
    text = str(report)
    assert "block1_conv1/kernel" in text and "conv1_1.weights" in text


def test_new_head_with_strict_false(vgg16_npy):
    path, params = vgg16_npy
    model = kerasnets.build_vgg16(classes=5)
    head_before = model.get_layer("predictions").get_weights()
    with pytest.raises(WeightMismatchError, match="predictions/kernel"):
        load_npy_weights(model, path)
    report = load_npy_weights(model, path, strict=False)
    assert not report.ok and report.applied
    assert [m[0] for m in report.mismatched] == ["predictions/kernel", "predictions/bias"]
    np.testing.assert_array_equal(model.get_layer("fc2").kernel.numpy(), params["fc7"][0])
    for got, before in zip(model.get_layer("predictions").get_weights(), head_before):
        np.testing.assert_array_equal(got, before)


@pytest.mark.parametrize("variant", ["positional_dict", "caffe_tensorflow", "protocol2", "npz"])
def test_layout_variants_load_the_same_weights(tmp_path, variant):
    params = tensorflow_vgg16_dict(np.random.default_rng(2), include_fc=False)
    if variant == "positional_dict":  # tensorflow-vgg "saved" variant: {0: W, 1: b}
        save_npy_dict(tmp_path / "w.npy", {k: {0: w, 1: b} for k, (w, b) in params.items()})
        path = tmp_path / "w.npy"
    elif variant == "caffe_tensorflow":
        save_npy_dict(tmp_path / "w.npy", {k: {"weights": w, "biases": b} for k, (w, b) in params.items()})
        path = tmp_path / "w.npy"
    elif variant == "protocol2":
        save_npy_dict(tmp_path / "w.npy", params, protocol=2)
        path = tmp_path / "w.npy"
    else:  # Frossard's vgg16_weights.npz: conv1_1_W, conv1_1_b, ...
        arrays = {f"{k}_{s}": a for k, (w, b) in params.items() for s, a in (("W", w), ("b", b))}
        np.savez(tmp_path / "w.npz", **arrays)
        path = tmp_path / "w.npz"
    model = kerasnets.build_vgg16(include_top=False, input_shape=(32, 32, 3))
    report = load_npy_weights(model, path)
    assert report.ok and len(report.loaded) == 26
    x = np.random.default_rng(3).uniform(-100, 100, (2, 32, 32, 3)).astype("float32")
    assert_parity(model(x), reference_vgg16(params, x))


def test_bgr_flip(tmp_path):
    params = tensorflow_vgg16_dict(np.random.default_rng(4), include_fc=False)
    save_npy_dict(tmp_path / "w.npy", params)
    bgr = kerasnets.build_vgg16(include_top=False, input_shape=(32, 32, 3))
    rgb = kerasnets.build_vgg16(include_top=False, input_shape=(32, 32, 3))
    load_npy_weights(bgr, tmp_path / "w.npy")
    report = load_npy_weights(rgb, tmp_path / "w.npy", flip_bgr_to_rgb=True)
    assert any("BGR" in note for _, _, note in report.loaded)
    x_rgb = np.random.default_rng(5).uniform(-100, 100, (2, 32, 32, 3)).astype("float32")
    assert_close(rgb(x_rgb), bgr(x_rgb[..., ::-1]))


def test_mismatches_are_all_named_and_leave_the_model_untouched(tmp_path):
    params = tensorflow_vgg16_dict(np.random.default_rng(6), include_fc=False)
    params["conv3_2"][0] = params["conv3_2"][0][:, :, :, :128]  # mis-shaped
    del params["conv5_3"]  # missing
    params["conv9_9"] = [np.zeros((3, 3, 3, 3), "float32")]  # unexpected
    save_npy_dict(tmp_path / "w.npy", params)
    model = kerasnets.build_vgg16(include_top=False, input_shape=(32, 32, 3))
    before = [w.copy() for w in model.get_weights()]
    with pytest.raises(WeightMismatchError) as info:
        load_npy_weights(model, tmp_path / "w.npy")
    message = str(info.value)
    for needle in ("block3_conv2/kernel", "block5_conv3/kernel", "block5_conv3/bias", "conv9_9.weights",
                   "unchanged"):
        assert needle in message
    for got, old in zip(model.get_weights(), before):
        np.testing.assert_array_equal(got, old)


def test_weights_argument_of_builder(tmp_path):
    params = tensorflow_vgg16_dict(np.random.default_rng(7), include_fc=False)
    save_npy_dict(tmp_path / "w.npy", params)
    model = kerasnets.build_vgg16(include_top=False, input_shape=(32, 32, 3), weights=str(tmp_path / "w.npy"))
    np.testing.assert_array_equal(model.get_layer("block4_conv2").bias.numpy(), params["conv4_2"][1])


def test_real_caffe_tensorflow_files(fixtures_dir):
    """MTCNN P-Net/R-Net from facenet: Python-2 pickles, PReLU alphas, a 2-D fc."""
    det1 = read_weights(fixtures_dir / "npy" / "det1.npy")
    assert det1.convention == "tf" and det1.tensors["conv1"]["weights"].shape == (3, 3, 3, 10)
    inputs = keras.Input((12, 12, 3))
    x = inputs
    for i, width in enumerate((10, 16, 32), start=1):
        x = keras.layers.Conv2D(width, 3, name=f"conv{i}")(x)
        x = keras.layers.PReLU(shared_axes=[1, 2], name=f"PReLU{i}")(x)
        if i == 1:
            x = keras.layers.MaxPooling2D(2, name="pool1")(x)
    probs = keras.layers.Conv2D(2, 1, name="conv4-1")(x)
    boxes = keras.layers.Conv2D(4, 1, name="conv4-2")(x)
    pnet = keras.Model(inputs, [probs, boxes])
    report = load_weights(pnet, fixtures_dir / "npy" / "det1.npy")
    assert report.ok and len(report.loaded) == 13
    params = det1.tensors
    img = np.random.default_rng(8).uniform(-1, 1, (1, 12, 12, 3)).astype("float32")
    ops, y = keras.ops, img
    for i in (1, 2, 3):
        y = ops.conv(y, params[f"conv{i}"]["weights"]) + params[f"conv{i}"]["biases"]
        alpha = params[f"PReLU{i}"]["alpha"]
        y = ops.where(y > 0, y, y * alpha)
        if i == 1:
            y = ops.max_pool(y, 2, 2)
    ref_boxes = ops.conv(y, params["conv4-2"]["weights"]) + params["conv4-2"]["biases"]
    assert_close(pnet(img)[1], ref_boxes)
    det2 = read_weights(fixtures_dir / "npy" / "det2.npy")
    assert det2.tensors["conv4"]["weights"].shape == (576, 128)


def test_refuses_code_in_pickles(tmp_path):
    import os

    canary = tmp_path / "canary"

    class Exploit:
        def __reduce__(self):
            return (os.system, (f"touch {canary}",))

    save_npy_dict(tmp_path / "evil.npy", {"conv1_1": [Exploit()]})
    with pytest.raises(UnsafePickleError, match="system"):
        read_weights(tmp_path / "evil.npy")
    assert not canary.exists()


@pytest.mark.parametrize("blob", [b"", b"\x93NUMPY\x01\x00", b"garbage!" * 10])
def test_malformed_files_raise_weight_file_error(tmp_path, blob):
    path = tmp_path / "bad.npy"
    path.write_bytes(blob)
    with pytest.raises(WeightFileError):
        read_weights(path)


def test_nan_and_inf_weights_load_with_a_warning(tmp_path):
    params = tensorflow_vgg16_dict(np.random.default_rng(9), include_fc=False)
    params["conv2_1"][0][0, 0, 0, 0] = np.nan
    params["conv4_3"][1][3] = np.inf
    save_npy_dict(tmp_path / "w.npy", params)
    model = kerasnets.build_vgg16(include_top=False, input_shape=(32, 32, 3))
    with pytest.warns(RuntimeWarning, match=r"2 source array\(s\) hold NaN or Inf.*conv2_1\.weights.*conv4_3\.biases"):
        report = load_npy_weights(model, tmp_path / "w.npy")
    assert report.applied and np.isnan(model.get_layer("block2_conv1").kernel.numpy()[0, 0, 0, 0])
