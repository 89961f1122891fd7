"""ImageNet input preprocessing and class names, per weight preset.

    from kerasnets.imagenet import preprocess_input, decode_predictions
    x = preprocess_input(images, preset="resnet50.keras")     # or mode="caffe"
    decode_predictions(model.predict(x), top=5)

Pretrained weights only work on images prepared the way they were trained:
caffe-trained files want BGR minus the BGR mean, torchvision RGB/255
normalised by mean/std, MatConvNet RGB minus the RGB mean. A preset names its
mode in ``kerasnets/data/presets.json``. The class names ship as
``kerasnets/data/imagenet_classes.txt`` (the 1000 ILSVRC-2012 classes in
synset-sorted index order, as torchvision's category list) and, for
`decode_predictions`, ``imagenet_synsets.txt`` (each class's WordNet id and
keras.applications' name for it, so its tuples are keras').

This module owns the class tables and imports `presets`; `presets` never
imports it.
"""

from __future__ import annotations

import functools
import os

import keras
import numpy as np

from kerasnets import presets
from kerasnets.preprocessing import MODES
from kerasnets.preprocessing import preprocess_input as _preprocess_mode

# The modes are kerasnets.preprocessing.MODES, plus the one-channel luma modes of the FSRCNN presets:
# "y", ITU-R BT.601 studio-range luma (16..235) as FSRCNN-pytorch's convert_rgb_to_y, and "y_full", the
# full-range luma (0..255) of OpenCV's COLOR_BGR2YCrCb that FSRCNN_Tensorflow trained on; both / 255.
_Y_WEIGHTS = np.array([64.738, 129.057, 25.064], "float32") / 256.0
_Y_FULL_WEIGHTS = np.array([0.299, 0.587, 0.114], "float32")
_LUMA = {"y": (_Y_WEIGHTS, 16.0), "y_full": (_Y_FULL_WEIGHTS, 0.0)}


def _mode_of(preset, mode):
    if (preset is None) == (mode is None):
        raise ValueError(f"Pass exactly one of `preset` and `mode`. Received: preset={preset!r}, mode={mode!r}")
    if preset is not None:
        preset = presets.get_preset(preset) if isinstance(preset, str) else preset
        mode = preset.preprocessing["mode"]
    if mode not in _LUMA and mode not in MODES:
        raise ValueError(f"`mode` must be one of {tuple(MODES) + tuple(_LUMA)}. Received: mode={mode!r}")
    return mode


def preprocess_input(x, preset=None, mode=None):
    """Prepares RGB images in 0..255 for a preset's weights.

    Args:
        x: array or tensor (..., H, W, 3), RGB, channels last, values 0..255.
        preset: a preset name (its ``preprocessing.mode`` is used), or None.
        mode: ``"caffe"``, ``"matconvnet"``, ``"torch"``, ``"tf"``, ``"none"``,
            ``"raw"``, ``"y"`` or ``"y_full"``, when no preset is given.

    Returns:
        float32 numpy array for numpy input, else a tensor; (..., H, W, 1) for "y" and "y_full".
    """
    mode = _mode_of(preset, mode)
    is_numpy = isinstance(x, (np.ndarray, list, tuple)) or np.isscalar(x)
    ops = np if is_numpy else keras.ops
    x = np.asarray(x, "float32") if is_numpy else keras.ops.cast(x, "float32")
    if mode in _LUMA:
        weights, offset = _LUMA[mode]
        y = (offset + ops.sum(x * weights, axis=-1, keepdims=True)) / 255.0
        return y.astype("float32") if is_numpy else y
    out = _preprocess_mode(x, mode)
    return np.asarray(out, "float32") if is_numpy else out


_RESAMPLING = {"nearest": 0, "bilinear": 2, "bicubic": 3}  # PIL's Image.NEAREST / BILINEAR / BICUBIC


def load_image(path, preset):
    """An image file as the preset's evaluation recipe prepares it: float32 (1, crop, crop, 3) RGB 0..255.

    The shorter side goes to the preset's `resize` (default: `crop`) with its
    `interpolation` (default bilinear, antialiased as PIL does), then the centre
    `crop`; `preprocess_input(x, preset=...)` does the rest.
    """
    from PIL import Image  # Keras' own image loading needs it too

    recipe = presets.get_preset(preset).preprocessing
    size = recipe.get("crop") or 224
    resize = recipe.get("resize") or size
    resample = _RESAMPLING[recipe.get("interpolation") or "bilinear"]
    with Image.open(path) as image:
        image = image.convert("RGB")
        scale = resize / min(image.size)
        image = image.resize((max(size, round(image.width * scale)), max(size, round(image.height * scale))),
                             resample)
        left, top = (image.width - size) // 2, (image.height - size) // 2
        return np.asarray(image.crop((left, top, left + size, top + size)), "float32")[None]


@functools.lru_cache(maxsize=None)
def class_names(name="imagenet"):
    """The class names of a class list shipped in ``kerasnets/data`` (``<name>_classes.txt``)."""
    path = os.path.join(presets.DATA_DIR, f"{name}_classes.txt")
    if not os.path.isfile(path):
        raise ValueError(f"No class list {name!r} ships with kerasnets. Received: name={name!r}")
    with open(path, encoding="utf8") as f:
        return tuple(line.rstrip("\n") for line in f if line.strip())


@functools.lru_cache(maxsize=None)
def imagenet_synsets():
    """The 1000 ILSVRC-2012 classes as keras.applications decodes them: ``((wnid, name), ...)`` by index."""
    with open(os.path.join(presets.DATA_DIR, "imagenet_synsets.txt"), encoding="utf8") as f:
        return tuple(tuple(line.split()) for line in f if line.strip())


def _class_table(classes, width):
    """(ids, names) for `width` output columns; ImageNet's ids are WordNet ids (as keras), a list's its indices."""
    if isinstance(classes, str) and classes == "imagenet":
        ids, names = zip(*imagenet_synsets())
        if width == len(ids) + 1:  # TF-slim's 1001 outputs: column 0 is "background"
            return ("background",) + ids, ("background",) + names
        return ids, names
    names = class_names(classes) if isinstance(classes, str) else tuple(classes)
    return tuple(range(len(names))), names


def decode_predictions(preds, top=5, classes="imagenet"):
    """The `top` classes of each row of `preds`, best first, as keras.applications' `decode_predictions`.

    Args:
        preds: (batch, n_classes) scores or probabilities (numpy or tensor);
            for ImageNet 1000 columns, or 1001 with TF-slim's background first.
        top: how many classes per row.
        classes: "imagenet", another shipped class list's name, or a sequence of names.

    Returns:
        One list per row of ``(class_id, name, score)`` tuples: for ImageNet
        the WordNet id and keras' name (``('n01443537', 'goldfish', 0.9)``),
        for other lists the class index and its name.
    """
    preds = np.asarray(keras.ops.convert_to_numpy(preds))
    ids, names = _class_table(classes, preds.shape[-1] if preds.ndim == 2 else None)
    if preds.ndim != 2 or preds.shape[1] != len(names):
        expected = "1000 or 1001" if classes == "imagenet" else len(names)
        raise ValueError(
            f"`decode_predictions` expects a batch of shape (samples, {expected}). Received: preds.shape={preds.shape}"
        )
    if not isinstance(top, int) or top < 1:
        raise ValueError(f"`top` must be a positive integer. Received: top={top!r}")
    order = np.argsort(-preds, axis=1, kind="stable")[:, :top]
    return [[(ids[i], names[i], float(row[i])) for i in idx] for row, idx in zip(preds, order)]


def preset_preprocessing(name):
    """A callable ``f(images) -> model input`` doing the preset's preprocessing.

    `images` are RGB, 0..255, channels last (numpy or tensors). Resizing and
    cropping are not applied: see ``get_preset(name).preprocessing``.
    """
    return functools.partial(preprocess_input, preset=presets.get_preset(name).name)
