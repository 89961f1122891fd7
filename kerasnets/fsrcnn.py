"""FSRCNN (Dong et al. 2016), exactly the FSRCNN-pytorch model of the users' notes.

    feature extraction  conv5x5(d) + PReLU(d)
    shrinking           conv1x1(s) + PReLU(s)
    mapping             m x (conv3x3(s) + PReLU(s))
    expanding           conv1x1(d) + PReLU(d)
    deconvolution       ConvTranspose2d(d -> channels, 9, stride=scale, padding=4, output_padding=scale-1)

or, with ``upsampler="subpixel"`` (FSRCNN_Tensorflow, whose models OpenCV's
dnn_superres runs), in place of the deconvolution:

    sub-pixel           conv1x1(d -> channels * scale**2, no bias), depth_to_space(scale), + bias(channels)

Layer names: ``extract_conv``/``extract_prelu``, ``shrink_conv``/``shrink_prelu``,
``map{i}_conv``/``map{i}_prelu`` (i = 1..m), ``expand_conv``/``expand_prelu``,
then ``deconv`` and ``deconv_crop`` or ``subpixel_conv`` and ``subpixel_shuffle``.
The ``fsrcnn-pytorch`` and ``fsrcnn-tensorflow`` layouts in
``weights_io.layouts.fsrcnn`` map the publishers' names onto them.

The output is exactly torch's: H*scale x W*scale, same values (see
`torch_conv_transpose`). PReLU slopes are per channel (torch's
``nn.PReLU(d)``, initial 0.25); initialisation is the repository's.
"""

from __future__ import annotations

import math

import keras

from kerasnets.builder_utils import check_options, finish_model, make_inputs, resolve_input_shape
from kerasnets.layers import PixelShuffle
from kerasnets.registry import register_model


def torch_conv_transpose(x, filters, kernel_size, *, stride, padding, output_padding=0, use_bias=True,
                         kernel_initializer="glorot_uniform", name):
    """`torch.nn.ConvTranspose2d(k, stride, padding, output_padding)` as Keras layers.

    Torch computes the full ('valid') transposed convolution, grows it by
    `output_padding` at the bottom/right, and then removes `padding` rows and
    columns from every side. Keras' ``padding="same"`` places the crop
    differently, so this is a 'valid' `Conv2DTranspose` followed by a
    `Cropping2D` (named ``{name}_crop``): output size ``(H - 1) * stride -
    2 * padding + k + output_padding``, torch's formula. The rows
    `output_padding` adds lie past every kernel tap (bias only), and when
    `output_padding <= padding` torch's crop removes them again; so the crop
    simply takes `padding - output_padding` from the bottom/right, and the
    layer stays a plain transposed convolution that every exporter handles
    (tf2onnx turns an `output_padding` into negative ONNX pads, which
    onnxruntime refuses).
    """
    if output_padding and not 0 < output_padding < stride:
        raise ValueError(f"`output_padding` must be smaller than the stride. Received: {output_padding}")
    grow = output_padding if output_padding > padding else 0
    x = keras.layers.Conv2DTranspose(
        filters, kernel_size, strides=stride, padding="valid", output_padding=grow or None,
        use_bias=use_bias, kernel_initializer=kernel_initializer, name=name,
    )(x)
    end = padding - output_padding + grow
    if padding or end:
        x = keras.layers.Cropping2D(((padding, end), (padding, end)), name=f"{name}_crop")(x)
    return x


UPSAMPLERS = ("deconv", "subpixel")


def _conv_prelu(x, filters, kernel_size, name):
    # FSRCNN-pytorch: N(0, sqrt(2 / (out * kh * kw))) weights, zero bias, torch-default PReLU 0.25.
    std = math.sqrt(2.0 / (filters * kernel_size * kernel_size))
    x = keras.layers.Conv2D(
        filters, kernel_size, padding="same", kernel_initializer=keras.initializers.RandomNormal(0.0, std),
        bias_initializer="zeros", name=f"{name}_conv",
    )(x)
    return keras.layers.PReLU(
        alpha_initializer=keras.initializers.Constant(0.25), shared_axes=[1, 2], name=f"{name}_prelu"
    )(x)


def _positive(value, arg_name, minimum=1):
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"`{arg_name}` must be an integer >= {minimum}. Received: {arg_name}={value!r}")
    return value


@register_model("fsrcnn", family="fsrcnn", input_shape=(None, None, 1), task="image-to-image",
                reference="FSRCNN-pytorch (yjn870) models.FSRCNN; Dong et al. 2016; "
                          "FSRCNN_Tensorflow (Saafke) with upsampler='subpixel'")
def build_fsrcnn(scale=2, num_channels=1, d=56, s=12, m=4, *, upsampler="deconv", weights=None, input_shape=None,
                 input_tensor=None, name=None, **options):
    """FSRCNN super-resolution network; see the module docstring.

    Args:
        scale: upscaling factor (the deconvolution's stride), >= 1.
        num_channels: image channels in and out (1: the Y channel).
        d: feature width (56 in the paper, 32 for FSRCNN-s).
        s: shrunk width (12; 5 for FSRCNN-s).
        m: number of 3x3 mapping layers (4; 1 for FSRCNN-s).
        upsampler: ``"deconv"`` (the paper's 9x9 transposed convolution) or
            ``"subpixel"`` (FSRCNN_Tensorflow's 1x1 convolution and
            depth_to_space, as in OpenCV's dnn_superres models).
        weights: path of a weight file (e.g. an FSRCNN-pytorch ``.pth``), or None.
        input_shape: (H, W, num_channels); H and W may be None (default).
        input_tensor: optional Keras tensor to use as the input.
        name: model name (default ``fsrcnn_x{scale}``).

    Returns:
        A `keras.Model` mapping (H, W, C) to (H*scale, W*scale, C).
    """
    check_options(options, (), "fsrcnn")
    for value, arg_name in ((scale, "scale"), (num_channels, "num_channels"), (d, "d"), (s, "s")):
        _positive(value, arg_name)
    _positive(m, "m", minimum=0)
    if upsampler not in UPSAMPLERS:
        raise ValueError(f"`upsampler` must be one of {UPSAMPLERS}. Received: upsampler={upsampler!r}")
    model_name = name or f"fsrcnn_x{scale}"
    shape = resolve_input_shape(input_shape, default_shape=(None, None, num_channels), min_size=1,
                                channels=num_channels, model_name=model_name)
    inputs = make_inputs(shape, input_tensor)
    x = _conv_prelu(inputs, d, 5, "extract")
    x = _conv_prelu(x, s, 1, "shrink")
    for i in range(1, m + 1):
        x = _conv_prelu(x, s, 3, f"map{i}")
    x = _conv_prelu(x, d, 1, "expand")
    if upsampler == "subpixel":
        # FSRCNN_Tensorflow initialises every kernel N(0, 0.1) and every bias 0
        x = keras.layers.Conv2D(num_channels * scale * scale, 1, use_bias=False, name="subpixel_conv",
                                kernel_initializer=keras.initializers.RandomNormal(0.0, 0.1))(x)
        x = PixelShuffle(scale, channel_order="tf", use_bias=True, name="subpixel_shuffle")(x)
    else:
        x = torch_conv_transpose(
            x, num_channels, 9, stride=scale, padding=4, output_padding=scale - 1,
            kernel_initializer=keras.initializers.RandomNormal(0.0, 1e-3), name="deconv",
        )
    return finish_model(inputs, x, input_tensor=input_tensor, name=model_name, weights=weights)
