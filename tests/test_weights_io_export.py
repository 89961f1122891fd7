"""Export and convert: our writers round-trip through our readers, and convert() writes usable files."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from kerasnets import build_alexnet, build_vgg11
from kerasnets.convert import convert
from tests.conftest import randomize_bn_statistics
from weights_io import (
    WeightMismatchError, load_npy_weights, load_torch_weights, read_weights, save_npy_weights,
    save_torch_state_dict,
)


def same_weights(a, b):
    return all(np.array_equal(x.numpy(), y.numpy()) for x, y in zip(a.weights, b.weights))


@pytest.mark.parametrize("style", ["tensorflow-vgg", "caffe-tensorflow"])
def test_npy_round_trip(tmp_path, style):
    model = build_vgg11(include_top=False, input_shape=(32, 32, 3))
    path = tmp_path / "vgg11.npy"
    save_npy_weights(model, path, layout="tensorflow-vgg", style=style)
    raw = read_weights(path)
    assert raw.tensors["conv1_1"]["weights"].shape == (3, 3, 3, 64)
    clone = build_vgg11(include_top=False, input_shape=(32, 32, 3))
    report = load_npy_weights(clone, path)
    assert report.layout == "tensorflow-vgg" and report.ok and same_weights(model, clone)


def test_npy_written_without_code(tmp_path):
    """The written pickle names numpy reconstruction globals only (our restricted reader accepts it)."""
    import pickletools

    model = build_vgg11(include_top=False, input_shape=(32, 32, 3))
    path = tmp_path / "w.npy"
    save_npy_weights(model, path)
    data = path.read_bytes()
    start = data.index(b"\n", 10) + 1
    globals_ = {arg for op, arg, _ in pickletools.genops(data[start:]) if op.name in ("GLOBAL", "STACK_GLOBAL")}
    assert all(str(g).startswith("numpy") for g in globals_ if g), globals_


def test_bn_model_torch_round_trip(tmp_path):
    inputs = keras.Input((6, 6, 3))
    x = keras.layers.Conv2D(4, 3, name="conv1_conv")(inputs)
    x = keras.layers.BatchNormalization(name="conv1_bn")(x)
    x = keras.layers.DepthwiseConv2D(3, depth_multiplier=2, name="dw")(x)
    x = keras.layers.Flatten()(x)
    model = keras.Model(inputs, keras.layers.Dense(5, name="predictions")(x))
    randomize_bn_statistics(model)
    path = tmp_path / "m.pth"
    written = save_torch_state_dict(model, path, layout="keras").flat()
    assert written["conv1_conv.weight"].shape == (4, 3, 3, 3)
    assert written["dw.weight"].shape == (8, 1, 3, 3)
    assert written["predictions.weight"].shape == (5, 8 * 2 * 2)
    assert written["conv1_bn.num_batches_tracked"].shape == ()
    clone = keras.models.clone_model(model)
    report = load_torch_weights(clone, path, source="keras")
    assert report.ok and same_weights(model, clone)


def test_strict_false_keeps_a_new_head_and_strict_is_all_or_nothing(tmp_path):
    source = build_alexnet(classes=10)
    path = tmp_path / "alexnet.pth"
    save_torch_state_dict(source, path, layout="torchvision-alexnet")
    target = build_alexnet(classes=5)
    before = [v.numpy().copy() for v in target.weights]
    with pytest.raises(WeightMismatchError, match="predictions"):
        load_torch_weights(target, path)
    assert all(np.array_equal(a, v.numpy()) for a, v in zip(before, target.weights))
    report = load_torch_weights(target, path, strict=False)
    assert {t for t, *_ in report.mismatched} == {"predictions/kernel", "predictions/bias"}
    assert len(report.loaded) == 14 and not report.missing and not report.unexpected
    head = target.get_layer("predictions")
    np.testing.assert_array_equal(head.kernel.numpy(), before[-2])
    np.testing.assert_array_equal(target.get_layer("fc7").kernel.numpy(), source.get_layer("fc7").kernel.numpy())
    text = str(report)
    assert "mis-shaped: predictions/kernel" in text and "applied" in text


@pytest.mark.parametrize("dst", ["out.weights.h5", "out.keras", "out.pth"])
def test_convert(tmp_path, dst):
    source = build_vgg11(include_top=False, input_shape=(32, 32, 3))
    src = tmp_path / "src.npy"
    save_npy_weights(source, src)
    options = {"to_layout": "torchvision-vgg"} if dst.endswith(".pth") else {}
    report = convert("vgg11", src, tmp_path / dst, include_top=False, input_shape=(32, 32, 3), **options)
    assert report.ok and report.layout == "tensorflow-vgg"
    clone = build_vgg11(include_top=False, input_shape=(32, 32, 3))
    if dst.endswith(".pth"):
        load_torch_weights(clone, tmp_path / dst)
    elif dst.endswith(".keras"):
        clone = keras.models.load_model(tmp_path / dst)
    else:
        clone.load_weights(tmp_path / dst)
    assert same_weights(source, clone)


def test_convert_bad_destination(tmp_path):
    with pytest.raises(ValueError, match="dst must end"):
        convert("vgg11", tmp_path / "x.npy", tmp_path / "y.txt")
    with pytest.raises(ValueError, match="to_layout"):
        convert("vgg11", tmp_path / "x.npy", tmp_path / "y.pth")


def test_convert_cli_draws_progress_up_to_the_file_size(tmp_path, capsys):
    from training import cli

    source = build_vgg11(include_top=False, input_shape=(32, 32, 3))
    src = tmp_path / "src.npy"
    save_npy_weights(source, src)
    weight_bytes = sum(np.asarray(w).nbytes for w in source.get_weights())
    args = ["convert", "--arch", "vgg11", "--from", str(src), "--to", str(tmp_path / "out.weights.h5"),
            "--option", "include_top=False", "--option", "input_shape=(32,32,3)"]
    assert cli.main(args + ["--progress"]) == 0
    frames = [line for line in capsys.readouterr().err.replace("\r", "\n").splitlines() if "loading weights" in line]
    assert len(frames) == 16  # one per assigned array: 8 convolutions x (kernel, bias)
    done = [float(f.split(":")[1].split("/")[0]) for f in frames]
    assert done == sorted(done) and frames[-1].endswith("(100%)")
    assert abs(done[-1] - weight_bytes / 2**20) < 0.1
    assert cli.main(args + ["--quiet"]) == 0
    assert "loading weights" not in capsys.readouterr().err
