"""`kerasnets.from_caffe` on the real V1 LeNet trained by Caffe, and on small nets written by tests/caffe_files.py.

The references are independent of the code under test: scikit-learn's digits with their labels, a numpy
forward pass of LeNet over the caffemodel's blobs in Caffe's own NCHW axes, and numpy transcriptions of
Caffe's LRN and Deconvolution formulas where OpenCV (tests/oracle/test_caffe_opencv.py) departs from Caffe.
"""

import numpy as np
import pytest

import keras
import kerasnets
from kerasnets.caffe import CaffeWeightMismatchError, from_caffe
from tests.caffe_files import Bare, layer, prototxt_text, write_net
from tests.references import infer
from training.cli import main as cli


@pytest.fixture(scope="module")
def lenet_files():
    from tests.conftest import VENDORED_FIXTURES

    folder = VENDORED_FIXTURES / "caffe"
    return folder / "lenet.prototxt", folder / "lenet_iter_10000.caffemodel"


def _digits_as_mnist():
    """scikit-learn's 8x8 digits (0..16, white on black as MNIST) scaled 2x to 16x16 and centred in 28x28,
    in [0, 1]: what Caffe's LeNet sees after its data layer's scale 1/256 of 0..255 pixels."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = np.zeros((len(digits.images), 28, 28), np.float32)
    images[:, 6:22, 6:22] = np.kron(digits.images / 16.0, np.ones((2, 2)))
    return images, digits.target


def _numpy_lenet(blobs, images):
    """LeNet's forward pass in NCHW with Caffe's blobs as stored: valid 5x5 convolutions, 2x2 max pools,
    InnerProducts over the C, H, W flattening."""
    def conv(x, weight, bias):
        windows = np.lib.stride_tricks.sliding_window_view(x, weight.shape[2:], axis=(2, 3))
        return np.einsum("nchwij,ocij->nohw", windows, weight, optimize=True) + bias[None, :, None, None]

    def pool(x):
        n, c, h, w = x.shape
        return x.reshape(n, c, h // 2, 2, w // 2, 2).max(axis=(3, 5))

    x = pool(conv(images[:, None].astype(np.float64), blobs["conv1"]["0"], blobs["conv1"]["1"]))
    x = pool(conv(x, blobs["conv2"]["0"], blobs["conv2"]["1"])).reshape(len(images), -1)
    x = np.maximum(x @ blobs["ip1"]["0"].T + blobs["ip1"]["1"], 0)
    return x @ blobs["ip2"]["0"].T + blobs["ip2"]["1"]


def test_lenet_classifies_digits_and_matches_numpy(lenet_files):
    from weights_io import read_weights

    images, labels = _digits_as_mnist()
    model = kerasnets.from_caffe(*lenet_files)
    assert [l.name for l in model.layers if l.weights] == ["conv1", "conv2", "ip1", "ip2"]
    probs = model.predict(images[..., None], batch_size=512, verbose=0)
    accuracy = float(np.mean(probs.argmax(1) == labels))
    assert accuracy > 0.85  # measured 0.883 (1587 of 1797) with this 2x nearest scaling
    logits = from_caffe(*lenet_files, classifier_activation=None).predict(images[:64, ..., None], verbose=0)
    want = _numpy_lenet(read_weights(lenet_files[1]).tensors, images[:64])
    assert np.max(np.abs(logits - want)) <= 1e-4 * np.max(np.abs(want))
    assert not np.allclose(logits.sum(1), 1.0)  # logits, not probabilities
    np.testing.assert_allclose(probs[:64], keras.ops.convert_to_numpy(keras.ops.softmax(want)), atol=1e-5)


def _custom_layers_net(rng):
    """Every custom layer from_caffe uses: Caffe pooling, both LRNs, Scale, weighted Eltwise, CHW Flatten."""
    return [
        layer("conv/1", "Convolution", "data", blobs=[rng.normal(size=(4, 3, 3, 3)).astype("float32"),
                                                      rng.normal(size=4).astype("float32")],
              convolution_param={"num_output": 4, "kernel_size": 3, "pad": 1}),  # a name Keras refuses
        layer("pool1", "Pooling", "conv/1", pooling_param={"pool": Bare("AVE"), "kernel_size": 3, "stride": 2,
                                                          "pad": 1}),
        layer("norm1", "LRN", "pool1", lrn_param={"local_size": 3, "alpha": 0.3, "k": 1.5}),
        layer("norm2", "LRN", "norm1", lrn_param={"local_size": 3, "alpha": 0.3,
                                                  "norm_region": Bare("WITHIN_CHANNEL")}),
        layer("bn", "BatchNorm", "norm2", blobs=[rng.normal(size=4).astype("float32"),
                                                 rng.uniform(1, 2, 4).astype("float32"), np.ones(1, "float32")]),
        layer("scale", "Scale", "bn", scale_param={"bias_term": True},
              blobs=[rng.normal(size=4).astype("float32"), rng.normal(size=4).astype("float32")]),
        layer("sum", "Eltwise", ["scale", "norm2"], eltwise_param={"coeff": [2.0, -1.0]}),
        layer("flat", "Flatten", "sum"),
        layer("ip", "InnerProduct", "flat", inner_product_param={"num_output": 3},
              blobs=[rng.normal(size=(3, 64)).astype("float32"), rng.normal(size=3).astype("float32")]),
        layer("prob", "Softmax", "ip"),
    ]


@pytest.mark.parametrize("suffix", [".keras", ".h5"])
def test_saved_model_reloads_with_equal_outputs(tmp_path, suffix):
    rng = np.random.default_rng(0)
    model = from_caffe(*write_net(tmp_path, _custom_layers_net(rng), {"data": (1, 3, 7, 7)}))
    assert {"CaffePooling2D", "LocalResponseNormalization", "WithinChannelLRN", "ChannelScale", "WeightedSum"} <= {
        type(l).__name__ for l in model.layers}
    assert model.get_layer("conv_1").weights[0].shape == (3, 3, 3, 4)
    x = rng.normal(size=(2, 7, 7, 3)).astype("float32")
    model.save(tmp_path / f"net{suffix}")
    reloaded = keras.saving.load_model(tmp_path / f"net{suffix}")
    # the fused BatchNormalization reloads as keras' own: equal to float rounding, not bit for bit
    np.testing.assert_allclose(np.asarray(reloaded(x)), np.asarray(model(x)), rtol=1e-5, atol=1e-6)


@pytest.fixture
def nothing_built(monkeypatch):
    """Fails the test if from_caffe gets as far as creating a Keras input."""
    def refuse(*args, **kwargs):
        raise AssertionError("a Keras model was being built")

    monkeypatch.setattr(keras, "Input", refuse)


def _prototxt(tmp_path, layers, version="V2"):
    path = tmp_path / "net.prototxt"
    path.write_text(prototxt_text(layers, {"data": (1, 3, 8, 8)}, version))
    return path


def test_unsupported_type_fails_before_building(tmp_path, nothing_built):
    layers = [layer("conv1", "Convolution", "data", convolution_param={"num_output": 2, "kernel_size": 3}),
              layer("slice", "Slice", "conv1", ["a", "b"])]
    with pytest.raises(ValueError, match=r"'slice' has the unsupported type 'Slice'.*Supported: .*Convolution"):
        from_caffe(_prototxt(tmp_path, layers))


def test_bottom_naming_no_earlier_top(tmp_path, nothing_built):
    layers = [layer("relu", "ReLU", "conv1"),  # conv1 comes later: Caffe reads layers in order
              layer("conv1", "Convolution", "data", convolution_param={"num_output": 2, "kernel_size": 3})]
    with pytest.raises(ValueError, match=r"'relu': bottom 'conv1' names no earlier top"):
        from_caffe(_prototxt(tmp_path, layers))


def test_mismatched_blobs_fail_all_or_nothing(tmp_path, nothing_built):
    rng = np.random.default_rng(0)
    net = [layer("conv1", "Convolution", "data", blobs=[rng.normal(size=(2, 3, 3, 3)), rng.normal(size=2)],
                 convolution_param={"num_output": 2, "kernel_size": 3}),
           layer("ip", "InnerProduct", "conv1", blobs=[rng.normal(size=(5, 72)), rng.normal(size=5)],
                 inner_product_param={"num_output": 5})]
    prototxt, _ = write_net(tmp_path, net, {"data": (1, 3, 8, 8)})
    wrong = [dict(net[0], blobs=[rng.normal(size=(2, 3, 5, 5))]),  # a 5x5 kernel, no bias
             dict(net[1], name="fc"),  # renamed: ip is missing, fc unexpected
             ]
    _, caffemodel = write_net(tmp_path, wrong, {"data": (1, 3, 8, 8)}, name="wrong")
    with pytest.raises(CaffeWeightMismatchError) as error:
        from_caffe(prototxt, caffemodel)
    message = str(error.value)
    assert "conv1 blob 0: the prototxt implies (2, 3, 3, 3), the file has (2, 3, 5, 5)" in message
    assert "conv1 blob 1 (2,)" in message and "ip blob 0 (5, 72)" in message and "ip blob 1 (5,)" in message
    assert "fc/0 (5, 72)" in message and "fc/1 (5,)" in message
    assert len(error.value.report.missing) == 3 and len(error.value.report.mismatched) == 1


def test_classifier_activation_and_strict(tmp_path):
    rng = np.random.default_rng(0)
    net = _custom_layers_net(rng)
    extra = layer("unused", "InnerProduct", "data", blobs=[np.zeros((2, 2), "float32")],
                  inner_product_param={"num_output": 2})
    prototxt, _ = write_net(tmp_path, net, {"data": (1, 3, 7, 7)})
    _, caffemodel = write_net(tmp_path, net + [extra], {"data": (1, 3, 7, 7)}, name="more")
    with pytest.raises(CaffeWeightMismatchError, match=r"unused/0 \(2, 2\)"):
        from_caffe(prototxt, caffemodel)
    x = rng.normal(size=(2, 7, 7, 3)).astype("float32")
    probs = np.asarray(from_caffe(prototxt, caffemodel, strict=False)(x))
    logits = np.asarray(from_caffe(prototxt, caffemodel, strict=False, classifier_activation=None)(x))
    np.testing.assert_allclose(probs.sum(1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(probs, np.exp(logits) / np.exp(logits).sum(1, keepdims=True), rtol=1e-5)


def _lrn_reference(x, size, alpha, beta, k, within):
    """Caffe's LRN (lrn_layer.cpp) in NCHW: across channels x / (k + alpha/n sum x^2)^beta; within a
    channel x * (1 + alpha/n^2 sum_{n x n} x^2)^-beta (k unused), zero-padded."""
    half = (size - 1) // 2
    if within:
        squares = np.pad(x ** 2, ((0, 0), (0, 0), (half, half), (half, half)))
        total = sum(squares[:, :, i:i + x.shape[2], j:j + x.shape[3]] for i in range(size) for j in range(size))
        return x * (1 + alpha / size ** 2 * total) ** -beta
    squares = np.pad(x ** 2, ((0, 0), (half, half), (0, 0), (0, 0)))
    return x / (k + alpha / size * sum(squares[:, i:i + x.shape[1]] for i in range(size))) ** beta


@pytest.mark.parametrize("region", ["ACROSS_CHANNELS", "WITHIN_CHANNEL"])
def test_lrn_with_k_against_caffes_formula(tmp_path, region):
    """k != 1, which OpenCV's importer ignores (see the oracle test)."""
    params = {"local_size": 5, "alpha": 0.7, "beta": 0.6, "k": 2.5, "norm_region": Bare(region)}
    model = from_caffe(_prototxt(tmp_path, [layer("norm", "LRN", "data", lrn_param=params)]))
    x = np.random.default_rng(0).normal(size=(2, 3, 8, 8)) * 2
    got = np.asarray(model(x.transpose(0, 2, 3, 1).astype("float32"))).transpose(0, 3, 1, 2)
    want = _lrn_reference(x, 5, 0.7, 0.6, 2.5, region == "WITHIN_CHANNEL")
    assert np.max(np.abs(got - want)) <= 1e-5 * np.max(np.abs(want))


def test_dilated_grouped_deconvolution_against_caffes_formula(tmp_path):
    """Caffe's Deconvolution (col2im of W^T x) written as loops; OpenCV 4 mis-sizes dilated ones."""
    rng = np.random.default_rng(0)
    weight, bias = rng.normal(size=(4, 3, 3, 3)), rng.normal(size=6)  # (in, out/group, kh, kw), group 2
    stride, pad, dilation = 2, 1, 2
    params = {"num_output": 6, "kernel_size": 3, "stride": stride, "pad": pad, "dilation": dilation, "group": 2}
    net = [layer("up", "Deconvolution", "data", blobs=[weight, bias], convolution_param=params)]
    prototxt, caffemodel = write_net(tmp_path, net, {"data": (1, 4, 5, 5)})
    x = rng.normal(size=(1, 4, 5, 5))
    size = (5 - 1) * stride + dilation * (3 - 1) + 1 - 2 * pad
    want = np.zeros((1, 6, size + 2 * pad, size + 2 * pad))
    for c in range(4):
        group = c // 2
        for o in range(3):
            for i in range(3):
                for j in range(3):
                    want[0, group * 3 + o, i * dilation:i * dilation + 5 * stride:stride,
                         j * dilation:j * dilation + 5 * stride:stride] += weight[c, o, i, j] * x[0, c]
    want = want[:, :, pad:pad + size, pad:pad + size] + bias[None, :, None, None]
    got = np.asarray(from_caffe(prototxt, caffemodel)(x.transpose(0, 2, 3, 1).astype("float32")))
    assert got.shape == (1, size, size, 6)
    assert np.max(np.abs(got.transpose(0, 3, 1, 2) - want)) <= 1e-5 * np.max(np.abs(want))


def test_cli_converts_and_summarises_lenet(tmp_path, capsys, lenet_files):
    out = tmp_path / "lenet.keras"
    assert cli(["convert", str(lenet_files[0]), "--weights", str(lenet_files[1]), "--out", str(out)]) == 0
    assert "431,080 parameters" in capsys.readouterr().out
    images, _ = _digits_as_mnist()
    reloaded = keras.saving.load_model(out)
    np.testing.assert_allclose(infer(reloaded, images[:8, ..., None]),
                               from_caffe(*lenet_files).predict(images[:8, ..., None], verbose=0), atol=1e-6)
    assert cli(["summary", "--weights", str(lenet_files[1])]) == 0
    text = capsys.readouterr().out
    assert "ip1" in text and "InnerProduct" in text and "500x800, 500" in text and "Parameters: 431,080" in text


@pytest.mark.parametrize("factor", [4.0, 0.0])
def test_batch_norm_scale_factor(tmp_path, factor):
    """Caffe's BatchNorm divides mean and variance by blob 2, and takes a zero factor as zero statistics."""
    rng = np.random.default_rng(0)
    mean, var = rng.normal(size=3), rng.uniform(1, 2, size=3)
    net = [layer("bn", "BatchNorm", "data", batch_norm_param={"eps": 1e-3},
                 blobs=[mean.astype("float32"), var.astype("float32"), np.array([factor], "float32")])]
    x = rng.normal(size=(2, 5, 5, 3)).astype("float32")
    got = np.asarray(from_caffe(*write_net(tmp_path, net, {"data": (1, 3, 5, 5)}))(x))
    scale = 1 / factor if factor else 0.0
    np.testing.assert_allclose(got, (x - mean * scale) / np.sqrt(var * scale + 1e-3), rtol=1e-5, atol=1e-5)
