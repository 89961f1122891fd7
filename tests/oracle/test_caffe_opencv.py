"""`from_caffe` against OpenCV 4's Caffe importer (`cv2.dnn.readNetFromCaffe`), an independent implementation.

The nets are written by tests/caffe_files.py (not by weights_io) in the V1 and the V2 encodings with
random blobs, at odd sizes where Caffe's ceil rounding and its last-window rule change the output
size: 13x13 pooled by kernel 3, stride 2, pad 1 (ceil gives 7), and 7x7 pooled by kernel 2, stride 3,
pad 1, where ceil gives 4 windows and the rule drops the fourth (its start 9 >= 7 + 1). Two AVE pools
have a last window past the padded edge, whose divisor Caffe clips: 13x13 by kernel 2, stride 2 (the
7th window holds one column) and by kernel 4, stride 3, pad 1 (the 5th ends at 15 > 13 + 1). OpenCV runs
NCHW; `from_caffe` runs NHWC. Outputs agree to 1e-4 of their largest magnitude.
"""

import numpy as np
import pytest

from kerasnets.caffe import from_caffe
from tests.caffe_files import Bare, layer, write_net

cv2 = pytest.importorskip("cv2")
if not hasattr(cv2, "dnn") or not hasattr(cv2.dnn, "readNetFromCaffe"):
    pytest.skip("this OpenCV has no Caffe importer (OpenCV 5 removed it)", allow_module_level=True)

RTOL = 1e-4


def _conv(rng, name, bottom, inputs, outputs, kernel, group=1, bias=True, **geometry):
    kh, kw = kernel if isinstance(kernel, tuple) else (kernel, kernel)
    weight = rng.normal(size=(outputs, inputs // group, kh, kw)) / np.sqrt(inputs // group * kh * kw)
    blobs = [weight.astype("float32")] + ([rng.normal(size=outputs).astype("float32")] if bias else [])
    size = {"kernel_size": kh} if kh == kw else {"kernel_h": kh, "kernel_w": kw}
    return layer(name, "Convolution", bottom, blobs=blobs, convolution_param={
        "num_output": outputs, **size, "group": group, "bias_term": bias, **geometry})


def _pool(name, bottom, pool, kernel=None, stride=None, pad=None, **extra):
    geometry = {k: v for k, v in (("kernel_size", kernel), ("stride", stride), ("pad", pad)) if v is not None}
    return layer(name, "Pooling", bottom, pooling_param={"pool": Bare(pool), **geometry, **extra})


def _ip(rng, name, bottom, inputs, outputs, gain=1.0):
    return layer(name, "InnerProduct", bottom, inner_product_param={"num_output": outputs},
                 blobs=[(rng.normal(size=(outputs, inputs)) * gain / np.sqrt(inputs)).astype("float32"),
                        rng.normal(size=outputs).astype("float32")])


def common_net(rng):
    """Layers both encodings have: input 1x3x13x13."""
    return [
        _conv(rng, "conv1", "data", 3, 8, 3, pad=1),                                   # 13x13
        layer("relu1", "ReLU", "conv1", "conv1", relu_param={"negative_slope": 0.1}),
        _pool("pool1", "conv1", "MAX", 3, 2, 1),                                       # ceil: 7x7
        _pool("pool_edge", "conv1", "AVE", 2, 2),                    # ceil: 7x7, the last window is 1 wide
        _pool("pool_over", "conv1", "AVE", 4, 3, 1),                 # 5x5, the last window overhangs 13 + 1
        layer("pools", "Eltwise", ["pool1", "pool_edge"]),
        _conv(rng, "conv2", "pools", 8, 8, 3, group=2, pad=2, dilation=2),             # grouped, dilated: 7x7
        # k is left at Caffe's default 1: OpenCV's importer ignores `k` (measured: with k=2 it matches
        # Caffe's formula with k=1 to 4e-7, and misses it with k=2 by 0.5); test_lrn_k_against_numpy checks k
        layer("norm2", "LRN", "conv2", lrn_param={"local_size": 5, "alpha": 0.5, "beta": 0.75}),
        layer("split", "Split", "norm2", ["a", "b"]),
        _pool("pool_max", "a", "MAX", 2, 3, 1),                                        # the rule fires: 3x3
        _pool("pool_ave", "b", "AVE", 2, 3, 1),
        layer("within", "LRN", "pool_ave", lrn_param={"local_size": 3, "alpha": 2.0, "beta": 0.75,
                                                       "norm_region": Bare("WITHIN_CHANNEL")}),
        _conv(rng, "conv3a", "within", 8, 4, 1),
        _conv(rng, "conv3b", "pool_max", 8, 4, (3, 1), pad_h=1, pad_w=0),
        layer("concat", "Concat", ["conv3a", "conv3b"]),                               # 8 x 3x3
        layer("sum", "Eltwise", ["concat", "pool_max"], eltwise_param={"operation": Bare("SUM"),
                                                                         "coeff": [0.5, -1.5]}),
        layer("prod", "Eltwise", ["sum", "within"], eltwise_param={"operation": Bare("PROD")}),
        layer("max", "Eltwise", ["prod", "pool_ave"], eltwise_param={"operation": Bare("MAX")}),
        _pool("pool3", "max", "AVE", 3, 2, 1),                                         # 3x3 -> 2x2, padded ave
        layer("up", "Deconvolution", "pool3", blobs=[
            (rng.normal(size=(8, 3, 4, 4)) / 4).astype("float32"), rng.normal(size=6).astype("float32")],
            convolution_param={"num_output": 6, "kernel_size": 4, "stride": 2, "pad": 1, "group": 2}),
        layer("drop", "Dropout", "up", "up", dropout_param={"dropout_ratio": 0.5}),
        layer("flat", "Flatten", "up"),                                                # 6 x 4x4, CHW
        _ip(rng, "ip1", "flat", 96, 12, gain=4.0),
        layer("tanh", "TanH", "ip1", "ip1"),
        _ip(rng, "ip2", "ip1", 12, 10, gain=4.0),
        _ip(rng, "ip_over", "pool_over", 200, 10),                                     # over a 4-D blob
        layer("mix", "Eltwise", ["ip2", "ip_over"]),
        layer("sig", "Sigmoid", "mix", "sig"),
        _ip(rng, "logits", "sig", 10, 5, gain=4.0),
        layer("prob", "Softmax", "logits"),
    ]


def v2_net(rng):
    """BatchNorm + Scale, PReLU, Reshape, global pooling, strided dilation, a second input: V2 only."""
    mean, var = rng.normal(size=6), rng.uniform(0.5, 2.0, size=6)
    return [
        _conv(rng, "conv1", "data", 4, 6, 3, bias=False, stride=2, pad=1),             # 9x9 -> 5x5
        layer("bn1", "BatchNorm", "conv1", "conv1", batch_norm_param={"eps": 1e-3},
              blobs=[(mean * 3).astype("float32"), (var * 3).astype("float32"), np.array([3.0], "float32")]),
        layer("scale1", "Scale", "conv1", "conv1", scale_param={"bias_term": True},
              blobs=[rng.normal(size=6).astype("float32"), rng.normal(size=6).astype("float32")]),
        layer("prelu1", "PReLU", "conv1", "conv1", blobs=[rng.uniform(0, 0.5, size=6).astype("float32")]),
        _conv(rng, "conv2", "conv1", 6, 6, 3, stride=2, pad=2, dilation=2),            # strided and dilated: 3x3
        layer("add", "Eltwise", ["conv2", "side"]),                                    # the second input
        # no dilation: OpenCV 4.14 sizes a dilated Deconvolution as if undilated (3x3 where Caffe's
        # (i-1)*s + d*(k-1)+1 - 2p gives 5x5); tests/test_caffe_net.py checks dilation against numpy
        layer("up", "Deconvolution", "add", blobs=[(rng.normal(size=(6, 2, 3, 3)) / 4).astype("float32")],
              convolution_param={"num_output": 2, "kernel_size": 3, "stride": 2, "pad": 1,
                                 "bias_term": False}),                                 # 3x3 -> 5x5
        _ip(rng, "ip_up", "up", 50, 4),
        layer("prelu2", "PReLU", "add", "add", prelu_param={"channel_shared": True},
              blobs=[np.array([0.25], "float32")]),
        _pool("gmax", "add", "MAX", global_pooling=True),
        _pool("gave", "add", "AVE", global_pooling=True),
        layer("cat", "Concat", ["gmax", "gave"]),                                      # 12 x 1x1
        layer("reshape", "Reshape", "cat", reshape_param={"shape": {"dim": [0, 3, 2, 2]}}),
        _conv(rng, "conv3", "reshape", 3, 4, 2),                                       # 4 x 1x1
        layer("flat", "Flatten", "conv3"),
        layer("shaped", "Reshape", "add", reshape_param={"shape": {"dim": [0, -1]}}),  # CHW order
        _ip(rng, "ip_side", "shaped", 54, 4),
        layer("both", "Concat", ["flat", "ip_side", "ip_up"]),
        _ip(rng, "logits", "both", 12, 7),
        layer("prob", "Softmax", "logits"),
    ]


def _compare(tmp_path, layers, inputs, version, feeds):
    prototxt, caffemodel = write_net(tmp_path, layers, inputs, version)
    reference = cv2.dnn.readNetFromCaffe(str(prototxt), str(caffemodel))
    logits_model = from_caffe(prototxt, caffemodel, classifier_activation=None)
    prob_model = from_caffe(prototxt, caffemodel)
    outputs = []
    for feed in feeds:
        for name, value in feed.items():
            reference.setInput(value, name)
        want_logits, want_prob = [np.asarray(a) for a in reference.forward(["logits", "prob"])]
        nhwc = [feed[name].transpose(0, 2, 3, 1) for name in inputs]
        got_logits = np.asarray(logits_model(nhwc if len(nhwc) > 1 else nhwc[0]))
        got_prob = np.asarray(prob_model(nhwc if len(nhwc) > 1 else nhwc[0]))
        for got, want in ((got_logits, want_logits), (got_prob, want_prob)):
            assert got.shape == want.shape
            assert np.max(np.abs(got - want)) <= RTOL * np.max(np.abs(want)), (version, got, want)
        outputs.append(got_logits)
    # the logits depend on the input: a net that ignored it would pass the comparison on constants
    assert np.max(np.abs(outputs[0] - outputs[1])) > 1e-2 * np.max(np.abs(outputs[0]))
    return logits_model


@pytest.mark.parametrize("version", ["V1", "V2"])
def test_every_common_layer_matches_opencv(tmp_path, version):
    rng = np.random.default_rng(0)
    feeds = [{"data": rng.normal(size=(1, 3, 13, 13)).astype("float32")} for _ in range(2)]
    model = _compare(tmp_path, common_net(rng), {"data": (1, 3, 13, 13)}, version, feeds)
    names = ("pool1", "pool_edge", "pool_over", "pool_max", "pool_ave")
    shapes = {name: tuple(model.get_layer(name).output.shape[1:3]) for name in names}
    assert shapes == {"pool1": (7, 7), "pool_edge": (7, 7), "pool_over": (5, 5), "pool_max": (3, 3),
                      "pool_ave": (3, 3)}


def test_v2_only_layers_and_two_inputs_match_opencv(tmp_path):
    rng = np.random.default_rng(1)
    inputs = {"data": (1, 4, 9, 9), "side": (1, 6, 3, 3)}
    feeds = [{name: rng.normal(size=shape).astype("float32") for name, shape in inputs.items()} for _ in range(2)]
    _compare(tmp_path, v2_net(rng), inputs, "V2", feeds)
