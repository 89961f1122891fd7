"""A restricted unpickler: pickled weight files are data, never code.

`pickle.load`, numpy's pickle-enabled loading and torch's loader call whatever
global a file names. `RestrictedUnpickler` resolves only the globals in an
allowlist (numpy array reconstruction, dtypes, OrderedDict, and whatever a
format reader adds, such as torch's tensor rebuild functions mapped to numpy
stand-ins) and raises `UnsafePickleError` naming any other global.
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
    if not isinstance(dtype, np.dtype):
        raise pickle.UnpicklingError("malformed array dtype")
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
        if not isinstance(data, (bytes, bytearray, str)) or len(data) != nbytes:
            size = len(data) if isinstance(data, (bytes, bytearray, str)) else "?"
            raise pickle.UnpicklingError(f"array data of {size} bytes for shape {shape} {dtype}")


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


class RestrictedUnpickler(pickle._Unpickler):
    """An Unpickler whose `find_class` answers only from `allowed`.

    Args:
        file: binary file object positioned at the pickle.
        allowed: mapping (module, name) -> object to return for that global.
        persistent_load: callable for persistent ids (torch storages), or None
            to refuse them.
        path: file path used in error messages.
        encoding: how Python-2 `str` objects decode ("latin1" for numpy data).
    """

    # The pure-Python unpickler, so BUILD can be checked before numpy allocates anything.
    dispatch = dict(pickle._Unpickler.dispatch)

    def load_build(self):
        state, inst = self.stack[-1], self.stack[-2]
        if isinstance(inst, np.ndarray):
            _check_array_state(state, self._max_bytes)
        elif not isinstance(inst, dict) and not hasattr(inst, "__setstate__"):
            raise pickle.UnpicklingError(f"BUILD on a {type(inst).__name__}")
        pickle._Unpickler.load_build(self)

    dispatch[pickle.BUILD[0]] = load_build

    def __init__(self, file, *, allowed=None, persistent_load=None, path=None, encoding="latin1", max_bytes=None):
        super().__init__(file, encoding=encoding)
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


def safe_load(file, *, path=None, allowed=None, persistent_load=None, encoding="latin1"):
    """Unpickles one object from `file` (bytes or a binary file) with the allowlist."""
    if isinstance(file, (bytes, bytearray, memoryview)):
        file = io.BytesIO(file)
    try:
        max_bytes = os.fstat(file.fileno()).st_size  # no array can hold more than the file does
    except (AttributeError, OSError, io.UnsupportedOperation):
        max_bytes = len(file.getbuffer()) if isinstance(file, io.BytesIO) else None
    unpickler = RestrictedUnpickler(
        file, allowed=allowed, persistent_load=persistent_load, path=path, encoding=encoding, max_bytes=max_bytes
    )
    try:
        return unpickler.load()
    except (UnsafePickleError, WeightFileError):
        raise
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError,
            KeyError, MemoryError, OverflowError, UnicodeDecodeError, RecursionError, struct.error) as err:
        raise WeightFileError(f"Malformed pickle ({type(err).__name__}: {err})", path=path) from err
