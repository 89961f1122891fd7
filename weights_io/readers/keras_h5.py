"""Keras HDF5 weight files: Keras 1/2 `.h5`, full-model `.h5`, Keras 3 `.weights.h5` / `.keras`.

* Keras 1/2 weight files (keras.applications downloads, ``save_weights``):
  root attr ``layer_names``; each layer group has attr ``weight_names``
  (``"block1_conv1/kernel:0"``) naming datasets inside the group. A nested
  model's group lists its inner layers' weights (``"conv1/kernel:0"``): those
  become layers of their own. Keras 1 suffixes (``conv1_W``, ``bn_gamma``) map
  to Keras 2 names.
* Full-model `.h5` (``model.save("m.h5")``): the same under ``model_weights/``.
* Keras 3 ``.weights.h5``: ``layers/<path>/vars/<i>`` with the layer's name in
  the ``vars`` group's ``name`` attr; parameters are named by their index
  (``"0"``, ``"1"``), which the assign step resolves in variable order.
  A ``.keras`` archive holds one as ``model.weights.h5``.

Everything is `convention="keras"`: HWIO kernels, (in, out) dense kernels.
"""

from __future__ import annotations

import io
import re
import zipfile

import numpy as np

from weights_io.core import WeightFile
from weights_io.errors import WeightFileError
from weights_io.readers import map_file, register_reader

# Keras 1 weight-name suffixes -> Keras 2 variable names.
_KERAS1 = {"W": "kernel", "b": "bias", "running_mean": "moving_mean", "running_std": "moving_variance"}
_KERAS1_NAME = re.compile(r"(?:.*_)?(W|b|gamma|beta|running_mean|running_std)(?:_\d+)?")


def _text(value):
    return value.decode("utf8") if isinstance(value, bytes) else str(value)


def _param_name(weight_name):
    base = weight_name.split("/")[-1].split(":")[0]
    if "/" not in weight_name:
        match = _KERAS1_NAME.fullmatch(base)
        if match:
            return _KERAS1.get(match.group(1), match.group(1))
    return base


def _read_array(dataset, path, key, mapping=None):
    import h5py  # here: the reader process starts without it (weights_io.readers.sandbox_worker)
    if not isinstance(dataset, h5py.Dataset):
        raise WeightFileError("Expected a dataset", path=path, key=key)
    if dataset.dtype.kind not in "fiub":
        raise WeightFileError(f"Non-numeric dataset of dtype {dataset.dtype}", path=path, key=key)
    if mapping is not None and dataset.chunks is None and dataset.size:
        # A contiguous, unfiltered dataset is its bytes at one offset: map them instead of reading.
        offset = dataset.id.get_offset()
        nbytes = dataset.size * dataset.dtype.itemsize
        if offset is not None and offset + nbytes <= len(mapping):
            return np.frombuffer(mapping, dtype=dataset.dtype, count=dataset.size, offset=offset).reshape(dataset.shape)
    return np.asarray(dataset[()])


def _read_keras2(group, path, mapping=None):
    """`layer_names` / `weight_names` layout (Keras 1/2 and Keras 3's legacy .h5)."""
    tensors = {}
    for layer in (_text(n) for n in group.attrs["layer_names"]):
        if layer not in group:
            raise WeightFileError("Layer listed in layer_names has no group", path=path, key=layer)
        g = group[layer]
        names = [_text(n) for n in g.attrs.get("weight_names", [])]
        for index, weight_name in enumerate(names):
            if weight_name not in g:
                raise WeightFileError("Weight listed in weight_names is missing", path=path, key=f"{layer}/{weight_name}")
            # A layer's own weights are "<layer>/<param>" (layer names may hold slashes, as
            # tf.keras' "expanded_conv/depthwise"); a nested model lists "<inner layer>/<param>".
            inner = weight_name.rpartition("/")[0]
            owner = layer if not inner or weight_name.startswith(layer + "/") else inner
            params = tensors.setdefault(owner, {})
            param = _param_name(weight_name)
            if param in params:  # duplicate names (hand-rolled layers): fall back to order
                param = str(index)
            params[param] = _read_array(g[weight_name], path, f"{layer}/{weight_name}", mapping)
    return tensors


def _read_keras3(group, path, prefix="", mapping=None):
    """`layers/<path>/vars/<i>` (Keras 3 save_weights), recursing into nested layers."""
    import h5py
    tensors = {}
    for key in group:
        node = group[key]
        if not isinstance(node, h5py.Group):
            continue
        name = key
        variables = node.get("vars")
        if isinstance(variables, h5py.Group):
            name = _text(variables.attrs.get("name", key))
            arrays = {k: _read_array(variables[k], path, f"{prefix}{key}/vars/{k}", mapping) for k in variables}
            if arrays:
                if not all(k.isdigit() for k in arrays):
                    raise WeightFileError("Variables must be named 0, 1, ...", path=path, key=f"{prefix}{key}/vars")
                tensors[f"{prefix}{name}" if prefix else name] = dict(sorted(arrays.items(), key=lambda kv: int(kv[0])))
        if isinstance(node.get("layers"), h5py.Group):
            # nested functional models keep their layers' own names; sublayers of a plain layer get its prefix
            nested_model = isinstance(node.get("layers"), h5py.Group) and "vars" in node and not len(node["vars"])
            tensors.update(_read_keras3(node["layers"], path, "" if nested_model else f"{name}/", mapping))
    return tensors


def read_h5_object(file, path, mapping=None):
    """Reads an open `h5py.File` of any of the supported layouts.

    With `mapping` (an `mmap.mmap` of the same file) contiguous datasets
    come back as read-only views of it.
    """
    import h5py
    if "layer_names" in file.attrs:
        return _read_keras2(file, path, mapping), "keras-h5"
    if "model_weights" in file and "layer_names" in file["model_weights"].attrs:
        return _read_keras2(file["model_weights"], path, mapping), "keras-h5-model"
    if isinstance(file.get("layers"), h5py.Group):
        return _read_keras3(file["layers"], path, mapping=mapping), "keras-weights-h5"
    raise WeightFileError(
        "An HDF5 file that is not a Keras weight file (no layer_names, model_weights/ or layers/)", path=path
    )


def _read(opener, path, fmt_hint=None, mapping=None):
    try:
        with opener() as file:
            tensors, fmt = read_h5_object(file, path, mapping)
            metadata = _keras_version(file)
    except WeightFileError:
        raise
    except (OSError, KeyError, ValueError, TypeError, RuntimeError) as err:
        raise WeightFileError(f"Unreadable HDF5 weight file ({type(err).__name__}: {err})", path=path) from err
    if not tensors:
        raise WeightFileError("The file holds no weights", path=path)
    return WeightFile(tensors=tensors, convention="keras", format=fmt_hint or fmt, path=path, metadata=metadata)


def _keras_version(file):
    """`{"keras_version": "2.x.y"}` where the file says which Keras wrote it (Keras 1/2 and legacy .h5)."""
    import h5py
    for node in (file, file.get("model_weights")):
        if isinstance(node, h5py.Group) and "keras_version" in node.attrs:
            return {"keras_version": _text(node.attrs["keras_version"])}
    return {}


@register_reader("keras-h5")
def read_keras_h5(path, mmap=False):
    """Reads a Keras 1/2 `.h5`, full-model `.h5` or Keras 3 `.weights.h5` file.

    With `mmap=True` contiguous datasets (what Keras writes) are read-only
    views of the file.
    """
    import h5py
    mapping = None
    if mmap:
        with open(path, "rb") as f:
            mapping = map_file(f)
    return _read(lambda: h5py.File(path, "r"), path, mapping=mapping)


@register_reader("keras-zip")
def read_keras_zip(path, mmap=False):
    """Reads the weights of a Keras 3 `.keras` archive (its `model.weights.h5`)."""
    import h5py
    try:
        with zipfile.ZipFile(path) as archive:
            data = archive.read("model.weights.h5")
    except KeyError:
        raise WeightFileError("A .keras archive without model.weights.h5", path=path) from None
    except (zipfile.BadZipFile, OSError, EOFError) as err:
        raise WeightFileError(f"Corrupt .keras archive ({err})", path=path) from err
    return _read(lambda: h5py.File(io.BytesIO(data), "r"), path, "keras-zip")
