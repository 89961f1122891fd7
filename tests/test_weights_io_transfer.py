"""The one-pass import path: tiled copies, finiteness, page release, mapped readers, backend hand-over.

Every copy is checked against numpy's own `np.ascontiguousarray` of the same
view; mapped reads against the same file read with copies (`mmap=False`).
"""

from __future__ import annotations

import io
import mmap
import pickle
import struct

import keras
import numpy as np
import pytest

from tests.backends.weights_worker import identity_layout, tiny_model
from weights_io import load_weights, read_weights, save_torch_state_dict
from weights_io.errors import WeightFileError
from weights_io.safe_pickle import LAZY_MIN_BYTES, safe_load
from weights_io.transfer import (
    Reshaped,
    _copy_plan,
    _mapping_of,
    aligned_empty,
    copy_into,
    release_pages,
    reshape_view,
)

RNG = np.random.default_rng(0)
FC = RNG.standard_normal((520, 3 * 7 * 7 * 10), dtype=np.float32)  # big enough to be tiled (> 1 MB)
CONV = RNG.standard_normal((96, 80, 3, 3), dtype=np.float32)

VIEWS = {
    "contiguous": lambda: FC,
    "torch Linear after a CHW map -> HWC rows": lambda: FC.reshape(520, 30, 7, 7).transpose(2, 3, 1, 0),
    "torch conv OIHW -> HWIO": lambda: np.ascontiguousarray(np.tile(CONV, (4, 4, 1, 1))).transpose(2, 3, 1, 0),
    "Linear (out, in) -> (in, out)": lambda: FC.T,
    "MATLAB Fortran order": lambda: np.asfortranarray(FC.reshape(520, 30, 7, 7)),
    "big-endian": lambda: FC.astype(">f4"),
    "float16 source": lambda: FC.astype(np.float16),
    "flipped input channels": lambda: FC.reshape(520, 30, 7, 7)[:, ::-1],
    "odd sizes, three axes": lambda: RNG.standard_normal((131, 77, 53)).transpose(2, 0, 1),
    "small": lambda: CONV[:4].transpose(2, 3, 1, 0),
    "scalar": lambda: np.array(3.5, np.float32),
}


@pytest.mark.parametrize("name", list(VIEWS))
def test_copy_into_equals_numpy(name):
    source = VIEWS[name]()
    destination = aligned_empty(source.shape, np.float32)
    assert copy_into(destination, source) is True
    np.testing.assert_array_equal(destination, np.ascontiguousarray(source, dtype=np.float32))


def test_large_copies_are_split_into_jobs_that_cover_every_element():
    view = FC.reshape(520, 30, 7, 7).transpose(2, 3, 1, 0)
    jobs = _copy_plan(view.shape, view.strides, view.itemsize)
    assert len(jobs) > 1
    covered = np.zeros(view.shape, np.int32)
    for _, tiles in jobs:
        for index in tiles:
            covered[index] += 1
    assert (covered == 1).all()  # each element copied exactly once


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("where", [(0, 0), (311, 1234), (519, 1469)])
def test_non_finite_values_are_found_anywhere(bad, where):
    source = FC.copy()
    source[where] = bad
    view = source.reshape(520, 30, 7, 7).transpose(2, 3, 1, 0)
    destination = aligned_empty(view.shape, np.float32)
    assert copy_into(destination, view) is False
    assert np.array_equal(destination, np.ascontiguousarray(view), equal_nan=True)


def test_a_sum_that_overflows_is_not_mistaken_for_inf():
    source = np.full((600, 600), 3e38, np.float32)  # every value finite, their float32 sum is inf
    assert copy_into(aligned_empty(source.shape, np.float32), source) is True


def test_integer_arrays_copy_and_count_as_finite():
    source = RNG.integers(-5, 5, (700, 700)).T
    destination = aligned_empty(source.shape, np.int64)
    assert copy_into(destination, source) is True
    np.testing.assert_array_equal(destination, source)


def test_aligned_empty_is_aligned_and_c_contiguous():
    for shape in [(3,), (5, 7), (1, 1, 3, 9)]:
        array = aligned_empty(shape, np.float32)
        assert array.ctypes.data % 128 == 0 and array.flags.c_contiguous and array.shape == shape


def test_reshape_view_defers_only_what_would_copy():
    contiguous = np.arange(24.0).reshape(2, 3, 4)
    assert isinstance(reshape_view(contiguous, (6, 4)), np.ndarray)
    fortran = np.asfortranarray(contiguous)
    lazy = reshape_view(fortran, (6, 4))
    assert isinstance(lazy, Reshaped) and lazy.shape == (6, 4)
    destination = aligned_empty((6, 4), np.float64)
    copy_into(destination, lazy)
    np.testing.assert_array_equal(destination, fortran.reshape(6, 4))
    np.testing.assert_array_equal(np.asarray(lazy), fortran.reshape(6, 4))


def _rss_kb():
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))


def test_release_pages_gives_back_the_mapped_file_and_keeps_it_readable(tmp_path):
    path = tmp_path / "big.bin"
    values = RNG.standard_normal(16 << 20 >> 2, dtype=np.float32)  # 16 MiB
    values.tofile(path)
    with open(path, "rb") as f:
        mapping = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    mapped = np.frombuffer(mapping, np.float32)
    assert _mapping_of(mapped) is mapping
    float(mapped.sum())  # touch every page
    before = _rss_kb()
    release_pages(mapped)
    assert before - _rss_kb() > 12 << 10, "less than 12 of the 16 MiB left RSS"
    np.testing.assert_array_equal(mapped, values)  # pages come back from the file


# ------------------------------------------------------------ mapped readers
def _assert_same_files(mapped, copied):
    assert mapped.format == copied.format and mapped.convention == copied.convention
    flat_mapped, flat_copied = mapped.flat(), copied.flat()
    assert list(flat_mapped) == list(flat_copied)
    for key in flat_copied:
        np.testing.assert_array_equal(flat_mapped[key], flat_copied[key], err_msg=key)
        assert flat_mapped[key].dtype.newbyteorder("=") == flat_copied[key].dtype.newbyteorder("=")


def _big(name):
    return {"weights": RNG.standard_normal((64, 32, 3, 3), dtype=np.float32),
            "biases": RNG.standard_normal(32, dtype=np.float32), "name": name}


@pytest.mark.parametrize("protocol", [2, 3, 4])
def test_npy_mapped_equals_copied(tmp_path, protocol):
    params = {f"conv{i}": [_big(i)["weights"], _big(i)["biases"]] for i in range(3)}
    holder = np.empty((), dtype=object)
    holder[()] = params
    path = tmp_path / "w.npy"
    with open(path, "wb") as f:
        np.lib.format.write_array_header_1_0(f, {"descr": "|O", "fortran_order": False, "shape": ()})
        pickle.dump(holder, f, protocol=protocol)
    mapped, copied = read_weights(path, mmap=True), read_weights(path)
    _assert_same_files(mapped, copied)
    kernel = mapped.tensors["conv1"]["weights"]
    assert kernel.nbytes >= LAZY_MIN_BYTES
    if protocol >= 3:  # protocol 2 from Python 3 spells bytes as text: read, not mapped
        assert _mapping_of(kernel) is not None and not kernel.flags.writeable
    _assert_independent_of_the_file(copied.tensors["conv1"]["weights"], path)


def _assert_independent_of_the_file(array, path):
    """A read (not mapped) array keeps its values when the file's bytes change under it. (Decoded arrays
    may live in the reader sandbox's shared-memory blob file: a private mapping, not the weight file.)"""
    before = np.array(array)
    data = path.read_bytes()
    path.write_bytes(bytes(len(data)))
    try:
        np.testing.assert_array_equal(array, before)
    finally:
        path.write_bytes(data)


def test_python2_pickle_maps_its_binstring_payloads(fixtures_dir):
    path = fixtures_dir / "npy" / "det2.npy"  # a real Python-2 .npy: array bytes as BINSTRING
    mapped, copied = read_weights(path, mmap=True), read_weights(path)
    _assert_same_files(mapped, copied)
    largest = max(mapped.flat().values(), key=lambda a: a.nbytes)
    assert largest.nbytes >= LAZY_MIN_BYTES and _mapping_of(largest) is not None


def _pickled_array_header(array):
    """Protocol-3 opcodes that rebuild `array` up to (not including) its data payload."""
    body = pickle.dumps(array, protocol=3)
    data = array.tobytes()
    at = body.index(data)
    return body[: at - 5], body[at - 5: at], body[at + len(data):]  # opcode + length, then the rest


def test_a_payload_running_past_the_end_of_the_file_is_refused(tmp_path):
    array = RNG.integers(0, 255, LAZY_MIN_BYTES, dtype=np.uint8)
    head, opcode, tail = _pickled_array_header(array)
    assert opcode[:1] == b"B"  # BINBYTES, 4-byte length
    path = tmp_path / "short.pkl"
    path.write_bytes(head + opcode + bytes(100))  # the promised bytes are not there
    with open(path, "rb") as f:
        mapping = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        with pytest.raises(WeightFileError, match="past the end"):
            safe_load(f, path=str(path), mapping=mapping)


def test_a_mapped_array_shared_in_the_pickle_is_one_array(tmp_path):
    array = RNG.standard_normal(LAZY_MIN_BYTES, dtype=np.float32)
    path = tmp_path / "shared.pkl"
    path.write_bytes(pickle.dumps({"a": array, "b": array}, protocol=3))  # "b" is a memo reference
    with open(path, "rb") as f:
        mapping = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        loaded = safe_load(f, path=str(path), mapping=mapping)
    assert loaded["a"] is loaded["b"] and _mapping_of(loaded["a"]) is mapping
    np.testing.assert_array_equal(loaded["a"], array)


def test_torch_zip_and_legacy_mapped_equal_copied(tmp_path):
    from tests.torch_files import example, legacy_bytes

    model = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Conv2D(64, 3, name="conv"),
                              keras.layers.Flatten(), keras.layers.Dense(300, name="fc")])
    path = tmp_path / "m.pth"
    save_torch_state_dict(model, path, layout=identity_layout())
    _assert_same_files(read_weights(path, mmap=True), read_weights(path))
    tensors, storages, expected = example()  # views with offsets and strides, float16, int64
    legacy = tmp_path / "legacy.pth"
    legacy.write_bytes(legacy_bytes(tensors, storages))
    mapped = read_weights(legacy, mmap=True)
    _assert_same_files(mapped, read_weights(legacy))
    for key, value in expected.items():
        np.testing.assert_array_equal(mapped.flat()[key], value, err_msg=key)
    fc = read_weights(path, mmap=True).tensors["fc"]["weight"]
    assert _mapping_of(fc) is not None and not fc.flags.writeable


@pytest.mark.parametrize("suffix", [".weights.h5", ".h5"])
def test_keras_h5_mapped_equals_copied(tmp_path, suffix):
    model = keras.Sequential([keras.Input((16,)), keras.layers.Dense(600, name="a"), keras.layers.Dense(7, name="b")])
    path = tmp_path / f"m{suffix}"
    model.save_weights(path) if suffix == ".weights.h5" else model.save(path)
    mapped = read_weights(path, mmap=True)
    _assert_same_files(mapped, read_weights(path))
    kernel = next(a for a in mapped.flat().values() if a.shape == (16, 600))
    assert _mapping_of(kernel) is not None


def test_compressed_h5_datasets_are_read_not_mapped(tmp_path):
    import h5py

    path = tmp_path / "gz.weights.h5"
    kernel = RNG.standard_normal((16, 600), dtype=np.float32)
    with h5py.File(path, "w") as f:
        group = f.create_group("layers/a/vars")
        group.attrs["name"] = "a"
        group.create_dataset("0", data=kernel, compression="gzip")
        group.create_dataset("1", data=np.zeros(600, np.float32))
    mapped = read_weights(path, mmap=True)
    np.testing.assert_array_equal(mapped.tensors["a"]["0"], kernel)
    _assert_independent_of_the_file(mapped.tensors["a"]["0"], path)


# ------------------------------------------------------------- end to end
def test_loading_through_every_path_gives_the_saved_weights(tmp_path):
    """Keras -> torch file -> our loader (mapped, tiled, handed over) restores every weight exactly."""
    model = tiny_model()  # its CHW-flatten Dense kernel (12 MB) goes through the tiled copy
    for variable in model.weights:
        variable.assign(RNG.standard_normal(variable.shape).astype("float32"))
    expected = [np.array(v) for v in model.weights]
    layout = identity_layout()
    path = tmp_path / "e2e.pth"
    save_torch_state_dict(model, path, layout=layout)
    for variable in model.weights:
        variable.assign(np.zeros(variable.shape, "float32"))
    report = load_weights(model, path, source=layout)
    assert report.ok and report.applied
    for variable, value in zip(model.weights, expected):
        np.testing.assert_array_equal(np.array(variable), value, err_msg=variable.path)


def test_reading_a_truncated_npy_with_mapping_fails_cleanly(tmp_path):
    holder = np.empty((), dtype=object)
    holder[()] = {"conv1": [RNG.standard_normal((64, 64, 3, 3), dtype=np.float32)]}
    path = tmp_path / "t.npy"
    np.save(path, holder, allow_pickle=True)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(WeightFileError):
        read_weights(path, mmap=True)


def test_unexpected_sizes_keep_the_struct_error_contract():
    # A BINBYTES8 opcode whose 8-byte length is cut short: a malformed pickle, not a crash.
    with pytest.raises(WeightFileError):
        safe_load(io.BytesIO(b"\x80\x04\x8e" + struct.pack("<I", 5)), path="x")
