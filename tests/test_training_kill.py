"""SIGKILL at random points of a run, restart, repeat: no epoch lost or doubled, the best checkpoint intact."""

from __future__ import annotations

import csv
import json
import os
import signal
import textwrap
import time

import numpy as np

from tests import preloaded

EPOCHS = 8
KILLS = 3

SCRIPT = textwrap.dedent("""
    import json, sys, time
    import keras, numpy as np
    from training.fit import fit
    out = sys.argv[1]
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(384, 8)).astype("float32")
    y = (x @ rng.normal(size=(8, 3))).argmax(1)
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(16, activation="relu"),
                              keras.layers.Dense(3, activation="softmax", name="predictions")])
    slow = keras.callbacks.LambdaCallback(on_epoch_end=lambda e, logs: time.sleep(0.3))
    fit(model, x[:256], (x[256:], y[256:]), epochs=%d, y=y[:256], batch_size=32, output_dir=out, verbose=0,
        monitor="val_loss", learning_rate=0.01, callbacks=[slow], jit_compile=False, tensorboard=False)
    np.save(out + "/val_x.npy", x[256:]); np.save(out + "/val_y.npy", y[256:])
""") % EPOCHS


def _start(out):
    return preloaded.start(SCRIPT, out)


def _log_rows(out):
    path = os.path.join(out, "log.csv")
    if not os.path.exists(path):
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_random_kills_lose_and_double_nothing(tmp_path):
    out = str(tmp_path / "run")
    rng = np.random.default_rng(2026)
    survived = 0
    for _ in range(KILLS):
        proc = _start(out)
        rows_before = len(_log_rows(out))
        deadline = time.time() + 120
        while len(_log_rows(out)) <= rows_before and proc.poll() is None:  # training is under way
            assert time.time() < deadline, "no epoch logged within 120 s"
            time.sleep(0.02)
        if proc.poll() is not None:
            break  # it finished before this kill: nothing left to interrupt
        time.sleep(rng.uniform(0.0, 0.6))  # anywhere in an epoch, its checkpoint or its log line
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        survived += 1
    final = _start(out)
    output = final.output(timeout=300)
    assert final.returncode == 0, output
    assert survived >= 2, "the run finished before it could be killed twice: make epochs slower"

    rows = _log_rows(out)
    assert [int(r["epoch"]) for r in rows] == list(range(EPOCHS))  # every epoch once

    import keras

    from training.callbacks import read_best_record

    best = read_best_record(os.path.join(out, "best.weights.h5"))
    assert best["monitor"] == "val_loss" and 1 <= best["epoch"] <= EPOCHS
    assert best["value"] <= min(float(r["val_loss"]) for r in rows) + 1e-6
    with open(os.path.join(out, "best.json")) as f:
        assert json.load(f) == best
    model = keras.models.load_model(os.path.join(out, "final.keras"), compile=False)  # the best weights
    model.compile(loss="sparse_categorical_crossentropy")
    val_loss = model.evaluate(np.load(os.path.join(out, "val_x.npy")), np.load(os.path.join(out, "val_y.npy")),
                              verbose=0)
    np.testing.assert_allclose(val_loss, best["value"], rtol=1e-5)
    assert os.listdir(os.path.join(out, "backup")) == []
