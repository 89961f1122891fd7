"""The test helpers themselves: a model built without initialisers and healed is the model built and healed."""

import keras
import numpy as np
import pytest

import kerasnets
from tests.references import build_uninitialised, heal_keras, infer


@pytest.mark.parametrize("name, kwargs", [
    ("mobilenet_v3_small", dict(classes=10, input_shape=(32, 32, 3))),  # BN, SE gates, Dropout's seed
    ("srresnet", dict(input_shape=(24, 24, 3), blocks=2)),  # PReLU slopes: not drawn by heal_keras, initialised
])
def test_healed_uninitialised_build_equals_healed_build(name, kwargs):
    x = np.random.default_rng(0).uniform(0, 255, (4,) + kwargs["input_shape"]).astype("float32")
    built = heal_keras(kerasnets.build(name, **kwargs), x, seed=5)
    deferred = build_uninitialised(kerasnets.build, name, **kwargs)
    assert all(getattr(v, "_value", 0) is None for v in deferred.weights)  # nothing drawn yet
    heal_keras(deferred, x, seed=5)
    assert [w.path for w in deferred.weights] == [w.path for w in built.weights]
    for ours, theirs in zip(deferred.weights, built.weights):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(ours), keras.ops.convert_to_numpy(theirs),
                                      err_msg=ours.path)
    np.testing.assert_array_equal(infer(deferred, x), infer(built, x))
    # nothing is left pending: predict (a StatelessScope on some backends) and a second build both work
    from keras.src.backend.common import global_state

    assert not global_state.get_global_attribute("uninitialized_variables")
    np.testing.assert_allclose(deferred.predict(x, verbose=0), infer(built, x), rtol=1e-5, atol=1e-5)
    kerasnets.build(name, **kwargs)


@pytest.mark.parametrize("softmax", ["own", "layer"])
def test_a_softmax_classifier_is_tempered_on_the_calibration_pass(softmax):
    """The classifier feeding a softmax (its own activation, or a Softmax layer after it) is scaled so that its
    logits on the calibration batch peak at SOFTMAX_LOGIT_SCALE, measured here by a sub-model of our own; the
    activation and every layer's call are the class's again afterwards."""
    from tests.references import SOFTMAX_LOGIT_SCALE

    inputs = keras.Input((16, 16, 3))
    x = keras.layers.Conv2D(8, 3, activation="relu")(inputs)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    if softmax == "own":
        outputs = keras.layers.Dense(5, activation="softmax", name="classifier")(x)
    else:
        outputs = keras.layers.Softmax()(keras.layers.Dense(5, name="classifier")(x))
    model = keras.Model(inputs, outputs)
    batch = np.random.default_rng(0).uniform(-1, 1, (8, 16, 16, 3)).astype("float32")
    heal_keras(model, batch, seed=2)

    classifier = model.get_layer("classifier")
    assert classifier.activation is (keras.activations.softmax if softmax == "own" else keras.activations.linear)
    assert all("call" not in vars(layer) for layer in model.layers)
    if softmax == "own":  # the logits before the activation: the layer's kernel and bias applied by hand
        features = infer(keras.Model(inputs, classifier.input), batch)
        logits = features @ keras.ops.convert_to_numpy(classifier.kernel) + keras.ops.convert_to_numpy(classifier.bias)
    else:
        logits = infer(keras.Model(inputs, classifier.output), batch)
    np.testing.assert_allclose(np.abs(logits).max(), SOFTMAX_LOGIT_SCALE, rtol=1e-5)
    probabilities = infer(model, batch)
    assert probabilities.max() < 0.99 and np.ptp(probabilities, axis=0).max() > 1e-3  # not saturated, input-dependent
