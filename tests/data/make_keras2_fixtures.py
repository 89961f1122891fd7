"""Records tests/data/keras2/*.json with real Keras 2 code (tf_keras); run by hand, not in CI.

    pip install tf_keras==2.21.0 --no-deps   # beside TensorFlow 2.21
    python tests/data/make_keras2_fixtures.py

For each keras.applications model whose layers Keras 2 names by a session
counter (conv2d_17), tf_keras builds it, saves its weights in the Keras 2 HDF5
layout, and we record the file's layer order and weight names/shapes. Then the
weights of `tests.keras2_files.fill_weights` go into a file written by
`write_keras2_h5`, tf_keras loads that file and its logits on
`input_batch` are recorded: the oracle our by-order loader must reproduce.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile

import h5py

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, os.pardir))

import tf_keras  # noqa: E402

from tests.keras2_files import KERAS2_DIR, fill_weights, input_batch, write_keras2_h5  # noqa: E402

MODELS = {"inception_v3": "InceptionV3", "inception_resnet_v2": "InceptionResNetV2"}
INPUT_SHAPE = [75, 75, 3]  # the smallest both accept: small files, fast tests


def _text(value):
    return value.decode() if isinstance(value, bytes) else str(value)


def record(name, application):
    model = getattr(tf_keras.applications, application)(weights=None, input_shape=INPUT_SHAPE,
                                                         classifier_activation=None)
    with tempfile.TemporaryDirectory() as tmp:
        saved = os.path.join(tmp, "saved.h5")
        model.save_weights(saved)
        with h5py.File(saved, "r") as f:
            layer_names = [_text(n) for n in f.attrs["layer_names"]]
            weights = {}
            for layer in layer_names:
                names = [_text(n) for n in f[layer].attrs["weight_names"]]
                if names:
                    weights[layer] = [[w, list(f[layer][w].shape)] for w in names]
            keras_version = _text(f.attrs["keras_version"])
        structure = {"application": application, "generator": f"tf_keras {tf_keras.__version__}",
                     "keras_version": keras_version, "input_shape": INPUT_SHAPE,
                     "layer_names": layer_names, "weights": weights}
        rebuilt = write_keras2_h5(os.path.join(tmp, "filled.h5"), structure, fill_weights(structure))
        model.load_weights(rebuilt)  # tf_keras itself reads our rebuilt file
        structure["logits"] = [float(v) for v in model(input_batch(structure)).numpy()[0]]
    with open(os.path.join(KERAS2_DIR, f"{name}.json"), "w") as f:
        json.dump(structure, f, separators=(",", ":"))
    print(name, len(layer_names), "layers,", len(weights), "with weights")


if __name__ == "__main__":
    os.makedirs(KERAS2_DIR, exist_ok=True)
    for name, application in MODELS.items():
        record(name, application)
