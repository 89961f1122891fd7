"""MobileNetV3 layouts: torchvision, timm and tf.keras names onto ours.

Ours (kerasnets.mobilenet_v3, keras.applications' names): ``conv``/``conv_bn``;
per block ``i`` the prefix ``expanded_conv_`` (i = 0) or
``expanded_conv_{i}_`` with ``expand``/``expand_bn`` (when the block
expands), ``depthwise``/``depthwise_bn``, ``squeeze_excite_conv``/
``squeeze_excite_conv_1`` (SE blocks), ``project``/``project_bn``; head
``conv_1``/``conv_1_bn``, ``conv_2``, ``logits``.

torchvision mobilenet_v3_large/small: ``features.0.{0,1}`` (stem),
``features.{i+1}.block.{j}`` where the block's modules are numbered in order
(expand, depthwise, SE, project; each conv-BN pair ``.0``/``.1``, SE
``.fc1``/``.fc2``), ``features.{n+1}.{0,1}`` (last 1x1), ``classifier.0``
and ``classifier.3`` (Linear layers; assign reshapes them onto our 1x1 convs
``conv_2`` and ``logits``). Which modules a block has is read from our names,
so the layout also fits other widths.

timm mobilenetv3_large_100 / mobilenetv3_small_100 (``model.safetensors``):
``conv_stem``, ``bn1``, ``blocks.{s}.{j}`` (stages of timm's arch_def: the
first block a DepthwiseSeparable ``conv_dw``/``bn1``/``se``/``conv_pw``/
``bn2``, the others InvertedResidual ``conv_pw``/``bn1``/``conv_dw``/``bn2``/
``se``/``conv_pwl``/``bn3``, SE ``se.conv_reduce``/``se.conv_expand``), the
last stage's ConvBnAct ``conv``/``bn1``, ``conv_head`` (1x1 conv with bias on
the pooled features) and ``classifier`` (Linear). Its BatchNorms use eps 1e-5
(torchvision and keras 1e-3) and its strided convs pad symmetrically.
"""

from __future__ import annotations

import re

from weights_io.core import Layout
from weights_io.layouts import register_layout, rule_layout

_DEPTHWISE = re.compile(r"expanded_conv_(?:(\d+)_)?depthwise")


def _torchvision_mobilenet_v3(names):
    present = set(names)
    mapping = {"conv": "features.0.0", "conv_bn": "features.0.1", "conv_2": "classifier.0", "logits": "classifier.3"}
    blocks = sorted(int(m.group(1) or 0) for m in map(_DEPTHWISE.fullmatch, names) if m)
    for i in blocks:
        prefix = f"expanded_conv_{i}_" if i else "expanded_conv_"
        module = f"features.{i + 1}.block"
        j = 0
        for part in ("expand", "depthwise"):
            if prefix + part in present:
                mapping[prefix + part] = f"{module}.{j}.0"
                mapping[f"{prefix}{part}_bn"] = f"{module}.{j}.1"
                j += 1
        if prefix + "squeeze_excite_conv" in present:
            mapping[prefix + "squeeze_excite_conv"] = f"{module}.{j}.fc1"
            mapping[prefix + "squeeze_excite_conv_1"] = f"{module}.{j}.fc2"
            j += 1
        mapping[prefix + "project"] = f"{module}.{j}.0"
        mapping[prefix + "project_bn"] = f"{module}.{j}.1"
    last = len(blocks) + 1
    mapping.update({"conv_1": f"features.{last}.0", "conv_1_bn": f"features.{last}.1"})
    return {ours: theirs for ours, theirs in mapping.items() if ours in present}


register_layout(
    Layout(
        name="torchvision-mobilenet-v3",
        map_names=_torchvision_mobilenet_v3,
        description="torchvision mobilenet_v3_large/small: features.0, features.I.block.J(.fc1/.fc2), features.N, "
        "classifier.{0,3} (Linear onto our 1x1 conv head).",
        first_conv="conv",
        options={"padding": "torch", "include_preprocessing": False, "bn_epsilon": 1e-3},
    )
)

# keras.applications' hosted MobileNetV3 .h5 files were written by tf.keras,
# whose layer names had slashes ("expanded_conv_3/squeeze_excite/Conv_1",
# "Conv/BatchNorm"); Keras 3 renamed them to ours and loads those files by
# layer order. This layout lets them load by name.
_BLOCK = r"(expanded_conv(?:_\d+)?)"

register_layout(
    rule_layout(
        "keras-legacy-mobilenet-v3",
        [
            (r"conv", "Conv"),
            (r"conv_bn", "Conv/BatchNorm"),
            (r"conv_1", "Conv_1"),
            (r"conv_1_bn", "Conv_1/BatchNorm"),
            (r"conv_2", "Conv_2"),
            (r"logits", "Logits"),
            (_BLOCK + r"_(expand|depthwise|project)", "{0}/{1}"),
            (_BLOCK + r"_(expand|depthwise|project)_bn", "{0}/{1}/BatchNorm"),
            (_BLOCK + r"_squeeze_excite_conv", "{0}/squeeze_excite/Conv"),
            (_BLOCK + r"_squeeze_excite_conv_1", "{0}/squeeze_excite/Conv_1"),
        ],
        description="tf.keras (Keras 2) MobileNetV3 names, as in keras.applications' hosted .h5 files: Conv, "
        "Conv/BatchNorm, expanded_conv_N/{expand,depthwise,project}[/BatchNorm], .../squeeze_excite/Conv[_1], "
        "Conv_1, Conv_2, Logits.",
        first_conv="conv",
        options={"padding": "keras", "bn_epsilon": 1e-3},
    )
)


# timm's arch_def stages as block counts (mobilenetv3.py _gen_mobilenet_v3), keyed by how many
# blocks the network has: 15 (large), 11 (small); our block i sits in blocks.<stage>.<j>.
_TIMM_STAGES = {15: (1, 2, 3, 4, 2, 3), 11: (1, 2, 3, 2, 3)}
_TIMM_DEPTHWISE_SEPARABLE = {"depthwise": "conv_dw", "depthwise_bn": "bn1", "project": "conv_pw", "project_bn": "bn2"}
_TIMM_INVERTED_RESIDUAL = {"expand": "conv_pw", "expand_bn": "bn1", "depthwise": "conv_dw", "depthwise_bn": "bn2",
                           "project": "conv_pwl", "project_bn": "bn3"}
_TIMM_SE = {"squeeze_excite_conv": "se.conv_reduce", "squeeze_excite_conv_1": "se.conv_expand"}


def _timm_mobilenet_v3(names):
    present = set(names)
    blocks = sorted(int(m.group(1) or 0) for m in map(_DEPTHWISE.fullmatch, names) if m)
    stages = _TIMM_STAGES.get(len(blocks))
    if stages is None:
        return {}
    mapping = {"conv": "conv_stem", "conv_bn": "bn1", "conv_2": "conv_head", "logits": "classifier",
               "conv_1": f"blocks.{len(stages)}.0.conv", "conv_1_bn": f"blocks.{len(stages)}.0.bn1"}
    places = [(s, j) for s, count in enumerate(stages) for j in range(count)]
    for i, (stage, j) in zip(blocks, places):
        prefix = f"expanded_conv_{i}_" if i else "expanded_conv_"
        # a block that does not expand is timm's DepthwiseSeparableConv
        parts = _TIMM_INVERTED_RESIDUAL if prefix + "expand" in present else _TIMM_DEPTHWISE_SEPARABLE
        for ours, theirs in {**parts, **_TIMM_SE}.items():
            mapping[prefix + ours] = f"blocks.{stage}.{j}.{theirs}"
    return {ours: theirs for ours, theirs in mapping.items() if ours in present}


def _timm_mobilenet_v3_shape(key, array):
    """timm's classifier is a Linear (out, in); ours a 1x1 conv."""
    return (array.shape[0], array.size // array.shape[0]) if key == "classifier.weight" else None


register_layout(
    Layout(
        name="timm-mobilenet-v3",
        map_names=_timm_mobilenet_v3,
        description="timm mobilenetv3_large_100/small_100: conv_stem, bn1, blocks.S.J.{conv_pw,conv_dw,conv_pwl,"
        "bn1-3,se.conv_reduce/conv_expand}, blocks.N.0.conv/bn1, conv_head, classifier (BN eps 1e-5).",
        first_conv="conv",
        options={"padding": "torch", "include_preprocessing": False, "bn_epsilon": 1e-5},
        source_shape=_timm_mobilenet_v3_shape,
    )
)
