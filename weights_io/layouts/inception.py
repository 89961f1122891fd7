"""GoogLeNet, Inception v3, v4 and BN-Inception layouts: torchvision and Cadene names onto ours.

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

Cadene's pretrainedmodels inceptionv4 (ported from TF-slim; timm's
inception_v4 has the same modules and keys): ``features.0`` .. ``features.21``
(stem convs 0-2, Mixed_3a/4a/5a 3-5, Inception_A 6-9, Reduction_A 10,
Inception_B 11-17, Reduction_B 18, Inception_C 19-21), each conv unit a
`BasicConv2d` ``.conv``/``.bn``; a branch that is one unit is ``branch{b}``
(Mixed_3a/5a's is ``conv``), a longer one ``branch{b}.{j}``, and Inception_C
names its units ``branch1_0`` .. ``branch2_3b`` as we do; ``last_linear``.

Cadene's pretrainedmodels bninception (ported from Caffe): flat Caffe names,
``conv1_7x7_s2`` (conv, with bias) and ``conv1_7x7_s2_bn``,
``inception_3a_double_3x3_1`` / ``_bn``, ..., ``last_linear``: ours without
the ``_conv`` suffix and with ``inception_3a`` for ``inception3a``.

timm inception_v3 has torchvision's keys (no ``AuxLogits``: timm builds none;
build ours with ``variant="torchvision", aux_logits=False``) and timm
inception_v4 Cadene's: their layouts above serve timm's files too.

timm inception_resnet_v2 (Cadene's port of TF-slim): ``conv2d_1a`` ..
``conv2d_4a``, ``mixed_5b``, ``repeat`` (10 Block35), ``mixed_6a``,
``repeat_1`` (20 Block17), ``mixed_7a``, ``repeat_2`` (9 Block8), ``block8``
(the last, linear one), ``conv2d_7b``, ``classif``; a branch of one unit is
``branch{b}``, a longer one ``branch{b}.{j}`` (j counts pools), the
residual projection ``conv2d``. Its BatchNorms have a gamma (keras' and
TF-slim's none): ``bn_scale=True``.

keras.applications InceptionV3 / InceptionResNetV2 name their conv units by
a session-global counter (``conv2d_17``), so no name layout can address
them; their files load by order (layout ``keras-order`` in __init__.py).
"""

from __future__ import annotations

import re

from weights_io.core import Layout
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
        options={"variant": "torchvision"},
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
        options={"variant": "torchvision"},
    )
)

# Cadene's `features` Sequential, in order: our v4 block name -> its index.
_V4_FEATURES = {block: str(i) for i, block in enumerate(
    ("conv1a", "conv2a", "conv2b", "mixed3a", "mixed4a", "mixed5a")
    + tuple(f"inception_a{i}" for i in range(1, 5)) + ("reduction_a",)
    + tuple(f"inception_b{i}" for i in range(1, 8)) + ("reduction_b",)
    + tuple(f"inception_c{i}" for i in range(1, 4)))}
_V4_BLOCK = "|".join(_V4_FEATURES)


def _v4(template):
    """A rule template whose first group, our block name, becomes ``features.{index}``."""
    return lambda m: template.format(_V4_FEATURES[m.group(1)], *m.groups()[1:])


register_layout(
    rule_layout(
        "cadene-inception-v4",
        [
            (r"(conv1a|conv2a|conv2b)_(conv|bn)", _v4("features.{0}.{1}")),
            (r"(mixed3a|mixed5a)_branch\d_0_(conv|bn)", _v4("features.{0}.conv.{1}")),
            # Single-unit branches are a bare BasicConv2d, not a Sequential.
            (r"(inception_[abc]\d|reduction_a)_branch0_0_(conv|bn)", _v4("features.{0}.branch0.{1}")),
            (r"(inception_c\d)_(branch[12]_\w+)_(conv|bn)", _v4("features.{0}.{1}.{2}")),
            (rf"({_V4_BLOCK})_branch(\d)_(\d)_(conv|bn)", _v4("features.{0}.branch{1}.{2}.{3}")),
            (r"predictions", "last_linear"),
        ],
        description="Cadene pretrainedmodels inceptionv4 and timm inception_v4 (same keys): "
        "features.0-21.<branch>.conv/bn, last_linear.",
        first_conv="conv1a_conv",
        options={"bn_epsilon": 1e-3},
    )
)

_BN_INCEPTION_UNITS = "1x1|3x3_reduce|3x3|double_3x3_reduce|double_3x3_1|double_3x3_2|pool_proj"

register_layout(
    rule_layout(
        "cadene-bninception",
        [
            (r"(conv1_7x7_s2|conv2_3x3_reduce|conv2_3x3)_conv", "{0}"),
            (r"(conv1_7x7_s2|conv2_3x3_reduce|conv2_3x3)_bn", "{0}_bn"),
            (rf"inception(\d[a-e])_({_BN_INCEPTION_UNITS})_conv", "inception_{0}_{1}"),
            (rf"inception(\d[a-e])_({_BN_INCEPTION_UNITS})_bn", "inception_{0}_{1}_bn"),
            (r"predictions", "last_linear"),
        ],
        description="Cadene pretrainedmodels bninception (Caffe names): conv1_7x7_s2, conv1_7x7_s2_bn, "
        "inception_3a_double_3x3_1(_bn), ..., last_linear; build_inception_v2(variant='cadene').",
        first_conv="conv1_7x7_s2_conv",
        options={"variant": "cadene"},
    )
)


_TIMM_IRV2_STEM = {"conv1a": "conv2d_1a", "conv2a": "conv2d_2a", "conv2b": "conv2d_2b", "conv3b": "conv2d_3b",
                   "conv4a": "conv2d_4a", "conv_7b": "conv2d_7b"}
_TIMM_IRV2_REPEATS = {"block35": "repeat", "block17": "repeat_1", "block8": "repeat_2"}
_IRV2_UNIT = re.compile(r"(mixed_5b|mixed_6a|mixed_7a|block(?:35|17|8)_\d+)(?:_mixed)?_branch(\d)_(\d)_(conv|bn)")
_IRV2_BLOCK = re.compile(r"(block(?:35|17|8))_(\d+)")


def _timm_inception_resnet_v2(names):
    present = set(names)
    last_block8 = max((int(m.group(1)) for m in map(re.compile(r"block8_(\d+)_conv").fullmatch, names) if m),
                      default=0)

    def module(block):
        match = _IRV2_BLOCK.fullmatch(block)
        if match is None:
            return block  # mixed_5b, mixed_6a, mixed_7a
        kind, i = match.group(1), int(match.group(2))
        return "block8" if kind == "block8" and i == last_block8 else f"{_TIMM_IRV2_REPEATS[kind]}.{i - 1}"

    mapping = {"predictions": "classif"}
    for ours in names:
        stem = re.fullmatch(r"(conv1a|conv2a|conv2b|conv3b|conv4a)_(conv|bn)", ours)
        if stem:
            mapping[ours] = f"{_TIMM_IRV2_STEM[stem.group(1)]}.{stem.group(2)}"
        elif ours in ("conv_7b", "conv_7b_bn"):
            mapping[ours] = "conv2d_7b." + ("bn" if ours.endswith("_bn") else "conv")
        elif _IRV2_BLOCK.fullmatch(ours[:-len("_conv")] if ours.endswith("_conv") else ""):
            mapping[ours] = f"{module(ours[:-len('_conv')])}.conv2d"  # the residual 1x1 projection
        elif match := _IRV2_UNIT.fullmatch(ours):
            block, branch, j, part = match.groups()
            prefix = ours[: ours.index(f"branch{branch}_")]
            single = j == "0" and f"{prefix}branch{branch}_1_conv" not in present
            unit = f"branch{branch}" if single else f"branch{branch}.{j}"
            mapping[ours] = f"{module(block)}.{unit}.{part}"
    return {ours: theirs for ours, theirs in mapping.items() if ours in present}


register_layout(
    Layout(
        name="timm-inception-resnet-v2",
        map_names=_timm_inception_resnet_v2,
        description="timm inception_resnet_v2 (Cadene's names): conv2d_1a..conv2d_4a, mixed_5b, repeat.i, mixed_6a, "
        "repeat_1.i, mixed_7a, repeat_2.i, block8, conv2d_7b, classif (build with bn_scale=True).",
        first_conv="conv1a_conv",
        options={"bn_scale": True, "bn_epsilon": 1e-3},
    )
)
