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
