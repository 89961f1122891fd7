"""TensorFlow checkpoints, V2 (`prefix.index` + `prefix.data-K-of-N`) and V1 (one file), without TensorFlow.

This module holds what a checkpoint means: which files make one, what its table's entries say, and how the
arrays are rebuilt from them. The table itself is read by `tf_table`, the protobuf messages in it are
decoded by `protowire` (varints of at most 10 bytes, every length checked against what is left), and the
messages that describe one tensor (dtype, shape, slice, values) by `tf_tensors`.

* V2 (`tensor_bundle.cc`): key "" holds a `BundleHeaderProto`; every other
  key a `BundleEntryProto` (dtype, shape, shard, offset, size, masked crc32c
  of the bytes). The raw bytes lie in the shard; their crc32c is verified.
  A partitioned variable's entry lists `slices`; each slice's entry lies under
  TensorFlow's OrderedCode key of (name, slice) and the reader reassembles
  the full array.
* V1 (`tensor_slice_writer.cc`): key "" holds a `SavedTensorSlices` whose
  `meta` lists the tensors; every other key a `SavedTensorSlices` whose
  `data` is one slice with a `TensorProto` (packed `float_val` etc. or
  `tensor_content`).

Strings, resources and variants are not weights: they are skipped and listed
in ``metadata["skipped"]``.

Names keep TensorFlow's (``resnet_v1_50/conv1/weights``): the layer is all
before the last ``/``, the parameter the last part. TF2 object-graph names
lose their ``/.ATTRIBUTES/VARIABLE_VALUE`` tail first, so
``model/dense/kernel/.ATTRIBUTES/VARIABLE_VALUE`` is layer ``model/dense``,
parameter ``kernel``. Arrays keep their dtype (bfloat16 via `ml_dtypes`).
With ``mmap=True`` arrays are read-only views of their data shard where the
bytes are aligned (only of the shard the reader was given when it was given
a shard: `read_weights` passes the sandbox the one file it maps).
"""

from __future__ import annotations

import os
import re
import struct

import numpy as np

from weights_io.core import WeightFile
from weights_io.errors import WeightFileError
from weights_io.readers import map_file, register_reader
from weights_io.readers.protowire import (
    Malformed as _Malformed, fields as _fields, need as _need, signed as _signed, text as _text)
from weights_io.readers.tf_tensors import (
    DTYPES, Assembler as _Assembler, nbytes as _nbytes, not_weight as _not_weight, numpy_dtype as _dtype,
    region as _region, slice_key, tensor_shape as _shape, tensor_slice as _slice, tensor_values as _tensor_proto)
from weights_io.readers.tf_table import (
    file_is_table, is_table, masked_crc32c, table_entries)

_VARIABLE_SUFFIX = "/.ATTRIBUTES/VARIABLE_VALUE"
_SHARD = re.compile(r"^(.*)\.data-(\d{5})-of-(\d{5})$")
_CHECKPOINT_LINE = re.compile(r'^\s*model_checkpoint_path:\s*"((?:[^"\\]|\\.)*)"\s*$', re.M)

# ---------------------------------------------------------------------------------------------------------
# finding the files

def _shard_names(prefix, count):
    return [f"{prefix}.data-{k:05d}-of-{count:05d}" for k in range(count)]


def _from_folder(folder):
    """The checkpoint a folder's `checkpoint` file names as the latest, or None."""
    state = os.path.join(folder, "checkpoint")
    if not os.path.isfile(state):
        return None
    with open(state, "rb") as f:
        text = f.read(1 << 20).decode("utf-8", "replace")
    match = _CHECKPOINT_LINE.search(text)
    if match is None:
        return None
    name = match.group(1).encode().decode("unicode_escape")
    return name if os.path.isabs(name) else os.path.join(folder, name)


def locate(path):
    """(kind, index or V1 file, prefix) for any accepted form of a checkpoint path, or None.

    kind is "v2" for a prefix, its `.index` or a `.data-*` shard whose `.index`
    exists, "file" for an existing file to be judged by its content; a folder
    resolves through its `checkpoint` text file.
    """
    path = os.fspath(path)
    if os.path.isdir(path):
        latest = _from_folder(path)
        return locate(latest) if latest is not None and not os.path.isdir(latest) else None
    if os.path.isfile(path):
        match = _SHARD.match(path)
        if match and os.path.isfile(match.group(1) + ".index"):
            return "v2", match.group(1) + ".index", match.group(1)
        if path.endswith(".index"):
            return "v2", path, path[: -len(".index")]
        return "file", path, None
    if os.path.isfile(path + ".index"):
        return "v2", path + ".index", path
    return None


def _bundle_header(value):
    """(num_shards, big-endian?) of a BundleHeaderProto."""
    shards, big = 0, False
    for number, wire, field in _fields(value):
        if number == 1:
            _need(wire, 0, "num_shards")
            shards = field
        elif number == 2:
            _need(wire, 0, "endianness")
            big = field == 1
    return shards, big


def sniff(data):
    """"tf-checkpoint" or "tf-checkpoint-v1" for a table whose entry "" is a bundle header or slice metadata, else None."""
    try:
        if not is_table(data):
            return None
        for key, value in table_entries(data):
            if key != b"":
                return None
            fields = list(_fields(value))
            if any(number == 1 and wire == 2 for number, wire, _ in fields):
                return "tf-checkpoint-v1"  # SavedTensorSlices.meta
            if all(number in (1, 2, 3) for number, _, _ in fields):
                return "tf-checkpoint"
            return None
    except (_Malformed, struct.error):
        return None
    return None


def resolve(path):
    """(format or None, concrete file) for a checkpoint given in any accepted form, or None for other files.

    The format is None where the table is damaged beyond naming (the reader then
    says how). The concrete file is the one the sandbox maps and sizes: the data
    shard given, else the largest shard of a V2 checkpoint (its arrays can then
    be views), or the V1 file.
    """
    found = locate(path)
    if found is None:
        return None
    kind, table, prefix = found
    try:
        with open(table, "rb") as f:
            # not a table: no map of every file detect_format is shown
            mapping = map_file(f) if file_is_table(f) else None
    except OSError:
        return None
    fmt = sniff(mapping) if mapping is not None else None
    if kind != "v2":
        return (fmt, table) if fmt == "tf-checkpoint-v1" else None
    if fmt is not None and fmt != "tf-checkpoint":
        return None  # an .index that is some other table
    # a table too damaged to name is still this checkpoint's: the reader says what is wrong with it
    fmt = "tf-checkpoint" if mapping is not None else None
    given = os.fspath(path)
    if os.path.isfile(given) and _SHARD.match(given):
        return fmt, given
    folder = os.path.dirname(prefix) or "."
    shards = [os.path.join(folder, p) for p in os.listdir(folder)
              if _SHARD.match(p) and _SHARD.match(p).group(1) == os.path.basename(prefix)]
    return fmt, (max(shards, key=os.path.getsize) if shards else table)


# ---------------------------------------------------------------------------------------------------------
# V2

def _bundle_entry(value):
    entry = {"dtype": 0, "shape": (), "shard": 0, "offset": 0, "size": 0, "crc": None, "slices": []}
    for number, wire, field in _fields(value):
        if number == 1:
            _need(wire, 0, "dtype")
            entry["dtype"] = field
        elif number == 2:
            _need(wire, 2, "shape")
            entry["shape"] = _shape(value, *field)
        elif number == 3:
            _need(wire, 0, "shard_id")
            entry["shard"] = _signed(field)
        elif number == 4:
            _need(wire, 0, "offset")
            entry["offset"] = _signed(field)
        elif number == 5:
            _need(wire, 0, "size")
            entry["size"] = _signed(field)
        elif number == 6:
            _need(wire, 5, "crc32c")
            entry["crc"] = field
        elif number == 7:
            _need(wire, 2, "slices")
            entry["slices"].append(_slice(value, *field))
    return entry


def _clean_name(name):
    return name[: -len(_VARIABLE_SUFFIX)] if name.endswith(_VARIABLE_SUFFIX) else name


def group_by_scope(flat):
    """`{"scope/param": array}` as `{"scope": {"param": array}}`; a name without a scope is a layer with param ""."""
    tensors = {}
    for name, array in flat.items():
        layer, _, param = name.rpartition("/")
        if not layer:
            layer, param = name, ""
        tensors.setdefault(layer, {})[param] = array
    return tensors


class _Shard:
    """One data shard: its size, an open file for copies, a map for views (made on first use)."""

    def __init__(self, path, own):
        self.file = open(path, "rb")  # noqa: SIM115 - closed by _Shards.close
        self.size = os.fstat(self.file.fileno()).st_size
        self.own, self._map = own, None

    def mapping(self):
        if self._map is None:
            self._map = map_file(self.file)
        return self._map

    def read(self, offset, dtype, shape):
        """A fresh array of the bytes at `offset` (read into it: the file's pages are not mapped and kept)."""
        out = np.empty(shape, dtype)
        target = out.reshape(-1).view(np.uint8)
        self.file.seek(offset)
        if self.file.readinto(target) != target.size:
            raise _Malformed(f"the shard ends inside the tensor at byte {offset}")
        return out


class _Shards:
    """The data shards of a V2 checkpoint, opened on first use."""

    def __init__(self, prefix, count, path):
        self.paths = _shard_names(prefix, count)
        self.open = {}
        self.path, self.given = path, os.path.realpath(path)

    def get(self, shard, name):
        if not 0 <= shard < len(self.paths):
            raise WeightFileError(f"The entry names shard {shard} of {len(self.paths)}", path=self.path, key=name)
        if shard not in self.open:
            path = self.paths[shard]
            if not os.path.isfile(path):
                raise WeightFileError(f"The data shard {path} is missing", path=self.path, key=name)
            # views only into the file the reader was given (the sandbox maps that one file and checks spans
            # against it), or any shard when it was given a prefix or folder
            own = os.path.realpath(path) == self.given or not os.path.isfile(self.given)
            self.open[shard] = _Shard(path, own)
        return self.open[shard]

    def close(self):
        for shard in self.open.values():
            shard.file.close()


def _read_v2(path, table, prefix, mmap):
    header, entries = None, {}
    slice_entries = {}
    for key, value in table_entries(table):
        if key == b"":
            header = _bundle_header(value)
        elif key[:1] == b"\x00":
            slice_entries[bytes(key)] = value
        else:
            try:
                name = key.decode("utf-8")
            except UnicodeDecodeError:
                raise _Malformed(f"a variable name that is not UTF-8 ({key[:40]!r})") from None
            entries[name] = _bundle_entry(value)
    if header is None:
        raise _Malformed("no bundle header (key \"\")")
    shards, big = header
    if not 1 <= shards <= 100000:
        raise _Malformed(f"the bundle header claims {shards} shards")
    shard_maps = _Shards(prefix, shards, path)
    try:
        return _v2_arrays(path, entries, slice_entries, shard_maps, big, mmap, shards)
    finally:
        shard_maps.close()


def _v2_arrays(path, entries, slice_entries, shard_maps, big, mmap, shards):

    def data_of(entry, name):
        dtype = _dtype(entry["dtype"])
        if big:
            dtype = dtype.newbyteorder(">")
        nbytes = _nbytes(entry["shape"], dtype.itemsize)
        if nbytes != entry["size"]:
            raise WeightFileError(f"shape {list(entry['shape'])} of {dtype} needs {nbytes} bytes, the entry "
                                  f"gives {entry['size']}", path=path, key=name)
        shard = shard_maps.get(entry["shard"], name)
        offset = entry["offset"]
        if offset < 0 or offset + nbytes > shard.size:
            raise WeightFileError(f"The bytes {offset}..{offset + nbytes} lie past the end of shard "
                                  f"{entry['shard']} ({shard.size} bytes)", path=path, key=name)
        if nbytes == 0:
            return np.zeros(entry["shape"], dtype)
        if mmap and shard.own and offset % dtype.alignment == 0 and shard.mapping() is not None:
            array = np.frombuffer(shard.mapping(), dtype, count=nbytes // dtype.itemsize, offset=offset)
            array = array.reshape(entry["shape"])
        else:
            array = shard.read(offset, dtype, entry["shape"])
        if entry["crc"] is not None and masked_crc32c(array.reshape(-1).view(np.uint8)) != entry["crc"]:
            raise WeightFileError("The tensor's bytes fail their crc32c check (the data shard is damaged)",
                                  path=path, key=name)
        return array

    flat, skipped = {}, []
    for name, entry in entries.items():
        code = entry["dtype"]
        if _not_weight(code):
            skipped.append((name, _not_weight(code)))
            continue
        if code not in DTYPES:
            raise WeightFileError(f"Unsupported TensorFlow dtype {code}", path=path, key=name)
        if entry["slices"]:
            dtype = _dtype(code)
            if _nbytes(entry["shape"], dtype.itemsize) > sum(shard_maps.get(k, name).size
                                                              for k in range(len(shard_maps.paths))):
                raise WeightFileError(f"shape {list(entry['shape'])} needs more bytes than the shards hold",
                                      path=path, key=name)
            whole = _Assembler(entry["shape"], dtype.newbyteorder(">") if big else dtype)
            for extents in entry["slices"]:
                value = slice_entries.get(slice_key(name, extents))
                if value is None:
                    raise WeightFileError(f"The slice {extents} has no entry", path=path, key=name)
                part = _bundle_entry(value)
                if part["dtype"] != code:
                    raise WeightFileError("A slice's dtype differs from its tensor's", path=path, key=name)
                _, sizes = _region(extents, entry["shape"])
                if part["shape"] != sizes:
                    raise WeightFileError(f"A slice's shape {part['shape']} differs from its extents {sizes}",
                                          path=path, key=name)
                whole.put(extents, data_of(part, name))
            array = whole.done()
        else:
            array = data_of(entry, name)
        flat[name] = array
    return flat, skipped, {"num_shards": shards}


# ---------------------------------------------------------------------------------------------------------
# V1

def _v1_meta(value, span):
    """{name: (dtype code, shape)} of a SavedTensorSliceMeta."""
    out = {}
    for number, wire, field in _fields(value, *span):
        if number != 1:
            continue
        _need(wire, 2, "a SavedSliceMeta")
        name, shape, code = None, (), 0
        for n, w, v in _fields(value, *field):
            if n == 1:
                _need(w, 2, "a name")
                name = _text(value, v)
            elif n == 2:
                _need(w, 2, "a shape")
                shape = _shape(value, *v)
            elif n == 3:
                _need(w, 0, "a dtype")
                code = v
        if name is None:
            raise _Malformed("a SavedSliceMeta without a name")
        out[name] = (code, shape)
    return out


def _v1(path, table):
    meta, pieces = None, []
    for key, value in table_entries(table):
        for number, wire, field in _fields(value):
            if number == 1 and key == b"":
                _need(wire, 2, "meta")
                meta = _v1_meta(value, field)
            elif number == 2 and key != b"":
                _need(wire, 2, "data")
                pieces.append((value, field))
    if meta is None:
        raise _Malformed("no SavedTensorSliceMeta (key \"\")")
    flat, skipped, wholes = {}, [], {}
    for name, (code, shape) in meta.items():
        base = code - 100 if code > 100 else code
        if _not_weight(code):
            skipped.append((name, _not_weight(code)))
        elif base not in DTYPES:
            raise WeightFileError(f"Unsupported TensorFlow dtype {code}", path=path, key=name)
        elif _nbytes(shape, _dtype(base).itemsize) > 2 * len(table) + (1 << 20):
            raise WeightFileError(f"shape {list(shape)} needs more bytes than the file holds", path=path, key=name)
        else:
            wholes[name] = _Assembler(shape, _dtype(base))
    for value, (start, end) in pieces:
        name, extents, data = None, (), None
        for n, w, v in _fields(value, start, end):
            if n == 1:
                _need(w, 2, "a name")
                name = _text(value, v)
            elif n == 2:
                _need(w, 2, "a slice")
                extents = _slice(value, *v)
            elif n == 3:
                _need(w, 2, "a TensorProto")
                data = v
        if name not in wholes:
            if name in meta:
                continue  # a skipped string tensor
            raise WeightFileError("A slice of a tensor the metadata does not list", path=path, key=name)
        whole = wholes[name]
        if data is None:
            raise WeightFileError("A slice without data", path=path, key=name)
        try:
            extents = extents or tuple((0, -1) for _ in whole.shape)
            _, sizes = _region(extents, whole.shape)
            values = _tensor_proto(value, *data, whole.dtype, int(np.prod(sizes, dtype=np.int64)))
            whole.put(extents, values)
        except _Malformed as err:
            raise WeightFileError(f"Malformed slice: {err}", path=path, key=name) from None
    for name, whole in wholes.items():
        try:
            flat[name] = whole.done()
        except _Malformed as err:
            raise WeightFileError(f"{err}", path=path, key=name) from None
    return flat, skipped, {}


# ---------------------------------------------------------------------------------------------------------
# readers

def _result(flat, skipped, fmt, path, extra):
    cleaned = {}
    for name, array in flat.items():
        key = _clean_name(name)
        cleaned[key if key not in flat or key == name else name] = array
    metadata = {"skipped": [f"{name} ({kind})" for name, kind in skipped], **extra}
    return WeightFile(tensors=group_by_scope(cleaned), convention="tf", format=fmt, path=path, metadata=metadata)


def _read(path, fmt, decode):
    """The WeightFile of `decode(table, prefix)` -> (flat, skipped, metadata) for the checkpoint at `path`, any
    damage to it told as a WeightFileError."""
    found = locate(path)
    if found is None:
        raise WeightFileError("No TensorFlow checkpoint here (no prefix.index, checkpoint file or table)", path=path)
    kind, table_path, prefix = found
    if fmt == "tf-checkpoint" and kind != "v2":
        raise WeightFileError("Not a V2 checkpoint (no .index next to it)", path=path)
    with open(table_path, "rb") as f:
        table = map_file(f)
    if table is None:
        raise WeightFileError("The checkpoint's table file is empty", path=path)
    what = "TensorFlow checkpoint" if fmt == "tf-checkpoint" else "TensorFlow V1 checkpoint"
    try:
        flat, skipped, extra = decode(table, prefix)
    except _Malformed as err:
        raise WeightFileError(f"Malformed {what}: {err}", path=path) from None
    except struct.error as err:
        raise WeightFileError(f"Malformed {what}: truncated ({err})", path=path) from None
    return _result(flat, skipped, fmt, path, extra)


@register_reader("tf-checkpoint")
def read_tf_checkpoint(path, mmap=False):
    """Reads a V2 TensorFlow checkpoint given as its prefix, `.index`, a data shard or its folder."""
    path = os.fspath(path)
    return _read(path, "tf-checkpoint", lambda table, prefix: _read_v2(path, table, prefix, mmap))


@register_reader("tf-checkpoint-v1")
def read_tf_checkpoint_v1(path, mmap=False):
    """Reads a V1 TensorFlow checkpoint (one file of SavedTensorSlices; the 2016 TF-slim releases).

    The values are decoded from protobuf messages, so `mmap` has no effect.
    """
    path = os.fspath(path)
    return _read(path, "tf-checkpoint-v1", lambda table, prefix: _v1(path, table))
