"""TF-slim ResNet layouts: ``tf_slim.nets.resnet_v1`` / ``resnet_v2`` variable names onto ours.

A TF checkpoint's key is the variable name; its layer part is everything
before the last ``/`` (``resnet_v1_50/conv1/BatchNorm`` + ``gamma``). Under
the scope ``resnet_v{1,2}_{depth}`` (the depth is read off our block counts:
(3, 4, 6, 3) is 50, (3, 4, 23, 3) 101, (3, 8, 36, 3) 152, (3, 24, 36, 3) 200),
stage ``s`` block ``b`` of ours is ``block{s-1}/unit_{b}``:

* v1 (``bottleneck_v1``, ours ``build_resnet50(**TF_SLIM)``): ``conv1`` and
  ``conv1/BatchNorm``; per unit ``conv{1,2,3}`` and ``conv{i}/BatchNorm``,
  ``shortcut`` and ``shortcut/BatchNorm`` (the projection); ``logits``.
* v2 (``bottleneck_v2``, ours ``build_resnet50_v2(**TF_SLIM)``): ``conv1``
  (with biases); per unit ``preact``, ``conv{1,2}`` + ``/BatchNorm``,
  ``conv3`` and ``shortcut`` (biases, no BN); ``postnorm``; ``logits``.

Kernels are HWIO already; ``logits/weights`` is a 1x1 conv (1, 1, 2048, C)
that reshapes into our Dense ``predictions``. Google's checkpoints of 1001
classes put a background class first: `Layout.background_classes` makes the
assign step drop it unless ``keep_background=True``.
"""

from __future__ import annotations

import re

from weights_io.core import Layout
from weights_io.layouts import register_layout, rule_layout

_DEPTHS = {(3, 4, 6, 3): 50, (3, 4, 23, 3): 101, (3, 8, 36, 3): 152, (3, 24, 36, 3): 200}
_BLOCK = re.compile(r"conv([2-5])_block(\d+)_")

# kerasnets.resnet.TF_SLIM (weights_io never imports kerasnets): stride on the 3x3 of the last block of stages
# 2-4 with a 1x1 max-pool shortcut, no conv bias under BN, BN epsilon 1e-5, conv2d_same = symmetric padding,
# stem max-pool TF 'SAME'.
TF_SLIM_OPTIONS = {"stride_placement": "v1.5", "stride_block": "last", "conv_bias": False, "bn_epsilon": 1e-5,
                   "padding": "torch", "stem_pool": "tf_same"}


def _rules(version):
    unit = r"conv([2-5])_block(\d+)"

    def at(suffix):
        return lambda m: f"block{int(m.group(1)) - 1}/unit_{int(m.group(2))}/bottleneck_{version}/{suffix.format(*m.groups()[2:])}"

    common = [(rf"{unit}_([123])_conv", at("conv{0}")), (rf"{unit}_0_conv", at("shortcut")), ("predictions", "logits")]
    if version == "v1":
        return common + [("conv1_conv", "conv1"), ("conv1_bn", "conv1/BatchNorm"),
                         (rf"{unit}_([123])_bn", at("conv{0}/BatchNorm")), (rf"{unit}_0_bn", at("shortcut/BatchNorm"))]
    return common + [("conv1_conv", "conv1"), ("post_bn", "postnorm"), (rf"{unit}_preact_bn", at("preact")),
                     (rf"{unit}_([12])_bn", at("conv{0}/BatchNorm"))]


def _slim_layout(version):
    relative = rule_layout(f"tf-slim-resnet-{version}-relative", _rules(version))

    def map_names(names):
        counts = [0, 0, 0, 0]
        for name in names:
            match = _BLOCK.match(name)
            if match:
                stage = int(match.group(1)) - 2
                counts[stage] = max(counts[stage], int(match.group(2)))
        depth = _DEPTHS.get(tuple(counts))
        if depth is None:  # no TF-slim ResNet has these block counts
            return {}
        scope = f"resnet_{version}_{depth}"
        return {ours: f"{scope}/{theirs}" for ours, theirs in relative.map_names(names).items()}

    block = "bottleneck" if version == "v1" else "preact_bottleneck"
    return Layout(
        name=f"tf-slim-resnet-{version}",
        map_names=map_names,
        description=f"TF-slim nets.resnet_{version} checkpoints (resnet_{version}_50/101/152/200): "
        f"resnet_{version}_N/conv1, block{{1-4}}/unit_{{b}}/bottleneck_{version}/..., logits; build "
        f"kerasnets' {'resnetN' if version == 'v1' else 'resnetN_v2'} with kerasnets.resnet.TF_SLIM "
        f"(block={block!r}). 1001-class checkpoints lose background class 0 unless keep_background=True.",
        first_conv="conv1_conv",
        options=dict(TF_SLIM_OPTIONS),
        background_classes=1001,
    )


TF_SLIM_RESNET_V1 = register_layout(_slim_layout("v1"))
TF_SLIM_RESNET_V2 = register_layout(_slim_layout("v2"))
