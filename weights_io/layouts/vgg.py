"""VGG, AlexNet and ZFNet layouts.

Our names (kerasnets.vgg, kerasnets.alexnet; keras.applications' for VGG):
``block{b}_conv{c}`` (+ ``block{b}_conv{c}_bn`` in the BN variants),
``fc1``, ``fc2``, ``predictions`` for VGG; ``conv1``..``conv5``, ``fc6``,
``fc7``, ``predictions`` for AlexNet/ZFNet.
"""

from __future__ import annotations

import re

from weights_io.core import Layout
from weights_io.layouts import register_layout, rule_layout

_VGG_FC = {"fc1": "fc6", "fc2": "fc7", "predictions": "fc8"}

register_layout(
    rule_layout(
        "tensorflow-vgg",
        [(r"block(\d+)_conv(\d+)", "conv{0}_{1}"), (r"(fc1|fc2|predictions)", lambda m: _VGG_FC[m.group(1)])],
        description="tensorflow-vgg / caffe-tensorflow / MatConvNet VGG-VD / Frossard names: conv1_1..conv5_4, fc6-fc8.",
        first_conv="block1_conv1",
    )
)

register_layout(
    rule_layout(
        "caffe-alexnet",
        [(r"(conv[1-5]|fc6|fc7)", "{0}"), (r"predictions", "fc8")],
        description="Caffe / MatConvNet / caffe-tensorflow AlexNet names: conv1..conv5, fc6-fc8.",
        first_conv="conv1",
        scoped_options={"alexnet": {"variant": "original"}},
    )
)

_CONV = re.compile(r"block(\d+)_conv(\d+)(_bn)?")


def _torchvision_vgg(names):
    """features.<i> counts conv (+bn) + relu per conv and one pool per block."""
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
    mapping.update({"fc1": "classifier.0", "fc2": "classifier.3", "predictions": "classifier.6"})
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
