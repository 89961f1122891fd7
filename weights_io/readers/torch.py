"""PyTorch `.pth` / `.pt` / `.th` files, read without importing torch.

Two on-disk formats:

* zip (torch >= 1.6): ``<root>/data.pkl`` (the object pickle, tensors as
  ``torch._utils._rebuild_tensor_v2(storage, offset, size, stride, ...)`` with
  storages as persistent ids ``('storage', torch.FloatStorage, key, location,
  numel)``), ``<root>/data/<key>`` raw storages, ``<root>/byteorder``.
* legacy (``_use_new_zipfile_serialization=False`` and torch < 1.6): pickled
  magic number, protocol 1001, sys_info, the object pickle, the list of storage
  keys, then per key an int64 element count and the raw bytes.

Pickles go through `weights_io.safe_pickle.RestrictedUnpickler`: torch's
rebuild functions, storage types, dtypes and ``torch.Size`` map to numpy
stand-ins; any other global (a whole-module pickle, ``os.system``) is refused.
Storages are memory-mapped and each tensor copied out of its view once, so
reading a large file needs about its size in memory, not twice; with
``mmap=True`` tensors stay views of the file, copied only where they are
assigned.
"""

from __future__ import annotations

import collections
import io
import os
import pickle
import struct
import zipfile

import numpy as np

from weights_io.core import WeightFile, group_flat
from weights_io.errors import UnsafePickleError, WeightFileError
from weights_io.readers import register_reader
from weights_io.safe_pickle import NUMPY_GLOBALS
from weights_io.safe_pickle import safe_load as _safe_load

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL = 1001

# torch storage class -> numpy dtype of its raw bytes ("bfloat16" is widened on read).
STORAGE_DTYPES = {
    "FloatStorage": "<f4", "DoubleStorage": "<f8", "HalfStorage": "<f2", "BFloat16Storage": "bfloat16",
    "LongStorage": "<i8", "IntStorage": "<i4", "ShortStorage": "<i2", "CharStorage": "i1",
    "ByteStorage": "u1", "BoolStorage": "?",
}
# torch dtypes (as pickled by _rebuild_tensor_v3) -> the same raw dtype names.
TORCH_DTYPES = {
    "float32": "<f4", "float": "<f4", "float64": "<f8", "double": "<f8", "float16": "<f2", "half": "<f2",
    "bfloat16": "bfloat16", "int64": "<i8", "long": "<i8", "int32": "<i4", "int": "<i4", "int16": "<i2",
    "short": "<i2", "int8": "i1", "uint8": "u1", "bool": "?",
}
# Keys under which training scripts wrap the state dict.
WRAPPER_KEYS = ("state_dict", "model_state_dict", "model", "net", "params_ema", "params")

# A tensor may not ask for more than this many bytes beyond its file's size
# (stride-0 "expanded" views are legal but rare); stops absurd shapes early.
_SLACK_BYTES = 1 << 24


class StorageType:
    """Stand-in for `torch.FloatStorage` & co.: just the element dtype."""

    def __init__(self, name, dtype):
        self.name, self.dtype = name, dtype

    def __repr__(self):
        return f"torch.{self.name}"


class StorageRef:
    """A storage named in the pickle; `data` (1-D numpy) is filled in once read."""

    def __init__(self, key, dtype, numel):
        self.key, self.dtype, self.numel, self.data = str(key), dtype, numel, None


class TensorRef:
    """A tensor to cut out of a storage once its bytes are available."""

    def __init__(self, storage, offset, size, stride):
        self.storage, self.offset, self.size, self.stride = storage, offset, tuple(size), tuple(stride)


def safe_load(file, *, path, **kwargs):
    """`safe_pickle.safe_load`, also turning a truncated opcode's struct.error into WeightFileError."""
    try:
        return _safe_load(file, path=path, **kwargs)
    except WeightFileError:
        raise
    except (struct.error, pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError,
            KeyError, MemoryError, OverflowError, UnicodeDecodeError, RecursionError) as err:
        raise WeightFileError(f"Malformed pickle ({type(err).__name__}: {err})", path=path) from err


def _itemsize(dtype):
    return 2 if dtype == "bfloat16" else np.dtype(dtype).itemsize


def _rebuild_tensor(storage, storage_offset, size, stride, *unused):
    if not isinstance(storage, StorageRef):
        raise pickle.UnpicklingError(f"tensor rebuilt from {type(storage).__name__}, not a storage")
    return TensorRef(storage, storage_offset, size, stride)


def _rebuild_tensor_v3(storage, storage_offset, size, stride, requires_grad, hooks, dtype, *unused):
    tensor = _rebuild_tensor(storage, storage_offset, size, stride)
    if isinstance(dtype, str):
        storage.dtype = dtype
    return tensor


def _rebuild_parameter(data, *unused):
    return data


def _size(*args):
    return tuple(*args) if args else ()


def torch_globals():
    """The allowlist: (module, name) -> numpy stand-in."""
    allowed = dict(NUMPY_GLOBALS)
    allowed.update({
        ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
        ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
        ("torch._utils", "_rebuild_tensor_v3"): _rebuild_tensor_v3,
        ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
        ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
        ("torch", "Size"): _size,
        ("collections", "OrderedDict"): collections.OrderedDict,
    })
    for name, dtype in STORAGE_DTYPES.items():
        allowed[("torch", name)] = StorageType(name, dtype)
    for name, dtype in TORCH_DTYPES.items():
        allowed[("torch", name)] = dtype
    return allowed


_ALLOWED = torch_globals()


def _storage_from_pid(pid, path, storages):
    """Persistent id -> StorageRef (shared by key, so views share their storage)."""
    if not isinstance(pid, tuple) or len(pid) < 5 or pid[0] != "storage":
        raise WeightFileError(f"Unexpected persistent id {pid!r}", path=path)
    storage_type, key, numel = pid[1], pid[2], pid[4]
    if not isinstance(storage_type, StorageType):
        raise WeightFileError(f"Unknown storage type {storage_type!r}", path=path, key=str(key))
    if not isinstance(numel, int) or numel < 0:
        raise WeightFileError(f"Bad storage size {numel!r}", path=path, key=str(key))
    ref = storages.get(str(key))
    if ref is None:
        ref = storages[str(key)] = StorageRef(key, storage_type.dtype, numel)
    view = pid[5] if len(pid) > 5 else None
    if view is not None:  # very old files: (view_key, offset, size) into the root storage
        view_key, view_offset, view_size = view
        sub = StorageRef(view_key, ref.dtype, view_size)
        sub.parent, sub.parent_offset = ref, view_offset
        return sub
    return ref


def _widen(raw, dtype, byteorder):
    """Raw storage bytes -> native numpy array (bfloat16 widened exactly to float32)."""
    if dtype == "bfloat16":
        halves = raw.view(np.dtype("<u2") if byteorder == "little" else np.dtype(">u2"))
        return (halves.astype(np.uint32) << 16).view(np.float32)
    wanted = np.dtype(dtype).newbyteorder("<" if byteorder == "little" else ">")
    return raw.view(wanted)


def _materialize(tensor, path, key, budget, copy=True):
    storage = tensor.storage
    base, extra = storage, 0
    if getattr(storage, "parent", None) is not None:
        base, extra = storage.parent, storage.parent_offset
    data = base.data
    if data is None:
        raise WeightFileError("Tensor refers to a storage missing from the file", path=path, key=key)
    size, stride, offset = tensor.size, tensor.stride, tensor.offset
    ints = all(isinstance(v, (int, np.integer)) for v in (*size, *stride, offset))
    if not ints or len(size) != len(stride) or min((*size, *stride, offset), default=0) < 0:
        raise WeightFileError(f"Malformed tensor (size {size}, stride {stride}, offset {offset})", path=path, key=key)
    offset += extra
    numel = int(np.prod(size, dtype=object)) if size else 1
    if numel * data.itemsize > budget:
        raise WeightFileError(f"Tensor of shape {size} is larger than the file could hold", path=path, key=key)
    if numel == 0:
        return np.zeros(size, dtype=data.dtype.newbyteorder("="))
    last = offset + sum((s - 1) * st for s, st in zip(size, stride))
    if last >= data.size:
        raise WeightFileError(
            f"Tensor of shape {size} (stride {stride}, offset {offset}) needs {last + 1} elements but its "
            f"storage holds {data.size}",
            path=path, key=key,
        )
    view = np.lib.stride_tricks.as_strided(
        data[offset:], shape=size, strides=[s * data.itemsize for s in stride], writeable=False
    )
    if not copy:  # a read-only view of the (mapped) storage, in the file's byte order
        return view
    return np.array(view, dtype=data.dtype.newbyteorder("="), copy=True)


def _unwrap(obj, path):
    """Finds the state dict inside common checkpoint wrappers; returns (state, metadata)."""
    metadata = {}
    for _ in range(3):
        if not isinstance(obj, dict):
            break
        if any(isinstance(v, TensorRef) for v in obj.values()):
            break
        inner = next((k for k in WRAPPER_KEYS if isinstance(obj.get(k), dict)), None)
        if inner is None:
            break
        metadata.update({k: v for k, v in obj.items() if k != inner and isinstance(v, (int, float, str, bool))})
        obj = obj[inner]
    if not isinstance(obj, dict):
        raise WeightFileError(
            f"Expected a state dict (a dict of tensors), found {type(obj).__name__}", path=path
        )
    return obj, metadata


def _to_weight_file(obj, path, fmt, budget, extra_metadata=None, copy=True):
    state, metadata = _unwrap(obj, path)
    flat = {}
    for key, value in state.items():
        if not isinstance(key, str):
            raise WeightFileError(f"State dict key {key!r} is not a string", path=path)
        if isinstance(value, TensorRef):
            flat[key] = _materialize(value, path, key, budget, copy)
        elif isinstance(value, (int, float, np.ndarray, np.number)):
            flat[key] = np.asarray(value)
        # other entries (nested dicts, strings) carry no weights
    if not flat:
        raise WeightFileError("The file holds no tensors", path=path)
    if all(k.startswith("module.") for k in flat):  # saved from DataParallel
        flat = {k[len("module."):]: v for k, v in flat.items()}
    metadata.update(extra_metadata or {})
    return WeightFile(tensors=group_flat(flat), convention="torch", format=fmt, path=path, metadata=metadata)


# ---------------------------------------------------------------- zip format
def _zip_data_offset(f, info, path):
    """Where a STORED member's bytes start: after its local header."""
    f.seek(info.header_offset)
    header = f.read(30)
    if len(header) != 30 or header[:4] != b"PK\x03\x04":
        raise WeightFileError("Corrupt zip local header", path=path, key=info.filename)
    name_len, extra_len = struct.unpack("<HH", header[26:30])
    return info.header_offset + 30 + name_len + extra_len


@register_reader("torch-zip")
def read_torch_zip(path, mmap=False):
    """Reads a zip-format torch file (see the module docstring).

    With `mmap=True` tensors are read-only views of the file's storages.
    """
    storages = {}
    file_size = os.path.getsize(path)
    try:
        with zipfile.ZipFile(path) as archive, open(path, "rb") as f:
            names = archive.namelist()
            pickles = [n for n in names if n.endswith("data.pkl") and n.count("/") == 1]
            if len(pickles) != 1:
                raise WeightFileError(f"Expected one <root>/data.pkl, found {pickles or 'none'}", path=path)
            root = pickles[0][: -len("data.pkl")]
            byteorder = "little"
            if f"{root}byteorder" in names:
                byteorder = archive.read(f"{root}byteorder").decode("ascii", "replace").strip()
                if byteorder not in ("little", "big"):
                    raise WeightFileError(f"Unknown byteorder {byteorder!r}", path=path, key="byteorder")
            with archive.open(pickles[0]) as pkl:
                obj = safe_load(
                    io.BytesIO(pkl.read()), path=path, allowed=_ALLOWED, encoding="utf-8",
                    persistent_load=lambda pid: _storage_from_pid(pid, path, storages),
                )
            for key, ref in storages.items():
                member = f"{root}data/{key}"
                try:
                    info = archive.getinfo(member)
                except KeyError:
                    raise WeightFileError("Storage named in data.pkl is missing", path=path, key=member) from None
                nbytes = ref.numel * _itemsize(ref.dtype)
                if info.file_size < nbytes:
                    raise WeightFileError(
                        f"Storage holds {info.file_size} bytes, {ref.numel} elements of {ref.dtype} need {nbytes}",
                        path=path, key=member,
                    )
                if info.compress_type == zipfile.ZIP_STORED and nbytes:
                    start = _zip_data_offset(f, info, path)
                    if start + nbytes > file_size:
                        raise WeightFileError("Storage runs past the end of the file", path=path, key=member)
                    raw = np.memmap(path, dtype=np.uint8, mode="r", offset=start, shape=(nbytes,))
                else:
                    raw = np.frombuffer(archive.read(member)[:nbytes], dtype=np.uint8)
                ref.data = _widen(raw, ref.dtype, byteorder)
            return _to_weight_file(obj, path, "torch-zip", 2 * file_size + _SLACK_BYTES,
                                   {"byteorder": byteorder}, copy=not mmap)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError, ValueError) as err:
        if isinstance(err, WeightFileError):
            raise
        raise WeightFileError(f"Corrupt torch zip file ({type(err).__name__}: {err})", path=path) from err


# ------------------------------------------------------------- legacy format
@register_reader("torch-legacy")
def read_torch_legacy(path, mmap=False):
    """Reads a legacy (pre-zip) torch file (see the module docstring).

    With `mmap=True` tensors are read-only views of the file's storages.
    """
    storages = {}
    file_size = os.path.getsize(path)
    with open(path, "rb") as f:
        magic = safe_load(f, path=path, allowed={})
        if magic != LEGACY_MAGIC:
            raise WeightFileError(
                f"Not a torch file: the first pickle is {magic!r:.40}, not torch's magic number", path=path
            )
        protocol = safe_load(f, path=path, allowed={})
        if protocol != LEGACY_PROTOCOL:
            raise WeightFileError(f"Unsupported legacy torch protocol {protocol!r}", path=path)
        sys_info = safe_load(f, path=path, allowed={})
        little = sys_info.get("little_endian", True) if isinstance(sys_info, dict) else True
        byteorder = "little" if little else "big"
        obj = safe_load(
            f, path=path, allowed=_ALLOWED, encoding="utf-8",
            persistent_load=lambda pid: _storage_from_pid(pid, path, storages),
        )
        keys = safe_load(f, path=path, allowed={})
        if not isinstance(keys, list):
            raise WeightFileError(f"Expected the list of storage keys, found {type(keys).__name__}", path=path)
        offset = f.tell()
    for key in keys:
        ref = storages.get(str(key))
        if ref is None:
            raise WeightFileError("Storage key list names a storage the pickle never used", path=path, key=str(key))
        if offset + 8 > file_size:
            raise WeightFileError("File ends before this storage's size", path=path, key=str(key))
        with open(path, "rb") as f:
            f.seek(offset)
            (count,) = struct.unpack("<q" if little else ">q", f.read(8))
        nbytes = count * _itemsize(ref.dtype)
        if count < 0 or count < ref.numel or offset + 8 + nbytes > file_size:
            raise WeightFileError(
                f"Storage of {count} elements ({ref.numel} expected) does not fit in the file "
                f"({file_size - offset - 8} bytes left)",
                path=path, key=str(key),
            )
        raw = (np.memmap(path, dtype=np.uint8, mode="r", offset=offset + 8, shape=(nbytes,))
               if nbytes else np.zeros(0, np.uint8))
        ref.data = _widen(raw, ref.dtype, byteorder)
        offset += 8 + nbytes
    return _to_weight_file(obj, path, "torch-legacy", 2 * file_size + _SLACK_BYTES, {"byteorder": byteorder},
                           copy=not mmap)


__all__ = ["read_torch_legacy", "read_torch_zip", "torch_globals", "UnsafePickleError"]
