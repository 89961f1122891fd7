"""Readers: weight file -> `WeightFile`. They know file formats, nothing of Keras.

`READERS` maps a format name to its reader; `detect_format` picks one from
the file's first bytes (never from the extension alone, so a renamed file is
still read right and a wrong one is refused).
"""

from __future__ import annotations

import importlib
import os
import zipfile
from mmap import ACCESS_READ
from mmap import mmap as memory_map

from weights_io.errors import WeightFileError

READERS = {}


def register_reader(fmt):
    def decorate(fn):
        READERS[fmt] = fn
        return fn

    return decorate


def detect_format(path):
    """Names the format of the file at `path` from its magic bytes.

    A TensorFlow checkpoint may also be named by its prefix (no such file, only
    `prefix.index`) or a folder whose `checkpoint` file names the latest one.
    """
    path = os.fspath(path)
    from weights_io.readers.tf_checkpoint import resolve as resolve_checkpoint

    checkpoint = resolve_checkpoint(path)
    if checkpoint is not None and checkpoint[0] is not None:
        return checkpoint[0]
    if checkpoint is not None and not os.path.isfile(path):
        raise WeightFileError(f"A damaged TensorFlow checkpoint (its table at {checkpoint[1]} is unreadable)",
                              path=path)
    if not os.path.isfile(path):
        raise WeightFileError("No such weight file", path=path)
    with open(path, "rb") as f:
        head = f.read(128)
    if not head:
        raise WeightFileError("The weight file is empty (0 bytes)", path=path)
    from weights_io.readers.safetensors import header_length

    if header_length(head) is not None:  # a plausible length, then '{'
        return "safetensors"
    if head.startswith(b"\x93NUMPY"):
        return "npy"
    if head.startswith(b"MATLAB 7.3"):
        return "mat-v73"
    if head.startswith(b"MATLAB 5.0") or head[:4] in (b"MATL",):
        return "mat"
    if head.startswith(b"\x89HDF\r\n\x1a\n"):
        return "keras-h5"
    if head.startswith(b"PK"):
        try:
            with zipfile.ZipFile(path) as archive:
                names = archive.namelist()
        # zipfile raises NotImplementedError for a forged "version needed to extract", too
        except (zipfile.BadZipFile, OSError, NotImplementedError, ValueError, EOFError) as err:
            raise WeightFileError(f"Corrupt zip archive ({type(err).__name__}: {err})", path=path) from err
        if any(name.endswith("data.pkl") for name in names):
            return "torch-zip"
        if names and all(name.endswith(".npy") for name in names):
            return "npz"
        if "model.weights.h5" in names or "config.json" in names:
            return "keras-zip"
        raise WeightFileError(f"A zip archive that is neither .npz nor a torch file (entries: {names[:5]})", path=path)
    if head[:2] == b"\x80\x02" or head[:1] == b"\x80":
        return "torch-legacy"
    from weights_io.readers.caffe import is_caffemodel
    from weights_io.readers.tf_graphdef import is_graphdef

    if is_caffemodel(path):  # a protobuf has no magic: its first fields and first layer must parse as Caffe's
        return "caffemodel"
    if is_graphdef(path):  # ... nor GraphDef's: its first nodes must have names and op names
        return "tf-graphdef"
    raise WeightFileError(f"Unrecognised weight file format (first bytes {head[:8]!r})", path=path)


def map_file(f):
    """A read-only memory map of the open file `f`, or None where it cannot be mapped (empty, a pipe)."""
    try:
        return memory_map(f.fileno(), 0, access=ACCESS_READ)
    except (OSError, ValueError):
        return None


def opens_as(path, sniff):
    """True when the file at `path` can be mapped and `sniff(mapping)` accepts its first bytes (protobuf
    formats have no magic: Caffe's NetParameter, TensorFlow's GraphDef)."""
    try:
        with open(path, "rb") as f:
            mapping = map_file(f)
    except OSError:
        return False
    return mapping is not None and sniff(mapping)


def read_weights(path, format=None, *, mmap=False, trusted=False):
    """Reads any supported weight file into a `WeightFile` (see `detect_format`).

    The file is parsed in a separate reader process with CPU, memory and
    wall-clock limits (`weights_io.sandbox`): a damaged or crafted file that
    makes a parser loop, crash or allocate without end gives a
    `WeightFileError` here instead.

    Args:
        path: the weight file.
        format: a reader name (see `READERS`), or None to detect it.
        mmap: return read-only views of the file instead of copies where the
            format stores arrays verbatim (`.npy` pickles, torch storages,
            contiguous HDF5 datasets); the loaders use this to copy each
            array once, straight into its variable. The views need the file
            unchanged while they live.
        trusted: parse in this process, without the limits (your own files;
            saves one exchange with the reader process).

    Returns:
        A `WeightFile`.
    """
    fmt = format or detect_format(path)
    if fmt in ("tf-checkpoint", "tf-checkpoint-v1"):
        from weights_io.readers.tf_checkpoint import resolve as resolve_checkpoint

        # a prefix or folder names no file: the sandbox sizes and maps the data shard (V2) or the file (V1)
        path = (resolve_checkpoint(path) or (None, path))[1]
    if fmt not in READERS:
        raise WeightFileError(
            f"No reader for format {fmt!r}; supported: {sorted(READERS)}", path=os.fspath(path)
        )
    if not trusted:
        from weights_io.sandbox import read_in_sandbox

        return read_in_sandbox(os.fspath(path), fmt, mmap=mmap)
    try:
        return READERS[fmt](os.fspath(path), mmap=mmap)
    except WeightFileError:
        raise
    except Exception as err:  # noqa: BLE001 - one exception type for every malformed file
        # A reader's own checks give the precise message; this net keeps a bug or a
        # library's surprise (zipfile, h5py, scipy) from escaping as a raw exception.
        raise WeightFileError(
            f"Could not read this {fmt} file ({type(err).__name__}: {err})", path=os.fspath(path)
        ) from err


# Format modules register their readers on import; add yours to this tuple.
_FORMAT_MODULES = ("npy", "torch", "keras_h5", "mat", "safetensors", "tf_checkpoint", "tf_graphdef", "caffe")
for _module in _FORMAT_MODULES:
    importlib.import_module(f"weights_io.readers.{_module}")
