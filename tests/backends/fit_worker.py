"""Subprocess side of the JAX training check: `python -m tests.backends.fit_worker OUTDIR`.

Under KERAS_BACKEND=jax, trains a small BN classifier with `training.fit` from
numpy arrays, from a `keras.utils.PyDataset` (no tf.data) and from an image
folder (`image_folder_dataset`'s worker-thread batches), with a run
directory (checkpoints, CSV log, resume backup, final .keras/.h5), reloads
the saved model and writes a JSON summary for the parent test to check.
"""

from __future__ import annotations

import json
import os
import sys


def _data(n=48, seed=0):
    import numpy as np

    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    # class-dependent mean so a few epochs learn something measurable
    x = rng.normal(0, 1, (n, 16, 16, 3)).astype("float32") + y[:, None, None, None].astype("float32")
    return x, y


def _folder_data(root, per_class=16):
    """An image folder (3 classes, JPEG and PNG, class-dependent colour) through `image_folder_dataset`."""
    import numpy as np
    from PIL import Image

    from training.data import image_folder_dataset

    rng = np.random.default_rng(1)
    for label in range(3):
        os.makedirs(os.path.join(root, f"class{label}"))
        for i in range(per_class):
            pixels = np.clip(rng.normal(60 + 60 * label, 30, (24, 28, 3)), 0, 255).astype("uint8")
            Image.fromarray(pixels).save(os.path.join(root, f"class{label}", f"{i}.{'jpg' if i % 2 else 'png'}"))
    return image_folder_dataset(root, 16, 8, validation_split=0.25, class_indices_path=None, preprocessing="tf")


def _model():
    import keras

    inputs = keras.Input((16, 16, 3))
    x = keras.layers.Conv2D(8, 3, name="conv1")(inputs)
    x = keras.layers.BatchNormalization(name="bn1")(x)
    x = keras.layers.ReLU()(x)
    x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
    outputs = keras.layers.Dense(3, activation="softmax", name="predictions")(x)
    return keras.Model(inputs, outputs, name="tiny")


def main(outdir):
    import keras
    import numpy as np

    from training.fit import fit

    assert keras.backend.backend() == os.environ["KERAS_BACKEND"]
    tensorflow_before = "tensorflow" in sys.modules
    folder = _folder_data(os.path.join(outdir, "images"))  # before set_random_seed, which imports TensorFlow
    tensorflow_after = "tensorflow" in sys.modules
    keras.utils.set_random_seed(0)
    x, y = _data()
    summary = {"backend": keras.backend.backend(), "has_tensorflow_module": "tensorflow" in sys.modules}

    class Batches(keras.utils.PyDataset):
        def __init__(self, batch_size=16):
            super().__init__()
            self.batch_size = batch_size

        def __len__(self):
            return len(x) // self.batch_size

        def __getitem__(self, i):
            s = slice(i * self.batch_size, (i + 1) * self.batch_size)
            return x[s], y[s]

    summary["folder_data"] = {"train_type": type(folder.train).__name__, "val_type": type(folder.val).__name__,
                              "tensorflow_before": tensorflow_before, "tensorflow_after": tensorflow_after,
                              "batch_shape": list(folder.train[0][0].shape)}
    runs = {
        "numpy": dict(train=x, y=y, batch_size=16, val=(x[:16], y[:16])),
        "pydataset": dict(train=Batches(), val=Batches()),
        "folder": dict(train=folder.train, val=folder.val),
    }
    for label, data in runs.items():
        model = _model()
        run_dir = os.path.join(outdir, label)
        train = data.pop("train")
        val = data.pop("val")
        result = fit(model, train, val, epochs=3, output_dir=run_dir, verbose=0, tensorboard=False,
                     learning_rate=1e-2, **data)
        trained = result["model"]
        reloaded = keras.saving.load_model(result["paths"]["final_keras"], compile=False)
        diff = float(np.abs(keras.ops.convert_to_numpy(reloaded(x[:8], training=False))
                            - keras.ops.convert_to_numpy(trained(x[:8], training=False))).max())
        summary[label] = {
            "history": {k: [float(v) for v in vals] for k, vals in result["history"].items()},
            "best_epoch": result["best_epoch"],
            "files": sorted(os.listdir(run_dir)),
            "reload_max_diff": diff,
        }
    with open(os.path.join(outdir, "summary.json"), "w") as f:
        json.dump(summary, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
