"""MatConvNet `.mat` files: SimpleNN and DagNN, MATLAB v5/v7 and v7.3 (HDF5).

Both container formats are first turned into one plain tree (scalar struct ->
dict, struct array or cell -> list in MATLAB's column-major order, char ->
str, numeric -> ndarray in MATLAB's axis order), so the MatConvNet logic below
is written once:

* v5/v7: our own walker (`mat_v5`), over a map of the file; shapes stay as
  saved, struct fields are read by name, never by position.
* v7.3: HDF5 read with h5py: structs are groups, cells and struct-array fields
  are object references (into ``#refs#``), chars are uint16, and every array's
  axes are stored reversed.

Networks:

* SimpleNN: ``layers`` (a cell of structs with ``type``, ``name``, ``weights``
  = {W, b} or older ``filters``/``biases``; bnorm ``weights`` = {mult, bias,
  moments}), with old top-level ``classes``/``normalization`` or newer
  ``meta``; training scripts wrap it as ``net``.
* DagNN: ``layers`` (struct array with ``params`` = parameter names),
  ``params`` (``name``, ``value``); each layer's parameters are found by name.
* Anything else (e.g. a struct array ``weights(i).weights = {W, b}``): each
  element of each top-level struct array becomes layer ``<var>_<i>`` (1-based),
  cell entries named weights, biases, ... by position.

Kernels stay HWIO as MatConvNet stores them (no spatial transpose); biases are
raveled; dropped trailing singleton dims are restored by the assign step;
``normalization`` and class names go to `WeightFile.metadata`.
"""

from __future__ import annotations

import os

import numpy as np

from weights_io.core import WeightFile
from weights_io.errors import WeightFileError
from weights_io.readers import map_file, register_reader
from weights_io.readers.mat_v5 import Unsupported, read_v5_tree

# Parameter names by position, per layer type (SimpleNN type or DagNN class).
_PARAM_ROLES = {
    "bnorm": ("mult", "bias", "moments"),
    "dagnn.BatchNorm": ("mult", "bias", "moments"),
}
_DEFAULT_ROLES = ("weights", "biases")
_RAVEL = ("biases", "mult", "bias")


# ------------------------------------------------------------ v5/v7 -> tree
def _load_v5(path, mmap):
    """The file's variables; with `mmap`, uncompressed arrays are views of the mapped file."""
    with open(path, "rb") as f:
        buffer = map_file(f) if mmap else None
        if buffer is None:
            buffer = bytearray(os.fstat(f.fileno()).st_size)
            f.readinto(buffer)
    return read_v5_tree(buffer, path)


# ---------------------------------------------------------- v7.3 -> tree
def _attr(node, name):
    value = node.attrs.get(name)
    return value.decode() if isinstance(value, bytes) else (None if value is None else str(value))


def _from_h5(node, file, depth=0):
    import h5py  # here, not at the top: the reader process starts without it (see sandbox_worker)

    if depth > 64:
        raise WeightFileError("MATLAB data nested too deep", path=file.filename, key=node.name)
    cls = _attr(node, "MATLAB_class")
    if isinstance(node, h5py.Group):
        fields = [k for k in node if not k.startswith("#")]
        ref_fields = [k for k in fields if isinstance(node[k], h5py.Dataset)
                      and node[k].dtype == h5py.ref_dtype and _attr(node[k], "MATLAB_class") is None]
        if fields and len(ref_fields) == len(fields):  # struct array: each field holds one ref per element
            columns = {k: [_deref(r, file, depth) for r in node[k][()].ravel()] for k in fields}
            count = len(next(iter(columns.values())))
            items = [{k: columns[k][i] for k in fields} for i in range(count)]
            return items[0] if count == 1 else items
        return {k: _from_h5(node[k], file, depth + 1) for k in fields}
    if node.attrs.get("MATLAB_empty"):
        return "" if cls == "char" else np.zeros((0,))
    data = node[()]
    if node.dtype == h5py.ref_dtype:  # cell
        return [_deref(r, file, depth) for r in np.asarray(data).ravel()]
    if cls == "char":
        return "".join(chr(c) for c in np.asarray(data).ravel())
    if not isinstance(data, np.ndarray) or data.dtype.kind not in "fiub":
        raise WeightFileError(f"Unsupported MATLAB data (class {cls}, dtype {node.dtype})", path=file.filename,
                              key=node.name)
    data = data.T  # HDF5 holds MATLAB's column-major array with its axes reversed
    return data.astype(bool) if cls == "logical" else data


def _deref(ref, file, depth):
    if not ref:
        raise WeightFileError("Null object reference", path=file.filename)
    return _from_h5(file[ref], file, depth + 1)


def _load_v73(path):
    import h5py

    try:
        with h5py.File(path, "r") as file:
            return {k: _from_h5(file[k], file) for k in file if not k.startswith("#")}
    except WeightFileError:
        raise
    except (OSError, KeyError, ValueError, TypeError, RuntimeError) as err:
        raise WeightFileError(f"Unreadable MATLAB v7.3 file ({type(err).__name__}: {err})", path=path) from err


# ------------------------------------------------------- tree -> WeightFile
def _as_list(value):
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _numeric(value, path, key):
    if not isinstance(value, np.ndarray) or value.dtype.kind not in "fiub":
        found = repr(value) if isinstance(value, Unsupported) else type(value).__name__
        raise WeightFileError(f"Expected a numeric array, found {found}", path=path, key=key)
    return value


def _named_params(values, roles, path, layer):
    values = [v for v in _as_list(values) if not (isinstance(v, np.ndarray) and v.size == 0)]
    if len(values) > len(roles) and roles is _DEFAULT_ROLES:
        roles = tuple(f"param{i}" for i in range(len(values)))
    params = {}
    for role, value in zip(roles, values):
        array = _numeric(value, path, f"{layer}.{role}")
        params[role] = array.ravel() if role in _RAVEL else array
    return params


def _simplenn(net, path):
    tensors, architecture = {}, []
    for i, layer in enumerate(_as_list(net["layers"])):
        if not isinstance(layer, dict):
            raise WeightFileError(f"Layer {i + 1} is a {type(layer).__name__}, not a struct", path=path)
        kind = layer.get("type") if isinstance(layer.get("type"), str) else "?"
        name = layer.get("name") if isinstance(layer.get("name"), str) and layer.get("name") else f"layer{i + 1}"
        architecture.append((name, kind))
        if "weights" in layer:
            values = layer["weights"]
        else:  # beta-era files: filters / biases fields
            values = [layer[k] for k in ("filters", "biases") if k in layer]
        params = _named_params(values, _PARAM_ROLES.get(kind, _DEFAULT_ROLES), path, name)
        if params:
            if name in tensors:
                raise WeightFileError("Two layers share this name", path=path, key=name)
            tensors[name] = params
    return tensors, architecture


def _dagnn(net, path):
    values = {}
    for param in _as_list(net["params"]):
        if not isinstance(param, dict) or not isinstance(param.get("name"), str) or "value" not in param:
            raise WeightFileError("DagNN params must be structs with name and value", path=path)
        values[param["name"]] = param["value"]
    tensors, architecture = {}, []
    for i, layer in enumerate(_as_list(net["layers"])):
        name = layer.get("name") if isinstance(layer.get("name"), str) else f"layer{i + 1}"
        kind = layer.get("type") if isinstance(layer.get("type"), str) else "?"
        architecture.append((name, kind))
        names = [n for n in _as_list(layer.get("params")) if isinstance(n, str) and n]
        missing = [n for n in names if n not in values]
        if missing:
            raise WeightFileError(f"Layer parameters {missing} are not in net.params", path=path, key=name)
        params = _named_params([values[n] for n in names], _PARAM_ROLES.get(kind, _DEFAULT_ROLES), path, name)
        if params:
            tensors[name] = params
    return tensors, architecture


def _generic(tree, path):
    """Top-level struct arrays of {W, b} cells or arrays, e.g. weights(i).weights{1,2}."""
    tensors = {}
    for var, value in tree.items():
        for i, element in enumerate(_as_list(value), start=1):
            if not isinstance(element, dict):
                continue
            params = {}
            for field, content in element.items():
                if isinstance(content, list):
                    params.update(_named_params(content, _DEFAULT_ROLES, path, f"{var}_{i}.{field}"))
                elif isinstance(content, np.ndarray) and content.dtype.kind in "fiub" and content.size:
                    params[field] = content
            if params:
                tensors[f"{var}_{i}"] = params
    return tensors


def _metadata(tree, net):
    meta = net.get("meta") if isinstance(net.get("meta"), dict) else {}
    out = {}
    normalization = meta.get("normalization", tree.get("normalization", net.get("normalization")))
    if isinstance(normalization, dict):
        out["normalization"] = normalization
    classes = meta.get("classes", tree.get("classes", net.get("classes")))
    if isinstance(classes, dict):
        names = classes.get("description", classes.get("name"))
        out["classes"] = [str(c) for c in _as_list(names)]
    return out


def _to_weight_file(tree, path, fmt):
    net = tree.get("net") if isinstance(tree.get("net"), dict) else tree
    if "layers" in net and isinstance(net.get("params"), (list, dict)):
        tensors, architecture = _dagnn(net, path)
        kind = "dagnn"
    elif "layers" in net:
        tensors, architecture = _simplenn(net, path)
        kind = "simplenn"
    else:
        tensors, architecture, kind = _generic(tree, path), [], "struct"
    if not tensors:
        raise WeightFileError("No weights found (neither SimpleNN, DagNN nor arrays in structs)", path=path)
    metadata = {"network": kind, "architecture": architecture, **_metadata(tree, net)}
    return WeightFile(tensors=tensors, convention="matconvnet", format=fmt, path=path, metadata=metadata)


@register_reader("mat")
def read_mat(path, mmap=False):
    """Reads a MATLAB v5/v7 MatConvNet file (see the module docstring).

    With `mmap`, uncompressed arrays are read-only views of the file (no
    copy); MATLAB v7's compressed variables are inflated either way.
    """
    return _to_weight_file(_load_v5(path, mmap), path, "mat")


@register_reader("mat-v73")
def read_mat_v73(path, mmap=False):
    """Reads a MATLAB v7.3 (HDF5) MatConvNet file (see the module docstring).

    `mmap` is accepted and ignored: h5py reads each array.
    """
    return _to_weight_file(_load_v73(path), path, "mat-v73")
