"""GoogLeNet (Inception v1, Szegedy et al. 2014), the paper's net and torchvision's.

The nine modules are rows of `MODULES` (the paper's Table 1 columns: 1x1,
3x3 reduce, 3x3, 5x5 reduce, 5x5, pool proj) fed to
`kerasnets.inception.inception_module`; a variant row says how to build
them:

* ``"paper"``: conv + bias + ReLU (no BN), LRN after the stem's pool1 and
  conv2 (Caffe's bvlc_googlenet: size 5, alpha 1e-4 / n, beta 0.75), real
  5x5 convs, dropout 0.4; aux heads = avgpool 5x5/3 -> 1x1 conv 128 -> FC
  1024 -> dropout 0.7 -> FC classes.
* ``"caffe"``: the paper's net as BVLC's bvlc_googlenet computes it:
  conv1's padding 3 on every side (Caffe pads symmetrically) and Caffe's
  ceil-mode max pools; equal to ``"paper"`` in its weights.
* ``"torchvision"``: BN (eps 1e-3) after every bias-free conv, a 3x3 conv
  where the paper has 5x5, ceil-mode max pools, maxpool4 2x2, dropout 0.2;
  aux heads = adaptive avgpool 4x4 -> BN conv 128 -> FC 1024 -> dropout 0.7
  -> FC classes. 6,624,904 parameters without aux heads.
* ``"slim"``: TF-slim's ``inception_v1`` (its checkpoints load through
  weights_io layout ``tf-slim-inception-v1``): BN without gamma (eps 1e-3)
  after every bias-free conv, the 3x3 "5x5" branch, TF 'SAME' convs and
  max pools (maxpool4 2x2), no LRN, dropout 0.2 (keep 0.8); slim builds no
  aux heads (ours are the paper's, untrained by any slim checkpoint).

With `aux_logits=True` the model returns ``[main, aux1, aux2]`` (aux1 on
4a, aux2 on 4d). Train it with `compile_with_aux` (loss weights 1, 0.3,
0.3) and predict with `without_aux(model)`, which shares the layers.

Layer names (Caffe's, with ``/`` -> ``_``): stem ``conv1_7x7_s2``,
``pool1_3x3_s2``, ``pool1_norm1``, ``conv2_3x3_reduce``, ``conv2_3x3``,
``conv2_norm2``, ``pool2_3x3_s2``; modules ``inception{3a..5b}`` with units
``_1x1``, ``_3x3_reduce``, ``_3x3``, ``_5x5_reduce``, ``_5x5``,
``_pool_proj`` (each ``_conv``, ``_bn``, ``_relu``) and ``_pool``; pools
``pool3_3x3_s2``, ``pool4_3x3_s2``; aux ``aux{1,2}_pool``,
``aux{1,2}_proj_conv/_bn``, ``aux{1,2}_fc``, ``aux{1,2}_dropout``,
``aux{1,2}_predictions``; head ``avg_pool``, ``dropout``, ``predictions``.
"""

from __future__ import annotations

import dataclasses

import keras

from kerasnets.builder_utils import (
    check_choice,
    check_common_args,
    check_options,
    finish_model,
    make_inputs,
    resolve_input_shape,
)
from kerasnets.inception import (
    Conv,
    ConvStyle,
    Pool,
    check_bool,
    check_rate,
    classifier_head,
    conv_unit,
    inception_module,
    sequence,
    transform_input_layer,
)
from kerasnets.layers import LocalResponseNormalization
from kerasnets.registry import register_model

# name: (1x1, 3x3 reduce, 3x3, 5x5 reduce, 5x5, pool proj); the paper's Table 1.
MODULES = {
    "3a": (64, 96, 128, 16, 32, 32),
    "3b": (128, 128, 192, 32, 96, 64),
    "4a": (192, 96, 208, 16, 48, 64),
    "4b": (160, 112, 224, 24, 64, 64),
    "4c": (128, 128, 256, 24, 64, 64),
    "4d": (112, 144, 288, 32, 64, 64),
    "4e": (256, 160, 320, 32, 128, 128),
    "5a": (256, 160, 320, 32, 128, 128),
    "5b": (384, 192, 384, 48, 128, 128),
}
POOL_AFTER = {"3b": "pool3_3x3_s2", "4e": "pool4_3x3_s2"}
AUX_AFTER = {"4a": "aux1", "4d": "aux2"}
AUX_LOSS_WEIGHTS = (1.0, 0.3, 0.3)


@dataclasses.dataclass(frozen=True)
class Variant:
    style: ConvStyle
    five_by_five: int  # kernel of the "5x5" branch
    stem_pool: str  # padding of the stride-2 max pools ("same" or torch "ceil")
    pool4_size: int
    lrn: bool
    dropout: float
    aux_pool: str  # "avg5s3" (paper) or "adaptive4" (torchvision)


VARIANTS = {
    "paper": Variant(ConvStyle(batch_norm=False), 5, "same", 3, True, 0.4, "avg5s3"),
    "caffe": Variant(ConvStyle(batch_norm=False, torch_padding=True), 5, "ceil", 3, True, 0.4, "avg5s3"),
    # torch_padding: conv1 pads 3 on every side; keras 'same' would pad 2/3 at stride 2.
    "torchvision": Variant(ConvStyle(bn_scale=True, bn_epsilon=1e-3, torch_padding=True), 3, "ceil", 2, False, 0.2,
                           "adaptive4"),
    "slim": Variant(ConvStyle(bn_scale=False, bn_epsilon=1e-3), 3, "same", 2, False, 0.2, "avg5s3"),
}
# Caffe's LRN (alpha divided by the window size).
CAFFE_LRN = dict(size=5, alpha=1e-4, beta=0.75, bias=1.0, convention="caffe")


def module_table(c1, c3r, c3, c5r, c5, proj, *, five_by_five):
    """One GoogLeNet module as branches of the generic inception_module."""
    return (
        (Conv(c1, 1, name="1x1"),),
        (Conv(c3r, 1, name="3x3_reduce"), Conv(c3, 3, name="3x3")),
        (Conv(c5r, 1, name="5x5_reduce"), Conv(c5, five_by_five, name="5x5")),
        (Pool("max", 3, 1, "same"), Conv(proj, 1, name="pool_proj")),
    )


def aux_head(x, variant, *, classes, classifier_activation, dropout, name):
    """Auxiliary classifier: pool -> 1x1 conv 128 -> FC 1024 -> dropout -> FC classes."""
    if variant.aux_pool == "adaptive4":
        x = keras.layers.AdaptiveAveragePooling2D(4, name=f"{name}_pool")(x)
    else:
        x = keras.layers.AveragePooling2D(5, strides=3, name=f"{name}_pool")(x)
    x = conv_unit(x, Conv(128, 1), style=variant.style, name=f"{name}_proj")
    x = keras.layers.Flatten(name=f"{name}_flatten")(x)
    x = keras.layers.Dense(1024, activation="relu", name=f"{name}_fc")(x)
    x = keras.layers.Dropout(dropout, name=f"{name}_dropout")(x)
    return keras.layers.Dense(classes, activation=classifier_activation, name=f"{name}_predictions")(x)


def googlenet_stem(x, variant):
    """conv1 7x7/2 -> pool -> (LRN) -> conv2 1x1 -> conv2 3x3 -> (LRN) -> pool."""
    style = variant.style
    x = sequence(x, (Conv(64, 7, 2, "same", "conv1_7x7_s2"),
                     Pool("max", 3, 2, variant.stem_pool, "pool1_3x3_s2")), style=style)
    if variant.lrn:
        x = LocalResponseNormalization(**CAFFE_LRN, name="pool1_norm1")(x)
    x = sequence(x, (Conv(64, 1, 1, "same", "conv2_3x3_reduce"), Conv(192, 3, 1, "same", "conv2_3x3")), style=style)
    if variant.lrn:
        x = LocalResponseNormalization(**CAFFE_LRN, name="conv2_norm2")(x)
    return sequence(x, (Pool("max", 3, 2, variant.stem_pool, "pool2_3x3_s2"),), style=style)


@register_model("googlenet", family="inception", input_shape=(224, 224, 3), option_defaults={"variant": "torchvision"},
                reference="torchvision googlenet (variant='torchvision'); Szegedy et al. 2014 (variant='paper')")
def build_googlenet(include_top=True, weights=None, input_shape=None, input_tensor=None, pooling=None,
                    classes=1000, classifier_activation="softmax", name=None, **options):
    """GoogLeNet / Inception v1.

    Args:
        include_top, weights, input_shape, input_tensor, pooling, classes,
            classifier_activation, name: as in keras.applications.
        variant: `"torchvision"` (default; BN, weight-compatible with
            torchvision), `"paper"` (the 2014 network with LRN and 5x5),
            `"caffe"` (the paper's net with Caffe's padding and ceil pools:
            bvlc_googlenet) or `"slim"` (TF-slim's inception_v1: BN without gamma, TF padding).
        aux_logits: add the two auxiliary classifiers (on 4a and 4d); the
            model then returns `[main, aux1, aux2]`.
        transform_input: prepend torchvision's input transform (only with
            variant="torchvision", as its pretrained weights expect).
        dropout: rate before `predictions` (paper 0.4, torchvision and slim 0.2).
        aux_dropout: rate inside the aux heads (0.7).

    Returns:
        A `keras.Model`.
    """
    check_options(options, ("variant", "aux_logits", "transform_input", "dropout", "aux_dropout"), "googlenet")
    variant_name = check_choice(options.get("variant", "torchvision"), tuple(VARIANTS), "variant")
    variant = VARIANTS[variant_name]
    aux = check_bool(options.get("aux_logits", False), "aux_logits")
    transform = check_bool(options.get("transform_input", False), "transform_input")
    if transform and variant_name != "torchvision":
        raise ValueError("`transform_input=True` reproduces torchvision's GoogLeNet; use variant='torchvision'. "
                         f"Received: variant={variant_name!r}")
    dropout = check_rate(options.get("dropout", variant.dropout), "dropout")
    aux_dropout = check_rate(options.get("aux_dropout", 0.7), "aux_dropout")
    model_name = name or "googlenet"
    check_common_args(include_top=include_top, weights=weights, pooling=pooling, classes=classes,
                      classifier_activation=classifier_activation)
    if aux and not include_top:
        raise ValueError("`aux_logits=True` needs `include_top=True` (the aux heads are classifiers).")
    # The paper's aux pool (5x5/3, valid) needs a 5x5 map at 4a, i.e. inputs >= 65.
    min_size = 65 if aux and variant.aux_pool == "avg5s3" else 32
    shape = resolve_input_shape(input_shape, default_shape=(224, 224, 3), min_size=min_size, model_name=model_name)
    inputs = make_inputs(shape, input_tensor)
    x = transform_input_layer(inputs) if transform else inputs
    x = googlenet_stem(x, variant)
    aux_outputs = []
    for key, row in MODULES.items():
        x = inception_module(x, module_table(*row, five_by_five=variant.five_by_five), style=variant.style,
                             name=f"inception{key}")
        if aux and key in AUX_AFTER:
            aux_outputs.append(aux_head(x, variant, classes=classes, classifier_activation=classifier_activation,
                                        dropout=aux_dropout, name=AUX_AFTER[key]))
        if key in POOL_AFTER:
            size = variant.pool4_size if key == "4e" else 3
            x = sequence(x, (Pool("max", size, 2, variant.stem_pool, POOL_AFTER[key]),), style=variant.style)
    x = classifier_head(x, include_top=include_top, pooling=pooling, classes=classes,
                        classifier_activation=classifier_activation, dropout=dropout)
    outputs = [x] + aux_outputs if aux else x
    return finish_model(inputs, outputs, input_tensor=input_tensor, name=model_name, weights=weights)


def without_aux(model):
    """The inference model: same layers (and weights), only the main output.

    Args:
        model: a GoogLeNet (or Inception v3) built with `aux_logits=True`.

    Returns:
        A `keras.Model` sharing `model`'s layers whose single output is the
        main classifier; the aux heads are not part of its graph.
    """
    if len(model.outputs) < 2:
        raise ValueError(f"{model.name} has no auxiliary outputs to drop (outputs: {len(model.outputs)}).")
    inputs = model.inputs[0] if len(model.inputs) == 1 else model.inputs  # a list would warn on plain arrays
    return keras.Model(inputs, model.outputs[0], name=f"{model.name}_inference")


def compile_with_aux(model, optimizer="sgd", loss="sparse_categorical_crossentropy", metrics=None,
                     loss_weights=AUX_LOSS_WEIGHTS, **kwargs):
    """Compiles a model with aux heads: the same loss on every output, weighted 1, 0.3, 0.3.

    The paper adds the aux losses to the total with weight 0.3 during
    training only. Fit with one target per output, `model.fit(x, [y, y, y])`;
    the logs then hold `loss` and each head's loss (`aux1_predictions_loss`...).

    Args:
        model: a model returned with `aux_logits=True`.
        optimizer: any Keras optimizer.
        loss: loss applied to each output.
        metrics: metrics for the main output only.
        loss_weights: one weight per output (main first).
        **kwargs: passed to `model.compile`.

    Returns:
        The compiled model.
    """
    if len(loss_weights) != len(model.outputs):
        raise ValueError(f"`loss_weights` needs one weight per output ({len(model.outputs)}). "
                         f"Received: loss_weights={loss_weights!r}")
    metric_list = [metrics or []] + [[] for _ in model.outputs[1:]]
    model.compile(optimizer=optimizer, loss=[loss] * len(model.outputs), loss_weights=list(loss_weights),
                  metrics=metric_list, **kwargs)
    return model
