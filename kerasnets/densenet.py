"""DenseNet (Huang et al. 2017): 121/161/169/201 and the notes' small DenseNet.

One generic builder, `build_densenet`; variants are rows of
`DENSENET_VARIANTS` (blocks per dense block, growth rate, stem width).

Layer names are keras.applications' (``keras.applications.DenseNet121``), so
its weight files load by name; torchvision's are mapped onto them by
``weights_io/layouts/densenet.py``:

* stem: ``conv1_pad``, ``conv1_conv``, ``conv1_bn``, ``conv1_relu``,
  ``pool1_pad``, ``pool1``;
* layer ``b`` (1-based) of dense block ``s`` (2..5) is ``conv{s}_block{b}``:
  ``_0_bn``, ``_0_relu``, then (bottleneck) ``_1_conv`` 1x1 (bn_size *
  growth), ``_1_bn``, ``_1_relu``, then ``_2_conv`` 3x3 (growth) and
  ``_concat``;
* transition after block ``s``: ``pool{s}_bn``, ``pool{s}_relu``,
  ``pool{s}_conv`` (1x1, ``int(C * compression)``), ``pool{s}_pool``;
* head: ``bn``, ``relu``, ``avg_pool``, ``predictions``.

The notes' (d2l) small DenseNet is this builder with its options::

    build_densenet((4, 4, 4, 4), growth_rate=32, init_filters=64, bn_size=None,
                   conv_bias=True, classes=10, input_shape=(96, 96, 1))

(plain BN-ReLU-Conv3x3 layers without the 1x1 bottleneck, torch's default
conv biases, transitions halving the channels.)

``features=True`` (with ``include_top=False``, ``pooling=None``) returns
``[C1, C2, C3, C4, C5]`` at strides 2..32: ``conv1_relu``, the outputs of
dense blocks 1-3 (before each transition), and the final ``relu``.
"""

from __future__ import annotations

import keras

from kerasnets.builder_utils import (
    check_common_args,
    check_features,
    features_or_head,
    finish_model,
    make_inputs,
    register_variant,
    resolve_input_shape,
)
from kerasnets.layers.batch_norm import BatchNormalization

DEFAULT_SHAPE = (224, 224, 3)

DENSENET_VARIANTS = {
    "densenet121": dict(blocks=(6, 12, 24, 16), growth_rate=32, init_filters=64),
    "densenet161": dict(blocks=(6, 12, 36, 24), growth_rate=48, init_filters=96),
    "densenet169": dict(blocks=(6, 12, 32, 32), growth_rate=32, init_filters=64),
    "densenet201": dict(blocks=(6, 12, 48, 32), growth_rate=32, init_filters=64),
}

_REFERENCES = {
    "densenet121": "torchvision densenet121 / keras.applications.DenseNet121",
    "densenet161": "torchvision densenet161",
    "densenet169": "torchvision densenet169 / keras.applications.DenseNet169",
    "densenet201": "torchvision densenet201 / keras.applications.DenseNet201",
}

DENSENET_OPTIONS = ("bn_size", "compression", "conv_bias", "bn_epsilon", "features")


def _bn_relu(x, *, name, epsilon):
    x = BatchNormalization(epsilon=epsilon, name=f"{name}_bn")(x)
    return keras.layers.Activation("relu", name=f"{name}_relu")(x)


def dense_layer(x, growth_rate, *, name, bn_size, conv_bias, bn_epsilon):
    """BN-ReLU-(Conv1x1(bn_size*k)-BN-ReLU)-Conv3x3(k), concatenated to the input."""
    y = _bn_relu(x, name=f"{name}_0", epsilon=bn_epsilon)
    if bn_size:
        y = keras.layers.Conv2D(bn_size * growth_rate, 1, use_bias=conv_bias, name=f"{name}_1_conv")(y)
        y = _bn_relu(y, name=f"{name}_1", epsilon=bn_epsilon)
    y = keras.layers.Conv2D(growth_rate, 3, padding="same", use_bias=conv_bias, name=f"{name}_2_conv")(y)
    return keras.layers.Concatenate(name=f"{name}_concat")([x, y])


def transition(x, *, name, compression, conv_bias, bn_epsilon):
    """BN-ReLU-Conv1x1(compression*C)-AvgPool2."""
    y = _bn_relu(x, name=name, epsilon=bn_epsilon)
    y = keras.layers.Conv2D(int(x.shape[-1] * compression), 1, use_bias=conv_bias, name=f"{name}_conv")(y)
    return keras.layers.AveragePooling2D(2, strides=2, name=f"{name}_pool")(y)


def _positive_int(value, arg):
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"`{arg}` must be a positive integer. Received: {arg}={value!r}")


def _check(blocks, growth_rate, init_filters, bn_size, compression, conv_bias, bn_epsilon, features, include_top,
           pooling):
    if not (isinstance(blocks, (tuple, list)) and len(blocks) == 4
            and all(isinstance(b, int) and not isinstance(b, bool) and b >= 1 for b in blocks)):
        raise ValueError(f"`blocks` must be 4 positive integers (layers per dense block). Received: blocks={blocks!r}")
    _positive_int(growth_rate, "growth_rate")
    _positive_int(init_filters, "init_filters")
    if bn_size is not None:
        _positive_int(bn_size, "bn_size")
    if not isinstance(compression, (int, float)) or not 0 < compression <= 1:
        raise ValueError(f"`compression` must be in (0, 1]. Received: compression={compression!r}")
    if not isinstance(conv_bias, bool):
        raise ValueError(f"`conv_bias` must be True or False. Received: conv_bias={conv_bias!r}")
    if not isinstance(bn_epsilon, (int, float)) or bn_epsilon <= 0:
        raise ValueError(f"`bn_epsilon` must be a positive number. Received: bn_epsilon={bn_epsilon!r}")
    check_features(features, include_top, pooling)


def build_densenet(
    blocks=(6, 12, 24, 16),
    growth_rate=32,
    init_filters=64,
    include_top=True,
    weights=None,
    input_shape=None,
    input_tensor=None,
    pooling=None,
    classes=1000,
    classifier_activation="softmax",
    name=None,
    *,
    bn_size=4,
    compression=0.5,
    conv_bias=False,
    bn_epsilon=1.001e-5,
    features=False,
):
    """Builds a DenseNet; see the module docstring for layer names.

    Args:
        blocks: layers in each of the 4 dense blocks.
        growth_rate: channels each dense layer adds (k).
        init_filters: width of the 7x7/2 stem conv.
        include_top, weights, input_shape, input_tensor, pooling, classes,
            classifier_activation, name: as in keras.applications.
        bn_size: the 1x1 bottleneck is ``bn_size * growth_rate`` wide (4 in
            DenseNet-BC); None drops it (the notes' BN-ReLU-Conv3x3 layers).
        compression: transition width factor theta (0.5 halves channels).
        conv_bias: biases on the convolutions (torch's default in the notes'
            code; DenseNet-BC has none).
        bn_epsilon: BatchNormalization epsilon (keras 1.001e-5, torch 1e-5).
        features: return [C1..C5] (strides 2..32); needs
            ``include_top=False`` and ``pooling=None``.

    Returns:
        A `keras.Model` (with a list of 5 outputs when `features=True`).
    """
    model_name = name or "densenet"
    check_common_args(
        include_top=include_top, weights=weights, pooling=pooling, classes=classes,
        classifier_activation=classifier_activation,
    )
    _check(blocks, growth_rate, init_filters, bn_size, compression, conv_bias, bn_epsilon, features, include_top,
           pooling)
    shape = resolve_input_shape(input_shape, default_shape=DEFAULT_SHAPE, min_size=32, model_name=model_name)
    inputs = make_inputs(shape, input_tensor)
    layer_opts = dict(bn_size=bn_size, conv_bias=conv_bias, bn_epsilon=bn_epsilon)

    x = keras.layers.ZeroPadding2D(3, name="conv1_pad")(inputs)
    x = keras.layers.Conv2D(init_filters, 7, strides=2, use_bias=conv_bias, name="conv1_conv")(x)
    x = _bn_relu(x, name="conv1", epsilon=bn_epsilon)
    taps = [x]
    # Zero padding equals torch's -inf padding here: the pool reads ReLU outputs.
    x = keras.layers.ZeroPadding2D(1, name="pool1_pad")(x)
    x = keras.layers.MaxPooling2D(3, strides=2, name="pool1")(x)
    for stage, count in enumerate(blocks, start=2):
        for b in range(1, count + 1):
            x = dense_layer(x, growth_rate, name=f"conv{stage}_block{b}", **layer_opts)
        if stage < 5:
            taps.append(x)
            x = transition(x, name=f"pool{stage}", compression=compression, conv_bias=conv_bias,
                           bn_epsilon=bn_epsilon)
    x = BatchNormalization(epsilon=bn_epsilon, name="bn")(x)
    x = keras.layers.Activation("relu", name="relu")(x)
    taps.append(x)

    outputs = features_or_head(x, taps, features=features, include_top=include_top, pooling=pooling,
                               classes=classes, classifier_activation=classifier_activation)
    return finish_model(inputs, outputs, input_tensor=input_tensor, name=model_name, weights=weights)


def _register(key):
    row = DENSENET_VARIANTS[key]
    return register_variant(key, build_densenet, family="densenet", reference=_REFERENCES[key],
                            allowed=DENSENET_OPTIONS, default_shape=DEFAULT_SHAPE,
                            summary=f"{key}: dense blocks {row['blocks']}, growth {row['growth_rate']}", **row)


build_densenet121 = _register("densenet121")
build_densenet161 = _register("densenet161")
build_densenet169 = _register("densenet169")
build_densenet201 = _register("densenet201")
