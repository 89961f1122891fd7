"""ResNet / ResNeXt / SE-ResNet layout: torchvision and timm names onto ours.

Ours (kerasnets.resnet, keras.applications' names): ``conv1_conv``,
``conv1_bn``, ``conv{s}_block{b}_{i}_conv`` / ``_{i}_bn`` (i = 1..3),
``conv{s}_block{b}_0_conv`` / ``_0_bn`` (projection shortcut),
``conv{s}_block{b}_se`` (SqueezeExcitation), ``predictions``.

torchvision (resnet*, resnext*) and timm (resnet*, seresnet*, seresnext*)
share one scheme: ``conv1``, ``bn1``, ``layer{s-1}.{b-1}.conv{i}`` /
``bn{i}``, ``layer{s-1}.{b-1}.downsample.{0,1}``, ``layer{s-1}.{b-1}.se``
(timm's SEModule: ``fc1``/``fc2`` 1x1 convs), ``fc``. keras.applications'
own files use our names: the identity ``"keras"`` layout.
"""

from __future__ import annotations

from weights_io.layouts import register_layout, rule_layout


def _block(match):
    return f"layer{int(match.group(1)) - 1}.{int(match.group(2)) - 1}"


register_layout(
    rule_layout(
        "torchvision-resnet",
        [
            (r"conv1_conv", "conv1"),
            (r"conv1_bn", "bn1"),
            (r"conv(\d)_block(\d+)_([123])_conv", lambda m: f"{_block(m)}.conv{m.group(3)}"),
            (r"conv(\d)_block(\d+)_([123])_bn", lambda m: f"{_block(m)}.bn{m.group(3)}"),
            (r"conv(\d)_block(\d+)_0_conv", lambda m: f"{_block(m)}.downsample.0"),
            (r"conv(\d)_block(\d+)_0_bn", lambda m: f"{_block(m)}.downsample.1"),
            (r"conv(\d)_block(\d+)_se", lambda m: f"{_block(m)}.se"),
            (r"predictions", "fc"),
        ],
        description="torchvision resnet/resnext and timm (se)resnet/(se)resnext: conv1, bn1, layerN.i.conv1-3/bn1-3, "
        "layerN.i.downsample.{0,1}, layerN.i.se.fc1/fc2, fc.",
        first_conv="conv1_conv",
    )
)
