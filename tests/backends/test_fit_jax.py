"""`training.fit` trains under the JAX backend from numpy arrays, a PyDataset and an image folder (no tf.data)."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT


@pytest.mark.skipif(importlib.util.find_spec("jax") is None, reason="jax is not installed: pip install -e .[backends]")
def test_fit_runs_on_jax_with_numpy_pydataset_and_image_folder(tmp_path):
    env = dict(os.environ, KERAS_BACKEND="jax", JAX_PLATFORMS="cpu",
               PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    proc = subprocess.run([sys.executable, "-m", "tests.backends.fit_worker", str(tmp_path)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"fit on JAX failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["backend"] == "jax"
    folder = summary["folder_data"]  # an image folder gives PyDatasets, and needs no TensorFlow to do so
    assert folder["train_type"] == folder["val_type"] == "FolderBatches", folder
    assert not folder["tensorflow_before"] and not folder["tensorflow_after"], folder
    assert folder["batch_shape"] == [8, 16, 16, 3], folder
    for label in ("numpy", "pydataset", "folder"):
        run = summary[label]
        loss = run["history"]["loss"]
        assert len(loss) == 3, f"{label}: {run['history']}"
        assert loss[-1] < loss[0], f"{label}: loss did not decrease on JAX: {loss}"
        assert "val_accuracy" in run["history"], f"{label}: no validation metrics: {sorted(run['history'])}"
        assert {"final.keras", "final.h5", "best.weights.h5", "log.csv"} <= set(run["files"]), run["files"]
        assert run["reload_max_diff"] <= 1e-5, f"{label}: reloaded final.keras differs by {run['reload_max_diff']}"
