"""`.safetensors` files (Hugging Face; timm's ``model.safetensors``), read with numpy and the standard library.

Layout: an 8-byte little-endian header length N, N bytes of JSON
``{name: {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__":
{str: str}}``, then the data buffer; each tensor's raw little-endian, C-order
bytes lie at ``[begin, end)`` of that buffer.

The checks are the format's own (huggingface/safetensors' ``Metadata::validate``):
a header of at most 100 MB that is one JSON object starting with ``{``; known
dtypes; ``end >= begin``; ``prod(shape) * itemsize == end - begin``; and the
tensors, sorted by offset, tile the buffer exactly (no gap, no overlap, nothing
past its end or left over). Duplicate names are refused too. Any failure is a
`WeightFileError`.

Arrays keep their dtype: ``BF16`` and ``F8_*`` become `ml_dtypes` arrays
(TensorFlow's own dependency), cast to the variable's dtype on assign. The
keys are torch's (``layer1.0.conv1.weight``): convention ``"torch"``. With
``mmap=True`` every tensor is a read-only view of the mapped file, copied only
where it is assigned.
"""

from __future__ import annotations

import json
import os
import struct

import numpy as np

from weights_io.core import WeightFile, group_flat
from weights_io.errors import WeightFileError
from weights_io.readers import map_file, register_reader

# The format's limit on the JSON header (safetensors' MAX_HEADER_SIZE).
MAX_HEADER_BYTES = 100_000_000
METADATA_KEY = "__metadata__"


def _ml_dtype(name):
    import ml_dtypes

    return np.dtype(getattr(ml_dtypes, name))


# safetensors dtype names -> numpy dtypes (little-endian); the ml_dtypes ones resolved on use.
DTYPES = {
    "BOOL": "?", "U8": "u1", "I8": "i1", "U16": "<u2", "I16": "<i2", "U32": "<u4", "I32": "<i4", "U64": "<u8",
    "I64": "<i8", "F16": "<f2", "F32": "<f4", "F64": "<f8", "C64": "<c8",
    "BF16": "bfloat16", "F8_E4M3": "float8_e4m3fn", "F8_E5M2": "float8_e5m2",
}
_ML_DTYPES = ("bfloat16", "float8_e4m3fn", "float8_e5m2")


def numpy_dtype(name):
    """The numpy dtype of safetensors dtype `name` (KeyError when the format has no such dtype)."""
    text = DTYPES[name]
    return _ml_dtype(text) if text in _ML_DTYPES else np.dtype(text)


def header_length(head):
    """N from a file's first bytes when they start like a safetensors file (a plausible N, then '{'), else None.

    A file cut short still counts: the reader then says what is missing.
    """
    if len(head) < 9:
        return None
    (length,) = struct.unpack("<Q", head[:8])
    if not 2 <= length <= MAX_HEADER_BYTES or head[8:9] != b"{":
        return None
    return length


def _no_duplicates(pairs):
    keys = [key for key, _ in pairs]
    if len(set(keys)) != len(keys):
        duplicated = sorted({key for key in keys if keys.count(key) > 1})
        raise ValueError(f"duplicate keys {duplicated[:5]}")
    return dict(pairs)


def _parse_header(raw, path):
    try:
        header = json.loads(raw.decode("utf-8"), object_pairs_hook=_no_duplicates)
    except (UnicodeDecodeError, ValueError, RecursionError) as err:
        raise WeightFileError(f"The safetensors header is not valid JSON ({type(err).__name__}: {err})",
                              path=path) from None
    if not isinstance(header, dict):
        raise WeightFileError(f"The safetensors header is a JSON {type(header).__name__}, not an object", path=path)
    metadata = header.pop(METADATA_KEY, None) or {}
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise WeightFileError("The safetensors __metadata__ must map strings to strings", path=path)
    return header, metadata


def _is_count(value):
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _entry(name, info, path):
    """(dtype, shape, begin, end) of one header entry, each field checked."""
    if not isinstance(info, dict) or not {"dtype", "shape", "data_offsets"} <= set(info):
        raise WeightFileError("A tensor entry needs dtype, shape and data_offsets", path=path, key=name)
    try:
        dtype = numpy_dtype(info["dtype"])
    except (KeyError, TypeError):
        raise WeightFileError(f"Unknown safetensors dtype {info['dtype']!r}; known: {sorted(DTYPES)}",
                              path=path, key=name) from None
    shape, offsets = info["shape"], info["data_offsets"]
    if not isinstance(shape, list) or not all(_is_count(d) for d in shape):
        raise WeightFileError(f"shape must be a list of non-negative integers, found {shape!r}", path=path, key=name)
    if not isinstance(offsets, list) or len(offsets) != 2 or not all(_is_count(o) for o in offsets):
        raise WeightFileError(f"data_offsets must be [begin, end], found {offsets!r}", path=path, key=name)
    begin, end = offsets
    if end < begin:
        raise WeightFileError(f"data_offsets end before they begin ({begin}, {end})", path=path, key=name)
    nbytes = dtype.itemsize
    for d in shape:  # Python integers: an absurd shape cannot wrap around
        nbytes *= d
    if nbytes != end - begin:
        raise WeightFileError(f"shape {shape} of {info['dtype']} needs {nbytes} bytes, data_offsets give "
                              f"{end - begin}", path=path, key=name)
    return dtype, tuple(shape), begin, end


def read_header(f, path, file_size):
    """(entries {name: (dtype, shape, begin, end)}, metadata, data start) of an open file, all checked."""
    head = f.read(8)
    if len(head) < 8:
        raise WeightFileError(f"Too short for a safetensors file ({file_size} bytes)", path=path)
    (length,) = struct.unpack("<Q", head)
    if length > min(MAX_HEADER_BYTES, file_size - 8):
        raise WeightFileError(f"The safetensors header claims {length} bytes, the file holds {file_size - 8} "
                              f"after the length (limit {MAX_HEADER_BYTES})", path=path)
    raw = f.read(length)
    if not raw.startswith(b"{"):
        raise WeightFileError("The safetensors header does not start with '{'", path=path)
    header, metadata = _parse_header(raw, path)
    entries = {name: _entry(name, info, path) for name, info in header.items()}
    data_start, expected = 8 + length, 0
    for name, (_, _, begin, end) in sorted(entries.items(), key=lambda item: (item[1][2], item[1][3])):
        if begin != expected:
            what = "overlaps the previous tensor" if begin < expected else "leaves a gap after the previous tensor"
            raise WeightFileError(f"data_offsets ({begin}, {end}) {what} (which ends at {expected})",
                                  path=path, key=name)
        expected = end
    if data_start + expected != file_size:
        where = "past the end of the file" if data_start + expected > file_size else "short of the end of the file"
        raise WeightFileError(f"The tensors end at byte {data_start + expected}, {where} ({file_size} bytes)",
                              path=path)
    return entries, metadata, data_start


@register_reader("safetensors")
def read_safetensors(path, mmap=False):
    """Reads a `.safetensors` file; see the module docstring.

    With `mmap=True` the arrays are read-only views of the file (no copy
    until they are assigned); otherwise each is copied out once.
    """
    file_size = os.path.getsize(path)
    with open(path, "rb") as f:
        entries, metadata, data_start = read_header(f, path, file_size)
        mapping = map_file(f) if entries and file_size > data_start else None
    flat = {}
    for name, (dtype, shape, begin, end) in entries.items():
        if end == begin:
            flat[name] = np.zeros(shape, dtype)
            continue
        view = np.frombuffer(mapping, dtype, count=(end - begin) // dtype.itemsize, offset=data_start + begin)
        flat[name] = view.reshape(shape) if mmap else view.reshape(shape).copy()
    return WeightFile(tensors=group_flat(flat), convention="torch", format="safetensors", path=path,
                      metadata=dict(metadata))
