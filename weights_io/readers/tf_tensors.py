"""How TensorFlow describes a tensor, shared by both checkpoint versions (`tf_checkpoint`): dtype codes
(`types.proto`), `TensorShapeProto`, `TensorSliceProto`, the values of a `TensorProto`, the OrderedCode key
a V2 bundle files a slice under, and the reassembly of a tensor saved in slices.

They live apart from the checkpoint formats because they describe one tensor, not where a checkpoint keeps
it; malformed input raises `protowire.Malformed` as the wire decoder does.
"""

from __future__ import annotations

import numpy as np

from weights_io.readers.protowire import Malformed, fields, need, packed_varints, signed

# tensorflow/core/framework/types.proto DataType -> numpy (little-endian; swapped for a big-endian bundle)
DTYPES = {1: "<f4", 2: "<f8", 3: "<i4", 4: "u1", 5: "<i2", 6: "i1", 9: "<i8", 10: "?", 14: "bfloat16",
          17: "<u2", 19: "<f2", 22: "<u4", 23: "<u8", 8: "<c8", 18: "<c16"}
_NOT_WEIGHTS = {7: "string", 20: "resource", 21: "variant"}


def not_weight(code):
    """"string", "resource" or "variant" for a dtype that holds no weights (its `_REF` form too), else None."""
    return _NOT_WEIGHTS.get(code - 100 if code > 100 else code)


def numpy_dtype(code):
    """The numpy dtype of a DTYPES code (little-endian)."""
    text = DTYPES[code]
    if text == "bfloat16":
        import ml_dtypes

        return np.dtype(ml_dtypes.bfloat16)
    return np.dtype(text)


def tensor_shape(buf, start, end):
    """TensorShapeProto -> tuple of dims (unknown rank or negative dims refused)."""
    dims = []
    for number, wire, value in fields(buf, start, end):
        if number == 2:
            need(wire, 2, "a shape dim")
            size = 0
            for n, w, v in fields(buf, *value):
                if n == 1:
                    need(w, 0, "a dim size")
                    size = signed(v)
            if size < 0:
                raise Malformed(f"a shape dimension of {size}")
            dims.append(size)
        elif number == 3 and value:
            raise Malformed("a shape of unknown rank")
    if len(dims) > 64:
        raise Malformed(f"a shape of rank {len(dims)}")
    return tuple(dims)


def tensor_slice(buf, start, end):
    """TensorSliceProto -> tuple of (start, length or -1 for the full extent)."""
    extents = []
    for number, wire, value in fields(buf, start, end):
        if number == 1:
            need(wire, 2, "a slice extent")
            first, length = 0, -1
            for n, w, v in fields(buf, *value):
                if n in (1, 2):
                    need(w, 0, "a slice extent")
                    if n == 1:
                        first = signed(v)
                    else:
                        length = signed(v)
            if first < 0 or length < -1:
                raise Malformed(f"a slice extent ({first}, {length})")
            extents.append((first, length))
    return tuple(extents)


def nbytes(shape, itemsize):
    """Bytes of an array of `shape`, in Python integers so a hostile shape cannot overflow the product."""
    count = itemsize
    for d in shape:
        count *= d
    return count


def _encode_num_increasing(value):
    raw = value.to_bytes((value.bit_length() + 7) // 8, "big") if value else b""
    return bytes([len(raw)]) + raw


def _encode_signed_increasing(value):
    """OrderedCode's WriteSignedNumIncreasing: a length header in the top bits, then big-endian bytes."""
    x = ~value if value < 0 else value
    if x < 64:
        return bytes([(0x80 ^ value) & 0xFF])
    length = min(10, x.bit_length() // 7 + 1)
    raw = bytearray((value & ((1 << 80) - 1)).to_bytes(10, "big")[10 - length:])
    first, second = _SIGNED_HEADERS[length]
    raw[0] ^= first
    raw[1] ^= second
    return bytes(raw)


_SIGNED_HEADERS = {2: (0x80, 0), 3: (0xC0, 0), 4: (0xE0, 0), 5: (0xF0, 0), 6: (0xF8, 0), 7: (0xFC, 0),
                   8: (0xFE, 0), 9: (0xFF, 0), 10: (0xFF, 0x80)}


def slice_key(name, extents):
    """TensorFlow's `EncodeTensorNameSlice(name, slice)` (OrderedCode)."""
    out = bytearray(_encode_num_increasing(0))
    out += name.encode().replace(b"\xff", b"\xff\x00").replace(b"\x00", b"\x00\xff") + b"\x00\x01"
    out += _encode_num_increasing(len(extents))
    for first, length in extents:
        out += _encode_signed_increasing(first) + _encode_signed_increasing(length)
    return bytes(out)


def region(extents, shape):
    """(numpy index, slice shape) of a slice's extents inside `shape`; refuses extents outside it."""
    if len(extents) != len(shape):
        raise Malformed(f"a slice of rank {len(extents)} for a tensor of rank {len(shape)}")
    index, sizes = [], []
    for (first, length), dim in zip(extents, shape):
        length = dim - first if length == -1 else length
        if first + length > dim or length < 0:
            raise Malformed(f"a slice extent ({first}, {length}) outside a dimension of {dim}")
        index.append(slice(first, first + length))
        sizes.append(length)
    return tuple(index), tuple(sizes)


class Assembler:
    """A full array filled slice by slice; every element covered exactly once (one whole slice: no copy)."""

    def __init__(self, shape, dtype):
        self.shape, self.dtype = tuple(shape), dtype
        self.array = self.covered = None

    def put(self, extents, values):
        index, sizes = region(extents, self.shape)
        count = int(np.prod(sizes, dtype=np.int64))
        if values.size != count:
            raise Malformed(f"a slice holds {values.size} values, its extents {sizes} need {count}")
        if self.array is not None and self.covered is None:
            raise Malformed("slices overlap")
        if self.array is None and sizes == self.shape:
            self.array = values.reshape(sizes)
            return
        if self.array is None:
            self.array = np.empty(self.shape, self.dtype)
            self.covered = np.zeros(self.shape, bool)
        if self.covered[index].any():
            raise Malformed("slices overlap")
        self.covered[index] = True
        self.array[index] = values.reshape(sizes)

    def done(self):
        if self.array is None:
            if 0 in self.shape:
                return np.zeros(self.shape, self.dtype)
            raise Malformed("the tensor has no data")
        if self.covered is not None and not self.covered.all():
            raise Malformed("the slices do not cover the whole tensor")
        return self.array


# TensorProto repeated fields: number -> (numpy dtype of one packed element, wire type when unpacked)
_VALUE_FIELDS = {5: ("<f4", 5), 6: ("<f8", 1), 7: ("varint", 0), 10: ("varint", 0), 11: ("varint", 0),
                 13: ("varint", 0), 16: ("varint", 0), 17: ("varint", 0)}


# TensorFlow packs repeated values; unpacked ones (legal protobuf) are accepted only a few at a time
_MAX_UNPACKED = 16


def tensor_values(buf, start, end, dtype, count):
    """The `count` values of a TensorProto as a flat array of `dtype`."""
    content, values = None, {}
    for number, wire, value in fields(buf, start, end):
        if number == 4:
            need(wire, 2, "tensor_content")
            content = value
        elif number in _VALUE_FIELDS:
            kind, single = _VALUE_FIELDS[number]
            chunks = values.setdefault(number, [])
            if wire == 2 and kind == "varint":
                chunks.append(packed_varints(buf, *value, count))
            elif wire == 2:
                begin, stop = value
                if (stop - begin) % np.dtype(kind).itemsize:
                    raise Malformed("a packed field of a partial element")
                if (stop - begin) // np.dtype(kind).itemsize not in (1, count):
                    raise Malformed(f"a packed field of {(stop - begin) // np.dtype(kind).itemsize} values where "
                                    f"the shape needs {count}")
                chunks.append(np.frombuffer(buf[begin:stop], kind))
            else:
                need(wire, single, "a TensorProto value")
                if sum(chunk.size for chunk in chunks) >= _MAX_UNPACKED:
                    raise Malformed(f"more than {_MAX_UNPACKED} unpacked values (TensorFlow packs them)")
                bits = {0: np.uint64, 1: "<u8", 5: "<u4"}[single]
                chunks.append(np.array([value], bits).view(np.uint64 if kind == "varint" else kind))
    if content is not None:
        begin, stop = content
        if stop - begin != count * dtype.itemsize:
            raise Malformed(f"tensor_content holds {stop - begin} bytes, {count} values need "
                            f"{count * dtype.itemsize}")
        return np.frombuffer(buf[begin:stop], dtype).copy()
    if len(values) > 1:
        raise Malformed("a TensorProto with values in several fields")
    if not values:
        if count:
            raise Malformed(f"a slice with no values for {count} elements")
        return np.zeros(0, dtype)
    (number, chunks), = values.items()
    if sum(chunk.size for chunk in chunks) > count + _MAX_UNPACKED:
        raise Malformed(f"more values than the shape's {count}")
    flat = np.concatenate(chunks) if len(chunks) > 1 else chunks[0]
    if flat.size == 1 and count > 1:
        flat = np.repeat(flat, count)  # TensorProto's rule: one value fills the tensor
    if flat.size != count:
        raise Malformed(f"a slice holds {flat.size} values, its shape needs {count}")
    if number == 13:  # half_val: float16 / bfloat16 bit patterns in int32s
        return (flat & 0xFFFF).astype("<u2").view(dtype)
    if flat.dtype == np.uint64 and dtype.kind in "iub":
        return (flat.view(np.int64).astype(dtype) if dtype.kind != "b" else flat != 0)
    return flat.astype(dtype)
