"""Every registered model gives TensorFlow's outputs under the JAX and torch backends.

The parent (this file, TensorFlow backend) builds each model in its small
configuration (`configs.small_config`), gives it healthy random weights
(tests.references.heal_keras, calibrated on the compared batch and six more
inputs), saves the weights and computes reference outputs; one `worker.py`
subprocess per backend, both running at once, rebuilds every model, loads
those weights and writes its outputs. Bar: tests.references.assert_parity
(outputs that depend on the input, then max |diff| <= 1e-4 x max |ref|).
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest

import kerasnets
from kerasnets.registry import ReleaseModels
from tests.backends.configs import UNSUPPORTED, input_shapes, small_config
from tests.conftest import ROOT
from tests.references import assert_parity, build_uninitialised, heal_keras

BACKENDS = {"jax": "jax", "torch": "torch"}  # backend -> package it needs
WORKER_TIMEOUT = 900
# KERASNETS_BACKEND_MODELS=inception_v4,resnet50 runs a subset (the job builds every model otherwise)
MODELS = [m for m in os.environ.get("KERASNETS_BACKEND_MODELS", "").split(",") if m] or kerasnets.available_models()


# The two workers run beside this process (and beside the other xdist worker): a second intra-op
# thread finds no free core and spins (torch's load_weights: same wall time, twice the CPU time).
# One thread each; the outputs compared are the same computations, summed in at most another order.
SINGLE_THREADED = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
                   "XLA_FLAGS": "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"}

CALIBRATION_EXTRA = 6
SCALING_LAYERS = ("Rescaling", "Normalization", "Preprocess")


def _pixel_range(model):
    """0..255 for a model that scales its own input (MobileNetV3, presets), else -1..1."""
    first = [layer for layer in model.layers if type(layer).__name__ != "InputLayer"][:1]
    if first and type(first[0]).__name__ in SCALING_LAYERS:
        return 0.0, 255.0
    return -1.0, 1.0


def _missing(backend):
    return importlib.util.find_spec(BACKENDS[backend]) is None


def _start_workers(jobdir):
    procs = {}
    for backend in BACKENDS:
        if _missing(backend):
            continue
        env = dict(os.environ, KERAS_BACKEND=backend, JAX_PLATFORMS="cpu", CUDA_VISIBLE_DEVICES="",
                   PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
                   **SINGLE_THREADED)
        log = open(jobdir / f"worker.{backend}.log", "w")
        proc = subprocess.Popen([sys.executable, "-m", "tests.backends.worker", str(jobdir)], cwd=ROOT, env=env,
                                stdout=log, stderr=subprocess.STDOUT)
        procs[backend] = (proc, log)
    return procs


@pytest.fixture(scope="module")
def job(tmp_path_factory):
    """TensorFlow references for every model, streamed to both workers as each model is saved."""
    import keras

    if keras.backend.backend() != "tensorflow":
        pytest.skip("the cross-backend parent runs under the TensorFlow backend")
    jobdir = tmp_path_factory.mktemp("backends")
    procs = _start_workers(jobdir)  # they follow manifest.jsonl while this process builds
    rng = np.random.default_rng(0)
    release = ReleaseModels()
    unread = []  # models whose weight file some worker has still to load
    try:
        with open(jobdir / "manifest.jsonl", "w") as manifest:
            for name in MODELS:
                kwargs, model = build_uninitialised(small_config, name)  # heal_keras gives the values
                low, high = _pixel_range(model)
                xs = [rng.uniform(low, high, shape).astype("float32") for shape in input_shapes(model)]
                # calibrated on the compared inputs and a few more: BN statistics from 8 samples would
                # blow up an unseen input (deep layers see 1x1 maps at this size)
                calibration = [np.concatenate([x, rng.uniform(low, high, (CALIBRATION_EXTRA,) + x.shape[1:])])
                               for x in xs]
                heal_keras(model, calibration[0] if len(calibration) == 1 else calibration, seed=1)
                outputs = model(xs[0] if len(xs) == 1 else xs, training=False)
                outputs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
                np.savez(jobdir / f"{name}.tensorflow.npz",
                         **{f"y{i}": keras.ops.convert_to_numpy(o) for i, o in enumerate(outputs)})
                np.savez(jobdir / f"{name}.inputs.npz", **{f"x{i}": x for i, x in enumerate(xs)})
                unread = _delete_read_weights(jobdir, procs, unread)  # just before the save: see its docstring
                model.save_weights(jobdir / f"{name}.weights.h5")
                unread.append(name)
                manifest.write(json.dumps({"name": name, "kwargs": kwargs, "weights": f"{name}.weights.h5",
                                           "inputs": f"{name}.inputs.npz"}) + "\n")
                manifest.flush()
                params = model.count_params()
                del model
                release(params)
            manifest.write("END\n")
    finally:
        deadline = time.monotonic() + WORKER_TIMEOUT
        for backend, (proc, log) in procs.items():
            try:
                proc.wait(timeout=max(1.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            log.close()
    yield jobdir
    for name in MODELS:  # several GB of weight files
        (jobdir / f"{name}.weights.h5").unlink(missing_ok=True)


def _delete_read_weights(jobdir, procs, names):
    """Deletes the weight files of `names` that every worker has done with; returns the others.

    The registry's files hold 3.8 GB. Page-cache pages that a deleted file frees are reused at once
    by the next write, while pages the kernel has not used for a few seconds cost a fresh zeroed page
    (on the build VM, whose free pages go back to the host: 2.2 s of system time for 350 MB written
    to new pages, 0.05 s when just freed); so the parent deletes what both workers have loaded
    right before it writes the next file, instead of leaving them all to the end.
    """
    done = None
    for backend in procs:
        try:
            results = json.loads((jobdir / f"results.{backend}.json").read_text())["results"]
        except (OSError, ValueError, KeyError):  # not written yet, or caught mid-rewrite
            results = {}
        done = set(results) if done is None else done & set(results)
    done = done or set()
    for name in names:
        if name in done:
            (jobdir / f"{name}.weights.h5").unlink(missing_ok=True)
    return [name for name in names if name not in done]


def _worker_results(jobdir, backend):
    path = jobdir / f"results.{backend}.json"
    log = (jobdir / f"worker.{backend}.log").read_text()[-4000:]
    assert path.exists(), f"{backend} worker wrote no results; its log ends:\n{log}"
    return json.loads(path.read_text())["results"], log


def test_every_registered_model_is_covered():
    """The table of known failures names only registered models: stale entries hide nothing."""
    for backend, table in UNSUPPORTED.items():
        assert set(table) <= set(MODELS), f"{backend}: unknown models in UNSUPPORTED {set(table) - set(MODELS)}"


@pytest.mark.parametrize("backend", sorted(BACKENDS))
@pytest.mark.parametrize("name", MODELS)
def test_backend_matches_tensorflow(job, backend, name):
    if _missing(backend):
        pytest.skip(f"{BACKENDS[backend]} is not installed: pip install -e .[backends]")
    if name in UNSUPPORTED[backend]:
        pytest.skip(f"{name} on {backend}: {UNSUPPORTED[backend][name]} (see docs/backends.md)")
    results, log = _worker_results(job, backend)
    assert name in results, f"{backend} worker never reached {name}; its log ends:\n{log}"
    result = results[name]
    assert result["status"] == "ok", f"{name} failed on {backend}: {result.get('traceback', result)}"
    expected = np.load(job / f"{name}.tensorflow.npz")
    actual = np.load(job / f"{name}.{backend}.npz")
    assert sorted(actual.files) == sorted(expected.files), f"{name}: output count differs on {backend}"
    for key in expected.files:
        assert_parity(actual[key], expected[key], what=f"{name} {key} on {backend} vs tensorflow")
