"""SegNet (Badrinarayanan et al. 2017) on a VGG16-BN or VGG19-BN encoder.

Encoder layer names are kerasnets.vgg's BN names (``block{b}_conv{c}``,
``block{b}_conv{c}_bn``, ``block{b}_conv{c}_relu``), so VGG-BN weights load
through weights_io's ``torchvision-vgg`` layout (or by name from our VGG);
pools are ``block{b}_pool`` (`MaxPoolingWithArgmax2D`: values + argmax
indices; ceil mode, as Caffe pools, so any input size works: SegNet's CamVid
and SUN nets take 360x480, whose 45x60 maps pool to 23x30 and back).
Decoder: ``decoder{b}_unpool`` (`MaxUnpooling2D` with block b's indices,
restoring the size block b pooled), ``decoder{b}_conv{c}``/``_bn``/``_relu`` mirroring the encoder
(the last conv of a block narrows to the next block's width), and
``score_conv``, a 3x3 conv to the classes (not ``predictions``: VGG layouts map
that name to the ImageNet classifier).
"""

from __future__ import annotations

import keras

from kerasnets.builder_utils import check_choice, check_options, finish_model, make_inputs, resolve_input_shape
from kerasnets.layers.batch_norm import BatchNormalization
from kerasnets.layers import MaxPoolingWithArgmax2D, MaxUnpooling2D
from kerasnets.registry import register_model
from kerasnets.vgg import VGG_BLOCKS, VGG_WIDTHS

ENCODERS = {"vgg16_bn": VGG_BLOCKS["vgg16"], "vgg19_bn": VGG_BLOCKS["vgg19"]}


def conv_bn_relu(x, filters, *, name, bn_epsilon):
    x = keras.layers.Conv2D(filters, 3, padding="same", name=name)(x)
    x = BatchNormalization(epsilon=bn_epsilon, momentum=0.9, name=f"{name}_bn")(x)
    return keras.layers.ReLU(name=f"{name}_relu")(x)


@register_model("segnet", family="segnet", input_shape=(224, 224, 3), task="image-to-image",
                reference="Badrinarayanan et al. 2017; VGG-BN encoder as torchvision vgg16_bn/vgg19_bn")
def build_segnet(input_shape=None, input_tensor=None, classes=21, classifier_activation="softmax", weights=None,
                 name=None, *, encoder="vgg16_bn", bn_epsilon=1e-5, **options):
    """SegNet: VGG-BN encoder with argmax pooling, decoder unpooling with those indices.

    Args:
        input_shape: (H, W, C), H and W at least 32 (any size: odd maps pool in ceil mode and unpool back
            to their own size); default (224, 224, 3).
        input_tensor: optional Keras tensor to use as the input.
        classes: per-pixel classes.
        classifier_activation: activation of the last conv (None for logits).
        weights: path of a weight file, or None.
        name: model name.
        encoder: `"vgg16_bn"` or `"vgg19_bn"`.
        bn_epsilon: BatchNormalization epsilon (torch's 1e-5).

    Returns:
        A `keras.Model` from (H, W, C) to (H, W, classes).
    """
    check_options(options, (), "segnet")
    blocks = ENCODERS[check_choice(encoder, tuple(ENCODERS), "encoder")]
    if not isinstance(classes, int) or isinstance(classes, bool) or classes < 1:
        raise ValueError(f"`classes` must be a positive integer. Received: classes={classes!r}")
    if classifier_activation is not None:
        keras.activations.get(classifier_activation)
    model_name = name or f"segnet_{encoder}"
    shape = resolve_input_shape(input_shape, default_shape=(224, 224, 3), min_size=32, model_name=model_name)
    inputs = make_inputs(shape, input_tensor)
    x, pooled = inputs, []  # (the map each pool took, its argmax indices)
    for b, (convs, width) in enumerate(zip(blocks, VGG_WIDTHS), start=1):
        for c in range(1, convs + 1):
            x = conv_bn_relu(x, width, name=f"block{b}_conv{c}", bn_epsilon=bn_epsilon)
        before = x
        x, argmax = MaxPoolingWithArgmax2D(2, ceil_mode=True, name=f"block{b}_pool")(x)
        pooled.append((before, argmax))
    for b in range(len(blocks), 0, -1):
        before, argmax = pooled[b - 1]
        x = MaxUnpooling2D(2, name=f"decoder{b}_unpool")([x, argmax, before])
        convs, width = blocks[b - 1], VGG_WIDTHS[b - 1]
        for c in range(1, convs + 1):
            last = c == convs
            if last and b == 1:
                break
            out = VGG_WIDTHS[b - 2] if last else width
            x = conv_bn_relu(x, out, name=f"decoder{b}_conv{c}", bn_epsilon=bn_epsilon)
    x = keras.layers.Conv2D(classes, 3, padding="same", activation=classifier_activation, name="score_conv")(x)
    return finish_model(inputs, x, input_tensor=input_tensor, name=model_name, weights=weights)
