"""Hand-built torch files for the core suite (no torch): the byte formats written out longhand.

`legacy_bytes` follows torch/serialization.py's legacy `_save`: pickled magic
number, protocol 1001, sys_info, the object pickle with persistent ids
('storage', <type>, key, 'cpu', numel, None), the pickled key list, then per
storage an int64 element count and the raw bytes. Tensors are given as
(storage key, offset, size, stride) over storages given as 1-D arrays, so
views with offsets and strides can be written.
"""

from __future__ import annotations

import pickle
import struct

import numpy as np

STORAGE_NAMES = {"float32": "FloatStorage", "float64": "DoubleStorage", "float16": "HalfStorage",
                 "int64": "LongStorage", "int32": "IntStorage", "uint8": "ByteStorage"}


def _text(s):
    data = s.encode()
    return b"X" + struct.pack("<I", len(data)) + data


def _int(v):
    return b"J" + struct.pack("<i", v)


def _ints(values):
    return b"(" + b"".join(_int(v) for v in values) + b"t"


def state_dict_pickle(tensors, storages, *, rebuild="_rebuild_tensor_v2", legacy=True, wrapper=None):
    """Protocol-2 pickle of an OrderedDict of tensors (optionally inside {wrapper: ..., 'epoch': 3})."""
    out = b"\x80\x02"
    if wrapper:
        out += b"}" + _text(wrapper)
    out += b"ccollections\nOrderedDict\n)R("
    for name, (key, offset, size, stride) in tensors.items():
        dtype = storages[key].dtype.name
        pid = b"(" + _text("storage") + f"ctorch\n{STORAGE_NAMES[dtype]}\n".encode() + _text(key) + _text("cpu")
        pid += _int(storages[key].size) + (b"N" if legacy else b"") + b"t"
        out += _text(name) + f"ctorch._utils\n{rebuild}\n".encode() + b"(" + pid + b"Q" + _int(offset)
        out += _ints(size) + _ints(stride)
        if rebuild == "_rebuild_tensor_v2":
            out += b"\x89ccollections\nOrderedDict\n)R"
        out += b"tR"
    out += b"u"
    if wrapper:
        out += b"s" + _text("epoch") + _int(3) + b"s"
    return out + b"."


def legacy_bytes(tensors, storages, *, little_endian=True, **kwargs):
    """A complete legacy .pth file (see the module docstring)."""
    order = "<" if little_endian else ">"
    sys_info = {"protocol_version": 1001, "little_endian": little_endian,
                "type_sizes": {"short": 2, "int": 4, "long": 4}}
    out = pickle.dumps(0x1950A86A20F9469CFC6C, protocol=2) + pickle.dumps(1001, protocol=2)
    out += pickle.dumps(sys_info, protocol=2) + state_dict_pickle(tensors, storages, **kwargs)
    out += pickle.dumps(list(storages), protocol=2)
    for key, array in storages.items():
        out += struct.pack(order + "q", array.size) + array.astype(array.dtype.newbyteorder(order)).tobytes()
    return out


def example():
    """Storages and tensors with a transposed view, an offset view, float16 and int64."""
    rng = np.random.default_rng(0)
    storages = {
        "0": rng.normal(size=24).astype(np.float32),
        "1": rng.normal(size=10).astype(np.float16),
        "2": np.arange(5, dtype=np.int64),
    }
    tensors = {
        "conv.weight": ("0", 0, (2, 3, 2, 2), (12, 4, 2, 1)),
        "fc.weight": ("0", 2, (3, 4), (1, 3)),  # a transposed view starting at element 2
        "half.bias": ("1", 4, (6,), (1,)),
        "count.steps": ("2", 0, (5,), (1,)),
    }
    s0 = storages["0"]
    expected = {
        "conv.weight": s0.reshape(2, 3, 2, 2),
        "fc.weight": np.array([[s0[2 + i + 3 * j] for j in range(4)] for i in range(3)]),
        "half.bias": storages["1"][4:],
        "count.steps": storages["2"],
    }
    return tensors, storages, expected
