"""TF-slim for the oracle tests: its nets importable on TF 2.21, its variables as a checkpoint reader gives them."""

from __future__ import annotations

import sys

from weights_io.core import WeightFile


def import_tf_slim():
    """tf_slim, after pointing its batch_norm at tf_keras' legacy layers (tf-slim 1.1.0 imports them by a path
    tf-keras 2.21 no longer has)."""
    import tf_keras.src.legacy_tf_layers as legacy_tf_layers

    sys.modules.setdefault("tf_keras.legacy_tf_layers", legacy_tf_layers)
    import tf_slim

    return tf_slim


def weight_file(values, format="in-memory"):
    """`{variable name: array}` grouped as the TF checkpoint reader groups it: layer = the name up to its last '/'."""
    tensors = {}
    for name, value in values.items():
        layer, _, param = name.rpartition("/")
        tensors.setdefault(layer, {})[param] = value
    return WeightFile(tensors=tensors, convention="tf", format=format)
