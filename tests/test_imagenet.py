"""preprocess_input per mode/preset against hand-written formulas; decode_predictions; the shipped class list."""

import numpy as np
import pytest

from kerasnets.imagenet import class_names, decode_predictions, imagenet_synsets, preprocess_input, preset_preprocessing


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
    np.testing.assert_array_equal(preprocess_input(images, mode="segnet"), np.stack([b, g, r], -1))
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
    f = preset_preprocessing("densenet121.keras")
    np.testing.assert_array_equal(f(images), preprocess_input(images, mode="torch"))


def test_bad_arguments():
    with pytest.raises(ValueError, match="exactly one"):
        preprocess_input(np.zeros((1, 2, 2, 3)))
    with pytest.raises(ValueError, match="Received: mode='bgr'"):
        preprocess_input(np.zeros((1, 2, 2, 3)), mode="bgr")
    with pytest.raises(ValueError, match="Unknown weights preset"):
        preprocess_input(np.zeros((1, 2, 2, 3)), preset="nope")
    with pytest.raises(ValueError, match=r"\(samples, 1000 or 1001\)"):
        decode_predictions(np.zeros((1, 10)))


def test_class_list_and_decode():
    names = class_names()
    assert len(names) == len(set(names)) == 1000
    assert names[0] == "tench" and names[207] == "golden retriever" and names[999] == "toilet tissue"
    preds = np.full((2, 1000), 1e-4, "float32")
    preds[0, 207], preds[0, 1], preds[1, 999] = 0.9, 0.05, 0.7
    top = decode_predictions(preds, top=2)
    # keras.applications' tuples: WordNet id, keras' name, score.
    assert top[0] == [("n02099601", "golden_retriever", pytest.approx(0.9)), ("n01443537", "goldfish", pytest.approx(0.05))]
    assert top[1][0][:2] == ("n15075141", "toilet_tissue") and len(top[1]) == 2
    assert decode_predictions(preds[:, :3], classes=["a", "b", "c"], top=1)[0][0][:2] == (1, "b")


def test_synset_table():
    """ILSVRC-2012 numbers its classes in WordNet-id order; keras' names are torchvision's with underscores,
    except the two it leaves ambiguous (134 and 517 are both "crane", 638 and 639 both "maillot")."""
    synsets = imagenet_synsets()
    wnids = [wnid for wnid, _ in synsets]
    assert len(synsets) == 1000 and wnids == sorted(set(wnids)) and all(len(w) == 9 and w[0] == "n" for w in wnids)
    renamed = {i for i, (name, (_, keras_name)) in enumerate(zip(class_names(), synsets))
               if name.replace(" ", "_") != keras_name}
    assert renamed == {134, 639}
    assert synsets[134][1] == synsets[517][1] == "crane" and synsets[638][1] == synsets[639][1] == "maillot"


def test_slim_background_column():
    """TF-slim classifiers have 1001 outputs, "background" first: the same synsets one column later."""
    preds = np.zeros((1, 1001), "float32")
    preds[0, 2], preds[0, 0] = 0.8, 0.1
    assert [t[:2] for t in decode_predictions(preds, top=2)[0]] == [("n01443537", "goldfish"), ("background", "background")]
    with pytest.raises(ValueError, match=r"\(samples, 1000 or 1001\)"):
        decode_predictions(np.zeros((1, 1002)))
