"""Untrusted weight files are parsed in a separate process, under limits and a watchdog.

libhdf5 is not hardened against crafted files (a few changed bytes in a Keras
`.h5` make it follow corrupted heap references forever), and our own parsers,
zlib and zipfile are fed whatever the file holds. So
`read_weights` hands the parsing to a long-lived reader process
(`weights_io/readers/sandbox_worker.py`): CPU time and address space are
capped there (`resource.setrlimit`), a wall-clock watchdog here kills it when
a read runs too long, and a crash ends only that process. Whatever happens, the
caller gets a `WeightFileError` naming the file and the limit, and no model
has been touched.

The worker answers with arrays' places in the file (offset, dtype, shape,
strides), which this process checks against the file's size and maps itself,
and writes only what it had to decode (compressed or chunked datasets,
compressed MATLAB variables) to a blob file this process created in shared
memory, checked and mapped the same way. Nothing is pickled between the two.
The worker stays up between reads (about 0.1 s to start: numpy alone, h5py
with the first HDF5 file), so a read costs an exchange of messages, not a
process.
"""

from __future__ import annotations

import atexit
import json
import mmap
import os
import select
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np

from weights_io.errors import UnsafePickleError, WeightFileError

WORKER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "readers", "sandbox_worker.py")
# Time for a fresh worker to import numpy (and the readers) on a loaded machine.
STARTUP_SECONDS = 15.0
# A read may take BASE_SECONDS plus one second per BYTES_PER_SECOND bytes (20 MB), of wall
# and of CPU time, and BASE_MEMORY plus 4x the file of address space beyond the worker's own.
BASE_SECONDS = 10.0
BYTES_PER_SECOND = 20e6
BASE_MEMORY = 1 << 30


def limits(size):
    """(wall seconds, CPU seconds, memory budget in bytes) for reading a file of `size` bytes.

    Generous for real files (a 528 MB VGG16 `.h5` reads in well under a second,
    a compressed `.mat` of that size in a few), and far below "forever".
    """
    seconds = BASE_SECONDS + size / BYTES_PER_SECOND
    return seconds, seconds, BASE_MEMORY + 4 * size


class _Worker:
    """One reader process, started on first use and again after it died or was killed."""

    def __init__(self):
        self.proc = None
        self.owner = None
        self.lock = threading.Lock()

    def _start(self):
        env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
        self.proc = subprocess.Popen([sys.executable, "-I", WORKER], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, env=env)
        self.owner = os.getpid()
        try:  # the worker says "R" once its imports are done: start-up is not the file's time
            ready = self._read_exactly(1, time.monotonic() + STARTUP_SECONDS)
        except (TimeoutError, EOFError):
            ready = b""
        if ready != b"R":
            self.stop()
            raise WeightFileError("The weights reader process did not start (python -I "
                                  f"{WORKER} needs numpy)")

    def stop(self):
        proc, self.proc = self.proc, None
        if proc is not None and self.owner == os.getpid():
            proc.kill()
            proc.wait()

    def _read_exactly(self, count, deadline):
        out, fd = bytearray(), self.proc.stdout.fileno()
        while len(out) < count:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                raise TimeoutError
            chunk = os.read(fd, min(count - len(out), 1 << 22))
            if not chunk:
                raise EOFError
            out += chunk
        return out  # writable: arrays made from it are too

    def ask(self, request, wall_seconds):
        """Sends one request; returns the answer's header. Raises TimeoutError or EOFError (worker gone)."""
        if self.proc is None or self.owner != os.getpid() or self.proc.poll() is not None:
            self._start()
        deadline = time.monotonic() + wall_seconds
        try:
            self.proc.stdin.write((json.dumps(request) + "\n").encode())
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError):
            raise EOFError from None
        (length,) = struct.unpack("<Q", self._read_exactly(8, deadline))
        return json.loads(self._read_exactly(length, deadline))


_WORKER = _Worker()
atexit.register(_WORKER.stop)


def _died(returncode, cpu_seconds):
    """Why the worker ended, in words."""
    if returncode is None:
        return "the reader process stopped answering"
    if -returncode == getattr(signal, "SIGXCPU", None):
        return f"reading it used up the CPU-time limit of {cpu_seconds:.0f} s"
    if returncode < 0:
        name = signal.Signals(-returncode).name if -returncode in signal.Signals.__members__.values() else "?"
        return f"the reader process crashed on it (signal {-returncode}, {name})"
    return f"the reader process exited with status {returncode}"


def read_in_sandbox(path, fmt, *, mmap=False):
    """`READERS[fmt](path)` run in the reader process; the same `WeightFile`, or a `WeightFileError`."""
    from weights_io.core import WeightFile

    size = os.path.getsize(path)
    wall, cpu, memory = limits(size)
    descriptor, blob_path = tempfile.mkstemp(prefix="weights_io-", suffix=".blobs", dir=_shared_memory_dir())
    os.close(descriptor)
    request = {"path": os.path.abspath(path), "format": fmt, "mmap": bool(mmap), "cpu_seconds": cpu,
               "memory_budget": memory, "blob_path": blob_path}
    try:
        with _WORKER.lock:
            header = _ask(request, wall, fmt, path, cpu)
        error = header.get("error")
        if error:
            raise _error(error, header, fmt, path, memory)
        blobs = _map_blobs(blob_path)
    finally:
        os.unlink(blob_path)  # a mapping keeps its pages until the arrays over it are gone
    return WeightFile(tensors=_tensors(header["tensors"], blobs, path, mmap), convention=header["convention"],
                      format=header["format"], path=path, metadata=_value(header["metadata"], blobs, None, path))


def _shared_memory_dir():
    """/dev/shm where it is a writable folder (Linux: memory, never disk), else the temp folder."""
    return "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None


def _map_blobs(blob_path):
    """A private, writable map of the blob file (arrays made over it are writable, the file is not), or b''."""
    with open(blob_path, "rb") as f:
        if os.fstat(f.fileno()).st_size == 0:
            return b""
        return mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_COPY)


def _ask(request, wall, fmt, path, cpu):
    """The worker's answer to `request`, or a `WeightFileError` when it timed out or died."""
    try:
        return _WORKER.ask(request, wall)
    except TimeoutError:
        _WORKER.stop()
        raise WeightFileError(f"Reading this {fmt} file did not finish within the {wall:.0f} s wall-clock "
                              "limit (a damaged or crafted file can make its parser loop); the reader process "
                              "was stopped", path=path) from None
    except EOFError:
        proc = _WORKER.proc
        code = proc.wait() if proc is not None else None
        _WORKER.proc = None
        raise WeightFileError(f"Could not read this {fmt} file: {_died(code, cpu)}", path=path) from None


def _error(kind, header, fmt, path, memory):
    if kind == "UnsafePickleError":
        module, _, name = header["global"].rpartition(".")
        return UnsafePickleError(module, name, path=path)
    if kind == "WeightFileError":  # already worded, with its [file: ...] suffix
        err = WeightFileError.__new__(WeightFileError)
        Exception.__init__(err, header["message"])
        err.path, err.key = header.get("path", path), header.get("key")
        return err
    if kind == "MemoryError":
        return WeightFileError(f"Reading this {fmt} file needed more than its memory limit "
                               f"({memory / 2**20:.0f} MiB)", path=path)
    return WeightFileError(f"Could not read this {fmt} file ({header['message']})", path=path)


# ml_dtypes types (safetensors' BF16, F8_*) travel by name: their dtype.str ("<V2") says nothing.
ML_DTYPES = ("bfloat16", "float8_e4m3fn", "float8_e5m2")


def _numeric_dtype(text, path):
    if text in ML_DTYPES:
        import ml_dtypes

        return np.dtype(getattr(ml_dtypes, text))
    try:
        dtype = np.dtype(text)
    except TypeError:
        raise WeightFileError(f"The reader process named an unknown dtype {text!r}", path=path) from None
    if dtype.kind not in "biufc" or dtype.itemsize == 0:
        raise WeightFileError(f"The reader process named a non-numeric dtype {text!r}", path=path)
    return dtype


class _FileMap:
    """The caller's own read-only map of the file, opened on the first span."""

    def __init__(self, path):
        self.path, self.mapping = path, None

    def get(self):
        if self.mapping is None:
            try:
                with open(self.path, "rb") as f:
                    self.mapping = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
            except (OSError, ValueError) as err:
                raise WeightFileError(f"The file cannot be mapped ({err})", path=self.path) from err
        return self.mapping


def _array(spec, blobs, file_map, path):
    if "blob" in spec:  # decoded by the worker, in the blob file
        offset, dtype, shape, strides = spec["blob"]
        return _mapped(blobs, offset, _numeric_dtype(dtype, path), shape, strides, "its blob file", path)
    if "span" in spec:  # a view of the weight file itself
        offset, dtype, shape, strides = spec["span"]
        dtype = _numeric_dtype(dtype, path)
        if 0 in shape:
            return np.empty(shape, dtype)
        return _mapped(file_map.get(), offset, dtype, shape, strides, "the file", path)
    raise WeightFileError("The reader process sent an array it could not describe", path=path)


def _mapped(buffer, offset, dtype, shape, strides, where, path):
    """The array (shape, strides) at `offset` in `buffer`, once every byte it spans is checked to lie there."""
    if 0 in shape:
        return np.empty(shape, dtype)
    if any(n < 0 for n in shape) or len(strides) != len(shape):
        raise WeightFileError(f"The reader process described an impossible array in {where}", path=path)
    low = offset + sum(min(0, (n - 1) * s) for n, s in zip(shape, strides))
    high = offset + sum(max(0, (n - 1) * s) for n, s in zip(shape, strides)) + dtype.itemsize
    if low < 0 or high > len(buffer):  # the bytes must lie inside it
        raise WeightFileError(f"An array at bytes {low}..{high} lies outside {where} ({len(buffer)} bytes)",
                              path=path)
    return np.ndarray(tuple(shape), dtype, buffer=buffer, offset=offset, strides=tuple(strides))


def _tensors(rows, blobs, path, mmap):
    file_map = _FileMap(path)
    tensors = {}
    for layer, params in rows:
        group = tensors.setdefault(layer, {})
        for param, spec in params:
            array = _array(spec, blobs, file_map, path)
            group[param] = array
    return tensors


def _value(spec, blobs, file_map, path):
    if "plain" in spec:
        return spec["plain"]
    if "dict" in spec:
        return {k: _value(v, blobs, file_map, path) for k, v in spec["dict"]}
    if "list" in spec:
        return [_value(v, blobs, file_map, path) for v in spec["list"]]
    if "tuple" in spec:
        return tuple(_value(v, blobs, file_map, path) for v in spec["tuple"])
    if "repr" in spec:
        return spec["repr"]
    return _array(spec, blobs, file_map or _FileMap(path), path)
