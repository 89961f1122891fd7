"""Subprocess side of the cross-backend test: `python -m tests.backends.worker JOBDIR`.

Run with KERAS_BACKEND set (jax or torch). Reads JOBDIR/manifest.json written
by the TensorFlow parent, and for every entry builds the model with the
recorded kwargs, loads the parent's `.weights.h5`, runs inference on the
parent's input and writes `<name>.<backend>.npz`. One model's failure is
recorded in JOBDIR/results.<backend>.json and the worker goes on, so one
process covers every model.
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
    with open(os.path.join(jobdir, "manifest.json")) as f:
        manifest = json.load(f)
    results = {}
    results_path = os.path.join(jobdir, f"results.{backend}.json")
    for entry in manifest:
        name = entry["name"]
        start = time.perf_counter()
        try:
            model = build_config(name, entry["kwargs"])
            model.load_weights(os.path.join(jobdir, entry["weights"]))
            inputs = np.load(os.path.join(jobdir, entry["inputs"]))
            xs = [inputs[f"x{i}"] for i in range(len(inputs.files))]
            outputs = model(xs[0] if len(xs) == 1 else xs, training=False)
            outputs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
            arrays = {f"y{i}": keras.ops.convert_to_numpy(o) for i, o in enumerate(outputs)}
            np.savez(os.path.join(jobdir, f"{name}.{backend}.npz"), **arrays)
            results[name] = {"status": "ok", "seconds": time.perf_counter() - start}
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


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
