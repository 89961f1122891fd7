"""`.npy` dicts (tensorflow-vgg, caffe-tensorflow) and `.npz` archives (Frossard).

A `.npy` that holds a dict is a pickle behind a numpy header; it is read with
the restricted unpickler (Python-2 pickles decode as latin1), never with
numpy's pickle-enabled np.load.

Layer values are normalized to the `tf` convention's parameter names:
tensorflow-vgg ``[W, b]`` and ``{0: W, 1: b}`` become ``{"weights", "biases"}``;
caffe-tensorflow dicts (``weights, biases, mean, variance, scale, offset,
alpha``) are kept; Frossard's ``conv1_1_W`` / ``conv1_1_b`` keys likewise.
"""

from __future__ import annotations

import zipfile

import numpy as np

from weights_io.core import WeightFile
from weights_io.errors import WeightFileError
from weights_io.readers import map_file, register_reader
from weights_io.safe_pickle import safe_load

_POSITIONAL = ("weights", "biases")
_NPZ_SUFFIXES = {"W": "weights", "b": "biases"}


def _read_header(f, path):
    try:
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            return np.lib.format.read_array_header_1_0(f)
        return np.lib.format.read_array_header_2_0(f)
    except Exception as err:  # noqa: BLE001 - numpy's header parser raises tokenize errors too
        raise WeightFileError(f"Malformed .npy header ({type(err).__name__}: {err})", path=path) from err


def _as_array(value, path, key):
    if isinstance(value, np.ndarray) and value.dtype != object:
        return value
    if isinstance(value, (int, float, np.number)):
        return np.asarray(value)
    raise WeightFileError(f"Expected a numeric array, found {type(value).__name__}", path=path, key=key)


def _normalize_layer(name, value, path):
    if isinstance(value, (list, tuple)):
        if len(value) > len(_POSITIONAL):
            raise WeightFileError(f"Expected [W] or [W, b], found {len(value)} items", path=path, key=name)
        return {_POSITIONAL[i]: _as_array(v, path, f"{name}[{i}]") for i, v in enumerate(value)}
    if isinstance(value, dict):
        params = {}
        for param, array in value.items():
            if isinstance(param, (int, np.integer)) and 0 <= int(param) < len(_POSITIONAL):
                param = _POSITIONAL[int(param)]
            elif isinstance(param, bytes):
                param = param.decode("latin1")
            if not isinstance(param, str):
                raise WeightFileError(f"Unexpected parameter key {param!r}", path=path, key=name)
            params[param] = _as_array(array, path, f"{name}.{param}")
        return params
    if isinstance(value, np.ndarray):
        return {"weights": _as_array(value, path, name)}
    raise WeightFileError(f"Unexpected value of type {type(value).__name__}", path=path, key=name)


@register_reader("npy")
def read_npy(path, mmap=False):
    """Reads a `.npy` file holding a dict of layers; see the module docstring.

    With `mmap=True` the large arrays are read-only views of the file (no
    copy until they are assigned).
    """
    with open(path, "rb") as f:
        shape, _, dtype = _read_header(f, path)
        if not dtype.hasobject:
            raise WeightFileError(
                f"This .npy holds one {dtype} array of shape {shape}, not a dict of layers", path=path
            )
        mapping = map_file(f) if mmap else None
        obj = safe_load(f, path=path, mapping=mapping)
    if isinstance(obj, np.ndarray) and obj.dtype == object and obj.shape == ():
        obj = obj.item()
    if not isinstance(obj, dict):
        raise WeightFileError(f"Expected a dict of layers, found {type(obj).__name__}", path=path)
    tensors = {}
    for name, value in obj.items():
        if isinstance(name, bytes):
            name = name.decode("latin1")
        tensors[str(name)] = _normalize_layer(str(name), value, path)
    return WeightFile(tensors=tensors, convention="tf", format="npy", path=path)


@register_reader("npz")
def read_npz(path, mmap=False):
    """Reads an `.npz` of `<layer>_W` / `<layer>_b` (or `<layer>.<param>`) arrays."""
    tensors: dict[str, dict[str, np.ndarray]] = {}
    try:
        with np.load(path, allow_pickle=False) as archive:
            for key in archive.files:
                if "." in key:
                    layer, _, param = key.rpartition(".")
                else:
                    layer, _, suffix = key.rpartition("_")
                    param = _NPZ_SUFFIXES.get(suffix)
                    if not layer or param is None:
                        raise WeightFileError("Keys must look like 'conv1_1_W' / 'conv1_1_b'", path=path, key=key)
                tensors.setdefault(layer, {})[param] = archive[key]
    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as err:
        raise WeightFileError(f"Malformed .npz ({err})", path=path) from err
    return WeightFile(tensors=tensors, convention="tf", format="npz", path=path)
