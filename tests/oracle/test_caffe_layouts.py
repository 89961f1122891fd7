"""Caffe files into our own builders, checked against OpenCV 4's Caffe importer.

Each test writes a published deploy net (the structure of BVLC's and KaimingHe's deploy.prototxt files,
generated here) with random blobs through tests/caffe_files.py, loads the caffemodel into kerasnets' builder
through weights_io's Caffe layouts (`from_weights` picks network, layout and builder options from the file)
and compares the logits with `cv2.dnn.readNetFromCaffe`'s forward, which shares no code with ours.

The blobs keep the signal alive: He-scaled kernels, moderate BatchNorm statistics stored with a scale factor
other than 1, and images in Caffe's range (BGR minus the mean, about +-128), where the LRN's k and alpha / n
matter. Every comparison also checks that the logits depend on the image.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math

import numpy as np
import pytest

import kerasnets
import weights_io
from kerasnets import presets
from kerasnets.registry import build_for_shapes
from tests.caffe_files import Bare, caffemodel_bytes, layer, prototxt_text
from tests.loopback import LoopbackServer, QuietHandler
from tests.references import infer
from weights_io.assign import weighted_layers
from weights_io.errors import WeightMismatchError

cv2 = pytest.importorskip("cv2")

RTOL = 1e-4  # of max |reference|


class Net:
    """A Caffe net's layers in order, with random blobs."""

    def __init__(self, seed, rng=None):
        """`rng`: the draws' generator instead of one seeded with `seed` (`_ShapeOnly()`: shapes, no data)."""
        self.layers = []
        self.rng = rng or np.random.default_rng(seed)

    def add(self, name, kind, bottom, top=None, blobs=(), **params):
        self.layers.append(layer(name, kind, bottom, top, blobs, **params))
        return self.layers[-1]["tops"][0]

    def conv(self, name, bottom, cin, cout, k, stride=1, pad=0, group=1, bias=True):
        fan_in = cin // group * k * k
        blobs = [self.rng.standard_normal((cout, cin // group, k, k), dtype=np.float32) * np.float32(math.sqrt(2 / fan_in))]
        if bias:
            blobs.append(self.rng.uniform(-0.2, 0.2, cout).astype(np.float32))
        params = {"num_output": cout, "kernel_size": k, "stride": stride, "pad": pad}
        params.update({"group": group} if group > 1 else {})
        params.update({} if bias else {"bias_term": False})
        return self.add(name, "Convolution", bottom, blobs=blobs, convolution_param=params)

    def fc(self, name, bottom, cin, cout):
        blobs = [self.rng.standard_normal((cout, cin), dtype=np.float32) * np.float32(math.sqrt(2 / cin)),
                 self.rng.uniform(-0.2, 0.2, cout).astype(np.float32)]
        return self.add(name, "InnerProduct", bottom, blobs=blobs, inner_product_param={"num_output": cout})

    def relu(self, name, blob):
        return self.add(name, "ReLU", blob, blob)

    def pool(self, name, bottom, kind, k, stride, pad=0, global_pooling=False):
        params = {"pool": Bare(kind)}
        params.update({"global_pooling": True} if global_pooling else {"kernel_size": k, "stride": stride, "pad": pad})
        return self.add(name, "Pooling", bottom, pooling_param=params)

    def lrn(self, name, bottom):
        return self.add(name, "LRN", bottom, lrn_param={"local_size": 5, "alpha": 1e-4, "beta": 0.75})

    def dropout(self, name, blob, ratio):
        return self.add(name, "Dropout", blob, blob, dropout_param={"dropout_ratio": ratio})

    def bn_scale(self, bn, scale, blob, channels, gamma=(0.5, 1.5)):
        """Caffe's BatchNorm (sums and their normaliser, which is not 1) and Scale, in place on `blob`."""
        factor = np.float32(self.rng.uniform(0.5, 3.0))
        mean = self.rng.normal(0, 0.5, channels).astype(np.float32)
        var = self.rng.uniform(0.5, 2.0, channels).astype(np.float32)
        self.add(bn, "BatchNorm", blob, blob, [mean * factor, var * factor, np.array([factor], np.float32)],
                 batch_norm_param={"use_global_stats": True})
        affine = [self.rng.uniform(*gamma, channels).astype(np.float32),
                  self.rng.uniform(-0.2, 0.2, channels).astype(np.float32)]
        return self.add(scale, "Scale", blob, blob, affine, scale_param={"bias_term": True})

    def write(self, directory, name, input_shape, version="V2", deploy=None):
        """The prototxt of the first `deploy` layers (all by default; input `data`) and the caffemodel of all:
        a trained file also holds training-only layers (GoogLeNet's aux heads)."""
        prototxt, model = directory / f"{name}.prototxt", directory / f"{name}.caffemodel"
        prototxt.write_text(prototxt_text(self.layers[:deploy], {"data": input_shape}, version, name))
        model.write_bytes(caffemodel_bytes(self.layers, version, name))
        return prototxt, model


# ---------------------------------------------------------------------------------------------------------
# the published nets

def alexnet(order="alexnet", seed=0):
    """bvlc_alexnet (conv, relu, norm, pool) or bvlc_reference_caffenet (conv, relu, pool, norm)."""
    net = Net(seed)
    x = "data"
    for i, (cin, cout, k, stride, pad, group) in enumerate(
            ((3, 96, 11, 4, 0, 1), (96, 256, 5, 1, 2, 2), (256, 384, 3, 1, 1, 1), (384, 384, 3, 1, 1, 2),
             (384, 256, 3, 1, 1, 2)), start=1):
        x = net.relu(f"relu{i}", net.conv(f"conv{i}", x, cin, cout, k, stride, pad, group))
        steps = {"norm": lambda x, i=i: net.lrn(f"norm{i}", x),
                 "pool": lambda x, i=i: net.pool(f"pool{i}", x, "MAX", 3, 2)}
        order_i = ("pool", "norm") if order == "caffenet" else ("norm", "pool")
        for step in order_i if i <= 2 else (("pool",) if i == 5 else ()):
            x = steps[step](x)
    x = net.dropout("drop6", net.relu("relu6", net.fc("fc6", x, 256 * 6 * 6, 4096)), 0.5)
    x = net.dropout("drop7", net.relu("relu7", net.fc("fc7", x, 4096, 4096)), 0.5)
    net.fc("fc8", x, 4096, 1000)
    return net


GOOGLENET_MODULES = (  # name, 1x1, 3x3 reduce, 3x3, 5x5 reduce, 5x5, pool proj (bvlc_googlenet)
    ("3a", 64, 96, 128, 16, 32, 32), ("3b", 128, 128, 192, 32, 96, 64), ("4a", 192, 96, 208, 16, 48, 64),
    ("4b", 160, 112, 224, 24, 64, 64), ("4c", 128, 128, 256, 24, 64, 64), ("4d", 112, 144, 288, 32, 64, 64),
    ("4e", 256, 160, 320, 32, 128, 128), ("5a", 256, 160, 320, 32, 128, 128), ("5b", 384, 192, 384, 48, 128, 128),
)


def googlenet(seed=1):
    """bvlc_googlenet's deploy net plus its aux heads loss1/loss2 (train_val's, kept in the trained file)."""
    net = Net(seed)
    conv_relu = lambda name, x, cin, cout, k, stride=1, pad=0, relu=None: net.relu(  # noqa: E731
        relu or name.replace("/", "/relu_", 1), net.conv(name, x, cin, cout, k, stride, pad))
    x = conv_relu("conv1/7x7_s2", "data", 3, 64, 7, 2, 3, "conv1/relu_7x7")
    x = net.lrn("pool1/norm1", net.pool("pool1/3x3_s2", x, "MAX", 3, 2))
    x = conv_relu("conv2/3x3_reduce", x, 64, 64, 1, relu="conv2/relu_3x3_reduce")
    x = conv_relu("conv2/3x3", x, 64, 192, 3, 1, 1, "conv2/relu_3x3")
    x = net.pool("pool2/3x3_s2", net.lrn("conv2/norm2", x), "MAX", 3, 2)
    cin, aux = 192, []
    for name, c1, c3r, c3, c5r, c5, proj in GOOGLENET_MODULES:
        p = f"inception_{name}"
        b1 = conv_relu(f"{p}/1x1", x, cin, c1, 1, relu=f"{p}/relu_1x1")
        b2 = conv_relu(f"{p}/3x3", conv_relu(f"{p}/3x3_reduce", x, cin, c3r, 1, relu=f"{p}/relu_3x3_reduce"),
                       c3r, c3, 3, 1, 1, f"{p}/relu_3x3")
        b3 = conv_relu(f"{p}/5x5", conv_relu(f"{p}/5x5_reduce", x, cin, c5r, 1, relu=f"{p}/relu_5x5_reduce"),
                       c5r, c5, 5, 1, 2, f"{p}/relu_5x5")
        b4 = conv_relu(f"{p}/pool_proj", net.pool(f"{p}/pool", x, "MAX", 3, 1, 1), cin, proj, 1,
                       relu=f"{p}/relu_pool_proj")
        x = net.add(f"{p}/output", "Concat", [b1, b2, b3, b4])
        cin = c1 + c3 + c5 + proj
        if name in ("4a", "4d"):
            aux.append((f"loss{len(aux) + 1}", x, cin))
        if name in ("3b", "4e"):
            x = net.pool(f"pool{name[0]}/3x3_s2", x, "MAX", 3, 2)
    x = net.dropout("pool5/drop_7x7_s1", net.pool("pool5/7x7_s1", x, "AVE", 7, 1), 0.4)
    net.fc("loss3/classifier", x, 1024, 1000)
    main = len(net.layers)
    for head, x, cin in aux:
        x = net.pool(f"{head}/ave_pool", x, "AVE", 5, 3)
        x = net.relu(f"{head}/relu_conv", net.conv(f"{head}/conv", x, cin, 128, 1))
        x = net.relu(f"{head}/relu_fc", net.fc(f"{head}/fc", x, 128 * 4 * 4, 1024))
        net.fc(f"{head}/classifier", net.dropout(f"{head}/drop_fc", x, 0.7), 1024, 1000)
    return net, main


def vgg(depth, seed=2, net=None):
    """VGG_ILSVRC_16_layers / VGG_ILSVRC_19_layers (deploy)."""
    net, x, cin = net or Net(seed), "data", 3
    for block, (convs, width) in enumerate(zip((2, 2, 3, 3, 3) if depth == 16 else (2, 2, 4, 4, 4),
                                               (64, 128, 256, 512, 512)), start=1):
        for c in range(1, convs + 1):
            x = net.relu(f"relu{block}_{c}", net.conv(f"conv{block}_{c}", x, cin, width, 3, 1, 1))
            cin = width
        x = net.pool(f"pool{block}", x, "MAX", 2, 2)
    x = net.dropout("drop6", net.relu("relu6", net.fc("fc6", x, 512 * 7 * 7, 4096)), 0.5)
    x = net.dropout("drop7", net.relu("relu7", net.fc("fc7", x, 4096, 4096)), 0.5)
    net.fc("fc8", x, 4096, 1000)
    return net


HE_BLOCKS = {50: (3, 4, 6, 3), 101: (3, 4, 23, 3), 152: (3, 8, 36, 3)}


def he_block_name(depth, stage, b):
    """res2a, res2b, ...; ResNet-101/152 number the blocks of stages 3 and 4: res4a, res4b1, res4b2, ..."""
    if depth > 50 and stage in (3, 4) and b > 1:
        return f"{stage}b{b - 1}"
    return f"{stage}{'abcdefghijklmnopqrstuvwxyz'[b - 1]}"


def he_resnet(depth, seed=3, global_pool=False, net=None):
    """KaimingHe/deep-residual-networks' ResNet-{50,101,152}-deploy.prototxt (conv1 has a bias only in 50)."""
    net = net or Net(seed)
    x = net.conv("conv1", "data", 3, 64, 7, 2, 3, bias=depth == 50)
    x = net.relu("conv1_relu", net.bn_scale("bn_conv1", "scale_conv1", x, 64))
    x, cin = net.pool("pool1", x, "MAX", 3, 2), 64
    for stage, (count, mid) in enumerate(zip(HE_BLOCKS[depth], (64, 128, 256, 512)), start=2):
        for b in range(1, count + 1):
            n, stride, out = he_block_name(depth, stage, b), 2 if b == 1 and stage > 2 else 1, 4 * mid
            shortcut = x
            if b == 1:
                shortcut = net.bn_scale(f"bn{n}_branch1", f"scale{n}_branch1",
                                        net.conv(f"res{n}_branch1", x, cin, out, 1, stride, bias=False), out)
            y = x
            for unit, (width, k, s, pad) in zip("abc", ((mid, 1, stride, 0), (mid, 3, 1, 1), (out, 1, 1, 0))):
                y = net.conv(f"res{n}_branch2{unit}", y, cin if unit == "a" else mid, width, k, s, pad, bias=False)
                y = net.bn_scale(f"bn{n}_branch2{unit}", f"scale{n}_branch2{unit}", y, width,
                                 gamma=(0.1, 0.4) if unit == "c" else (0.5, 1.5))
                if unit != "c":
                    y = net.relu(f"res{n}_branch2{unit}_relu", y)
            x = net.relu(f"res{n}_relu", net.add(f"res{n}", "Eltwise", [shortcut, y]))
            cin = out
    net.fc("fc1000", net.pool("pool5", x, "AVE", 7, 1, global_pooling=global_pool), 2048, 1000)
    return net


def segnet(classes, seed=6):
    """SegNet-Tutorial's segnet_inference.prototxt (VGG-16 encoder), as caffe-segnet's file holds it ("BN"
    layers of scale and shift (1, C, 1, 1); "Upsample" fed by the pooling masks), and the same numbers as a
    net OpenCV runs (Scale; MaxUnpool), which computes what caffe-segnet's inference BN and Upsample compute.
    OpenCV's MaxUnpool takes the pooled blob as a third bottom and restores its size, as caffe-segnet's
    upsample_h/upsample_w do where Caffe's ceil-mode pooling met an odd size (360x480: 45 -> 23 -> 45)."""
    net, x, cin, widths = Net(seed), "data", 3, (64, 128, 256, 512, 512)
    before_pool = {}
    blocks = (2, 2, 3, 3, 3)

    def conv_bn_relu(name, x, cin, cout):
        x = net.conv(name, x, cin, cout, 3, 1, 1)
        blobs = [net.rng.uniform(0.5, 1.5, (1, cout, 1, 1)).astype(np.float32),
                 net.rng.uniform(-0.2, 0.2, (1, cout, 1, 1)).astype(np.float32)]
        net.add(f"{name}_bn", "BN", x, x, blobs, bn_param={"bn_mode": Bare("INFERENCE")})
        return net.relu(name.replace("conv", "relu", 1), x)

    for b, (convs, width) in enumerate(zip(blocks, widths), start=1):
        for c in range(1, convs + 1):
            x, cin = conv_bn_relu(f"conv{b}_{c}", x, cin, width), width
        before_pool[f"pool{b}_mask"] = x
        net.add(f"pool{b}", "Pooling", x, [f"pool{b}", f"pool{b}_mask"],
                pooling_param={"pool": Bare("MAX"), "kernel_size": 2, "stride": 2})
        x = f"pool{b}"
    for b in range(5, 0, -1):
        x = net.add(f"upsample{b}", "Upsample", [x, f"pool{b}_mask"], f"pool{b}_D", upsample_param={"scale": 2})
        for c in range(blocks[b - 1], 0, -1):
            if b == 1 and c == 1:
                break
            out = widths[b - 2] if c == 1 else widths[b - 1]
            x, cin = conv_bn_relu(f"conv{b}_{c}_D", x, cin, out), out
    net.conv("conv1_1_D", x, cin, classes, 3, 1, 1)
    reference = []
    for spec in net.layers:
        if spec["type"] == "BN":
            spec = layer(spec["name"], "Scale", spec["bottoms"], spec["tops"], [b.reshape(-1) for b in spec["blobs"]],
                         scale_param={"bias_term": True})
        elif spec["type"] == "Upsample":
            bottoms = [*spec["bottoms"], before_pool[spec["bottoms"][1]]]
            spec = layer(spec["name"], "MaxUnpool", bottoms, spec["tops"], pool_k_h=2, pool_k_w=2,
                         pool_stride_h=2, pool_stride_w=2, pool_pad_h=0, pool_pad_w=0)
        reference.append(spec)
    return net.layers, reference


# ---------------------------------------------------------------------------------------------------------
# comparing

def images(size, count=2, seed=10):
    """Caffe-range BGR images minus the mean, NCHW."""
    return np.random.default_rng(seed).uniform(-128, 128, (count, 3, size, size)).astype(np.float32)


def opencv_forward(prototxt, caffemodel, batch, outputs=None):
    net = cv2.dnn.readNetFromCaffe(str(prototxt), str(caffemodel))
    net.setInput(batch)
    if outputs:
        return [np.asarray(o).reshape(len(batch), -1) for o in net.forward(outputs)]
    return np.asarray(net.forward()).reshape(len(batch), -1)


def assert_matches(ours, reference, label):
    ours, reference = np.asarray(ours, np.float64), np.asarray(reference, np.float64)
    scale = np.abs(reference).max()
    assert np.isfinite(reference).all() and scale > 0, label
    # the logits follow the image: the two images' logits differ by far more than the tolerance
    assert np.abs(reference[0] - reference[1]).max() > 100 * RTOL * scale, f"{label}: logits ignore the input"
    error = np.abs(ours - reference).max() / scale
    assert error <= RTOL, f"{label}: max|diff| / max|ref| = {error:.2e}"


def nhwc(batch):
    return np.ascontiguousarray(batch.transpose(0, 2, 3, 1))


# ---------------------------------------------------------------------------------------------------------
# tests

@pytest.mark.parametrize("order, version", [("alexnet", "V1"), ("caffenet", "V2")])
def test_bvlc_alexnet_and_caffenet(tmp_path, order, version):
    """Same names and shapes, pool and LRN swapped: from_weights tells them apart by the file's layer order."""
    prototxt, model_path = alexnet(order).write(tmp_path, order, (1, 3, 227, 227), version)
    batch = images(227)
    reference = opencv_forward(prototxt, model_path, batch)
    model = kerasnets.from_weights(model_path, classifier_activation=None)
    assert model.weights_report.layout == f"caffe-{order}"
    assert model.count_params() == 60_965_224  # the paper's two-GPU net (REFERENCE.md)
    assert_matches(infer(model, nhwc(batch)), reference, order)
    other = "caffe-caffenet" if order == "alexnet" else "caffe-alexnet"
    built = build_for_shapes("alexnet", variant="original" if order == "caffenet" else "caffenet",
                             classifier_activation=None)  # refused on names and shapes: no values needed
    with pytest.raises(WeightMismatchError):  # the other order's layout places nothing of this file
        weights_io.load_weights(built, model_path, source=other, trusted=True)


def test_bvlc_googlenet_with_aux_heads(tmp_path):
    """The deploy net's logits, and the aux heads of the trained file when the model is built with them."""
    net, main = googlenet()
    prototxt, model_path = net.write(tmp_path, "bvlc_googlenet", (1, 3, 224, 224), deploy=main)
    full_prototxt = tmp_path / "with_aux.prototxt"
    full_prototxt.write_text(prototxt_text(net.layers, {"data": (1, 3, 224, 224)}, name="with_aux"))
    batch = images(224)
    heads = ["loss3/classifier", "loss1/classifier", "loss2/classifier"]
    references = opencv_forward(full_prototxt, model_path, batch, heads)

    model = kerasnets.from_weights(model_path, model="googlenet", classifier_activation=None)
    report = model.weights_report
    assert report.layout == "caffe-googlenet" and report.ok
    assert {key.split("/")[0] for _, key, _ in report.skipped} == {"loss1", "loss2"}
    assert_matches(infer(model, nhwc(batch)), opencv_forward(prototxt, model_path, batch), "googlenet")

    with_aux = kerasnets.from_weights(model_path, model="googlenet", classifier_activation=None, aux_logits=True)
    assert not with_aux.weights_report.skipped
    for ours, reference, head in zip(infer(with_aux, nhwc(batch)), references, heads):
        assert_matches(ours, reference, head)


def test_vgg_ilsvrc_16_layers(tmp_path):
    """fc6 reads the 512x7x7 map in Caffe's CHW order; the tensorflow-vgg layout's names are Caffe's."""
    prototxt, model_path = vgg(16).write(tmp_path, "VGG_ILSVRC_16_layers", (1, 3, 224, 224))
    batch = images(224)
    reference = opencv_forward(prototxt, model_path, batch)
    model = kerasnets.from_weights(model_path, classifier_activation=None)
    assert model.name.startswith("vgg16") and model.weights_report.layout == "tensorflow-vgg"
    assert model.count_params() == 138_357_544  # REFERENCE.md
    assert_matches(infer(model, nhwc(batch)), reference, "vgg16")


def test_vgg_ilsvrc_19_layers_names_and_sizes(tmp_path):
    """VGG-19: every layer placed with its size (`identify`), without writing the 575 MB file's numbers."""
    names = [spec["name"] for spec in vgg(19, net=Net(2, rng=_ShapeOnly())).layers if spec["blobs"]]
    model = build_for_shapes("vgg19")
    assert model.count_params() == 143_667_240
    mapping = weights_io.get_layout("tensorflow-vgg").map_names([l.name for l in weighted_layers(model)])
    assert sorted(mapping.values()) == sorted(names)


def test_he_resnet50(tmp_path):
    """BatchNorm + Scale into one BatchNormalization, stride on the first 1x1, conv1's bias, ceil stem pool."""
    prototxt, model_path = he_resnet(50).write(tmp_path, "ResNet-50", (1, 3, 224, 224))
    batch = images(224)
    reference = opencv_forward(prototxt, model_path, batch)
    model = kerasnets.from_weights(model_path, classifier_activation=None)
    assert model.weights_report.layout == "caffe-resnet" and model.weights_report.ok
    layers = {layer.name: layer for layer in model.layers}
    assert layers["conv1_bn"].epsilon == pytest.approx(1e-5) and layers["conv1_conv"].use_bias
    assert not layers["conv2_block1_1_conv"].use_bias
    assert sum(math.prod(w.shape) for w in model.trainable_weights) == 25_557_032 + 64  # torchvision + conv1 bias
    assert_matches(infer(model, nhwc(batch)), reference, "resnet50")


def test_he_resnet101_small_forward(tmp_path):
    """res3b1..res3b3, res4b1..res4b22 and no conv1 bias, at 64x64 (pool5 global where the file has 7x7)."""
    prototxt, model_path = he_resnet(101, global_pool=True).write(tmp_path, "ResNet-101", (1, 3, 64, 64))
    batch = images(64)
    reference = opencv_forward(prototxt, model_path, batch)
    model = kerasnets.from_weights(model_path, input_shape=(64, 64, 3), classifier_activation=None)
    assert model.name.startswith("resnet101") and model.weights_report.layout == "caffe-resnet"
    assert sum(math.prod(w.shape) for w in model.trainable_weights) == 44_549_160  # torchvision's count
    assert_matches(infer(model, nhwc(batch)), reference, "resnet101")


def test_he_resnet152_names_and_sizes():
    """Every weighted layer of He's ResNet-152 (with its Scale merged) meets one of ours of the same size."""
    caffe = he_resnet_shapes(152)
    model = build_for_shapes("resnet152", stride_placement="v1", stem_pool="ceil")
    assert sum(math.prod(w.shape) for w in model.trainable_weights) == 60_192_808
    mapping = weights_io.get_layout("caffe-resnet").map_names([l.name for l in weighted_layers(model)])
    assert len(mapping) == len(weighted_layers(model)) and sorted(mapping.values()) == sorted(caffe)
    for ours in weighted_layers(model):
        assert sum(math.prod(w.shape) for w in ours.weights) == caffe[mapping[ours.name]], ours.name


def he_resnet_shapes(depth):
    """{conv / BatchNorm name: numbers ours holds for it}, from the generated net's blob shapes, no data."""
    sizes = {}

    class Shapes(Net):
        def add(self, name, kind, bottom, top=None, blobs=(), **params):
            numbers = sum(b.size for b in blobs) - (1 if kind == "BatchNorm" else 0)  # less the scale factor
            key = name.replace("scale", "bn", 1) if kind == "Scale" else name
            if blobs:
                sizes[key] = sizes.get(key, 0) + numbers
            return name

    net = Shapes(0, rng=_ShapeOnly())
    he_resnet(depth, net=net)
    return sizes


class _ShapeOnly:
    """Stands in for the random generator where only shapes are wanted (ResNet-152's 60M numbers)."""

    def standard_normal(self, shape, dtype=None):
        return np.broadcast_to(np.float32(0), shape)

    def uniform(self, low, high, size=None):
        return np.broadcast_to(np.float32(0), () if size is None else (size,))

    def normal(self, loc, scale, size=None):
        return self.uniform(0, 0, size)


def test_missing_scale_layer_fails_all_or_nothing(tmp_path):
    """A BatchNorm whose Scale the file lacks leaves gamma/beta without a source: nothing loads, both named."""
    net = he_resnet(50, seed=4)
    dropped = [spec for spec in net.layers if spec["name"] != "scale2a_branch1"]
    path = tmp_path / "broken.caffemodel"
    path.write_bytes(caffemodel_bytes(dropped))
    model = kerasnets.build("resnet50", conv_bias="stem", stride_placement="v1", stem_pool="ceil")
    before = [np.array(w) for w in model.weights]
    with pytest.raises(WeightMismatchError) as error:
        weights_io.load_weights(model, path, source="caffe-resnet", trusted=True)
    message = str(error.value)
    assert "conv2_block1_0_bn/gamma" in message and "conv2_block1_0_bn/beta" in message
    assert "bn2a_branch1" in message
    assert all(np.array_equal(a, np.array(w)) for a, w in zip(before, model.weights))


def serve_as_preset_source(body, tmp_path, monkeypatch):
    """A loopback server answering every GET with `body`, and a fresh kerasnets home for the presets' cache."""

    class Handler(QuietHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    monkeypatch.setenv("KERASNETS_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("KERASNETS_WEIGHTS_DIR", raising=False)
    return LoopbackServer(Handler)


def test_bvlc_googlenet_preset_over_loopback(tmp_path, monkeypatch):
    """The preset's path: download (a local server), sha1 as the model zoo publishes it, convert, cache."""
    net, main = googlenet(seed=5)
    prototxt, model_path = net.write(tmp_path, "bvlc_googlenet", (1, 3, 224, 224), deploy=main)
    body = model_path.read_bytes()
    server = serve_as_preset_source(body, tmp_path, monkeypatch)
    try:
        row = presets.get_preset("googlenet.bvlc")
        assert row.hash == {"algorithm": "sha1", "value": "405fc5acd08a3bb12de8ee5e23a96bec22f08204"}
        wrong = dataclasses.replace(row, name="t.caffe_wrong", url=server.url + "bvlc_googlenet.caffemodel")
        monkeypatch.setitem(presets._table(), wrong.name, wrong)
        with pytest.raises(ValueError, match="sha1"):  # our file is not BVLC's: refused
            kerasnets.build_preset(wrong.name, classifier_activation=None)
        ours = dataclasses.replace(wrong, name="t.caffe", hash={"algorithm": "sha1",
                                                               "value": hashlib.sha1(body).hexdigest()})
        monkeypatch.setitem(presets._table(), ours.name, ours)
        model = kerasnets.build_preset(ours.name, classifier_activation=None)
    finally:
        server.stop()
    batch = images(224)
    assert_matches(infer(model, nhwc(batch)), opencv_forward(prototxt, model_path, batch), "preset")


def unambiguous_segnet_images(model, size, count=2, min_gap=1e-5):
    """BGR 0..255 images (NCHW) on which every max pool of `model`'s encoder has a clear winner.

    Why: SegNet unpools the decoder's values to the encoder's argmax positions, so where a window's two
    largest values differ by float rounding (1e-6 relative: seen once in two random 45x60 images), OpenCV
    and we may place a decoder value one pixel apart, both correctly. Images are drawn until each window with
    a positive maximum leads its runner-up by `min_gap` (relative), ten times the rounding.
    """
    import keras

    probe = keras.Model(model.input, [model.get_layer(f"block{b}_pool").input for b in range(1, 6)])
    for seed in range(10, 60):
        batch = np.random.default_rng(seed).uniform(0, 255, (count, 3, *size)).astype(np.float32)
        gaps = []
        for features in infer(probe, nhwc(batch)):
            n, h, w, c = features.shape
            padded = np.full((n, h + h % 2, w + w % 2, c), -np.inf, np.float32)
            padded[:, :h, :w] = features
            windows = padded.reshape(n, (h + 1) // 2, 2, (w + 1) // 2, 2, c).transpose(0, 1, 3, 5, 2, 4)
            ranked = np.sort(windows.reshape(*windows.shape[:4], 4), -1)
            top, runner_up = ranked[..., -1], ranked[..., -2]
            positive = top > 0
            gaps.append((top[positive] - runner_up[positive]) / top[positive])
        if np.concatenate(gaps).min() > min_gap:
            return batch
    raise AssertionError("no images without near-tied pooling windows in 50 draws")


@pytest.mark.parametrize("size", [(64, 64), (45, 60)])
def test_caffe_segnet_into_build_segnet(tmp_path, size):
    """caffe-segnet's BN (scale, shift) and mask-driven Upsample, against OpenCV's Scale and MaxUnpool.

    OpenCV has neither of caffe-segnet's own layers; its Scale and MaxUnpool compute what they compute in
    inference, on the same numbers, and share no code with our BatchNormalization and MaxUnpooling2D.
    45x60 is the CamVid net's 360x480 from its third pool on: Caffe's ceil-mode pools take 45 to 23 and
    23 to 12, 15 to 8 and 3 to 2, and the unpooling restores each odd size.
    """
    ours, reference = segnet(classes=11)
    model_path = tmp_path / "segnet.caffemodel"
    model_path.write_bytes(caffemodel_bytes(ours))
    prototxt, reference_model = tmp_path / "reference.prototxt", tmp_path / "reference.caffemodel"
    prototxt.write_text(prototxt_text(reference, {"data": (1, 3, *size)}, name="reference"))
    reference_model.write_bytes(caffemodel_bytes(reference, name="reference"))
    model = kerasnets.from_weights(model_path, model="segnet", classes=11, input_shape=(*size, 3),
                                   classifier_activation=None)
    assert model.weights_report.layout == "caffe-segnet" and model.weights_report.ok
    batch = unambiguous_segnet_images(model, size)
    # OpenCV's MaxUnpool takes one image at a time
    expected = np.concatenate([opencv_forward(prototxt, reference_model, batch[i:i + 1]) for i in range(len(batch))])
    ours_nchw = infer(model, nhwc(batch)).transpose(0, 3, 1, 2).reshape(len(batch), -1)
    assert_matches(ours_nchw, expected, "segnet")


def test_segnet_camvid_preset_over_loopback(tmp_path, monkeypatch, capsys):
    """segnet.camvid: the zoo publishes no hash (pinned on first use), 360x480 in, 12 classes, BGR 0..255 as is.

    Its numbers follow the path the 45x60 test above checks against OpenCV; this checks the preset's row."""
    net, _ = segnet(classes=12, seed=7)
    body = caffemodel_bytes(net)
    server = serve_as_preset_source(body, tmp_path, monkeypatch)
    row = presets.get_preset("segnet.camvid")
    assert row.hash is None and row.layout == "caffe-segnet" and row.preprocessing["mode"] == "segnet"
    local = dataclasses.replace(row, name="t.segnet_camvid", url=server.url + row.file_name)
    monkeypatch.setitem(presets._table(), local.name, local)
    try:
        model = kerasnets.build_preset(local.name, classifier_activation=None)
    finally:
        server.stop()
    assert hashlib.sha256(body).hexdigest() in capsys.readouterr().err  # trust on first use: the pin is shown
    assert model.input_shape == (None, 360, 480, 3) and model.output_shape == (None, 360, 480, 12)
    image = np.random.default_rng(3).uniform(0, 255, (1, 360, 480, 3)).astype(np.float32)
    bgr = kerasnets.imagenet.preprocess_input(image, mode="segnet")
    np.testing.assert_array_equal(bgr, image[..., ::-1])
    scores = infer(model, bgr)
    assert np.isfinite(scores).all() and np.unique(scores.argmax(-1)).size > 1
