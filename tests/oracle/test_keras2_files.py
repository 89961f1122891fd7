"""Keras 1/2 `.h5` layouts checked against files tf.keras itself writes (issue 21).

Each keras.applications family with a Keras 2 layout is built by tf_keras
(Keras 2, the code that wrote the hosted `.h5` files) with weights=None at a
small input size, given healthy random weights (`tests.references.heal_keras`),
saved with `save_weights("x.h5")` and run on a random batch. The file then loads into
our network twice, through `kerasnets.build_for_weights` (the layout picks
the builder options) and through `weights_io.load_weights` into a model built
with the documented options, and both must reproduce tf_keras' logits
(`tests.references.assert_parity`: the reference's logits must visibly
depend on the input, then ours match them).

Name lists (tests/data/keras2) say what the file holds; this says the
numbers the publisher's own code computes from it come back.
"""

from __future__ import annotations

import h5py
import numpy as np
import pytest

tf_keras = pytest.importorskip("tf_keras")

import kerasnets  # noqa: E402
import weights_io  # noqa: E402
from tests.references import assert_parity, heal_keras  # noqa: E402

CLASSES = 10


# family: (tf_keras constructor, its kwargs, our name, our documented options, input size, input range, layout)
CASES = {
    "mobilenet_v3_large": ("MobileNetV3Large", {}, "mobilenet_v3_large", {}, 96, (0, 255),
                           "keras-legacy-mobilenet-v3"),
    "mobilenet_v3_small": ("MobileNetV3Small", {}, "mobilenet_v3_small", {}, 96, (0, 255),
                           "keras-legacy-mobilenet-v3"),
    "densenet121": ("DenseNet121", {}, "densenet121", {}, 96, (-2, 2), "keras-legacy-densenet"),
    "resnet50": ("ResNet50", {}, "resnet50",
                 {"stride_placement": "v1", "conv_bias": True, "bn_epsilon": 1.001e-5, "padding": "keras",
                  "stem_pool": "padded"}, 96, (-2, 2), "keras-applications"),
    "inception_v3": ("InceptionV3", {}, "inception_v3", {"variant": "keras"}, 96, (-1, 1), "keras-order"),
    # VGG16's flattening head needs 224 px in kerasnets: the convolutional trunk, pooled, at 64 px
    "vgg16": ("VGG16", {"include_top": False, "pooling": "avg"}, "vgg16", {}, 64, (-2, 2), "keras-applications"),
}


def _input(size, low_high, n, seed):
    low, high = low_high
    return np.random.default_rng(seed).uniform(low, high, (n, size, size, 3)).astype("float32")


@pytest.fixture(scope="module")
def tf_keras_files(tmp_path_factory):
    """`{family: (path, batch, tf_keras logits)}`, each model written once per module."""
    folder = tmp_path_factory.mktemp("keras2")
    cache = {}

    def make(family):
        if family not in cache:
            ctor, kwargs, _, _, size, low_high, _ = CASES[family]
            top = {} if "include_top" in kwargs else {"classes": CLASSES, "classifier_activation": None}
            model = getattr(tf_keras.applications, ctor)(input_shape=(size, size, 3), weights=None, **top, **kwargs)
            heal_keras(model, _input(size, low_high, 8, seed=2))
            path = str(folder / f"{family}.h5")
            model.save_weights(path)
            batch = _input(size, low_high, 4, seed=3)
            cache[family] = (path, batch, model(batch, training=False).numpy())
            del model
            tf_keras.backend.clear_session()
        return cache[family]

    return make


@pytest.mark.parametrize("family", sorted(CASES))
def test_tf_keras_file_loads_exactly(family, tf_keras_files):
    path, batch, theirs = tf_keras_files(family)
    _, tf_kwargs, name, documented, size, _, layout = CASES[family]
    common = dict(input_shape=(size, size, 3), **tf_kwargs)
    top = {} if "include_top" in tf_kwargs else {"classes": CLASSES, "classifier_activation": None}

    model, report = kerasnets.build_for_weights(name, path, **common, **{k: v for k, v in top.items() if k != "classes"})
    assert report.applied and report.layout == layout, str(report)
    assert_parity(np.asarray(model(batch, training=False)), theirs, what=f"{family} (build_for_weights)")

    model = kerasnets.build(name, **common, **top, **documented)
    report = weights_io.load_weights(model, path)
    assert report.applied and report.layout == layout, str(report)
    assert_parity(np.asarray(model(batch, training=False)), theirs, what=f"{family} (load_weights)")


@pytest.mark.parametrize("family, option, value", [
    ("mobilenet_v3_large", "padding", "torch"),
    ("densenet121", "bn_epsilon", 1e-5),
    ("resnet50", "stride_placement", "v1.5"),
])
def test_a_model_built_otherwise_refuses_the_file_by_option(family, option, value, tf_keras_files):
    """Right shapes, other arithmetic: the load fails naming the option, and the model is untouched."""
    path, _, _ = tf_keras_files(family)
    _, tf_kwargs, name, documented, size, _, _ = CASES[family]
    model = kerasnets.build(name, input_shape=(size, size, 3), classes=CLASSES, classifier_activation=None,
                            **{**documented, option: value})
    before = [np.array(w) for w in model.get_weights()]
    with pytest.raises(weights_io.WeightMismatchError, match=rf"{option}: model {value!r}"):
        weights_io.load_weights(model, path)
    for old, new in zip(before, model.get_weights()):
        np.testing.assert_array_equal(old, np.asarray(new))


def test_mobilenet_v3_default_build_loads_exactly_and_preprocessing_is_the_callers(tf_keras_files):
    """`build("mobilenet_v3_large")` as it comes is keras' network: the file loads with no option given.

    The layout implies padding="keras" only: include_preprocessing moves keras'
    weightless Rescaling(1/127.5, offset=-1) out of the model, the same numbers
    for inputs scaled outside it, so it is no mismatch.
    """
    path, batch, theirs = tf_keras_files("mobilenet_v3_large")
    common = dict(input_shape=batch.shape[1:], classes=CLASSES, classifier_activation=None)
    model = kerasnets.build("mobilenet_v3_large", **common)
    assert weights_io.load_weights(model, path).layout == "keras-legacy-mobilenet-v3"
    assert_parity(np.asarray(model(batch, training=False)), theirs, what="mobilenet_v3_large (default build)")

    bare = kerasnets.build("mobilenet_v3_large", include_preprocessing=False, **common)
    weights_io.load_weights(bare, path)
    assert_parity(np.asarray(bare(batch / 127.5 - 1.0, training=False)), theirs,
                  what="mobilenet_v3_large (include_preprocessing=False)")


@pytest.mark.parametrize("save", ["save_weights", "save"])
def test_tf_keras_nested_model_files_load(save, tmp_path):
    """A keras.applications backbone inside a tf.keras Sequential, as fine-tuned files are written.

    save_weights lists the backbone as one group whose weight names are its inner
    layers' ("Conv/kernel:0", plus tf_keras' extra top_level_model_weights group);
    save() puts the same under model_weights/. Both load into the same nesting
    of ours, exactly.
    """
    import keras

    size = 96
    inner = tf_keras.applications.MobileNetV3Small(input_shape=(size, size, 3), weights=None, include_top=False)
    outer = tf_keras.Sequential([tf_keras.Input((size, size, 3)), inner, tf_keras.layers.GlobalAveragePooling2D(),
                                 tf_keras.layers.Dense(CLASSES, name="head")])
    heal_keras(outer, _input(size, (0, 255), 8, seed=2))
    path = str(tmp_path / "nested.h5")
    getattr(outer, save)(path)
    with h5py.File(path) as f:
        assert ("model_weights" in f) == (save == "save")
    batch = _input(size, (0, 255), 4, seed=3)
    theirs = outer(batch, training=False).numpy()
    tf_keras.backend.clear_session()

    backbone = kerasnets.build("mobilenet_v3_small", include_top=False, input_shape=(size, size, 3))
    ours = keras.Sequential([keras.Input((size, size, 3)), backbone, keras.layers.GlobalAveragePooling2D(),
                             keras.layers.Dense(CLASSES, name="head")])
    report = weights_io.load_weights(ours, path)
    assert report.applied, str(report)
    assert_parity(np.asarray(ours(batch, training=False)), theirs, what=f"nested mobilenet_v3_small ({save})")


@pytest.mark.parametrize("preset_name, ctor", [("mobilenet_v3_small.keras", "MobileNetV3Small"),
                                                ("densenet121.keras", "DenseNet121")])
def test_preset_loader_reads_a_tf_keras_file(preset_name, ctor, tmp_path, monkeypatch):
    """`kerasnets.build_preset` through its file path (hash check, read, the row's layout, the converted
    cache) on the file tf_keras writes, served from a local folder: the hosted files' names."""
    import dataclasses
    import hashlib

    from kerasnets import presets

    monkeypatch.setenv("KERASNETS_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("KERASNETS_WEIGHTS_DIR", str(tmp_path))
    preset = presets.get_preset(preset_name)
    size = 96
    low_high = (0, 255) if ctor.startswith("MobileNet") else (-2, 2)
    model = getattr(tf_keras.applications, ctor)(input_shape=(size, size, 3), weights=None,
                                                 classes=preset.num_classes, classifier_activation=None)
    heal_keras(model, _input(size, low_high, 8, seed=2))
    path = tmp_path / preset.file_name
    model.save_weights(str(path))
    batch = _input(size, low_high, 4, seed=3)
    theirs = model(batch, training=False).numpy()
    tf_keras.backend.clear_session()
    digest = hashlib.md5(path.read_bytes()).hexdigest()
    monkeypatch.setitem(presets._table(), preset_name,
                        dataclasses.replace(preset, hash={"algorithm": "md5", "value": digest}))

    ours = kerasnets.build_preset(preset_name, input_shape=(size, size, 3), classifier_activation=None)
    assert_parity(np.asarray(ours(batch, training=False)), theirs, what=f"preset {preset_name}")
