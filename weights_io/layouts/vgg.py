"""VGG, AlexNet and ZFNet layouts.

Our names (kerasnets.vgg, kerasnets.alexnet; keras.applications' for VGG):
``block{b}_conv{c}`` (+ ``block{b}_conv{c}_bn`` in the BN variants),
``fc1``, ``fc2``, ``predictions`` for VGG; ``conv1``..``conv5``, ``fc6``,
``fc7``, ``predictions`` for AlexNet/ZFNet.
"""

from __future__ import annotations

import re

from weights_io.caffe_blobs import CAFFE_LRN, layer_before
from weights_io.core import Layout
from weights_io.layouts import register_layout, rule_layout

_VGG_FC = {"fc1": "fc6", "fc2": "fc7", "predictions": "fc8"}

register_layout(
    rule_layout(
        "tensorflow-vgg",
        [(r"block(\d+)_conv(\d+)", "conv{0}_{1}"), (r"(fc1|fc2|predictions)", lambda m: _VGG_FC[m.group(1)])],
        description="tensorflow-vgg / caffe-tensorflow / MatConvNet VGG-VD / Frossard names and the Caffe "
        "VGG_ILSVRC_16/19_layers: conv1_1..conv5_4, fc6-fc8.",
        first_conv="block1_conv1",
    )
)

register_layout(
    rule_layout(
        "caffe-alexnet",
        [(r"(conv[1-5]|fc6|fc7)", "{0}"), (r"predictions", "fc8")],
        description="Caffe / MatConvNet / caffe-tensorflow AlexNet names: conv1..conv5, fc6-fc8 (BVLC AlexNet; "
        "Caffe's LRN, k=1).",
        first_conv="conv1",
        scoped_options={"alexnet": {"variant": "original", "lrn": CAFFE_LRN}},
        # BVLC CaffeNet has these names and shapes, its pools before the LRNs: layout caffe-caffenet
        fits=lambda weight_file: layer_before(weight_file, "pool1", "norm1") is not True,
    )
)

_CONV = re.compile(r"block(\d+)_conv(\d+)(_bn)?")


def _torchvision_vgg(names, heads=("classifier.0", "classifier.3", "classifier.6")):
    """features.<i> counts conv (+bn) + relu per conv and one pool per block; `heads` names fc1, fc2, predictions."""
    mapping, index, block = {}, 0, None
    for name in names:
        match = _CONV.fullmatch(name)
        if not match:
            continue
        if match.group(3):
            mapping[name] = f"features.{index - 1}"
            index += 1  # the BN shifts the ReLU
            continue
        if block is not None and match.group(1) != block:
            index += 1  # max-pool closing the previous block
        block = match.group(1)
        mapping[name] = f"features.{index}"
        index += 2  # conv + relu
    mapping.update(zip(("fc1", "fc2", "predictions"), heads))
    return {k: v for k, v in mapping.items() if k in names}


register_layout(
    Layout(
        name="torchvision-vgg",
        map_names=_torchvision_vgg,
        description="torchvision vgg11..vgg19(_bn): features.<i>, classifier.{0,3,6}.",
        first_conv="block1_conv1",
    )
)

_TORCHVISION_ALEXNET = {
    "conv1": "features.0", "conv2": "features.3", "conv3": "features.6", "conv4": "features.8",
    "conv5": "features.10", "fc6": "classifier.1", "fc7": "classifier.4", "predictions": "classifier.6",
}

register_layout(
    Layout(
        name="torchvision-alexnet",
        map_names=lambda names: {n: _TORCHVISION_ALEXNET[n] for n in names if n in _TORCHVISION_ALEXNET},
        description="torchvision alexnet: features.{0,3,6,8,10}, classifier.{1,4,6}.",
        first_conv="conv1",
        options={"variant": "torchvision"},
    )
)


# timm's VGG keeps torchvision's `features` but runs fc6/fc7 as convolutions (ConvMlp) and
# pools before its Linear head; the weights are the same numbers in other shapes.
_TIMM_VGG_HEADS = ("pre_logits.fc1", "pre_logits.fc2", "head.fc")
_TIMM_VGG_KERNELS = {"pre_logits.fc1.weight": 7, "pre_logits.fc2.weight": 1}


def _timm_vgg_shape(key, array):
    """timm's shapes: fc1 a 7x7 conv (out, C, 7, 7), fc2 a 1x1 conv, head.fc a Linear (out, in)."""
    out = array.shape[0] if array.ndim else 0
    if key in _TIMM_VGG_KERNELS:
        k = _TIMM_VGG_KERNELS[key]
        return (out, array.size // (out * k * k), k, k)
    if key == "head.fc.weight":
        return (out, array.size // out)
    return None


register_layout(
    Layout(
        name="timm-vgg",
        map_names=lambda names: _torchvision_vgg(names, _TIMM_VGG_HEADS),
        description="timm vgg11..vgg19(_bn) (model.safetensors): features.<i> as torchvision, "
        "pre_logits.fc1 (7x7 conv) / pre_logits.fc2 (1x1 conv), head.fc; fits a plain or fully_convolutional build "
        "at 224x224 (timm average-pools smaller maps up to 7x7 first).",
        first_conv="block1_conv1",
        options={"bn_epsilon": 1e-5},
        source_shape=_timm_vgg_shape,
    )
)
