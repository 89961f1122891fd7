"""Public entry points: read a file, pick a layout, assign, report."""

from __future__ import annotations

import os

from weights_io.assign import assign_weights, weighted_layers
from weights_io.layouts import detect_layout, get_layout
from weights_io.readers import read_weights


def load_weights(model, path, source=None, *, strict=True, flip_first_conv_channels=False, format=None):
    """Loads a weight file of any supported format into `model`.

    Args:
        model: a built Keras model (e.g. from `kerasnets.build_vgg16()`).
        path: `.npy`, `.npz`, `.mat`, `.pth`/`.pt`/`.th` or `.h5` file.
        source: the layout name (`"tensorflow-vgg"`, `"torchvision-vgg"`,
            `"keras"`, ...; see `weights_io.LAYOUTS`), or None to pick the
            layout that matches the file's layer names best.
        strict: with True (default) any missing, unexpected or mis-shaped
            weight raises `WeightMismatchError` and the model is untouched;
            with False what fits is loaded and the rest reported (a new head).
        flip_first_conv_channels: reverse the first conv's input channels, for
            BGR-trained weights (caffe, tensorflow-vgg) fed RGB images.
        format: force a reader (`"npy"`, `"torch-zip"`, ...) instead of
            detecting it from the file's first bytes.

    Returns:
        A `Report`; `print(report)` shows what went where.
    """
    weight_file = read_weights(path, format=format)
    if source is None:
        layout = detect_layout([layer.name for layer in weighted_layers(model)], weight_file)
    else:
        layout = get_layout(source)
    return assign_weights(
        model, weight_file, layout, strict=strict, flip_first_conv_channels=flip_first_conv_channels, release=True
    )


def load_npy_weights(model, path, source=None, *, strict=True, flip_bgr_to_rgb=False):
    """Loads a `.npy` dict (tensorflow-vgg, caffe-tensorflow) or `.npz` (Frossard).

    tensorflow-vgg and caffe VGG/AlexNet weights were trained on BGR images
    minus the ImageNet mean (103.939, 116.779, 123.68) in 0..255: feed them
    `training` preprocessing mode `"caffe"`, or set `flip_bgr_to_rgb=True` to
    reverse the first conv's input channels and feed RGB minus
    (123.68, 116.779, 103.939) instead (mode `"matconvnet"`).
    """
    fmt = "npz" if os.fspath(path).endswith(".npz") else "npy"
    weight_file = read_weights(path, format=fmt)
    layout = get_layout(source) if source else detect_layout([l.name for l in weighted_layers(model)], weight_file)
    return assign_weights(model, weight_file, layout, strict=strict, flip_first_conv_channels=flip_bgr_to_rgb,
                          release=True)
