"""U-Net (Ronneberger et al. 2015), as in the paper or with a pretrained encoder.

Layer names: encoder ``enc{i}_conv1``/``enc{i}_conv2`` (3x3 + ReLU) and
``enc{i}_pool``; decoder ``dec{i}_upconv`` (2x2 transposed conv halving the
width), ``dec{i}_crop`` (the skip's centre crop, unpadded only),
``dec{i}_concat``, ``dec{i}_conv1``/``dec{i}_conv2``; ``predictions`` (1x1).
With ``batch_norm=True`` each 3x3 conv loses its bias and is followed by
``<conv>_bn`` and ``<conv>_relu`` (as VGG's ``_bn`` variants name them).
With ``encoder="vgg16"`` the encoder is `kerasnets.build_vgg16(include_top=False)`
with its keras.applications names (``block{b}_conv{c}``), so VGG16 weights
load by name; with ``encoder="resnet50"`` it is `build_resnet50(features=True)`
(stage outputs C1..C5) and the decoder adds one more up-step to full size.

``padding="valid"`` is the paper: unpadded convs, skips centre-cropped, a
572x572 input gives a 388x388 map (31,030,658 parameters for 1 channel in,
2 classes). ``padding="same"`` keeps the input size.
"""

from __future__ import annotations

import keras

from kerasnets.builder_utils import check_choice, check_options, finish_model, make_inputs, resolve_input_shape
from kerasnets.layers.batch_norm import BatchNormalization
from kerasnets.registry import register_model

PADDINGS = ("valid", "same")
# encoder -> (skip layer names, shallow to deep; bottom layer; decoder widths, deep to shallow; extra full-size up)
ENCODERS = {
    "vgg16": (("block1_conv2", "block2_conv2", "block3_conv3", "block4_conv3"), "block5_conv3", (512, 256, 128, 64), None),
    "resnet50": ((0, 1, 2, 3), 4, (512, 256, 128, 64), 32),
}


def conv_block(x, filters, *, padding, name, batch_norm=False, bn_epsilon=1e-5):
    for j in (1, 2):
        conv = f"{name}_conv{j}"
        if batch_norm:
            # the BN's shift makes a conv bias redundant; milesial's Pytorch-UNet has none
            x = keras.layers.Conv2D(filters, 3, padding=padding, use_bias=False, kernel_initializer="he_normal",
                                    name=conv)(x)
            x = BatchNormalization(epsilon=bn_epsilon, momentum=0.9, name=f"{conv}_bn")(x)
            x = keras.layers.ReLU(name=f"{conv}_relu")(x)
        else:
            x = keras.layers.Conv2D(filters, 3, padding=padding, activation="relu", kernel_initializer="he_normal",
                                    name=conv)(x)
    return x


def up_block(x, skip, filters, *, padding, name, **norm):
    """2x2 up-convolution, (centre-cropped) skip concatenated, two 3x3 convs."""
    x = keras.layers.Conv2DTranspose(filters, 2, strides=2, name=f"{name}_upconv")(x)
    if skip is not None:
        if padding == "valid":
            dh, dw = skip.shape[1] - x.shape[1], skip.shape[2] - x.shape[2]
            skip = keras.layers.Cropping2D(((dh // 2, dh - dh // 2), (dw // 2, dw - dw // 2)), name=f"{name}_crop")(skip)
        x = keras.layers.Concatenate(name=f"{name}_concat")([skip, x])
    return conv_block(x, filters, padding=padding, name=name, **norm)


def _valid_sizes_ok(size, depth):
    for _ in range(depth - 1):
        size -= 4
        if size < 2 or size % 2:
            return False
        size //= 2
    size -= 4
    for _ in range(depth - 1):
        size = size * 2 - 4
    return size > 0


@register_model("unet", family="unet", input_shape=(572, 572, 1), task="image-to-image",
                reference="Ronneberger et al. 2015 (computed: 31,030,658 params, 1 in, 2 classes)")
def build_unet(input_shape=None, input_tensor=None, classes=2, classifier_activation="softmax", weights=None,
               name=None, *, padding="valid", filters=64, depth=5, encoder=None, batch_norm=False, bn_epsilon=1e-5,
               **options):
    """U-Net for per-pixel classification.

    Args:
        input_shape: (H, W, C). Default (572, 572, 1) unpadded, (256, 256, 1)
            with `padding="same"` and (224, 224, 3) with an encoder.
        input_tensor: optional Keras tensor to use as the input.
        classes: output channels (per-pixel classes).
        classifier_activation: activation of the 1x1 output conv (None for logits).
        weights: path of a weight file, or None.
        name: model name.
        padding: `"valid"` (the paper) or `"same"`.
        filters: width of the first level (64); doubles per level.
        depth: levels including the bottom one (5).
        encoder: None (the paper's), `"vgg16"` or `"resnet50"` (kerasnets
            builders, 'same' padding, 3-channel input, sizes multiples of 32).
        batch_norm: 3x3 convs without bias, each followed by BatchNormalization
            (milesial/Pytorch-UNet's DoubleConv).
        bn_epsilon: BatchNormalization epsilon (torch's 1e-5).

    Returns:
        A `keras.Model` from (H, W, C) to (H', W', classes).
    """
    check_options(options, (), "unet")
    check_choice(padding, PADDINGS, "padding")
    check_choice(encoder, (None,) + tuple(ENCODERS), "encoder")
    if not isinstance(classes, int) or isinstance(classes, bool) or classes < 1:
        raise ValueError(f"`classes` must be a positive integer. Received: classes={classes!r}")
    if classifier_activation is not None:
        keras.activations.get(classifier_activation)
    if not isinstance(batch_norm, bool):
        raise ValueError(f"`batch_norm` must be True or False. Received: batch_norm={batch_norm!r}")
    if isinstance(bn_epsilon, bool) or not isinstance(bn_epsilon, (int, float)) or bn_epsilon <= 0:
        raise ValueError(f"`bn_epsilon` must be a positive number. Received: bn_epsilon={bn_epsilon!r}")
    norm = {"batch_norm": batch_norm, "bn_epsilon": bn_epsilon}
    if encoder is not None:
        return _build_with_encoder(encoder, input_shape, input_tensor, classes, classifier_activation, weights, name,
                                   norm)
    for value, arg_name in ((filters, "filters"), (depth, "depth")):
        if not isinstance(value, int) or isinstance(value, bool) or value < (2 if arg_name == "depth" else 1):
            raise ValueError(f"`{arg_name}` must be a positive integer (depth >= 2). Received: {arg_name}={value!r}")
    default = (572, 572, 1) if padding == "valid" else (256, 256, 1)
    shape = resolve_input_shape(input_shape, default_shape=default, min_size=2 ** (depth - 1), model_name="unet")
    if padding == "valid" and not all(s is not None and _valid_sizes_ok(s, depth) for s in shape[:2]):
        raise ValueError(
            "An unpadded U-Net needs a fixed input whose maps stay even before every pooling "
            f"(e.g. 572 for depth 5). Received: input_shape={shape}"
        )
    if padding == "same" and any(s is not None and s % 2 ** (depth - 1) for s in shape[:2]):
        raise ValueError(f"Height and width must be multiples of {2 ** (depth - 1)}. Received: input_shape={shape}")
    inputs = make_inputs(shape, input_tensor)
    x, skips = inputs, []
    for i in range(1, depth):
        x = conv_block(x, filters * 2 ** (i - 1), padding=padding, name=f"enc{i}", **norm)
        skips.append(x)
        x = keras.layers.MaxPooling2D(2, name=f"enc{i}_pool")(x)
    x = conv_block(x, filters * 2 ** (depth - 1), padding=padding, name=f"enc{depth}", **norm)
    for i in range(depth - 1, 0, -1):
        x = up_block(x, skips[i - 1], filters * 2 ** (i - 1), padding=padding, name=f"dec{i}", **norm)
    x = keras.layers.Conv2D(classes, 1, activation=classifier_activation, name="predictions")(x)
    return finish_model(inputs, x, input_tensor=input_tensor, name=name or "unet", weights=weights)


def _build_with_encoder(encoder, input_shape, input_tensor, classes, classifier_activation, weights, name, norm):
    import kerasnets  # the encoder builders live beside this module

    skip_names, bottom, widths, last_width = ENCODERS[encoder]
    shape = resolve_input_shape(input_shape, default_shape=(224, 224, 3), min_size=32, channels=3,
                                model_name=f"unet_{encoder}")
    if any(s is not None and s % 32 for s in shape[:2]):
        raise ValueError(f"Height and width must be multiples of 32. Received: input_shape={shape}")
    inputs = make_inputs(shape, input_tensor)
    if encoder == "vgg16":
        backbone = kerasnets.build_vgg16(include_top=False, input_tensor=inputs)
        skips = [backbone.get_layer(n).output for n in skip_names]
        x = backbone.get_layer(bottom).output
    else:
        backbone = kerasnets.build_resnet50(include_top=False, features=True, input_tensor=inputs)
        stages = backbone.outputs
        skips, x = [stages[i] for i in skip_names], stages[bottom]
    for i, (skip, width) in enumerate(zip(reversed(skips), widths)):
        x = up_block(x, skip, width, padding="same", name=f"dec{len(widths) - i}", **norm)
    if last_width:
        x = up_block(x, None, last_width, padding="same", name="dec0", **norm)
    x = keras.layers.Conv2D(classes, 1, activation=classifier_activation, name="predictions")(x)
    return finish_model(inputs, x, input_tensor=input_tensor, name=name or f"unet_{encoder}", weights=weights)
