"""TensorFlow checkpoints (V2 and V1) read without TensorFlow, checked against `tf.train.load_checkpoint`.

TensorFlow writes every genuine fixture here; the hostile tables come from the
small writer in tests/fuzz/corpus.py.
"""

import os
import random
import shutil

import numpy as np
import pytest

from tests.fuzz.corpus import pb_field, pb_shape, pb_varint, structured_mutation, table_bytes, write_tf_v1_seed
from weights_io import WeightFileError
from weights_io.readers import detect_format, read_weights
from weights_io.readers.protowire import Malformed as _Malformed, varint as _varint
from weights_io.readers.tf_tensors import slice_key

tf = pytest.importorskip("tensorflow")

SUFFIX = "/.ATTRIBUTES/VARIABLE_VALUE"


def _graph_variables(rng):
    """Variables of several dtypes on two devices, one partitioned in 3, one string."""
    with tf.compat.v1.variable_scope("net"):
        with tf.device("/cpu:0"):
            tf.compat.v1.get_variable("conv1/weights", initializer=rng.normal(size=(3, 3, 3, 8)).astype("float32"))
            tf.compat.v1.get_variable("fc/weights", shape=(10, 6), dtype=tf.float32,
                                      initializer=tf.compat.v1.random_normal_initializer(seed=1),
                                      partitioner=tf.compat.v1.fixed_size_partitioner(3))
            tf.compat.v1.get_variable("half", initializer=rng.normal(size=(4, 2)).astype("float16"))
            tf.compat.v1.get_variable("brain", initializer=tf.constant(rng.normal(size=(5,)), tf.bfloat16))
        with tf.device("/cpu:1"):
            tf.compat.v1.get_variable("fc/biases", initializer=rng.normal(size=(6,)))
            tf.compat.v1.get_variable("steps", initializer=np.arange(-3, 3, dtype="int64"))
            tf.compat.v1.get_variable("name", initializer=tf.constant("abc"))


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    root = tmp_path_factory.mktemp("tf_checkpoints")
    rng = np.random.default_rng(0)
    obj = tf.train.Checkpoint(
        w=tf.Variable(rng.normal(size=(3, 3, 2, 4)).astype("float32")),
        h=tf.Variable(rng.normal(size=(5,)).astype("float16")),
        b=tf.Variable(tf.constant(rng.normal(size=(7, 3)), tf.bfloat16)),
        i=tf.Variable(np.arange(6, dtype="int64").reshape(2, 3) - 3),
        s=tf.Variable("hello"),
    )
    obj_prefix = obj.write(str(root / "obj" / "ckpt"))
    graph = tf.Graph()
    with graph.as_default():
        _graph_variables(rng)
        sharded = tf.compat.v1.train.Saver(sharded=True)
        v1 = tf.compat.v1.train.Saver(  # V1 cannot save bfloat16
            [v for v in tf.compat.v1.global_variables() if v.dtype.base_dtype != tf.bfloat16],
            write_version=tf.compat.v1.train.SaverDef.V1)
        config = tf.compat.v1.ConfigProto(device_count={"CPU": 2}, allow_soft_placement=True)
        (root / "sharded").mkdir()
        (root / "v1").mkdir()
        with tf.compat.v1.Session(graph=graph, config=config) as session:
            session.run(tf.compat.v1.global_variables_initializer())
            sharded_prefix = sharded.save(session, str(root / "sharded" / "model.ckpt"), global_step=3,
                                          write_meta_graph=False)
            v1_path = v1.save(session, str(root / "v1" / "model.ckpt"), write_meta_graph=False)
    return {"obj": obj_prefix, "sharded": sharded_prefix, "v1": v1_path, "root": root}


def _by_tf_name(weight_file):
    return {(f"{layer}/{param}" if param else layer): array
            for layer, params in weight_file.tensors.items() for param, array in params.items()}


def _assert_matches_tf(weight_file, reference_path, fallback=None):
    """Every non-string variable equals TensorFlow's own reading (dtype, shape, values)."""
    reader = tf.train.load_checkpoint(reference_path)
    ours = _by_tf_name(weight_file)
    dtypes = reader.get_variable_to_dtype_map()
    expected = {name for name, dtype in dtypes.items() if dtype != tf.string}
    assert {name.removesuffix(SUFFIX) for name in expected} == set(ours)
    for name in expected:
        try:
            reference = reader.get_tensor(name)
        except tf.errors.UnimplementedError:  # TF reads no partitioned variable of a V1 file
            reference = tf.train.load_checkpoint(fallback).get_tensor(name)
        array = ours[name.removesuffix(SUFFIX)]
        assert array.dtype == reference.dtype, name
        assert array.shape == reference.shape, name
        assert np.array_equal(array, reference), name
    skipped = {entry.split(" ")[0] for entry in weight_file.metadata["skipped"]}
    assert skipped == {name for name, dtype in dtypes.items() if dtype == tf.string}


@pytest.mark.parametrize("trusted", [True, False])
@pytest.mark.parametrize("mmap", [False, True])
def test_object_checkpoint_matches_tensorflow(checkpoints, trusted, mmap):
    prefix = checkpoints["obj"]
    weight_file = read_weights(prefix, trusted=trusted, mmap=mmap)
    assert weight_file.format == "tf-checkpoint"
    _assert_matches_tf(weight_file, prefix)
    # TF2 names lose "/.ATTRIBUTES/VARIABLE_VALUE": "w" has no "/", so it is a layer with parameter ""
    assert weight_file.tensors["w"][""].shape == (3, 3, 2, 4)


def test_sharded_partitioned_matches_tensorflow(checkpoints):
    prefix = checkpoints["sharded"]
    assert os.path.exists(prefix + ".data-00001-of-00002")
    for trusted in (True, False):
        weight_file = read_weights(prefix, trusted=trusted)
        _assert_matches_tf(weight_file, prefix)
        assert weight_file.metadata["num_shards"] == 2
        assert set(weight_file.tensors["net/fc"]) == {"weights", "biases"}
        assert weight_file.tensors["net"]["brain"].dtype.name == "bfloat16"


def test_v1_matches_tensorflow(checkpoints):
    for trusted in (True, False):
        weight_file = read_weights(checkpoints["v1"], trusted=trusted)
        assert weight_file.format == "tf-checkpoint-v1"
        _assert_matches_tf(weight_file, checkpoints["v1"], fallback=checkpoints["sharded"])


def test_every_path_form(checkpoints):
    prefix, root = checkpoints["sharded"], checkpoints["root"]
    forms = [prefix, prefix + ".index", prefix + ".data-00000-of-00002", prefix + ".data-00001-of-00002",
             root / "sharded"]
    reference = _by_tf_name(read_weights(prefix, trusted=True))
    for form in forms:
        assert detect_format(form) == "tf-checkpoint", form
        result = _by_tf_name(read_weights(form))
        assert set(result) == set(reference)
        assert all(np.array_equal(result[k], reference[k]) for k in reference), form
    assert detect_format(root / "v1") == "tf-checkpoint-v1"
    assert detect_format(checkpoints["v1"]) == "tf-checkpoint-v1"


def test_mmap_views_of_the_shard(tmp_path):
    """An aligned tensor comes back as a read-only view of the shard (TensorFlow does not pad: a float32 after
    a 10-byte float16 is copied instead)."""
    prefix = _single_variable_checkpoint(tmp_path / "one")
    for trusted in (True, False):
        mapped = read_weights(prefix, mmap=True, trusted=trusted).tensors["only"]["weights"]
        assert not mapped.flags.writeable and not mapped.flags.owndata
        np.testing.assert_array_equal(mapped, np.arange(64, dtype="float32"))
        copied = read_weights(prefix, mmap=False, trusted=trusted).tensors["only"]["weights"]
        assert copied.flags.writeable


def test_detect_format_by_content(checkpoints, tmp_path):
    renamed = tmp_path / "weights.h5"
    shutil.copy(checkpoints["v1"], renamed)
    assert detect_format(renamed) == "tf-checkpoint-v1"
    prefix = checkpoints["obj"]
    (tmp_path / "other.index").write_bytes(open(prefix + ".index", "rb").read())
    (tmp_path / "other.data-00000-of-00001").write_bytes(open(prefix + ".data-00000-of-00001", "rb").read())
    assert detect_format(tmp_path / "other") == "tf-checkpoint"
    fake = tmp_path / "fake.index"  # the name of an index, the content of something else
    np.save(tmp_path / "fake.npy", np.zeros(3))
    os.replace(tmp_path / "fake.npy", fake)
    with pytest.raises(WeightFileError):
        read_weights(fake)


def _single_variable_checkpoint(path):
    graph = tf.Graph()
    with graph.as_default():
        tf.compat.v1.get_variable("only/weights", initializer=np.arange(64, dtype="float32"))
        saver = tf.compat.v1.train.Saver()
        with tf.compat.v1.Session(graph=graph) as session:
            session.run(tf.compat.v1.global_variables_initializer())
            return saver.save(session, str(path), write_meta_graph=False)


def test_crc_mismatch_names_the_variable(tmp_path):
    prefix = _single_variable_checkpoint(tmp_path / "one")
    shard = prefix + ".data-00000-of-00001"
    data = bytearray(open(shard, "rb").read())
    data[100] ^= 0x10
    open(shard, "wb").write(bytes(data))
    for trusted in (True, False):
        with pytest.raises(WeightFileError, match="crc32c") as info:
            read_weights(prefix, trusted=trusted)
        assert "only/weights" in str(info.value)


def test_missing_and_short_shards(checkpoints, tmp_path):
    shutil.copytree(checkpoints["root"] / "sharded", tmp_path / "s")
    prefix = str(tmp_path / "s" / os.path.basename(checkpoints["sharded"]))
    second = prefix + ".data-00001-of-00002"
    os.remove(second)
    with pytest.raises(WeightFileError, match="missing"):
        read_weights(prefix, trusted=True)
    first = prefix + ".data-00000-of-00002"
    open(second, "wb").write(b"")
    with open(first, "r+b") as f:
        f.truncate(40)
    with pytest.raises(WeightFileError, match="past the end of shard"):
        read_weights(prefix)


def _hostile_v2(tmp_path, entries, shard=b"\0" * 64, **table):
    prefix = tmp_path / "hostile"
    header = (b"", pb_field(1, 1))
    (tmp_path / "hostile.index").write_bytes(table_bytes([header] + entries, **table))
    (tmp_path / "hostile.data-00000-of-00001").write_bytes(shard)
    return prefix


def _entry(dtype=1, shape=(4,), offset=0, size=16, **extra):
    out = pb_field(1, dtype) + pb_field(2, pb_shape(shape)) + pb_field(4, offset) + pb_field(5, size)
    return out + b"".join(pb_field(k, v) for k, v in extra.items())


HOSTILE = {
    "shape overflow": [(b"x/w", _entry(shape=(2**62, 2**62, 2**62), size=16))],
    "size disagrees": [(b"x/w", _entry(shape=(4,), size=12))],
    "offset past shard": [(b"x/w", _entry(offset=2**40))],
    "negative dim": [(b"x/w", _entry(shape=(2**64 - 1,)))],
    "unknown dtype": [(b"x/w", _entry(dtype=99))],
    "bad shard id": [(b"x/w", _entry() + pb_field(3, 7))],
    "long varint": [(b"x/w", pb_varint(1 << 3) + b"\xff" * 11 + b"\x01")],
    "truncated field": [(b"x/w", pb_field(2, b"abc")[:-1])],
    "missing slice": [(b"x/w", _entry(shape=(4,), size=0) + pb_field(7, pb_field(1, b"")))],
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_entries(tmp_path, case):
    prefix = _hostile_v2(tmp_path, HOSTILE[case])
    for trusted in (True, False):
        with pytest.raises(WeightFileError) as info:
            read_weights(prefix, format="tf-checkpoint", trusted=trusted)
        assert "Could not read" not in str(info.value), str(info.value)  # our own check, not the safety net


def test_hostile_tables(tmp_path):
    fine = _hostile_v2(tmp_path, [(b"x/w", _entry())])
    assert read_weights(fine, trusted=True).tensors["x"]["w"].shape == (4,)
    for handles in ([(0, 10**9)], [(0, 0)] * 2, [(10**12, 5)]):  # past the file, the same block twice
        _hostile_v2(tmp_path, [(b"x/w", _entry())], index_handles=handles)
        with pytest.raises(WeightFileError):
            read_weights(fine, format="tf-checkpoint")
    index = tmp_path / "hostile.index"
    good = table_bytes([(b"", pb_field(1, 1)), (b"x/w", _entry())])
    for cut in (0, 10, 47, len(good) - 48, len(good) - 1):
        index.write_bytes(good[:cut])
        with pytest.raises(WeightFileError):
            read_weights(fine, format="tf-checkpoint")
    flipped = bytearray(good)
    flipped[3] ^= 1  # inside the data block: its crc32c trailer no longer matches
    index.write_bytes(bytes(flipped))
    with pytest.raises(WeightFileError, match="crc32c"):
        read_weights(fine, format="tf-checkpoint", trusted=True)


def test_varint_limits():
    assert _varint(b"\xff" * 9 + b"\x01", 0, 10) == (2**64 - 1, 10)
    with pytest.raises(_Malformed, match="10 bytes"):
        _varint(b"\xff" * 11, 0, 11)
    with pytest.raises(_Malformed, match="past the end"):
        _varint(b"\xff\xff", 0, 2)


def test_slice_key_is_tensorflows():
    """The partitioned variable's slices are found under TensorFlow's own keys (checked by the sharded test);
    here the OrderedCode corner cases: large and negative numbers, escaped bytes."""
    key = slice_key("a\x00b", ((0, -1), (64, 100000)))
    assert key == b"\x00" + b"a\x00\xffb" + b"\x00\x01" + b"\x01\x02" + b"\x80\x7f" + b"\x80\x40" + b"\xc1\x86\xa0"


def test_v1_seed_and_fuzz(tmp_path):
    rng = np.random.default_rng(0)
    kernel, bias = write_tf_v1_seed(tmp_path / "seed.ckpt", rng)
    weight_file = read_weights(tmp_path / "seed.ckpt")
    assert np.array_equal(weight_file.tensors["net/conv1"]["weights"], kernel)
    assert np.array_equal(weight_file.tensors["net/conv1"]["biases"], bias)


def test_structured_damage(checkpoints, tmp_path):
    """Damaged tables and shards of genuine checkpoints read or raise our own WeightFileError, never a stray one."""
    shutil.copytree(checkpoints["root"] / "sharded", tmp_path / "s")
    prefix = str(tmp_path / "s" / os.path.basename(checkpoints["sharded"]))
    files = {"index": prefix + ".index", "data": prefix + ".data-00000-of-00002", "v1": checkpoints["v1"]}
    originals = {name: open(path, "rb").read() for name, path in files.items()}
    case = tmp_path / "case.ckpt"
    rng = random.Random(0)
    for i in range(300):
        which = rng.choice(sorted(files))
        _, data = structured_mutation(rng, originals[which])
        if which == "v1":
            case.write_bytes(data)
            target, fmt = case, "tf-checkpoint-v1"
        else:
            for name in ("index", "data"):
                open(files[name], "wb").write(data if name == which else originals[name])
            target, fmt = prefix, "tf-checkpoint"
        try:
            result = read_weights(target, format=fmt, trusted=i % 10 != 0)
            for array in result.flat().values():
                array.sum()
        except WeightFileError as err:
            assert "Could not read" not in str(err), str(err)


def _v1_table(shape, slices, dtype=1):
    """A V1 table: one float tensor `x/w` of `shape` and `slices` [(key, extents, TensorProto fields)]."""
    extent = lambda e: pb_field(1, (pb_field(1, e[0]) if e[0] else b"") + (pb_field(2, e[1]) if e[1] >= 0 else b""))  # noqa: E731
    meta = pb_field(1, pb_field(1, b"x/w") + pb_field(2, pb_shape(shape)) + pb_field(3, dtype))
    entries = [(b"", pb_field(1, meta))]
    for key, extents, tensor in slices:
        saved = pb_field(1, b"x/w") + pb_field(2, b"".join(extent(e) for e in extents)) + pb_field(3, tensor)
        entries.append((key, pb_field(2, saved)))
    return table_bytes(entries)


def _floats(values):
    return pb_field(5, np.asarray(values, "<f4").tobytes())


HOSTILE_V1 = {
    "shape overflow": ((2**62, 2**62), []),
    "no data": ((4,), []),
    "too few values": ((4,), [(b"\x00a", ((0, -1),), _floats([1, 2, 3]))]),
    "extent outside": ((4,), [(b"\x00a", ((2, 5),), _floats([1] * 5))]),
    "overlap": ((4,), [(b"\x00a", ((0, 3),), _floats([1] * 3)), (b"\x00b", ((2, 2),), _floats([1] * 2))]),
    "gap": ((4,), [(b"\x00a", ((0, 2),), _floats([1] * 2))]),
    "unpacked flood": ((4,), [(b"\x00a", ((0, -1),), b"".join(pb_field(5, (5, b"\0\0\0\0")) for _ in range(40)))]),
    "varint count": ((4,), [(b"\x00a", ((0, -1),), pb_field(10, b"\x01\x02\x03"))]),
    "long varint": ((1,), [(b"\x00a", ((0, -1),), pb_field(10, b"\xff" * 11 + b"\x01"))]),
    "content size": ((4,), [(b"\x00a", ((0, -1),), pb_field(4, b"\0" * 15))]),
}


@pytest.mark.parametrize("case", sorted(HOSTILE_V1))
def test_hostile_v1(tmp_path, case):
    shape, slices = HOSTILE_V1[case]
    path = tmp_path / "hostile.ckpt"
    path.write_bytes(_v1_table(shape, slices, dtype=9 if case in ("varint count", "long varint") else 1))
    assert detect_format(path) == "tf-checkpoint-v1"
    for trusted in (True, False):
        with pytest.raises(WeightFileError) as info:
            read_weights(path, trusted=trusted)
        assert "Could not read" not in str(info.value), str(info.value)


def test_v1_fill_rule_and_split_slices(tmp_path):
    """One value fills the slice (TensorProto's rule); two slices make one array."""
    path = tmp_path / "fine.ckpt"
    path.write_bytes(_v1_table((2, 3), [(b"\x00a", ((0, 1), (0, -1)), _floats([7])),
                                        (b"\x00b", ((1, 1), (0, -1)), _floats([1, 2, 3]))]))
    np.testing.assert_array_equal(read_weights(path).tensors["x"]["w"], [[7, 7, 7], [1, 2, 3]])
