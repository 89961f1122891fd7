"""ResNet / ResNeXt / SE-ResNet layouts: torchvision, timm and Cadene names onto ours.

Ours (kerasnets.resnet, keras.applications' names): ``conv1_conv``,
``conv1_bn``, ``conv{s}_block{b}_{i}_conv`` / ``_{i}_bn`` (i = 1..3),
``conv{s}_block{b}_0_conv`` / ``_0_bn`` (projection shortcut),
``conv{s}_block{b}_se`` (SqueezeExcitation), ``predictions``.

torchvision (resnet*, resnext*) and timm (resnet*, seresnet*, seresnext*)
share one scheme: ``conv1``, ``bn1``, ``layer{s-1}.{b-1}.conv{i}`` /
``bn{i}``, ``layer{s-1}.{b-1}.downsample.{0,1}``, ``layer{s-1}.{b-1}.se``
(timm's SEModule: ``fc1``/``fc2`` 1x1 convs), ``fc``. Cadene's
pretrainedmodels SENets (and timm's legacy_senet) keep the blocks' names but
put the stem in ``layer0``, call the SE module ``se_module`` (same ``fc1`` /
``fc2``) and the classifier ``last_linear``. keras.applications' own files
use our names: the identity ``"keras"`` layout.
"""

from __future__ import annotations

from weights_io.layouts import register_layout, rule_layout


def _block(match):
    return f"layer{int(match.group(1)) - 1}.{int(match.group(2)) - 1}"


# torch's ResNets: no conv bias, BN eps 1e-5, symmetric padding, padded stem pool.
_TORCH_STYLE = {"conv_bias": False, "bn_epsilon": 1e-5, "padding": "torch"}


def _register(name, *, stem, se, head, description, options, scoped_options=None):
    """Registers a torchvision-style scheme whose stem prefix, SE module and classifier names vary."""
    rules = [
        (r"conv1_conv", f"{stem}conv1"),
        (r"conv1_bn", f"{stem}bn1"),
        (r"conv(\d)_block(\d+)_([123])_conv", lambda m: f"{_block(m)}.conv{m.group(3)}"),
        (r"conv(\d)_block(\d+)_([123])_bn", lambda m: f"{_block(m)}.bn{m.group(3)}"),
        (r"conv(\d)_block(\d+)_0_conv", lambda m: f"{_block(m)}.downsample.0"),
        (r"conv(\d)_block(\d+)_0_bn", lambda m: f"{_block(m)}.downsample.1"),
        (r"conv(\d)_block(\d+)_se", lambda m: f"{_block(m)}.{se}"),
        (r"predictions", head),
    ]
    register_layout(rule_layout(name, rules, description=description, first_conv="conv1_conv", options=options,
                                scoped_options=scoped_options))


_register(
    "torchvision-resnet", stem="", se="se", head="fc",
    description="torchvision resnet/resnext and timm (se)resnet/(se)resnext: conv1, bn1, layerN.i.conv1-3/bn1-3, "
    "layerN.i.downsample.{0,1}, layerN.i.se.fc1/fc2, fc.",
    options={**_TORCH_STYLE, "stride_placement": "v1.5", "stem_pool": "padded"},
)
_register(
    "cadene-senet", stem="layer0.", se="se_module", head="last_linear",
    description="Cadene pretrainedmodels se_resnet50/101/152, se_resnext50_32x4d/101_32x4d and timm "
    "legacy_seresnet*/legacy_seresnext*: layer0.conv1, layer0.bn1, layerN.i.conv1-3/bn1-3, "
    "layerN.i.downsample.{0,1}, layerN.i.se_module.fc1/fc2, last_linear (build with kerasnets.resnet.CADENE_SENET "
    "options).",
    # Caffe's SE-ResNets stride the first 1x1, SE-ResNeXt the 3x3 (kerasnets.resnet.CADENE_SENET)
    options={**_TORCH_STYLE, "stem_pool": "ceil"},
    scoped_options={"se_resnet50": {"stride_placement": "v1"}, "se_resnet101": {"stride_placement": "v1"},
                    "se_resnet152": {"stride_placement": "v1"}, "se_resnext50_32x4d": {"stride_placement": "v1.5"}},
)
