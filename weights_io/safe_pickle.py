"""A restricted unpickler: pickled weight files are data, never code.

`pickle.load`, `np.load(allow_pickle=True)` and `torch.load` call whatever
global a file names. `RestrictedUnpickler` resolves only the globals in an
allowlist (numpy array reconstruction, dtypes, OrderedDict, and whatever a
format reader adds, such as torch's tensor rebuild functions mapped to numpy
stand-ins) and raises `UnsafePickleError` naming any other global.
"""

from __future__ import annotations

import collections
import io
import pickle

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


NUMPY_GLOBALS = {
    ("_codecs", "encode"): _latin1_encode,
    ("numpy.core.multiarray", "_reconstruct"): _multiarray._reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _multiarray._reconstruct,
    ("numpy.core.multiarray", "scalar"): _multiarray.scalar,
    ("numpy._core.multiarray", "scalar"): _multiarray.scalar,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("collections", "OrderedDict"): collections.OrderedDict,
}


class RestrictedUnpickler(pickle.Unpickler):
    """An Unpickler whose `find_class` answers only from `allowed`.

    Args:
        file: binary file object positioned at the pickle.
        allowed: mapping (module, name) -> object to return for that global.
        persistent_load: callable for persistent ids (torch storages), or None
            to refuse them.
        path: file path used in error messages.
        encoding: how Python-2 `str` objects decode ("latin1" for numpy data).
    """

    def __init__(self, file, *, allowed=None, persistent_load=None, path=None, encoding="latin1"):
        super().__init__(file, encoding=encoding)
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
    unpickler = RestrictedUnpickler(
        file, allowed=allowed, persistent_load=persistent_load, path=path, encoding=encoding
    )
    try:
        return unpickler.load()
    except (UnsafePickleError, WeightFileError):
        raise
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError,
            KeyError, MemoryError, OverflowError, UnicodeDecodeError, RecursionError) as err:
        raise WeightFileError(f"Malformed pickle ({type(err).__name__}: {err})", path=path) from err
