"""TF-slim resnet_v1 / resnet_v2 (tf_slim.nets, graph mode) vs ours built with TF_SLIM and its layouts."""

from __future__ import annotations

import functools
import tempfile

import numpy as np
import pytest

import kerasnets
import weights_io
from kerasnets.resnet import TF_SLIM
from tests.oracle.slim import import_tf_slim, plain_session, tf1_equality, weight_file
from tests.references import assert_parity, heal_tf_graph, infer
from weights_io.errors import WeightMismatchError

tf = pytest.importorskip("tensorflow")
tf_keras = pytest.importorskip("tf_keras")
pytest.importorskip("tf_slim")

SHAPE = (72, 88, 3)  # odd sizes on the way down: TF 'SAME' and conv2d_same both matter


@functools.lru_cache(maxsize=None)  # each net serves several tests; tests/conftest.py clears it after the file
def _slim(version, depth, classes):
    """(logits of two inputs, {variable name: value}, inputs, checkpoint prefix, its folder) of a healed
    tf_slim resnet; the folder (a TemporaryDirectory) is deleted once the cache lets go of it."""
    tf_slim = import_tf_slim()
    from tf_slim.nets import resnet_v1, resnet_v2

    module = {"v1": resnet_v1, "v2": resnet_v2}[version]
    rng = np.random.default_rng(7)
    batch, x = rng.normal(size=(8,) + SHAPE), rng.normal(size=(2,) + SHAPE).astype("float32")
    graph = tf.Graph()
    with graph.as_default():
        inputs = tf.compat.v1.placeholder(tf.float32, (None,) + SHAPE)
        with tf_slim.arg_scope(module.resnet_arg_scope()), tf1_equality():
            logits, _ = getattr(module, f"resnet_{version}_{depth}")(inputs, num_classes=classes, is_training=False)
        with plain_session(graph) as session:
            session.run(tf.compat.v1.global_variables_initializer())
            heal_tf_graph(session, inputs, batch, scope=f"resnet_{version}_{depth}")
            out = session.run(logits, {inputs: x}).reshape(len(x), -1)
            variables = session.run({v.op.name: v for v in tf.compat.v1.global_variables()})  # one run
            # a real checkpoint, for the tf-checkpoint reader (V2: prefix.index + data shard)
            folder = tempfile.TemporaryDirectory(prefix="slim-resnet-")
            checkpoint = tf.compat.v1.train.Saver().save(session, folder.name + "/model.ckpt")
    return out, variables, x, checkpoint, folder


def _ours(version, depth, classes, **options):
    name = f"resnet{depth}" if version == "v1" else f"resnet{depth}_v2"
    return kerasnets.build(name, input_shape=SHAPE, classes=classes, classifier_activation=None, **options)


@pytest.mark.parametrize("version, depth, classes", [("v1", 50, 1000), ("v2", 50, 1001), ("v1", 50, 1001)])
def test_slim_parity(version, depth, classes):
    reference, variables, x, *_ = _slim(version, depth, classes)
    layout = weights_io.get_layout(f"tf-slim-resnet-{version}")
    file = weight_file(variables)
    ours = _ours(version, depth, 1000, **TF_SLIM)
    assert weights_io.detect_layout([w.name for w in weights_io.assign.weighted_layers(ours)], file) is layout
    report = weights_io.assign_weights(ours, file, layout)
    assert report.ok and not report.unexpected
    if classes == 1001:  # background class 0 dropped by default
        assert any("background" in note for _, _, note in report.loaded)
        reference = reference[:, 1:]
    assert_parity(infer(ours, x), reference, what=f"slim resnet_{version}_{depth} ({classes} classes)")


def test_keep_background():
    reference, variables, x, *_ = _slim("v2", 50, 1001)
    layout = weights_io.get_layout("tf-slim-resnet-v2")
    ours = _ours("v2", 50, 1001, **TF_SLIM)
    with pytest.raises(WeightMismatchError, match="keep_background"):
        weights_io.assign_weights(ours, weight_file(variables), layout)
    weights_io.assign_weights(ours, weight_file(variables), layout, keep_background=True)
    assert_parity(infer(ours, x), reference, what="slim resnet_v2_50 keep_background")


def test_wrong_options_are_loud():
    """Slim weights into keras.applications-style v2 (eps 1.001e-5, padded stem pool): refused, model untouched."""
    _, variables, *_ = _slim("v2", 50, 1001)
    ours = _ours("v2", 50, 1000)
    before = [np.array(w) for w in ours.get_weights()[:3]]
    with pytest.raises(WeightMismatchError, match="stem_pool"):
        weights_io.assign_weights(ours, weight_file(variables), weights_io.get_layout("tf-slim-resnet-v2"))
    assert all(np.array_equal(a, b) for a, b in zip(before, ours.get_weights()[:3]))


def test_checkpoint_file_loads_by_detected_layout():
    """Saver's checkpoint -> weights_io.load_weights (reader, sandbox, detected layout), background dropped."""
    if "tf-checkpoint" not in weights_io.READERS:
        pytest.skip("no tf-checkpoint reader")
    reference, _, x, checkpoint, _ = _slim("v2", 50, 1001)
    ours = _ours("v2", 50, 1000, **TF_SLIM)
    report = weights_io.load_weights(ours, checkpoint)
    assert report.layout == "tf-slim-resnet-v2" and report.ok and not report.unexpected
    assert_parity(infer(ours, x), reference[:, 1:], what="slim resnet_v2_50 checkpoint file")
