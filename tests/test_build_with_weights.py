"""A builder given `weights` skips Keras' initialisers: the file gives every value.

The model must be the one `build()` then `load_weights()` gives, to the bit, and as usable: it
runs, trains, saves and reloads; what no weight file holds (a Dropout's seed generator) is
initialised as usual; a file that does not fit leaves Keras' global state as it was.
"""

from __future__ import annotations

import numpy as np
import pytest

import kerasnets
import weights_io
from weights_io import WeightMismatchError
from weights_io.transfer import has_value

OPTIONS = dict(input_shape=(32, 32, 3), classes=10)  # MobileNetV3: BN, depthwise convs, SE, a Dropout


def _pending():
    from keras.src.backend.common import global_state

    return list(global_state.get_global_attribute("uninitialized_variables", []) or [])


@pytest.fixture(scope="module")
def weight_file(tmp_path_factory):
    """A MobileNetV3-Small's weights, BN statistics moved off their initial values."""
    model = kerasnets.build("mobilenet_v3_small", **OPTIONS)
    rng = np.random.default_rng(0)
    for variable in model.weights:
        if "moving" in variable.path:
            variable.assign(rng.uniform(0.5, 1.5, variable.shape).astype("float32"))
    path = tmp_path_factory.mktemp("weights") / "mnv3.weights.h5"
    model.save_weights(path)
    return path


def test_the_weights_build_draws_nothing_and_equals_build_then_load(weight_file, monkeypatch, tmp_path):
    import keras

    Variable = keras.Variable  # the backend's class: TensorFlow's defers its draw to tf.Variable
    reference = kerasnets.build("mobilenet_v3_small", **OPTIONS)
    weights_io.load_weights(reference, weight_file)
    drawn = []
    own = Variable._initialize_with_initializer

    def counting(variable, initializer):
        drawn.append(variable.path)
        return own(variable, initializer)

    monkeypatch.setattr(Variable, "_initialize_with_initializer", counting)
    pending = _pending()
    model = kerasnets.build("mobilenet_v3_small", weights=str(weight_file), **OPTIONS)
    monkeypatch.undo()

    weights = {id(w) for w in model.weights}
    assert sorted(drawn) == sorted(v.path for v in model.variables if id(v) not in weights)
    assert drawn and all("seed_generator" in path for path in drawn)  # the Dropout's state, and nothing else
    assert _pending() == pending  # nothing left for the next initialising scope
    assert len(model.weights) == len(reference.weights)
    for ours, theirs in zip(model.get_weights(), reference.get_weights()):
        np.testing.assert_array_equal(ours, theirs)
    x = np.random.default_rng(1).uniform(0, 255, (4, 32, 32, 3)).astype("float32")
    np.testing.assert_array_equal(model.predict(x, verbose=0), reference.predict(x, verbose=0))

    model.compile(keras.optimizers.SGD(0.1), "sparse_categorical_crossentropy")
    before = [np.array(w) for w in model.trainable_weights]
    model.fit(x, np.arange(4), epochs=1, verbose=0)
    assert any(not np.array_equal(a, np.array(w)) for a, w in zip(before, model.trainable_weights))
    model.save(tmp_path / "trained.keras")
    again = keras.models.load_model(tmp_path / "trained.keras")
    np.testing.assert_allclose(again.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-6, atol=1e-7)


def test_a_file_that_does_not_fit_leaves_keras_as_it_was(weight_file):
    pending = _pending()
    with pytest.raises(WeightMismatchError):
        kerasnets.build("mobilenet_v3_small", weights=str(weight_file), input_shape=(32, 32, 3), classes=7)
    assert _pending() == pending


def test_load_weights_fills_a_model_built_for_shapes_and_initialises_the_rest(weight_file):
    """`build_for_shapes` then `weights_io.load_weights`: the file's values are the variables' first, what no
    file holds (the Dropout's seed state) is initialised, and the model equals one built and then loaded."""
    from kerasnets.registry import build_for_shapes

    model = build_for_shapes("mobilenet_v3_small", **OPTIONS)
    assert not any(has_value(v) for v in model.variables)
    report = weights_io.load_weights(model, weight_file)
    assert report.ok and all(has_value(v) for v in model.variables)
    reference = kerasnets.build("mobilenet_v3_small", **OPTIONS)
    weights_io.load_weights(reference, weight_file)
    x = np.random.default_rng(2).uniform(0, 255, (2, 32, 32, 3)).astype("float32")
    np.testing.assert_array_equal(model.predict(x, verbose=0), reference.predict(x, verbose=0))
