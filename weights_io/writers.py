"""Export: a Keras model's weights written in other projects' formats.

* `save_torch_state_dict`: a zip-format `.pth` state dict (torch >= 1.6
  layout: ``archive/data.pkl``, ``archive/data/<i>``, ``archive/version``,
  ``archive/byteorder``), loadable by torch's weights-only loader and
  ``model.load_state_dict(strict=True)``. The pickle is emitted opcode by
  opcode (protocol 2) because the globals it names (``torch._utils.
  _rebuild_tensor_v2``, ``torch.FloatStorage``) must not be imported here.
* `save_safetensors`: a `.safetensors` file (timm / Hugging Face) in a
  layout's torch names, which ``safetensors.torch.load_file`` and timm's
  ``load_state_dict`` read; written here with json and numpy (8-byte aligned
  header, tensors in the order given, ``__metadata__`` {"format": "pt"}).
* `save_npy_weights`: a tensorflow-vgg (``name -> [W, b]``) or
  caffe-tensorflow (``name -> {"weights", "biases", ...}``) `.npy` dict.

The axis transforms are the inverses in `weights_io.assign.export_weights`,
beside the forward ones.
"""

from __future__ import annotations

import json
import os
import struct
import zipfile

import numpy as np

from weights_io.assign import export_weights
from weights_io.layouts import get_layout

# numpy dtype -> torch storage class written in the pickle.
_STORAGE_TYPES = {
    "float32": "FloatStorage", "float64": "DoubleStorage", "float16": "HalfStorage", "int64": "LongStorage",
    "int32": "IntStorage", "int16": "ShortStorage", "int8": "CharStorage", "uint8": "ByteStorage",
    "bool": "BoolStorage",
}
_ALIGN = 64  # torch aligns storages so they can be memory-mapped


class _PickleWriter:
    """The few protocol-2 opcodes a state dict needs."""

    def __init__(self):
        self.out = bytearray(b"\x80\x02")

    def global_(self, module, name):
        self.out += b"c" + module.encode() + b"\n" + name.encode() + b"\n"

    def text(self, value):
        data = value.encode("utf8")
        self.out += b"X" + struct.pack("<I", len(data)) + data

    def int_(self, value):
        value = int(value)
        if 0 <= value < 256:
            self.out += b"K" + bytes([value])
        elif -(2**31) <= value < 2**31:
            self.out += b"J" + struct.pack("<i", value)
        else:
            data = value.to_bytes((value.bit_length() + 8) // 8, "little", signed=True)
            self.out += b"\x8a" + bytes([len(data)]) + data

    def int_tuple(self, values):
        self.out += b"("
        for v in values:
            self.int_(v)
        self.out += b"t"

    def empty_ordered_dict(self):
        self.global_("collections", "OrderedDict")
        self.out += b")R"

    def tensor(self, key, array):
        self.global_("torch._utils", "_rebuild_tensor_v2")
        self.out += b"("  # args of _rebuild_tensor_v2
        self.out += b"("  # persistent id ('storage', type, key, location, numel)
        self.text("storage")
        self.global_("torch", _STORAGE_TYPES[array.dtype.name])
        self.text(key)
        self.text("cpu")
        self.int_(array.size)
        self.out += b"tQ"
        self.int_(0)
        self.int_tuple(array.shape)
        self.int_tuple([s // array.itemsize for s in array.strides] if array.size else [1] * array.ndim)
        self.out += b"\x89"  # requires_grad=False
        self.empty_ordered_dict()  # backward_hooks
        self.out += b"tR"

    def state_dict(self, flat):
        self.empty_ordered_dict()
        self.out += b"("
        keys = {}
        for name, array in flat.items():
            keys[name] = str(len(keys))
            self.text(name)
            self.tensor(keys[name], array)
        self.out += b"u."
        return keys


def _aligned_write(archive, fileobj, name, data):
    """Writes a STORED member whose bytes start on a 64-byte boundary (torch's mmap needs it)."""
    info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
    info.compress_type = zipfile.ZIP_STORED
    start = fileobj.tell() + 30 + len(name.encode()) + 4
    pad = (-start) % _ALIGN
    info.extra = b"FB" + struct.pack("<H", pad) + b"Z" * pad
    archive.writestr(info, data)


def write_torch_state_dict(flat, path):
    """Writes `{key: ndarray}` as a zip-format torch state dict."""
    flat = {k: np.array(v, dtype=np.asarray(v).dtype.newbyteorder("<"), order="C") for k, v in flat.items()}
    for key, array in flat.items():
        if array.dtype.name not in _STORAGE_TYPES:
            raise ValueError(f"Cannot write {key!r}: no torch storage for dtype {array.dtype}")
    writer = _PickleWriter()
    keys = writer.state_dict(flat)
    root = "archive"
    with open(path, "wb") as fileobj, zipfile.ZipFile(fileobj, "w", zipfile.ZIP_STORED) as archive:
        _aligned_write(archive, fileobj, f"{root}/data.pkl", bytes(writer.out))
        _aligned_write(archive, fileobj, f"{root}/byteorder", b"little")
        for name, array in flat.items():
            _aligned_write(archive, fileobj, f"{root}/data/{keys[name]}", array.tobytes())
        _aligned_write(archive, fileobj, f"{root}/version", b"3\n")


def save_torch_state_dict(model, path, layout="torchvision-vgg"):
    """Saves `model`'s weights as a PyTorch state dict (zip `.pth`) in `layout`'s names.

    Args:
        model: a built Keras model.
        path: destination `.pth` file.
        layout: a registered layout name (`"torchvision-vgg"`,
            `"torchvision-alexnet"`, `"torchvision-resnet"`, ...) or `Layout`.

    Returns:
        The `WeightFile` written (torch convention), for inspection.
    """
    layout = get_layout(layout)
    weight_file = export_weights(model, layout, "torch")
    _publisher_shapes(weight_file, layout)
    write_torch_state_dict(weight_file.flat(), os.fspath(path))
    weight_file.path, weight_file.format = os.fspath(path), "torch-zip"
    return weight_file


def _publisher_shapes(weight_file, layout):
    """Reshapes exported arrays the publisher stores otherwise (`Layout.source_shape`), in place."""
    if layout.source_shape is None:
        return
    for layer, params in weight_file.tensors.items():
        for param, array in params.items():
            shape = layout.source_shape(f"{layer}.{param}", array)
            if shape is not None and tuple(shape) != array.shape:
                params[param] = array.reshape(shape)


# numpy dtype name -> safetensors dtype name (ml_dtypes' bfloat16 included).
_SAFETENSORS_DTYPES = {
    "bool": "BOOL", "uint8": "U8", "int8": "I8", "uint16": "U16", "int16": "I16", "uint32": "U32", "int32": "I32",
    "uint64": "U64", "int64": "I64", "float16": "F16", "float32": "F32", "float64": "F64", "bfloat16": "BF16",
}


def write_safetensors(flat, path, metadata=None):
    """Writes `{key: ndarray}` as a `.safetensors` file (`metadata`: `{str: str}`, the `__metadata__`)."""
    header, offset = {}, 0
    arrays = {}
    for key, value in flat.items():
        array = np.asarray(value)
        if array.dtype.name not in _SAFETENSORS_DTYPES:
            raise ValueError(f"Cannot write {key!r}: safetensors has no dtype for {array.dtype}")
        if array.dtype.byteorder == ">":
            array = array.astype(array.dtype.newbyteorder("<"))
        arrays[key] = np.ascontiguousarray(array)
        header[key] = {"dtype": _SAFETENSORS_DTYPES[array.dtype.name], "shape": list(array.shape),
                       "data_offsets": [offset, offset + array.nbytes]}
        offset += array.nbytes
    if metadata:
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()):
            raise ValueError(f"safetensors metadata maps strings to strings. Received: {metadata!r}")
        header = {"__metadata__": dict(metadata), **header}
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-(8 + len(text)) % 8)  # the data starts 8-byte aligned, as safetensors writes it
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text)
        for array in arrays.values():
            f.write(array.tobytes())


def save_safetensors(model, path, layout, *, metadata=None):
    """Saves `model`'s weights as a `.safetensors` file in `layout`'s (torch) names.

    With a timm layout the file is what timm's ``model.safetensors`` holds:
    ``timm.create_model(name, pretrained_cfg_overlay=dict(file=path))`` or
    ``model.load_state_dict(safetensors.torch.load_file(path))`` takes it.

    Args:
        model: a built Keras model.
        path: destination `.safetensors` file.
        layout: a registered layout name (`"timm-vgg"`, `"torchvision-resnet"`,
            `"timm-mobilenet-v3"`, ...) or `Layout`.
        metadata: `{str: str}` for the header's `__metadata__` (default
            `{"format": "pt"}`, which Hugging Face's loaders look for).

    Returns:
        The `WeightFile` written (torch convention), for inspection.
    """
    layout = get_layout(layout)
    weight_file = export_weights(model, layout, "torch")
    _publisher_shapes(weight_file, layout)
    write_safetensors(weight_file.flat(), os.fspath(path), {"format": "pt"} if metadata is None else metadata)
    weight_file.path, weight_file.format = os.fspath(path), "safetensors"
    return weight_file


def save_npy_weights(model, path, layout="tensorflow-vgg", style="tensorflow-vgg"):
    """Saves `model`'s weights as a `.npy` dict that `load_npy_weights` reads back.

    Args:
        model: a built Keras model.
        path: destination `.npy` file.
        layout: the source names to use (`"tensorflow-vgg"`, `"caffe-alexnet"`,
            `"keras"` for our own names, ...).
        style: `"tensorflow-vgg"` writes `name -> [W, b]` (only layers with a
            kernel and bias); `"caffe-tensorflow"` writes `name -> {"weights",
            "biases", "scale", "offset", "mean", "variance", "alpha"}`.

    Returns:
        The `WeightFile` written (tf convention).
    """
    if style not in ("tensorflow-vgg", "caffe-tensorflow"):
        raise ValueError(f"style must be 'tensorflow-vgg' or 'caffe-tensorflow'. Received: style={style!r}")
    weight_file = export_weights(model, get_layout(layout), "tf")
    content = {}
    for name, params in weight_file.tensors.items():
        if style == "caffe-tensorflow":
            content[name] = dict(params)
        elif set(params) <= {"weights", "biases"}:
            content[name] = [params["weights"], params["biases"]] if "biases" in params else [params["weights"]]
        else:
            raise ValueError(f"Layer {name!r} has {sorted(params)}: the tensorflow-vgg [W, b] style cannot hold "
                             "it; use style='caffe-tensorflow'.")
    holder = np.empty((), dtype=object)
    holder[()] = content
    np.save(os.fspath(path), holder)  # object array: pickled on write (np.save default)
    weight_file.path, weight_file.format = os.fspath(path), "npy"
    return weight_file
