"""Transfer learning: a new classifier on a trained network, and which of its layers train.

    net = replace_classifier(backbone, classes=5)
    set_transfer_mode(net, "head")        # "all", "last" (last_n blocks + head) or "head"
"""

from __future__ import annotations

import keras

TRANSFER_MODES = ("all", "last", "head")


def replace_classifier(model, classes, *, hidden=(), classifier_activation="softmax", dropout=0.0):
    """A model with a new classifier for `classes` on the features that fed the old one.

    The features are the input of the layer named `predictions` (the pooled
    features of ResNet/DenseNet, fc7 of VGG) or, for a headless model, its
    output (globally average-pooled if it is a feature map). All other layers
    are shared with `model`, weights included.

    Args:
        model: a functional model.
        classes: number of output classes K.
        hidden: widths of extra Dense+ReLU layers before the classifier (the notes'
            "add a fully connected layer"), named `head_fc1`, `head_fc2`, ...
        classifier_activation: activation of the new `predictions` layer.
        dropout: dropout rate before the classifier.

    Returns:
        A new `keras.Model` named like `model`.
    """
    try:
        x = model.get_layer("predictions").input
    except ValueError:
        x = model.output
        if len(x.shape) == 4:
            x = keras.layers.GlobalAveragePooling2D(name="head_pool")(x)
    for i, width in enumerate(hidden, 1):
        x = keras.layers.Dense(width, activation="relu", name=f"head_fc{i}")(x)
    if dropout:
        x = keras.layers.Dropout(dropout, name="head_dropout")(x)
    outputs = keras.layers.Dense(classes, activation=classifier_activation, name="predictions")(x)
    return keras.Model(model.inputs, outputs, name=model.name)


def head_layer_names(model):
    """Names of the classifier layers (`predictions` and `head_*` added by `replace_classifier`)."""
    return [layer.name for layer in model.layers if layer.name == "predictions" or layer.name.startswith("head_")]


def set_transfer_mode(model, mode, *, last_n=1, head_layers=None):
    """Marks which layers train: the notes' three ways of fine-tuning.

    - "all": every layer trains (load weights, then train everything).
    - "last": only the last `last_n` layers that have weights train.
    - "head": only the classifier (`head_layers`, default `head_layer_names(model)`).

    Frozen BatchNormalization layers run in inference mode (Keras 3 does this for
    `trainable=False`), so their moving statistics stay those of the pretrained net.

    Args:
        model: the model to change in place.
        mode: one of `TRANSFER_MODES`.
        last_n: layers to train for "last".
        head_layers: names of the layers to train for "head".

    Returns:
        Names of the trainable layers that have weights.
    """
    if mode not in TRANSFER_MODES:
        raise ValueError(f"`transfer` must be one of {TRANSFER_MODES}. Received: transfer={mode!r}")
    weighted = [layer for layer in model.layers if layer.weights]
    if mode == "all":
        train = {layer.name for layer in weighted}
    elif mode == "last":
        if not isinstance(last_n, int) or not 1 <= last_n <= len(weighted):
            raise ValueError(f"`last_n` must be in 1..{len(weighted)}. Received: last_n={last_n!r}")
        train = {layer.name for layer in weighted[-last_n:]}
    else:
        train = set(head_layers if head_layers is not None else head_layer_names(model))
        if not train:
            raise ValueError("transfer='head' found no head layer (`predictions` or `head_*`); pass head_layers.")
    model.trainable = True
    for layer in model.layers:
        layer.trainable = layer.name in train or not layer.weights
    return [layer.name for layer in weighted if layer.name in train]
