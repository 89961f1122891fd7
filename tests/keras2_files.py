"""Keras 1/2 weight files (`layer_names` / `weight_names` HDF5) rebuilt from a recorded structure.

`tests/data/keras2/*.json` record what real Keras 2 code (tf_keras) saved for a
keras.applications model: every layer name in its order, each layer's weight
names and shapes, and the logits tf_keras computed after loading the weights
`fill_weights` makes from that structure (see make_keras2_fixtures.py). A test
rebuilds the file with `write_keras2_h5` and checks our loader against those
logits, without tf_keras installed.
"""

from __future__ import annotations

import json
import os

import h5py
import numpy as np

KERAS2_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "keras2")


def read_structure(name):
    with open(os.path.join(KERAS2_DIR, f"{name}.json")) as f:
        return json.load(f)


def fill_weights(structure, seed=0):
    """Deterministic, numerically tame values for every weight, in file order.

    He-scaled kernels, small biases, BN statistics near (0, 1): activations keep
    their scale through a hundred layers, so the logits are a sharp check.
    """
    rng = np.random.default_rng(seed)
    arrays = {}
    for layer in structure["layer_names"]:
        for weight_name, shape in structure["weights"].get(layer, []):
            param = weight_name.rpartition("/")[2].split(":")[0]
            if param in ("kernel", "depthwise_kernel"):
                fan_in = int(np.prod(shape[:-1])) if param == "kernel" else int(np.prod(shape[:2]))
                value = rng.normal(size=shape) * np.sqrt(2.0 / fan_in)
            elif param in ("gamma", "moving_variance"):
                value = rng.uniform(0.8, 1.2, size=shape)
            else:  # bias, beta, moving_mean
                value = rng.normal(size=shape) * 0.05
            arrays[(layer, weight_name)] = value.astype("float32")
    return arrays


def input_batch(structure, seed=1):
    return np.random.default_rng(seed).uniform(-1, 1, size=(1, *structure["input_shape"])).astype("float32")


def write_keras2_h5(path, structure, arrays):
    """The file `keras.Model.save_weights("x.h5")` wrote in Keras 2 for this structure."""
    with h5py.File(path, "w") as f:
        f.attrs["layer_names"] = [name.encode() for name in structure["layer_names"]]
        f.attrs["backend"] = b"tensorflow"
        f.attrs["keras_version"] = structure["keras_version"].encode()
        for layer in structure["layer_names"]:
            group = f.create_group(layer)
            weights = structure["weights"].get(layer, [])
            group.attrs["weight_names"] = [w.encode() for w, _ in weights]
            for weight_name, _ in weights:
                group.create_dataset(weight_name, data=arrays[(layer, weight_name)])
    return path
