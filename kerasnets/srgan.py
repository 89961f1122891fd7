"""SRResNet / SRGAN generator and the SRGAN discriminator (Ledig et al. 2017).

Generator layer names: ``stem_conv``/``stem_prelu``; residual blocks
``block{i}_conv1``/``_bn1``/``_prelu``/``_conv2``/``_bn2``/``_add``;
``post_conv``/``post_bn``/``post_add`` (the global skip);
``upsample{i}_conv``/``_shuffle``/``_prelu``; ``output_conv`` (+ ``output``
activation). Discriminator: ``conv1``/``conv1_lrelu``, ``conv{i}_pad``/
``conv{i}``/``conv{i}_bn``/``conv{i}_lrelu`` (i = 2..8), ``flatten``,
``fc1``/``fc1_lrelu``, ``output``.

PReLU has one slope per layer (torch's ``nn.PReLU()``, as in the common
PyTorch ports); BN uses torch's eps 1e-5. Pixel shuffle takes torch's
channel order by default so PyTorch-trained weights work; pass
``channel_order="tf"`` for weights trained with `tf.nn.depth_to_space`.
Stride-2 discriminator convs pad symmetrically (torch's padding=1).
"""

from __future__ import annotations

import math

import keras

from kerasnets.builder_utils import check_choice, check_options, finish_model, make_inputs, resolve_input_shape
from kerasnets.layers.batch_norm import BatchNormalization
from kerasnets.layers import PixelShuffle
from kerasnets.layers.resampling import CHANNEL_ORDERS
from kerasnets.registry import register_model

SCALES = (2, 4, 8)
# Discriminator: (filters, stride) of the eight 3x3 convs.
DISCRIMINATOR_CONVS = ((64, 1), (64, 2), (128, 1), (128, 2), (256, 1), (256, 2), (512, 1), (512, 2))


def _prelu(name):
    return keras.layers.PReLU(alpha_initializer=keras.initializers.Constant(0.25), shared_axes=[1, 2, 3], name=name)


def _bn(name):
    return BatchNormalization(epsilon=1e-5, momentum=0.9, name=name)


def residual_block(x, filters, *, name):
    """conv3x3-BN-PReLU-conv3x3-BN + identity."""
    y = keras.layers.Conv2D(filters, 3, padding="same", name=f"{name}_conv1")(x)
    y = _bn(f"{name}_bn1")(y)
    y = _prelu(f"{name}_prelu")(y)
    y = keras.layers.Conv2D(filters, 3, padding="same", name=f"{name}_conv2")(y)
    y = _bn(f"{name}_bn2")(y)
    return keras.layers.Add(name=f"{name}_add")([x, y])


@register_model("srresnet", family="srgan", input_shape=(None, None, 3), task="image-to-image",
                reference="Ledig et al. 2017 SRResNet / SRGAN generator")
def build_srresnet(scale=4, input_shape=None, input_tensor=None, weights=None, name=None, *, blocks=16, filters=64,
                   channel_order="torch", output_activation="tanh", **options):
    """SRResNet, the SRGAN generator: (H, W, 3) -> (H*scale, W*scale, 3).

    conv9x9(64) + PReLU, `blocks` residual blocks, conv3x3 + BN + global
    skip, log2(scale) x (conv3x3(256), pixel shuffle x2, PReLU), conv9x9(3).

    Args:
        scale: 2, 4 or 8.
        input_shape: (H, W, C); H and W may be None (default (None, None, 3)).
        input_tensor: optional Keras tensor to use as the input.
        weights: path of a weight file, or None.
        name: model name.
        blocks: number of residual blocks (16).
        filters: feature width (64).
        channel_order: pixel-shuffle order, `"torch"` or `"tf"`.
        output_activation: `"tanh"` (images in [-1, 1], as the paper's HR
            targets) or None.

    Returns:
        A `keras.Model`.
    """
    check_options(options, (), "srresnet")
    check_choice(scale, SCALES, "scale")
    check_choice(channel_order, CHANNEL_ORDERS, "channel_order")
    for value, arg_name in ((blocks, "blocks"), (filters, "filters")):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"`{arg_name}` must be a positive integer. Received: {arg_name}={value!r}")
    model_name = name or f"srresnet_x{scale}"
    shape = resolve_input_shape(input_shape, default_shape=(None, None, 3), min_size=1, model_name=model_name)
    inputs = make_inputs(shape, input_tensor)
    x = keras.layers.Conv2D(filters, 9, padding="same", name="stem_conv")(inputs)
    stem = x = _prelu("stem_prelu")(x)
    for i in range(1, blocks + 1):
        x = residual_block(x, filters, name=f"block{i}")
    x = keras.layers.Conv2D(filters, 3, padding="same", name="post_conv")(x)
    x = _bn("post_bn")(x)
    x = keras.layers.Add(name="post_add")([stem, x])
    for i in range(1, int(math.log2(scale)) + 1):
        x = keras.layers.Conv2D(filters * 4, 3, padding="same", name=f"upsample{i}_conv")(x)
        x = PixelShuffle(2, channel_order=channel_order, name=f"upsample{i}_shuffle")(x)
        x = _prelu(f"upsample{i}_prelu")(x)
    x = keras.layers.Conv2D(shape[-1], 9, padding="same", name="output_conv")(x)
    if output_activation:
        x = keras.layers.Activation(output_activation, name="output")(x)
    return finish_model(inputs, x, input_tensor=input_tensor, name=model_name, weights=weights)


@register_model("srgan_generator", family="srgan", input_shape=(None, None, 3), task="generative",
                reference="Ledig et al. 2017 SRGAN generator (= SRResNet)")
def build_srgan_generator(scale=4, input_shape=None, input_tensor=None, weights=None, name=None, **options):
    """The SRGAN generator: SRResNet trained adversarially; same network and options as `build_srresnet`."""
    return build_srresnet(scale, input_shape, input_tensor, weights, name or f"srgan_generator_x{scale}", **options)


@register_model("srgan_discriminator", family="srgan", input_shape=(96, 96, 3), task="generative",
                reference="Ledig et al. 2017 SRGAN discriminator")
def build_srgan_discriminator(input_shape=None, input_tensor=None, weights=None, name=None, *, activation=None,
                              **options):
    """SRGAN discriminator: 8 conv3x3 blocks 64..512 (strides 1, 2 alternating), Dense 1024, Dense 1.

    LeakyReLU 0.2 everywhere, BN after every conv but the first. The Dense
    layers read the flattened map, so the input size is fixed (96x96 in the
    paper).

    Args:
        input_shape: (H, W, C), H and W multiples of 16; default (96, 96, 3).
        input_tensor: optional Keras tensor to use as the input.
        weights: path of a weight file, or None.
        name: model name.
        activation: output activation; None (default) gives logits for
            `BinaryCrossentropy(from_logits=True)`, `"sigmoid"` the paper's
            probability.

    Returns:
        A `keras.Model` from images to (1,) scores.
    """
    check_options(options, (), "srgan_discriminator")
    shape = resolve_input_shape(input_shape, default_shape=(96, 96, 3), min_size=16, model_name="srgan_discriminator")
    if None in shape[:2] or shape[0] % 16 or shape[1] % 16:
        raise ValueError(f"srgan_discriminator needs a fixed height and width, multiples of 16. Received: input_shape={shape}")
    inputs = make_inputs(shape, input_tensor)
    x = inputs
    for i, (filters, stride) in enumerate(DISCRIMINATOR_CONVS, start=1):
        if stride == 1:
            x = keras.layers.Conv2D(filters, 3, padding="same", name=f"conv{i}")(x)
        else:
            x = keras.layers.ZeroPadding2D(1, name=f"conv{i}_pad")(x)
            x = keras.layers.Conv2D(filters, 3, strides=stride, name=f"conv{i}")(x)
        if i > 1:
            x = _bn(f"conv{i}_bn")(x)
        x = keras.layers.LeakyReLU(0.2, name=f"conv{i}_lrelu")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    x = keras.layers.Dense(1024, name="fc1")(x)
    x = keras.layers.LeakyReLU(0.2, name="fc1_lrelu")(x)
    x = keras.layers.Dense(1, activation=activation, name="output")(x)
    return finish_model(inputs, x, input_tensor=input_tensor, name=name or "srgan_discriminator", weights=weights)
