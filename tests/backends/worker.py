"""Subprocess side of the cross-backend test: `python -m tests.backends.worker JOBDIR`.

Run with KERAS_BACKEND set (jax or torch). Follows JOBDIR/manifest.jsonl as
the TensorFlow parent appends to it (one JSON line per model, then "END"),
so the workers run while the parent is still building: for every entry it
builds the model with the recorded kwargs, loads the parent's `.weights.h5`,
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

    from tests.backends.configs import build_config

    backend = keras.backend.backend()
    expected = os.environ.get("KERAS_BACKEND")
    if backend != expected:
        raise SystemExit(f"worker wanted backend {expected!r} but keras runs {backend!r}")
    results = {}
    results_path = os.path.join(jobdir, f"results.{backend}.json")
    for entry in _follow(os.path.join(jobdir, "manifest.jsonl")):
        name = entry["name"]
        start, cpu = time.perf_counter(), time.process_time()
        try:
            model = build_config(name, entry["kwargs"])
            model.load_weights(os.path.join(jobdir, entry["weights"]))
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
            keras.backend.clear_session()
        with open(results_path, "w") as f:  # rewritten as it goes: a crash still leaves a record
            json.dump({"backend": backend, "keras": keras.__version__, "results": results}, f, indent=1)
    return 0


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
