"""Public entry points: read a file, pick a layout, assign, report."""

from __future__ import annotations

import os

from weights_io.assign import assign_weights, weighted_layers
from weights_io.layouts import choose_layout, detect_layout, get_layout
from weights_io.readers import read_weights


def load_weights(model, path, source=None, *, strict=True, flip_first_conv_channels=False, format=None,
                 progress=None, trusted=False, keep_background=False):
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
        progress: None, or a callable `(bytes_done, bytes_total)` called as
            arrays are assigned (`kerasnets convert` draws a progress line with it).
        trusted: parse the file in this process instead of the limited reader
            process (`weights_io.sandbox`); for files you wrote yourself.
        keep_background: keep class 0 (background) of a TF-slim classifier
            with 1001 classes (build the model with classes=1001); by default
            it is dropped and the model has the 1000 ImageNet classes.

    Returns:
        A `Report`; `print(report)` shows what went where.
    """
    weight_file = read_weights(path, format=format, mmap=True, trusted=trusted)
    if source is None:
        layout = choose_layout([layer.name for layer in weighted_layers(model)], weight_file)
    else:
        layout = get_layout(source)
    return assign_weights(
        model, weight_file, layout, strict=strict, flip_first_conv_channels=flip_first_conv_channels, release=True,
        progress=progress, keep_background=keep_background,
    )


def load_npy_weights(model, path, source=None, *, strict=True, flip_bgr_to_rgb=False, trusted=False):
    """Loads a `.npy` dict (tensorflow-vgg, caffe-tensorflow) or `.npz` (Frossard).

    tensorflow-vgg and caffe VGG/AlexNet weights were trained on BGR images
    minus the ImageNet mean (103.939, 116.779, 123.68) in 0..255: feed them
    `training` preprocessing mode `"caffe"`, or set `flip_bgr_to_rgb=True` to
    reverse the first conv's input channels and feed RGB minus
    (123.68, 116.779, 103.939) instead (mode `"matconvnet"`).
    """
    fmt = "npz" if os.fspath(path).endswith(".npz") else "npy"
    weight_file = read_weights(path, format=fmt, mmap=True, trusted=trusted)
    layout = get_layout(source) if source else detect_layout([l.name for l in weighted_layers(model)], weight_file)
    return assign_weights(model, weight_file, layout, strict=strict, flip_first_conv_channels=flip_bgr_to_rgb,
                          release=True)


# Reader formats each format-specific loader accepts (the file's bytes decide which).
_FAMILIES = {
    "torch": ("torch-zip", "torch-legacy"),
    "mat": ("mat", "mat-v73"),
    "keras": ("keras-h5", "keras-zip"),
}


def _load_family(family, model, path, source, strict, flip_first_conv_channels, trusted):
    from weights_io.errors import WeightFileError
    from weights_io.readers import detect_format

    fmt = detect_format(path)
    if fmt not in _FAMILIES[family]:
        raise WeightFileError(
            f"Expected a {family} file ({' or '.join(_FAMILIES[family])}), but its bytes say {fmt!r}; "
            "use load_weights() to read any format.",
            path=os.fspath(path),
        )
    return load_weights(model, path, source, strict=strict, flip_first_conv_channels=flip_first_conv_channels,
                        format=fmt, trusted=trusted)


def load_torch_weights(model, path, source=None, *, strict=True, flip_first_conv_channels=False, trusted=False):
    """Loads a PyTorch state dict (`.pth`/`.pt`/`.th`, zip or legacy) without torch.

    Pickles are read with an allowlist: whole-model pickles (`torch.save(model)`)
    and any code in the file are refused with `UnsafePickleError`.
    `{"state_dict": ...}` / `{"model": ...}` wrappers and DataParallel's
    `module.` prefix are handled. torchvision weights expect RGB in 0..1
    normalised by mean (0.485, 0.456, 0.406) and std (0.229, 0.224, 0.225).

    Args:
        model: a built Keras model.
        path: the torch file.
        source: layout name (`"torchvision-resnet"`, ...) or None to detect.
        strict: see `load_weights`.
        flip_first_conv_channels: see `load_weights`.
        trusted: see `load_weights`.

    Returns:
        A `Report`.
    """
    return _load_family("torch", model, path, source, strict, flip_first_conv_channels, trusted)


def load_mat_weights(model, path, source=None, *, strict=True, flip_first_conv_channels=False, trusted=False):
    """Loads a MatConvNet `.mat` (SimpleNN or DagNN; MATLAB v5/v7 or v7.3).

    MatConvNet's ImageNet models take RGB in 0..255 minus the file's
    `normalization.averageImage` (VGG-VD: (123.68, 116.779, 103.939)); read it
    and the class names with `read_weights(path).metadata`.

    Args:
        model: a built Keras model.
        path: the `.mat` file.
        source: layout name (`"tensorflow-vgg"` for VGG-VD's conv1_1..fc8,
            `"keras"` when the file uses our names) or None to detect.
        strict: see `load_weights`.
        flip_first_conv_channels: see `load_weights`.
        trusted: see `load_weights`.

    Returns:
        A `Report`.
    """
    return _load_family("mat", model, path, source, strict, flip_first_conv_channels, trusted)


def load_keras_h5_weights(model, path, source=None, *, strict=True, flip_first_conv_channels=False, trusted=False):
    """Loads a Keras 1/2 `.h5`, full-model `.h5`, Keras 3 `.weights.h5` or `.keras` file.

    Layers are matched by name (keras.applications' files fit our models whose
    names follow keras.applications); a Keras 1/2 file with auto-generated
    names (keras.applications InceptionV3 / InceptionResNetV2) is matched by
    order, as keras does (layout "keras-order"). keras.applications' VGG/ResNet weights
    expect "caffe" preprocessing (BGR minus the ImageNet mean); DenseNet
    "torch", MobileNetV3 its own rescaling inside the model.

    Args:
        model: a built Keras model.
        path: the Keras file.
        source: layout name, default the identity `"keras"` layout when it fits.
        strict: see `load_weights`.
        flip_first_conv_channels: see `load_weights`.
        trusted: see `load_weights`.

    Returns:
        A `Report`.
    """
    return _load_family("keras", model, path, source, strict, flip_first_conv_channels, trusted)
