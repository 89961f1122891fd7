"""`weights_io` loads the same files to the same outputs under JAX and PyTorch as under TensorFlow.

The import path is backend-specific (TensorFlow adopts a tensor from its own
allocator, PyTorch is written in place, JAX gets an aligned numpy array), so
each backend loads a torch .pth (transposed kernels, CHW flatten), a .npy
pickle (mapped payloads) and a Keras .weights.h5 in a subprocess; and a registered
builder given a weight file, whose variables get their first values from the file
(no initialiser runs), gives TensorFlow's outputs there too.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from tests.backends.weights_worker import REGISTERED, identity_layout, tiny_model
from tests.conftest import ROOT
from tests.references import assert_parity

BACKENDS = [b for b in ("jax", "torch") if importlib.util.find_spec(b) is not None]


@pytest.mark.skipif(not BACKENDS, reason="neither jax nor torch is installed: pip install -e .[backends]")
def test_weights_io_loads_the_same_on_every_backend(tmp_path):
    import keras

    from weights_io import save_npy_weights, save_torch_state_dict

    if keras.backend.backend() != "tensorflow":
        pytest.skip("the parent runs under the TensorFlow backend")
    rng = np.random.default_rng(0)
    model = tiny_model()
    for variable in model.weights:
        variable.assign(rng.standard_normal(variable.shape).astype("float32") * 0.1)
    model.get_layer("bn").moving_variance.assign(rng.uniform(0.5, 2, 64).astype("float32"))
    x = rng.standard_normal((4, 7, 7, 30)).astype("float32")
    expected = keras.ops.convert_to_numpy(model(x, training=False))
    np.save(tmp_path / "inputs.npy", x)
    save_torch_state_dict(model, tmp_path / "w.pth", layout=identity_layout())
    save_npy_weights(model, tmp_path / "w.npy", layout=identity_layout(), style="caffe-tensorflow")
    model.save_weights(tmp_path / "w.weights.h5")
    registered_expected, registered_x = _registered_reference(tmp_path, rng)
    env_base = dict(os.environ, JAX_PLATFORMS="cpu", CUDA_VISIBLE_DEVICES="",
                    PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    procs = {b: subprocess.Popen([sys.executable, "-m", "tests.backends.weights_worker", str(tmp_path)], cwd=ROOT,
                                 env=dict(env_base, KERAS_BACKEND=b), stdout=subprocess.PIPE,
                                 stderr=subprocess.STDOUT, text=True)
             for b in BACKENDS}
    for backend, proc in procs.items():
        out, _ = proc.communicate(timeout=600)
        assert proc.returncode == 0, f"{backend} worker failed:\n{out[-5000:]}"
        summary = json.loads((tmp_path / f"summary.{backend}.json").read_text())
        assert summary["backend"] == backend
        for name in ("w.pth", "w.npy", "w.weights.h5"):
            assert summary[name], f"{backend}: {name} did not load cleanly"
            assert_parity(np.load(tmp_path / f"{name}.{backend}.npy"), expected, what=f"{backend} {name}")
        assert_parity(np.load(tmp_path / f"folded.{backend}.npy"), expected, what=f"{backend} fold_batch_norm")
        assert summary["registered_unset"] == [] and summary["registered_pending"] == 0
        assert summary["registered_drawn"] and all("seed_generator" in p for p in summary["registered_drawn"])
        assert_parity(np.load(tmp_path / f"registered.{backend}.npy"), registered_expected,
                      what=f"{backend} {REGISTERED[0]} built with weights=")


def _registered_reference(jobdir, rng):
    """`REGISTERED`'s TensorFlow outputs and inputs, and its weights (healthy random) for the workers."""
    import keras

    import kerasnets
    from tests.references import heal_keras

    name, options = REGISTERED
    x = rng.uniform(0, 255, (4,) + options["input_shape"]).astype("float32")
    model = heal_keras(kerasnets.build(name, **options), np.concatenate([x, x[::-1] * 0.5]), seed=4)
    model.save_weights(jobdir / "registered.weights.h5")
    np.save(jobdir / "registered_inputs.npy", x)
    return keras.ops.convert_to_numpy(model(x, training=False)), x
