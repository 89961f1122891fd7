"""Our MATLAB v5/v7 walker against scipy's and GNU Octave's: the same tree for every class.

scipy.io.loadmat (a different implementation of the same format) is the oracle
for files scipy and Octave write; a big-endian file is packed here by hand from
the format's description, since neither tool writes one.
"""

from __future__ import annotations

import shutil
import struct
import subprocess

import numpy as np
import pytest
import scipy.io
import scipy.sparse

from weights_io import WeightFileError, read_weights
from weights_io.readers.mat_v5 import Unsupported, read_v5_tree


def scipy_tree(path):
    """scipy's reading of `path`, in our tree's terms (struct -> dict / list, cell -> list, char -> str)."""
    def convert(value):
        if isinstance(value, np.ndarray) and value.dtype.names:
            items = [{f: convert(e[f]) for f in value.dtype.names} for e in value.ravel(order="F")]
            return items[0] if value.size == 1 else items
        if isinstance(value, np.ndarray) and value.dtype == object:
            return [convert(v) for v in value.ravel(order="F")]
        if isinstance(value, np.ndarray) and value.dtype.kind == "U":
            return "".join(value.ravel(order="F").tolist()) if value.size else ""
        return value

    raw = scipy.io.loadmat(path, squeeze_me=False, struct_as_record=True, mat_dtype=False)
    return {k: convert(v) for k, v in raw.items() if not k.startswith("__")}


def assert_same_tree(ours, theirs, where="", logical=()):
    if isinstance(theirs, dict):
        assert isinstance(ours, dict) and list(ours) == list(theirs), where
        for key in theirs:
            assert_same_tree(ours[key], theirs[key], f"{where}.{key}", logical)
    elif isinstance(theirs, list):
        assert isinstance(ours, list) and len(ours) == len(theirs), where
        for i, (a, b) in enumerate(zip(ours, theirs)):
            assert_same_tree(a, b, f"{where}[{i}]", logical)
    elif isinstance(theirs, str):
        assert ours == theirs, where
    elif scipy.sparse.issparse(theirs):
        assert isinstance(ours, Unsupported) and ours.kind == "sparse matrix", where
    else:  # scipy gives logicals as uint8; we give bool, as MATLAB and our v7.3 reader do
        assert isinstance(ours, np.ndarray) and ours.shape == theirs.shape, (where, ours, theirs)
        expected_dtype = bool if where in logical else theirs.dtype
        assert ours.dtype == expected_dtype, (where, ours.dtype, theirs.dtype)
        np.testing.assert_array_equal(ours, theirs.astype(expected_dtype), err_msg=where)


def every_class():
    """One variable of each kind a MatConvNet file (or its neighbours) holds."""
    rng = np.random.default_rng(5)
    layer = np.zeros((1, 3), dtype=[("name", object), ("weights", object), ("pad", object)])
    for i in range(3):
        layer[0, i] = (f"conv{i}", np.array([rng.standard_normal((3, 2, 4, 5)).astype("float32"),
                                             rng.standard_normal((1, 5)).astype("float32")], dtype=object),
                       np.array([[1, 1, 2, 2]], dtype=np.float64))
    chars = np.array(["abc", "xyz"])  # a 2x3 char matrix, stored column-major "axbycz", read row by row
    return {
        "single": rng.standard_normal((2, 3, 4)).astype("float32"),
        "double": rng.standard_normal((5, 1)),
        "ints": {"i8": np.int8([[-3, 7]]), "u16": np.uint16([[65535]]), "i32": np.int32([[-1, 2, 3]]),
                 "u64": np.uint64([[2**63 + 5]]), "i64": np.int64([[-(2**40)]])},
        "logical": np.array([[True, False, True]]),
        "complex": np.array([[1 + 2j, -3.5j]]),
        "text": "hé, MatConvNet",
        "chars": chars,
        "empty": np.zeros((0, 3), np.float32),
        "cells": np.array([np.zeros((0, 0)), "ab", np.arange(6.0).reshape(2, 3)], dtype=object),
        "layers": layer,
        "nested": {"meta": {"normalization": {"averageImage": np.float32([[[1, 2, 3]]]),
                                              "imageSize": np.array([[224.0, 224, 3]])}}},
        "sparse": scipy.sparse.csc_matrix(np.eye(3)),
    }


@pytest.mark.parametrize("compressed", [False, True])
def test_walker_equals_scipy_for_every_class(tmp_path, compressed):
    path = tmp_path / "every.mat"
    scipy.io.savemat(path, every_class(), do_compression=compressed)
    theirs = scipy_tree(path)
    for mmap in (False, True):
        with open(path, "rb") as f:
            buffer = f.read() if not mmap else None
        ours = read_v5_tree(buffer if buffer is not None else _mapped(path), str(path))
        assert_same_tree(ours, theirs, logical={".logical"})
    assert ours["text"] == "hé, MatConvNet" and ours["chars"] == "abcxyz"  # not only "equal to scipy"
    assert ours["layers"][2]["name"] == "conv2" and ours["layers"][1]["weights"][0].shape == (3, 2, 4, 5)


def _mapped(path):
    import mmap

    with open(path, "rb") as f:
        return mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)


OCTAVE = shutil.which("octave")
OCTAVE_SCRIPT = r"""
s = struct('name', {'a', 'bb'}, 'w', {single(reshape(1:24, 2, 3, 4)), int16([-5 6])});
c = {[], 'text', {uint8(7), true(2, 2)}};
z = complex(single([1 2]), single([-1 0.5]));
m = ['abc'; 'xyz'];  % not 2x2: Octave miscounts a top-level char matrix of <= 4 bytes, scipy fails too
e = zeros(0, 4, 'single');
save('-v6', 'octave_v6.mat', 's', 'c', 'z', 'm', 'e');
save('-v7', 'octave_v7.mat', 's', 'c', 'z', 'm', 'e');
"""


@pytest.mark.skipif(OCTAVE is None, reason="GNU Octave is not installed (Debian package 'octave')")
def test_walker_equals_scipy_on_octave_files(tmp_path):
    (tmp_path / "write.m").write_text(OCTAVE_SCRIPT)
    subprocess.run([OCTAVE, "--no-gui", "--quiet", "write.m"], check=True, cwd=tmp_path, timeout=300)
    for name in ("octave_v6.mat", "octave_v7.mat"):
        ours = read_v5_tree(_mapped(tmp_path / name), name)
        assert_same_tree(ours, scipy_tree(tmp_path / name), logical={".c[2][1]"})
        np.testing.assert_array_equal(ours["s"][0]["w"], np.arange(1, 25, dtype=np.float32).reshape(2, 3, 4, order="F"))
        assert ours["m"] == "abcxyz" and ours["c"][2][1].dtype == bool and ours["e"].shape == (0, 4)


def _element(mdtype, data, order):
    return struct.pack(order + "II", mdtype, len(data)) + data + b"\0" * (-len(data) % 8)


def test_big_endian_file_packed_by_hand(tmp_path):
    """A 2x3 single matrix `w` and a char `name`, in "MI" byte order, as the format describes."""
    values = np.arange(6, dtype=np.float32).reshape(2, 3) / 4

    def matrix(mx_class, dims, name, payload):
        flags = _element(6, struct.pack(">II", mx_class, 0), ">")
        return _element(14, flags + _element(5, struct.pack(">" + "i" * len(dims), *dims), ">")
                        + _element(1, name, ">") + payload, ">")

    body = matrix(7, (2, 3), b"w", _element(7, values.ravel(order="F").astype(">f4").tobytes(), ">"))
    body += matrix(4, (1, 3), b"name", _element(4, np.array([ord(c) for c in "fc6"], ">u2").tobytes(), ">"))
    header = b"MATLAB 5.0 MAT-file, hand-packed".ljust(116) + b"\0" * 8 + struct.pack(">H", 0x0100) + b"MI"
    path = tmp_path / "be.mat"
    path.write_bytes(header + body)
    tree = read_v5_tree(_mapped(path), str(path))
    assert tree["name"] == "fc6" and tree["w"].dtype == np.float32 and tree["w"].dtype.isnative
    np.testing.assert_array_equal(tree["w"], values)
    np.testing.assert_array_equal(scipy_tree(path)["w"], values)  # scipy agrees the file is well formed


def test_uncompressed_arrays_cross_from_the_reader_process_as_views_of_the_file(tmp_path):
    """No copy: the caller maps the file itself (read-only); compressed ones arrive decoded (writable)."""
    rng = np.random.default_rng(1)
    layers = {"weights": np.array([rng.standard_normal((3, 3, 2, 4)).astype("float32"),
                                   rng.standard_normal((1, 4)).astype("float32")], dtype=object), "name": "c1"}
    for compressed in (False, True):
        path = tmp_path / f"w{int(compressed)}.mat"
        scipy.io.savemat(path, {"layers": np.array([layers], dtype=object)}, do_compression=compressed)
        kernel = read_weights(path, mmap=True).tensors["c1"]["weights"]
        np.testing.assert_array_equal(kernel, layers["weights"][0])
        assert kernel.flags.writeable == compressed
        copy = read_weights(path).tensors["c1"]["weights"]
        assert copy.flags.writeable  # without mmap: a copy, as every reader gives


def test_sparse_beside_the_weights_reads_and_names_itself_if_used(tmp_path):
    path = tmp_path / "s.mat"
    kernel = np.ones((3, 3, 1, 2), np.float32)
    scipy.io.savemat(path, {"layers": np.array([{"name": "c", "weights": np.array([kernel], dtype=object)},
                                                {"name": "d", "weights": np.array([scipy.sparse.eye(2)], dtype=object)}],
                                               dtype=object)})
    with pytest.raises(WeightFileError, match="found <MATLAB sparse matrix, not read>"):
        read_weights(path)


@pytest.mark.parametrize("forge, message", [
    (lambda d: d.replace(struct.pack("<II", 5, 8) + struct.pack("<ii", 2, 3), struct.pack("<II", 5, 8)
                         + struct.pack("<ii", 2, 4)), r"shape \(2, 4\) holds 6 values"),
    (lambda d: d.replace(struct.pack("<II", 5, 8) + struct.pack("<ii", 2, 3), struct.pack("<II", 5, 8)
                         + struct.pack("<ii", -2, 3)), "Impossible MATLAB dimensions"),
    (lambda d: d[:128 + 16] + struct.pack("<I", 99) + d[128 + 20:], "Unknown MATLAB array class 99"),
    (lambda d: d[:-9], "Malformed MATLAB variable"),
])
def test_forged_headers_are_weightfileerrors(tmp_path, forge, message):
    path = tmp_path / "f.mat"
    scipy.io.savemat(path, {"w": np.ones((2, 3), np.float32)})
    forged = forge(path.read_bytes())
    assert forged != path.read_bytes()
    path.write_bytes(forged)
    with pytest.raises(WeightFileError, match=message):
        read_v5_tree(_mapped(path), str(path))
