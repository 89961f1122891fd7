"""Seed files for fuzzing the readers: small genuine files of every format we read.

Used by tests/test_fuzz_readers.py (a brief run in CI) and by
`python -m tests.fuzz.fuzz_readers --examples N` (a long run that prints counts).
"""

from __future__ import annotations

import json
import pathlib
import struct

import numpy as np

_ROOT = pathlib.Path(__file__).resolve().parents[2]
FIXTURES = _ROOT.parent / "shared" / "fixtures"
if not FIXTURES.is_dir():  # a clean checkout without ../shared: the vendored copy (same bytes)
    FIXTURES = _ROOT / "tests" / "data" / "fixtures"
# Every real file of a format we read (the Caffe prototxt is text, not weights).
REAL_FILES = ("npy/det1.npy", "npy/det2.npy", "pth/resnet20-12fca82f.th", "pth/dncnn_25.pth", "mat/iter1_weights.mat",
              "caffe/lenet_iter_10000.caffemodel")


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
    safetensors = directory / "seed.safetensors"  # f32 over LAZY_MIN_BYTES, f16, bf16, int64 and __metadata__
    safetensors.write_bytes(safetensors_bytes({
        "conv1.weight": rng.normal(size=(16, 3, 3, 3)).astype("float32"),
        "conv1.bias": rng.normal(size=16).astype("float16"),
        "bn1.running_var": _bfloat16_bits(rng.random(16).astype("float32")),
        "bn1.num_batches_tracked": np.array(1, "int64"),
        "fc.weight": rng.normal(size=(128, 160)).astype("float32"),
    }, {"format": "pt"}))
    seeds["safetensors"] = safetensors
    tf_v1 = directory / "seed_tf_v1.ckpt"  # a V1 TensorFlow checkpoint: a table of SavedTensorSlices
    write_tf_v1_seed(tf_v1, rng)
    seeds["tf-checkpoint-v1"] = tf_v1
    caffemodel = directory / "seed.caffemodel"  # a V2 Caffe NetParameter: shape.dim, legacy dims, double_data
    write_caffe_seed(caffemodel, rng)
    seeds["caffemodel"] = caffemodel
    seeds["tf-graphdef"] = _ROOT / "tests" / "data" / "fsrcnn_tensorflow" / "FSRCNN_x2.pb"  # a released frozen graph
    for name in REAL_FILES:
        if (FIXTURES / name).exists():
            seeds[name] = FIXTURES / name
    return seeds


_SAFETENSORS_DTYPES = {"float32": "F32", "float16": "F16", "int64": "I64", "uint16": "BF16"}


def _bfloat16_bits(array):
    """float32 -> bfloat16 as raw uint16 (the top half of each float), written as BF16 by `safetensors_bytes`."""
    return (np.ascontiguousarray(array, "<f4").view("<u4") >> 16).astype("<u2")


def safetensors_bytes(arrays, metadata=None):
    """A `.safetensors` file's bytes, written here independently of weights_io (uint16 arrays go as BF16)."""
    header, offset = ({"__metadata__": metadata} if metadata else {}), 0
    for key, array in arrays.items():
        header[key] = {"dtype": _SAFETENSORS_DTYPES[array.dtype.name], "shape": list(array.shape),
                       "data_offsets": [offset, offset + array.nbytes]}
        offset += array.nbytes
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + b"".join(np.ascontiguousarray(a).tobytes() for a in arrays.values())


def _raw_safetensors(header, data=b"", length=None):
    text = header if isinstance(header, bytes) else json.dumps(header).encode()
    return struct.pack("<Q", len(text) if length is None else length) + text + data


def _entry(dtype="F32", shape=(2,), offsets=(0, 8)):
    return {"dtype": dtype, "shape": list(shape), "data_offsets": list(offsets)}


def safetensors_hostile():
    """Malformed `.safetensors` files, {case: bytes}: each must raise WeightFileError (the package refuses
    all but "duplicate names", where its last entry wins)."""
    f = _raw_safetensors
    return {
        "header longer than the file": f({"a.w": _entry()}, bytes(8), length=10_000),
        "header length near 2**64": f({"a.w": _entry()}, bytes(8), length=2**64 - 1),
        "not JSON": f(b"{this is not json", bytes(8)),
        "JSON but a list": f(b"[1, 2, 3]"),
        "not UTF-8": f(b'{"\xff": 1}'),
        "entry not an object": f({"a.w": [1, 2]}),
        "entry without data_offsets": f({"a.w": {"dtype": "F32", "shape": [2]}}, bytes(8)),
        "unknown dtype": f({"a.w": _entry(dtype="F31")}, bytes(8)),
        "negative dimension": f({"a.w": _entry(shape=(-2,))}, bytes(8)),
        "shape product overflows": f({"a.w": _entry(shape=(2**32, 2**32, 2**32, 2**32))}, bytes(8)),
        "shape that wraps to the right size in 64 bits": f({"a.w": _entry(shape=(2**62 + 2,))}, bytes(8)),
        "shape disagrees with data_offsets": f({"a.w": _entry(shape=(3,))}, bytes(8)),
        "overlapping offsets": f({"a.w": _entry(offsets=(0, 8)), "b.w": _entry(offsets=(4, 12))}, bytes(12)),
        "end before begin": f({"a.w": _entry(shape=(0,), offsets=(8, 0))}, bytes(8)),
        "gap between tensors": f({"a.w": _entry(offsets=(0, 8)), "b.w": _entry(offsets=(12, 20))}, bytes(20)),
        "offsets past the file": f({"a.w": _entry(offsets=(0, 8)), "b.w": _entry(offsets=(8, 16))}, bytes(8)),
        "bytes left over": f({"a.w": _entry()}, bytes(16)),
        "truncated data": f({"a.w": _entry(shape=(4,), offsets=(0, 16))}, bytes(10)),
        "metadata not strings": f({"__metadata__": {"epoch": 3}, "a.w": _entry()}, bytes(8)),
        "offsets not integers": f({"a.w": _entry(offsets=(0.0, 8.0))}, bytes(8)),
        "duplicate names": f(b'{"a.w": ' + json.dumps(_entry()).encode() + b', "a.w": '
                             + json.dumps(_entry()).encode() + b"}", bytes(8)),
    }


def write_hostile_seeds(directory):
    """The malformed `.safetensors` files as seeds for the long run: {name: path}."""
    directory = pathlib.Path(directory)
    seeds = {}
    for i, (case, data) in enumerate(sorted(safetensors_hostile().items())):
        path = directory / f"hostile_{i:02d}.safetensors"
        path.write_bytes(data)
        seeds[f"safetensors-hostile: {case}"] = path
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


# write_issue_seeds' names for the damaged forms: libhdf5 loops on them until the reader's limit stops it
HANGING_SEED_PREFIX = "tf-keras-h5-damaged-"


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
        seeds[HANGING_SEED_PREFIX + name] = path
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


# --- TensorFlow checkpoints: a minimal table and protobuf writer (seeds and hostile cases) ---------------------

def pb_varint(value):
    """A protobuf varint of a non-negative integer (negative ones as 10-byte two's complement)."""
    value &= (1 << 64) - 1
    out = bytearray()
    while True:
        out.append((value & 0x7F) | (0x80 if value > 0x7F else 0))
        value >>= 7
        if not value:
            return bytes(out)


def pb_field(number, value, wire=None):
    """One protobuf field: an int (varint), bytes (length-delimited) or (wire, raw bytes)."""
    if isinstance(value, tuple):
        wire, raw = value
        return pb_varint(number << 3 | wire) + raw
    if isinstance(value, int):
        return pb_varint(number << 3) + pb_varint(value)
    return pb_varint(number << 3 | 2) + pb_varint(len(value)) + bytes(value)


def pb_shape(shape):
    return b"".join(pb_field(2, pb_field(1, d)) for d in shape)


def _masked_crc(data):
    import google_crc32c

    crc = google_crc32c.value(bytes(data))
    return ((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + 0xA282EAD8) & 0xFFFFFFFF


def _table_block(entries):
    import struct

    body = b"".join(pb_varint(0) + pb_varint(len(k)) + pb_varint(len(v)) + k + v for k, v in entries)
    return body + struct.pack("<II", 0, 1)


def table_bytes(entries, index_handles=None):
    """A LevelDB-style table as TensorFlow writes it (uncompressed, crc32c trailers) holding `entries`.

    `index_handles` replaces the index's handles (hostile cases: loops, offsets past the file).
    """
    import struct

    out = bytearray()

    def put(block):
        offset = len(out)
        out.extend(block + b"\x00" + struct.pack("<I", _masked_crc(block + b"\x00")))
        return offset, len(block)

    data = put(_table_block(sorted(entries)))
    meta = put(_table_block([]))
    handles = index_handles or [data]
    last = max(k for k, _ in entries) if entries else b""
    index = put(_table_block([(last + bytes([i]) * (i > 0), pb_varint(o) + pb_varint(s))
                              for i, (o, s) in enumerate(handles)]))
    handles_raw = pb_varint(meta[0]) + pb_varint(meta[1]) + pb_varint(index[0]) + pb_varint(index[1])
    out.extend(handles_raw.ljust(40, b"\x00") + struct.pack("<Q", 0xDB4775248B80FB57))
    return bytes(out)


def write_tf_v1_seed(path, rng):
    """A V1 checkpoint (SavedTensorSlices) of a float32 kernel, split in two slices, and a float64 bias."""
    from weights_io.readers.tf_checkpoint import slice_key

    kernel = rng.normal(size=(3, 3, 2, 4)).astype("float32")
    bias = rng.normal(size=4)
    full = lambda rank: b"".join(pb_field(1, b"") for _ in range(rank))  # noqa: E731
    halves = [((0, -1), (0, -1), (0, 1), (0, -1)), ((0, -1), (0, -1), (1, 1), (0, -1))]
    extent = lambda e: pb_field(1, (pb_field(1, e[0]) if e[0] else b"") + (pb_field(2, e[1]) if e[1] >= 0 else b""))  # noqa: E731
    meta = (pb_field(1, pb_field(1, b"net/conv1/weights") + pb_field(2, pb_shape(kernel.shape)) + pb_field(3, 1)
                     + b"".join(pb_field(4, b"".join(extent(e) for e in h)) for h in halves))
            + pb_field(1, pb_field(1, b"net/conv1/biases") + pb_field(2, pb_shape(bias.shape)) + pb_field(3, 2)
                       + pb_field(4, full(1))))
    entries = [(b"", pb_field(1, meta))]
    for h in halves:
        part = kernel[:, :, h[2][0]:h[2][0] + 1, :]
        tensor = pb_field(1, 1) + pb_field(2, pb_shape(part.shape)) + pb_field(5, part.astype("<f4").tobytes())
        saved = pb_field(1, b"net/conv1/weights") + pb_field(2, b"".join(extent(e) for e in h)) + pb_field(3, tensor)
        entries.append((slice_key("net/conv1/weights", h), pb_field(2, saved)))
    tensor = pb_field(1, 2) + pb_field(2, pb_shape(bias.shape)) + pb_field(6, bias.astype("<f8").tobytes())
    saved = pb_field(1, b"net/conv1/biases") + pb_field(2, full(1)) + pb_field(3, tensor)
    entries.append((slice_key("net/conv1/biases", ((0, -1),)), pb_field(2, saved)))
    pathlib.Path(path).write_bytes(table_bytes(entries))
    return kernel, bias


def write_caffe_seed(path, rng):
    """A V2 `.caffemodel` (NetParameter, caffe.proto field numbers) written here independently of weights_io:
    a grouped conv with `shape.dim` blobs, an InnerProduct with a legacy (1, 1, out, in) weight and a float64
    bias, and a weightless ReLU. Returns {layer: [blobs as the file holds them]}."""
    def blob(array, legacy=False):
        data = pb_field(8, array.astype("<f8").tobytes()) if array.dtype == np.float64 else \
            pb_field(5, array.astype("<f4").tobytes())
        if legacy:
            dims = (1,) * (4 - array.ndim) + array.shape
            return b"".join(pb_field(n, d) for n, d in zip((1, 2, 3, 4), dims)) + data
        return pb_field(7, pb_field(1, b"".join(pb_varint(d) for d in array.shape))) + data

    def layer(name, kind, bottom, top, blobs):
        return pb_field(100, pb_field(1, name.encode()) + pb_field(2, kind.encode()) + pb_field(3, bottom.encode())
                        + pb_field(4, top.encode()) + b"".join(blobs))

    arrays = {"conv1": [rng.normal(size=(4, 1, 3, 3)).astype("float32"), rng.normal(size=4).astype("float32")],
              "fc": [rng.normal(size=(5, 36)).astype("float32"), rng.normal(size=5)]}
    net = (pb_field(1, b"seed") + pb_field(3, b"data") + b"".join(pb_field(4, d) for d in (1, 2, 5, 5))
           + layer("conv1", "Convolution", "data", "conv1", [pb_field(7, blob(a)) for a in arrays["conv1"]])
           + layer("relu1", "ReLU", "conv1", "conv1", [])
           + layer("fc", "InnerProduct", "conv1", "fc", [pb_field(7, blob(a, legacy=True)) for a in arrays["fc"]]))
    pathlib.Path(path).write_bytes(net)
    return arrays


# --- Caffe prototxt: hostile net descriptions (each must end in WeightFileError or ValueError, nothing built) ----

_CONV = ('layer {{ name: "{name}" type: "Convolution" bottom: "{bottom}" top: "{top}" '
         'convolution_param {{ {params} }} }}')


def prototxt_hostile():
    """{case: (prototxt text, what the error says)} of nets `kerasnets.from_caffe` must refuse before building
    anything: WeightFileError for text that does not parse, ValueError naming the fault for the rest."""
    head = 'name: "hostile" input: "data" input_dim: 1 input_dim: 3 input_dim: 8 input_dim: 8\n'

    def conv(params="num_output: 4 kernel_size: 3", name="conv", bottom="data", top=None):
        return _CONV.format(name=name, bottom=bottom, top=top or name, params=params)

    def one(kind, param):
        return head + f'layer {{ name: "x" type: "{kind}" bottom: "data" top: "x" {param} }}'

    dims = head.replace("input_dim: 3", "input_dim: 1048576").replace("input_dim: 8", "input_dim: 65536")
    return {
        "bottom-before-its-top": (head + 'layer { name: "relu" type: "ReLU" bottom: "conv" top: "conv" }\n'
                                  + conv(), "bottom 'conv' names no earlier top"),
        "cycle": (head + conv(name="a", bottom="b") + conv(name="b", bottom="a"), "bottom 'b' names no earlier top"),
        "self-cycle": (head + conv(name="a", bottom="a"), "bottom 'a' names no earlier top"),
        "two-writers-of-one-top": (head + conv(name="a", top="x") + conv(name="b", top="x"),
                                   "top 'x' is already produced"),
        "no-bottom": (head + 'layer { name: "relu" type: "ReLU" top: "relu" }', "has no bottom"),
        "unknown-type": (one("Python", ""), "unsupported type 'Python'"),
        "unknown-v1-enum": (head + 'layers { name: "x" type: 999 bottom: "data" top: "x" }',
                            "unsupported type '999'"),
        "no-input": (conv(), "declares no input"),
        "negative-input-dim": (head.replace("input_dim: 8", "input_dim: -8", 1) + conv(), "dimension must be in"),
        "huge-input-dim": (head.replace("input_dim: 8", f"input_dim: {10**12}", 1) + conv(), "dimension must be in"),
        "huge-input-count": (dims + conv(), "at most 2147483648 values"),
        "input-rank-3": ('input: "data" input_shape { dim: 1 dim: 3 dim: 8 }\n' + conv(), "needs a 2-D or 4-D shape"),
        "huge-num-output": (head + conv(f"num_output: {10**12} kernel_size: 3"), "`num_output` must be in"),
        "negative-kernel": (head + conv("num_output: 4 kernel_size: -3"), "`kernel_size` must be in"),
        "kernel-past-input": (head + conv("num_output: 4 kernel_size: 99"), "output would be empty"),
        "zero-stride": (head + conv("num_output: 4 kernel_size: 3 stride: 0"), "`stride` must be in"),
        "three-d-kernel": (head + conv("num_output: 4 kernel_size: 3 kernel_size: 3 kernel_size: 3"),
                           "only 2-D geometry"),
        "group-not-dividing": (head + conv("num_output: 4 kernel_size: 3 group: 2"), "`group` must divide"),
        "text-for-a-number": (head + conv('num_output: "four" kernel_size: 3'), "`num_output` must be an integer"),
        "message-for-a-number": (head + conv("num_output { a: 1 } kernel_size: 3"),
                                 "`num_output` must be an integer"),
        "pool-pad-past-kernel": (one("Pooling", "pooling_param { pool: MAX kernel_size: 2 pad: 2 }"),
                                 "pad < kernel"),
        "pool-unknown-enum": (one("Pooling", "pooling_param { pool: MEDIAN kernel_size: 2 }"),
                              "`pool` must be one of"),
        "eltwise-shapes-differ": (head + conv() + 'layer { name: "e" type: "Eltwise" bottom: "data" bottom: "conv" '
                                                  'top: "e" }', "all bottoms must have one shape"),
        "reshape-wrong-count": (one("Reshape", "reshape_param { shape { dim: 0 dim: 5 dim: -1 } }"),
                                "cannot reshape"),
        "even-lrn": (one("LRN", "lrn_param { local_size: 4 }"), "odd local_size"),
        "batch-statistics": (one("BatchNorm", "batch_norm_param { use_global_stats: false }"),
                             "use_global_stats: false"),
        "train-data-layer": (head + 'layer { name: "mnist" type: "Data" top: "x" }', "convert the deploy prototxt"),
        "deep-nesting": (head + "layer { " + "a { " * 200 + "}" * 200 + " }", "nested deeper than"),
        "unterminated": (head + 'layer { name: "conv" type: "Convolution"', "Malformed prototxt"),
        "binary-garbage": ("\x00\x01\x02layer {\xff", "Malformed prototxt"),
    }
