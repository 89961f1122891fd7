"""The protobuf wire format, decoded by hand: TensorFlow checkpoints store protobuf messages and we read them
without `protobuf` or TensorFlow, so every length and varint is checked against what is left of the buffer.

Only the wire layer lives here (varints, fields, packed varints); what a field means belongs to the format's
reader (`tf_checkpoint`). A malformed input raises `Malformed`, which the reader turns into a
`WeightFileError` naming the file and key.
"""

from __future__ import annotations

import numpy as np


class Malformed(Exception):
    """Raised by the low-level decoders; the reader turns it into a WeightFileError with the file and key."""


def varint(buf, pos, end):
    """(value, next position) of the varint at `pos`; at most 10 bytes, never past `end`."""
    result = shift = 0
    for i in range(10):
        if pos + i >= end:
            raise Malformed("a varint runs past the end of its data")
        byte = buf[pos + i]
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result & 0xFFFFFFFFFFFFFFFF, pos + i + 1
        shift += 7
    raise Malformed("a varint is longer than 10 bytes")


def fields(buf, start=0, end=None):
    """Yields (field number, wire type, value) of a message; value an int, or (begin, end) for wire type 2."""
    end = len(buf) if end is None else end
    pos = start
    while pos < end:
        key, pos = varint(buf, pos, end)
        number, wire = key >> 3, key & 7
        if number == 0:
            raise Malformed("a protobuf field number 0")
        if wire == 0:
            value, pos = varint(buf, pos, end)
        elif wire == 1:
            if pos + 8 > end:
                raise Malformed("a 64-bit field runs past the end of its message")
            value, pos = int.from_bytes(buf[pos:pos + 8], "little"), pos + 8
        elif wire == 5:
            if pos + 4 > end:
                raise Malformed("a 32-bit field runs past the end of its message")
            value, pos = int.from_bytes(buf[pos:pos + 4], "little"), pos + 4
        elif wire == 2:
            length, pos = varint(buf, pos, end)
            if length > end - pos:
                raise Malformed(f"a field of {length} bytes runs past the end of its message")
            value, pos = (pos, pos + length), pos + length
        else:
            raise Malformed(f"unsupported protobuf wire type {wire}")
        yield number, wire, value


def signed(value):
    """An int64 field's value from its unsigned 64-bit varint."""
    return value - (1 << 64) if value >= 1 << 63 else value


def need(wire, expected, what):
    """Refuses a field whose wire type is not the one its schema gives it."""
    if wire != expected:
        raise Malformed(f"{what} has wire type {wire}, expected {expected}")


def text(buf, span):
    """A string field's (begin, end) span as text; undecodable bytes replaced."""
    return bytes(buf[span[0]:span[1]]).decode("utf-8", "replace")


def packed_varints(buf, start, end, count):
    """The packed varints of buf[start:end] as uint64, vectorised; refused unless there are 1 or `count`."""
    raw = np.frombuffer(buf, np.uint8, count=end - start, offset=start)
    if not raw.size:
        return np.zeros(0, np.uint64)
    stops = raw < 0x80
    found = int(np.count_nonzero(stops))
    if found not in (1, count) or not stops[-1]:
        raise Malformed(f"a packed field of {found} values (or a cut varint) where the shape needs {count}")
    ends = np.flatnonzero(stops)
    starts = np.concatenate(([0], ends[:-1] + 1))
    if int((ends - starts).max()) >= 10:
        raise Malformed("a varint is longer than 10 bytes")
    out = np.zeros(found, np.uint64)
    for k in range(10):
        live = starts + k <= ends
        if not live.any():
            break
        out[live] |= (raw[starts[live] + k] & 0x7F).astype(np.uint64) << np.uint64(7 * k)
    return out
