"""Torch reader without torch: real legacy fixtures, hand-built legacy files, our own zip files."""

from __future__ import annotations

import hashlib
import zipfile

import keras
import numpy as np
import pytest

from tests.conftest import assert_close
from tests.torch_files import example, legacy_bytes, state_dict_pickle
from tests.references import infer
from weights_io import (
    WeightFileError, detect_format, load_torch_weights, read_weights, save_torch_state_dict,
)
from weights_io.writers import write_torch_state_dict


def sha256(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_dncnn_legacy_fixture(fixtures_dir):
    path = fixtures_dir / "pth" / "dncnn_25.pth"
    assert sha256(path).startswith("0451a70d")
    assert detect_format(path) == "torch-legacy"
    weights = read_weights(path)
    assert weights.convention == "torch" and weights.format == "torch-legacy"
    flat = weights.flat()
    # DnCNN-S: 17 convs, 1 -> 64 -> ... -> 64 -> 1 channels, 3x3, with biases
    assert len(weights.tensors) == 17 and len(flat) == 34
    assert flat["model.0.weight"].shape == (64, 1, 3, 3) and flat["model.0.weight"].dtype == np.float32
    last = max(weights.tensors, key=lambda k: int(k.split(".")[1]))
    assert flat[f"{last}.weight"].shape == (1, 64, 3, 3)
    assert all(np.isfinite(a).all() and a.std() > 0 for k, a in flat.items() if k.endswith("weight"))


def test_resnet20_wrapped_prefixed_old_rebuild(fixtures_dir):
    path = fixtures_dir / "pth" / "resnet20-12fca82f.th"
    assert sha256(path).startswith("12fca82f")
    weights = read_weights(path)
    flat = weights.flat()
    assert not any(k.startswith("module.") for k in flat)  # DataParallel prefix stripped
    assert abs(weights.metadata["best_prec1"] - 91.78) < 0.01  # wrapper's other entries kept as metadata
    assert flat["conv1.weight"].shape == (16, 3, 3, 3)
    assert flat["layer3.2.conv2.weight"].shape == (64, 64, 3, 3)
    assert flat["linear.weight"].shape == (10, 64)
    assert "bn1.num_batches_tracked" not in flat
    assert (flat["bn1.running_var"] > 0).all()
    # 3 stages x 3 basic blocks x 2 conv/bn + stem + linear = 0.27M params
    params = sum(a.size for k, a in flat.items() if not k.endswith(("running_mean", "running_var")))
    assert params == 269_722


@pytest.mark.parametrize("little_endian", [True, False])
@pytest.mark.parametrize("rebuild", ["_rebuild_tensor_v2", "_rebuild_tensor"])
def test_hand_built_legacy_views_dtypes_endianness(tmp_path, little_endian, rebuild):
    tensors, storages, expected = example()
    path = tmp_path / "legacy.pth"
    path.write_bytes(legacy_bytes(tensors, storages, little_endian=little_endian, rebuild=rebuild))
    flat = read_weights(path).flat()
    assert flat.keys() == expected.keys()
    for key, value in expected.items():
        assert flat[key].dtype == value.dtype.newbyteorder("="), key
        np.testing.assert_array_equal(flat[key], value, err_msg=key)


@pytest.mark.parametrize("wrapper", ["state_dict", "model"])
def test_wrappers(tmp_path, wrapper):
    tensors, storages, expected = example()
    path = tmp_path / "wrapped.pth"
    path.write_bytes(legacy_bytes(tensors, storages, wrapper=wrapper))
    weights = read_weights(path)
    assert weights.flat().keys() == expected.keys() and weights.metadata["epoch"] == 3


def test_zip_written_by_us_and_recompressed(tmp_path):
    rng = np.random.default_rng(0)
    flat = {"a.weight": rng.normal(size=(4, 3, 2, 2)).astype(np.float32), "a.bias": np.arange(4.0),
            "b.steps": np.array(7, np.int64), "c.half": rng.normal(size=5).astype(np.float16)}
    path = tmp_path / "ours.pth"
    write_torch_state_dict(flat, path)
    assert detect_format(path) == "torch-zip"
    got = read_weights(path).flat()
    for key, value in flat.items():
        assert got[key].dtype == value.dtype and np.array_equal(got[key], value), key
    with zipfile.ZipFile(path) as src:
        offsets = [i.header_offset + 30 + len(i.filename) + len(i.extra) for i in src.infolist()
                   if "/data/" in i.filename]
        assert all(o % 64 == 0 for o in offsets)  # storages aligned for memory-mapping
        deflated = tmp_path / "deflated.pth"
        with zipfile.ZipFile(deflated, "w", zipfile.ZIP_DEFLATED) as dst:
            for info in src.infolist():
                dst.writestr(info.filename, src.read(info))
    got = read_weights(deflated).flat()
    assert all(np.array_equal(got[k], v) for k, v in flat.items())


def test_export_reimport_through_layout(tmp_path):
    from kerasnets import build_vgg11

    model = build_vgg11(include_top=False, input_shape=(32, 32, 3))
    path = tmp_path / "vgg11.pth"
    exported = save_torch_state_dict(model, path, layout="torchvision-vgg")
    assert exported.flat()["features.0.weight"].shape == (64, 3, 3, 3)  # OIHW
    clone = build_vgg11(include_top=False, input_shape=(32, 32, 3))
    report = load_torch_weights(clone, path)
    assert report.layout == "torchvision-vgg" and report.ok and len(report.loaded) == 16
    for a, b in zip(model.weights, clone.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_legacy_model_loads_and_matches_numpy(tmp_path):
    """A hand-built legacy file: OIHW conv + (out, in) Linear over a CHW flatten, checked with numpy."""
    rng = np.random.default_rng(3)
    w_conv = rng.normal(size=(4, 2, 3, 3)).astype(np.float32)  # OIHW
    w_fc = rng.normal(size=(5, 4 * 3 * 3)).astype(np.float32)  # (out, C*H*W)
    storages = {"0": w_conv.ravel(), "1": w_fc.ravel(), "2": np.zeros(5, np.float32), "3": np.zeros(4, np.float32)}
    tensors = {"conv.weight": ("0", 0, w_conv.shape, (18, 9, 3, 1)), "conv.bias": ("3", 0, (4,), (1,)),
               "fc.weight": ("1", 0, w_fc.shape, (36, 1)), "fc.bias": ("2", 0, (5,), (1,))}
    path = tmp_path / "tiny.pt"
    path.write_bytes(legacy_bytes(tensors, storages))
    inputs = keras.Input((5, 5, 2))
    x = keras.layers.Conv2D(4, 3, name="conv")(inputs)
    x = keras.layers.Flatten()(x)
    model = keras.Model(inputs, keras.layers.Dense(5, name="fc")(x))
    load_torch_weights(model, path, source="keras")
    image = rng.normal(size=(2, 5, 5)).astype(np.float32)  # CHW
    feature = np.zeros((4, 3, 3))
    for o in range(4):
        for i in range(3):
            for j in range(3):
                feature[o, i, j] = (w_conv[o] * image[:, i:i + 3, j:j + 3]).sum()
    expected = w_fc @ feature.ravel()  # torch flattens C, H, W
    assert_close(infer(model, image.transpose(1, 2, 0)[None])[0], expected)


def test_malformed_torch_files(tmp_path):
    tensors, storages, _ = example()
    good = legacy_bytes(tensors, storages)
    cases = {
        "empty.pth": b"",
        "magic.pth": b"\x80\x02K\x07.",  # a pickle, but not torch's magic number
        "shape.pth": legacy_bytes({"w": ("0", 20, (2, 3), (3, 1))}, {"0": storages["0"]}),  # runs past storage
        "absurd.pth": legacy_bytes({"w": ("0", 0, (2**30, 2**30), (0, 0))}, {"0": storages["0"]}),
        "short.pth": good[:-7],
    }
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
        with pytest.raises(WeightFileError, match=name):
            read_weights(tmp_path / name)
    # zip missing a storage, and a storage too small for its declared size
    path = tmp_path / "ok.pth"
    write_torch_state_dict({"a.weight": np.ones((3, 3), np.float32)}, path)
    for name, change in (("missing.pth", None), ("small.pth", b"\0" * 8)):
        with zipfile.ZipFile(path) as src, zipfile.ZipFile(tmp_path / name, "w") as dst:
            for info in src.infolist():
                if info.filename.endswith("data/0"):
                    if change is None:
                        continue
                    dst.writestr(info.filename, change)
                else:
                    dst.writestr(info.filename, src.read(info))
        with pytest.raises(WeightFileError, match="archive/data/0"):
            read_weights(tmp_path / name)
