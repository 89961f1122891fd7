"""fold_batch_norm: the same logits with the BatchNormalization layers multiplied into the layer before.

The expected parameter count is worked out from the pairs (each folded BN of C channels takes its 4C
numbers away and gives its convolution a C-wide bias unless it had one), and the outputs are compared
with the unfolded model's on random inputs, with statistics far from the identity, so a fold that
skipped the mean, the variance or the scale would show.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest

import kerasnets
from kerasnets.fold import fold_batch_norm, foldable_pairs
from tests.conftest import assert_close
from tests.references import infer


def randomise_statistics(model, seed=0):
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            channels = layer.moving_mean.shape[0]
            values = {"gamma": rng.uniform(0.5, 1.5, channels), "beta": rng.normal(0, 0.2, channels),
                      "moving_mean": rng.normal(0, 0.2, channels), "moving_variance": rng.uniform(0.5, 2, channels)}
            for name, value in values.items():
                variable = getattr(layer, name, None)
                if variable is not None:
                    variable.assign(value.astype("float32"))


def expected_parameters(model, pairs):
    count = model.count_params()
    for norm, layer in pairs.items():
        channels = model.get_layer(norm).moving_mean.shape[0]
        count -= sum(int(np.prod(w.shape)) for w in model.get_layer(norm).weights)
        count += 0 if layer.use_bias else channels
    return count


@pytest.mark.parametrize("name, shape", [("resnet18", (64, 64, 3)), ("inception_v3", (75, 75, 3))])
def test_folded_builders_give_the_same_logits(name, shape):
    model = kerasnets.build(name, input_shape=shape, classes=10, classifier_activation=None)
    randomise_statistics(model)
    pairs = foldable_pairs(model)
    norms = [l for l in model.layers if isinstance(l, keras.layers.BatchNormalization)]
    assert len(pairs) >= 0.8 * len(norms)  # nearly every BN of these nets follows its convolution
    folded = fold_batch_norm(model)
    assert folded.count_params() == expected_parameters(model, pairs)
    left = [l.name for l in folded.layers if isinstance(l, keras.layers.BatchNormalization)]
    assert sorted(left) == sorted(set(n.name for n in norms) - set(pairs))
    x = np.random.default_rng(1).uniform(0, 255, (4,) + shape).astype("float32")
    expected = infer(model, x)
    assert expected.std() > 1e-3 and np.abs(expected[0] - expected[1]).max() > 1e-3 * np.abs(expected).max()
    assert_close(infer(folded, x), expected)


def test_what_does_not_fold_stays(tmp_path):
    """A conv with an activation, a conv output used twice, a BN over axis 1: copied as they are."""
    inputs = keras.Input((8, 8, 3))
    a = keras.layers.Conv2D(4, 3, activation="relu", name="relu_conv")(inputs)
    a = keras.layers.BatchNormalization(name="after_relu")(a)
    b = keras.layers.Conv2D(4, 1, name="shared")(a)
    c = keras.layers.Add()([keras.layers.BatchNormalization(name="after_shared")(b), b])
    d = keras.layers.Dense(5, name="dense")(keras.layers.GlobalAveragePooling2D()(c))
    d = keras.layers.BatchNormalization(name="after_dense")(d)
    e = keras.layers.DepthwiseConv2D(3, depth_multiplier=2, use_bias=False, name="depthwise")(c)
    e = keras.layers.BatchNormalization(name="after_depthwise")(e)
    model = keras.Model(inputs, [d, keras.layers.Flatten()(e)])
    randomise_statistics(model)
    assert sorted(foldable_pairs(model)) == ["after_dense", "after_depthwise"]
    folded = fold_batch_norm(model)
    x = np.random.default_rng(2).normal(size=(3, 8, 8, 3)).astype("float32")
    for ours, theirs in zip(infer(folded, x), infer(model, x)):
        assert_close(ours, theirs)
    path = tmp_path / "folded.keras"
    folded.save(path)  # stock layers only: plain keras reloads it
    reloaded = keras.saving.load_model(path, custom_objects={}, compile=False)
    assert_close(infer(reloaded, x)[0], infer(model, x)[0])
    with pytest.raises(ValueError, match="functional Keras model"):
        fold_batch_norm(keras.layers.Dense(3))
