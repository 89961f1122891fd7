"""GoogLeNet and Inception v3 layouts: torchvision names onto ours.

Ours: see the docstrings of `kerasnets.googlenet` (Caffe's names) and
`kerasnets.inception` (v3: ``mixed{i}`` blocks with torchvision's branch
names). Each of our conv units is a ``_conv`` and a ``_bn`` layer, which
torchvision's `BasicConv2d` holds as ``.conv`` and ``.bn``.

torchvision googlenet: ``conv1``, ``conv2``, ``conv3``,
``inception{3a..5b}.branch1`` / ``branch2.{0,1}`` / ``branch3.{0,1}`` /
``branch4.1`` (branch4.0 is the max pool), ``aux{1,2}.conv`` / ``fc1`` /
``fc2``, ``fc``.

torchvision inception_v3: ``Conv2d_1a_3x3`` .. ``Conv2d_4a_3x3``,
``Mixed_5b`` .. ``Mixed_7c`` with branch names as ours, ``AuxLogits.conv0`` /
``conv1`` / ``fc``, ``fc``.

keras.applications InceptionV3 / InceptionResNetV2 name their conv units by
a session-global counter (``conv2d_17``), so no name layout can address
them; their files load by order (layout ``keras-order`` in __init__.py).
"""

from __future__ import annotations

from weights_io.layouts import register_layout, rule_layout

_GOOGLENET_UNITS = {
    "1x1": "branch1",
    "3x3_reduce": "branch2.0",
    "3x3": "branch2.1",
    "5x5_reduce": "branch3.0",
    "5x5": "branch3.1",
    "pool_proj": "branch4.1",
}

register_layout(
    rule_layout(
        "torchvision-googlenet",
        [
            (r"conv1_7x7_s2_(conv|bn)", "conv1.{0}"),
            (r"conv2_3x3_reduce_(conv|bn)", "conv2.{0}"),
            (r"conv2_3x3_(conv|bn)", "conv3.{0}"),
            (r"inception(\d[a-e])_(1x1|3x3_reduce|3x3|5x5_reduce|5x5|pool_proj)_(conv|bn)",
             lambda m: f"inception{m.group(1)}.{_GOOGLENET_UNITS[m.group(2)]}.{m.group(3)}"),
            (r"aux([12])_proj_(conv|bn)", "aux{0}.conv.{1}"),
            (r"aux([12])_fc", "aux{0}.fc1"),
            (r"aux([12])_predictions", "aux{0}.fc2"),
            (r"predictions", "fc"),
        ],
        description="torchvision googlenet: conv1-3, inceptionXY.branch1/branch2.i/branch3.i/branch4.1, "
        "aux1/aux2 conv/fc1/fc2, fc.",
        first_conv="conv1_7x7_s2_conv",
    )
)

_V3_STEM = {"1a": "Conv2d_1a_3x3", "2a": "Conv2d_2a_3x3", "2b": "Conv2d_2b_3x3", "3b": "Conv2d_3b_1x1",
            "4a": "Conv2d_4a_3x3"}
# keras' mixed0..mixed10 are torchvision's Mixed_5b..Mixed_7c.
_V3_BLOCKS = ("5b", "5c", "5d", "6a", "6b", "6c", "6d", "6e", "7a", "7b", "7c")

register_layout(
    rule_layout(
        "torchvision-inception-v3",
        [
            (r"conv(1a|2a|2b|3b|4a)_(conv|bn)", lambda m: f"{_V3_STEM[m.group(1)]}.{m.group(2)}"),
            (r"mixed(\d+)_(branch\w+)_(conv|bn)",
             lambda m: f"Mixed_{_V3_BLOCKS[int(m.group(1))]}.{m.group(2)}.{m.group(3)}"),
            (r"aux_conv([01])_(conv|bn)", "AuxLogits.conv{0}.{1}"),
            (r"aux_predictions", "AuxLogits.fc"),
            (r"predictions", "fc"),
        ],
        description="torchvision inception_v3: Conv2d_1a_3x3..Conv2d_4a_3x3, Mixed_5b..Mixed_7c.<branch>, "
        "AuxLogits.conv0/conv1/fc, fc.",
        first_conv="conv1a_conv",
    )
)
