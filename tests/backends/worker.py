"""Subprocess side of the cross-backend test: `python -m tests.backends.worker JOBDIR`.

Run with KERAS_BACKEND set (jax or torch). Follows JOBDIR/manifest.jsonl as
the TensorFlow parent appends to it (one JSON line per model, then "END"),
so the workers run while the parent is still building: for every entry it
builds the model with the recorded kwargs (on JAX without running its initialisers:
see `_build`), loads the parent's `.weights.h5` with `weights_io.load_weights` (our Keras-file
reader and assign step, by layer name; strict: every weight of the file and the model paired) and
checks it set every variable,
runs `model.predict` (jit-compiled on JAX, as users run it) on the parent's
input and writes `<name>.<backend>.npz`. One model's failure is recorded in
JOBDIR/results.<backend>.json and the worker goes on, so one process covers
every model.
"""

from __future__ import annotations

import json
import os
import sys
import time
import traceback


def main(jobdir):
    import keras
    import numpy as np

    backend = keras.backend.backend()
    expected = os.environ.get("KERAS_BACKEND")
    if backend != expected:
        raise SystemExit(f"worker wanted backend {expected!r} but keras runs {backend!r}")
    import gc

    import kerasnets  # noqa: F401  (imported before the freeze, so that it is frozen too)
    from kerasnets.registry import ReleaseModels
    from weights_io import load_weights

    # ReleaseModels collects after every 2 GB of models; with the backend's modules frozen out of its
    # sight a collection walks only what the models left (see tests/conftest.py's _collect)
    gc.collect()
    gc.freeze()
    release = ReleaseModels()
    results = {}
    results_path = os.path.join(jobdir, f"results.{backend}.json")
    for entry in _follow(os.path.join(jobdir, "manifest.jsonl")):
        name = entry["name"]
        start, cpu = time.perf_counter(), time.process_time()
        model = None
        try:
            model = _build(name, entry["kwargs"], backend)
            load_weights(model, os.path.join(jobdir, entry["weights"]), source="keras")
            _check_every_variable_loaded(model)
            inputs = np.load(os.path.join(jobdir, entry["inputs"]))
            xs = [inputs[f"x{i}"] for i in range(len(inputs.files))]
            outputs = model.predict(xs[0] if len(xs) == 1 else xs, batch_size=len(xs[0]), verbose=0)
            outputs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
            np.savez(os.path.join(jobdir, f"{name}.{backend}.npz"), **{f"y{i}": o for i, o in enumerate(outputs)})
            results[name] = {"status": "ok", "seconds": time.perf_counter() - start,
                             "cpu_seconds": time.process_time() - cpu}
        except Exception as err:  # noqa: BLE001 - report per model, keep going
            results[name] = {
                "status": "error",
                "error": f"{type(err).__name__}: {err}",
                "traceback": traceback.format_exc()[-3000:],
            }
        finally:
            params = 0 if model is None else model.count_params()
            model = None
            release(params)
        with open(results_path, "w") as f:  # rewritten as it goes: a crash still leaves a record
            json.dump({"backend": backend, "keras": keras.__version__, "results": results}, f, indent=1)
    return 0


def _build(name, kwargs, backend):
    """The model as `build_config` builds it; on JAX with its variables left uninitialised.

    JAX compiles its random initialisers once per variable shape (~0.25 s each: 16 s of the 19 s
    MobileNetV3-Large took here, some 300 CPU seconds over the registry), for values that
    `load_weights` overwrites at once. Built inside a StatelessScope that does not initialise on
    exit, the variables get their values from the file alone; `_check_every_variable_loaded` then
    proves that the file set every one (an unset variable would otherwise answer with fresh
    initialiser values, which the parity check would also catch). Torch and TensorFlow initialise
    in microseconds per variable: built as users build.
    """
    from tests.backends.configs import build_config

    if backend != "jax":
        return build_config(name, kwargs)
    from tests.references import build_uninitialised
    from weights_io.transfer import initialise_unset

    model = build_uninitialised(build_config, name, kwargs)  # nothing left on Keras' pending list
    # state that no weight file holds (Dropout's seed generator: a constant initialiser) as users get it
    weights = {id(w) for w in model.weights}
    initialise_unset([v for v in model.variables if id(v) not in weights])
    return model


def _check_every_variable_loaded(model):
    from weights_io.transfer import has_value

    unset = [v.path for v in model.variables if not has_value(v)]
    assert not unset, f"load_weights left {len(unset)} variables unset: {unset[:5]}"


def _follow(path, poll=0.2, timeout=1800):
    """Yields the JSON entries of `path` as they are appended, until its "END" line."""
    deadline = time.monotonic() + timeout
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path} never appeared")
        time.sleep(poll)
    with open(path) as f:
        pending = ""
        while True:
            chunk = f.readline()
            if not chunk:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"no END line in {path}")
                time.sleep(poll)
                continue
            pending += chunk
            if not pending.endswith("\n"):
                continue  # the parent is mid-write
            line, pending = pending.strip(), ""
            if line == "END":
                return
            yield json.loads(line)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
