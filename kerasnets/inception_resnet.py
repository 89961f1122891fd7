"""Inception-ResNet v1 and v2 (Szegedy et al. 2016).

A residual block runs an Inception branch table (`kerasnets.inception`)
on x, concatenates, projects back to x's width with a linear 1x1 conv (with
bias, no BN), scales the residual and adds it: ``relu(x + scale * up)``. The
last block8 is linear (no ReLU, scale 1.0), as in keras.applications and
TF-slim. Variants are rows of `VARIANTS`: stem, block tables, repeats and
residual scales (0.17 / 0.1 / 0.2), reductions.

* v2 reproduces keras.applications InceptionResNetV2 (BN without gamma,
  55,873,736 weights counting BN moving stats).
* v1 follows the paper's Fig. 14 stem and widths (256 / 896 / 1792), in
  the block structure of FaceNet's Inception-ResNet-v1 (5 / 10 / 5 blocks +
  the linear block8), BN with gamma.

Layer names (keras.applications' where it names them): stem ``conv1a``,
``conv2a``, ``conv2b``, ``pool1``, ``conv3b``, ``conv4a`` (v1: ``conv4b``;
v2: ``pool2``), each unit ``_conv``/``_bn``/``_relu``; ``mixed_5b`` (v2),
``block35_{i}``, ``mixed_6a``, ``block17_{i}``, ``mixed_7a``,
``block8_{i}``; inside a block the branch units are
``{block}_mixed_branch{b}_{j}``, then ``{block}_mixed`` (concatenation),
``{block}_conv`` (the 1x1 projection), ``{block}_scale``, ``{block}_add``,
``{block}_ac``; v2's ``conv_7b``, ``conv_7b_bn``, ``conv_7b_ac``; head
``avg_pool``, ``dropout``, ``predictions``.
"""

from __future__ import annotations

import dataclasses

import keras

from kerasnets.builder_utils import (
    STANDARD_ARGUMENTS,
    check_common_args,
    check_options,
    finish_model,
    make_inputs,
    resolve_input_shape,
)
from kerasnets.layers.batch_norm import BatchNormalization
from kerasnets.inception import (
    SLIM_STEM,
    Conv,
    ConvStyle,
    Pool,
    check_epsilon,
    check_rate,
    classifier_head,
    inception_module,
    reduction_a,
    sequence,
)
from kerasnets.registry import register_model


def residual_block(x, branches, *, scale, style, name, activation="relu"):
    """Inception-ResNet block: relu(x + scale * conv1x1(concat(branches(x))))."""
    mixed = inception_module(x, branches, style=style, name=f"{name}_mixed")
    up = keras.layers.Conv2D(x.shape[-1], 1, use_bias=True, name=f"{name}_conv")(mixed)
    up = keras.layers.Rescaling(scale, name=f"{name}_scale")(up)
    x = keras.layers.Add(name=f"{name}_add")([x, up])
    if activation:
        x = keras.layers.Activation(activation, name=f"{name}_ac")(x)
    return x


def _block35(b1, b2a, b2b):
    return ((Conv(32, 1),), (Conv(32, 1), Conv(b1, 3)), (Conv(32, 1), Conv(b2a, 3), Conv(b2b, 3)))


def _block17(b0, b1a, b1b, b1c):
    return ((Conv(b0, 1),), (Conv(b1a, 1), Conv(b1b, (1, 7)), Conv(b1c, (7, 1))))


def _block8(b1b, b1c):
    return ((Conv(192, 1),), (Conv(192, 1), Conv(b1b, (1, 3)), Conv(b1c, (3, 1))))


def reduction_b(b0, b1, b2a, b2b):
    """17 -> 8 reduction of Inception-ResNet (paper Fig. 12 / keras mixed_7a)."""
    return (
        (Conv(256, 1), Conv(b0, 3, 2, "valid")),
        (Conv(256, 1), Conv(b1, 3, 2, "valid")),
        (Conv(256, 1), Conv(b2a, 3), Conv(b2b, 3, 2, "valid")),
        (Pool("max", 3, 2, "valid"),),
    )


@dataclasses.dataclass(frozen=True)
class Variant:
    stem: tuple  # steps after SLIM_STEM
    stem_module: tuple | None  # v2's mixed_5b
    blocks: tuple  # (name, table, repeats, scale) per stage
    reductions: tuple  # (name, table) after the first and second stage
    style: ConvStyle
    final_conv: int | None  # v2's conv_7b width
    dropout: float


V2_MIXED_5B = (
    (Conv(96, 1),),
    (Conv(48, 1), Conv(64, 5)),
    (Conv(64, 1), Conv(96, 3), Conv(96, 3)),
    (Pool("avg", 3, 1, "same"), Conv(64, 1)),
)

VARIANTS = {
    "v1": Variant(
        stem=(Conv(256, 3, 2, "valid", "conv4b"),),
        stem_module=None,
        blocks=(("block35", _block35(32, 32, 32), 5, 0.17), ("block17", _block17(128, 128, 128, 128), 10, 0.1),
                ("block8", _block8(192, 192), 6, 0.2)),
        reductions=(("mixed_6a", reduction_a(192, 192, 256, 384)), ("mixed_7a", reduction_b(384, 256, 256, 256))),
        style=ConvStyle(bn_scale=True),
        final_conv=None,
        dropout=0.2,
    ),
    "v2": Variant(
        stem=(Pool("max", 3, 2, "valid", "pool2"),),
        stem_module=V2_MIXED_5B,
        blocks=(("block35", _block35(32, 48, 64), 10, 0.17), ("block17", _block17(192, 128, 160, 192), 20, 0.1),
                ("block8", _block8(224, 256), 10, 0.2)),
        reductions=(("mixed_6a", reduction_a(256, 256, 384, 384)), ("mixed_7a", reduction_b(384, 288, 288, 320))),
        style=ConvStyle(),
        final_conv=1536,
        dropout=0.0,
    ),
}


def _build(variant_name, include_top, weights, input_shape, input_tensor, pooling, classes, classifier_activation,
           name, options):
    model_name = name or f"inception_resnet_{variant_name}"
    check_options(options, ("dropout", "bn_epsilon", "bn_scale"), model_name, arguments=STANDARD_ARGUMENTS)
    variant = VARIANTS[variant_name]
    dropout = check_rate(options.get("dropout", variant.dropout), "dropout")
    bn_scale = options.get("bn_scale", variant.style.bn_scale)
    if not isinstance(bn_scale, bool):
        raise ValueError(f"`bn_scale` must be True or False. Received: bn_scale={bn_scale!r}")
    style = dataclasses.replace(variant.style, bn_epsilon=check_epsilon(options.get("bn_epsilon", 1e-3)),
                                bn_scale=bn_scale)
    check_common_args(include_top=include_top, weights=weights, pooling=pooling, classes=classes,
                      classifier_activation=classifier_activation)
    shape = resolve_input_shape(input_shape, default_shape=(299, 299, 3), min_size=75, model_name=model_name)
    inputs = make_inputs(shape, input_tensor)
    x = sequence(inputs, SLIM_STEM + variant.stem, style=style)
    if variant.stem_module:
        x = inception_module(x, variant.stem_module, style=style, name="mixed_5b")
    for stage, (block, table, repeats, scale) in enumerate(variant.blocks):
        for i in range(1, repeats + 1):
            last = stage == len(variant.blocks) - 1 and i == repeats
            # The last block8 is linear and unscaled (keras.applications, TF-slim).
            x = residual_block(x, table, scale=1.0 if last else scale, style=style, name=f"{block}_{i}",
                               activation=None if last else "relu")
        if stage < len(variant.reductions):
            reduction, reduction_table = variant.reductions[stage]
            x = inception_module(x, reduction_table, style=style, name=reduction)
    if variant.final_conv:
        x = keras.layers.Conv2D(variant.final_conv, 1, use_bias=False, name="conv_7b")(x)
        x = BatchNormalization(epsilon=style.bn_epsilon, scale=style.bn_scale, name="conv_7b_bn")(x)
        x = keras.layers.Activation("relu", name="conv_7b_ac")(x)
    x = classifier_head(x, include_top=include_top, pooling=pooling, classes=classes,
                        classifier_activation=classifier_activation, dropout=dropout)
    return finish_model(inputs, x, input_tensor=input_tensor, name=model_name, weights=weights)


@register_model("inception_resnet_v1", family="inception", input_shape=(299, 299, 3),
                option_defaults={"bn_scale": True},
                reference="Szegedy et al. 2016 Fig. 14-20; FaceNet Inception-ResNet-v1 blocks (computed)")
def build_inception_resnet_v1(include_top=True, weights=None, input_shape=None, input_tensor=None, pooling=None,
                              classes=1000, classifier_activation="softmax", name=None, **options):
    """Inception-ResNet v1.

    Args:
        include_top, weights, input_shape, input_tensor, pooling, classes,
            classifier_activation, name: as in keras.applications.
        dropout: rate before `predictions` (0.2).
        bn_epsilon: BN epsilon (1e-3).
        bn_scale: BN with a learnt gamma (True).

    Returns:
        A `keras.Model`.
    """
    return _build("v1", include_top, weights, input_shape, input_tensor, pooling, classes, classifier_activation,
                  name, options)


@register_model("inception_resnet_v2", family="inception", input_shape=(299, 299, 3),
                reference="keras.applications InceptionResNetV2", option_defaults={"bn_scale": False})
def build_inception_resnet_v2(include_top=True, weights=None, input_shape=None, input_tensor=None, pooling=None,
                              classes=1000, classifier_activation="softmax", name=None, **options):
    """Inception-ResNet v2, as keras.applications builds it.

    Args:
        include_top, weights, input_shape, input_tensor, pooling, classes,
            classifier_activation, name: as in keras.applications.
        dropout: rate before `predictions` (0, as keras).
        bn_epsilon: BN epsilon (1e-3).
        bn_scale: BN with a learnt gamma: False as keras.applications (and
            TF-slim), True for timm's inception_resnet_v2 weights.

    Returns:
        A `keras.Model`.
    """
    return _build("v2", include_top, weights, input_shape, input_tensor, pooling, classes, classifier_activation,
                  name, options)
