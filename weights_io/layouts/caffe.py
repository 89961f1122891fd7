"""Layouts of the classic nets published as Caffe files, onto our builders.

A caffemodel's blobs are read through `weights_io.caffe_blobs` (numbered blobs named per layer type,
each Scale merged into its BatchNorm by the layout's `merge_sources`), so these layouts map names only.
Their options build the network as Caffe computes it: symmetric padding, ceil-mode max pools, Caffe's
LRN (alpha / n, k = 1), BatchNorm epsilon 1e-5 (Caffe's default; He's prototxts set none).

* ``caffe-alexnet`` (in ``vgg.py``) and ``caffe-caffenet``: BVLC AlexNet and CaffeNet share names and
  shapes; only the order of pool and LRN differs, which the caffemodel's layer order tells.
* ``caffe-googlenet``: BVLC GoogLeNet (``conv1/7x7_s2``, ``inception_3a/1x1``, ``loss3/classifier``);
  the aux heads ``loss1/*``, ``loss2/*`` (in the trained file, not in the deploy net) fill
  ``aux_logits=True`` and are optional otherwise.
* ``caffe-resnet``: He's ResNet-50/101/152 (``conv1``, ``bn_conv1`` + ``scale_conv1``,
  ``res2a_branch2a``, ``bn2a_branch2a`` + ``scale2a_branch2a``, ``res2a_branch1``, ``fc1000``). The
  101 and 152 files number the blocks of stages 3 and 4 (``res4a``, ``res4b1`` .. ``res4b22``).
* ``caffe-segnet``: SegNet (alexgkendall/caffe-segnet, SegNet-Tutorial's inference nets): ``conv1_1``,
  ``conv1_1_bn`` (its own "BN" layer: scale and shift, statistics folded in) .. ``conv5_3_D``,
  ``conv5_3_D_bn`` .. ``conv1_2_D``, and ``conv1_1_D`` the per-pixel classifier; its Upsample layers take
  the pooling masks, as ``build_segnet``'s unpooling takes the argmax indices.
* VGG_ILSVRC_16/19_layers use the names of ``tensorflow-vgg`` (conv1_1 .. fc8), whose layout reads them.
"""

from __future__ import annotations

import re

from weights_io.caffe_blobs import CAFFE_LRN, SEGNET_BN_EPSILON, layer_before
from weights_io.core import Layout
from weights_io.layouts import register_layout, rule_layout

register_layout(
    rule_layout(
        "caffe-caffenet",
        [(r"(conv[1-5]|fc6|fc7)", "{0}"), (r"predictions", "fc8")],
        description="BVLC CaffeNet (bvlc_reference_caffenet): AlexNet's names, each max-pool before its LRN "
        "(variant='caffenet'); a caffemodel whose norm1 precedes pool1 is AlexNet, not this.",
        first_conv="conv1",
        scoped_options={"alexnet": {"variant": "caffenet", "lrn": CAFFE_LRN}},
        fits=lambda weight_file: layer_before(weight_file, "norm1", "pool1") is not True,
    )
)

_GOOGLENET_STEM = {"conv1_7x7_s2_conv": "conv1/7x7_s2", "conv2_3x3_reduce_conv": "conv2/3x3_reduce",
                   "conv2_3x3_conv": "conv2/3x3", "predictions": "loss3/classifier"}
_GOOGLENET_AUX = {"proj_conv": "conv", "fc": "fc", "predictions": "classifier"}

register_layout(
    rule_layout(
        "caffe-googlenet",
        [
            (r"(conv1_7x7_s2_conv|conv2_3x3_reduce_conv|conv2_3x3_conv|predictions)",
             lambda m: _GOOGLENET_STEM[m.group(1)]),
            (r"inception(\d[a-e])_(1x1|3x3_reduce|3x3|5x5_reduce|5x5|pool_proj)_conv", "inception_{0}/{1}"),
            (r"aux([12])_(proj_conv|fc|predictions)", lambda m: f"loss{m.group(1)}/{_GOOGLENET_AUX[m.group(2)]}"),
        ],
        description="BVLC GoogLeNet (bvlc_googlenet): conv1/7x7_s2, conv2/3x3_reduce, conv2/3x3, "
        "inception_3a/1x1 .. inception_5b/pool_proj, loss3/classifier; aux heads loss1/*, loss2/* "
        "(variant='caffe').",
        first_conv="conv1_7x7_s2_conv",
        scoped_options={"googlenet": {"variant": "caffe"}},
        optional_sources=r"loss[12]/.*",
    )
)


def _he_resnet(names):
    """He's names; blocks of stages 3 and 4 are a, b1, b2, ... in the deep nets (stage 4 over 6 blocks).

    He published bottleneck nets only: a net without third convs (ResNet-18/34) gets no names.
    """
    if not any(re.fullmatch(r"conv\d_block\d+_3_conv", name) for name in names):
        return {}
    blocks = {}
    for name in names:
        match = re.fullmatch(r"conv(\d)_block(\d+)_1_conv", name)
        if match:
            stage = int(match.group(1))
            blocks[stage] = max(blocks.get(stage, 0), int(match.group(2)))
    numbered = blocks.get(4, 0) > 6

    def block(stage, b):
        if numbered and stage in (3, 4):
            return f"{stage}a" if b == 1 else f"{stage}b{b - 1}"
        return f"{stage}{chr(ord('a') + b - 1)}"

    mapping = {}
    for name in names:
        unit = re.fullmatch(r"conv(\d)_block(\d+)_([0123])_(conv|bn)", name)
        if unit:
            stage, b, i, kind = int(unit.group(1)), int(unit.group(2)), unit.group(3), unit.group(4)
            branch = "branch1" if i == "0" else "branch2" + "abc"[int(i) - 1]
            mapping[name] = f"{'res' if kind == 'conv' else 'bn'}{block(stage, b)}_{branch}"
        elif name in _HE_STEM:
            mapping[name] = _HE_STEM[name]
    return mapping


_HE_STEM = {"conv1_conv": "conv1", "conv1_bn": "bn_conv1", "predictions": "fc1000"}

register_layout(
    Layout(
        name="caffe-resnet",
        map_names=_he_resnet,
        description="He et al.'s Caffe ResNet-50/101/152 (KaimingHe/deep-residual-networks): conv1, "
        "bn_conv1 + scale_conv1, res2a_branch2a, bn2a_branch2a + scale2a_branch2a, res2a_branch1, fc1000; "
        "res4b1..res4b22 in 101/152. Stride on the first 1x1, no conv bias (ResNet-50: conv1 has one), "
        "BN eps 1e-5, ceil-mode stem pool.",
        first_conv="conv1_conv",
        options={"stride_placement": "v1", "stride_block": "first", "conv_bias": False, "bn_epsilon": 1e-5,
                 "padding": "torch", "stem_pool": "ceil"},
        scoped_options={"resnet50": {"conv_bias": "stem"}},
        merge_sources=lambda name: "scale" + name[2:] if name.startswith("bn") else None,
    )
)


def _segnet(names):
    """Encoder conv{b}_{c}; decoder convs count down within a block (conv{b}_{n}_D first), score conv1_1_D."""
    convs = {}
    for name in names:
        match = re.fullmatch(r"block(\d)_conv(\d)", name)
        if match:
            convs[match.group(1)] = max(convs.get(match.group(1), 0), int(match.group(2)))
    mapping = {"score_conv": "conv1_1_D"} if "score_conv" in names else {}
    for name in names:
        encoder = re.fullmatch(r"block(\d)_conv(\d)(_bn)?", name)
        decoder = re.fullmatch(r"decoder(\d)_conv(\d)(_bn)?", name)
        if encoder:
            mapping[name] = f"conv{encoder.group(1)}_{encoder.group(2)}{encoder.group(3) or ''}"
        elif decoder and decoder.group(1) in convs:
            b, c = decoder.group(1), convs[decoder.group(1)] + 1 - int(decoder.group(2))
            mapping[name] = f"conv{b}_{c}_D{decoder.group(3) or ''}"
    return mapping


register_layout(
    Layout(
        name="caffe-segnet",
        map_names=_segnet,
        description="caffe-segnet / SegNet-Tutorial inference nets: conv1_1 + conv1_1_bn (BN: scale, shift) .. "
        "conv5_3_D + conv5_3_D_bn .. conv1_2_D, conv1_1_D (classifier); build_segnet(bn_epsilon=1e-5).",
        first_conv="block1_conv1",
        options={"bn_epsilon": SEGNET_BN_EPSILON},
    )
)
