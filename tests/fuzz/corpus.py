"""Seed files for fuzzing the readers: small genuine files of every format we read.

Used by tests/test_fuzz_readers.py (a brief run in CI) and by
`python -m tests.fuzz.fuzz_readers --examples N` (a long run that prints counts).
"""

from __future__ import annotations

import pathlib

import numpy as np

_ROOT = pathlib.Path(__file__).resolve().parents[2]
FIXTURES = _ROOT.parent / "shared" / "fixtures"
if not FIXTURES.is_dir():  # a clean checkout without ../shared: the vendored copy (same bytes)
    FIXTURES = _ROOT / "tests" / "data" / "fixtures"
# Every real file of a format we read (the Caffe files have no reader yet).
REAL_FILES = ("npy/det1.npy", "npy/det2.npy", "pth/resnet20-12fca82f.th", "pth/dncnn_25.pth", "mat/iter1_weights.mat")


def write_seeds(directory):
    """Writes one small file per format into `directory`; returns {name: path}."""
    import h5py
    import scipy.io

    directory = pathlib.Path(directory)
    rng = np.random.default_rng(0)
    seeds = {}
    npy = directory / "seed.npy"
    obj = np.empty((), dtype=object)
    obj[()] = {"conv1": [rng.normal(size=(3, 3, 2, 4)).astype("float32"), np.zeros(4, "float32")]}
    np.save(npy, obj, allow_pickle=True)
    seeds["npy"] = npy
    big = directory / "seed_mapped.npy"  # payloads over safe_pickle.LAZY_MIN_BYTES: mapped, not read
    obj = np.empty((), dtype=object)
    obj[()] = {"fc": {"weights": rng.normal(size=(128, 160)).astype("float32"), "biases": np.ones(160, "float32")}}
    np.save(big, obj, allow_pickle=True)
    seeds["npy-mapped"] = big
    npz = directory / "seed.npz"
    np.savez(npz, conv1_W=rng.normal(size=(3, 3, 2, 4)).astype("float32"), conv1_b=np.zeros(4, "float32"))
    seeds["npz"] = npz
    h5 = directory / "seed.h5"
    with h5py.File(h5, "w") as f:
        f.attrs["layer_names"] = [b"conv1"]
        group = f.create_group("conv1")
        group.attrs["weight_names"] = [b"conv1/kernel:0", b"conv1/bias:0"]
        group.create_dataset("conv1/kernel:0", data=rng.normal(size=(3, 3, 2, 4)).astype("float32"))
        group.create_dataset("conv1/bias:0", data=np.zeros(4, "float32"))
    seeds["keras-h5"] = h5
    mat = directory / "seed.mat"
    scipy.io.savemat(mat, {"weights": rng.normal(size=(3, 3, 2, 4)).astype("float32")})
    seeds["mat"] = mat
    compressed = directory / "seed_compressed.mat"  # MATLAB v7's default: each variable zlib-compressed
    scipy.io.savemat(compressed, {"layers": {"weights": rng.normal(size=(3, 3, 2, 4)).astype("float32"),
                                             "name": "conv1"}}, do_compression=True)
    seeds["mat-compressed"] = compressed
    keras2 = directory / "seed_keras2.h5"  # the layout tf.keras' save_weights writes, ~300 KB like the issue's
    write_keras2_like(keras2, rng)
    seeds["keras2-h5"] = keras2
    for name in REAL_FILES:
        if (FIXTURES / name).exists():
            seeds[name] = FIXTURES / name
    return seeds


def write_keras2_like(path, rng, conv=(3, 3, 3, 16), dense=(14400, 5)):
    """A Keras 2 weight file (layer_names, weight_names, a group per layer) of Conv2D + Flatten + Dense."""
    import h5py

    with h5py.File(path, "w") as f:
        f.attrs["layer_names"] = [b"conv2d", b"flatten", b"dense"]
        f.attrs["backend"], f.attrs["keras_version"] = b"tensorflow", b"2.21.0"
        f.create_group("flatten").attrs["weight_names"] = np.array([], dtype="S1")
        for layer, kernel in (("conv2d", conv), ("dense", dense)):
            group = f.create_group(layer)
            group.attrs["weight_names"] = [f"{layer}/kernel:0".encode(), f"{layer}/bias:0".encode()]
            group.create_dataset(f"{layer}/kernel:0", data=rng.normal(size=kernel).astype("float32") * 0.05)
            group.create_dataset(f"{layer}/bias:0", data=np.zeros(kernel[-1], "float32"))


_TF_KERAS_FILE = """
import tf_keras as k
m = k.Sequential([k.layers.Conv2D(16, 3, input_shape=(32, 32, 3)), k.layers.Flatten(), k.layers.Dense(5)])
m.save_weights({path!r})
"""


def write_tf_keras_file(path):
    """The issue's file: `Sequential([Conv2D, Flatten, Dense]).save_weights` by tf-keras (300 KB).

    Runs tf-keras in a process of its own (it and Keras 3 would share TensorFlow's
    state); returns False where tf-keras is not installed.
    """
    import os
    import subprocess
    import sys

    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    done = subprocess.run([sys.executable, "-c", _TF_KERAS_FILE.format(path=str(path))], env=env,
                          capture_output=True, timeout=600)
    return done.returncode == 0


def damaged(data, offset=2016, length=64, insert=True):
    """The issue's damage: `length` bytes at `offset` duplicated in place (inserted, or over what follows)."""
    chunk = data[offset:offset + length]
    if insert:
        return data[:offset + length] + data[offset:]
    return data[:offset] + chunk + chunk + data[offset + 2 * length:]


def write_issue_seeds(directory):
    """The tf-keras file and its two damaged forms that hang libhdf5: {name: path}, {} without tf-keras."""
    directory = pathlib.Path(directory)
    original = directory / "tf_keras.h5"
    if not write_tf_keras_file(original):
        return {}
    seeds = {"tf-keras-h5": original}
    for name, insert in (("inserted", True), ("overwritten", False)):
        path = directory / f"tf_keras_damaged_{name}.h5"
        path.write_bytes(damaged(original.read_bytes(), insert=insert))
        seeds[f"tf-keras-h5-damaged-{name}"] = path
    return seeds


def write_large_seeds(directory, megabytes):
    """VGG16-sized (or smaller) Keras 2 and Keras 3 `.h5` files and a MATLAB `.mat`: {name: path}."""
    import h5py
    import scipy.io

    directory = pathlib.Path(directory)
    rng = np.random.default_rng(1)
    count = int(megabytes * 2**20 / 4)
    fc6 = rng.standard_normal(count, dtype=np.float32)
    h5 = directory / "large.weights.h5"
    with h5py.File(h5, "w") as f:  # Keras 3 .weights.h5: layers/<name>/vars/<i>
        for name, array in (("block1_conv1", rng.normal(size=(3, 3, 3, 64)).astype("float32")), ("fc1", fc6)):
            group = f.create_group(f"layers/{name}/vars")
            group.attrs["name"] = name
            group.create_dataset("0", data=array)
    keras2 = directory / "large_keras2.h5"
    write_keras2_like(keras2, rng, dense=(count // 1000, 1000))
    mat = directory / "large.mat"
    scipy.io.savemat(mat, {"layers": {"weights": fc6, "name": "fc6"}})
    return {"large-h5": h5, "large-keras2-h5": keras2, "large-mat": mat}


def read_and_touch(path, mmap):
    """Reads `path`, then touches every value: a mapped array reaching past the file would crash here."""
    from weights_io import read_weights

    result = read_weights(path, mmap=mmap)
    for array in result.flat().values():
        array.sum()
    return result


_FIELDS = (0, 1, 0xFF, 0x7F, 0x80, 2**31 - 1, 2**31, 2**32 - 1, 2**63 - 1, 2**64 - 1, -1, -(2**31))


def structured_mutation(rng, data):
    """One damage of the kinds real files suffer and crafted ones use: (kind, new bytes).

    Byte flips, a 4- or 8-byte field set to zero, huge or negative values (sizes,
    offsets, counts), a cut, a chunk duplicated in place (shifting what follows,
    as the issue's hanging .h5 files), zeroed header bytes.
    """
    buf = bytearray(data)
    size = len(buf)
    kind = rng.choice(("flip", "field4", "field8", "cut", "duplicate", "zero-header"))
    if not size:
        return kind, bytes(buf)

    def place():  # half in the first 64 KB, where headers, tables and heaps live, half anywhere
        return rng.randrange(min(size, 65536) if rng.random() < 0.5 else size)

    if kind == "flip":
        for _ in range(rng.randrange(1, 9)):
            buf[place()] ^= 1 << rng.randrange(8)
    elif kind in ("field4", "field8"):
        width = 4 if kind == "field4" else 8
        offset = min(place(), max(0, size - width))
        value = rng.choice(_FIELDS) % (1 << (8 * width))
        buf[offset:offset + width] = value.to_bytes(width, rng.choice(("little", "big")))[: size - offset]
    elif kind == "cut":
        buf = buf[: rng.randrange(size)]
    elif kind == "duplicate":
        length = rng.choice((4, 8, 16, 64, 512))
        offset = place()
        buf[offset:offset] = buf[offset:offset + length]
    else:
        start = rng.randrange(min(size, 512))
        end = min(size, start + rng.choice((1, 4, 8, 32)))
        buf[start:end] = bytes(end - start)
    return kind, bytes(buf)


def mutate(data, edits, truncate):
    """Applies (offset, byte) edits to `data`, then cuts it to `truncate` bytes (if not None)."""
    buf = bytearray(data)
    for offset, value in edits:
        if buf:
            buf[offset % len(buf)] = value
    if truncate is not None and buf:
        buf = buf[: truncate % (len(buf) + 1)]
    return bytes(buf)
