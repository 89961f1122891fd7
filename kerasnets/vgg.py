"""VGG 11/13/16/19 (Simonyan & Zisserman 2014), plain and with batch norm.

Layer names follow keras.applications, so its weight files load by name:
``block{b}_conv{c}`` (3x3 conv, ReLU), ``block{b}_pool``, ``flatten``,
``fc1``, ``fc2``, ``predictions``. The BN variants (torchvision's
``vgg16_bn``) add ``block{b}_conv{c}_bn`` and ``block{b}_conv{c}_relu``
(conv without activation -> BN(eps 1e-5) -> ReLU).

``fully_convolutional=True`` turns fc1/fc2/predictions into 7x7/1x1/1x1
convolutions with the same names and the same weights (reshaped), so any
input of at least 224x224 gives a map of class scores: the notes' "the FC
layers become convolutions, so test images are not limited in size".
"""

from __future__ import annotations

import keras

from kerasnets.builder_utils import (
    check_common_args,
    finish_model,
    global_pool,
    make_inputs,
    register_variant,
    resolve_input_shape,
)
from kerasnets.layers.batch_norm import BatchNormalization

# Convolutions per block; every block doubles the width up to 512.
VGG_BLOCKS = {
    "vgg11": (1, 1, 2, 2, 2),
    "vgg13": (2, 2, 2, 2, 2),
    "vgg16": (2, 2, 3, 3, 3),
    "vgg19": (2, 2, 4, 4, 4),
}
VGG_WIDTHS = (64, 128, 256, 512, 512)
FC_UNITS = 4096
DEFAULT_SHAPE = (224, 224, 3)
VGG_OPTIONS = ("batch_norm", "fully_convolutional", "dropout", "bn_epsilon")


def vgg_features(x, blocks, *, batch_norm=False, bn_epsilon=1e-5):
    """The five conv blocks; returns the pool5 feature map."""
    for b, (convs, width) in enumerate(zip(blocks, VGG_WIDTHS), start=1):
        for c in range(1, convs + 1):
            name = f"block{b}_conv{c}"
            if batch_norm:
                x = keras.layers.Conv2D(width, 3, padding="same", name=name)(x)
                x = BatchNormalization(epsilon=bn_epsilon, momentum=0.9, name=f"{name}_bn")(x)
                x = keras.layers.ReLU(name=f"{name}_relu")(x)
            else:
                x = keras.layers.Conv2D(width, 3, padding="same", activation="relu", name=name)(x)
        x = keras.layers.MaxPooling2D(2, strides=2, name=f"block{b}_pool")(x)
    return x


def _classifier(x, *, classes, classifier_activation, dropout, fully_convolutional):
    if fully_convolutional:
        x = keras.layers.Conv2D(FC_UNITS, 7, activation="relu", name="fc1")(x)
        x = keras.layers.Dropout(dropout, name="fc1_dropout")(x)
        x = keras.layers.Conv2D(FC_UNITS, 1, activation="relu", name="fc2")(x)
        x = keras.layers.Dropout(dropout, name="fc2_dropout")(x)
        return keras.layers.Conv2D(classes, 1, activation=classifier_activation, name="predictions")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    x = keras.layers.Dense(FC_UNITS, activation="relu", name="fc1")(x)
    x = keras.layers.Dropout(dropout, name="fc1_dropout")(x)
    x = keras.layers.Dense(FC_UNITS, activation="relu", name="fc2")(x)
    x = keras.layers.Dropout(dropout, name="fc2_dropout")(x)
    return keras.layers.Dense(classes, activation=classifier_activation, name="predictions")(x)


def build_vgg(
    depth=16,
    include_top=True,
    weights=None,
    input_shape=None,
    input_tensor=None,
    pooling=None,
    classes=1000,
    classifier_activation="softmax",
    name=None,
    *,
    batch_norm=False,
    fully_convolutional=False,
    dropout=0.5,
    bn_epsilon=1e-5,
):
    """Builds a VGG network; see the module docstring for layer names.

    Args:
        depth: 11, 13, 16 or 19.
        include_top, weights, input_shape, input_tensor, pooling, classes,
            classifier_activation, name: as in keras.applications.
        batch_norm: BN after every conv (torchvision's ``vgg*_bn``).
        fully_convolutional: fc layers as convolutions (any input >= 224;
            the output is a (H', W', classes) score map).
        dropout: rate after fc1 and fc2 (0.5 in the paper and torchvision;
            inactive at inference, so keras.applications outputs match).
        bn_epsilon: BatchNormalization epsilon (torch's 1e-5 by default).

    Returns:
        A `keras.Model`.
    """
    key = f"vgg{depth}"
    if key not in VGG_BLOCKS:
        raise ValueError(f"`depth` must be one of (11, 13, 16, 19). Received: depth={depth!r}")
    model_name = name or key + ("_bn" if batch_norm else "")
    check_common_args(
        include_top=include_top, weights=weights, pooling=pooling, classes=classes,
        classifier_activation=classifier_activation,
    )
    if not 0 <= dropout < 1:
        raise ValueError(f"`dropout` must be in [0, 1). Received: dropout={dropout!r}")
    shape = resolve_input_shape(
        input_shape,
        default_shape=DEFAULT_SHAPE,
        min_size=224 if include_top else 32,
        fixed_size=include_top and not fully_convolutional,
        model_name=model_name,
    )
    inputs = make_inputs(shape, input_tensor)
    x = vgg_features(inputs, VGG_BLOCKS[key], batch_norm=batch_norm, bn_epsilon=bn_epsilon)
    if include_top:
        x = _classifier(
            x, classes=classes, classifier_activation=classifier_activation, dropout=dropout,
            fully_convolutional=fully_convolutional,
        )
    else:
        x = global_pool(x, pooling)
    return finish_model(inputs, x, input_tensor=input_tensor, name=model_name, weights=weights)


def _register(depth, batch_norm):
    key = f"vgg{depth}" + ("_bn" if batch_norm else "")
    keras_twin = depth in (16, 19) and not batch_norm
    reference = f"keras.applications.VGG{depth} / torchvision {key}" if keras_twin else f"torchvision {key}"
    summary = f"VGG-{depth}" + (" with batch norm" if batch_norm else "")
    return register_variant(key, build_vgg, family="vgg", reference=reference, allowed=VGG_OPTIONS,
                            summary=summary, default_shape=DEFAULT_SHAPE, depth=depth, batch_norm=batch_norm)


build_vgg11 = _register(11, False)
build_vgg13 = _register(13, False)
build_vgg16 = _register(16, False)
build_vgg19 = _register(19, False)
build_vgg11_bn = _register(11, True)
build_vgg13_bn = _register(13, True)
build_vgg16_bn = _register(16, True)
build_vgg19_bn = _register(19, True)
