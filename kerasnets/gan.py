"""GAN generators and discriminators: DCGAN, pix2pix (U-Net + PatchGAN), CycleGAN.

Layer names, per model:

* DCGAN generator (PyTorch DCGAN tutorial): ``latent_reshape``,
  ``block{i}_deconv``/``_bn``/``_relu``, ``output_deconv``, ``output`` (tanh).
  Discriminator: ``block{i}_pad``/``_conv``/``_bn``/``_lrelu``,
  ``output_conv``, ``flatten``, ``output``.
* pix2pix U-Net generator (TensorFlow pix2pix tutorial): ``down{i}_conv``/
  ``_norm``/``_lrelu``, ``up{i}_deconv``/``_norm``/``_dropout``/``_relu``/
  ``_concat``, ``output``. PatchGAN: ``concat``, ``down{1..3}_*``, ``pad1``,
  ``conv4``/``conv4_norm``/``conv4_lrelu``, ``pad2``, ``output``.
* pix2pix U-Net generator, ``variant="torch"`` (junyanz's UnetGenerator): the
  activation opens each block, so ``down{i}_lrelu`` (i > 1) precedes
  ``down{i}_conv``/``_norm`` (no norm on down1 or the innermost down) and
  ``up{i}_relu`` precedes ``up{i}_deconv``/``_norm``/``_dropout``, then
  ``up{i}_concat`` = [skip, up]; ``output_relu``, ``output``. Up i counts
  from the innermost, as in the tutorial.
* CycleGAN ResNet generator (junyanz/pytorch-CycleGAN-and-pix2pix):
  ``stem_pad``/``_conv``/``_norm``/``_relu``, ``down{i}_pad``/``_conv``/
  ``_norm``/``_relu``, ``block{i}_pad{j}``/``_conv{j}``/``_norm{j}``,
  ``block{i}_relu1``, ``block{i}_add``, ``up{i}_deconv`` (+ ``_crop``)/
  ``_norm``/``_relu``, ``output_pad``, ``output_conv``, ``output``.
  NLayer discriminator: ``conv{i}_pad``/``conv{i}``/``conv{i}_norm``/
  ``conv{i}_lrelu``, ``output_pad``, ``output``.

PyTorch-derived models pad explicitly (`ZeroPadding2D` + 'valid', and
`torch_conv_transpose`) so their geometry is torch's, except the torch U-Net:
its 4x4 stride-2 (transposed) convs with padding 1 always see even sizes,
where 'same' pads one on each side, exactly as torch does. The TensorFlow
tutorial's models keep its 'same' padding and Keras BatchNormalization
defaults. Initialisation is each reference's: N(0, 0.02) weights, and DCGAN's
N(1, 0.02) BN scales.
"""

from __future__ import annotations

import math

import keras

from kerasnets.builder_utils import check_choice, check_options, finish_model, make_inputs, resolve_input_shape
from kerasnets.layers.batch_norm import BatchNormalization
from kerasnets.fsrcnn import torch_conv_transpose
from kerasnets.layers import InstanceNormalization, ReflectionPadding2D
from kerasnets.registry import register_model

NORMS = ("batch", "instance")
INIT = keras.initializers.RandomNormal(0.0, 0.02)


def _norm(x, norm, name, *, torch_bn=False):
    """Batch norm (Keras defaults, or torch's eps/momentum) or affine-free instance norm."""
    if norm == "instance":
        return InstanceNormalization(name=name)(x)
    if torch_bn:
        return BatchNormalization(
            epsilon=1e-5, momentum=0.9, gamma_initializer=keras.initializers.RandomNormal(1.0, 0.02), name=name
        )(x)
    return BatchNormalization(name=name)(x)


def _torch_conv(x, filters, kernel_size, *, stride, padding, use_bias, name, pad_name=None):
    """`torch.nn.Conv2d(k, stride, padding)`: symmetric zero padding, then 'valid'."""
    if padding:
        x = keras.layers.ZeroPadding2D(padding, name=pad_name or f"{name}_pad")(x)
    return keras.layers.Conv2D(filters, kernel_size, strides=stride, use_bias=use_bias, kernel_initializer=INIT,
                               name=name)(x)


def _power_of_two(value, arg_name, minimum):
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum or value & (value - 1):
        raise ValueError(f"`{arg_name}` must be a power of 2 >= {minimum}. Received: {arg_name}={value!r}")
    return int(math.log2(value))


def _positive(value, arg_name):
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"`{arg_name}` must be a positive integer. Received: {arg_name}={value!r}")
    return value


def _image_shape(input_shape, default, multiple, model_name):
    shape = resolve_input_shape(input_shape, default_shape=default, min_size=multiple, model_name=model_name)
    for size in shape[:2]:
        if size is not None and size % multiple:
            raise ValueError(
                f"{model_name} needs height and width that are multiples of {multiple} (at least {multiple}). "
                f"Received: input_shape={shape}"
            )
    return shape


# --------------------------------------------------------------------------- DCGAN


@register_model("dcgan_generator", family="gan", input_shape=(100,), task="generative",
                reference="PyTorch DCGAN tutorial; Radford et al. 2016")
def build_dcgan_generator(latent_dim=100, image_size=64, channels=3, filters=64, *, weights=None, name=None,
                          **options):
    """DCGAN generator: latent vector -> (image_size, image_size, channels) in [-1, 1].

    A 4x4 transposed conv from the 1x1 latent, then stride-2 transposed convs
    (k4, p1, no bias) + BN + ReLU halving the width up to `filters`, and a
    last one to `channels` with tanh (the PyTorch tutorial's net at 64x64).

    Args:
        latent_dim: size of the noise vector z.
        image_size: output height and width, a power of 2 >= 8.
        channels: output channels.
        filters: width of the last hidden layer (ngf).
        weights: path of a weight file, or None.
        name: model name.

    Returns:
        A `keras.Model` from (latent_dim,) to images.
    """
    check_options(options, (), "dcgan_generator")
    for value, arg_name in ((latent_dim, "latent_dim"), (channels, "channels"), (filters, "filters")):
        _positive(value, arg_name)
    ups = _power_of_two(image_size, "image_size", 8) - 2
    inputs = keras.Input((latent_dim,), name="latent")
    x = keras.layers.Reshape((1, 1, latent_dim), name="latent_reshape")(inputs)
    width = filters * 2 ** (ups - 1)
    x = keras.layers.Conv2DTranspose(width, 4, use_bias=False, kernel_initializer=INIT, name="block1_deconv")(x)
    for i in range(1, ups + 1):
        if i > 1:
            width //= 2
            x = torch_conv_transpose(x, width, 4, stride=2, padding=1, use_bias=False, kernel_initializer=INIT,
                                     name=f"block{i}_deconv")
        x = _norm(x, "batch", f"block{i}_bn", torch_bn=True)
        x = keras.layers.ReLU(name=f"block{i}_relu")(x)
    x = torch_conv_transpose(x, channels, 4, stride=2, padding=1, use_bias=False, kernel_initializer=INIT,
                             name="output_deconv")
    x = keras.layers.Activation("tanh", name="output")(x)
    return finish_model(inputs, x, name=name or "dcgan_generator", weights=weights)


@register_model("dcgan_discriminator", family="gan", input_shape=(64, 64, 3), task="generative",
                reference="PyTorch DCGAN tutorial; Radford et al. 2016")
def build_dcgan_discriminator(image_size=64, channels=3, filters=64, *, activation="sigmoid", weights=None,
                              input_tensor=None, name=None, **options):
    """DCGAN discriminator: image -> probability (or logit) that it is real.

    Stride-2 convs (k4, p1, no bias) doubling the width from `filters`, BN on
    all but the first, LeakyReLU 0.2, then a 4x4 'valid' conv to one unit.

    Args:
        image_size: input height and width, a power of 2 >= 8.
        channels: input channels.
        filters: width of the first conv (ndf).
        activation: output activation (`"sigmoid"` as in the tutorial, or
            None for logits).
        weights: path of a weight file, or None.
        input_tensor: optional Keras tensor to use as the input.
        name: model name.

    Returns:
        A `keras.Model` from images to (1,) scores.
    """
    check_options(options, (), "dcgan_discriminator")
    _positive(channels, "channels")
    _positive(filters, "filters")
    downs = _power_of_two(image_size, "image_size", 8) - 2
    inputs = make_inputs((image_size, image_size, channels), input_tensor)
    x = inputs
    for i in range(1, downs + 1):
        x = _torch_conv(x, filters * 2 ** (i - 1), 4, stride=2, padding=1, use_bias=False, name=f"block{i}_conv")
        if i > 1:
            x = _norm(x, "batch", f"block{i}_bn", torch_bn=True)
        x = keras.layers.LeakyReLU(0.2, name=f"block{i}_lrelu")(x)
    x = keras.layers.Conv2D(1, 4, use_bias=False, kernel_initializer=INIT, name="output_conv")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    x = keras.layers.Activation(activation or "linear", name="output")(x)
    return finish_model(inputs, x, input_tensor=input_tensor, name=name or "dcgan_discriminator", weights=weights)


# --------------------------------------------------------------------------- pix2pix


# How each source wires the U-Net; the tutorial's layer names and behaviour are the default's.
PIX2PIX_VARIANTS = {
    # TensorFlow pix2pix tutorial: conv-norm-activation blocks, concat [up, skip], norm on every down but
    # the first, dropout on the first three ups, Keras BatchNormalization defaults.
    "tf": {"preactivation": False, "skip_first": False, "innermost_norm": True,
           "torch_bn": False, "bias_with_instance_norm": False, "dropout_ups": lambda num_downs: range(1, 4)},
    # junyanz's UnetGenerator (pix2pix in PyTorch): each block applies the activation to its input, so the
    # skip carries the pre-activation output (the ReLU of the next up makes the in-place LeakyReLU
    # irrelevant); concat [skip, up], no norm on the innermost down, dropout on the 8x-wide middle ups
    # (num_downs - 5 of them), torch BN (eps 1e-5, momentum 0.1), conv biases only with instance norm.
    "torch": {"preactivation": True, "skip_first": True, "innermost_norm": False, "torch_bn": True,
              "bias_with_instance_norm": True, "dropout_ups": lambda num_downs: range(2, num_downs - 3)},
}


def _down(x, filters, *, norm, name, activation="post", use_bias=False, torch_bn=False):
    """Conv4/2 'same' + norm, with LeakyReLU 0.2 after ("post"), before ("pre") or not at all (None)."""
    if activation == "pre":
        x = keras.layers.LeakyReLU(0.2, name=f"{name}_lrelu")(x)
    x = keras.layers.Conv2D(filters, 4, strides=2, padding="same", use_bias=use_bias, kernel_initializer=INIT,
                            name=f"{name}_conv")(x)
    if norm:
        x = _norm(x, norm, f"{name}_norm", torch_bn=torch_bn)
    if activation == "post":
        x = keras.layers.LeakyReLU(0.2, name=f"{name}_lrelu")(x)
    return x


def _up(x, filters, *, norm, dropout, name, preactivation=False, use_bias=False, torch_bn=False):
    if preactivation:
        x = keras.layers.ReLU(name=f"{name}_relu")(x)
    x = keras.layers.Conv2DTranspose(filters, 4, strides=2, padding="same", use_bias=use_bias,
                                     kernel_initializer=INIT, name=f"{name}_deconv")(x)
    x = _norm(x, norm, f"{name}_norm", torch_bn=torch_bn)
    if dropout:
        x = keras.layers.Dropout(dropout, name=f"{name}_dropout")(x)
    if not preactivation:
        x = keras.layers.ReLU(name=f"{name}_relu")(x)
    return x


def unet_generator(inputs, *, output_channels, num_downs, filters, norm, dropout=0.5, variant="tf"):
    """The pix2pix U-Net: `num_downs` stride-2 downs (widths f, 2f, 4f, 8f, 8f, ...),
    mirrored ups concatenated with the skips, and a tanh transposed conv back to
    full size, wired as `PIX2PIX_VARIANTS[variant]` says."""
    spec = PIX2PIX_VARIANTS[variant]
    pre = spec["preactivation"]
    use_bias = spec["bias_with_instance_norm"] and norm == "instance"
    widths = [filters * min(2**i, 8) for i in range(num_downs)]
    x, skips = inputs, []
    for i, width in enumerate(widths, start=1):
        normed = i > 1 and (i < num_downs or spec["innermost_norm"])
        activation = ("pre" if i > 1 else None) if pre else "post"
        x = _down(x, width, norm=norm if normed else None, activation=activation, use_bias=use_bias,
                  torch_bn=spec["torch_bn"], name=f"down{i}")
        skips.append(x)
    dropout_ups = spec["dropout_ups"](num_downs)
    for i, (width, skip) in enumerate(zip(reversed(widths[:-1]), reversed(skips[:-1])), start=1):
        x = _up(x, width, norm=norm, dropout=dropout if i in dropout_ups else 0.0, preactivation=pre,
                use_bias=use_bias, torch_bn=spec["torch_bn"], name=f"up{i}")
        x = keras.layers.Concatenate(name=f"up{i}_concat")([skip, x] if spec["skip_first"] else [x, skip])
    if pre:
        x = keras.layers.ReLU(name="output_relu")(x)
    return keras.layers.Conv2DTranspose(output_channels, 4, strides=2, padding="same", activation="tanh",
                                        kernel_initializer=INIT, name="output")(x)


@register_model("pix2pix_generator", family="gan", input_shape=(256, 256, 3), task="image-to-image",
                reference="TensorFlow pix2pix tutorial U-Net; Isola et al. 2017")
def build_pix2pix_generator(input_shape=None, input_tensor=None, output_channels=3, weights=None, name=None,
                            *, num_downs=8, filters=64, norm="batch", dropout=0.5, variant="tf", **options):
    """pix2pix U-Net generator (U-Net 256 by default: 54,414,979 parameters).

    Down 64-128-256-512x5 (conv4/2 'same', no bias, BN except the first,
    LeakyReLU 0.2), up mirrored (transposed conv4/2, BN, dropout 0.5 on the
    first three, ReLU) concatenated with the skips, and a tanh output.
    `variant="torch"` is junyanz's UnetGenerator (`netG=unet_256`), whose
    published pix2pix generators load into it (54,413,955 parameters). It
    behaves as their `test.py --eval`: junyanz's default test run keeps
    train mode (batch statistics, active dropout), Keras inference does not.

    Args:
        input_shape: (H, W, C), H and W multiples of 2**num_downs; default (256, 256, 3).
        input_tensor: optional Keras tensor to use as the input.
        output_channels: channels of the generated image.
        weights: path of a weight file, or None.
        name: model name.
        num_downs: stride-2 downsamplings (8 for 256x256; 7: CycleGAN's unet_128).
        filters: width of the first conv.
        norm: `"batch"` (pix2pix) or `"instance"`.
        dropout: rate on the first three ups, or on junyanz's middle ups (0 disables).
        variant: `"tf"` (the TensorFlow tutorial) or `"torch"` (junyanz); see `PIX2PIX_VARIANTS`.

    Returns:
        A `keras.Model` from (H, W, C) to (H, W, output_channels) in [-1, 1].
    """
    check_options(options, (), "pix2pix_generator")
    check_choice(norm, NORMS, "norm")
    check_choice(variant, tuple(PIX2PIX_VARIANTS), "variant")
    for value, arg_name in ((num_downs, "num_downs"), (filters, "filters"), (output_channels, "output_channels")):
        _positive(value, arg_name)
    shape = _image_shape(input_shape, (256, 256, 3), 2**num_downs, "pix2pix_generator")
    inputs = make_inputs(shape, input_tensor)
    outputs = unet_generator(inputs, output_channels=output_channels, num_downs=num_downs, filters=filters,
                             norm=norm, dropout=dropout, variant=variant)
    return finish_model(inputs, outputs, input_tensor=input_tensor, name=name or "pix2pix_generator", weights=weights)


@register_model("patchgan_discriminator", family="gan", input_shape=(256, 256, 3), task="image-to-image",
                reference="TensorFlow pix2pix tutorial 70x70 PatchGAN; Isola et al. 2017")
def build_patchgan_discriminator(input_shape=None, target_channels=None, weights=None, name=None, *, filters=64,
                                 norm="batch", **options):
    """pix2pix 70x70 PatchGAN on concat(source, target): one logit per patch.

    Three conv4/2 downs (64 without norm, 128, 256), zero pad, conv4/1 512 +
    norm + LeakyReLU, zero pad, conv4/1 to one channel (a 30x30 map at 256).

    Args:
        input_shape: (H, W, C) of the source image; default (256, 256, 3).
        target_channels: channels of the target image (default: C).
        weights: path of a weight file, or None.
        name: model name.
        filters: width of the first conv.
        norm: `"batch"` or `"instance"`.

    Returns:
        A `keras.Model` with inputs [source, target] and a (H/8 - 2, W/8 - 2, 1) logit map.
    """
    check_options(options, (), "patchgan_discriminator")
    check_choice(norm, NORMS, "norm")
    _positive(filters, "filters")
    shape = _image_shape(input_shape, (256, 256, 3), 32, "patchgan_discriminator")
    target_shape = shape[:2] + (_positive(target_channels or shape[2], "target_channels"),)
    source = keras.Input(shape, name="input_image")
    target = keras.Input(target_shape, name="target_image")
    x = keras.layers.Concatenate(name="concat")([source, target])
    for i, mult in enumerate((1, 2, 4), start=1):
        x = _down(x, filters * mult, norm=norm if i > 1 else None, name=f"down{i}")
    x = keras.layers.ZeroPadding2D(name="pad1")(x)
    x = keras.layers.Conv2D(filters * 8, 4, use_bias=False, kernel_initializer=INIT, name="conv4")(x)
    x = _norm(x, norm, "conv4_norm")
    x = keras.layers.LeakyReLU(0.2, name="conv4_lrelu")(x)
    x = keras.layers.ZeroPadding2D(name="pad2")(x)
    x = keras.layers.Conv2D(1, 4, kernel_initializer=INIT, name="output")(x)
    return finish_model([source, target], x, name=name or "patchgan_discriminator", weights=weights)


# --------------------------------------------------------------------------- CycleGAN

# architecture -> (body, blocks or downs): junyanz's netG choices.
CYCLEGAN_GENERATORS = {
    "resnet_9blocks": ("resnet", 9),
    "resnet_6blocks": ("resnet", 6),
    "unet_256": ("unet", 8),
    "unet_128": ("unet", 7),
}


def _resnet_block(x, filters, *, name):
    shortcut = x
    for j in (1, 2):
        x = ReflectionPadding2D(1, name=f"{name}_pad{j}")(x)
        x = keras.layers.Conv2D(filters, 3, kernel_initializer=INIT, name=f"{name}_conv{j}")(x)
        x = InstanceNormalization(name=f"{name}_norm{j}")(x)
        if j == 1:
            x = keras.layers.ReLU(name=f"{name}_relu1")(x)
    return keras.layers.Add(name=f"{name}_add")([shortcut, x])


def resnet_generator(inputs, *, output_channels, blocks, filters):
    """junyanz's ResnetGenerator with InstanceNorm (no affine), hence conv biases."""
    x = ReflectionPadding2D(3, name="stem_pad")(inputs)
    x = keras.layers.Conv2D(filters, 7, kernel_initializer=INIT, name="stem_conv")(x)
    x = InstanceNormalization(name="stem_norm")(x)
    x = keras.layers.ReLU(name="stem_relu")(x)
    for i in (1, 2):
        x = _torch_conv(x, filters * 2**i, 3, stride=2, padding=1, use_bias=True, name=f"down{i}_conv",
                        pad_name=f"down{i}_pad")
        x = InstanceNormalization(name=f"down{i}_norm")(x)
        x = keras.layers.ReLU(name=f"down{i}_relu")(x)
    for i in range(1, blocks + 1):
        x = _resnet_block(x, filters * 4, name=f"block{i}")
    for i in (1, 2):
        x = torch_conv_transpose(x, filters * 2 ** (2 - i), 3, stride=2, padding=1, output_padding=1,
                                 kernel_initializer=INIT, name=f"up{i}_deconv")
        x = InstanceNormalization(name=f"up{i}_norm")(x)
        x = keras.layers.ReLU(name=f"up{i}_relu")(x)
    x = ReflectionPadding2D(3, name="output_pad")(x)
    x = keras.layers.Conv2D(output_channels, 7, kernel_initializer=INIT, name="output_conv")(x)
    return keras.layers.Activation("tanh", name="output")(x)


@register_model("cyclegan_generator", family="gan", input_shape=(256, 256, 3), task="image-to-image",
                reference="junyanz/pytorch-CycleGAN-and-pix2pix ResnetGenerator; Zhu et al. 2017")
def build_cyclegan_generator(input_shape=None, input_tensor=None, output_channels=3, weights=None, name=None,
                             *, architecture="resnet_9blocks", filters=64, **options):
    """CycleGAN generator (ResNet-9 by default: 11,378,179 parameters).

    ResNet: reflection pad 3 + conv7x7, two stride-2 convs, residual blocks
    (reflection pad, conv3x3, InstanceNorm, ReLU, ..., + skip), two
    transposed convs (torch's k3/s2/p1/output_padding 1), reflection pad 3 +
    conv7x7 + tanh; InstanceNorm without affine throughout. The U-Net
    choices are the pix2pix U-Net with InstanceNorm.

    Args:
        input_shape: (H, W, C); H and W multiples of 4 (ResNet) or
            2**downs (U-Net). Default (256, 256, 3).
        input_tensor: optional Keras tensor to use as the input.
        output_channels: channels of the generated image.
        weights: path of a weight file, or None.
        name: model name.
        architecture: one of `CYCLEGAN_GENERATORS` (`"resnet_9blocks"`,
            `"resnet_6blocks"`, `"unet_256"`, `"unet_128"`).
        filters: width of the first conv (ngf).

    Returns:
        A `keras.Model` from (H, W, C) to (H, W, output_channels) in [-1, 1].
    """
    check_options(options, (), "cyclegan_generator")
    body, depth = CYCLEGAN_GENERATORS[check_choice(architecture, tuple(CYCLEGAN_GENERATORS), "architecture")]
    _positive(filters, "filters")
    _positive(output_channels, "output_channels")
    model_name = name or f"cyclegan_generator_{architecture}"
    multiple = 4 if body == "resnet" else 2**depth
    shape = _image_shape(input_shape, (256, 256, 3), max(multiple, 8), model_name)
    inputs = make_inputs(shape, input_tensor)
    if body == "resnet":
        outputs = resnet_generator(inputs, output_channels=output_channels, blocks=depth, filters=filters)
    else:
        outputs = unet_generator(inputs, output_channels=output_channels, num_downs=depth, filters=filters,
                                 norm="instance")
    return finish_model(inputs, outputs, input_tensor=input_tensor, name=model_name, weights=weights)


@register_model("cyclegan_discriminator", family="gan", input_shape=(256, 256, 3), task="image-to-image",
                reference="junyanz/pytorch-CycleGAN-and-pix2pix NLayerDiscriminator (70x70 PatchGAN)")
def build_cyclegan_discriminator(input_shape=None, input_tensor=None, weights=None, name=None, *, n_layers=3,
                                 filters=64, norm="instance", **options):
    """CycleGAN's NLayer (70x70 PatchGAN) discriminator: 2,764,737 parameters at n_layers=3.

    conv4/2 + LeakyReLU 0.2, then n_layers - 1 conv4/2 and one conv4/1, each
    with norm + LeakyReLU (widths x2 up to 8x), and a conv4/1 to one logit
    per patch; every conv pads 1 (torch). Convs have biases with
    InstanceNorm, none with BatchNorm, as in the reference.

    Args:
        input_shape: (H, W, C); default (256, 256, 3).
        input_tensor: optional Keras tensor to use as the input.
        weights: path of a weight file, or None.
        name: model name.
        n_layers: number of stride-2 convs.
        filters: width of the first conv (ndf).
        norm: `"instance"` (CycleGAN) or `"batch"` (pix2pix in that repository).

    Returns:
        A `keras.Model` from images to a patch logit map.
    """
    check_options(options, (), "cyclegan_discriminator")
    check_choice(norm, NORMS, "norm")
    _positive(n_layers, "n_layers")
    _positive(filters, "filters")
    shape = _image_shape(input_shape, (256, 256, 3), 2 ** (n_layers + 1), "cyclegan_discriminator")
    inputs = make_inputs(shape, input_tensor)
    use_bias = norm == "instance"
    x = _torch_conv(inputs, filters, 4, stride=2, padding=1, use_bias=True, name="conv1")
    x = keras.layers.LeakyReLU(0.2, name="conv1_lrelu")(x)
    for i in range(1, n_layers + 1):
        stride = 2 if i < n_layers else 1
        x = _torch_conv(x, filters * min(2**i, 8), 4, stride=stride, padding=1, use_bias=use_bias, name=f"conv{i + 1}")
        x = _norm(x, norm, f"conv{i + 1}_norm", torch_bn=True)
        x = keras.layers.LeakyReLU(0.2, name=f"conv{i + 1}_lrelu")(x)
    x = _torch_conv(x, 1, 4, stride=1, padding=1, use_bias=True, name="output")
    return finish_model(inputs, x, input_tensor=input_tensor, name=name or "cyclegan_discriminator", weights=weights)
