"""Caffe `.caffemodel` and `.prototxt` reading, checked against protobuf's own runtime.

pycaffe is not installable here, so the independent decoder is the `protobuf` package (a TensorFlow
dependency) given, at test time, just the caffe.proto messages and fields the reader uses (field numbers
from BVLC/caffe `src/caffe/proto/caffe.proto`). The V2 files are written by that runtime too, never by
weights_io.
"""

import random
import shutil

import numpy as np
import pytest

from tests.fuzz.corpus import pb_field, pb_varint
from weights_io import WeightFileError
from weights_io.readers import detect_format, read_weights
from weights_io.readers.caffe import layers_in_phase, read_prototxt
from weights_io.readers.prototxt import Enum, TextFormatError, parse

descriptor_pb2 = pytest.importorskip("google.protobuf.descriptor_pb2")
from google.protobuf import descriptor_pool, message_factory  # noqa: E402

_F = descriptor_pb2.FieldDescriptorProto
_OPT, _REP = _F.LABEL_OPTIONAL, _F.LABEL_REPEATED
# (message, [(field name, number, label, type, message type or None, packed?)])
_SCHEMA = (
    ("BlobShape", [("dim", 1, _REP, _F.TYPE_INT64, None, True)]),
    ("BlobProto", [("num", 1, _OPT, _F.TYPE_INT32, None, False), ("channels", 2, _OPT, _F.TYPE_INT32, None, False),
                   ("height", 3, _OPT, _F.TYPE_INT32, None, False), ("width", 4, _OPT, _F.TYPE_INT32, None, False),
                   ("data", 5, _REP, _F.TYPE_FLOAT, None, True),
                   ("shape", 7, _OPT, _F.TYPE_MESSAGE, "BlobShape", False),
                   ("double_data", 8, _REP, _F.TYPE_DOUBLE, None, True)]),
    # the same fields unpacked: what an old writer (or a hand-made file) may hold, wire-compatible
    ("BlobProtoUnpacked", [("data", 5, _REP, _F.TYPE_FLOAT, None, False),
                           ("shape", 7, _OPT, _F.TYPE_MESSAGE, "BlobShape", False)]),
    ("ConvolutionParameter", [("num_output", 1, _OPT, _F.TYPE_UINT32, None, False),
                              ("group", 5, _OPT, _F.TYPE_UINT32, None, False)]),
    ("LayerParameter", [("name", 1, _OPT, _F.TYPE_STRING, None, False), ("type", 2, _OPT, _F.TYPE_STRING, None, False),
                        ("bottom", 3, _REP, _F.TYPE_STRING, None, False), ("top", 4, _REP, _F.TYPE_STRING, None, False),
                        ("blobs", 7, _REP, _F.TYPE_MESSAGE, "BlobProto", False),
                        ("convolution_param", 106, _OPT, _F.TYPE_MESSAGE, "ConvolutionParameter", False)]),
    ("V1LayerParameter", [("bottom", 2, _REP, _F.TYPE_STRING, None, False),
                          ("top", 3, _REP, _F.TYPE_STRING, None, False),
                          ("name", 4, _OPT, _F.TYPE_STRING, None, False), ("type", 5, _OPT, _F.TYPE_INT32, None, False),
                          ("blobs", 6, _REP, _F.TYPE_MESSAGE, "BlobProto", False)]),
    ("NetParameter", [("name", 1, _OPT, _F.TYPE_STRING, None, False),
                      ("layers", 2, _REP, _F.TYPE_MESSAGE, "V1LayerParameter", False),
                      ("input", 3, _REP, _F.TYPE_STRING, None, False),
                      ("input_dim", 4, _REP, _F.TYPE_INT32, None, False),
                      ("layer", 100, _REP, _F.TYPE_MESSAGE, "LayerParameter", False)]),
)


@pytest.fixture(scope="module")
def pb():
    """{message name: class} built from `_SCHEMA` by protobuf's runtime."""
    proto = descriptor_pb2.FileDescriptorProto(name="caffe_subset_test.proto", package="caffetest", syntax="proto2")
    for message, fields in _SCHEMA:
        m = proto.message_type.add(name=message)
        for name, number, label, kind, type_name, packed in fields:
            f = m.field.add(name=name, number=number, label=label, type=kind)
            if type_name:
                f.type_name = f".caffetest.{type_name}"
            if label == _REP and kind not in (_F.TYPE_MESSAGE, _F.TYPE_STRING):
                f.options.packed = packed
    pool = descriptor_pool.DescriptorPool()
    pool.Add(proto)
    return {name: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"caffetest.{name}"))
            for name, _ in _SCHEMA}


@pytest.fixture(scope="module")
def lenet(fixtures_dir):
    return fixtures_dir / "caffe" / "lenet_iter_10000.caffemodel"


# ---------------------------------------------------------------------------------------------------------
# the real file


def test_lenet_against_its_readme_and_protobuf(lenet, pb):
    weights = read_weights(lenet)
    assert weights.format == "caffemodel" and weights.convention == "torch"
    shapes = {layer: {k: v.shape for k, v in params.items()} for layer, params in weights.tensors.items()}
    assert shapes == {"conv1": {"0": (20, 1, 5, 5), "1": (20,)}, "conv2": {"0": (50, 20, 5, 5), "1": (50,)},
                      "ip1": {"0": (500, 800), "1": (500,)}, "ip2": {"0": (10, 500), "1": (10,)}}
    assert all(np.isfinite(a).all() and a.dtype == np.float32 for a in weights.flat().values())
    assert weights.metadata["version"] == "V1" and weights.metadata["name"] == "LeNet"
    assert weights.metadata["layer_types"]["conv1"] == "Convolution"
    assert weights.metadata["layer_types"]["ip1"] == "InnerProduct"
    assert weights.metadata["layer_types"]["relu1"] == "ReLU"
    net = pb["NetParameter"].FromString(lenet.read_bytes())
    assert not net.layer and len(net.layers) == 9
    seen = 0
    for layer in net.layers:
        for k, blob in enumerate(layer.blobs):
            legacy = (blob.num, blob.channels, blob.height, blob.width)
            ours = weights.tensors[layer.name][str(k)]
            expected = np.array(blob.data, np.float32)
            assert expected.size == np.prod(legacy)
            assert np.array_equal(ours.reshape(-1), expected)
            # the squeeze keeps the trailing legacy axes: an InnerProduct weight (1, 1, out, in) -> (out, in)
            assert legacy[-ours.ndim:] == ours.shape and all(d == 1 for d in legacy[:-ours.ndim])
            seen += 1
    assert seen == 8
    assert net.layers[1].type == 4 and net.layers[5].type == 14  # CONVOLUTION, INNER_PRODUCT


def test_lenet_sandbox_trusted_and_mmap_agree(lenet):
    sandboxed = read_weights(lenet)
    trusted = read_weights(lenet, trusted=True)
    mapped = read_weights(lenet, mmap=True)
    mapped_here = read_weights(lenet, mmap=True, trusted=True)
    assert sandboxed.metadata == trusted.metadata
    for key, array in trusted.flat().items():
        for other in (sandboxed, mapped, mapped_here):
            assert np.array_equal(other.flat()[key], array) and other.flat()[key].shape == array.shape
    views = [a for a in mapped.flat().values() if not a.flags.writeable]
    assert len(views) == len(trusted.flat())  # every packed blob is a view of the file, aligned or not
    assert any(not a.flags.aligned for a in views)  # protobuf does not align them: numpy reads them anyway
    assert all(a.flags.writeable for a in trusted.flat().values())


def test_lenet_prototxt(fixtures_dir):
    net = read_prototxt(fixtures_dir / "caffe" / "lenet.prototxt")
    assert net["name"] == "LeNet" and net["version"] == "V1"
    assert net["inputs"] == [{"name": "data", "shape": [64, 1, 28, 28]}]
    assert [(l["name"], l["type"]) for l in net["layers"]] == [
        ("conv1", "Convolution"), ("pool1", "Pooling"), ("conv2", "Convolution"), ("pool2", "Pooling"),
        ("ip1", "InnerProduct"), ("relu1", "ReLU"), ("ip2", "InnerProduct"), ("prob", "Softmax")]
    conv2 = net["layers"][2]
    assert conv2["bottoms"] == ["pool1"] and conv2["tops"] == ["conv2"]
    assert conv2["params"]["convolution_param"]["num_output"] == 50
    assert conv2["params"]["convolution_param"]["kernel_size"] == [5]
    assert net["layers"][1]["params"]["pooling_param"]["pool"] == "MAX"
    assert net["layers"][5]["bottoms"] == net["layers"][5]["tops"] == ["ip1"]


# ---------------------------------------------------------------------------------------------------------
# V2 files written by protobuf's runtime


def _v2_net(pb, rng):
    net = pb["NetParameter"](name="written")
    net.input.append("data")
    net.input_dim.extend([1, 4, 8, 8])
    conv = net.layer.add(name="conv_g", type="Convolution", bottom=["data"], top=["conv_g"])
    conv.convolution_param.num_output, conv.convolution_param.group = 6, 2
    weight = rng.normal(size=(6, 2, 3, 3)).astype(np.float32)  # grouped: in/group = 4/2
    conv.blobs.add(shape=pb["BlobShape"](dim=weight.shape), data=weight.ravel())
    bias = rng.normal(size=6).astype(np.float32)
    unpacked = pb["BlobProtoUnpacked"](shape=pb["BlobShape"](dim=[6]), data=bias)
    conv.blobs.add().MergeFromString(unpacked.SerializeToString())
    net.layer.add(name="relu", type="ReLU", bottom=["conv_g"], top=["conv_g"])
    fc = net.layer.add(name="fc", type="InnerProduct", bottom=["conv_g"], top=["fc"])
    fc_weight = rng.normal(size=(3, 384))
    fc.blobs.add(shape=pb["BlobShape"](dim=fc_weight.shape), double_data=fc_weight.ravel())
    fc_bias = rng.normal(size=3).astype(np.float32)
    fc.blobs.add(num=1, channels=1, height=1, width=3, data=fc_bias)  # legacy dims in a V2 file
    bn = net.layer.add(name="bn", type="BatchNorm", bottom=["fc"], top=["fc"])
    stats = [rng.random(3).astype(np.float32), rng.random(3).astype(np.float32), np.array([2.0], np.float32)]
    for blob in stats:
        bn.blobs.add(shape=pb["BlobShape"](dim=blob.shape), data=blob)
    expected = {"conv_g": {"0": weight, "1": bias}, "fc": {"0": fc_weight, "1": fc_bias},
                "bn": {"0": stats[0], "1": stats[1], "2": stats[2]}}
    return net.SerializeToString(), expected


@pytest.mark.parametrize("trusted", [True, False])
def test_v2_written_by_protobuf(tmp_path, pb, trusted):
    data, expected = _v2_net(pb, np.random.default_rng(0))
    assert b"\x2d" in data  # an unpacked float: field 5, wire type 5
    path = tmp_path / "net.weights.pth"  # a misleading extension: detection reads the content
    path.write_bytes(data)
    assert detect_format(path) == "caffemodel"
    weights = read_weights(path, trusted=trusted)
    assert weights.metadata["version"] == "V2"
    assert weights.metadata["inputs"] == [{"name": "data", "shape": [1, 4, 8, 8]}]
    assert weights.metadata["layer_types"] == {"conv_g": "Convolution", "relu": "ReLU", "fc": "InnerProduct",
                                               "bn": "BatchNorm"}
    assert set(weights.tensors) == set(expected)
    for layer, params in expected.items():
        assert list(weights.tensors[layer]) == list(params)
        for k, array in params.items():
            got = weights.tensors[layer][k]
            assert got.shape == array.shape and got.dtype == array.dtype and np.array_equal(got, array), (layer, k)


def test_detect_format_renamed_and_other_fixtures_unchanged(tmp_path, lenet, fixtures_dir):
    renamed = tmp_path / "model.npy"
    shutil.copy(lenet, renamed)
    assert detect_format(renamed) == "caffemodel"
    expected = {"npy/det1.npy": "npy", "npy/det2.npy": "npy", "pth/dncnn_25.pth": "torch-legacy",
                "pth/resnet20-12fca82f.th": "torch-legacy", "mat/iter1_weights.mat": "mat"}
    for name, fmt in expected.items():
        assert detect_format(fixtures_dir / name) == fmt
    prototxt = tmp_path / "lenet.caffemodel"
    shutil.copy(fixtures_dir / "caffe" / "lenet.prototxt", prototxt)
    with pytest.raises(WeightFileError, match="Unrecognised"):
        detect_format(prototxt)  # text is no NetParameter


# ---------------------------------------------------------------------------------------------------------
# refusals


def _write(tmp_path, data, name="bad.caffemodel"):
    path = tmp_path / name
    path.write_bytes(data)
    return path


def _v1_layer(blob, name=b"ip", kind=14):
    return pb_field(2, pb_field(4, name) + pb_field(5, kind) + pb_field(6, blob))


def _shape(*dims):
    return pb_field(7, pb_field(1, b"".join(pb_varint(d) for d in dims)))


def test_v0_is_refused_by_name(tmp_path, pb):
    v0 = pb_field(1, b"old") + pb_field(2, pb_field(1, pb_field(1, b"conv1") + pb_field(2, b"conv")) + pb_field(2, b"data"))
    path = _write(tmp_path, v0)
    assert detect_format(path) == "caffemodel"
    for trusted in (True, False):
        with pytest.raises(WeightFileError, match="V0 Caffe files are not supported"):
            read_weights(path, trusted=trusted)


HOSTILE = {  # case: (bytes, what the error says)
    "varint longer than 10 bytes": (pb_field(1, b"n") + b"\x12" + b"\xff" * 11 + b"\x01", "longer than 10 bytes"),
    "length past the end": (pb_field(1, b"n") + b"\x12" + pb_varint(1000) + b"\x22\x02ip", "runs past the end"),
    "data count not matching the shape": (_v1_layer(_shape(2, 3) + pb_field(5, np.zeros(5, "<f4").tobytes())),
                                          r"shape \[2, 3\] \(6 values\) holds 5"),
    "absurd shape": (_v1_layer(_shape(1 << 40, 1 << 40, 1 << 40) + pb_field(5, np.zeros(4, "<f4").tobytes())), "holds 4"),
    "negative dimension": (_v1_layer(_shape(-4, -1) + pb_field(5, np.zeros(4, "<f4").tobytes())), "negative dimension"),
    "packed data not whole floats": (_v1_layer(_shape(1) + pb_field(5, b"\0\0\0\0\0")), "whole number"),
    "legacy dims past int32": (_v1_layer(pb_varint(1 << 3) + pb_varint(1 << 33) + pb_field(5, np.zeros(1, "<f4").tobytes())),
                               "too large legacy"),
    "a layer name of the wrong wire type": (pb_field(2, pb_varint(4 << 3) + pb_varint(7)), "wire type 0"),
    "V1 and V2 layers together": (_v1_layer(_shape(1) + pb_field(5, b"\0" * 4)) + pb_field(100, pb_field(1, b"x") + pb_field(2, b"ReLU")),
                                  "both V1"),
    "no layers": (pb_field(1, b"LeNet"), "no layers"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_files_raise_weight_file_error(tmp_path, case):
    data, message = HOSTILE[case]
    path = _write(tmp_path, data)
    for trusted in (True, False):
        with pytest.raises(WeightFileError, match=message):
            read_weights(path, format="caffemodel", trusted=trusted)


def test_fuzz_seed_and_its_mutations(tmp_path, lenet):
    """The fuzz corpus' Caffe seed reads back as written; damaged copies of it and of LeNet raise only
    WeightFileError from the reader itself (no net of read_weights' to catch a stray exception)."""
    from tests.fuzz.corpus import structured_mutation, write_caffe_seed
    from weights_io.readers import READERS

    seed = tmp_path / "seed.caffemodel"
    arrays = write_caffe_seed(seed, np.random.default_rng(1))
    weights = read_weights(seed)
    for layer, blobs in arrays.items():
        for k, array in enumerate(blobs):
            got = weights.tensors[layer][str(k)]
            assert got.dtype == array.dtype and np.array_equal(got, array)
    rng = random.Random(0)
    outcomes = {"read": 0, "refused": 0}
    for data in (seed.read_bytes(), lenet.read_bytes()):
        for _ in range(150):
            case = _write(tmp_path, structured_mutation(rng, data)[1], "case.caffemodel")
            try:
                READERS["caffemodel"](str(case), mmap=rng.random() < 0.5)
                outcomes["read"] += 1
            except WeightFileError:
                outcomes["refused"] += 1
    assert outcomes["read"] and outcomes["refused"]


def test_truncated_lenet_raises(tmp_path, lenet):
    data = lenet.read_bytes()
    for cut in (1, 7, 100, 4000, len(data) // 2, len(data) - 1):
        path = _write(tmp_path, data[:cut], f"cut{cut}.caffemodel")
        with pytest.raises(WeightFileError):
            read_weights(path, format="caffemodel", trusted=True)
    with pytest.raises(WeightFileError):
        read_weights(_write(tmp_path, data[:len(data) // 2], "half.caffemodel"))  # detection and sandbox too


# ---------------------------------------------------------------------------------------------------------
# prototxt


V2_PROTOTXT = r'''
name: "tiny"  # a comment
layer { name: "data" type: "Input" top: "data" input_param { shape: { dim: 1 dim: 3 dim: 32 dim: 32 } } }
layer {
  name: "conv1"; type: "Convolution"
  bottom: "data" top: "conv1"
  param { lr_mult: 1 } param { lr_mult: 2 }
  convolution_param { num_output: 8 kernel_size: 3 pad: 1 group: 1 bias_term: true
                      weight_filler { type: "msra" std: 1e-2 } }
}
layer { name: "drop" type: "Dropout" bottom: "conv1" top: "conv1" dropout_param { dropout_ratio: .5 }
        include { phase: TRAIN } }
layer { name: "acc" type: "Accuracy" bottom: "conv1" top: "acc" exclude { phase: TRAIN } }
layer { name: "label\"s" type: 'Eltwise' bottom: "a" bottom: "b" top: "c"
        eltwise_param { operation: SUM coeff: [1, -1] } }
'''


def test_v2_prototxt(tmp_path):
    net = read_prototxt(_write(tmp_path, V2_PROTOTXT.encode(), "tiny.prototxt"))
    assert net["version"] == "V2" and net["name"] == "tiny"
    assert net["inputs"] == [{"name": "data", "shape": [1, 3, 32, 32]}]
    layers = {l["name"]: l for l in net["layers"]}
    conv = layers["conv1"]["params"]
    assert conv["param"] == [{"lr_mult": 1}, {"lr_mult": 2}]
    assert conv["convolution_param"]["bias_term"] is True
    assert conv["convolution_param"]["weight_filler"] == {"type": "msra", "std": 0.01}
    assert layers["drop"]["include"] == [{"phase": "TRAIN"}]
    assert layers['label"s']["params"]["eltwise_param"] == {"operation": "SUM", "coeff": [1, -1]}
    assert layers['label"s']["bottoms"] == ["a", "b"]
    assert [l["name"] for l in layers_in_phase(net, "TEST")] == ["data", "conv1", "acc", 'label"s']
    assert [l["name"] for l in layers_in_phase(net, "TRAIN")] == ["data", "conv1", "drop", 'label"s']


def test_text_format_values():
    parsed = parse(r'''s: "a\n\101\x42\u00e9" "+" 'q' n: -3 h: 0x1F o: 017 f: 2.5f e: -1E3 i: -inf b: false
                     m < k: TEST > m: { } ''')
    assert parsed["s"] == ["a\nAB\u00e9+q"]
    assert parsed["n"] == [-3] and parsed["h"] == [31] and parsed["o"] == [15]
    assert parsed["f"] == [2.5] and parsed["e"] == [-1000.0] and parsed["i"] == [float("-inf")]
    assert parsed["b"] == [False] and parsed["m"] == [{"k": [Enum("TEST")]}, {}]
    assert isinstance(parsed["m"][0]["k"][0], Enum) and not isinstance(parsed["s"][0], Enum)


@pytest.mark.parametrize("text", ['a: "unterminated', "a { b: 1", "a: }", "a 1", "{", 'a: "\\q"', "a: [1, 2",
                                  "a" + " { b" * 200 + " }" * 200, "a: @"])
def test_text_format_errors(tmp_path, text):
    with pytest.raises(TextFormatError):
        parse(text)
    with pytest.raises(WeightFileError, match="Malformed prototxt"):
        read_prototxt(_write(tmp_path, text.encode(), "bad.prototxt"))
