"""Keras 1/2 `.h5` layouts checked against files tf.keras itself writes (issue 21).

Each keras.applications family with a Keras 2 layout is built by tf_keras
(Keras 2, the code that wrote the hosted `.h5` files) with weights=None at a
small input size, given healthy random weights, saved with
`save_weights("x.h5")` and run on a random batch. The file then loads into
our network twice, through `kerasnets.build_for_weights` (the layout picks
the builder options) and through `weights_io.load_weights` into a model built
with the documented options, and both must reproduce tf_keras' logits.

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
from weights_io.layouts import choose_layout  # noqa: E402
from weights_io.assign import weighted_layers  # noqa: E402

CLASSES = 10
RTOL = 1e-4  # of max |logit|
MIN_INPUT_DEPENDENCE = 2e-3


def _leaf_layers(model):
    """Layers that are not models, descending into nested models."""
    for layer in model.layers:
        if isinstance(layer, tf_keras.Model):
            yield from _leaf_layers(layer)
        else:
            yield layer


def randomize_tf_keras(model, batch, seed=0):
    """He-normal kernels, small biases, BN statistics from `batch` then perturbed.

    Kernels and BN scale/offset are drawn first; one forward pass in training
    mode with momentum 0 sets every BN layer's moving mean/variance to the
    statistics its input really has, so activations keep their scale through
    a hundred layers; the statistics are then perturbed so inference does not
    reduce to batch normalisation.
    """
    rng = np.random.default_rng(seed)
    bns = []
    for layer in _leaf_layers(model):
        if isinstance(layer, tf_keras.layers.BatchNormalization):
            bns.append(layer)
            c = layer.moving_mean.shape
            if layer.gamma is not None:
                layer.gamma.assign(rng.uniform(0.8, 1.2, c).astype("float32"))
            if layer.beta is not None:
                layer.beta.assign(rng.normal(0, 0.1, c).astype("float32"))
            continue
        for variable in layer.weights:
            param = variable.name.rpartition("/")[2].split(":")[0]
            shape = tuple(variable.shape)
            if param == "depthwise_kernel":
                value = rng.normal(size=shape) * np.sqrt(2.0 / np.prod(shape[:2]))
            elif param == "kernel":
                value = rng.normal(size=shape) * np.sqrt(2.0 / np.prod(shape[:-1]))
            else:  # bias
                value = rng.normal(size=shape) * 0.05
            variable.assign(value.astype("float32"))
    momenta = [layer.momentum for layer in bns]
    for layer in bns:
        layer.momentum = 0.0
    model(batch, training=True)
    for layer, momentum in zip(bns, momenta):
        layer.momentum = momentum
        c = layer.moving_mean.shape
        std = np.sqrt(layer.moving_variance.numpy())
        layer.moving_mean.assign(layer.moving_mean.numpy() + 0.1 * std * rng.normal(size=c).astype("float32"))
        layer.moving_variance.assign(layer.moving_variance.numpy() * rng.uniform(0.8, 1.25, c).astype("float32"))


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
            randomize_tf_keras(model, _input(size, low_high, 8, seed=2))
            path = str(folder / f"{family}.h5")
            model.save_weights(path)
            batch = _input(size, low_high, 4, seed=3)
            cache[family] = (path, batch, model(batch, training=False).numpy())
            del model
            tf_keras.backend.clear_session()
        return cache[family]

    return make


def _check_logits(ours, theirs):
    scale = np.max(np.abs(theirs))
    dependence = np.max(np.abs(theirs - theirs.mean(axis=0, keepdims=True))) / scale
    assert dependence >= MIN_INPUT_DEPENDENCE, f"tf_keras' logits hardly depend on the input ({dependence:.2e})"
    error = np.max(np.abs(ours - theirs)) / scale
    assert error <= RTOL, f"max |ours - tf_keras| / max |logit| = {error:.2e}"
    return error, dependence


@pytest.mark.parametrize("family", sorted(CASES))
def test_tf_keras_file_loads_exactly(family, tf_keras_files):
    path, batch, theirs = tf_keras_files(family)
    _, tf_kwargs, name, documented, size, _, layout = CASES[family]
    common = dict(input_shape=(size, size, 3), **tf_kwargs)
    top = {} if "include_top" in tf_kwargs else {"classes": CLASSES, "classifier_activation": None}

    model, report = kerasnets.build_for_weights(name, path, **common, **{k: v for k, v in top.items() if k != "classes"})
    assert report.applied and report.layout == layout, str(report)
    first = _check_logits(np.asarray(model(batch, training=False)), theirs)

    model = kerasnets.build(name, **common, **top, **documented)
    report = weights_io.load_weights(model, path)
    assert report.applied and report.layout == layout, str(report)
    second = _check_logits(np.asarray(model(batch, training=False)), theirs)
    print(f"{family}: relative error {first[0]:.2e} (build_for_weights), {second[0]:.2e} (load_weights); "
          f"input dependence {first[1]:.2e}")


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
    _check_logits(np.asarray(model(batch, training=False)), theirs)

    bare = kerasnets.build("mobilenet_v3_large", include_preprocessing=False, **common)
    weights_io.load_weights(bare, path)
    _check_logits(np.asarray(bare(batch / 127.5 - 1.0, training=False)), theirs)


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
    randomize_tf_keras(outer, _input(size, (0, 255), 8, seed=2))
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
    _check_logits(np.asarray(ours(batch, training=False)), theirs)


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
    randomize_tf_keras(model, _input(size, low_high, 8, seed=2))
    path = tmp_path / preset.file_name
    model.save_weights(str(path))
    batch = _input(size, low_high, 4, seed=3)
    theirs = model(batch, training=False).numpy()
    tf_keras.backend.clear_session()
    digest = hashlib.md5(path.read_bytes()).hexdigest()
    monkeypatch.setitem(presets._table(), preset_name,
                        dataclasses.replace(preset, hash={"algorithm": "md5", "value": digest}))

    ours = kerasnets.build_preset(preset_name, input_shape=(size, size, 3), classifier_activation=None)
    _check_logits(np.asarray(ours(batch, training=False)), theirs)
