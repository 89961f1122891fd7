"""Exact or loud: a file never loads silently into a network built otherwise than by its publisher.

Each case builds the publisher's network with kerasnets (the options its layout
declares), writes its weights in the publisher's layout, and loads them into
the model a new user builds with the defaults. The outputs of such a load differ
(measured below, so the loudness is not about nothing); the load must fail
naming each option, or warn with strict=False, and `build_for_weights` must
build the network the file fits.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import kerasnets
import weights_io
from kerasnets.resnet import KERAS_APPLICATIONS
from tests.references import assert_parity, build_uninitialised, heal_keras, infer
from tests.test_weights_io_h5 import write_keras2
from weights_io import WeightMismatchError
from weights_io.core import BuildRecord, build_record
from weights_io.errors import WeightOptionsWarning
from weights_io.layouts import get_layout

SIZE = 75  # the smallest Inception v3 input


def _healthy(model, seed=0):
    """Healthy random weights (tests.references.heal_keras), BN calibrated on images like the test's:
    about 1 BN channel in 16 has a tiny variance, where BN epsilons 1e-5 and 1.001e-5 differ visibly."""
    return heal_keras(model, _images(model.input_shape[-1], count=8, seed=seed + 10), seed=seed)


def _healthy_build(name, **options):
    """`name` at SIZE with 7 classes and healthy random weights, its initialisers skipped (heal_keras draws them)."""
    return _healthy(build_uninitialised(kerasnets.build, name, input_shape=(SIZE, SIZE, 3), classes=7, **options))


def _images(channels=3, count=2, seed=0):
    return np.random.default_rng(seed).uniform(0, 1, (count, SIZE, SIZE, channels)).astype("float32")


def _logits(model, x):
    return np.asarray(infer(model, x))


def _torch_file(tmp_path, name, layout, **options):
    publisher = _healthy_build(name, **options)
    path = tmp_path / f"{name}.pth"
    weights_io.save_torch_state_dict(publisher, path, layout=layout)
    return publisher, path


def _keras2_resnet_file(tmp_path):
    """keras.applications' Keras 2 file of a ResNet: our names, keras' options, keras_version 2.x."""
    publisher = _healthy_build("resnet18", **KERAS_APPLICATIONS)
    arrays = {layer.name: {v.name: np.asarray(v) for v in layer.weights}
              for layer in weights_io.assign.weighted_layers(publisher)}
    path = tmp_path / "resnet_keras2.h5"
    write_keras2(path, arrays)
    return publisher, path


CASES = {
    # registry name, publisher options, the layout, what a default build gets wrong
    "densenet": ("densenet121", {"bn_epsilon": 1e-5}, "torchvision-densenet", {"bn_epsilon": (1.001e-5, 1e-5)}),
    "mobilenet": ("mobilenet_v3_small", {"padding": "torch", "include_preprocessing": False},
                  "torchvision-mobilenet-v3", {"padding": ("keras", "torch"), "include_preprocessing": (True, False)}),
    "inception": ("inception_v3", {"variant": "torchvision"}, "torchvision-inception-v3",
                  {"variant": ("keras", "torchvision")}),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_default_build_is_refused_naming_each_option(tmp_path, case):
    name, options, layout, wrong = CASES[case]
    publisher, path = _torch_file(tmp_path, name, layout, **options)
    model = kerasnets.build(name, input_shape=(SIZE, SIZE, 3), classes=7)
    before = [np.array(v) for v in model.weights]
    with pytest.raises(WeightMismatchError) as err:
        weights_io.load_weights(model, path)
    message = str(err.value)
    for option, (ours, theirs) in wrong.items():
        assert f"{option}: model {ours!r}, publisher {theirs!r}" in message
    call = err.value.report.suggested_call
    assert call.startswith(f"kerasnets.build({name!r}") and all(f"{k}={v[1]!r}" in call for k, v in wrong.items())
    assert "strict=False" not in message  # loading part of the file would not fix a differently built network
    assert all(np.array_equal(a, np.array(v)) for a, v in zip(before, model.weights)), "the model was changed"

    # The suggested call builds the network that reproduces the publisher's.
    fitting = eval(call, {"kerasnets": kerasnets})  # noqa: S307 - our own message
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        weights_io.load_weights(fitting, path)
    x = _images()
    assert_parity(_logits(fitting, x), _logits(publisher, x), what=f"{name} built as suggested")


def test_strict_false_loads_and_warns_with_the_same_text(tmp_path):
    name, options, layout, _ = CASES["densenet"]
    publisher, path = _torch_file(tmp_path, name, layout, **options)
    model = kerasnets.build(name, input_shape=(SIZE, SIZE, 3), classes=7)
    with pytest.warns(WeightOptionsWarning, match=r"bn_epsilon: model 1\.001e-05, publisher 1e-05"):
        report = weights_io.load_weights(model, path, strict=False)
    assert report.applied and report.ok and len(report.loaded) == len(model.weights)
    # The drift this warns of is real on weights with small-variance channels.
    x = _images()
    drift = np.abs(_logits(model, x) - _logits(publisher, x)).max() / np.abs(_logits(publisher, x)).max()
    print(f"densenet121 with keras' epsilon on torchvision-style weights: {drift:.2g} relative")
    assert drift > 1e-6


def test_keras_applications_file_into_a_torch_style_resnet_is_loud(tmp_path):
    """The issue's case: keras' ResNet file into build_resnet50(conv_bias=True, bn_epsilon=1.001e-5)."""
    publisher, path = _keras2_resnet_file(tmp_path)
    shapes_fit = kerasnets.build("resnet18", input_shape=(SIZE, SIZE, 3), classes=7, conv_bias=True,
                                 bn_epsilon=1.001e-5)
    with pytest.raises(WeightMismatchError) as err:
        weights_io.load_keras_h5_weights(shapes_fit, path)
    message = str(err.value)
    assert "layout 'keras-applications'" in message
    assert "stride_placement: model 'v1.5', publisher 'v1'" in message
    assert "padding: model 'torch', publisher 'keras'" in message
    # Loaded anyway, it computes something else: the check is about a real difference.
    x = _images()
    weights_io.load_keras_h5_weights(shapes_fit, path, strict=False)
    drift = np.abs(_logits(shapes_fit, x) - _logits(publisher, x)).max() / np.abs(_logits(publisher, x)).max()
    assert drift > 1e-3
    # keras.applications' options: silent and exact.
    fitting = kerasnets.build("resnet18", input_shape=(SIZE, SIZE, 3), classes=7, **KERAS_APPLICATIONS)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        report = weights_io.load_keras_h5_weights(fitting, path)
    assert report.layout == "keras-applications"
    assert_parity(_logits(fitting, x), _logits(publisher, x), what="keras-applications resnet")


def test_a_keras3_file_with_our_names_keeps_the_identity_layout(tmp_path):
    """Our own saves carry no publisher's settings: any build of the same shapes takes them."""
    model = _healthy_build("resnet18")
    path = tmp_path / "ours.h5"
    model.save(path)  # Keras 3's legacy full-model .h5: keras_version 3.x
    assert weights_io.read_weights(path).metadata["keras_version"].startswith("3.")
    target = kerasnets.build("resnet18", input_shape=(SIZE, SIZE, 3), classes=7)
    assert weights_io.load_weights(target, path).layout == "keras"


def test_a_tf_keras_densenet_file_is_found_by_name_and_holds_keras_epsilon(tmp_path):
    """tf.keras named DenseNet's stem conv1/conv and conv1/bn: layout keras-legacy-densenet, by name.

    Before it, such a file fell back to pairing by order ("keras-order"), which
    implies no DenseNet option, so a build with torch's BN epsilon took it silently.
    """
    publisher = _healthy_build("densenet121")
    tf_names = {"conv1_conv": "conv1/conv", "conv1_bn": "conv1/bn"}
    arrays = {tf_names.get(layer.name, layer.name): {v.name: np.asarray(v) for v in layer.weights}
              for layer in weights_io.assign.weighted_layers(publisher)}
    path = tmp_path / "densenet_keras2.h5"
    write_keras2(path, arrays)
    x = _images()

    model = kerasnets.build("densenet121", input_shape=(SIZE, SIZE, 3), classes=7)
    assert weights_io.load_weights(model, path).layout == "keras-legacy-densenet"
    assert_parity(_logits(model, x), _logits(publisher, x), what="tf.keras-named densenet")

    torch_eps = kerasnets.build("densenet121", input_shape=(SIZE, SIZE, 3), classes=7, bn_epsilon=1e-5)
    with pytest.raises(WeightMismatchError, match=r"bn_epsilon: model 1e-05, publisher 1.001e-05"):
        weights_io.load_weights(torch_eps, path)
    model, report = kerasnets.build_for_weights("densenet121", path, input_shape=(SIZE, SIZE, 3))
    assert report.layout == "keras-legacy-densenet" and build_record(model).options["classes"] == 7


def test_a_keras3_densenet_file_keeps_the_identity_layout(tmp_path):
    """keras-legacy-densenet differs from ours in two names only: files with ours stay on "keras"."""
    model = _healthy_build("densenet121")
    path = tmp_path / "ours.weights.h5"
    model.save_weights(path)
    target = kerasnets.build("densenet121", input_shape=(SIZE, SIZE, 3), classes=7)
    assert weights_io.load_weights(target, path).layout == "keras"


def test_build_for_weights_builds_what_the_file_fits(tmp_path):
    publisher, path = _torch_file(tmp_path, "mobilenet_v3_small", "torchvision-mobilenet-v3", padding="torch",
                                  include_preprocessing=False)
    model, report = kerasnets.build_for_weights("mobilenet_v3_small", path, input_shape=(SIZE, SIZE, 3))
    options = build_record(model).options
    assert (options["padding"], options["include_preprocessing"], options["classes"]) == ("torch", False, 7)
    assert report.applied and report.ok
    x = _images()
    assert_parity(_logits(model, x), _logits(publisher, x), what="build_for_weights")
    # An option the caller names wins, and one that contradicts the file is loud.
    with pytest.raises(WeightMismatchError, match="padding: model 'keras', publisher 'torch'"):
        kerasnets.build_for_weights("mobilenet_v3_small", path, input_shape=(SIZE, SIZE, 3), padding="keras")


def test_cli_convert_builds_the_publishers_network(tmp_path, capsys):
    from training.cli import main

    publisher, path = _torch_file(tmp_path, "densenet121", "torchvision-densenet", bn_epsilon=1e-5)
    out = tmp_path / "converted.keras"
    assert main(["convert", "--arch", "densenet121", "--from", str(path), "--to", str(out),
                 "--option", f"input_shape=({SIZE}, {SIZE}, 3)"]) == 0
    printed = capsys.readouterr().out
    assert "built as kerasnets.build('densenet121'" in printed and "bn_epsilon=1e-05" in printed
    import keras

    converted = keras.models.load_model(out)
    x = _images()
    assert_parity(_logits(converted, x), _logits(publisher, x), what="kerasnets convert")


def test_mismatch_message_without_option_differences_names_the_head_or_the_layout(tmp_path):
    _, path = _torch_file(tmp_path, "densenet121", "torchvision-densenet", bn_epsilon=1e-5)
    new_head = kerasnets.build("densenet121", input_shape=(SIZE, SIZE, 3), classes=3, bn_epsilon=1e-5)
    with pytest.raises(WeightMismatchError) as err:
        weights_io.load_weights(new_head, path)
    assert err.value.report.head_only and "Only the classifier differs" in str(err.value)
    wrong_net = kerasnets.build("densenet169", input_shape=(SIZE, SIZE, 3), classes=7, bn_epsilon=1e-5)
    with pytest.raises(WeightMismatchError) as err:
        weights_io.load_weights(wrong_net, path)
    assert not err.value.report.head_only and "does not describe this network" in str(err.value)


@pytest.mark.parametrize("channels", [1, 6, 5])
def test_first_conv_adapts_to_other_input_channel_counts(tmp_path, channels):
    publisher, path = _torch_file(tmp_path, "resnet18", "torchvision-resnet")
    model = kerasnets.build("resnet18", input_shape=(SIZE, SIZE, channels), classes=7)
    report = weights_io.load_weights(model, path)
    assert report.adapted_channels == (3, channels) and report.ok
    note = dict((t, n) for t, _, n in report.loaded)["conv1_conv/kernel"]
    assert ("summed" if channels == 1 else f"x 3/{channels}") in note
    rgb = _images()
    if channels == 1:  # a grey image: what the RGB network gives for that grey
        grey = rgb.mean(axis=-1, keepdims=True)
        assert_parity(_logits(model, grey), _logits(publisher, np.repeat(grey, 3, axis=-1)), what="1 channel")
    elif channels == 6:  # RGB twice: the RGB network's response
        assert_parity(_logits(model, np.concatenate([rgb, rgb], axis=-1)), _logits(publisher, rgb), what="6 channels")
    else:
        kernel = np.asarray(model.get_layer("conv1_conv").kernel)
        source = np.asarray(publisher.get_layer("conv1_conv").kernel)
        np.testing.assert_allclose(kernel, np.concatenate([source, source[:, :, :2]], axis=2) * 3 / 5, rtol=1e-6)


def test_adaptation_needs_a_three_channel_source(tmp_path):
    publisher = kerasnets.build("resnet18", input_shape=(SIZE, SIZE, 4), classes=7)
    path = tmp_path / "four.pth"
    weights_io.save_torch_state_dict(publisher, path, layout="torchvision-resnet")
    with pytest.raises(WeightMismatchError, match="conv1_conv/kernel: model expects"):
        weights_io.load_weights(kerasnets.build("resnet18", input_shape=(SIZE, SIZE, 3), classes=7), path)


def test_every_preset_builds_what_its_layout_implies():
    """A preset's options never contradict its layout's, or its own load would be refused."""
    from kerasnets.presets import list_presets

    checked = 0
    for preset in list_presets():
        spec = kerasnets.model_spec(preset.model)
        record = BuildRecord(preset.model, spec.family, {**spec.builder.option_defaults, **preset.options})
        assert get_layout(preset.layout).option_differences(record) == [], preset.name
        checked += 1
    assert checked > 40


def test_layouts_declare_their_publishers_settings():
    """Spot checks against the publishers' code (torchvision, Cadene, keras.applications)."""
    def implied(layout, model):
        spec = kerasnets.model_spec(model)
        return get_layout(layout).implied_options(spec.family, model)

    assert implied("torchvision-resnet", "resnet50")["stride_placement"] == "v1.5"
    assert implied("cadene-senet", "se_resnet50")["stride_placement"] == "v1"
    assert implied("cadene-senet", "se_resnext50_32x4d")["stride_placement"] == "v1.5"
    assert implied("keras-applications", "resnet50") == {**KERAS_APPLICATIONS, "stem_pool": "padded"}
    assert implied("torchvision-densenet", "densenet121")["bn_epsilon"] == 1e-5
    assert implied("keras-applications", "densenet121")["bn_epsilon"] == 1.001e-5
    assert implied("keras-applications", "vgg16") == {}
    assert implied("keras-legacy-densenet", "densenet121") == {"bn_epsilon": 1.001e-5, "conv_bias": False}
