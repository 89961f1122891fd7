"""TF-slim for the oracle tests: its nets importable on TF 2.21, its variables as a checkpoint reader gives them."""

from __future__ import annotations

import contextlib
import sys

from weights_io.core import WeightFile


def import_tf_slim():
    """tf_slim, after pointing its batch_norm at tf_keras' legacy layers (tf-slim 1.1.0 imports them by a path
    tf-keras 2.21 no longer has)."""
    import tf_keras.src.legacy_tf_layers as legacy_tf_layers

    sys.modules.setdefault("tf_keras.legacy_tf_layers", legacy_tf_layers)
    import tf_slim

    return tf_slim


@contextlib.contextmanager
def tf1_equality():
    """Tensors and variables hashed and compared by identity, as in the TF1 that slim was written for.

    Under TF2's equality every Variable hash first asks whether it runs eagerly, and the legacy layers
    slim builds with put all global variables in a set at each new variable: 5.5 of the 10.9 s that
    building inception_resnet_v2's graph took. TF2's default comes back on exit.
    """
    import tensorflow as tf

    tf.compat.v1.disable_tensor_equality()
    try:
        yield
    finally:
        tf.compat.v1.enable_tensor_equality()


def plain_session(graph):
    """A tf.compat.v1.Session that runs `graph` as written, without Grappler's rewrites.

    Grappler optimises the pruned graph again for every new fetch: 4.6 of the 8.6 s that healing
    slim's ResNet-50 took (53 BatchNorm calibration runs). The plain kernels are the reference here.
    """
    import tensorflow as tf

    config = tf.compat.v1.ConfigProto()
    config.graph_options.rewrite_options.disable_meta_optimizer = True
    return tf.compat.v1.Session(graph=graph, config=config)


def weight_file(values, format="in-memory"):
    """`{variable name: array}` grouped as the TF checkpoint reader groups it: layer = the name up to its last '/'."""
    tensors = {}
    for name, value in values.items():
        layer, _, param = name.rpartition("/")
        tensors.setdefault(layer, {})[param] = value
    return WeightFile(tensors=tensors, convention="tf", format=format)
