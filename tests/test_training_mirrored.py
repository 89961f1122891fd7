"""`fit(strategy=...)` with MirroredStrategy over two logical CPU devices equals single-device training."""

from __future__ import annotations

import json
import textwrap

import numpy as np

from tests import preloaded

# Logical devices must be configured before TensorFlow runs any op: a process of its own (forked from one
# that has imported TensorFlow and run nothing, see tests/preloaded.py).
SCRIPT = textwrap.dedent("""
    import json, sys
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import keras, numpy as np
    from training.fit import fit
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 6)).astype("float32")
    y = (x[:, 0] + x[:, 1] > 0).astype("int32")
    data = tf.data.Dataset.from_tensor_slices((x, y)).batch(16)  # the global batch: 8 per replica
    def build():
        keras.utils.set_random_seed(1)
        return keras.Sequential([keras.Input((6,)), keras.layers.Dense(8, activation="relu"),
                                 keras.layers.Dense(2, activation="softmax", name="predictions")])
    runs = {}
    for name, strategy in (("mirrored", tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])), ("single", None)):
        # float32 on every CPU: "auto" trains in bfloat16 where the CPU has it, whose rounding the 1e-5
        # comparison below cannot absorb
        result = fit(build, data, epochs=3, strategy=strategy, verbose=0, jit_compile=False, tensorboard=False,
                     learning_rate=0.05, precision="float32")
        runs[name] = {"replicas": strategy.num_replicas_in_sync if strategy else 1,
                      "loss": result["history"]["loss"],
                      "weights": [w.tolist() for w in result["model"].get_weights()]}
    json.dump(runs, open(sys.argv[1], "w"))
""")


def test_mirrored_over_two_cpu_replicas_equals_single_device(tmp_path):
    out = tmp_path / "runs.json"
    proc = preloaded.start(SCRIPT, out)
    output = proc.output(timeout=300)
    assert proc.returncode == 0, output[-3000:]
    runs = json.loads(out.read_text())
    assert runs["mirrored"]["replicas"] == 2
    # each replica sees half of every batch; the all-reduced mean gradient equals the single device's
    np.testing.assert_allclose(runs["mirrored"]["loss"], runs["single"]["loss"], rtol=1e-5)
    for mirrored, single in zip(runs["mirrored"]["weights"], runs["single"]["weights"]):
        np.testing.assert_allclose(mirrored, single, rtol=1e-5, atol=1e-6)
    assert runs["mirrored"]["loss"][-1] < runs["mirrored"]["loss"][0]
