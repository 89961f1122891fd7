"""Keras h5 reader: Keras 2 layout written by hand with h5py, Keras 3 .weights.h5/.keras/full .h5."""

from __future__ import annotations

import h5py
import keras
import numpy as np
import pytest

from tests.conftest import assert_close
from tests.references import assert_parity, infer
from weights_io import WeightFileError, WeightMismatchError, load_keras_h5_weights, read_weights


def small_net(name_prefix=""):
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3, name=f"{name_prefix}block1_conv1")(inputs)
    x = keras.layers.BatchNormalization(name=f"{name_prefix}bn")(x)
    x = keras.layers.Flatten()(x)
    return keras.Model(inputs, keras.layers.Dense(3, name=f"{name_prefix}predictions")(x))


def randomize(model, seed=0):
    rng = np.random.default_rng(seed)
    for v in model.weights:
        v.assign(rng.uniform(0.5, 1.5, v.shape).astype("float32"))


def write_keras2(path, arrays, *, full_model=False, keras1=False):
    """keras.applications' Keras 2 layout: layer_names, weight_names 'layer/kernel:0', datasets by name."""
    with h5py.File(path, "w") as f:
        root = f.create_group("model_weights") if full_model else f
        if full_model:
            f.attrs["model_config"] = b"{}"
        root.attrs["layer_names"] = [n.encode() for n in ["input_1", *arrays]]
        root.attrs["backend"], root.attrs["keras_version"] = b"tensorflow", b"2.2.4"
        root.create_group("input_1").attrs["weight_names"] = np.array([], dtype="S1")
        for layer, params in arrays.items():
            group = root.create_group(layer)
            if keras1:
                suffix = {"kernel": "W", "bias": "b", "moving_variance": "running_std", "moving_mean": "running_mean"}
                names = [f"{layer}_{suffix.get(p, p)}" for p in params]
            else:
                names = [f"{layer}/{p}:0" for p in params]
            group.attrs["weight_names"] = [n.encode() for n in names]
            for name, value in zip(names, params.values()):
                group[name] = value


def arrays_of(model):
    return {l.name: {v.name: v.numpy() for v in l.weights} for l in model.layers if l.weights}


@pytest.mark.parametrize("variant", ["keras2", "full_model", "keras1"])
def test_keras2_layouts_written_by_hand(tmp_path, variant):
    source = small_net()
    randomize(source)
    path = tmp_path / "weights.h5"
    write_keras2(path, arrays_of(source), full_model=variant == "full_model", keras1=variant == "keras1")
    weights = read_weights(path)
    assert weights.convention == "keras" and set(weights.tensors) == {"block1_conv1", "bn", "predictions"}
    assert list(weights.tensors["bn"]) == ["gamma", "beta", "moving_mean", "moving_variance"]
    target = small_net()
    report = load_keras_h5_weights(target, path)
    # a Keras 1/2 file with our names is keras.applications': identity names, keras' builder settings
    assert report.layout == "keras-applications" and len(report.loaded) == 8
    x = np.random.default_rng(1).normal(size=(2, 8, 8, 3)).astype("float32")
    assert_parity(infer(target, x), infer(source, x))


@pytest.mark.parametrize("suffix", [".weights.h5", ".keras", ".h5"])
def test_keras3_files(tmp_path, suffix):
    source = small_net()
    randomize(source, 2)
    path = tmp_path / f"m{suffix}"
    source.save_weights(path) if suffix == ".weights.h5" else source.save(path)
    weights = read_weights(path)
    if suffix == ".weights.h5":
        assert list(weights.tensors["bn"]) == ["0", "1", "2", "3"]  # positional, resolved by the assign step
    target = small_net()
    load_keras_h5_weights(target, path)
    for a, b in zip(source.weights, target.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_nested_model_weights(tmp_path):
    inputs = keras.Input((8, 8, 3))
    outer = keras.Model(inputs, keras.layers.Dense(2, name="head")(small_net("inner_")(inputs)))
    randomize(outer, 3)
    for name in ("nested.weights.h5", "nested.h5"):
        path = tmp_path / name
        outer.save_weights(path) if name.endswith(".weights.h5") else outer.save(path)
        assert set(read_weights(path).tensors) == {"inner_block1_conv1", "inner_bn", "inner_predictions", "head"}


def test_strict_false_new_head_and_all_or_nothing(tmp_path):
    source = small_net()
    randomize(source)
    path = tmp_path / "src.weights.h5"
    source.save_weights(path)
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3, name="block1_conv1")(inputs)
    x = keras.layers.BatchNormalization(name="bn")(x)
    target = keras.Model(inputs, keras.layers.Dense(7, name="predictions")(keras.layers.Flatten()(x)))
    before = [v.numpy().copy() for v in target.weights]
    with pytest.raises(WeightMismatchError):
        load_keras_h5_weights(target, path)
    assert all(np.array_equal(a, v.numpy()) for a, v in zip(before, target.weights))
    report = load_keras_h5_weights(target, path, strict=False)
    assert len(report.loaded) == 6 and len(report.mismatched) == 2
    np.testing.assert_array_equal(target.get_layer("predictions").kernel.numpy(), before[6])


def test_not_a_keras_file(tmp_path):
    with h5py.File(tmp_path / "other.h5", "w") as f:
        f["data"] = np.ones(3)
    with pytest.raises(WeightFileError, match="not a Keras weight file"):
        read_weights(tmp_path / "other.h5")


def test_keras2_layer_names_with_slashes(tmp_path):
    """tf.keras' MobileNetV3 files name layers like "expanded_conv/depthwise": the group is the owner."""
    import h5py

    from weights_io import read_weights

    path = tmp_path / "slashes.h5"
    with h5py.File(path, "w") as f:
        names = ["expanded_conv/depthwise", "expanded_conv_1/depthwise"]
        f.attrs["layer_names"] = [n.encode() for n in names]
        for i, name in enumerate(names):
            g = f.create_group(name)
            g.attrs["weight_names"] = [f"{name}/depthwise_kernel:0".encode()]
            g.create_dataset(f"{name}/depthwise_kernel:0", data=np.full((3, 3, 4, 1), i, "float32"))
    tensors = read_weights(path).tensors
    assert sorted(tensors) == names
    assert tensors["expanded_conv_1/depthwise"]["depthwise_kernel"][0, 0, 0, 0] == 1


# keras.applications' InceptionV3 / InceptionResNetV2 downloads name layers by a session
# counter (conv2d_17): they load by order. The structure and the logits come from tf_keras.
KERAS2_BY_ORDER = [("inception_v3", "build_inception_v3"), ("inception_resnet_v2", "build_inception_resnet_v2")]


@pytest.mark.parametrize("fixture, builder", KERAS2_BY_ORDER)
def test_keras2_auto_named_file_loads_by_order_to_tf_keras_logits(tmp_path, fixture, builder):
    import kerasnets
    from tests.keras2_files import fill_weights, input_batch, read_structure, write_keras2_h5

    structure = read_structure(fixture)
    path = write_keras2_h5(tmp_path / "w.h5", structure, fill_weights(structure))
    model = getattr(kerasnets, builder)(input_shape=structure["input_shape"], classifier_activation=None)
    report = load_keras_h5_weights(model, path)
    assert report.layout == "keras-order" and report.ok
    assert_close(model(input_batch(structure)), np.array(structure["logits"])[None])

    # the same file with two same-shaped conv layers swapped still loads, and gives other logits
    convs = [name for name, w in structure["weights"].items() if w[0][0].endswith("kernel:0")]
    a, b = next((x, y) for x in convs for y in convs
                if x < y and structure["weights"][x][0][1] == structure["weights"][y][0][1])
    swapped = dict(structure, layer_names=[{a: b, b: a}.get(n, n) for n in structure["layer_names"]])
    load_keras_h5_weights(model, write_keras2_h5(tmp_path / "s.h5", swapped, fill_weights(structure)))
    assert np.abs(keras.ops.convert_to_numpy(model(input_batch(structure))) - structure["logits"]).max() > 1e-3


def test_by_order_needs_as_many_layers_and_leaves_the_model_untouched(tmp_path):
    from kerasnets import build_inception_v3
    from tests.keras2_files import fill_weights, read_structure, write_keras2_h5

    structure = read_structure("inception_v3")
    path = write_keras2_h5(tmp_path / "w.h5", structure, fill_weights(structure))
    model = build_inception_v3(include_top=False, input_shape=structure["input_shape"])
    before = [np.array(w) for w in model.get_weights()]
    with pytest.raises(ValueError, match=r"the model has 188, the file 189.*include_top"):
        load_keras_h5_weights(model, path)
    assert all(np.array_equal(x, y) for x, y in zip(before, model.get_weights()))
