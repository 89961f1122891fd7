"""MATLAB v5/v7 MAT-files, walked in Python over a map of the file (no scipy).

Why our own walker: scipy's reader copies every array out of the file (0.4 s
of a 528 MB VGG16 read, and the reader process then had to write the copy to
shared memory), and its C code trusted each element's type number, so a forged
file crashed it. Here an uncompressed numeric array is a view of the mapped
file, which the reader process hands over as a span (no byte is copied), and
every tag, length and dimension is checked against its container first.

The container (MathWorks, "MAT-File Format"): a 128-byte header whose last two
bytes, "IM" or "MI", give the byte order; then data elements, each an 8-byte
tag (type, byte count) and its data padded to 8 bytes, or a "small" element
(count in the first word's upper half, up to 4 bytes of data in the second).
A variable is an miMATRIX: array flags (class, complex, logical), dimensions,
name, then its class's parts: real (and imaginary) data for numbers and
chars, one miMATRIX per element for cells, field names then one miMATRIX per
element and field for structs and objects. MATLAB v7 deflates each variable
into an miCOMPRESSED element (zlib).

The tree it returns: scalar struct -> dict, struct array or cell -> list in
MATLAB's column-major order, char -> str, number -> ndarray of the stored type
in MATLAB's shape (Fortran order), logical -> bool. Sparse matrices, function
handles and opaque (classdef) objects become `Unsupported` placeholders, so a
file that carries one beside its weights still reads.
"""

from __future__ import annotations

import math
import struct
import zlib

import numpy as np

from weights_io.errors import WeightFileError

MI_INT8, MI_UINT32, MI_INT32, MI_MATRIX, MI_COMPRESSED = 1, 6, 5, 14, 15
_MI_NUMERIC = {1: "i1", 2: "u1", 3: "i2", 4: "u2", 5: "i4", 6: "u4", 7: "f4", 9: "f8", 12: "i8", 13: "u8"}
_MI_TEXT = {16: "utf-8", 17: "utf-16", 18: "utf-32"}  # + "-le"/"-be" from the file's byte order
MX_CELL, MX_STRUCT, MX_OBJECT, MX_CHAR, MX_SPARSE = 1, 2, 3, 4, 5
_MX_NUMERIC = range(6, 16)  # double, single, int8 ... uint64
_MX_NAMES = {MX_SPARSE: "sparse matrix", 16: "function handle", 17: "opaque object"}
_FLAG_COMPLEX, _FLAG_LOGICAL = 0x800, 0x200
MAX_DEPTH = 64


class Unsupported:
    """Stands for a MATLAB value that holds no weights (a sparse matrix, a function handle, ...)."""

    def __init__(self, kind):
        self.kind = kind

    def __repr__(self):
        return f"<MATLAB {self.kind}, not read>"


class _Walker:
    """Reads data elements from one buffer: the mapped file, or one inflated variable."""

    def __init__(self, buffer, order, path):
        self.buffer, self.order, self.path = buffer, order, path

    def fail(self, message):
        raise WeightFileError(message, path=self.path)

    def tag(self, pos, end):
        """(type, data start, byte count, next element's position) of the element at `pos`."""
        if pos + 8 > end:
            self.fail("MATLAB data ends inside an element's tag")
        first, second = struct.unpack_from(self.order + "II", self.buffer, pos)
        if first >> 16:  # small element: type and count in the first word, the data in the second
            mdtype, count = first & 0xFFFF, first >> 16
            if count > 4:
                self.fail(f"Malformed MATLAB small data element (type {mdtype}, {count} bytes)")
            return mdtype, pos + 4, count, pos + 8
        if second > end - pos - 8:
            self.fail(f"A MATLAB data element of {second} bytes runs past its container")
        return first, pos + 8, second, min(end, pos + 8 + second + (-second % 8))

    def part(self, pos, end, what, types):
        mdtype, start, count, pos = self.tag(pos, end)
        if mdtype not in types:
            self.fail(f"MATLAB {what} has data type {mdtype}, expected one of {sorted(types)}")
        return start, count, pos

    def numbers(self, mdtype, start, count, what):
        if mdtype not in _MI_NUMERIC:
            self.fail(f"Unknown MATLAB data type {mdtype} for {what} (a damaged or forged file)")
        dtype = np.dtype(self.order + _MI_NUMERIC[mdtype])
        if count % dtype.itemsize:
            self.fail(f"MATLAB {what}: {count} bytes is not a whole number of {dtype.name} values")
        if not count:
            return np.zeros(0, dtype)
        return np.frombuffer(self.buffer, dtype, count // dtype.itemsize, offset=start)

    def variable(self, start, count):
        """(name, value) of the top-level miMATRIX whose data spans `start` .. `start + count`."""
        return self.matrix(start, start + count, 0)

    def matrix(self, pos, end, depth):
        if depth > MAX_DEPTH:
            self.fail("MATLAB data nested too deep")
        if pos == end:  # an empty miMATRIX: MATLAB's [] in a cell or a struct field
            return "", np.zeros((0, 0))
        start, count, pos = self.part(pos, end, "array flags", {MI_UINT32})
        if count != 8:
            self.fail(f"MATLAB array flags of {count} bytes, expected 8")
        flags = struct.unpack_from(self.order + "I", self.buffer, start)[0]
        kind = flags & 0xFF
        start, count, pos = self.part(pos, end, "dimensions", {MI_INT32})
        dims = tuple(int(d) for d in self.numbers(MI_INT32, start, count, "dimensions"))
        if len(dims) < 2 or min(dims) < 0:
            self.fail(f"Impossible MATLAB dimensions {dims}")
        size = math.prod(dims)
        start, count, pos = self.part(pos, end, "array name", {MI_INT8, 2})
        name = bytes(self.buffer[start:start + count]).decode("latin-1")
        if kind in _MX_NUMERIC:
            return name, self.numeric(pos, end, dims, size, flags)
        if kind == MX_CHAR:
            return name, self.text(pos, end, dims, size)
        if kind == MX_CELL:
            return name, self.children(pos, end, size, depth, dims)
        if kind in (MX_STRUCT, MX_OBJECT):
            return name, self.struct(pos, end, size, depth, kind == MX_OBJECT)
        if kind in _MX_NAMES:
            return name, Unsupported(_MX_NAMES[kind])
        self.fail(f"Unknown MATLAB array class {kind} (a damaged or forged file)")

    def numeric(self, pos, end, dims, size, flags):
        parts = []
        for what in ("real part", "imaginary part")[: 2 if flags & _FLAG_COMPLEX else 1]:
            mdtype, start, count, pos = self.tag(pos, end)
            values = self.numbers(mdtype, start, count, what)
            if values.size != size:
                self.fail(f"MATLAB array of shape {dims} holds {values.size} values in its {what}")
            parts.append(values)
        array = parts[0] if len(parts) == 1 else parts[0] + 1j * parts[1]
        if not array.dtype.isnative:
            array = array.astype(array.dtype.newbyteorder("="))
        array = array.reshape(dims, order="F")
        return array.astype(bool) if flags & _FLAG_LOGICAL else array

    def text(self, pos, end, dims, size):
        mdtype, start, count, pos = self.tag(pos, end)
        data = bytes(self.buffer[start:start + count])
        if mdtype in _MI_TEXT:
            encoding = _MI_TEXT[mdtype] + ("" if mdtype == 16 else "-le" if self.order == "<" else "-be")
            text = data.decode(encoding, errors="replace")
        else:  # code units of the stored integer type: UTF-16 units in MATLAB's own files
            units = self.numbers(mdtype, start, count, "char data")
            text = "".join(map(chr, np.clip(units, 0, 0x10FFFF).tolist()))
        if len(text) != size:
            self.fail(f"MATLAB char array of {size} characters holds {len(text)}")
        if dims[0] <= 1 or len(dims) < 2:
            return text
        # a char matrix reads row by row (as scipy's strings do): the rows are its last axis
        grid = np.array(list(text), dtype=object).reshape(dims, order="F")
        return "".join("".join(row) for row in grid.reshape(-1, dims[-1], order="F"))

    def children(self, pos, end, size, depth, dims):
        """A cell's elements, in MATLAB's column-major order."""
        if size > (end - pos) // 8:  # every element has at least its tag
            self.fail(f"MATLAB cell of shape {dims} cannot fit its {size} elements")
        items = []
        for _ in range(size):
            mdtype, start, count, pos = self.tag(pos, end)
            if mdtype != MI_MATRIX:
                self.fail(f"A MATLAB cell element has data type {mdtype}, not miMATRIX")
            items.append(self.matrix(start, start + count, depth + 1)[1])
        return items

    def struct(self, pos, end, size, depth, is_object):
        if is_object:  # the class name, then the object's fields as a struct's
            _, _, pos = self.part(pos, end, "class name", {MI_INT8, 2})
        start, count, pos = self.part(pos, end, "field name length", {MI_INT32})
        width = int(self.numbers(MI_INT32, start, count, "field name length")[0]) if count == 4 else -1
        start, count, pos = self.part(pos, end, "field names", {MI_INT8, 2})
        if (width <= 0 and count) or (width > 0 and count % width):
            self.fail(f"MATLAB field names of {count} bytes in slots of {width}")
        raw = bytes(self.buffer[start:start + count])
        fields = [raw[i:i + width].split(b"\0", 1)[0].decode("latin-1") for i in range(0, count, max(width, 1))]
        values = self.children(pos, end, size * len(fields), depth, (size, len(fields)))
        items = [dict(zip(fields, values[i * len(fields):(i + 1) * len(fields)])) for i in range(size)]
        return items[0] if size == 1 else items


def read_v5_tree(buffer, path):
    """{variable name: value} of a MATLAB v5/v7 file held in `buffer` (the mapped file)."""
    if len(buffer) < 128:
        raise WeightFileError("MATLAB file shorter than its 128-byte header", path=path)
    order = {b"IM": "<", b"MI": ">"}.get(bytes(buffer[126:128]))
    if order is None:
        raise WeightFileError(f"MATLAB header has no byte-order mark ({bytes(buffer[126:128])!r})", path=path)
    walker, variables, pos = _Walker(buffer, order, path), {}, 128
    while pos < len(buffer):
        if len(buffer) - pos < 8:
            raise WeightFileError("MATLAB file ends inside a data element's tag", path=path)
        mdtype, count = struct.unpack_from(order + "II", buffer, pos)
        start, pos = pos + 8, pos + 8 + count
        if mdtype not in (MI_MATRIX, MI_COMPRESSED) or pos > len(buffer):
            raise WeightFileError(f"Malformed MATLAB variable (type {mdtype}, {count} bytes)", path=path)
        if mdtype == MI_COMPRESSED:
            inner = _Walker(_inflate(buffer[start:pos], path), order, path)
            mdtype, start, count, _ = inner.tag(0, len(inner.buffer))
            if mdtype != MI_MATRIX:
                raise WeightFileError(f"A compressed MATLAB variable holds data type {mdtype}", path=path)
            name, value = inner.variable(start, count)
        else:
            name, value = walker.variable(start, count)
        if name and not name.startswith("__"):  # "" or "__function_workspace__": MATLAB's own subsystem data
            variables[name] = value
    return variables


def _inflate(data, path):
    inflater = zlib.decompressobj()
    try:
        out = inflater.decompress(data)
    except zlib.error as err:
        raise WeightFileError(f"Corrupt compressed MATLAB variable ({err})", path=path) from err
    if not inflater.eof:
        raise WeightFileError("A compressed MATLAB variable ends before its zlib stream does", path=path)
    return out
