"""`convert`: build a kerasnets model, load a foreign weight file, save it as Keras.

Lives in kerasnets (not weights_io) because the dependency runs one way:
kerasnets uses weights_io, never the reverse.
"""

from __future__ import annotations

import os
import sys

import weights_io
from kerasnets.registry import build

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


def convert(arch, src, dst, source=None, strict=True, to_layout=None, progress="auto", **builder_options):
    """Converts weight file `src` for model `arch` into `dst`.

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
    model = build(arch, **builder_options)
    if progress == "auto":
        progress = sys.stderr.isatty() and os.path.getsize(src) > 50 * 2**20
    report = weights_io.load_weights(model, src, source, strict=strict, progress=progress_line() if progress else None)
    if dst.endswith(".weights.h5"):
        model.save_weights(dst)
    elif dst.endswith((".keras", ".h5")):
        model.save(dst)
    elif dst.endswith(".npy"):
        weights_io.save_npy_weights(model, dst, layout=to_layout)
    else:
        weights_io.save_torch_state_dict(model, dst, layout=to_layout)
    return report
