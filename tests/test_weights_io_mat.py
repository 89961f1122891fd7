"""MatConvNet .mat reader: Octave-written SimpleNN/DagNN (v5/v7), hdf5storage-written v7.3, a real file.

The fixtures in tests/data were written by tests/data/make_mat_fixtures.m (GNU
Octave) and make_mat73_fixtures.py (hdf5storage); every array there is
``0.5 * sin((1:n) + phase)`` in MATLAB's column-major order, recomputed here
with numpy, so expectations do not come from the reader under test.
"""

from __future__ import annotations

import pathlib
import shutil
import subprocess

import keras
import numpy as np
import pytest

from tests.conftest import assert_close
from tests.references import assert_parity, infer
from weights_io import (
    WeightFileError, WeightMismatchError, load_mat_weights, load_weights, read_weights,
)

DATA = pathlib.Path(__file__).parent / "data"


def wave(shape, phase):
    """The Octave script's wave(): sin of 1..n laid out column-major."""
    n = int(np.prod(shape))
    return np.float32(0.5 * np.sin(np.arange(1, n + 1) + phase)).reshape(shape, order="F")


# ----------------------------------------------------------------- numpy refs
def conv(x, w, b, pad):
    """Cross-correlation as vl_nnconv computes it: x (H, W, C), w (kh, kw, C, K)."""
    x = np.pad(x, ((pad, pad), (pad, pad), (0, 0)))
    kh, kw = w.shape[:2]
    h, wd = x.shape[0] - kh + 1, x.shape[1] - kw + 1
    out = np.zeros((h, wd, w.shape[3]))
    for u in range(kh):
        for v in range(kw):
            out += x[u:u + h, v:v + wd, :] @ w[u, v]
    return out + b


def maxpool(x):
    h, w, c = x.shape
    return x[: h // 2 * 2, : w // 2 * 2].reshape(h // 2, 2, w // 2, 2, c).max(axis=(1, 3))


def relu(x):
    return np.maximum(x, 0)


def tiny_vgg_reference(x):
    y = maxpool(relu(conv(x, wave((3, 3, 3, 4), 1), wave((4,), 101), 1)))
    y = maxpool(relu(conv(y, wave((3, 3, 4, 6), 2), wave((6,), 102), 1)))
    y = relu(conv(y, wave((2, 2, 6, 5), 3), wave((5,), 103), 0))
    y = relu(conv(y, wave((1, 1, 5, 5), 4), wave((5,), 104), 0))
    logits = conv(y, wave((1, 1, 5, 3), 5), wave((3,), 105), 0).ravel()
    e = np.exp(logits - logits.max())
    return e / e.sum()


def tiny_vgg():
    """A VGG-shaped net in our (keras.applications) naming: maps to conv1_1.. fc8 via tensorflow-vgg."""
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="block1_conv1")(inputs)
    x = keras.layers.MaxPooling2D(2, name="block1_pool")(x)
    x = keras.layers.Conv2D(6, 3, padding="same", activation="relu", name="block2_conv1")(x)
    x = keras.layers.MaxPooling2D(2, name="block2_pool")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    x = keras.layers.Dense(5, activation="relu", name="fc1")(x)
    x = keras.layers.Dense(5, activation="relu", name="fc2")(x)
    outputs = keras.layers.Dense(3, activation="softmax", name="predictions")(x)
    return keras.Model(inputs, outputs)


# ---------------------------------------------------------------------- tests
@pytest.mark.parametrize("name", ["simplenn_old_v5.mat", "simplenn_net_v7.mat", "simplenn_net_v73.mat"])
def test_simplenn_arrays_metadata_and_vgg_parity(name):
    weights = read_weights(DATA / name)
    assert weights.convention == "matconvnet"
    assert weights.format == ("mat-v73" if "v73" in name else "mat")
    assert list(weights.tensors) == ["conv1_1", "conv2_1", "fc6", "fc7", "fc8"]
    np.testing.assert_allclose(weights.tensors["conv2_1"]["weights"], wave((3, 3, 4, 6), 2), rtol=1e-6)
    assert weights.tensors["conv1_1"]["biases"].shape == (4,)  # saved as a (4, 1) column, raveled
    assert weights.metadata["classes"] == ["cat", "dog", "fox"]
    np.testing.assert_allclose(np.ravel(weights.metadata["normalization"]["averageImage"]),
                               [123.68, 116.779, 103.939], rtol=1e-6)
    assert ("prob", "softmax") in weights.metadata["architecture"]

    model = tiny_vgg()
    report = load_mat_weights(model, DATA / name)
    assert report.layout == "tensorflow-vgg" and report.ok and len(report.loaded) == 10
    x = np.random.default_rng(0).uniform(-1, 1, (2, 8, 8, 3)).astype("float32")
    assert_parity(infer(model, x), [tiny_vgg_reference(image.astype(np.float64)) for image in x])


def test_asymmetric_kernel_on_impulse_has_no_spatial_transpose():
    weights = read_weights(DATA / "impulse_v5.mat")
    assert weights.tensors["conv1"]["weights"].shape == (3, 3)  # MATLAB dropped both trailing 1s
    inputs = keras.Input((5, 5, 1))
    model = keras.Model(inputs, keras.layers.Conv2D(1, 3, padding="same", name="conv1")(inputs))
    assert load_mat_weights(model, DATA / "impulse_v5.mat", source="keras").ok
    impulse = np.zeros((1, 5, 5, 1), np.float32)
    impulse[0, 2, 2, 0] = 1
    out = infer(model, impulse)[0, :, :, 0]
    # The Octave literal [1 2 3; 4 5 6; 7 8 9] (rows = H) seen through a correlation: flipped.
    expected = np.array([[9, 8, 7], [6, 5, 4], [3, 2, 1]], np.float32)
    np.testing.assert_array_equal(out[1:4, 1:4], expected)
    assert out[1, 2] == 8 and out[2, 1] == 6  # a transposed kernel would give 6 and 8


@pytest.mark.parametrize("name", ["dagnn_v7.mat", "dagnn_v73.mat"])
def test_dagnn_params_by_name_and_bnorm_moments(name):
    weights = read_weights(DATA / name)
    assert weights.metadata["network"] == "dagnn"
    assert set(weights.tensors) == {"conv1", "bn1", "fc"}
    np.testing.assert_allclose(weights.tensors["bn1"]["moments"][:, 1], 1 + np.abs(wave((4,), 40)), rtol=1e-6)

    inputs = keras.Input((4, 4, 2))
    x = keras.layers.Conv2D(4, 3, padding="same", name="conv1")(inputs)
    x = keras.layers.BatchNormalization(epsilon=1e-4, name="bn1")(x)
    x = keras.layers.ReLU(name="relu1")(x)
    x = keras.layers.Flatten()(x)
    model = keras.Model(inputs, keras.layers.Dense(3, name="fc")(x))
    report = load_mat_weights(model, DATA / name)
    assert report.layout == "keras" and report.ok

    x = np.random.default_rng(1).normal(size=(4, 4, 2))
    y = conv(x, wave((3, 3, 2, 4), 10), wave((4,), 11), 1)
    mean, std = wave((4,), 30), 1 + np.abs(wave((4,), 40))  # moments = [mean, sqrt(var + eps)]
    y = relu((1 + wave((4,), 20)) * (y - mean) / std + wave((4,), 21))
    expected = conv(y, wave((4, 4, 4, 3), 50), wave((3,), 60), 0).ravel()
    assert_close(infer(model, x[None].astype("float32"))[0], expected)


def test_v73_equals_v7_array_for_array():
    for stem in ("simplenn_net", "dagnn"):
        v7, v73 = read_weights(DATA / f"{stem}_v7.mat").flat(), read_weights(DATA / f"{stem}_v73.mat").flat()
        assert v7.keys() == v73.keys()
        for key in v7:
            np.testing.assert_array_equal(v7[key], v73[key], err_msg=key)


def test_real_struct_array_file(fixtures_dir):
    weights = read_weights(fixtures_dir / "mat" / "iter1_weights.mat")
    assert weights.metadata["network"] == "struct"
    assert list(weights.tensors) == [f"weights_{i}" for i in range(1, 7)]
    first = weights.tensors["weights_1"]
    assert first["weights"].shape == (5, 5, 1, 64) and first["biases"].shape == (64,)
    assert all(np.isfinite(a).all() for a in weights.flat().values())
    # The 5x5 single-channel first layer loads into a conv by our name mapping.
    inputs = keras.Input((16, 16, 1))
    model = keras.Model(inputs, keras.layers.Conv2D(64, 5, name="weights_1")(inputs))
    report = load_weights(model, fixtures_dir / "mat" / "iter1_weights.mat", strict=False)
    assert [t for t, _, _ in report.loaded] == ["weights_1/kernel", "weights_1/bias"]
    np.testing.assert_array_equal(model.get_layer("weights_1").kernel.numpy(), first["weights"])


def test_wrong_family_and_mismatch_errors(tmp_path, fixtures_dir):
    with pytest.raises(WeightFileError, match="Expected a mat file"):
        load_mat_weights(tiny_vgg(), fixtures_dir / "pth" / "dncnn_25.pth")
    model = tiny_vgg()
    before = [w.numpy().copy() for w in model.weights]
    with pytest.raises(WeightMismatchError):
        load_mat_weights(model, DATA / "dagnn_v7.mat", source="tensorflow-vgg")
    assert all(np.array_equal(a, w.numpy()) for a, w in zip(before, model.weights))
    broken = tmp_path / "broken.mat"
    broken.write_bytes((DATA / "simplenn_net_v7.mat").read_bytes()[:300])
    with pytest.raises(WeightFileError, match="broken.mat"):
        read_weights(broken)


# ------------------------------------------- a full VGG16 SimpleNN written by Octave
# MatConvNet's imagenet-vgg-verydeep-16 layout (conv1_1 .. conv5_3, fc6 as a 7x7 conv,
# fc7/fc8 as 1x1 convs). numpy draws He-scaled weights and writes them as raw bytes in
# MATLAB's column-major order; GNU Octave reads them and saves the SimpleNN .mat (the
# 553 MB file is made at test time, not committed); build_vgg16 loads it and must give
# the logits of a float64 numpy forward pass over the same arrays.
VGG16_BLOCKS = ((64, 64), (128, 128), (256, 256, 256), (512, 512, 512), (512, 512, 512))
OCTAVE = shutil.which("octave")
VGG16_OCTAVE = r"""
1;
function A = read_raw(path, sz)
  fid = fopen(path, 'r', 'ieee-le');
  A = reshape(fread(fid, prod(sz), 'single=>single'), sz);
  fclose(fid);
end
specs = %(specs)s;
layers = {};
for i = 1:numel(specs)
  s = specs{i};
  sz = s{2};
  weights = {read_raw([s{1} '_W.bin'], sz), read_raw([s{1} '_b.bin'], [1 sz(4)])};
  layers{end+1} = struct('type', 'conv', 'name', s{1}, 'weights', {weights}, 'stride', [1 1], ...
                         'pad', s{3} * [1 1 1 1]);
  if ~strcmp(s{1}, 'fc8')
    layers{end+1} = struct('type', 'relu', 'name', ['relu' s{1}]);
  end
  if s{4}
    layers{end+1} = struct('type', 'pool', 'name', ['pool' s{1}], 'method', 'max', 'pool', [2 2], ...
                           'stride', [2 2], 'pad', [0 0 0 0]);
  end
end
layers{end+1} = struct('type', 'softmax', 'name', 'prob');
meta = struct('normalization', struct('averageImage', single([123.68 116.779 103.939]), 'imageSize', [224 224 3]));
save('-v6', 'vgg16_simplenn.mat', 'layers', 'meta');
"""


def _vgg16_specs():
    """(MatConvNet name, (kh, kw, cin, cout), pad, pool after) for every learnable layer."""
    specs, cin = [], 3
    for b, widths in enumerate(VGG16_BLOCKS, start=1):
        for c, width in enumerate(widths, start=1):
            specs.append((f"conv{b}_{c}", (3, 3, cin, width), 1, c == len(widths)))
            cin = width
    return specs + [("fc6", (7, 7, 512, 4096), 0, False), ("fc7", (1, 1, 4096, 4096), 0, False),
                    ("fc8", (1, 1, 4096, 1000), 0, False)]


@pytest.mark.slow
@pytest.mark.skipif(OCTAVE is None, reason="GNU Octave is not installed (Debian package 'octave')")
def test_octave_written_full_vgg16_simplenn_into_build_vgg16(tmp_path):
    from kerasnets import build_vgg16
    from tests.references import build_uninitialised, uniform_draws

    rng = np.random.default_rng(16)
    arrays = {}
    for name, shape, _, _ in _vgg16_specs():
        kernel = uniform_draws(rng, shape, np.sqrt(2 / np.prod(shape[:3])))  # 138M float32 values
        bias = uniform_draws(rng, shape[3], 0.1)
        kernel.ravel(order="F").astype("<f4", copy=False).tofile(tmp_path / f"{name}_W.bin")
        bias.astype("<f4").tofile(tmp_path / f"{name}_b.bin")
        arrays[name] = (kernel, bias)
    specs = "{" + ", ".join(f"{{'{n}', [{' '.join(map(str, s))}], {p}, {int(pool)}}}"
                            for n, s, p, pool in _vgg16_specs()) + "}"
    (tmp_path / "write_vgg16.m").write_text(VGG16_OCTAVE % {"specs": specs})
    subprocess.run([OCTAVE, "--no-gui", "--quiet", "write_vgg16.m"], check=True, cwd=tmp_path, timeout=600)

    model = build_uninitialised(build_vgg16, classifier_activation=None)  # the file gives every value
    report = load_mat_weights(model, tmp_path / "vgg16_simplenn.mat")
    assert report.layout == "tensorflow-vgg" and report.ok and len(report.loaded) == 32
    x = np.random.default_rng(0).uniform(-1, 1, (224, 224, 3))
    y = x
    for name, _, pad, pool in _vgg16_specs():
        kernel, bias = arrays[name]
        y = conv(y, kernel.astype(np.float64), bias, pad)
        y = y if name == "fc8" else relu(y)
        y = maxpool(y) if pool else y
    assert np.abs(y).max() > 1 and (y > 0).mean() > 0.2  # the signal survives 16 layers
    assert_close(infer(model, x[None].astype("float32"))[0], y.ravel())


def _forge_data_type(data, start):
    """`data` with its array's data tag (miSINGLE, 72 values) typed 180: no such MATLAB type."""
    import struct

    at = data.index(struct.pack("<II", 7, 72 * 4), start)  # miSINGLE, 72 values: the array's data tag
    return data[:at] + struct.pack("<I", 180) + data[at + 4:]


@pytest.mark.parametrize("compressed", [False, True])
def test_forged_element_types_are_refused(tmp_path, compressed):
    import struct
    import sys
    import zlib

    import scipy.io

    from weights_io import WeightFileError, read_weights

    path = tmp_path / "w.mat"
    scipy.io.savemat(path, {"weights": np.arange(72, dtype=np.float32).reshape(3, 3, 2, 4)},
                     do_compression=compressed)
    data = path.read_bytes()
    if compressed:  # forge inside the zlib stream, then pack it again
        size = struct.unpack("<I", data[132:136])[0]
        inner = _forge_data_type(zlib.decompress(data[136:136 + size]), 0)
        packed = zlib.compress(inner)
        data = data[:128] + struct.pack("<II", 15, len(packed)) + packed
    else:
        data = _forge_data_type(data, 128)
    path.write_bytes(data)
    with pytest.raises(WeightFileError, match="Unknown MATLAB data type 180"):
        read_weights(path)
    # Why the walker checks every type: scipy's C reader indexes a table by that number
    # (it crashed on such files). Run it in a child so a crash cannot take the test down.
    child = subprocess.run([sys.executable, "-c", f"import scipy.io; scipy.io.loadmat({str(path)!r})"],
                           capture_output=True, timeout=120)
    assert child.returncode != 0  # scipy does not read it either (crash or exception)
