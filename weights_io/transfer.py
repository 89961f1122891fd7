"""Moving source arrays into a model's variables: one copy, in parallel, in place where the backend allows.

What a large import costs is memory traffic. This module keeps it to one pass:

* `destination` picks where each variable's new value is written (see
  there: on TensorFlow a tensor the variable then adopts, on PyTorch the
  variable's own storage);
* `copy_into` copies a source view (memory-mapped file, transposed OIHW kernel,
  Fortran-ordered MATLAB array) into it in cache-sized tiles on every core,
  checks that the values are finite on the way, and hands back the file
  pages it has read (`release_pages`), so the file's mapping does not stay
  resident.

Nothing here imports a framework: the backend paths use the module the
active Keras backend has already loaded.
"""

from __future__ import annotations

import ctypes
import math
import mmap
import os
import sys
from concurrent.futures import ThreadPoolExecutor

import keras
import numpy as np

ALIGNMENT = 128  # what JAX and TensorFlow need to use a numpy buffer without copying it
_TILE_ROW = 128  # destination elements per tile row of a transposing copy
_TILE_RUN_BYTES = 4096  # contiguous source bytes per tile row: a tile is ~512 KB on each side
_SLAB_BYTES = 1 << 23  # source bytes per job (and the unit pages are released in)
_SMALL_BYTES = 1 << 20  # below this a single numpy copy beats any scheduling
_WORKERS = max(1, min(8, os.cpu_count() or 1))


def aligned_empty(shape, dtype):
    """An uninitialised C-contiguous array whose data starts on an `ALIGNMENT`-byte boundary."""
    dtype = np.dtype(dtype)
    nbytes = int(math.prod(shape)) * dtype.itemsize
    raw = np.empty(nbytes + ALIGNMENT, np.uint8)
    start = -raw.ctypes.data % ALIGNMENT
    return raw[start:start + nbytes].view(dtype).reshape(shape)


class Reshaped:
    """A source view that takes `shape` when copied: reshaping a transposed or Fortran view now would copy it."""

    __slots__ = ("view", "shape")

    def __init__(self, view, shape):
        self.view, self.shape = view, tuple(shape)

    dtype = property(lambda self: self.view.dtype)
    size = property(lambda self: self.view.size)
    nbytes = property(lambda self: self.view.nbytes)
    ndim = property(lambda self: len(self.shape))

    def __array__(self, dtype=None, copy=None):
        return np.asarray(np.ascontiguousarray(self.view).reshape(self.shape), dtype=dtype)


def reshape_view(array, shape):
    """`array.reshape(shape)` when that is a view, else a `Reshaped` that reshapes on copy."""
    shape = tuple(shape)
    if array.shape == shape:
        return array
    try:
        return np.reshape(array, shape, copy=False)
    except ValueError:  # the layout needs a copy
        return Reshaped(array, shape)


# ------------------------------------------------------------- page release
def _mapping_of(array):
    """The `mmap.mmap` an array's memory lives in, or None (heap memory)."""
    base = array
    for _ in range(32):
        base = base.obj if isinstance(base, memoryview) else getattr(base, "base", None)
        if base is None or isinstance(base, mmap.mmap):
            return base
    return None


def release_pages(array):
    """Drops the file pages under a memory-mapped read-only `array` from this process's RSS.

    The pages stay in the page cache; touching them again maps them again, so
    this is safe on any range, even one another array shares. No-op for
    arrays that are not file mappings.
    """
    mapping = _mapping_of(array)
    if mapping is None or not hasattr(mmap, "MADV_DONTNEED") or array.size == 0:
        return
    try:
        probe = np.frombuffer(mapping, np.uint8)
        start_address, length = probe.ctypes.data, probe.size
        del probe
    except (BufferError, ValueError):
        return
    itemsize = array.itemsize
    lo = array.ctypes.data + sum(min(0, (n - 1) * s) for n, s in zip(array.shape, array.strides))
    hi = array.ctypes.data + sum(max(0, (n - 1) * s) for n, s in zip(array.shape, array.strides)) + itemsize
    begin = (lo - start_address) // mmap.PAGESIZE * mmap.PAGESIZE
    end = min(length, hi - start_address)
    if begin < 0 or end <= begin:
        return
    try:
        mapping.madvise(mmap.MADV_DONTNEED, begin, end - begin)
    except (OSError, ValueError):
        pass


# ------------------------------------------------------------------ copying
def _copy_plan(shape, strides, itemsize):
    """Splits a copy into jobs: [(region, [tile index, ...]), ...] over the destination.

    A transposing copy read in the destination's order touches a new source
    cache line per element. Tiling two axes (the destination's last, and the
    one that ends the source's contiguous run) keeps both sides of a tile in
    cache. Jobs cut the source's slowest axis into blocks and run in
    parallel; a job's `region` is the source part it reads, released when
    it ends.
    """
    ndim = len(shape)
    by_stride = sorted(range(ndim), key=lambda axis: abs(strides[axis]))
    job_axis, last = by_stride[-1], ndim - 1
    blocks = {}
    if not (by_stride[0] == last and strides[last] == itemsize):
        blocks[last] = min(shape[last], _TILE_ROW)
        run = 1
        for axis in by_stride:  # the source's contiguous run ends at the first axis that fills a page
            if axis == last:
                break
            if run * shape[axis] * itemsize >= _TILE_RUN_BYTES:
                blocks[axis] = max(1, _TILE_RUN_BYTES // (run * itemsize))
                break
            run *= shape[axis]
    if job_axis not in blocks:
        rest = itemsize * math.prod(blocks.get(axis, shape[axis]) for axis in range(ndim) if axis != job_axis)
        blocks[job_axis] = max(1, _SLAB_BYTES // max(1, rest))
    tiled = [axis for axis in blocks if axis != job_axis]
    jobs = []
    for start in range(0, shape[job_axis], blocks[job_axis]):
        region = [slice(None)] * ndim
        region[job_axis] = slice(start, start + blocks[job_axis])
        tiles = [list(region)]
        for axis in tiled:
            tiles = [t[:axis] + [slice(i, i + blocks[axis])] + t[axis + 1:]
                     for t in tiles for i in range(0, shape[axis], blocks[axis])]
        jobs.append((tuple(region), [tuple(t) for t in tiles]))
    return jobs


def _finite(block):
    """True if every value is finite: a float sum is NaN/Inf if an element is (or if it overflowed)."""
    if block.dtype.kind not in "fc" or block.size == 0:
        return True
    with np.errstate(over="ignore", invalid="ignore"):
        if np.isfinite(block.sum()):
            return True
    return bool(np.isfinite(block).all())


_pool = None


def _executor():
    global _pool
    if _pool is None:
        _pool = ThreadPoolExecutor(_WORKERS, thread_name_prefix="weights_io-copy")
    return _pool


def copy_into(destination, source, *, release=True):
    """Copies `source` (any strides, same shape) into C-contiguous `destination`; True if all finite.

    Args:
        destination: a writable C-contiguous array (see `aligned_empty`).
        source: an array of the same shape; its values are cast to the
            destination's dtype and byte order.
        release: drop the source's file pages from RSS as each part is
            copied (`release_pages`; a no-op for heap arrays).

    Returns:
        Whether every copied value is finite (integers always are).
    """
    if isinstance(source, Reshaped):
        destination, source = destination.reshape(source.view.shape), source.view
    if destination.shape != source.shape:
        raise ValueError(f"copy_into: shapes differ, {destination.shape} vs {source.shape}")
    if source.nbytes <= _SMALL_BYTES or source.ndim == 0:
        np.copyto(destination, source, casting="unsafe")
        if release:
            release_pages(source)
        return _finite(destination)

    def run(job):
        region, tiles = job
        for index in tiles:
            np.copyto(destination[index], source[index], casting="unsafe")
        if release:
            release_pages(source[region])
        return _finite(destination[region])

    jobs = _copy_plan(source.shape, source.strides, source.itemsize)
    return all(list(_executor().map(run, jobs)))


# ------------------------------------------------------------- destinations
def _backend_module(name):
    """The framework the active Keras backend runs on, when it is `name` (already imported by Keras)."""
    return sys.modules.get(name) if keras.backend.backend() == name else None


def _writable_alias(array):
    """A writable numpy array over `array`'s memory (DLPack imports come read-only); the owner must outlive it."""
    buffer = (ctypes.c_char * array.nbytes).from_address(array.ctypes.data)
    return np.frombuffer(buffer, dtype=array.dtype).reshape(array.shape)


def has_value(variable):
    """False for a Keras 3 variable created with its initialiser deferred (built in a
    `keras.StatelessScope(initialize_variables=False)`, as kerasnets' builders do when given
    weights): it has a shape but no storage until its first value."""
    return getattr(variable, "_value", True) is not None


def set_value(variable, value):
    """`variable.assign(value)`, or the variable's first value where it has none (`has_value`).

    The deferred variable then never runs its initialiser: its random draw would only be
    overwritten. Keras 3 has no public call for this; `_initialize` is what its own deferred
    initialisation ends in, on every backend.
    """
    if has_value(variable):
        variable.assign(value)
        return
    variable._initialize(variable._convert_to_tensor(value, dtype=variable.dtype))
    variable._initializer = None


def initialise_unset(variables):
    """Runs the initialisers of the variables that have no value yet (`has_value`): what a weight file
    did not set in a model built without initialiser draws (a Dropout's seed generator state, the
    layers a non-strict load skipped). Keras refuses this inside a stateless scope; the caller whose
    scope it is runs it on leaving."""
    for variable in variables:
        if not has_value(variable):
            variable._deferred_initialize()


def destination(variable, dtype):
    """Where `variable`'s new value is written: (array to fill, function that hands it over).

    * TensorFlow: a new tensor from TensorFlow's own allocator, filled through
      a numpy alias and then adopted by the variable. TensorFlow keeps freed
      buffers for reuse rather than returning them, so the variable's old
      buffer serves the next destination: the load needs about one extra
      array of memory and its writes land on pages already mapped.
    * PyTorch on the CPU: the variable's own storage, written in place.
    * Otherwise (JAX, a variable without a value yet, or anything unexpected):
      an aligned numpy array, set as usual (`set_value`).
    """
    shape = tuple(variable.shape)
    tf = _backend_module("tensorflow")
    if tf is not None and math.prod(shape) > 0:
        try:
            with tf.device("/CPU:0"):
                tensor = tf.raw_ops.Empty(shape=shape, dtype=tf.as_dtype(dtype), init=False)
            view = np.from_dlpack(tensor)
        except (AttributeError, BufferError, TypeError, ValueError, RuntimeError):
            view = None
        if view is not None and view.dtype == dtype and view.shape == shape and view.flags.c_contiguous:
            return _writable_alias(view), lambda: set_value(variable, tensor)
    torch = _backend_module("torch")
    if torch is not None and has_value(variable):
        value = getattr(variable, "value", None)
        if isinstance(value, torch.Tensor) and value.device.type == "cpu" and value.is_contiguous():
            array = value.detach().numpy()
            if array.dtype == dtype and array.shape == shape:
                return array, lambda: None
    array = aligned_empty(shape, dtype)
    return array, lambda: set_value(variable, array)
