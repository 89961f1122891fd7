"""LeNet-5, AlexNet, ZFNet and VGG: shapes, parameter counts, parity, round trips, argument checks."""

import keras
import numpy as np
import pytest

import kerasnets
from kerasnets import parameter_count
from kerasnets.registry import build_for_shapes
from tests.conftest import assert_close, assert_reloaded_outputs, keras_weight_file, randomize_bn_statistics
from tests.references import assert_parity, build_uninitialised, heal_keras, infer
from weights_io import assign_weights, get_layout

# ../shared/REFERENCE.md (trainable + BN affine, BN moving stats excluded)
REFERENCE_COUNTS = {
    "lenet5": 61_706,
    "alexnet": 61_100_840,
    "vgg11": 132_863_336,
    "vgg16": 138_357_544,
    "vgg19": 143_667_240,
    "vgg16_bn": 138_365_992,
    "vgg19_bn": 143_678_248,
}


def conv_params(k, cin, cout, groups=1):
    return k * k * (cin // groups) * cout + cout


@pytest.mark.parametrize("name,count", sorted(REFERENCE_COUNTS.items()))
def test_parameter_counts_match_reference(name, count):
    assert parameter_count(build_for_shapes(name)) == count


def test_alexnet_original_and_zfnet_counts():
    assert parameter_count(build_for_shapes("alexnet", variant="original")) == 60_965_224
    # ZFNet from the paper's table, counted here independently of the builder.
    convs = [(7, 3, 96), (5, 96, 256), (3, 256, 384), (3, 384, 384), (3, 384, 256)]
    fcs = [(6 * 6 * 256, 4096), (4096, 4096), (4096, 1000)]
    expected = sum(conv_params(*c) for c in convs) + sum(i * o + o for i, o in fcs)
    assert parameter_count(build_for_shapes("zfnet")) == expected == 62_357_608


@pytest.mark.parametrize(
    "name,options,shape",
    [
        ("lenet5", {}, (10,)),
        ("alexnet", {}, (1000,)),
        ("alexnet", {"variant": "original"}, (1000,)),
        ("zfnet", {}, (1000,)),
        ("vgg11_bn", {"include_top": False, "input_shape": (64, 64, 3), "pooling": "avg"}, (512,)),
    ],
)
def test_output_shapes(name, options, shape):
    model = build_for_shapes(name, **options)
    assert tuple(model.output_shape[1:]) == shape


def test_feature_map_sizes_follow_the_papers():
    alex = build_for_shapes("alexnet", variant="original")
    assert alex.get_layer("conv1").output.shape[1:3] == (55, 55)
    assert alex.get_layer("pool5").output.shape[1:] == (6, 6, 256)
    zf = build_for_shapes("zfnet")
    assert [zf.get_layer(n).output.shape[1] for n in ("conv1", "pool1", "conv2", "pool2", "pool5")] == [110, 55, 26, 13, 6]


@pytest.mark.parametrize("depth", [16, 19])
def test_vgg_matches_keras_applications(depth):
    ref = build_uninitialised(getattr(keras.applications, f"VGG{depth}"), weights=None, classifier_activation=None)
    heal_keras(ref, np.random.default_rng(1).uniform(-100, 100, (2, 224, 224, 3)))
    ours = build_uninitialised(kerasnets.build, f"vgg{depth}", classifier_activation=None)  # filled from ref
    assert parameter_count(ours) == ref.count_params()
    report = assign_weights(ours, keras_weight_file(ref), get_layout("keras"))
    assert report.ok and len(report.loaded) == len(ref.weights)
    x = np.random.default_rng(0).uniform(-100, 100, (2, 224, 224, 3)).astype("float32")
    assert_parity(ours(x), ref(x), what=f"vgg{depth} logits")


def test_fully_convolutional_vgg_equals_dense_vgg_and_takes_any_size():
    dense = kerasnets.build_vgg11(classifier_activation=None)
    conv = build_uninitialised(kerasnets.build_vgg11, fully_convolutional=True, input_shape=(None, None, 3),
                               classifier_activation=None)
    report = assign_weights(conv, keras_weight_file(dense), get_layout("keras"))
    assert any("reshape" in note for _, _, note in report.loaded)
    x = np.random.default_rng(1).uniform(-50, 50, (1, 224, 224, 3)).astype("float32")
    assert_close(keras.ops.reshape(conv(x), (1, -1)), dense(x))
    big = np.random.default_rng(2).uniform(-50, 50, (1, 288, 256, 3)).astype("float32")
    assert tuple(conv(big).shape) == (1, 3, 2, 1000)
    # and back: conv weights into the dense model
    back = build_uninitialised(kerasnets.build_vgg11, classifier_activation=None)
    assign_weights(back, keras_weight_file(conv), get_layout("keras"))
    assert_close(back(x), dense(x))


def test_vgg_bn_inference_uses_moving_statistics():
    model = kerasnets.build_vgg11_bn(include_top=False, input_shape=(32, 32, 3))
    randomize_bn_statistics(model)
    bn = model.get_layer("block1_conv1_bn")
    x = np.random.default_rng(3).normal(size=(2, 32, 32, 3)).astype("float32")
    conv_out = keras.Model(model.input, model.get_layer("block1_conv1").output)(x)
    expected = (conv_out - bn.moving_mean) / np.sqrt(bn.moving_variance + bn.epsilon) * bn.gamma + bn.beta
    got = keras.Model(model.input, model.get_layer("block1_conv1_bn").output)(x, training=False)
    assert bn.epsilon == pytest.approx(1e-5)
    assert_close(got, expected)


SMALL_BUILDS = [
    ("lenet5", {}),
    ("alexnet", {"variant": "original", "include_top": False, "input_shape": (67, 67, 3)}),
    ("zfnet", {"include_top": False, "input_shape": (64, 64, 3)}),
    ("vgg11_bn", {"include_top": False, "input_shape": (32, 32, 3), "pooling": "max"}),
]


@pytest.mark.parametrize("name,options", SMALL_BUILDS)
@pytest.mark.parametrize("suffix", [".keras", ".h5"])
def test_save_and_reload(tmp_path, name, options, suffix):
    model = kerasnets.build(name, **options)
    x = np.random.default_rng(4).uniform(0, 1, (2,) + model.input_shape[1:]).astype("float32")
    path = tmp_path / f"{name}{suffix}"
    model.save(path)
    loaded = keras.models.load_model(path)
    assert_reloaded_outputs(infer(loaded, x), infer(model, x), model)


@pytest.mark.parametrize("name,options", SMALL_BUILDS[:2])
def test_one_training_step(name, options):
    model = kerasnets.build(name, **options)
    x = np.random.default_rng(5).uniform(0, 1, (4,) + model.input_shape[1:]).astype("float32")
    y = np.random.default_rng(6).normal(size=(4,) + model.output_shape[1:]).astype("float32")
    model.compile(optimizer="sgd", loss="mse")
    before = [w.copy() for w in model.get_weights()]
    model.fit(x, y, epochs=1, verbose=0)
    assert any(not np.array_equal(a, b) for a, b in zip(before, model.get_weights()))


BAD_ARGUMENTS = [
    ("vgg16", {"pooling": "mean"}, "pooling"),
    ("vgg16", {"input_shape": (128, 128, 3)}, "include_top=False"),
    ("vgg16", {"include_top": False, "input_shape": (16, 16, 3)}, "at least 32"),
    ("vgg16", {"input_shape": (224, 224)}, "input_shape"),
    ("vgg16", {"classes": 0}, "classes"),
    ("vgg16", {"weights": "imagenet", "classes": 10}, "classes"),
    ("vgg16", {"weights": "/nonexistent/vgg16.npy"}, "does not exist"),
    ("vgg16", {"fully_convolutional": True, "input_shape": (200, 200, 3)}, "at least 224"),
    ("vgg16", {"dropout": 1.5}, "dropout"),
    ("vgg16", {"batchnorm": True}, "Unknown option"),
    ("vgg16", {"classifier_activation": "nope"}, "classifier_activation"),
    ("alexnet", {"variant": "gpu2"}, "variant"),
    ("lenet5", {"activation": "swish"}, "activation"),
    ("lenet5", {"input_shape": (28, 28, 1)}, r"\(32, 32, 1\)"),
    ("zfnet", {"include_top": "yes"}, "include_top"),
]


@pytest.mark.parametrize("name,options,message", BAD_ARGUMENTS)
def test_bad_arguments_raise_value_error(name, options, message):
    with pytest.raises(ValueError, match=message):
        kerasnets.build(name, **options)


def test_registry():
    names = kerasnets.available_models()
    for name in ("lenet5", "alexnet", "zfnet", "vgg11", "vgg13", "vgg16", "vgg19", "vgg16_bn"):
        assert name in names
    assert kerasnets.build("VGG11-BN", include_top=False).name == "vgg11_bn"
    with pytest.raises(ValueError, match="Unknown model"):
        kerasnets.build("vgg17")
    assert kerasnets.model_spec("vgg16").input_shape == (224, 224, 3)
    assert kerasnets.available_models(family="alexnet") == ["alexnet"]
