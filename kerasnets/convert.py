"""`convert`: build a kerasnets model, load a foreign weight file, save it as Keras.

Lives in kerasnets (not weights_io) because the dependency runs one way:
kerasnets uses weights_io, never the reverse.
"""

from __future__ import annotations

import os
import sys

import numpy as np

import weights_io
from kerasnets.registry import build_to_fill
from weights_io.assign import weighted_layers
from weights_io.core import build_record
from weights_io.layouts import choose_layout, get_layout

_TORCH_SUFFIXES = (".pth", ".pt", ".th")


def progress_line(stream=None, label="loading weights"):
    """A `(done, total)` bytes callback drawing one self-overwriting progress line on `stream`."""
    stream = stream or sys.stderr

    def report(done, total):
        percent = 100 * done / total if total else 100
        stream.write(f"\r{label}: {done / 2**20:8.1f} / {total / 2**20:.1f} MB ({percent:3.0f}%)")
        if done >= total:
            stream.write("\n")
        stream.flush()

    return report


def _file_classes(model, weight_file, layout):
    """The classifier width the file holds for `model`'s last weighted layer, or None."""
    layers = weighted_layers(model)
    if not layers:
        return None
    head = layers[-1].name
    source = layout.mapping([layer.name for layer in layers], weight_file).get(head)
    bias = next((np.shape(a) for p, a in weight_file.tensors.get(source, {}).items()
                 if p in ("bias", "biases", "1")), None)
    return int(bias[0]) if bias and len(bias) == 1 else None


def build_for_weights(name, path, *, source=None, strict=True, progress=None, weight_file=None, keep_background=False,
                      **options):
    """Builds registered model `name` as the file's publisher built it, and loads the file (all or nothing).

    The options the file's layout implies (BN epsilon, padding style, stride
    placement, ...; `weights_io.Layout.options`) and, with a classifier, the
    file's class count are applied unless `options` name them; an option
    given here that contradicts the file fails loudly (with strict=True).

    Args:
        name: registry name (`"resnet50"`, `"densenet121"`; see `kerasnets list`).
        path: any file `weights_io.read_weights` reads.
        source: the layout name, or None to detect it from the file's names.
        strict: see `weights_io.load_weights`.
        progress: None or a `(done, total)` bytes callback.
        weight_file: the file already read (`weights_io.read_weights(path, mmap=True)`).
        keep_background: keep class 0 of a TF-slim 1001-class classifier
            (default: a 1000-class model, as keras.applications' ports).
        **options: builder arguments (`input_shape`, `include_top`, ...).

    Returns:
        `(model, report)`: the loaded `keras.Model` and the `weights_io.Report`.
    """
    weight_file = weight_file or weights_io.read_weights(path, mmap=True)

    def layout_for(model):
        return get_layout(source) if source else choose_layout([l.name for l in weighted_layers(model)], weight_file)

    model = build_to_fill(name, **options)  # no initialiser draws: the file gives the values
    layout = layout_for(model)
    record = build_record(model)
    changes = {key: theirs for key, _, theirs in layout.option_differences(record, weight_file)
               if key not in options}
    if record is not None and record.options.get("include_top") and "classes" not in options:
        classes = _file_classes(model, weight_file, layout)
        if classes is not None and classes == layout.background_classes and not keep_background:
            classes -= 1
        if classes is not None and classes != record.options.get("classes"):
            changes["classes"] = classes
    if changes:
        model = build_to_fill(name, **options, **changes)
        layout = layout_for(model)
    report = weights_io.assign_weights(model, weight_file, layout, strict=strict, release=True, progress=progress,
                                       keep_background=keep_background)
    return model, report


def convert(arch, src, dst, source=None, strict=True, to_layout=None, progress="auto", **builder_options):
    """Converts weight file `src` for model `arch` into `dst`, built as `build_for_weights` builds it.

    Args:
        arch: registered model name (`"vgg16"`, `"resnet50"`; see `kerasnets list`).
        src: any file `weights_io.load_weights` reads (.npy/.npz/.mat/.pth/.h5/.keras).
        dst: `.weights.h5` (weights only), `.keras` (whole model), `.h5` (whole
            model, legacy HDF5), or, with `to_layout`, `.pth` / `.npy` in
            another project's names.
        source: layout of `src` (None: detect from its layer names).
        strict: refuse (model untouched, nothing written) when `src` does not fit.
        to_layout: layout for `.pth` / `.npy` output (`"torchvision-resnet"`,
            `"tensorflow-vgg"`, ...).
        progress: True draws a progress line on stderr while loading, False
            none, "auto" when stderr is a terminal and `src` is over 50 MB.
        **builder_options: passed to the builder (`classes=10`,
            `include_top=False`, ...).

    Returns:
        The `weights_io.Report` of the load.
    """
    dst = os.fspath(dst)
    suffixes = (".weights.h5", ".keras", ".h5", ".npy") + _TORCH_SUFFIXES
    if not dst.endswith(suffixes):
        raise ValueError(f"dst must end with one of {suffixes}. Received: dst={dst!r}")
    if dst.endswith((".npy",) + _TORCH_SUFFIXES) and to_layout is None:
        raise ValueError(f"Writing {dst!r} needs to_layout= (e.g. 'torchvision-resnet' or 'tensorflow-vgg').")
    if progress == "auto":
        progress = sys.stderr.isatty() and os.path.getsize(src) > 50 * 2**20
    model, report = build_for_weights(arch, src, source=source, strict=strict,
                                      progress=progress_line() if progress else None, **builder_options)
    if dst.endswith(".weights.h5"):
        model.save_weights(dst)
    elif dst.endswith((".keras", ".h5")):
        model.save(dst)
    elif dst.endswith(".npy"):
        weights_io.save_npy_weights(model, dst, layout=to_layout)
    else:
        weights_io.save_torch_state_dict(model, dst, layout=to_layout)
    return report
