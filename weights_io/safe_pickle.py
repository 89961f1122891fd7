"""A restricted unpickler: pickled weight files are data, never code.

`pickle.load`, numpy's pickle-enabled loading and torch's loader call whatever
global a file names. `RestrictedUnpickler` resolves only the globals in an
allowlist (numpy array reconstruction, dtypes, OrderedDict, and whatever a
format reader adds, such as torch's tensor rebuild functions mapped to numpy
stand-ins) and raises `UnsafePickleError` naming any other global.

Given a memory map of the file (`mapping=`), it does not read the payload of
a large array into memory: the array becomes a read-only view of the file
(numpy's pickles store array bytes verbatim), and the caller copies it once,
straight into its destination.
"""

from __future__ import annotations

import collections
import io
import os
import pickle
import struct

import numpy as np

from weights_io.errors import UnsafePickleError, WeightFileError


def _numpy_core_module():
    try:
        from numpy._core import multiarray  # numpy >= 2
    except ImportError:  # pragma: no cover - numpy 1.x
        from numpy.core import multiarray
    return multiarray


_multiarray = _numpy_core_module()

def _latin1_encode(text, encoding="latin1"):
    """Protocol-2 pickles written by Python 3 spell bytes as _codecs.encode(str, 'latin1')."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise pickle.UnpicklingError(f"_codecs.encode only allowed for latin1 text, got {encoding!r}")
    return text.encode("latin1")


def _empty_reconstruct(subtype, shape, dtype):
    """numpy pickles an array as _reconstruct(ndarray, (0,), b'b') + BUILD(state).

    Only that empty placeholder is allowed: a forged shape here would make numpy
    allocate (and for object arrays fill) memory before any data is read.
    """
    if subtype is not np.ndarray or int(np.prod(shape)) != 0:
        raise pickle.UnpicklingError(f"unexpected array reconstruction {subtype!r} {shape!r}")
    return _multiarray._reconstruct(subtype, shape, dtype)


def _check_array_state(state, max_bytes):
    """Validates ndarray.__setstate__'s (version, shape, dtype, fortran, data) before numpy sees it."""
    if not isinstance(state, tuple) or len(state) not in (4, 5):
        raise pickle.UnpicklingError("malformed array state")
    shape, dtype, data = state[-4], state[-3], state[-1]
    if not isinstance(shape, tuple) or not all(isinstance(d, int) and d >= 0 for d in shape):
        raise pickle.UnpicklingError(f"malformed array shape {shape!r}")
    if not isinstance(dtype, np.dtype) or dtype.kind not in _ARRAY_KINDS:
        raise pickle.UnpicklingError(f"array of dtype {dtype!r}: weights are numbers")
    count = int(np.prod(shape, dtype=np.float64))
    if dtype.hasobject:
        if not isinstance(data, list) or len(data) != count:
            items = len(data) if isinstance(data, list) else "no"
            raise pickle.UnpicklingError(f"object array of shape {shape} with {items} items")
    else:
        nbytes = count * dtype.itemsize
        if max_bytes is not None and nbytes > max_bytes:
            raise pickle.UnpicklingError(f"array of {nbytes} bytes in a {max_bytes}-byte file")
        # Python-2 pickles carry the data as a latin1-decoded str: one char per byte.
        if not isinstance(data, (bytes, bytearray, str, FileSpan)) or len(data) != nbytes:
            size = len(data) if isinstance(data, (bytes, bytearray, str, FileSpan)) else "?"
            raise pickle.UnpicklingError(f"array data of {size} bytes for shape {shape} {dtype}")


# Numbers, and object arrays (the containers np.save wraps a dict in).
_ARRAY_KINDS = frozenset("biufcO")


def _check_dtype_state(dtype, state):
    """Validates np.dtype.__setstate__'s state: numpy crashes on forged ones (a timedelta with object flags).

    Only number and object dtypes, and only the state numpy itself pickles for
    them: the byte order may differ (big-endian files), nothing else.
    """
    if dtype.kind not in _ARRAY_KINDS:
        raise pickle.UnpicklingError(f"dtype {dtype!r} is neither a number type nor object")
    canonical = dtype.__reduce__()[2]
    if (not isinstance(state, tuple) or len(state) != len(canonical) or state[0] != canonical[0]
            or state[1] not in ("<", ">", "|", "=") or state[2:] != canonical[2:]):
        raise pickle.UnpicklingError(f"unexpected state {state!r:.120} for dtype {dtype!r}")


NUMPY_GLOBALS = {
    ("_codecs", "encode"): _latin1_encode,
    ("numpy.core.multiarray", "_reconstruct"): _empty_reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _empty_reconstruct,
    ("numpy.core.multiarray", "scalar"): _multiarray.scalar,
    ("numpy._core.multiarray", "scalar"): _multiarray.scalar,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("collections", "OrderedDict"): collections.OrderedDict,
}


# Payloads at least this large are mapped instead of read when a mapping is given.
LAZY_MIN_BYTES = 1 << 16


class FileSpan:
    """A large bytes payload left in the file: where it is."""

    __slots__ = ("offset", "length")

    def __init__(self, offset, length):
        self.offset, self.length = offset, length

    def __len__(self):
        return self.length

    def __repr__(self):
        return f"FileSpan(offset={self.offset}, length={self.length})"


class RestrictedUnpickler(pickle._Unpickler):
    """An Unpickler whose `find_class` answers only from `allowed`.

    Args:
        file: binary file object positioned at the pickle.
        allowed: mapping (module, name) -> object to return for that global.
        persistent_load: callable for persistent ids (torch storages), or None
            to refuse them.
        path: file path used in error messages.
        encoding: how Python-2 `str` objects decode ("latin1" for numpy data).
        max_bytes: no array may claim more bytes than this (the file's size).
        mapping: an `mmap.mmap` of `file`, to map large array payloads
            instead of reading them (see the module docstring).
    """

    # The pure-Python unpickler, so BUILD can be checked before numpy allocates anything.
    dispatch = dict(pickle._Unpickler.dispatch)

    def load_build(self):
        state, inst = self.stack[-1], self.stack[-2]
        if isinstance(inst, np.ndarray):
            _check_array_state(state, self._max_bytes)
            if isinstance(state[-1], FileSpan):
                self._build_mapped(inst, state)
                return
        elif isinstance(inst, np.dtype):
            _check_dtype_state(inst, state)
        elif not isinstance(inst, dict) and not hasattr(inst, "__setstate__"):
            raise pickle.UnpicklingError(f"BUILD on a {type(inst).__name__}")
        pickle._Unpickler.load_build(self)

    dispatch[pickle.BUILD[0]] = load_build

    def _build_mapped(self, placeholder, state):
        """BUILD of an array whose bytes stayed in the file: a read-only view of the mapping replaces it."""
        self.stack.pop()
        shape, dtype, fortran, span = state[-4:]
        array = np.frombuffer(self._mapping, dtype=dtype, count=int(np.prod(shape, dtype=np.int64)),
                              offset=span.offset).reshape(shape, order="F" if fortran else "C")
        self.stack[-1] = array
        for key, value in self.memo.items():  # later references (BINGET) get the array too
            if value is placeholder:
                self.memo[key] = array

    def _payload(self, length, text):
        """Reads a bytes payload, or maps it (a `FileSpan`) when large and outside any frame."""
        if self._mapping is not None and length >= LAZY_MIN_BYTES:
            frame = self._unframer.current_frame
            if frame is None or frame.tell() == len(frame.getbuffer()):
                self._unframer.current_frame = None
                offset = self._file.tell()
                if offset + length > len(self._mapping):
                    raise pickle.UnpicklingError(f"a {length}-byte payload runs past the end of the file")
                self._file.seek(length, io.SEEK_CUR)
                return FileSpan(offset, length)
        data = self.read(length)
        if len(data) != length:
            raise EOFError("pickle data was truncated")
        return self._decode_string(data) if text else data

    def load_binbytes(self):
        (length,) = struct.unpack("<I", self.read(4))
        self.append(self._payload(length, text=False))

    def load_binbytes8(self):
        (length,) = struct.unpack("<Q", self.read(8))
        self.append(self._payload(length, text=False))

    def load_binstring(self):  # Python 2's str: numpy data in Python-2 pickles
        (length,) = struct.unpack("<i", self.read(4))
        if length < 0:
            raise pickle.UnpicklingError("BINSTRING pickle has negative byte count")
        self.append(self._payload(length, text=True))

    dispatch[pickle.BINBYTES[0]] = load_binbytes
    dispatch[pickle.BINBYTES8[0]] = load_binbytes8
    dispatch[pickle.BINSTRING[0]] = load_binstring

    def __init__(self, file, *, allowed=None, persistent_load=None, path=None, encoding="latin1", max_bytes=None,
                 mapping=None):
        super().__init__(file, encoding=encoding)
        self._file, self._mapping = file, mapping
        self._max_bytes = max_bytes
        self._allowed = dict(NUMPY_GLOBALS if allowed is None else allowed)
        self._persistent = persistent_load
        self._path = path

    def find_class(self, module, name):
        try:
            return self._allowed[(module, name)]
        except KeyError:
            raise UnsafePickleError(module, name, path=self._path) from None

    def persistent_load(self, pid):
        if self._persistent is None:
            raise WeightFileError(f"Unexpected persistent id {pid!r} in pickle", path=self._path)
        return self._persistent(pid)


def safe_load(file, *, path=None, allowed=None, persistent_load=None, encoding="latin1", mapping=None):
    """Unpickles one object from `file` (bytes or a binary file) with the allowlist.

    With `mapping` (an `mmap.mmap` of the same file), large arrays come back
    as read-only views of it.
    """
    if isinstance(file, (bytes, bytearray, memoryview)):
        file = io.BytesIO(file)
    try:
        max_bytes = os.fstat(file.fileno()).st_size  # no array can hold more than the file does
    except (AttributeError, OSError, io.UnsupportedOperation):
        max_bytes = len(file.getbuffer()) if isinstance(file, io.BytesIO) else None
    unpickler = RestrictedUnpickler(
        file, allowed=allowed, persistent_load=persistent_load, path=path, encoding=encoding, max_bytes=max_bytes,
        mapping=mapping,
    )
    try:
        return unpickler.load()
    except (UnsafePickleError, WeightFileError):
        raise
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError,
            KeyError, MemoryError, OverflowError, UnicodeDecodeError, RecursionError, struct.error) as err:
        raise WeightFileError(f"Malformed pickle ({type(err).__name__}: {err})", path=path) from err
