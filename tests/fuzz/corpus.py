"""Seed files for fuzzing the readers: small genuine files of every format we read.

Used by tests/test_fuzz_readers.py (a brief run in CI) and by
`python -m tests.fuzz.fuzz_readers --examples N` (a long run that prints counts).
"""

from __future__ import annotations

import pathlib

import numpy as np

FIXTURES = pathlib.Path(__file__).resolve().parents[2].parent / "shared" / "fixtures"


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
    for name in ("npy/det1.npy", "npy/det2.npy", "pth/resnet20-12fca82f.th"):
        if (FIXTURES / name).exists():
            seeds[name] = FIXTURES / name
    return seeds


def read_and_touch(path, mmap):
    """Reads `path`, then touches every value: a mapped array reaching past the file would crash here."""
    from weights_io import read_weights

    result = read_weights(path, mmap=mmap)
    for array in result.flat().values():
        array.sum()
    return result


def mutate(data, edits, truncate):
    """Applies (offset, byte) edits to `data`, then cuts it to `truncate` bytes (if not None)."""
    buf = bytearray(data)
    for offset, value in edits:
        if buf:
            buf[offset % len(buf)] = value
    if truncate is not None and buf:
        buf = buf[: truncate % (len(buf) + 1)]
    return bytes(buf)
