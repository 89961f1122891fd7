"""Kill-and-resume and two-worker MultiWorkerMirroredStrategy, each in real processes (`tests.preloaded`)."""

from __future__ import annotations

import csv
import json
import os
import signal
import socket
import textwrap
import time

import numpy as np
import pytest

from tests import preloaded

EPOCHS = 6

TRAIN_SCRIPT = textwrap.dedent("""
    import json, sys, time
    import keras, numpy as np
    from training.fit import fit
    out, slow, seed = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
    keras.utils.set_random_seed(seed)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(256, 8)).astype("float32")
    y = (x @ rng.normal(size=(8, 3))).argmax(1)
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dropout(0.3),
                              keras.layers.Dense(3, activation="softmax", name="predictions")])
    done = []
    cb = keras.callbacks.LambdaCallback(on_epoch_end=lambda e, logs: (done.append(e), time.sleep(slow)))
    result = fit(model, x, epochs=%d, y=y, batch_size=32, output_dir=out, verbose=0, learning_rate=0.02,
                 optimizer=keras.optimizers.SGD(0.02, momentum=0.9), callbacks=[cb], jit_compile=False,
                 tensorboard=False)
    json.dump({"epochs_run_here": done, "loss": result["history"]["loss"]}, open(out + "/result.json", "w"))
""") % EPOCHS


def _run(script, *args, env=None):
    return preloaded.start(script, *args, env=None if env is None else {**os.environ, **env})


def test_resume_after_sigkill(tmp_path):
    """Kill after the first epoch's resume state exists, restart, compare with an uninterrupted run.

    The resumed run must train only the missing epochs (the log holds each epoch
    once) and compute exactly what an uninterrupted run computes: same weights,
    optimizer state, batch order and Dropout masks. The resumed process is seeded differently
    (seed 1 instead of 0), so it only matches if all of that came from the saved
    state and nothing from the new process's random state.
    """
    interrupted, clean = str(tmp_path / "interrupted"), str(tmp_path / "clean")
    proc = _run(TRAIN_SCRIPT, interrupted, 1.5, 0)
    state = os.path.join(interrupted, "backup", "state.json")
    deadline = time.time() + 120
    while not os.path.exists(state):
        assert proc.poll() is None, proc.output()
        assert time.time() < deadline, "no checkpoint within 120 s"
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = json.load(open(state))["epoch"]
    assert 1 <= done < EPOCHS
    uninterrupted = _run(TRAIN_SCRIPT, clean, 0, 0)
    resumed = _run(TRAIN_SCRIPT, interrupted, 0, 1)
    for p in (uninterrupted, resumed):
        out = p.output(timeout=240)
        assert p.returncode == 0, out
    ran = json.load(open(os.path.join(interrupted, "result.json")))
    ref = json.load(open(os.path.join(clean, "result.json")))
    assert ran["epochs_run_here"] == list(range(done, EPOCHS))
    rows = list(csv.DictReader(open(os.path.join(interrupted, "log.csv"))))
    assert [int(r["epoch"]) for r in rows] == list(range(EPOCHS))
    assert len(ran["loss"]) == len(ref["loss"]) == EPOCHS
    assert ref["loss"][-1] < 0.5 * ref["loss"][0]  # it learns, so the epochs differ
    np.testing.assert_allclose(ran["loss"], ref["loss"], rtol=1e-6)
    assert os.listdir(os.path.join(interrupted, "backup")) == []


WORKER_SCRIPT = textwrap.dedent("""
    import json, os, sys
    from training.fit import fit
    from training.strategies import make_strategy
    strategy = make_strategy("multiworker")  # first, before any TF op
    import keras, numpy as np, tensorflow as tf
    out = sys.argv[1]
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 6)).astype("float32")
    y = (x[:, 0] > 0).astype("int32")
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(16)
    def build():
        keras.utils.set_random_seed(1)
        return keras.Sequential([keras.Input((6,)), keras.layers.Dense(4, activation="relu"),
                                 keras.layers.Dense(2, activation="softmax", name="predictions")])
    result = fit(build, ds, epochs=2, output_dir=out, strategy=strategy, verbose=0, jit_compile=False,
                 tensorboard=False, save_formats=())
    index = json.loads(os.environ["TF_CONFIG"])["task"]["index"]
    np.savez(os.path.join(out, f"weights-{index}.npz"), *[np.asarray(w) for w in result["model"].get_weights()])
""")


def _free_ports(n):
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def test_two_workers_end_with_identical_weights(tmp_path):
    out = str(tmp_path / "run")
    os.makedirs(out)
    cluster = {"worker": [f"127.0.0.1:{p}" for p in _free_ports(2)]}
    procs = [
        _run(WORKER_SCRIPT, out, env={"TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker",
                                                                                          "index": i}}),
                                      "CUDA_VISIBLE_DEVICES": ""})
        for i in range(2)
    ]
    outputs = []
    try:
        for p in procs:
            outputs.append(p.output(timeout=240))
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    for p, text in zip(procs, outputs):
        if p.returncode != 0 and "collective" in text.lower() and "not supported" in text.lower():
            pytest.skip(f"this TensorFlow build cannot run CPU collectives: {text[-500:]}")
        assert p.returncode == 0, text[-3000:]
    w0 = np.load(os.path.join(out, "weights-0.npz"))
    w1 = np.load(os.path.join(out, "weights-1.npz"))
    assert len(w0.files) == 4
    for key in w0.files:
        np.testing.assert_array_equal(w0[key], w1[key])
    # the chief wrote the run directory, the other worker a scratch one
    assert os.path.exists(os.path.join(out, "best.weights.h5"))
    assert os.path.exists(os.path.join(out, ".workers", "worker-1", "best.weights.h5"))
    # and training did something: weights differ from the initialisation
    import keras

    keras.utils.set_random_seed(1)
    init = keras.Sequential([keras.Input((6,)), keras.layers.Dense(4, activation="relu"),
                             keras.layers.Dense(2, activation="softmax")]).get_weights()
    assert any(not np.array_equal(a, w0[k]) for a, k in zip(init, w0.files))
