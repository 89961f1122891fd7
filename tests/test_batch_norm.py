"""The fused BatchNormalization: keras' layer computed by TensorFlow's FusedBatchNormV3, which must give
what keras' own code gives (outputs, gradients, moving statistics) and save as keras' own layer."""

import subprocess
import sys

import keras
import numpy as np
import pytest

from kerasnets.layers.batch_norm import BatchNormalization

tf = pytest.importorskip("tensorflow")
pytestmark = pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="the fused path is TensorFlow's")


def _pair(rng, channels, **options):
    """Our layer and keras' with the same random variables."""
    ours, stock = BatchNormalization(**options), keras.layers.BatchNormalization(**options)
    for layer in (ours, stock):
        layer.build((None, 5, 7, channels))
    values = {"gamma": rng.uniform(0.5, 2.0, channels), "beta": rng.normal(size=channels),
              "moving_mean": rng.normal(size=channels), "moving_variance": rng.uniform(0.5, 3.0, channels)}
    for variable in stock.weights:
        variable.assign(values[variable.name].astype("float32"))
    ours.set_weights(stock.get_weights())
    return ours, stock


def _run(layer, x, upstream, training):
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = layer(x, training=training)
        loss = tf.reduce_sum(tf.cast(y, "float32") * upstream)
    grads = tape.gradient(loss, [x] + layer.trainable_weights)
    return [np.asarray(tf.cast(t, "float32")) for t in [y] + grads] + [w.numpy() for w in layer.non_trainable_weights]


@pytest.mark.parametrize("dtype", ["float32", "bfloat16", "float16"])
@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("options", [{}, {"epsilon": 1e-5, "momentum": 0.9}, {"scale": False, "center": False}])
def test_fused_equals_keras(dtype, training, options):
    rng = np.random.default_rng(0)
    ours, stock = _pair(rng, 6, **options)
    x = tf.cast(tf.constant((rng.normal(size=(4, 5, 7, 6)) * 3 + 1.5).astype("float32")), dtype)
    upstream = tf.constant(rng.normal(size=(4, 5, 7, 6)).astype("float32"))  # a gradient that is not constant
    names = ["y", "dx"] + [f"d{w.name}" for w in stock.trainable_weights] + [w.name for w in stock.non_trainable_weights]
    for step in range(2):  # the second step starts from updated moving statistics
        expected, got = _run(stock, x, upstream, training), _run(ours, x, upstream, training)
        for name, e, g in zip(names, expected, got, strict=True):
            scale = np.max(np.abs(e))
            assert scale > 1e-3, f"{name}: nothing to compare"
            np.testing.assert_allclose(g, e, rtol=0, atol=1e-5 * scale, err_msg=f"{name} step {step}")
    if training:  # the statistics moved, by the biased batch variance as keras does
        assert not np.allclose(ours.moving_variance.numpy(), 1.0)


def test_falls_back_where_the_kernel_does_not_apply():
    rng = np.random.default_rng(1)
    for shape, axis in (((8, 6), -1), ((2, 3, 4, 5, 6), -1), ((4, 6, 5, 7), 1)):
        ours, stock = BatchNormalization(axis=axis), keras.layers.BatchNormalization(axis=axis)
        x = rng.normal(size=shape).astype("float32")
        np.testing.assert_allclose(ours(x, training=True), stock(x, training=True), atol=1e-6)
    assert ours._fused_module(tf.zeros((4, 6, 5, 7)), None) is None
    assert BatchNormalization()._fused_module(tf.zeros((4, 6, 5, 7)), None) is tf


def test_every_builder_uses_it():
    from kerasnets import build_densenet121, build_resnet18

    for model in (build_resnet18(input_shape=(32, 32, 3), classes=3), build_densenet121(weights=None)):
        norms = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
        assert norms and all(type(layer) is BatchNormalization for layer in norms)


def test_saves_as_keras_own_layer(tmp_path):
    """A model saved with the fused layer, as .keras and as .h5, reloads in a process that never imports
    kerasnets (one process for both files: a TensorFlow start-up each cost 5 CPU-s)."""
    from kerasnets import build_resnet18

    model = build_resnet18(input_shape=(32, 32, 3), classes=3)
    rng = np.random.default_rng(2)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.moving_variance.assign(rng.uniform(0.5, 2.0, layer.moving_variance.shape))
    x = rng.normal(size=(2, 32, 32, 3)).astype("float32")
    paths, inputs = [str(tmp_path / f"model{suffix}") for suffix in (".keras", ".h5")], tmp_path / "x.npy"
    for path in paths:
        model.save(path)
    np.save(inputs, x)
    np.save(tmp_path / "expected.npy", keras.ops.convert_to_numpy(model(x, training=False)))
    script = (
        "import sys, numpy as np, keras\n"
        f"for path in {paths!r}:\n"
        "    m = keras.models.load_model(path, compile=False)\n"
        "    assert 'kerasnets' not in sys.modules, 'kerasnets was imported'\n"
        "    kinds = {type(l).__module__ + '.' + type(l).__name__ for l in m.layers\n"
        "             if 'Normalization' in type(l).__name__}\n"
        "    assert kinds == {'keras.src.layers.normalization.batch_normalization.BatchNormalization'}, (path, kinds)\n"
        f"    y = keras.ops.convert_to_numpy(m(np.load({str(inputs)!r}), training=False))\n"
        f"    expected = np.load({str(tmp_path / 'expected.npy')!r})\n"
        "    np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-6, err_msg=path)\n"
        "    print('reloaded', path, len(m.layers))\n"
    )
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path)
    assert run.returncode == 0 and run.stdout.count("reloaded") == 2, run.stderr[-2000:]
