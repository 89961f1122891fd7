"""The LevelDB-style table TensorFlow keeps a checkpoint's directory in (`core/lib/io/table*`), read without
TensorFlow: both checkpoint versions store their entries in one, so the table format lives apart from what
the entries mean (`tf_checkpoint`).

A 48-byte footer (metaindex and index block handles as varints, padding, the magic 0xdb4775248b80fb57), an
index block of handles to data blocks, blocks of prefix-compressed entries with a restart array, and a
5-byte trailer after each block (compression type, masked crc32c of block and type). TensorFlow writes
these tables uncompressed (`kNoCompression` in `tensor_bundle.cc` and `tensor_slice_writer.cc`); a snappy
block is refused. Every block's crc32c is verified, as TensorFlow's `ReadBlock` does.
"""

from __future__ import annotations

import struct

import numpy as np

from weights_io.readers.protowire import Malformed, varint

TABLE_MAGIC = 0xDB4775248B80FB57
FOOTER_BYTES = 48
_BLOCK_TRAILER = 5
_MAX_BLOCKS = 1 << 24


def masked_crc32c(data, extra=b""):
    """TensorFlow's `crc32c::Mask(crc32c::Value(data + extra))`; `data` any buffer (the C extension wants a
    read-only one without a release hook, which a numpy view is)."""
    import google_crc32c

    crc = google_crc32c.value(np.frombuffer(data, np.uint8)) if len(data) else 0
    if extra:
        crc = google_crc32c.extend(crc, extra)
    return ((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + 0xA282EAD8) & 0xFFFFFFFF


def _block_handle(buf, pos, end):
    offset, pos = varint(buf, pos, end)
    size, pos = varint(buf, pos, end)
    return (offset, size), pos


def _read_block(data, handle):
    """The bytes of the block at `handle`, its trailer's type and crc32c checked."""
    offset, size = handle
    if offset + size + _BLOCK_TRAILER > len(data) - FOOTER_BYTES:
        raise Malformed(f"a block at {offset}..{offset + size} lies past the table's end ({len(data)} bytes)")
    block = memoryview(data)[offset:offset + size]
    kind = data[offset + size]
    (stored,) = struct.unpack_from("<I", data, offset + size + 1)
    if stored != masked_crc32c(block, bytes([kind])):
        raise Malformed(f"the block at byte {offset} fails its crc32c check")
    if kind == 1:
        raise Malformed("a snappy-compressed table block (TensorFlow writes these tables uncompressed)")
    if kind != 0:
        raise Malformed(f"a block of unknown compression type {kind}")
    return block


def _block_entries(block):
    """Yields (key, value) of one block: prefix-compressed keys, a restart array at the end."""
    if len(block) < 4:
        raise Malformed("a table block shorter than its restart count")
    (restarts,) = struct.unpack_from("<I", block, len(block) - 4)
    if restarts > (len(block) - 4) // 4:
        raise Malformed(f"a block claims {restarts} restart points")
    end = len(block) - 4 - 4 * restarts
    pos, key = 0, b""
    while pos < end:
        shared, pos = varint(block, pos, end)
        unshared, pos = varint(block, pos, end)
        length, pos = varint(block, pos, end)
        if shared > len(key) or unshared + length > end - pos:
            raise Malformed("a table entry runs past its block")
        key = key[:shared] + bytes(block[pos:pos + unshared])
        pos += unshared
        yield key, block[pos:pos + length]
        pos += length


def _magic(last8):
    return struct.unpack("<Q", last8)[0] == TABLE_MAGIC


def is_table(data):
    """True when `data` (bytes or a map) ends with a table footer."""
    return len(data) >= FOOTER_BYTES and _magic(data[len(data) - 8:])


def file_is_table(f):
    """True when the open binary file `f` ends with a table footer; reads only its last 8 bytes."""
    size = f.seek(0, 2)
    if size < FOOTER_BYTES:
        return False
    f.seek(size - 8)
    return _magic(f.read(8))


def table_entries(data):
    """Yields (key, value memoryview) of every entry of the table in `data`, in key order."""
    if not is_table(data):
        raise Malformed(f"no table footer (magic 0x{TABLE_MAGIC:x}) at the end of the file")
    footer_start = len(data) - FOOTER_BYTES
    _, pos = _block_handle(data, footer_start, footer_start + 40)  # the metaindex: empty in TensorFlow's tables
    index, _ = _block_handle(data, pos, footer_start + 40)
    seen = set()
    previous = None
    for _, value in _block_entries(_read_block(data, index)):
        handle, _ = _block_handle(value, 0, len(value))
        if handle in seen or len(seen) > _MAX_BLOCKS:
            raise Malformed(f"the index names the block at byte {handle[0]} twice")
        seen.add(handle)
        for key, entry in _block_entries(_read_block(data, handle)):
            if previous is not None and key <= previous:
                raise Malformed("table keys out of order")
            previous = key
            yield key, entry
