"""HDF5 from strangers: parsing runs in a limited reader process, so no file can hang or crash the caller.

The damaged files of the issue are regenerated from a file tf-keras writes
(`Sequential([Conv2D, Flatten, Dense]).save_weights`, 300 KB), with 64 bytes at
offset 2016 duplicated in place: libhdf5 then loops forever reading
`layer_names` (checked here in a bare h5py process, so the test knows it still
hangs). Through `read_weights` each ends in a `WeightFileError` within 30 s,
and the model handed to a loader is untouched.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import h5py
import numpy as np
import pytest

import weights_io
from tests.fuzz.corpus import damaged, write_tf_keras_file
from weights_io import WeightFileError, read_weights, sandbox

@pytest.fixture(scope="module")
def tf_keras_file(tmp_path_factory):
    """A Keras 2 weight file written by tf-keras itself."""
    path = tmp_path_factory.mktemp("tfkeras") / "model.h5"
    if not write_tf_keras_file(path):
        pytest.skip("tf-keras is not installed (pip install -e .[oracle])")
    return path


def _hangs_in_h5py(path, seconds=2):  # the undamaged file opens in 0.1 s, interpreter start included
    code = f"import h5py; f = h5py.File({str(path)!r}, 'r'); list(f.attrs['layer_names'])"
    try:
        subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=seconds)
    except subprocess.TimeoutExpired:
        return True
    return False


@pytest.mark.parametrize("insert", [True, False], ids=["inserted", "overwritten"])
def test_the_issues_damaged_files_end_in_an_error_within_30_s(tf_keras_file, tmp_path, insert, monkeypatch):
    """The default limits give a read of either file 10 s (under 15: the 30 s leave room for the
    reader's restart on a loaded machine); the watchdog that enforces them runs here at a 2 s base,
    since a hung read spins a core for the whole limit (8 CPU-seconds of the suite per file)."""
    path = tmp_path / "damaged.h5"
    path.write_bytes(damaged(tf_keras_file.read_bytes(), insert=insert))
    wall, cpu, _ = sandbox.limits(path.stat().st_size)
    assert cpu <= wall < 15
    monkeypatch.setattr(sandbox, "BASE_SECONDS", 2.0)
    assert _hangs_in_h5py(path), "this damage no longer hangs libhdf5: pick one that does"
    import keras

    model = keras.Sequential([keras.Input((32, 32, 3)), keras.layers.Conv2D(16, 3, name="conv2d"),
                              keras.layers.Flatten(), keras.layers.Dense(5, name="dense")])
    before = [np.array(v) for v in model.weights]
    start = time.monotonic()
    with pytest.raises(WeightFileError, match="wall-clock limit") as err:
        weights_io.load_weights(model, path)
    assert time.monotonic() - start < 30
    assert err.value.path == str(path)
    assert all(np.array_equal(a, np.array(v)) for a, v in zip(before, model.weights))
    # the reader process is replaced: the undamaged file reads right after
    assert read_weights(tf_keras_file).tensors["conv2d"]["kernel"].shape == (3, 3, 3, 16)


def test_same_arrays_as_reading_in_process(tf_keras_file, tmp_path):
    for mmap in (False, True):
        ours, direct = read_weights(tf_keras_file, mmap=mmap), read_weights(tf_keras_file, mmap=mmap, trusted=True)
        assert ours.format == direct.format and ours.metadata == direct.metadata
        for key, array in direct.flat().items():
            np.testing.assert_array_equal(ours.flat()[key], array)
            assert ours.flat()[key].dtype == array.dtype


def _compressed_h5(path, megabytes):
    """A Keras 3 .weights.h5 whose one dataset inflates to `megabytes` of zeros (a few KB on disk)."""
    with h5py.File(path, "w") as f:
        group = f.create_group("layers/fc/vars")
        group.attrs["name"] = "fc"
        group.create_dataset("0", data=np.zeros(megabytes * 2**18, "float32"), compression="gzip", chunks=True)


def test_memory_limit_names_the_limit(tmp_path, monkeypatch):
    path = tmp_path / "bomb.weights.h5"
    _compressed_h5(path, 256)
    assert os.path.getsize(path) < 2**20
    monkeypatch.setattr(sandbox, "BASE_MEMORY", 64 * 2**20)
    with pytest.raises(WeightFileError, match="memory limit"):
        read_weights(path)
    monkeypatch.undo()
    assert read_weights(path).tensors["fc"]["0"].nbytes == 256 * 2**20  # within the default budget


def test_cpu_limit_names_the_limit(tf_keras_file, tmp_path, monkeypatch):
    path = tmp_path / "damaged.h5"
    path.write_bytes(damaged(tf_keras_file.read_bytes()))
    monkeypatch.setattr(sandbox, "limits", lambda size: (60.0, 2.0, sandbox.BASE_MEMORY))
    start = time.monotonic()
    with pytest.raises(WeightFileError, match="CPU-time limit of 2 s"):
        read_weights(path)
    assert time.monotonic() - start < 30


def test_a_crash_of_the_reader_process_is_one_clear_error(tf_keras_file, tmp_path):
    """A parser that segfaults (as scipy's once did on a forged .mat) ends only the reader process."""
    path = tmp_path / "damaged.h5"
    path.write_bytes(damaged(tf_keras_file.read_bytes()))
    read_weights(tf_keras_file)  # the worker is up

    def crash_it():
        time.sleep(1.0)
        os.kill(sandbox._WORKER.proc.pid, signal.SIGSEGV)

    threading.Thread(target=crash_it).start()
    with pytest.raises(WeightFileError, match=r"crashed on it \(signal 11, SIGSEGV\)"):
        read_weights(path)
    assert read_weights(tf_keras_file).format == "keras-h5"


def test_spans_outside_the_file_are_refused(tmp_path):
    """The reader process says where arrays lie; this process checks it before mapping."""
    path = tmp_path / "x.bin"
    path.write_bytes(bytes(64))
    file_map = sandbox._FileMap(str(path))
    inside = sandbox._array({"span": [32, "<f4", [8], [4]]}, [], file_map, str(path))
    assert inside.shape == (8,)
    for span in ([40, "<f4", [8], [4]], [-4, "<f4", [2], [4]], [0, "<f4", [2, 8], [64, 4]]):
        with pytest.raises(WeightFileError, match="outside the file"):
            sandbox._array({"span": span}, [], file_map, str(path))
    with pytest.raises(WeightFileError, match="non-numeric"):
        sandbox._array({"span": [0, "|O", [1], [8]]}, [], file_map, str(path))


def test_trusted_skips_the_reader_process(tf_keras_file, monkeypatch):
    monkeypatch.setattr(sandbox, "read_in_sandbox", lambda *a, **k: pytest.fail("used the reader process"))
    assert read_weights(tf_keras_file, trusted=True).format == "keras-h5"


def test_the_reader_process_starts_with_numpy_alone():
    """Every sandboxed read of a fresh process pays the worker's start: h5py and scipy cost 0.18 s of it."""
    code = ("import runpy, sys; sys.argv = ['w']; sys.stdin = open('/dev/null'); "
            f"runpy.run_path({sandbox.WORKER!r}, run_name='__main__'); "
            "print('LOADED', sorted({m.split('.')[0] for m in sys.modules} & {'h5py', 'scipy', 'keras', 'numpy'}))")
    out = subprocess.run([sys.executable, "-I", "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.endswith("LOADED ['numpy']\n")  # after the worker's ready byte, R
