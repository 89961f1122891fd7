"""Frozen TensorFlow graphs (`.pb`): the reader against TensorFlow's own parse, detection, refusals.

The real files are FSRCNN_Tensorflow's released models (tests/data/fsrcnn_tensorflow, Apache-2.0);
TensorFlow's `GraphDef.ParseFromString` and `tensor_util.MakeNdarray` are the independent reading.
"""

from __future__ import annotations

import pathlib

import numpy as np
import pytest

import weights_io
from weights_io.errors import WeightFileError
from weights_io.readers import detect_format

MODELS = pathlib.Path(__file__).parent / "data" / "fsrcnn_tensorflow"
GRAPHS = sorted(MODELS.glob("*.pb"))


def tensorflow_graph_def(path):
    """The GraphDef at `path` as TensorFlow's protobuf parses it."""
    import tensorflow as tf

    graph = tf.compat.v1.GraphDef()
    graph.ParseFromString(pathlib.Path(path).read_bytes())
    return graph


def tensorflow_constants(path):
    """{name: array} of every Const node, as TensorFlow itself reads the file."""
    from tensorflow.python.framework import tensor_util

    return {node.name: tensor_util.MakeNdarray(node.attr["value"].tensor)
            for node in tensorflow_graph_def(path).node if node.op == "Const"}


@pytest.mark.parametrize("path", GRAPHS, ids=lambda p: p.stem)
def test_weights_are_tensorflows_float_constants(path):
    assert detect_format(path) == "tf-graphdef"
    weight_file = weights_io.read_weights(path)
    ours = {(layer if not param else f"{layer}/{param}"): array
            for layer, params in weight_file.tensors.items() for param, array in params.items()}
    theirs = tensorflow_constants(path)
    weights = {name: a for name, a in theirs.items() if a.dtype.kind == "f" and a.ndim >= 1}
    assert sorted(ours) == sorted(weights)
    for name, array in weights.items():
        assert ours[name].dtype == array.dtype and ours[name].shape == array.shape, name
        np.testing.assert_array_equal(ours[name], array, err_msg=name)
    skipped = {entry.split(" ")[0] for entry in weight_file.metadata["skipped"]}
    assert skipped == set(theirs) - set(weights)  # the 0.5 scalars of its PReLUs, the NCHW permutation
    assert weight_file.metadata["ops"]["DepthToSpace"] == 1


def test_filled_and_scalar_constants(tmp_path):
    """A Const that stores one value for a whole shape (TensorProto's fill rule) and float16 values."""
    import tensorflow as tf

    graph = tf.Graph()
    with graph.as_default():
        tf.constant(0.25, shape=(3, 2), name="filled")
        tf.constant(np.arange(4, dtype=np.float16), name="half")
        tf.constant(np.arange(6, dtype=np.float64).reshape(2, 3) / 7, name="scope/double")
        tf.constant(2.0, name="scalar")
    path = tmp_path / "consts.pb"
    path.write_bytes(graph.as_graph_def().SerializeToString())
    weight_file = weights_io.read_weights(path)
    np.testing.assert_array_equal(weight_file.tensors["filled"][""], np.full((3, 2), 0.25, np.float32))
    np.testing.assert_array_equal(weight_file.tensors["half"][""], np.arange(4, dtype=np.float16))
    np.testing.assert_array_equal(weight_file.tensors["scope"]["double"], np.arange(6).reshape(2, 3) / 7)
    assert weight_file.metadata["skipped"] == ["scalar (scalar)"]


def test_unfrozen_graph_points_to_the_checkpoint(tmp_path):
    import tensorflow as tf

    graph = tf.Graph()
    with graph.as_default():
        # initialised by random ops: its only constants are a shape and scalars, no weights
        tf.compat.v1.get_variable("kernel", (3, 3), initializer=tf.compat.v1.glorot_uniform_initializer())
    path = tmp_path / "unfrozen.pb"
    path.write_bytes(graph.as_graph_def().SerializeToString())
    assert detect_format(path) == "tf-graphdef"
    with pytest.raises(WeightFileError, match="not frozen.*checkpoint"):
        weights_io.read_weights(path)


def test_damaged_graph_is_a_weight_file_error(tmp_path):
    data = (MODELS / "FSRCNN_x2.pb").read_bytes()
    cut = tmp_path / "cut.pb"
    cut.write_bytes(data[: len(data) - 1000])  # ends inside the first node's tensor bytes
    with pytest.raises(WeightFileError, match="Malformed TensorFlow GraphDef"):
        weights_io.read_weights(cut, format="tf-graphdef")
    text = tmp_path / "notes.pb"
    text.write_bytes(b"node { name: 'f1' op: 'Const' }\n")  # text format, not the binary GraphDef
    with pytest.raises(WeightFileError, match="Unrecognised weight file format"):
        weights_io.read_weights(text)
