"""MobileNetV3 Large and Small (Howard et al. 2019).

The block tables are data (`MOBILENET_V3_BLOCKS`, rows ``(kernel, expanded,
out, se, activation, stride)`` as in the paper and REFERENCE.md); one
generic builder, `build_mobilenet_v3`, walks them.

Layer names are keras.applications' (``keras.applications.MobileNetV3Large``)
so its weight files load by name; torchvision's are mapped onto them by
``weights_io/layouts/mobilenet_v3.py``:

* ``rescaling`` (with ``include_preprocessing``), ``conv_pad`` (torch
  padding), ``conv``, ``conv_bn``, ``conv_act``;
* block ``i`` has prefix ``expanded_conv_`` (i = 0) or ``expanded_conv_{i}_``:
  ``expand``/``expand_bn``/``expand_act`` (absent when expanded == input
  width), ``depthwise_pad`` (stride 2), ``depthwise``/``depthwise_bn``/
  ``depthwise_act``, ``squeeze_excite_avg_pool``, ``squeeze_excite_conv``,
  ``squeeze_excite_relu``, ``squeeze_excite_conv_1``,
  ``squeeze_excite_hard_sigmoid``, ``squeeze_excite_mul``, ``project``/
  ``project_bn``, ``add`` (stride 1 and input width == output width);
* head: ``conv_1``/``conv_1_bn``/``conv_1_act`` (1x1 to 6x the last width),
  then with ``include_top``: ``avg_pool``, ``conv_2`` (1x1 conv with bias,
  1280/1024), ``conv_2_act``, ``dropout``, ``logits`` (1x1 conv),
  ``flatten``, ``predictions`` (the classifier activation).

keras.applications vs torchvision. Both have the same weights; they differ in
three places, each an option here:

* the classifier: keras uses 1x1 convs ``conv_2``/``logits`` on the pooled
  map, torchvision ``Linear`` layers (``classifier.0``/``classifier.3``). We
  keep keras' convs; the layout maps the Linear weights onto them (a
  (out, in) matrix is a 1x1 kernel), so one model serves both.
* preprocessing: keras builds ``Rescaling(1/127.5, offset=-1)`` into the
  model (``include_preprocessing=True``, the default, input 0..255);
  torchvision expects ImageNet mean/std normalised input
  (``include_preprocessing=False``, normalise outside the model).
* strided padding: keras pads the stem 'same' (bottom/right) and strided
  depthwise convs with ``correct_pad``; torchvision pads symmetrically
  (``padding="torch"``).

keras quirks kept: the stem is 16 wide whatever `alpha`; the head width is
scaled only for ``alpha > 1``; ``minimalistic`` (3x3 kernels, ReLU, no SE);
dropout 0.2 before ``logits``; BN epsilon 1e-3, momentum 0.999 (torchvision
uses the same epsilon; timm 1e-5: ``bn_epsilon=1e-5``).

``features=True`` (with ``include_top=False``, ``pooling=None``) returns
``[C1..C5]``: the last block output at strides 2, 4, 8, 16 (the stem for
Small, whose first block already has stride 2) and ``conv_1_act`` (stride 32).
"""

from __future__ import annotations

import keras

from kerasnets.builder_utils import (
    check_choice,
    check_common_args,
    check_features,
    finish_model,
    global_pool,
    make_inputs,
    register_variant,
    resolve_input_shape,
)
from kerasnets.layers.batch_norm import BatchNormalization

DEFAULT_SHAPE = (224, 224, 3)
STEM_FILTERS = 16
PADDINGS = ("keras", "torch")

# (kernel, expanded width, output width, squeeze-excite, activation, stride)
MOBILENET_V3_BLOCKS = {
    "large": (
        (3, 16, 16, False, "relu", 1),
        (3, 64, 24, False, "relu", 2),
        (3, 72, 24, False, "relu", 1),
        (5, 72, 40, True, "relu", 2),
        (5, 120, 40, True, "relu", 1),
        (5, 120, 40, True, "relu", 1),
        (3, 240, 80, False, "hard_swish", 2),
        (3, 200, 80, False, "hard_swish", 1),
        (3, 184, 80, False, "hard_swish", 1),
        (3, 184, 80, False, "hard_swish", 1),
        (3, 480, 112, True, "hard_swish", 1),
        (3, 672, 112, True, "hard_swish", 1),
        (5, 672, 160, True, "hard_swish", 2),
        (5, 960, 160, True, "hard_swish", 1),
        (5, 960, 160, True, "hard_swish", 1),
    ),
    "small": (
        (3, 16, 16, True, "relu", 2),
        (3, 72, 24, False, "relu", 2),
        (3, 88, 24, False, "relu", 1),
        (5, 96, 40, True, "hard_swish", 2),
        (5, 240, 40, True, "hard_swish", 1),
        (5, 240, 40, True, "hard_swish", 1),
        (5, 120, 48, True, "hard_swish", 1),
        (5, 144, 48, True, "hard_swish", 1),
        (5, 288, 96, True, "hard_swish", 2),
        (5, 576, 96, True, "hard_swish", 1),
        (5, 576, 96, True, "hard_swish", 1),
    ),
}
LAST_POINT_FILTERS = {"large": 1280, "small": 1024}

MOBILENET_V3_OPTIONS = ("alpha", "minimalistic", "dropout_rate", "include_preprocessing", "padding", "features",
                        "bn_epsilon")


def make_divisible(value, divisor=8, min_value=None):
    """Rounds a width to a multiple of `divisor`, never more than 10% down (TF-slim, torchvision, keras)."""
    min_value = divisor if min_value is None else min_value
    rounded = max(min_value, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


def _activation(x, kind, name):
    return keras.layers.Activation(kind, name=name)(x)


def _strided_padding(x, kernel, padding):
    """Explicit padding for a stride-2 conv: torch's symmetric k//2, or keras' `correct_pad`."""
    half = kernel // 2
    if padding == "torch":
        return ((half, half), (half, half))
    rows, cols = x.shape[1:3]
    adjust = (1, 1) if rows is None else (1 - rows % 2, 1 - cols % 2)
    return ((half - adjust[0], half), (half - adjust[1], half))


def squeeze_excite(x, channels, *, prefix):
    """keras.applications' SE: GAP -> 1x1 conv (C/4, 8-divisible) -> ReLU -> 1x1 conv -> hard-sigmoid -> scale."""
    s = keras.layers.GlobalAveragePooling2D(keepdims=True, name=f"{prefix}squeeze_excite_avg_pool")(x)
    s = keras.layers.Conv2D(make_divisible(channels * 0.25), 1, name=f"{prefix}squeeze_excite_conv")(s)
    s = keras.layers.ReLU(name=f"{prefix}squeeze_excite_relu")(s)
    s = keras.layers.Conv2D(channels, 1, name=f"{prefix}squeeze_excite_conv_1")(s)
    s = _activation(s, "hard_sigmoid", f"{prefix}squeeze_excite_hard_sigmoid")
    return keras.layers.Multiply(name=f"{prefix}squeeze_excite_mul")([x, s])


def _bn(x, name, epsilon=1e-3):
    return BatchNormalization(epsilon=epsilon, momentum=0.999, name=name)(x)


def inverted_residual(x, expansion, filters, *, kernel, stride, se, activation, padding, name, bn_epsilon=1e-3):
    """Expand 1x1 -> depthwise kxk -> (SE) -> project 1x1, + input when shapes allow.

    `expansion` is a ratio of the input width, as keras.applications computes
    it, so `alpha` scales the expanded width the way keras does.
    """
    shortcut, in_filters = x, x.shape[-1]
    expanded = make_divisible(in_filters * expansion)
    if expanded != in_filters:
        x = keras.layers.Conv2D(expanded, 1, use_bias=False, name=f"{name}expand")(x)
        x = _activation(_bn(x, f"{name}expand_bn", bn_epsilon), activation, f"{name}expand_act")
    if stride == 2:
        x = keras.layers.ZeroPadding2D(_strided_padding(x, kernel, padding), name=f"{name}depthwise_pad")(x)
    x = keras.layers.DepthwiseConv2D(
        kernel, strides=stride, padding="same" if stride == 1 else "valid", use_bias=False, name=f"{name}depthwise"
    )(x)
    x = _activation(_bn(x, f"{name}depthwise_bn", bn_epsilon), activation, f"{name}depthwise_act")
    if se:
        x = squeeze_excite(x, expanded, prefix=name)
    x = keras.layers.Conv2D(filters, 1, use_bias=False, name=f"{name}project")(x)
    x = _bn(x, f"{name}project_bn", bn_epsilon)
    if stride == 1 and in_filters == filters:
        x = keras.layers.Add(name=f"{name}add")([shortcut, x])
    return x


def _check(size, alpha, minimalistic, dropout_rate, include_preprocessing, padding, features, include_top, pooling,
           bn_epsilon=1e-3):
    check_choice(size, tuple(MOBILENET_V3_BLOCKS), "size")
    if isinstance(bn_epsilon, bool) or not isinstance(bn_epsilon, (int, float)) or bn_epsilon <= 0:
        raise ValueError(f"`bn_epsilon` must be a positive number. Received: bn_epsilon={bn_epsilon!r}")
    check_choice(padding, PADDINGS, "padding")
    if not isinstance(alpha, (int, float)) or isinstance(alpha, bool) or alpha <= 0:
        raise ValueError(f"`alpha` must be a positive number (width multiplier). Received: alpha={alpha!r}")
    if not 0 <= dropout_rate < 1:
        raise ValueError(f"`dropout_rate` must be in [0, 1). Received: dropout_rate={dropout_rate!r}")
    for arg, value in (("minimalistic", minimalistic), ("include_preprocessing", include_preprocessing)):
        if not isinstance(value, bool):
            raise ValueError(f"`{arg}` must be True or False. Received: {arg}={value!r}")
    check_features(features, include_top, pooling)


def build_mobilenet_v3(
    size="large",
    include_top=True,
    weights=None,
    input_shape=None,
    input_tensor=None,
    pooling=None,
    classes=1000,
    classifier_activation="softmax",
    name=None,
    *,
    alpha=1.0,
    minimalistic=False,
    dropout_rate=0.2,
    include_preprocessing=True,
    padding="keras",
    features=False,
    bn_epsilon=1e-3,
):
    """Builds MobileNetV3; see the module docstring for layer names and the keras/torchvision differences.

    Args:
        size: ``"large"`` or ``"small"`` (a row of `MOBILENET_V3_BLOCKS`).
        include_top, weights, input_shape, input_tensor, pooling, classes,
            classifier_activation, name: as in keras.applications.
        alpha: width multiplier, applied as keras.applications does.
        minimalistic: keras' variant without SE, hard-swish and 5x5 kernels.
        dropout_rate: dropout before the ``logits`` layer.
        include_preprocessing: build ``Rescaling(1/127.5, offset=-1)`` in
            (keras; input 0..255). False for torchvision's weights (feed
            mean/std normalised input).
        padding: ``"keras"`` or ``"torch"`` (symmetric padding of the stem
            and the strided depthwise convs, for torchvision weights).
        features: return [C1..C5] (strides 2..32); needs
            ``include_top=False`` and ``pooling=None``.
        bn_epsilon: BatchNorm epsilon: 1e-3 (keras, torchvision) or 1e-5
            (timm's mobilenetv3_*_100 weights).

    Returns:
        A `keras.Model` (with a list of 5 outputs when `features=True`).
    """
    model_name = name or f"mobilenet_v3_{size}"
    check_common_args(
        include_top=include_top, weights=weights, pooling=pooling, classes=classes,
        classifier_activation=classifier_activation,
    )
    _check(size, alpha, minimalistic, dropout_rate, include_preprocessing, padding, features, include_top, pooling,
           bn_epsilon)
    shape = resolve_input_shape(input_shape, default_shape=DEFAULT_SHAPE, min_size=32, model_name=model_name)
    inputs = make_inputs(shape, input_tensor)
    head_activation = "relu" if minimalistic else "hard_swish"

    x = inputs
    if include_preprocessing:
        x = keras.layers.Rescaling(scale=1.0 / 127.5, offset=-1.0, name="rescaling")(x)
    if padding == "torch":
        x = keras.layers.ZeroPadding2D(1, name="conv_pad")(x)
    x = keras.layers.Conv2D(
        STEM_FILTERS, 3, strides=2, padding="valid" if padding == "torch" else "same", use_bias=False, name="conv"
    )(x)
    x = _activation(_bn(x, "conv_bn", bn_epsilon), head_activation, "conv_act")
    taps, stride = {2: x}, 2
    in_nominal = STEM_FILTERS
    for i, (kernel, expanded, out, se, activation, block_stride) in enumerate(MOBILENET_V3_BLOCKS[size]):
        if minimalistic:
            kernel, se, activation = 3, False, "relu"
        x = inverted_residual(
            x, expanded / in_nominal, make_divisible(out * alpha), kernel=kernel, stride=block_stride, se=se,
            activation=activation, padding=padding, name=f"expanded_conv_{i}_" if i else "expanded_conv_",
            bn_epsilon=bn_epsilon,
        )
        in_nominal = out
        stride *= block_stride
        taps[stride] = x
    x = keras.layers.Conv2D(make_divisible(x.shape[-1] * 6), 1, use_bias=False, name="conv_1")(x)
    x = _activation(_bn(x, "conv_1_bn", bn_epsilon), head_activation, "conv_1_act")

    if features:
        outputs = [taps[s] for s in (2, 4, 8, 16)] + [x]
    elif include_top:
        last_point = LAST_POINT_FILTERS[size]
        last_point = make_divisible(last_point * alpha) if alpha > 1.0 else last_point
        x = keras.layers.GlobalAveragePooling2D(keepdims=True, name="avg_pool")(x)
        x = keras.layers.Conv2D(last_point, 1, name="conv_2")(x)
        x = _activation(x, head_activation, "conv_2_act")
        if dropout_rate > 0:
            x = keras.layers.Dropout(dropout_rate, name="dropout")(x)
        x = keras.layers.Conv2D(classes, 1, name="logits")(x)
        x = keras.layers.Flatten(name="flatten")(x)
        outputs = keras.layers.Activation(classifier_activation, name="predictions")(x)
    else:
        outputs = global_pool(x, pooling)
    return finish_model(inputs, outputs, input_tensor=input_tensor, name=model_name, weights=weights)


def _register(size):
    key = f"mobilenet_v3_{size}"
    reference = (
        f"keras.applications.MobileNetV3{size.title()} / "
        f"torchvision {key} (padding='torch', include_preprocessing=False)"
    )
    return register_variant(key, build_mobilenet_v3, family="mobilenet_v3", reference=reference,
                            allowed=MOBILENET_V3_OPTIONS, default_shape=DEFAULT_SHAPE,
                            summary=f"MobileNetV3-{size.title()}", size=size)


build_mobilenet_v3_large = _register("large")
build_mobilenet_v3_small = _register("small")
