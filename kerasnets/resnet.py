"""ResNet (He et al. 2015), ResNeXt (Xie et al. 2017) and SE-ResNet/SE-ResNeXt (Hu et al. 2018).

One generic builder, `build_resnet`, and variants as rows of `RESNET_VARIANTS`
(block type, blocks per stage, groups, width per group, SE ratio).

Layer names are keras.applications' (``keras.applications.ResNet50``) for
every variant, so its weight files load by name; torchvision and timm names
are mapped onto them by ``weights_io/layouts/resnet.py``:

* stem: ``conv1_pad``, ``conv1_conv``, ``conv1_bn``, ``conv1_relu``,
  ``pool1_pad``, ``pool1_pool``;
* block ``b`` (1-based) of stage ``s`` (2..5) is ``conv{s}_block{b}``:
  ``_1_conv``/``_1_bn``/``_1_relu``, ``_2_conv``/``_2_bn``/``_2_relu``,
  ``_3_conv``/``_3_bn`` (bottleneck only), ``_2_pad`` (torch padding before a
  strided 3x3), ``_0_conv``/``_0_bn`` (projection shortcut), ``_se``
  (`SqueezeExcitation`, SE variants), ``_add``, ``_out``;
* head: ``avg_pool``, ``predictions`` (or ``max_pool`` with `pooling`).

Styles. The defaults reproduce torchvision (``stride_placement="v1.5"``:
stride on the 3x3; no conv bias; BN epsilon 1e-5; ``padding="torch"``:
symmetric ``ZeroPadding2D(1)`` + 'valid' before a strided 3x3).
``KERAS_APPLICATIONS`` holds the options that reproduce
``keras.applications.ResNet50/101/152`` (stride on the first 1x1, conv
biases, epsilon 1.001e-5)::

    build_resnet50(**KERAS_APPLICATIONS)

The stem is the same in both: ZeroPadding2D(3) + 7x7/2 'valid' equals torch's
padding=3, and ZeroPadding2D(1) before the max-pool equals torch's -inf
padding because the pool reads ReLU outputs (>= 0).

``stem_pool="ceil"`` gives the stem max-pool of Caffe's SENets, which Cadene's
``pretrainedmodels`` (and timm's ``legacy_seresnet*``) keep for their weights:
torch's ``MaxPool2d(3, 2, ceil_mode=True)`` without padding, i.e. ``pool1_pad``
adds the bottom/right row and column ceil mode reads, so it needs a fixed
input size. ``CADENE_SENET`` holds the options those SE-ResNets need::

    build_se_resnet50(**CADENE_SENET["se_resnet50"])

ResNet v2 (He et al. 2016, pre-activation; ``block="preact_bottleneck"``,
``build_resnet50_v2/101_v2/152_v2``) follows keras.applications'
``ResNet50V2``: the stem conv has a bias and no BN/ReLU; block ``b`` is
``_preact_bn``/``_preact_relu`` (shared by the residual branch and a
projection shortcut ``_0_conv`` with bias), ``_1_conv``/``_1_bn``/``_1_relu``,
``_2_conv``/``_2_bn``/``_2_relu``, ``_3_conv`` (bias, no BN), ``_out`` (the
addition, no ReLU); the head starts with ``post_bn``, ``post_relu``. Its
defaults are keras.applications' (stride in the last block of stages 2-4,
epsilon 1.001e-5), so ``build_resnet50_v2()`` is ``ResNet50V2``.

``stride_block="last"`` (keras' ResNetV2, TF-slim's resnet_v1/resnet_v2)
downsamples in the last block of stages 2-4 instead of the first block of
stages 3-5; that block's shortcut is then ``_0_pool``, a 1x1/2 max-pool.
``TF_SLIM`` holds the options of TF-slim's ``nets.resnet_v1`` and
``nets.resnet_v2`` (stride on the 3x3 of the last block, no conv biases under
BN, epsilon 1e-5, stem max-pool TF 'SAME')::

    build_resnet50(**TF_SLIM)      # tf_slim.nets.resnet_v1.resnet_v1_50
    build_resnet50_v2(**TF_SLIM)   # tf_slim.nets.resnet_v2.resnet_v2_50

slim's ``conv2d_same`` pads a strided k x k conv by (k-1)//2 before and the
rest after: symmetric for odd k, which is ``padding="torch"``.

``features=True`` (with ``include_top=False``, ``pooling=None``) returns a
model whose outputs are the stage outputs ``[C1, C2, C3, C4, C5]`` at strides
2, 4, 8, 16, 32: ``conv1_relu`` and ``conv{2..5}_block{last}_out``, the
encoder taps U-Net/FPN-style decoders need.
"""

from __future__ import annotations

import dataclasses

import keras

from kerasnets.builder_utils import (
    ceil_mode_padding,
    check_choice,
    check_common_args,
    check_features,
    features_or_head,
    finish_model,
    make_inputs,
    register_variant,
    resolve_input_shape,
)
from kerasnets.layers.batch_norm import BatchNormalization
from kerasnets.layers import SqueezeExcitation

DEFAULT_SHAPE = (224, 224, 3)
STAGE_FILTERS = (64, 128, 256, 512)
STAGE_STRIDES = (1, 2, 2, 2)
EXPANSION = {"basic": 1, "bottleneck": 4, "preact_bottleneck": 4}
STRIDE_PLACEMENTS = ("v1.5", "v1")
STRIDE_BLOCKS = ("first", "last")
PADDINGS = ("torch", "keras")
STEM_POOLS = ("padded", "ceil", "tf_same")

KERAS_APPLICATIONS = dict(stride_placement="v1", conv_bias=True, bn_epsilon=1.001e-5, padding="keras")
"""Options that make `build_resnet50/101/152` equal keras.applications' ResNet."""

KERAS_APPLICATIONS_V2 = dict(stride_placement="v1.5", stride_block="last", conv_bias=False, bn_epsilon=1.001e-5,
                             padding="torch", stem_pool="padded")
"""keras.applications.ResNet50V2/101V2/152V2's options: the defaults of `build_resnet50_v2/101_v2/152_v2`."""

TF_SLIM = dict(stride_placement="v1.5", stride_block="last", conv_bias=False, bn_epsilon=1e-5, padding="torch",
               stem_pool="tf_same")
"""Options that make `build_resnet50/101/152` equal tf_slim.nets.resnet_v1 and `build_resnet50_v2/...` resnet_v2."""

# Cadene's SEResNetBottleneck strides its first 1x1 (Caffe's SE-ResNet); SEResNeXtBottleneck its 3x3.
CADENE_SENET = {
    "se_resnet50": dict(stem_pool="ceil", stride_placement="v1"),
    "se_resnet101": dict(stem_pool="ceil", stride_placement="v1"),
    "se_resnet152": dict(stem_pool="ceil", stride_placement="v1"),
    "se_resnext50_32x4d": dict(stem_pool="ceil"),
}
"""Options that make the SE variants equal Cadene's pretrainedmodels SENets (layout "cadene-senet")."""

RESNET_VARIANTS = {
    "resnet18": dict(block="basic", blocks=(2, 2, 2, 2)),
    "resnet34": dict(block="basic", blocks=(3, 4, 6, 3)),
    "resnet50": dict(block="bottleneck", blocks=(3, 4, 6, 3)),
    "resnet101": dict(block="bottleneck", blocks=(3, 4, 23, 3)),
    "resnet152": dict(block="bottleneck", blocks=(3, 8, 36, 3)),
    "resnext50_32x4d": dict(block="bottleneck", blocks=(3, 4, 6, 3), groups=32, width_per_group=4),
    "resnext101_32x8d": dict(block="bottleneck", blocks=(3, 4, 23, 3), groups=32, width_per_group=8),
    "se_resnet50": dict(block="bottleneck", blocks=(3, 4, 6, 3), se_ratio=16),
    "se_resnet101": dict(block="bottleneck", blocks=(3, 4, 23, 3), se_ratio=16),
    "se_resnet152": dict(block="bottleneck", blocks=(3, 8, 36, 3), se_ratio=16),
    "se_resnext50_32x4d": dict(block="bottleneck", blocks=(3, 4, 6, 3), groups=32, width_per_group=4, se_ratio=16),
    "resnet50_v2": dict(block="preact_bottleneck", blocks=(3, 4, 6, 3), stride_block="last", bn_epsilon=1.001e-5),
    "resnet101_v2": dict(block="preact_bottleneck", blocks=(3, 4, 23, 3), stride_block="last", bn_epsilon=1.001e-5),
    "resnet152_v2": dict(block="preact_bottleneck", blocks=(3, 8, 36, 3), stride_block="last", bn_epsilon=1.001e-5),
}

_REFERENCES = {
    "resnet50": "torchvision resnet50 / keras.applications.ResNet50 (KERAS_APPLICATIONS options)",
    "resnet101": "torchvision resnet101 / keras.applications.ResNet101 (KERAS_APPLICATIONS options)",
    "resnet152": "torchvision resnet152 / keras.applications.ResNet152 (KERAS_APPLICATIONS options)",
    "se_resnet50": "timm seresnet50",
    "se_resnet101": "timm seresnet101",
    "se_resnet152": "timm seresnet152",
    "se_resnext50_32x4d": "timm seresnext50_32x4d",
    "resnet50_v2": "keras.applications.ResNet50V2 / tf_slim resnet_v2_50 (TF_SLIM options)",
    "resnet101_v2": "keras.applications.ResNet101V2 / tf_slim resnet_v2_101 (TF_SLIM options)",
    "resnet152_v2": "keras.applications.ResNet152V2 / tf_slim resnet_v2_152 (TF_SLIM options)",
}

RESNET_OPTIONS = (
    "stride_placement", "stride_block", "conv_bias", "bn_epsilon", "padding", "stem_pool", "groups", "width_per_group",
    "se_ratio", "features",
)


@dataclasses.dataclass(frozen=True)
class BlockOptions:
    """How every block of one network is built (the style options)."""

    stride_placement: str = "v1.5"
    conv_bias: bool | str = False  # "stem": the stem conv only
    bn_epsilon: float = 1e-5
    padding: str = "torch"
    groups: int = 1
    width_per_group: int = 64
    se_ratio: int | None = None


def conv_bn(x, filters, kernel, *, stride=1, groups=1, relu=True, name, opts):
    """Conv (+ torch padding when strided) -> BN (-> ReLU), named ``{name}_conv/_bn/_relu``."""
    padding = "valid" if kernel == 1 else "same"
    if kernel > 1 and stride > 1 and opts.padding == "torch":
        # TF 'same' pads bottom/right only at stride 2; torch pads both sides.
        x = keras.layers.ZeroPadding2D(kernel // 2, name=f"{name}_pad")(x)
        padding = "valid"
    x = keras.layers.Conv2D(
        filters, kernel, strides=stride, padding=padding, groups=groups, use_bias=opts.conv_bias is True,
        name=f"{name}_conv"
    )(x)
    x = BatchNormalization(epsilon=opts.bn_epsilon, name=f"{name}_bn")(x)
    if relu:
        x = keras.layers.Activation("relu", name=f"{name}_relu")(x)
    return x


def _finish_block(x, shortcut, *, name, opts):
    if opts.se_ratio:
        x = SqueezeExcitation(ratio=opts.se_ratio, name=f"{name}_se")(x)
    x = keras.layers.Add(name=f"{name}_add")([shortcut, x])
    return keras.layers.Activation("relu", name=f"{name}_out")(x)


def _shortcut(x, out_filters, *, stride, name, opts):
    if x.shape[-1] == out_filters:
        return _subsample(x, stride, name)
    return conv_bn(x, out_filters, 1, stride=stride, relu=False, name=f"{name}_0", opts=opts)


def _subsample(x, stride, name):
    """The identity, or a 1x1 max-pool taking every `stride`-th pixel (TF-slim's `subsample`)."""
    if stride == 1:
        return x
    return keras.layers.MaxPooling2D(1, strides=stride, name=f"{name}_0_pool")(x)


def basic_block(x, filters, *, stride, name, opts):
    """Two 3x3 convs (ResNet-18/34); output width `filters`."""
    shortcut = _shortcut(x, filters, stride=stride, name=name, opts=opts)
    x = conv_bn(x, filters, 3, stride=stride, name=f"{name}_1", opts=opts)
    x = conv_bn(x, filters, 3, relu=False, name=f"{name}_2", opts=opts)
    return _finish_block(x, shortcut, name=name, opts=opts)


def bottleneck_block(x, filters, *, stride, name, opts):
    """1x1 -> 3x3 (grouped for ResNeXt) -> 1x1 x4; output width 4 * `filters`."""
    width = int(filters * opts.width_per_group / 64) * opts.groups
    first_stride, mid_stride = (stride, 1) if opts.stride_placement == "v1" else (1, stride)
    shortcut = _shortcut(x, 4 * filters, stride=stride, name=name, opts=opts)
    x = conv_bn(x, width, 1, stride=first_stride, name=f"{name}_1", opts=opts)
    x = conv_bn(x, width, 3, stride=mid_stride, groups=opts.groups, name=f"{name}_2", opts=opts)
    x = conv_bn(x, 4 * filters, 1, relu=False, name=f"{name}_3", opts=opts)
    return _finish_block(x, shortcut, name=name, opts=opts)


def preact_bottleneck_block(x, filters, *, stride, name, opts):
    """ResNet v2: BN-ReLU ``_preact`` -> 1x1 -> 3x3 -> 1x1 x4 (bias, no BN), added to the shortcut, no ReLU.

    A projection shortcut (``_0_conv``, with bias) reads the pre-activation,
    an identity or subsampling one the block's input (keras' block2, slim's
    bottleneck_v2).
    """
    width = int(filters * opts.width_per_group / 64) * opts.groups
    first_stride, mid_stride = (stride, 1) if opts.stride_placement == "v1" else (1, stride)
    preact = BatchNormalization(epsilon=opts.bn_epsilon, name=f"{name}_preact_bn")(x)
    preact = keras.layers.Activation("relu", name=f"{name}_preact_relu")(preact)
    if x.shape[-1] == 4 * filters:
        shortcut = _subsample(x, stride, name)
    else:
        shortcut = keras.layers.Conv2D(4 * filters, 1, strides=stride, name=f"{name}_0_conv")(preact)
    x = conv_bn(preact, width, 1, stride=first_stride, name=f"{name}_1", opts=opts)
    x = conv_bn(x, width, 3, stride=mid_stride, groups=opts.groups, name=f"{name}_2", opts=opts)
    x = keras.layers.Conv2D(4 * filters, 1, name=f"{name}_3_conv")(x)
    if opts.se_ratio:
        x = SqueezeExcitation(ratio=opts.se_ratio, name=f"{name}_se")(x)
    return keras.layers.Add(name=f"{name}_out")([shortcut, x])


BLOCKS = {"basic": basic_block, "bottleneck": bottleneck_block, "preact_bottleneck": preact_bottleneck_block}
PREACT_BLOCKS = ("preact_bottleneck",)


def stem_max_pool(x, style):
    """The 3x3/2 max-pool after the stem, as ``pool1_pad`` + ``pool1_pool``.

    Zero padding stands in for torch's -inf padding where the pool reads ReLU
    outputs (>= 0): a padded zero never wins over a real value. ``"tf_same"``
    is TF's 'SAME' max-pool (TF-slim): padding that never wins, at an even
    size only after, so the layer is ``pool1_pool`` alone.
    """
    if style == "tf_same":
        return keras.layers.MaxPooling2D(3, strides=2, padding="same", name="pool1_pool")(x)
    if style == "ceil":
        height, width = x.shape[1:3]
        if height is None or width is None:
            raise ValueError(
                "stem_pool='ceil' (torch ceil_mode) pads by an amount that depends on the input size, so it "
                f"needs a fixed input_shape (height and width). Received: stem output shape {tuple(x.shape)}"
            )
        pads = ((0, ceil_mode_padding(height, 3, 2)), (0, ceil_mode_padding(width, 3, 2)))
    else:
        pads = 1
    x = keras.layers.ZeroPadding2D(pads, name="pool1_pad")(x)
    return keras.layers.MaxPooling2D(3, strides=2, name="pool1_pool")(x)


def _check_options(block, blocks, opts, stem_pool, stride_block, features, include_top, pooling):
    check_choice(block, tuple(BLOCKS), "block")
    check_choice(stride_block, STRIDE_BLOCKS, "stride_block")
    if features and (stride_block != "first" or block in PREACT_BLOCKS):
        raise ValueError(
            "`features=True` taps the stage outputs at strides 2..32, which needs stride_block='first' and a "
            f"post-activation block. Received: block={block!r}, stride_block={stride_block!r}"
        )
    if not (isinstance(blocks, (tuple, list)) and len(blocks) == 4
            and all(isinstance(b, int) and not isinstance(b, bool) and b >= 1 for b in blocks)):
        raise ValueError(f"`blocks` must be 4 positive integers (blocks per stage). Received: blocks={blocks!r}")
    check_choice(opts.stride_placement, STRIDE_PLACEMENTS, "stride_placement")
    check_choice(opts.padding, PADDINGS, "padding")
    check_choice(stem_pool, STEM_POOLS, "stem_pool")
    if not (isinstance(opts.conv_bias, bool) or opts.conv_bias == "stem"):
        raise ValueError(f"`conv_bias` must be True, False or 'stem'. Received: conv_bias={opts.conv_bias!r}")
    if not isinstance(opts.bn_epsilon, (int, float)) or opts.bn_epsilon <= 0:
        raise ValueError(f"`bn_epsilon` must be a positive number. Received: bn_epsilon={opts.bn_epsilon!r}")
    for arg in ("groups", "width_per_group"):
        value = getattr(opts, arg)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"`{arg}` must be a positive integer. Received: {arg}={value!r}")
    if block == "basic" and (opts.groups != 1 or opts.width_per_group != 64):
        raise ValueError(
            "The basic block (ResNet-18/34) supports only groups=1 and width_per_group=64. "
            f"Received: groups={opts.groups}, width_per_group={opts.width_per_group}"
        )
    if opts.se_ratio is not None and (not isinstance(opts.se_ratio, int) or isinstance(opts.se_ratio, bool)
                                      or opts.se_ratio < 1):
        raise ValueError(f"`se_ratio` must be None or a positive integer. Received: se_ratio={opts.se_ratio!r}")
    check_features(features, include_top, pooling)


def build_resnet(
    blocks=(3, 4, 6, 3),
    block="bottleneck",
    include_top=True,
    weights=None,
    input_shape=None,
    input_tensor=None,
    pooling=None,
    classes=1000,
    classifier_activation="softmax",
    name=None,
    *,
    stride_placement="v1.5",
    conv_bias=False,
    bn_epsilon=1e-5,
    padding="torch",
    stem_pool="padded",
    stride_block="first",
    groups=1,
    width_per_group=64,
    se_ratio=None,
    features=False,
):
    """Builds a ResNet / ResNeXt / SE-ResNet; see the module docstring for layer names.

    Args:
        blocks: blocks per stage (conv2..conv5), e.g. (3, 4, 6, 3).
        block: ``"basic"`` (two 3x3), ``"bottleneck"`` (1x1-3x3-1x1, x4) or
            ``"preact_bottleneck"`` (ResNet v2: BN-ReLU before each conv).
        include_top, weights, input_shape, input_tensor, pooling, classes,
            classifier_activation, name: as in keras.applications.
        stride_placement: ``"v1.5"`` (torchvision, timm: stride on the 3x3)
            or ``"v1"`` (paper, keras.applications: stride on the first 1x1).
        conv_bias: biases on convolutions (keras.applications has them);
            ``"stem"``: on the stem conv only (He's Caffe ResNet-50).
        bn_epsilon: BatchNormalization epsilon (torch 1e-5; keras 1.001e-5).
        padding: ``"torch"`` (symmetric explicit padding before strided 3x3
            convs, so torchvision weights give identical outputs) or
            ``"keras"`` ('same' padding, TF's bottom/right extra pad).
        stem_pool: the stem's 3x3/2 max-pool: ``"padded"`` (torchvision,
            timm, keras.applications: one zero row/column on every side) or
            ``"ceil"`` (Caffe SENets, Cadene's pretrainedmodels: torch
            ``ceil_mode=True``, no padding; needs a fixed input size) or
            ``"tf_same"`` (TF-slim: TF 'SAME', at an even size padded after).
        stride_block: which block of a stage downsamples: ``"first"``
            (torchvision, keras' ResNet: stages 3-5) or ``"last"`` (keras'
            ResNetV2, TF-slim: stages 2-4, the shortcut a 1x1/2 max-pool).
        groups: groups of the bottleneck 3x3 conv (ResNeXt cardinality).
        width_per_group: bottleneck width per group; the 3x3 conv has
            ``int(filters * width_per_group / 64) * groups`` channels.
        se_ratio: None, or the squeeze-and-excitation reduction ratio (16)
            applied to each block's residual branch before the addition.
        features: return the stage outputs [C1..C5] (strides 2..32) instead
            of one tensor; needs ``include_top=False`` and ``pooling=None``.

    Returns:
        A `keras.Model` (with a list of 5 outputs when `features=True`).
    """
    opts = BlockOptions(stride_placement, conv_bias, bn_epsilon, padding, groups, width_per_group, se_ratio)
    model_name = name or "resnet"
    check_common_args(
        include_top=include_top, weights=weights, pooling=pooling, classes=classes,
        classifier_activation=classifier_activation,
    )
    _check_options(block, blocks, opts, stem_pool, stride_block, features, include_top, pooling)
    shape = resolve_input_shape(input_shape, default_shape=DEFAULT_SHAPE, min_size=32, model_name=model_name)
    inputs = make_inputs(shape, input_tensor)
    preact = block in PREACT_BLOCKS

    x = keras.layers.ZeroPadding2D(3, name="conv1_pad")(inputs)
    # v2's stem conv feeds the first block's pre-activation BN, no BN of its own: it keeps its bias
    x = keras.layers.Conv2D(64, 7, strides=2, use_bias=conv_bias in (True, "stem") or preact, name="conv1_conv")(x)
    if not preact:
        x = BatchNormalization(epsilon=bn_epsilon, name="conv1_bn")(x)
        x = keras.layers.Activation("relu", name="conv1_relu")(x)
    taps = [x]
    x = stem_max_pool(x, stem_pool)
    block_fn = BLOCKS[block]
    for stage, (count, filters) in enumerate(zip(blocks, STAGE_FILTERS), start=2):
        for b in range(1, count + 1):
            x = block_fn(x, filters, stride=_block_stride(stage, b, count, stride_block),
                         name=f"conv{stage}_block{b}", opts=opts)
        taps.append(x)
    if preact:
        x = BatchNormalization(epsilon=bn_epsilon, name="post_bn")(x)
        x = keras.layers.Activation("relu", name="post_relu")(x)

    outputs = features_or_head(x, taps, features=features, include_top=include_top, pooling=pooling,
                               classes=classes, classifier_activation=classifier_activation)
    return finish_model(inputs, outputs, input_tensor=input_tensor, name=model_name, weights=weights)


def _block_stride(stage, b, count, stride_block):
    """Block `b` of `count` in `stage` (2..5): stride 2 opens stages 3-5, or closes stages 2-4 ("last")."""
    if stride_block == "first":
        return STAGE_STRIDES[stage - 2] if b == 1 else 1
    return STAGE_STRIDES[stage - 1] if b == count and stage < 5 else 1


def _register(key):
    row = RESNET_VARIANTS[key]
    reference = _REFERENCES.get(key, f"torchvision {key}")
    return register_variant(key, build_resnet, family="resnet", reference=reference, allowed=RESNET_OPTIONS,
                            summary=f"{key}: {row['block']} blocks {row['blocks']}", default_shape=DEFAULT_SHAPE,
                            **row)


build_resnet18 = _register("resnet18")
build_resnet34 = _register("resnet34")
build_resnet50 = _register("resnet50")
build_resnet101 = _register("resnet101")
build_resnet152 = _register("resnet152")
build_resnext50_32x4d = _register("resnext50_32x4d")
build_resnext101_32x8d = _register("resnext101_32x8d")
build_se_resnet50 = _register("se_resnet50")
build_se_resnet101 = _register("se_resnet101")
build_se_resnet152 = _register("se_resnet152")
build_se_resnext50_32x4d = _register("se_resnext50_32x4d")
build_resnet50_v2 = _register("resnet50_v2")
build_resnet101_v2 = _register("resnet101_v2")
build_resnet152_v2 = _register("resnet152_v2")
