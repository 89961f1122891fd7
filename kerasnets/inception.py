"""Inception modules as data, and BN-Inception (v2), Inception v3 and v4.

Every Inception module and reduction block of the family (GoogLeNet, v2, v3,
v4, Inception-ResNet) is one call of `inception_module` on a table: a module
is a tuple of branches, a branch a tuple of steps (`Conv`, `Pool`, or a
`Split` of parallel convs whose outputs are concatenated, as in v3's 8x8
modules). `ConvStyle` says how a conv unit is built (BN and/or bias, BN
epsilon and scale, torch's conv and average-pool padding), so one table
serves several references.

Layer names (the contract the layouts map onto): a conv unit named ``u``
inside block ``b`` is ``{b}_{u}_conv``, ``{b}_{u}_bn`` and ``{b}_{u}_relu``
(after ``{b}_{u}_pad`` where torch's padding is explicit);
a pool step is ``{b}_{pool}``; a module's concatenation is ``{b}``; a split
is ``{b}_{split}``. Units without a name in the table get ``branch{i}_{j}``
(branch i, step j). Block names: v3 ``mixed0``..``mixed10`` (keras'
concatenation names) with torchvision's branch names (``branch5x5_1``...),
stem ``conv1a``/``conv2a``/``conv2b``/``conv3b``/``conv4a``, aux head
``aux_pool``, ``aux_conv0``, ``aux_conv1``, ``aux_avg_pool``,
``aux_predictions``; v2 ``inception3a``..``inception5b``; v4 ``mixed3a``,
``mixed4a``, ``mixed5a``, ``inception_a{i}``, ``reduction_a``,
``inception_b{i}``, ``reduction_b``, ``inception_c{i}``. Heads: ``avg_pool``,
``dropout``, ``predictions``.

keras.applications names v3's conv units by a global counter
(``conv2d_17``, ``batch_normalization_17``), which depends on what was built
before in the session, so no name map can point at them; its weight files
load by order (weights_io layout ``keras-order``), which ours follows.
"""

from __future__ import annotations

import dataclasses

import keras

from kerasnets.builder_utils import (
    ceil_mode_padding,
    check_choice,
    check_common_args,
    check_options,
    finish_model,
    global_pool,
    make_inputs,
    resolve_input_shape,
)
from kerasnets.layers.batch_norm import BatchNormalization
from kerasnets.registry import register_model


# ---------------------------------------------------------------------------
# Table vocabulary
# ---------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Conv:
    """One conv unit: conv (+ BN) + ReLU. `padding` is "same" or "valid"."""

    filters: int
    kernel: int | tuple = 1
    stride: int = 1
    padding: str = "same"
    name: str | None = None


@dataclasses.dataclass(frozen=True)
class Pool:
    """A pooling step: `kind` "max" or "avg"; `padding` "same", "valid" or "ceil" (torch ceil_mode)."""

    kind: str
    size: int = 3
    stride: int = 1
    padding: str = "same"
    name: str = "pool"


@dataclasses.dataclass(frozen=True)
class Split:
    """Parallel convs on the same input, concatenated (v3/v4 8x8 modules)."""

    convs: tuple
    name: str


@dataclasses.dataclass(frozen=True)
class ConvStyle:
    """How conv units and pools are built.

    Args:
        batch_norm: BN after each conv (False: conv with bias, GoogLeNet paper).
        bn_scale: BN has a learnt gamma (torchvision) or not (keras.applications).
        bn_epsilon: BN epsilon.
        torch_avg_pool: average pools count the zero padding, as torch's
            `avg_pool2d(padding=1)` does (keras' 'same' averages only real pixels).
        torch_padding: strided 'same' convs pad `kernel // 2` on every side,
            as torch's `padding=k // 2` does; keras puts the odd row at the
            bottom/right only, which shifts every window by one pixel.
        conv_bias: convs keep their bias even before BN (Caffe ports).
    """

    batch_norm: bool = True
    bn_scale: bool = False
    bn_epsilon: float = 1e-3
    torch_avg_pool: bool = False
    torch_padding: bool = False
    conv_bias: bool = False


KERAS_STYLE = ConvStyle()
TORCH_STYLE = ConvStyle(bn_scale=True, torch_avg_pool=True)


# ---------------------------------------------------------------------------
# Generic blocks
# ---------------------------------------------------------------------------


def conv_unit(x, conv, *, style, name, activation="relu"):
    """(ZeroPadding2D) + Conv2D (+ BatchNormalization) (+ ReLU) named `{name}_pad/_conv/_bn/_relu`."""
    padding = conv.padding
    if style.torch_padding and padding == "same" and conv.stride != 1:
        kernel = conv.kernel if isinstance(conv.kernel, tuple) else (conv.kernel, conv.kernel)
        x = keras.layers.ZeroPadding2D(tuple(k // 2 for k in kernel), name=f"{name}_pad")(x)
        padding = "valid"
    x = keras.layers.Conv2D(conv.filters, conv.kernel, strides=conv.stride, padding=padding,
                            use_bias=style.conv_bias or not style.batch_norm, name=f"{name}_conv")(x)
    if style.batch_norm:
        x = BatchNormalization(epsilon=style.bn_epsilon, scale=style.bn_scale, name=f"{name}_bn")(x)
    if activation:
        x = keras.layers.Activation(activation, name=f"{name}_relu")(x)
    return x


def pool_step(x, pool, *, style, name):
    """Pooling with keras 'same'/'valid', torch ceil mode, or torch's count_include_pad average."""
    layer = keras.layers.MaxPooling2D if pool.kind == "max" else keras.layers.AveragePooling2D
    padding = pool.padding
    if padding == "ceil":
        height, width = x.shape[1:3]
        if height is None or width is None:
            raise ValueError(f"Torch ceil-mode pooling ({name}) needs a fixed input size. Received: {tuple(x.shape)}")
        pads = (ceil_mode_padding(height, pool.size, pool.stride), ceil_mode_padding(width, pool.size, pool.stride))
        if any(pads):
            # Zero padding equals torch's -inf padding here: max pools follow a ReLU.
            x = keras.layers.ZeroPadding2D(((0, pads[0]), (0, pads[1])), name=f"{name}_pad")(x)
        padding = "valid"
    elif pool.kind == "avg" and padding == "same" and style.torch_avg_pool:
        x = keras.layers.ZeroPadding2D((pool.size - 1) // 2, name=f"{name}_pad")(x)
        padding = "valid"
    return layer(pool.size, strides=pool.stride, padding=padding, name=name)(x)


def inception_module(x, branches, *, style, name):
    """Runs each branch of the table on `x` and concatenates them as layer `name`.

    Args:
        x: input tensor.
        branches: tuple of branches; each a tuple of `Conv`, `Pool` and
            `Split` steps. An empty branch passes `x` through.
        style: `ConvStyle`.
        name: block name, prefix of every layer in it.

    Returns:
        The concatenated output (or the single branch's output).
    """
    outputs = []
    for b, branch in enumerate(branches):
        y = x
        for j, step in enumerate(branch):
            if isinstance(step, Pool):
                y = pool_step(y, step, style=style, name=f"{name}_{step.name}")
            elif isinstance(step, Split):
                parts = [conv_unit(y, c, style=style, name=f"{name}_{c.name}") for c in step.convs]
                y = keras.layers.Concatenate(name=f"{name}_{step.name}")(parts)
            else:
                y = conv_unit(y, step, style=style, name=f"{name}_{step.name or f'branch{b}_{j}'}")
        outputs.append(y)
    if len(outputs) == 1:
        return outputs[0]
    return keras.layers.Concatenate(name=name)(outputs)


def sequence(x, steps, *, style, prefix=""):
    """A plain stem: named `Conv`/`Pool` steps one after another."""
    for step in steps:
        if isinstance(step, Pool):
            x = pool_step(x, step, style=style, name=f"{prefix}{step.name}")
        else:
            x = conv_unit(x, step, style=style, name=f"{prefix}{step.name}")
    return x


def classifier_head(x, *, include_top, pooling, classes, classifier_activation, dropout):
    """GAP -> dropout -> Dense `predictions`, or the optional global pooling."""
    if include_top:
        x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
        if dropout:
            x = keras.layers.Dropout(dropout, name="dropout")(x)
        return keras.layers.Dense(classes, activation=classifier_activation, name="predictions")(x)
    return global_pool(x, pooling)


def transform_input_layer(x):
    """torchvision's `transform_input`: ImageNet mean/std input -> the [-1, 1] scaling its ports expect."""
    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    return keras.layers.Rescaling(scale=[s / 0.5 for s in std], offset=[(m - 0.5) / 0.5 for m in mean],
                                  name="transform_input")(x)


def check_bool(value, arg_name):
    if not isinstance(value, bool):
        raise ValueError(f"`{arg_name}` must be True or False. Received: {arg_name}={value!r}")
    return value


def check_rate(value, arg_name):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
        raise ValueError(f"`{arg_name}` must be a number in [0, 1). Received: {arg_name}={value!r}")
    return float(value)


def check_epsilon(value):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise ValueError(f"`bn_epsilon` must be a positive number. Received: bn_epsilon={value!r}")
    return float(value)


# ---------------------------------------------------------------------------
# Shared tables: stems and reduction blocks of v3, v4 and Inception-ResNet
# ---------------------------------------------------------------------------

# TF-slim's 35x35 stem (v3, Inception-ResNet v1/v2): 299 -> 35.
SLIM_STEM = (
    Conv(32, 3, 2, "valid", "conv1a"),
    Conv(32, 3, 1, "valid", "conv2a"),
    Conv(64, 3, 1, "same", "conv2b"),
    Pool("max", 3, 2, "valid", "pool1"),
    Conv(80, 1, 1, "valid", "conv3b"),
    Conv(192, 3, 1, "valid", "conv4a"),
)


def reduction_a(k, l, m, n):
    """35 -> 17 reduction of v4 / Inception-ResNet (paper Fig. 7): (k, l, m, n) filter counts."""
    return (
        (Conv(n, 3, 2, "valid"),),
        (Conv(k, 1), Conv(l, 3), Conv(m, 3, 2, "valid")),
        (Pool("max", 3, 2, "valid"),),
    )


# ---------------------------------------------------------------------------
# Inception v3 (Szegedy et al. 2016, "Rethinking"; keras.applications / torchvision)
# ---------------------------------------------------------------------------


def v3_module_a(pool_features):
    return (
        (Conv(64, 1, name="branch1x1"),),
        (Conv(48, 1, name="branch5x5_1"), Conv(64, 5, name="branch5x5_2")),
        (Conv(64, 1, name="branch3x3dbl_1"), Conv(96, 3, name="branch3x3dbl_2"), Conv(96, 3, name="branch3x3dbl_3")),
        (Pool("avg", 3, 1, "same"), Conv(pool_features, 1, name="branch_pool")),
    )


V3_MODULE_B = (
    (Conv(384, 3, 2, "valid", "branch3x3"),),
    (Conv(64, 1, name="branch3x3dbl_1"), Conv(96, 3, name="branch3x3dbl_2"),
     Conv(96, 3, 2, "valid", "branch3x3dbl_3")),
    (Pool("max", 3, 2, "valid"),),
)


def v3_module_c(c7):
    return (
        (Conv(192, 1, name="branch1x1"),),
        (Conv(c7, 1, name="branch7x7_1"), Conv(c7, (1, 7), name="branch7x7_2"), Conv(192, (7, 1), name="branch7x7_3")),
        (Conv(c7, 1, name="branch7x7dbl_1"), Conv(c7, (7, 1), name="branch7x7dbl_2"),
         Conv(c7, (1, 7), name="branch7x7dbl_3"), Conv(c7, (7, 1), name="branch7x7dbl_4"),
         Conv(192, (1, 7), name="branch7x7dbl_5")),
        (Pool("avg", 3, 1, "same"), Conv(192, 1, name="branch_pool")),
    )


V3_MODULE_D = (
    (Conv(192, 1, name="branch3x3_1"), Conv(320, 3, 2, "valid", "branch3x3_2")),
    (Conv(192, 1, name="branch7x7x3_1"), Conv(192, (1, 7), name="branch7x7x3_2"),
     Conv(192, (7, 1), name="branch7x7x3_3"), Conv(192, 3, 2, "valid", "branch7x7x3_4")),
    (Pool("max", 3, 2, "valid"),),
)

V3_MODULE_E = (
    (Conv(320, 1, name="branch1x1"),),
    (Conv(384, 1, name="branch3x3_1"),
     Split((Conv(384, (1, 3), name="branch3x3_2a"), Conv(384, (3, 1), name="branch3x3_2b")), "branch3x3")),
    (Conv(448, 1, name="branch3x3dbl_1"), Conv(384, 3, name="branch3x3dbl_2"),
     Split((Conv(384, (1, 3), name="branch3x3dbl_3a"), Conv(384, (3, 1), name="branch3x3dbl_3b")), "branch3x3dbl")),
    (Pool("avg", 3, 1, "same"), Conv(192, 1, name="branch_pool")),
)

V3_MODULES = (
    v3_module_a(32), v3_module_a(64), v3_module_a(64), V3_MODULE_B,
    v3_module_c(128), v3_module_c(160), v3_module_c(160), v3_module_c(192),
    V3_MODULE_D, V3_MODULE_E, V3_MODULE_E,
)
V3_AUX_AFTER = 7  # the aux head reads mixed7, the last 17x17x768 map
V3_VARIANTS = {
    # keras.applications: BN without gamma, 'same' average pools, no dropout.
    "keras": dict(style=KERAS_STYLE, dropout=0.0),
    # torchvision: BN with gamma (eps 1e-3), torch's count_include_pad average pools, dropout 0.5.
    "torchvision": dict(style=TORCH_STYLE, dropout=0.5),
}


def v3_aux_head(x, *, style, classes, classifier_activation):
    """torchvision/TF-slim aux head on the 17x17 map: avgpool 5/3, 1x1 128, 5x5 768, GAP, Dense."""
    x = keras.layers.AveragePooling2D(5, strides=3, name="aux_pool")(x)
    x = conv_unit(x, Conv(128, 1), style=style, name="aux_conv0")
    x = conv_unit(x, Conv(768, 5, padding="valid"), style=style, name="aux_conv1")
    x = keras.layers.GlobalAveragePooling2D(name="aux_avg_pool")(x)
    return keras.layers.Dense(classes, activation=classifier_activation, name="aux_predictions")(x)


def _v3_aux_map_size(size):
    """Side of the 17x17 map for an input side `size` (TF-slim stem, then mixed3)."""
    for k, s in ((3, 2), (3, 1), (3, 2), (3, 1), (3, 2), (3, 2)):
        size = (size - k) // s + 1
    return size


@register_model("inception_v3", family="inception", input_shape=(299, 299, 3), option_defaults={"variant": "keras"},
                reference="keras.applications InceptionV3 (variant='keras'); torchvision inception_v3")
def build_inception_v3(include_top=True, weights=None, input_shape=None, input_tensor=None, pooling=None,
                       classes=1000, classifier_activation="softmax", name=None, **options):
    """Inception v3 (Szegedy et al. 2016).

    Args:
        include_top, weights, input_shape, input_tensor, pooling, classes,
            classifier_activation, name: as in keras.applications.
        variant: `"keras"` (default; keras.applications InceptionV3, a
            port of TF-slim's inception_v3, whose checkpoints load through
            layout ``tf-slim-inception-v3``; 23,851,784 weights counting BN
            moving stats) or `"torchvision"`
            (BN with gamma, eps 1e-3, torch average-pool padding; 23,834,568
            parameters without aux).
        aux_logits: add the auxiliary classifier on mixed7 (17x17x768); the
            model then returns `[main, aux]`. Needs inputs of at least
            299x299 (its 5x5/3 pool and 5x5 conv).
        transform_input: prepend torchvision's `transform_input` (inputs
            normalised with ImageNet mean/std become the [-1, 1] scaling).
        dropout: rate before `predictions` (keras 0, torchvision 0.5).
        bn_epsilon: override the BN epsilon (1e-3).

    Returns:
        A `keras.Model`.
    """
    check_options(options, ("variant", "aux_logits", "transform_input", "dropout", "bn_epsilon"), "inception_v3")
    variant = V3_VARIANTS[check_choice(options.get("variant", "keras"), tuple(V3_VARIANTS), "variant")]
    aux = check_bool(options.get("aux_logits", False), "aux_logits")
    transform = check_bool(options.get("transform_input", False), "transform_input")
    dropout = check_rate(options.get("dropout", variant["dropout"]), "dropout")
    style = dataclasses.replace(variant["style"], bn_epsilon=check_epsilon(options.get("bn_epsilon", 1e-3)))
    model_name = name or "inception_v3"
    check_common_args(include_top=include_top, weights=weights, pooling=pooling, classes=classes,
                      classifier_activation=classifier_activation)
    if aux and not include_top:
        raise ValueError("`aux_logits=True` needs `include_top=True` (the aux head is a classifier).")
    shape = resolve_input_shape(input_shape, default_shape=(299, 299, 3), min_size=75, model_name=model_name)
    if aux and any(d is None or _v3_aux_map_size(d) < 17 for d in shape[:2]):
        raise ValueError(f"The aux head of {model_name} needs inputs of at least 299x299 (a 17x17 map). "
                         f"Received: input_shape={shape}")
    inputs = make_inputs(shape, input_tensor)
    x = transform_input_layer(inputs) if transform else inputs
    x = sequence(x, SLIM_STEM, style=style)
    x = pool_step(x, Pool("max", 3, 2, "valid", "pool2"), style=style, name="pool2")
    aux_out = None
    for i, module in enumerate(V3_MODULES):
        x = inception_module(x, module, style=style, name=f"mixed{i}")
        if aux and i == V3_AUX_AFTER:
            aux_out = v3_aux_head(x, style=style, classes=classes, classifier_activation=classifier_activation)
    x = classifier_head(x, include_top=include_top, pooling=pooling, classes=classes,
                        classifier_activation=classifier_activation, dropout=dropout)
    outputs = [x, aux_out] if aux else x
    return finish_model(inputs, outputs, input_tensor=input_tensor, name=model_name, weights=weights)


# ---------------------------------------------------------------------------
# BN-Inception (Ioffe & Szegedy 2015, "Inception v2")
# ---------------------------------------------------------------------------


def bn_inception_module(c1, c3r, c3, d3r, d3, pool, proj, stride, *, strided_pool):
    """BN-paper module (Fig. 5 columns): 1x1; 1x1->3x3; 1x1->3x3->3x3; pool(->proj).

    `c1 = 0` drops the 1x1 branch and `proj = 0` passes the pool through:
    the stride-2 modules 3c and 4e, whose pool has padding `strided_pool`.
    """
    branches = [] if not c1 else [(Conv(c1, 1, name="1x1"),)]
    branches.append((Conv(c3r, 1, name="3x3_reduce"), Conv(c3, 3, stride, "same", "3x3")))
    branches.append((Conv(d3r, 1, name="double_3x3_reduce"), Conv(d3, 3, name="double_3x3_1"),
                     Conv(d3, 3, stride, "same", "double_3x3_2")))
    pool_branch = (Pool(pool, 3, stride, strided_pool if stride > 1 else "same"),)
    branches.append(pool_branch + ((Conv(proj, 1, name="pool_proj"),) if proj else ()))
    return tuple(branches)


def bn_inception_stem(strided_pool):
    return (
        Conv(64, 7, 2, "same", "conv1_7x7_s2"),
        Pool("max", 3, 2, strided_pool, "pool1_3x3_s2"),
        Conv(64, 1, 1, "same", "conv2_3x3_reduce"),
        Conv(192, 3, 1, "same", "conv2_3x3"),
        Pool("max", 3, 2, strided_pool, "pool2_3x3_s2"),
    )


# name: (1x1, 3x3 reduce, 3x3, double 3x3 reduce, double 3x3, pool, pool proj, stride); the paper's Fig. 5.
BN_INCEPTION_MODULES = {
    "3a": (64, 64, 64, 64, 96, "avg", 32, 1),
    "3b": (64, 64, 96, 64, 96, "avg", 64, 1),
    "3c": (0, 128, 160, 64, 96, "max", 0, 2),
    "4a": (224, 64, 96, 96, 128, "avg", 128, 1),
    "4b": (192, 96, 128, 96, 128, "avg", 128, 1),
    "4c": (160, 128, 160, 128, 160, "avg", 128, 1),
    "4d": (96, 128, 192, 160, 192, "avg", 128, 1),
    "4e": (0, 128, 192, 192, 256, "max", 0, 2),
    "5a": (352, 192, 320, 160, 224, "avg", 128, 1),
    "5b": (352, 192, 320, 192, 224, "max", 128, 1),
}
V2_VARIANTS = {
    # The paper's net: bias-free convs, BN with gamma (eps 1e-3), keras 'same' convs and pools.
    "paper": dict(style=ConvStyle(bn_scale=True), strided_pool="same"),
    # Cadene's pretrainedmodels `bninception` (ported from Caffe): conv bias before BN, BN eps 1e-5,
    # torch's symmetric conv padding, Caffe's ceil-mode max pools, average pools counting the padding.
    "cadene": dict(style=ConvStyle(bn_scale=True, bn_epsilon=1e-5, torch_avg_pool=True, torch_padding=True,
                                   conv_bias=True), strided_pool="ceil"),
}


@register_model("inception_v2", family="inception", input_shape=(224, 224, 3), option_defaults={"variant": "paper"},
                reference="BN-Inception, Ioffe & Szegedy 2015 Fig. 5 (computed)")
def build_inception_v2(include_top=True, weights=None, input_shape=None, input_tensor=None, pooling=None,
                       classes=1000, classifier_activation="softmax", name=None, **options):
    """BN-Inception ("Inception v2" of the batch-normalization paper).

    BN after every conv, each 5x5 replaced by two 3x3, average-pool branches,
    stride-2 modules 3c and 4e that pass the max pool through.

    Args:
        include_top, weights, input_shape, input_tensor, pooling, classes,
            classifier_activation, name: as in keras.applications.
        variant: `"paper"` (default; 11,285,224 parameters) or `"cadene"`
            (weight-compatible with Cadene's pretrainedmodels `bninception`:
            conv biases, BN eps 1e-5, torch padding, ceil-mode max pools;
            11,295,240 parameters; needs a fixed input size).
        dropout: rate before `predictions` (0.0; the paper removes it).
        bn_epsilon: BN epsilon (the variant's: 1e-3 paper, 1e-5 cadene).
        bn_scale: learn BN's gamma (True).

    Returns:
        A `keras.Model`.
    """
    check_options(options, ("variant", "dropout", "bn_epsilon", "bn_scale"), "inception_v2")
    variant = V2_VARIANTS[check_choice(options.get("variant", "paper"), tuple(V2_VARIANTS), "variant")]
    dropout = check_rate(options.get("dropout", 0.0), "dropout")
    style = dataclasses.replace(variant["style"],
                                bn_scale=check_bool(options.get("bn_scale", True), "bn_scale"),
                                bn_epsilon=check_epsilon(options.get("bn_epsilon", variant["style"].bn_epsilon)))
    model_name = name or "inception_v2"
    check_common_args(include_top=include_top, weights=weights, pooling=pooling, classes=classes,
                      classifier_activation=classifier_activation)
    shape = resolve_input_shape(input_shape, default_shape=(224, 224, 3), min_size=32, model_name=model_name)
    inputs = make_inputs(shape, input_tensor)
    x = sequence(inputs, bn_inception_stem(variant["strided_pool"]), style=style)
    for key, row in BN_INCEPTION_MODULES.items():
        module = bn_inception_module(*row, strided_pool=variant["strided_pool"])
        x = inception_module(x, module, style=style, name=f"inception{key}")
    x = classifier_head(x, include_top=include_top, pooling=pooling, classes=classes,
                        classifier_activation=classifier_activation, dropout=dropout)
    return finish_model(inputs, x, input_tensor=input_tensor, name=model_name, weights=weights)


# ---------------------------------------------------------------------------
# Inception v4 (Szegedy et al. 2016, "Inception-v4, Inception-ResNet"; timm)
# ---------------------------------------------------------------------------

V4_STEM = (
    Conv(32, 3, 2, "valid", "conv1a"),
    Conv(32, 3, 1, "valid", "conv2a"),
    Conv(64, 3, 1, "same", "conv2b"),
)
V4_STEM_MODULES = (
    ("mixed3a", ((Pool("max", 3, 2, "valid"),), (Conv(96, 3, 2, "valid"),))),
    ("mixed4a", ((Conv(64, 1), Conv(96, 3, 1, "valid")),
                 (Conv(64, 1), Conv(64, (1, 7)), Conv(64, (7, 1)), Conv(96, 3, 1, "valid")))),
    ("mixed5a", ((Conv(192, 3, 2, "valid"),), (Pool("max", 3, 2, "valid"),))),
)
V4_INCEPTION_A = (
    (Conv(96, 1),),
    (Conv(64, 1), Conv(96, 3)),
    (Conv(64, 1), Conv(96, 3), Conv(96, 3)),
    (Pool("avg", 3, 1, "same"), Conv(96, 1)),
)
V4_INCEPTION_B = (
    (Conv(384, 1),),
    (Conv(192, 1), Conv(224, (1, 7)), Conv(256, (7, 1))),
    (Conv(192, 1), Conv(192, (7, 1)), Conv(224, (1, 7)), Conv(224, (7, 1)), Conv(256, (1, 7))),
    (Pool("avg", 3, 1, "same"), Conv(128, 1)),
)
V4_REDUCTION_B = (
    (Conv(192, 1), Conv(192, 3, 2, "valid")),
    (Conv(256, 1), Conv(256, (1, 7)), Conv(320, (7, 1)), Conv(320, 3, 2, "valid")),
    (Pool("max", 3, 2, "valid"),),
)
V4_INCEPTION_C = (
    (Conv(256, 1),),
    (Conv(384, 1), Split((Conv(256, (1, 3), name="branch1_1a"), Conv(256, (3, 1), name="branch1_1b")), "branch1")),
    (Conv(384, 1), Conv(448, (3, 1)), Conv(512, (1, 3)),
     Split((Conv(256, (1, 3), name="branch2_3a"), Conv(256, (3, 1), name="branch2_3b")), "branch2")),
    (Pool("avg", 3, 1, "same"), Conv(256, 1)),
)
V4_BODY = (  # (block name, table, repeats)
    ("inception_a", V4_INCEPTION_A, 4),
    ("reduction_a", reduction_a(192, 224, 256, 384), 1),
    ("inception_b", V4_INCEPTION_B, 7),
    ("reduction_b", V4_REDUCTION_B, 1),
    ("inception_c", V4_INCEPTION_C, 3),
)


@register_model("inception_v4", family="inception", input_shape=(299, 299, 3),
                option_defaults={"bn_epsilon": 1e-3, "bn_scale": True},
                reference="Szegedy et al. 2016 Fig. 9; timm inception_v4 (42,679,816 params)")
def build_inception_v4(include_top=True, weights=None, input_shape=None, input_tensor=None, pooling=None,
                       classes=1000, classifier_activation="softmax", name=None, **options):
    """Inception v4 (timm's layout: BN with gamma, eps 1e-3, no conv bias).

    Args:
        include_top, weights, input_shape, input_tensor, pooling, classes,
            classifier_activation, name: as in keras.applications.
        dropout: rate before `predictions` (0.2, TF-slim's keep 0.8).
        bn_epsilon: BN epsilon (1e-3).
        bn_scale: BN with a learnt gamma: True as timm and Cadene (whose
            port of TF-slim's weights set it to one), False as TF-slim's
            own inception_v4 checkpoints.

    Returns:
        A `keras.Model`.
    """
    check_options(options, ("dropout", "bn_epsilon", "bn_scale"), "inception_v4")
    dropout = check_rate(options.get("dropout", 0.2), "dropout")
    style = ConvStyle(bn_scale=check_bool(options.get("bn_scale", True), "bn_scale"),
                      bn_epsilon=check_epsilon(options.get("bn_epsilon", 1e-3)))
    model_name = name or "inception_v4"
    check_common_args(include_top=include_top, weights=weights, pooling=pooling, classes=classes,
                      classifier_activation=classifier_activation)
    shape = resolve_input_shape(input_shape, default_shape=(299, 299, 3), min_size=75, model_name=model_name)
    inputs = make_inputs(shape, input_tensor)
    x = sequence(inputs, V4_STEM, style=style)
    for block, module in V4_STEM_MODULES:
        x = inception_module(x, module, style=style, name=block)
    for block, module, repeats in V4_BODY:
        for i in range(1, repeats + 1):
            x = inception_module(x, module, style=style, name=f"{block}{i}" if repeats > 1 else block)
    x = classifier_head(x, include_top=include_top, pooling=pooling, classes=classes,
                        classifier_activation=classifier_activation, dropout=dropout)
    return finish_model(inputs, x, input_tensor=input_tensor, name=model_name, weights=weights)
