"""The reader process: parses untrusted weight files under CPU and memory limits.

Run by `weights_io.sandbox` as ``python -I sandbox_worker.py`` and kept alive
between reads. It imports the readers (numpy; h5py when an HDF5 file comes;
never Keras or a framework), so libhdf5, our parsers or zipfile can spin, crash or
allocate without bound here while the caller's process only waits, with a
wall-clock watchdog.

Protocol, one request at a time: a JSON line on stdin
``{"path", "format", "mmap", "cpu_seconds", "memory_budget", "blob_path"}``; the answer on
stdout is an 8-byte little-endian length and a JSON header. An array that is a
view of the file (a mapped `.npy` payload, torch storage or contiguous HDF5
dataset) travels as a span (offset, dtype, shape, strides) that the caller maps
itself: no bytes cross. An array the reader had to decode (a compressed MATLAB
variable or HDF5 dataset) is written to `blob_path`, a file the caller created in
shared memory (/dev/shm), and travels as a blob (offset in that file, dtype,
shape): the caller maps it too. A pipe moved such bytes at about 120 MB/s here
(a 528 MB .mat took 4.5 s more than reading it in-process); shared memory costs
one write. Nothing is pickled, so a subverted worker cannot make the caller run
code.
"""

from __future__ import annotations

import importlib
import json
import os
import struct
import sys
import types

try:
    import resource
except ImportError:  # not on Windows: the watchdog alone
    resource = None

_ML_DTYPES = ("bfloat16", "float8_e4m3fn", "float8_e5m2")  # as weights_io.sandbox.ML_DTYPES
_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # .../weights_io


def _import_readers():
    """`weights_io.readers` without running `weights_io/__init__` (which imports Keras)."""
    package = types.ModuleType("weights_io")
    package.__path__ = [_ROOT]
    sys.modules["weights_io"] = package
    return importlib.import_module("weights_io.readers")


def _address_space():
    """This process's virtual size in bytes (what RLIMIT_AS counts), or 0 where /proc is missing."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError):
        return 0


def _limit(cpu_seconds, memory_budget):
    """CPU seconds and bytes this request may add to what the worker already uses."""
    if resource is None:
        return
    used = resource.getrusage(resource.RUSAGE_SELF)
    spent = int(used.ru_utime + used.ru_stime) + 1
    # the soft limit sends SIGXCPU, which ends the worker; the caller names the limit
    resource.setrlimit(resource.RLIMIT_CPU, (spent + int(cpu_seconds), resource.RLIM_INFINITY))
    resource.setrlimit(resource.RLIMIT_AS, (_address_space() + int(memory_budget), resource.RLIM_INFINITY))


def _file_offset(array):
    """Where in the file an array's first element lies, when its memory is a map of the file; else None.

    Readers map whole files (`mmap.mmap`) or parts of them (`np.memmap` with
    an offset, whose map starts at a page boundary): the owner just above the
    `mmap` says which file byte its first address holds.
    """
    import mmap

    import numpy as np

    address = array.__array_interface__["data"][0]
    base = array
    for _ in range(32):  # views of views, memoryviews of arrays: follow the owners down
        parent = base.obj if isinstance(base, memoryview) else getattr(base, "base", None)
        if isinstance(parent, mmap.mmap):
            if isinstance(base, np.memmap) and base.base is parent:
                return base.offset + address - base.__array_interface__["data"][0]
            return address - np.frombuffer(parent, np.uint8).__array_interface__["data"][0]
        if parent is None:
            return None
        base = parent
    return None


class _Encoder:
    """Turns a `WeightFile` into a JSON-able header; decoded arrays go to the blob file."""

    def __init__(self, path, blob_file):
        self.blob_file, self.blob_end = blob_file, 0
        self.size = os.path.getsize(path)

    def array(self, array):
        import numpy as np

        # ml_dtypes' bfloat16 / float8 (safetensors) have no dtype.str numpy can parse back: sent by name
        dtype = array.dtype.name if array.dtype.name in _ML_DTYPES else array.dtype.str
        if array.dtype.kind not in "biufc" and dtype not in _ML_DTYPES:
            return {"repr": repr(array)[:200]}
        offset = _file_offset(array)
        if offset is not None and 0 <= offset < self.size:
            return {"span": [offset, dtype, list(array.shape), list(array.strides)]}
        # memory order kept: a MATLAB array is Fortran-ordered, and reordering 500 MB here, one element
        # at a time, took seconds; the caller's tiled copy into the variables reorders it anyway
        data = array if array.flags.c_contiguous else array.T if array.flags.f_contiguous else None
        if data is None:
            data = array = np.ascontiguousarray(array)
        offset = self.blob_end
        if data.nbytes:
            self.blob_file.write(data.reshape(-1).view(np.uint8))  # bytes of any dtype (bfloat16 too)
        self.blob_end += data.nbytes
        return {"blob": [offset, dtype, list(array.shape), list(array.strides)]}

    def value(self, value, depth=0):
        import numpy as np

        if depth > 64:
            return {"repr": "(nested too deep)"}
        if isinstance(value, np.ndarray):
            return self.array(value)
        if isinstance(value, np.generic):
            return self.array(np.asarray(value))
        if isinstance(value, dict):
            return {"dict": [[str(k), self.value(v, depth + 1)] for k, v in value.items()]}
        if isinstance(value, (list, tuple)):
            kind = "tuple" if isinstance(value, tuple) else "list"
            return {kind: [self.value(v, depth + 1) for v in value]}
        if value is None or isinstance(value, (bool, int, float, str)):
            return {"plain": value}
        return {"repr": repr(value)[:200]}


def _answer(header):
    data = json.dumps(header).encode()
    out = sys.stdout.buffer
    out.write(struct.pack("<Q", len(data)) + data)
    out.flush()


def _serve(readers):
    errors = sys.modules["weights_io.errors"]
    sys.stdout.buffer.write(b"R")
    sys.stdout.buffer.flush()
    for line in sys.stdin:
        request = json.loads(line)
        path = request["path"]
        try:
            _limit(request["cpu_seconds"], request["memory_budget"])
            weight_file = readers.READERS[request["format"]](path, mmap=request["mmap"])
            with open(request["blob_path"], "wb") as blob_file:
                encoder = _Encoder(path, blob_file)
                tensors = [[layer, [[param, encoder.array(a)] for param, a in params.items()]]
                           for layer, params in weight_file.tensors.items()]
                header = {"tensors": tensors, "convention": weight_file.convention, "format": weight_file.format,
                          "metadata": encoder.value(weight_file.metadata)}
            _answer(header)
        except errors.UnsafePickleError as err:
            _answer({"error": "UnsafePickleError", "global": err.global_name, "message": str(err)})
        except errors.WeightFileError as err:
            _answer({"error": "WeightFileError", "message": str(err), "key": err.key, "path": err.path})
        except MemoryError:
            _answer({"error": "MemoryError", "message": "ran past the memory limit"})
        except Exception as err:  # noqa: BLE001 - any surprise becomes one clear error in the caller
            _answer({"error": "Exception", "message": f"{type(err).__name__}: {err}"[:2000]})


if __name__ == "__main__":
    _serve(_import_readers())
