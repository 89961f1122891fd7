"""The safetensors reader and writer, against the format's own implementation (`safetensors.numpy`).

Files written by `safetensors.numpy.save_file` read array by array as
`safetensors.numpy.load_file` reads them (float32/16, bfloat16, integers,
bool, 0-d, empty), `__metadata__` as `safe_open(...).metadata()`, through the
reader process and in this one, copied or memory-mapped (read-only views of
the file). The format is told by the bytes, not the name. Malformed files
(those the package refuses, and a few more) raise `WeightFileError` naming the
file. Our writer's files read back with `load_file` and load into a model.
"""

from __future__ import annotations

import struct

import ml_dtypes
import numpy as np
import pytest

safetensors = pytest.importorskip("safetensors")
import safetensors.numpy as st_numpy  # noqa: E402

import kerasnets  # noqa: E402
from tests.fuzz.corpus import safetensors_hostile  # noqa: E402
from weights_io import (  # noqa: E402
    WeightFileError, detect_format, export_weights, get_layout, load_weights, read_weights,
    save_safetensors,
)
from weights_io.writers import write_safetensors  # noqa: E402


def _arrays():
    rng = np.random.default_rng(0)
    return {
        "conv1.weight": rng.normal(size=(8, 3, 3, 3)).astype("float32"),
        "conv1.bias": rng.normal(size=(8,)).astype("float16"),
        "bn1.running_mean": rng.normal(size=(8,)).astype(ml_dtypes.bfloat16),
        "bn1.num_batches_tracked": np.array(7, "int64"),
        "fc.weight": rng.normal(size=(5, 8)).astype("float64"),
        "mask.values": rng.random(6) > 0.5,
        "ids.values": np.arange(-3, 3, dtype="int8"),
        "empty.weight": np.zeros((0, 4), "float32"),
    }


METADATA = {"format": "pt", "source": "kerasnets test"}


@pytest.fixture(scope="module")
def package_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("st") / "model.safetensors"
    st_numpy.save_file(_arrays(), str(path), metadata=METADATA)
    return path


@pytest.mark.parametrize("mmap", [False, True])
@pytest.mark.parametrize("trusted", [False, True])
def test_reads_what_the_package_reads(package_file, mmap, trusted):
    expected = st_numpy.load_file(str(package_file))
    with safetensors.safe_open(str(package_file), "numpy") as f:
        metadata = f.metadata()
    result = read_weights(package_file, mmap=mmap, trusted=trusted)
    assert result.format == "safetensors" and result.convention == "torch"
    assert result.metadata == metadata == METADATA
    flat = result.flat()
    assert sorted(flat) == sorted(expected)
    for key, array in expected.items():
        assert flat[key].dtype == array.dtype, key
        assert flat[key].shape == array.shape, key
        assert flat[key].tobytes() == array.tobytes(), key  # bit for bit (bfloat16 included)
    assert flat["bn1.running_mean"].dtype == np.dtype(ml_dtypes.bfloat16)
    if mmap:  # views of the mapped file: nothing copied before the assign, nothing writable
        assert not any(a.flags.writeable for a in flat.values() if a.size)


def test_bfloat16_and_float16_load_into_float32_variables(tmp_path):
    """A bf16 / f16 file (as many hub checkpoints are) loads: values cast once into the float32 variables."""
    model = kerasnets.build("lenet5", classifier_activation=None)
    exported = export_weights(model, get_layout("keras"), "torch").flat()
    half = {key: (a.astype(ml_dtypes.bfloat16) if i % 2 else a.astype("float16")) for i, (key, a) in
            enumerate(exported.items())}
    path = tmp_path / "half.safetensors"
    st_numpy.save_file(half, str(path))
    fresh = kerasnets.build("lenet5", classifier_activation=None)
    report = load_weights(fresh, path, source="keras")
    assert report.ok and report.applied
    reloaded = export_weights(fresh, get_layout("keras"), "torch").flat()
    for key, array in half.items():
        np.testing.assert_array_equal(reloaded[key], array.astype("float32"))


def test_detected_from_bytes_not_name(package_file, tmp_path):
    for name in ("weights.pth", "weights.npy", "weights"):
        renamed = tmp_path / name
        renamed.write_bytes(package_file.read_bytes())
        assert detect_format(renamed) == "safetensors"
        assert read_weights(renamed).format == "safetensors"


HOSTILE = safetensors_hostile()
# The package accepts a repeated name (the last one wins); we refuse it, as one weight would silently vanish.
PACKAGE_ACCEPTS = ("duplicate names",)


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_malformed_files_raise_weight_file_error(case, tmp_path):
    path = tmp_path / "hostile.safetensors"
    path.write_bytes(HOSTILE[case])
    if case not in PACKAGE_ACCEPTS:  # the format's own implementation refuses it too
        with pytest.raises(Exception):  # noqa: B017 - SafetensorError, or a parsing error of its own
            with safetensors.safe_open(str(path), "numpy") as f:
                [f.get_tensor(k) for k in f.keys()]
    for trusted in (False, True):  # through the reader process, and in this one
        with pytest.raises(WeightFileError) as error:
            read_weights(path, format="safetensors", trusted=trusted)
        assert str(path) in str(error.value)


def test_truncated_file_is_still_detected(package_file, tmp_path):
    """A download cut short is called safetensors and refused with what is missing."""
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(package_file.read_bytes()[:200])
    assert detect_format(cut) == "safetensors"
    with pytest.raises(WeightFileError, match="safetensors"):
        read_weights(cut)


def test_writer_round_trip(tmp_path):
    """Our writer's file: the package reads our export bit for bit, and it loads back into a fresh model."""
    model = kerasnets.build("resnet18", input_shape=(32, 32, 3), classes=5)
    rng = np.random.default_rng(2)
    model.set_weights([rng.normal(size=w.shape).astype(w.dtype) for w in model.get_weights()])
    path = tmp_path / "resnet18.safetensors"
    written = save_safetensors(model, path, "torchvision-resnet")
    expected = export_weights(model, get_layout("torchvision-resnet"), "torch").flat()
    loaded = st_numpy.load_file(str(path))
    assert sorted(loaded) == sorted(expected) == sorted(written.flat())
    for key, array in expected.items():
        assert loaded[key].dtype == array.dtype and loaded[key].shape == array.shape, key
        np.testing.assert_array_equal(loaded[key], array)
    with safetensors.safe_open(str(path), "numpy") as f:
        assert f.metadata() == {"format": "pt"}
    fresh = kerasnets.build("resnet18", input_shape=(32, 32, 3), classes=5)
    report = load_weights(fresh, path)
    assert report.layout == "torchvision-resnet" and report.ok
    for a, b in zip(model.get_weights(), fresh.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_writer_dtypes_and_publisher_shapes(tmp_path):
    """bfloat16 and int64 arrays and metadata as written; timm's VGG fc6 leaves as a 7x7 conv."""
    path = tmp_path / "raw.safetensors"
    arrays = {"a.w": np.arange(6, dtype="float32").astype(ml_dtypes.bfloat16).reshape(2, 3),
              "a.n": np.array(3, "int64")}
    write_safetensors(arrays, path, {"note": "x"})
    loaded = st_numpy.load_file(str(path))
    for key, array in arrays.items():
        assert loaded[key].dtype == array.dtype
        np.testing.assert_array_equal(loaded[key], array)
    assert (8 + struct.unpack("<Q", path.read_bytes()[:8])[0]) % 8 == 0  # data 8-byte aligned
    assert read_weights(path).metadata == {"note": "x"}

    shape = get_layout("timm-vgg").source_shape
    assert shape("pre_logits.fc1.weight", np.zeros((4096, 25088))) == (4096, 512, 7, 7)
    assert shape("pre_logits.fc2.weight", np.zeros((4096, 4096))) == (4096, 4096, 1, 1)
    assert shape("head.fc.weight", np.zeros((10, 4096, 1, 1))) == (10, 4096)
    assert get_layout("timm-mobilenet-v3").source_shape("classifier.weight", np.zeros((10, 1280, 1, 1))) == (10, 1280)


def test_timm_layouts_detected():
    """`detect_layout` picks each timm layout from timm's key names (written out here from timm 1.0)."""
    from weights_io import WeightFile, detect_layout
    from weights_io.assign import weighted_layers

    cases = [
        ("mobilenet_v3_small", dict(padding="torch", include_preprocessing=False, bn_epsilon=1e-5,
                                    input_shape=(64, 64, 3)),
         ["conv_stem", "bn1", "blocks.0.0.conv_dw", "blocks.0.0.se.conv_reduce", "blocks.1.0.conv_pw",
          "blocks.1.0.conv_pwl", "blocks.5.0.conv", "conv_head", "classifier"], "timm-mobilenet-v3"),
        ("vgg11", dict(), ["features.0", "features.3", "features.6", "features.8", "pre_logits.fc1",
                           "pre_logits.fc2", "head.fc"], "timm-vgg"),
    ]
    for name, options, keys, layout in cases:
        model = kerasnets.registry.build_for_shapes(name, **options)  # layer names only
        names = [layer.name for layer in weighted_layers(model)]
        file = WeightFile(tensors={k: {"weight": np.zeros(1)} for k in keys}, convention="torch", format="safetensors")
        assert detect_layout(names, file).name == layout
