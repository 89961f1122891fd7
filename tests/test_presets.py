"""Presets: download (local HTTP server), hashes, cache, conversion reuse, errors, and every preset's layout."""

from __future__ import annotations

import dataclasses
import hashlib
import os

import h5py
import keras
import numpy as np
import pytest

import kerasnets
from kerasnets import presets
from tests.conftest import assert_close
from tests.loopback import LoopbackServer, QuietHandler
from tests.references import assert_parity, build_uninitialised, heal_keras, infer
import weights_io
from weights_io import WeightFile
from weights_io.assign import weighted_layers


@pytest.fixture(autouse=True)
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("KERASNETS_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("KERASNETS_WEIGHTS_DIR", raising=False)
    monkeypatch.delenv("KERASNETS_WEIGHTS_MIRROR", raising=False)
    return tmp_path / "home"


class _Server(LoopbackServer):
    """Serves `files` on 127.0.0.1; `truncate` names files cut off mid-body (connection closed)."""

    def __init__(self):
        self.files, self.truncate, self.requests = {}, set(), []
        server = self

        class Handler(QuietHandler):
            def do_GET(self):
                server.requests.append(self.path)
                body = server.files.get(self.path.lstrip("/"))
                if body is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.path.lstrip("/") in server.truncate:
                    self.wfile.write(body[: len(body) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(body)

        super().__init__(Handler)


@pytest.fixture
def server():
    s = _Server()
    yield s
    s.stop()


def _fake_preset(monkeypatch, base="resnet18.torchvision_v1", **changes):
    """A table row like `base` with test URL/hash, registered under its own name for the test."""
    preset = dataclasses.replace(presets.get_preset(base), **changes)
    monkeypatch.setitem(presets._table(), preset.name, preset)
    return preset


def _blob(n=50_000, seed=0):
    return np.random.default_rng(seed).bytes(n)


def test_download_verifies_then_skips_from_cache(server, monkeypatch, home):
    body = _blob()
    server.files["w-0001.pth"] = body
    prefix = hashlib.sha256(body).hexdigest()[:8]
    preset = _fake_preset(monkeypatch, name="t.download", url=server.url + "w-0001.pth", file_name="w-0001.pth",
                          hash={"algorithm": "sha256-prefix", "value": prefix})
    path = presets.locate_source(preset)
    assert path == str(home / "weights" / "w-0001.pth")
    assert open(path, "rb").read() == body
    assert presets.locate_source(preset) == path
    assert len(server.requests) == 1  # the second call used the cache


def test_hash_mismatch_is_refused_and_not_cached(server, monkeypatch, home):
    server.files["bad.pth"] = _blob()
    preset = _fake_preset(monkeypatch, name="t.bad", url=server.url + "bad.pth", file_name="bad.pth",
                          hash={"algorithm": "sha256-prefix", "value": "00000000"})
    with pytest.raises(ValueError, match="Hash mismatch.*00000000"):
        presets.locate_source(preset)
    assert not os.listdir(home / "weights")


def test_md5_hash_like_keras(server, monkeypatch):
    body = _blob(seed=3)
    server.files["k.h5"] = body
    good = _fake_preset(monkeypatch, name="t.md5", url=server.url + "k.h5", file_name="k.h5",
                        hash={"algorithm": "md5", "value": hashlib.md5(body).hexdigest()})
    assert open(presets.locate_source(good), "rb").read() == body


def test_interrupted_download_leaves_nothing_and_next_call_fetches(server, monkeypatch, home):
    body = _blob(200_000, seed=1)
    server.files["cut.pth"] = body
    server.truncate.add("cut.pth")
    preset = _fake_preset(monkeypatch, name="t.cut", url=server.url + "cut.pth", file_name="cut.pth",
                          hash={"algorithm": "sha256-prefix", "value": hashlib.sha256(body).hexdigest()[:8]})
    with pytest.raises(presets.PresetUnavailableError, match="download .* failed"):
        presets.locate_source(preset)
    assert not os.listdir(home / "weights")  # no partial file mistaken for a finished one
    server.truncate.clear()
    assert open(presets.locate_source(preset), "rb").read() == body


def test_weights_mirror_serves_every_row_and_hashes_still_hold(server, monkeypatch, home):
    body = _blob(seed=5)
    server.files["mirrored.pth"] = body
    server.files["swapped.pth"] = _blob(seed=6)
    manual = _fake_preset(monkeypatch, name="t.mirror", url="https://example.invalid/a-web-page", manual_download=True,
                          file_name="mirrored.pth", hash={"algorithm": "sha256", "value": hashlib.sha256(body).hexdigest()})
    with pytest.raises(presets.PresetUnavailableError, match="KERASNETS_WEIGHTS_MIRROR/mirrored.pth"):
        presets.locate_source(manual)  # a web page, no mirror: the error says where a mirror would serve it
    monkeypatch.setenv("KERASNETS_WEIGHTS_MIRROR", server.url)  # with its trailing slash
    assert open(presets.locate_source(manual), "rb").read() == body
    assert server.requests == ["/mirrored.pth"]
    swapped = _fake_preset(monkeypatch, name="t.swapped", file_name="swapped.pth",
                           hash={"algorithm": "sha256", "value": hashlib.sha256(body).hexdigest()})
    with pytest.raises(ValueError, match="Hash mismatch for t.swapped"):
        presets.locate_source(swapped)  # a mirror cannot hand over another file
    assert sorted(os.listdir(home / "weights")) == ["mirrored.pth"]


def test_offline_error_says_what_to_put_where(monkeypatch, home):
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    preset = _fake_preset(monkeypatch, name="t.offline", url=f"http://127.0.0.1:{port}/x.pth", file_name="x.pth",
                          hash={"algorithm": "sha256-prefix", "value": "abcdef12"})
    with pytest.raises(presets.PresetUnavailableError) as err:
        presets.locate_source(preset)
    text = str(err.value)
    for needed in ("x.pth", str(home / "weights" / "x.pth"), f"http://127.0.0.1:{port}/x.pth", "abcdef12"):
        assert needed in text


def test_manual_download_and_download_off():
    with pytest.raises(presets.PresetUnavailableError, match="mega.nz.*\n.*vgg16.npy"):
        presets.locate_source("vgg16.tensorflow_vgg")
    with pytest.raises(presets.PresetUnavailableError, match="downloading is off"):
        presets.locate_source("resnet18.torchvision_v1", download=False)


def test_trust_on_first_use(tmp_path, monkeypatch, capsys):
    preset = _fake_preset(monkeypatch, name="t.tofu", hash=None, manual_download=True, file_name="tofu.bin")
    first, other = tmp_path / "a.bin", tmp_path / "b.bin"
    first.write_bytes(b"first file")
    other.write_bytes(b"another file")
    presets.locate_source(preset, weights_file=first)
    sha = hashlib.sha256(b"first file").hexdigest()
    assert sha in capsys.readouterr().err
    presets.locate_source(preset, weights_file=first)  # same file: accepted
    with pytest.raises(ValueError, match="recorded on first use"):
        presets.locate_source(preset, weights_file=other)


def test_weights_dir_env(tmp_path, monkeypatch):
    body = b"from the user's folder"
    (tmp_path / "u.pth").write_bytes(body)
    preset = _fake_preset(monkeypatch, name="t.env", file_name="u.pth", manual_download=True,
                          hash={"algorithm": "sha256-prefix", "value": hashlib.sha256(body).hexdigest()[:10]})
    monkeypatch.setenv("KERASNETS_WEIGHTS_DIR", str(tmp_path))
    assert presets.locate_source(preset) == str(tmp_path / "u.pth")


def _write_keras2_h5(path, model, layout="keras"):
    """A keras.applications-style (Keras 2) weight file of `model`, written with h5py.

    Layers are named as `layout` says the publisher named them (tf.keras' names
    for the keras-legacy-* layouts of the hosted files).
    """
    with h5py.File(path, "w") as f:
        layers = weighted_layers(model)
        rename = weights_io.get_layout(layout).map_names([layer.name for layer in layers])
        f.attrs["layer_names"] = [rename.get(layer.name, layer.name).encode() for layer in layers]
        for layer in layers:
            stored = rename.get(layer.name, layer.name)
            group = f.create_group(stored)
            names = [f"{stored}/{v.name}:0" for v in layer.weights]
            group.attrs["weight_names"] = [n.encode() for n in names]
            for name, variable in zip(names, layer.weights):
                group.create_dataset(name, data=keras.ops.convert_to_numpy(variable))


def _randomized(model, seed=0):
    rng = np.random.default_rng(seed)
    for v in model.weights:
        v.assign(rng.normal(0, 0.1, v.shape).astype("float32") + (1.0 if "variance" in v.name else 0.0))
    return model


def test_builder_weights_preset_converts_once_then_uses_cache(tmp_path, monkeypatch):
    """build(weights=<preset>) through the real file path: hash, keras-h5 read, convert, cache, reuse."""
    name = "mobilenet_v3_small.keras"
    source = _randomized(kerasnets.build("mobilenet_v3_small", **presets.get_preset(name).options))
    path = tmp_path / presets.get_preset(name).file_name
    _write_keras2_h5(path, source, presets.get_preset(name).layout)
    _fake_preset(monkeypatch, base=name, hash={"algorithm": "md5", "value": hashlib.md5(path.read_bytes()).hexdigest()})
    monkeypatch.setenv("KERASNETS_WEIGHTS_DIR", str(tmp_path))
    calls = []
    real = presets.convert_source_into
    monkeypatch.setattr(presets, "convert_source_into", lambda *a, **k: calls.append(a[1].name) or real(*a, **k))

    x = np.random.default_rng(1).uniform(0, 255, (2, 96, 96, 3)).astype("float32")
    shaped = kerasnets.build_preset(name, input_shape=(96, 96, 3), classifier_activation=None)
    reference = kerasnets.build("mobilenet_v3_small", input_shape=(96, 96, 3), classifier_activation=None)
    reference.set_weights(source.get_weights())
    assert_close(infer(shaped, x), infer(reference, x), what="preset vs source weights")
    assert calls == [name]

    os.remove(path)  # the converted cache alone is enough now
    again = kerasnets.build_mobilenet_v3_small(weights=name, input_shape=(96, 96, 3), classifier_activation=None)
    backbone = kerasnets.build_mobilenet_v3_small(weights="imagenet", include_top=False, input_shape=(96, 96, 3))
    assert calls == [name]
    assert_close(infer(again, x), infer(reference, x), what="from the converted cache")
    trunk = keras.Model(reference.input, reference.get_layer("conv_1_act").output)
    assert_close(infer(backbone, x), infer(trunk, x), what="include_top=False from cache")


def test_wrong_options_classes_and_names_are_value_errors():
    with pytest.raises(ValueError, match="stride_placement='v1'.*Received: weights='resnet50.keras'"):
        kerasnets.build_resnet50(weights="resnet50.keras", include_top=False, input_shape=(32, 32, 3))
    with pytest.raises(ValueError, match="`classes` must be 1000.*Received: classes=10"):
        kerasnets.build_resnet18(weights="imagenet", classes=10)
    with pytest.raises(ValueError, match="Unknown weights preset.*resnet50.torchvision_v2.*Received: weights='resnet50.tv'"):
        kerasnets.build_resnet50(weights="resnet50.tv")
    with pytest.raises(ValueError, match="No default ImageNet preset for a model named 'mine'"):
        kerasnets.build_resnet18(weights="imagenet", name="mine", include_top=False, input_shape=(32, 32, 3))


def test_check_architecture_trusts_only_a_matching_build_record(monkeypatch):
    """A model kerasnets built with the preset's options is the preset's network by construction: no reference
    build. The same layers without the record are compared one by one, and one changed epsilon is caught."""
    preset = presets.get_preset("resnet18.torchvision_v1")
    references = []
    real = presets._canonical
    monkeypatch.setattr(presets, "_canonical", lambda *a, **k: references.append(a[0].name) or real(*a, **k))
    model = kerasnets.build(preset.model, include_top=False, input_shape=(32, 32, 3), **preset.options)
    presets.check_architecture(model, preset)
    assert references == []

    presets.check_architecture(keras.models.clone_model(model), preset)  # a clone carries no build record
    assert references == [preset.name]
    first_bn = next(layer.name for layer in model.layers if "epsilon" in layer.get_config())

    def wider_epsilon(layer):
        config = layer.get_config()
        if layer.name == first_bn:
            config["epsilon"] = 0.5
        return type(layer).from_config(config)

    with pytest.raises(ValueError, match=f"layer '{first_bn}' differs"):
        presets.check_architecture(keras.models.clone_model(model, clone_function=wider_epsilon), preset)
    other_options = {**preset.options, "padding": "keras"}
    other = kerasnets.build(preset.model, include_top=False, input_shape=(32, 32, 3), **other_options)
    with pytest.raises(ValueError, match="Pass those options"):
        presets.check_architecture(other, preset)  # a record with other options: compared, and refused
    assert len(references) == 3


def test_table_is_consistent():
    table = presets.list_presets()
    names = [p.name for p in table]
    assert len(names) == len(set(names))
    registered = set(kerasnets.available_models())

    for p in table:
        assert p.model in registered, p.name
        assert p.layout in weights_io.LAYOUTS, p.name
        assert p.url and (p.hash is None or p.hash["algorithm"] in ("sha256-prefix", "sha256", "md5", "sha1")), p.name
        if p.hash and p.hash["algorithm"] == "sha256-prefix":
            assert f"-{p.hash['value']}." in p.file_name  # torch.hub's convention: the prefix is in the name
        assert p.preprocessing["mode"] in kerasnets.imagenet.MODES or p.preprocessing["mode"] in ("y", "y_full")
    defaults = [p for p in table if p.default]
    assert len({p.model for p in defaults}) == len(defaults)  # one "imagenet" per model
    assert presets.get_preset("resnet50.torchvision_v2").accuracy["top1"] == 80.858


# ---- every preset: its builder options + layout load arrays of the source's exact names and shapes ----

def _vgg_source(depth, fmt):
    """tensorflow-vgg / MatConvNet VGG-VD layer names and array shapes (REFERENCE.md), random values."""
    rng = np.random.default_rng(depth)
    blocks = {16: (2, 2, 3, 3, 3), 19: (2, 2, 4, 4, 4)}[depth]
    tensors, cin = {}, 3
    for b, (convs, width) in enumerate(zip(blocks, (64, 128, 256, 512, 512)), start=1):
        for c in range(1, convs + 1):
            bias = rng.normal(size=(width, 1) if fmt == "matconvnet" else (width,)).astype("float32")
            tensors[f"conv{b}_{c}"] = {"weights": rng.normal(size=(3, 3, cin, width)).astype("float32"),
                                       "biases": bias}
            cin = width
    fc6 = (7, 7, 512, 4096) if fmt == "matconvnet" else (25088, 4096)
    for name, shape in (("fc6", fc6), ("fc7", (4096, 4096)), ("fc8", (4096, 1000))):
        tensors[name] = {"weights": np.broadcast_to(np.float32(0), shape), "biases": np.zeros(shape[-1], "float32")}
    return WeightFile(tensors=tensors, convention="matconvnet" if fmt == "matconvnet" else "tf", format=fmt)


FILE_PRESETS = [p.name for p in presets.list_presets() if p.publisher.startswith(("MatConvNet", "machrisaa"))]


@pytest.mark.parametrize("name", FILE_PRESETS)
def test_vgg_file_presets_load(name):
    preset = presets.get_preset(name)
    model = kerasnets.build(preset.model, include_top=False, input_shape=(32, 32, 3), **preset.options)
    presets.check_architecture(model, preset)
    depth = int(preset.model[3:])
    source = _vgg_source(depth, "matconvnet" if "matconvnet" in name else "tf")
    expected = source.tensors["conv1_1"]["weights"].copy()
    report = presets.convert_weight_file_into(model, preset, source)
    assert report.ok and report.applied
    np.testing.assert_array_equal(model.get_layer("block1_conv1").kernel.numpy(), expected)


KERAS_PRESETS = {
    p.name: p for p in presets.list_presets() if p.publisher == "keras.applications"
}
KERAS_APPS = {
    "vgg16": "VGG16", "vgg19": "VGG19", "resnet50": "ResNet50", "resnet101": "ResNet101", "resnet152": "ResNet152",
    "densenet121": "DenseNet121", "densenet169": "DenseNet169", "densenet201": "DenseNet201",
    "mobilenet_v3_large": "MobileNetV3Large", "mobilenet_v3_small": "MobileNetV3Small",
    "inception_v3": "InceptionV3", "inception_resnet_v2": "InceptionResNetV2",
}


# The deeper twins of a family repeat its layout with more blocks: run in the slow (CI) pass only.
_DEEP = {"vgg19.keras", "resnet101.keras", "resnet152.keras", "densenet169.keras", "densenet201.keras"}


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n in _DEEP else n
                                  for n in sorted(KERAS_PRESETS)])
def test_keras_presets_load(name):
    """keras.applications' own model (weights=None) gives the exact names and shapes of its files.

    The Inception files are loaded by order (layout "keras-order"); their layer
    order is checked against real Keras 2 files in test_weights_io_h5.py.
    """
    preset = KERAS_PRESETS[name]
    shape = (75, 75, 3) if preset.model.startswith("inception") else (64, 64, 3)
    theirs = build_uninitialised(getattr(keras.applications, KERAS_APPS[preset.model]), weights=None, include_top=False,
                                 input_shape=shape)
    heal_keras(theirs, np.random.default_rng(1).uniform(0, 255, (8,) + shape))
    layers = weighted_layers(theirs)
    # Keras 3 renamed tf.keras' layers to ours: the hosted files keep the names the preset's layout gives
    stored = weights_io.get_layout(preset.layout).map_names([layer.name for layer in layers])
    source = WeightFile(tensors={stored.get(layer.name, layer.name): {v.name: keras.ops.convert_to_numpy(v)
                                                                      for v in layer.weights}
                                 for layer in layers}, convention="keras", format="keras-h5")
    ours = build_uninitialised(kerasnets.build, preset.model, include_top=False, input_shape=shape,
                               **preset.options)  # the file gives every value
    presets.check_architecture(ours, preset)
    assert presets.convert_weight_file_into(ours, preset, source).ok
    x = np.random.default_rng(0).uniform(0, 255, (2,) + shape).astype("float32")
    assert_parity(infer(ours, x), infer(theirs, x), what=name)
    keras.backend.clear_session()


def test_train_from_a_preset_gets_its_weights_options_and_preprocessing(tmp_path, monkeypatch):
    """`kerasnets train --weights <preset>`: build_classifier builds the preset and puts a new head on it."""
    from training.folder import build_classifier

    name = "mobilenet_v3_small.keras"
    source = _randomized(kerasnets.build("mobilenet_v3_small", **presets.get_preset(name).options), seed=3)
    path = tmp_path / presets.get_preset(name).file_name
    _write_keras2_h5(path, source, presets.get_preset(name).layout)
    _fake_preset(monkeypatch, base=name, hash={"algorithm": "md5", "value": hashlib.md5(path.read_bytes()).hexdigest()})
    monkeypatch.setenv("KERASNETS_WEIGHTS_DIR", str(tmp_path))
    model, net, _ = build_classifier("mobilenet_v3_small", classes=3, image_size=96, weights=name, verbose=0)
    assert net.output_shape == (None, 3)
    assert model.get_layer("preprocess").mode == presets.get_preset(name).preprocessing["mode"]
    for layer_name in ("conv", "expanded_conv_project"):
        np.testing.assert_array_equal(net.get_layer(layer_name).get_weights()[0],
                                      source.get_layer(layer_name).get_weights()[0])


def test_predict_with_a_preset_applies_its_preprocessing_and_class_names(tmp_path, monkeypatch, capsys):
    """`kerasnets predict --weights <preset>`: the printed top-k equals a hand computation of the preset's recipe
    (shorter side to `resize` with its interpolation, centre `crop`, torch mean/std) with ImageNet names."""
    from PIL import Image
    from skimage import data

    from training import cli
    from kerasnets.imagenet import class_names, imagenet_synsets
    from weights_io import save_torch_state_dict

    source = _randomized(kerasnets.build_resnet18(), seed=5)
    head = source.get_layer("predictions")
    head.kernel.assign(head.kernel * 40.0)  # peaked probabilities: the comparison sees small input differences
    written = tmp_path / "resnet18.pth"
    save_torch_state_dict(source, written, layout="torchvision-resnet")
    prefix = hashlib.sha256(written.read_bytes()).hexdigest()[:8]
    written.rename(tmp_path / f"resnet18-{prefix}.pth")
    preset = _fake_preset(monkeypatch, base="resnet18.torchvision_v1", name="t.predict",
                          file_name=f"resnet18-{prefix}.pth", hash={"algorithm": "sha256-prefix", "value": prefix})
    monkeypatch.setenv("KERASNETS_WEIGHTS_DIR", str(tmp_path))
    monkeypatch.setenv("KERASNETS_OFFLINE", "1")
    image_path = tmp_path / "coffee.jpg"
    Image.fromarray(data.coffee()).save(image_path)

    assert cli.main(["predict", "--weights", preset.name, "--image", str(image_path), "--top-k", "3"]) == 0
    rows = [line.split("\t") for line in capsys.readouterr().out.splitlines() if line.startswith(str(image_path))]

    recipe = preset.preprocessing
    assert (recipe["resize"], recipe["crop"], recipe["interpolation"]) == (256, 224, "bilinear")

    def by_hand(resample):
        with Image.open(image_path) as img:
            scale = 256 / min(img.size)
            img = img.resize((round(img.width * scale), round(img.height * scale)), resample)
            left, top = (img.width - 224) // 2, (img.height - 224) // 2
            return np.asarray(img.crop((left, top, left + 224, top + 224)), np.float32)[None]

    pixels = by_hand(Image.BILINEAR)
    from kerasnets.imagenet import load_image

    np.testing.assert_array_equal(load_image(image_path, preset.name), pixels)  # what predict feeds the model
    assert not np.array_equal(by_hand(Image.BICUBIC), pixels)  # so the interpolation really is checked
    x = (pixels / 255.0 - np.array(recipe["mean"], np.float32)) / np.array(recipe["std"], np.float32)
    probabilities = infer(source, x)[0]
    top = np.argsort(-probabilities)[:3]
    names = class_names()  # torchvision's names by index; predict prints keras' (wnid, name)
    assert [r[1] for r in rows] == [imagenet_synsets()[i][0] for i in top]
    assert [r[2] for r in rows] == [names[i].replace(" ", "_") for i in top]
    np.testing.assert_allclose([float(r[3]) for r in rows], probabilities[top], atol=2e-4)
