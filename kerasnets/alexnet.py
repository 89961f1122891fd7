"""AlexNet (Krizhevsky et al. 2012) and ZFNet (Zeiler & Fergus 2013).

Variants are rows of `VARIANTS`: five conv specs, where LRN and max-pooling
follow, and the input size.

* ``"torchvision"``: the "one weird trick" single-GPU net of torchvision
  (64-192-384-256-256, no LRN, torch's symmetric padding), 61,100,840 params.
* ``"original"``: the paper's two-GPU net (96-256-384-384-256, groups=2 on
  conv2/4/5, LRN after conv1 and conv2, 227x227 input), 60,965,224 params.
* ``"caffenet"``: BVLC's CaffeNet, the original net with each max-pool
  before its LRN instead of after (same weights' shapes, other numbers).
* ZFNet: 7x7/2 first conv, 5x5/2 second, LRN, Caffe-style ceil pooling.

Layer names: ``conv1``..``conv5`` (``conv{i}_pad`` before a padded conv),
``lrn1``/``lrn2``, ``pool1``/``pool2``/``pool5``, ``flatten``, ``fc6``,
``fc7``, ``predictions`` (Caffe's fc8).
"""

from __future__ import annotations

import dataclasses

import keras

from kerasnets.builder_utils import (
    check_choice,
    check_common_args,
    check_options,
    finish_model,
    global_pool,
    make_inputs,
    resolve_input_shape,
)
from kerasnets.layers import LocalResponseNormalization
from kerasnets.registry import register_model


@dataclasses.dataclass(frozen=True)
class ConvSpec:
    filters: int
    kernel: int
    stride: int = 1
    padding: int = 0
    groups: int = 1


@dataclasses.dataclass(frozen=True)
class Variant:
    convs: tuple
    lrn_after: tuple  # conv indices (1-based) followed by LRN
    pool_after: dict  # conv index -> pool padding ("valid", or "same" = Caffe ceil mode)
    input_shape: tuple
    pool_before_lrn: bool = False  # CaffeNet's order


PAPER_LRN = dict(size=5, alpha=1e-4, beta=0.75, bias=2.0, convention="paper")

VARIANTS = {
    "torchvision": Variant(
        convs=(ConvSpec(64, 11, 4, 2), ConvSpec(192, 5, 1, 2), ConvSpec(384, 3, 1, 1), ConvSpec(256, 3, 1, 1), ConvSpec(256, 3, 1, 1)),
        lrn_after=(),
        pool_after={1: "valid", 2: "valid", 5: "valid"},
        input_shape=(224, 224, 3),
    ),
    "original": Variant(
        convs=(ConvSpec(96, 11, 4, 0), ConvSpec(256, 5, 1, 2, 2), ConvSpec(384, 3, 1, 1), ConvSpec(384, 3, 1, 1, 2), ConvSpec(256, 3, 1, 1, 2)),
        lrn_after=(1, 2),
        pool_after={1: "valid", 2: "valid", 5: "valid"},
        input_shape=(227, 227, 3),
    ),
    "caffenet": Variant(
        convs=(ConvSpec(96, 11, 4, 0), ConvSpec(256, 5, 1, 2, 2), ConvSpec(384, 3, 1, 1), ConvSpec(384, 3, 1, 1, 2), ConvSpec(256, 3, 1, 1, 2)),
        lrn_after=(1, 2),
        pool_after={1: "valid", 2: "valid", 5: "valid"},
        input_shape=(227, 227, 3),
        pool_before_lrn=True,
    ),
    "zfnet": Variant(
        convs=(ConvSpec(96, 7, 2, 1), ConvSpec(256, 5, 2, 0), ConvSpec(384, 3, 1, 1), ConvSpec(384, 3, 1, 1), ConvSpec(256, 3, 1, 1)),
        lrn_after=(1, 2),
        pool_after={1: "same", 2: "same", 5: "valid"},
        input_shape=(224, 224, 3),
    ),
}
ALEXNET_OPTIONS = ("variant", "dropout", "lrn")


def alexnet_features(x, variant, lrn=None):
    """Conv1..conv5 with their LRN and pooling; returns the pool5 map."""
    lrn = dict(PAPER_LRN, **(lrn or {}))
    for i, spec in enumerate(variant.convs, start=1):
        if spec.padding:
            x = keras.layers.ZeroPadding2D(spec.padding, name=f"conv{i}_pad")(x)
        x = keras.layers.Conv2D(
            spec.filters, spec.kernel, strides=spec.stride, groups=spec.groups, activation="relu", name=f"conv{i}"
        )(x)
        steps = [step for step in ("lrn", "pool") if i in (variant.lrn_after if step == "lrn" else variant.pool_after)]
        for step in reversed(steps) if variant.pool_before_lrn else steps:
            if step == "lrn":
                x = LocalResponseNormalization(**lrn, name=f"lrn{i}")(x)
            else:
                x = keras.layers.MaxPooling2D(3, strides=2, padding=variant.pool_after[i], name=f"pool{i}")(x)
    return x


def _build(variant_name, include_top, weights, input_shape, input_tensor, pooling, classes,
           classifier_activation, name, dropout=0.5, lrn=None):
    variant = VARIANTS[variant_name]
    model_name = name or ("zfnet" if variant_name == "zfnet" else f"alexnet_{variant_name}")
    check_common_args(include_top=include_top, weights=weights, pooling=pooling, classes=classes,
                      classifier_activation=classifier_activation)
    shape = resolve_input_shape(input_shape, default_shape=variant.input_shape, min_size=variant.input_shape[0] if include_top else 63,
                                fixed_size=include_top, model_name=model_name)
    inputs = make_inputs(shape, input_tensor)
    x = alexnet_features(inputs, variant, lrn)
    if include_top:
        x = keras.layers.Flatten(name="flatten")(x)
        x = keras.layers.Dropout(dropout, name="fc6_dropout")(x)
        x = keras.layers.Dense(4096, activation="relu", name="fc6")(x)
        x = keras.layers.Dropout(dropout, name="fc7_dropout")(x)
        x = keras.layers.Dense(4096, activation="relu", name="fc7")(x)
        x = keras.layers.Dense(classes, activation=classifier_activation, name="predictions")(x)
    else:
        x = global_pool(x, pooling)
    return finish_model(inputs, x, input_tensor=input_tensor, name=model_name, weights=weights)


@register_model("alexnet", family="alexnet", input_shape=VARIANTS["torchvision"].input_shape,
                option_defaults={"variant": "torchvision", "lrn": None},
                reference="torchvision alexnet (variant='torchvision'); Krizhevsky 2012 (variant='original')")
def build_alexnet(include_top=True, weights=None, input_shape=None, input_tensor=None, pooling=None,
                  classes=1000, classifier_activation="softmax", name=None, **options):
    """AlexNet.

    Args:
        include_top, weights, input_shape, input_tensor, pooling, classes,
            classifier_activation, name: as in keras.applications.
        variant: `"torchvision"` (default; 224x224 input), `"original"`
            (the paper's grouped convs and LRN; 227x227 input) or
            `"caffenet"` (BVLC CaffeNet: as original, pooling before LRN).
        dropout: rate before fc6 and fc7 (0.5).
        lrn: overrides of the LRN settings (`size`, `alpha`, `beta`, `bias`,
            `convention`; paper defaults k=2, n=5, alpha=1e-4, beta=0.75).
    """
    check_options(options, ALEXNET_OPTIONS, "alexnet")
    variant = check_choice(options.pop("variant", "torchvision"), ("torchvision", "original", "caffenet"), "variant")
    return _build(variant, include_top, weights, input_shape, input_tensor, pooling, classes,
                  classifier_activation, name, **options)


@register_model("zfnet", family="zfnet", input_shape=VARIANTS["zfnet"].input_shape,
                reference="Zeiler & Fergus 2013 (computed)")
def build_zfnet(include_top=True, weights=None, input_shape=None, input_tensor=None, pooling=None,
                classes=1000, classifier_activation="softmax", name=None, **options):
    """ZFNet: AlexNet with a 7x7/2 first conv and a 5x5/2 second conv.

    Options: `dropout`, `lrn` as for `build_alexnet`.
    """
    check_options(options, ("dropout", "lrn"), "zfnet")
    return _build("zfnet", include_top, weights, input_shape, input_tensor, pooling, classes,
                  classifier_activation, name, **options)
