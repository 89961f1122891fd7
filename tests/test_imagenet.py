"""preprocess_input per mode/preset against hand-written formulas; decode_predictions; the shipped class list."""

import numpy as np
import pytest

from kerasnets import presets
from kerasnets.imagenet import class_names, decode_predictions, preprocess_input


@pytest.fixture
def images():
    return np.random.default_rng(0).uniform(0, 255, (2, 4, 5, 3)).astype("float32")


def test_modes_match_their_published_formulas(images):
    r, g, b = images[..., 0], images[..., 1], images[..., 2]
    caffe = np.stack([b - 103.939, g - 116.779, r - 123.68], -1)
    np.testing.assert_allclose(preprocess_input(images, mode="caffe"), caffe, rtol=1e-6, atol=1e-4)
    bninception = np.stack([b - 104, g - 117, r - 128], -1)  # Cadene's bninception settings
    np.testing.assert_allclose(preprocess_input(images, mode="bninception"), bninception, rtol=1e-6, atol=1e-4)
    torch = (images / 255.0 - np.array([0.485, 0.456, 0.406])) / np.array([0.229, 0.224, 0.225])
    np.testing.assert_allclose(preprocess_input(images, mode="torch"), torch, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(preprocess_input(images, mode="tf"), images / 127.5 - 1, atol=1e-6)
    matconvnet = images - np.array([123.68, 116.779, 103.939])
    np.testing.assert_allclose(preprocess_input(images, mode="matconvnet"), matconvnet, atol=1e-4)
    np.testing.assert_array_equal(preprocess_input(images, mode="raw"), images)
    y = (16 + (64.738 * r + 129.057 * g + 25.064 * b) / 256) / 255  # FSRCNN-pytorch convert_rgb_to_y
    np.testing.assert_allclose(preprocess_input(images, mode="y")[..., 0], y, rtol=1e-6)


def test_preset_picks_its_mode_and_tensors_match_numpy(images):
    import keras

    np.testing.assert_array_equal(preprocess_input(images, preset="resnet50.keras"),
                                  preprocess_input(images, mode="caffe"))
    np.testing.assert_array_equal(preprocess_input(images, preset="vgg16.matconvnet"),
                                  preprocess_input(images, mode="matconvnet"))
    tensor = preprocess_input(keras.ops.convert_to_tensor(images), preset="resnet50.torchvision_v2")
    np.testing.assert_allclose(keras.ops.convert_to_numpy(tensor), preprocess_input(images, mode="torch"), atol=1e-6)
    f = presets.preset_preprocessing("densenet121.keras")
    np.testing.assert_array_equal(f(images), preprocess_input(images, mode="torch"))


def test_bad_arguments():
    with pytest.raises(ValueError, match="exactly one"):
        preprocess_input(np.zeros((1, 2, 2, 3)))
    with pytest.raises(ValueError, match="Received: mode='bgr'"):
        preprocess_input(np.zeros((1, 2, 2, 3)), mode="bgr")
    with pytest.raises(ValueError, match="Unknown weights preset"):
        preprocess_input(np.zeros((1, 2, 2, 3)), preset="nope")
    with pytest.raises(ValueError, match=r"\(samples, 1000\)"):
        decode_predictions(np.zeros((1, 10)))


def test_class_list_and_decode():
    names = class_names()
    assert len(names) == 1000  # 998 distinct: "crane" and "maillot" appear twice, as in torchvision
    assert names[0] == "tench" and names[207] == "golden retriever" and names[999] == "toilet tissue"
    preds = np.full((2, 1000), 1e-4, "float32")
    preds[0, 207], preds[0, 1], preds[1, 999] = 0.9, 0.05, 0.7
    top = decode_predictions(preds, top=2)
    assert [(i, n) for i, n, _ in top[0]] == [(207, "golden retriever"), (1, "goldfish")]
    assert top[1][0][:2] == (999, "toilet tissue") and len(top[1]) == 2
    assert decode_predictions(preds[:, :3], classes=["a", "b", "c"], top=1)[0][0][1] == "b"
