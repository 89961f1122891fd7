"""Subprocess side of the cross-backend import check: `python -m tests.backends.weights_worker JOBDIR`.

Under the backend in KERAS_BACKEND, builds `tiny_model()`, loads every weight
file the parent wrote (torch zip, tensorflow-style .npy, Keras 3 .weights.h5)
with `weights_io.load_weights` and saves the outputs on the parent's inputs,
and those of the last one with its BatchNormalization folded (`kerasnets.fold`);
then builds `REGISTERED` given its weight file (the builder skips the initialisers:
the file's values are the variables' first) and saves its outputs too.
"""

from __future__ import annotations

import json
import os
import sys


def tiny_model():
    """Conv, BN, a CHW-flatten Dense (tiled transposing copy: its kernel is 12 MB) and a head."""
    import keras

    inputs = keras.Input((7, 7, 30))
    x = keras.layers.Conv2D(64, 3, padding="same", name="conv")(inputs)
    x = keras.layers.BatchNormalization(name="bn")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    x = keras.layers.Dense(1000, name="fc")(x)
    outputs = keras.layers.Dense(10, name="head")(x)
    return keras.Model(inputs, outputs, name="tiny")


# a registered model with BN, depthwise convs, SE and a Dropout (whose seed state no file holds)
REGISTERED = ("mobilenet_v3_small", {"input_shape": (32, 32, 3), "classes": 10})


def identity_layout():
    from weights_io.core import Layout

    return Layout("identity", lambda names: {name: name for name in names})


def main(jobdir):
    import keras
    import numpy as np

    from weights_io import load_weights

    assert keras.backend.backend() == os.environ["KERAS_BACKEND"]
    x = np.load(os.path.join(jobdir, "inputs.npy"))
    results = {"backend": keras.backend.backend(), "has_tensorflow_module": "tensorflow" in sys.modules}
    for name, source in (("w.pth", identity_layout()), ("w.npy", identity_layout()), ("w.weights.h5", "keras")):
        model = tiny_model()
        report = load_weights(model, os.path.join(jobdir, name), source=source)
        results[name] = report.ok and report.applied
        np.save(os.path.join(jobdir, f"{name}.{keras.backend.backend()}.npy"),
                keras.ops.convert_to_numpy(model(x, training=False)))
    from kerasnets.fold import fold_batch_norm  # the last model: its BN folded into "conv", on this backend

    np.save(os.path.join(jobdir, f"folded.{keras.backend.backend()}.npy"),
            keras.ops.convert_to_numpy(fold_batch_norm(model)(x, training=False)))
    import kerasnets
    from keras.src.backend.common import global_state

    from weights_io.transfer import has_value

    name, options = REGISTERED
    drawn, own = [], keras.Variable._initialize_with_initializer
    keras.Variable._initialize_with_initializer = lambda v, initializer: (drawn.append(v.path), own(v, initializer))
    model = kerasnets.build(name, weights=os.path.join(jobdir, "registered.weights.h5"), **options)
    keras.Variable._initialize_with_initializer = own
    results["registered_drawn"] = drawn  # by initialisers: only what no file holds (the Dropout's seed state)
    results["registered_unset"] = [v.path for v in model.variables if not has_value(v)]
    results["registered_pending"] = len(global_state.get_global_attribute("uninitialized_variables", []) or [])
    registered_x = np.load(os.path.join(jobdir, "registered_inputs.npy"))
    np.save(os.path.join(jobdir, f"registered.{keras.backend.backend()}.npy"),
            keras.ops.convert_to_numpy(model(registered_x, training=False)))
    with open(os.path.join(jobdir, f"summary.{keras.backend.backend()}.json"), "w") as f:
        json.dump(results, f)


if __name__ == "__main__":
    main(sys.argv[1])
