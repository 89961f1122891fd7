"""BatchNormalization folded into the convolution before it: the same function at inference, one op less.

At inference a BatchNormalization is a fixed affine map per channel,
y = gamma * (x - moving_mean) / sqrt(moving_variance + epsilon) + beta. After a
Conv2D, DepthwiseConv2D or Dense whose output feeds nothing else, it can be
multiplied into that layer's kernel and bias. Measured on a 2-core AVX-512 CPU
(docs/benchmarks.md, section 10), `predict` of MobileNetV3-Large at batch 8 ran
1.27x faster (1.13-1.85 over 7 rounds); ResNet-50 1.02x at batch 1 and 1.18x at
batch 16, both with rounds below 1. So it is not a default of the builders:
`training.deploy.predictor` times it beside its other inference paths and keeps
it where it wins.

The folded model is for inference only: training it would train the folded
kernels, not the statistics. It contains only stock Keras layers.
"""

from __future__ import annotations

import keras
import numpy as np

_FOLDS_INTO = (keras.layers.Conv2D, keras.layers.DepthwiseConv2D, keras.layers.Dense)


def _single_parent(layer):
    """The layer whose output is `layer`'s only input, if `layer` is called exactly once on one tensor."""
    nodes = layer._inbound_nodes
    if len(nodes) != 1 or len(nodes[0].parent_nodes) != 1:
        return None
    return nodes[0].parent_nodes[0].operation


def foldable_pairs(model):
    """{BatchNormalization name: the layer it folds into}, for the top-level layers of a functional `model`.

    A pair qualifies when the normalisation is over the last axis, its input is
    the output of a Conv2D / DepthwiseConv2D (channels last) or Dense with no
    activation, and that output goes nowhere else.
    """
    pairs = {}
    for layer in model.layers:
        if not isinstance(layer, keras.layers.BatchNormalization):
            continue
        parent = _single_parent(layer)
        if not isinstance(parent, _FOLDS_INTO) or len(parent._inbound_nodes) != 1 or len(parent._outbound_nodes) != 1:
            continue
        if layer.axis not in (-1, len(layer.input.shape) - 1):
            continue
        if parent.get_config().get("activation") not in ("linear", None):
            continue
        if getattr(parent, "data_format", "channels_last") != "channels_last":
            continue
        pairs[layer.name] = parent
    return pairs


def _folded_weights(layer, norm):
    """(kernel, bias) of `layer` with `norm` multiplied in, computed in float64."""
    def value(variable, default):
        return keras.ops.convert_to_numpy(variable).astype("float64") if variable is not None else default

    factor = value(norm.gamma if norm.scale else None, 1.0) / np.sqrt(
        value(norm.moving_variance, None) + norm.epsilon)
    shift = value(norm.beta if norm.center else None, 0.0) - value(norm.moving_mean, None) * factor
    kernel = value(layer.kernel, None)
    if isinstance(layer, keras.layers.DepthwiseConv2D):  # output channel c * multiplier + m
        kernel = kernel * factor.reshape(kernel.shape[2], kernel.shape[3])
    else:  # the output channels are the kernel's last axis
        kernel = kernel * factor
    bias = value(layer.bias if layer.use_bias else None, 0.0) * factor + shift
    return kernel, bias


def fold_batch_norm(model):
    """A copy of `model` with each foldable BatchNormalization multiplied into the layer before it.

    Args:
        model: a functional Keras model (any kerasnets builder's).

    Returns:
        A new functional model computing the same outputs at inference (to
        float rounding), with the folded BatchNormalization layers gone and
        their convolutions given a bias. Layers that cannot be folded (see
        `foldable_pairs`) are copied as they are; nested models are not
        entered.
    """
    if not isinstance(model, keras.Model) or not hasattr(model, "_run_through_graph"):
        raise ValueError(f"`fold_batch_norm` needs a functional Keras model. Received: {type(model).__name__}")
    pairs = foldable_pairs(model)
    folded_into = {layer.name: model.get_layer(norm) for norm, layer in pairs.items()}

    def clone(layer):
        config = layer.get_config()
        if layer.name in folded_into:
            config["use_bias"] = True
        return layer.__class__.from_config(config)

    def call(layer, *args, **kwargs):
        if layer.name in pairs:  # skipped: its input goes straight on
            return args[0]
        return layer(*args, **kwargs)

    folded = keras.models.clone_model(model, clone_function=clone, call_function=call)
    for layer in model.layers:
        if layer.name in pairs or not layer.weights:  # the input layer's clone has a new name, and no weights
            continue
        target = folded.get_layer(layer.name)
        if layer.name in folded_into:
            kernel, bias = _folded_weights(layer, folded_into[layer.name])
            target.kernel.assign(kernel.astype(target.kernel.dtype))
            target.bias.assign(bias.astype(target.bias.dtype))
        else:
            target.set_weights(layer.get_weights())
    return folded
