"""training.deploy: every export format re-run in its own runtime matches Keras; the predictor is verified.

Reference outputs are the Keras model's own (computed here, independently of
the artifact); the bar is max |diff| <= 1e-4 x max |ref|. Models are small
configurations (32x32 inputs where the net allows) to keep CI time down.
"""

from __future__ import annotations

import importlib.util
import os

import numpy as np
import pytest

import kerasnets
from tests.conftest import assert_close
from tests.references import assert_parity, build_uninitialised, heal_keras
from training import deploy

RUNTIMES = ("saved_model", "onnx", "tflite")
# model -> builder kwargs: the representative set at small sizes
EXPORTED = {
    "vgg16": dict(include_top=False, input_shape=(32, 32, 3)),
    "resnet50": dict(classes=10, input_shape=(32, 32, 3)),
    "googlenet": dict(classes=10, input_shape=(32, 32, 3)),
    "mobilenet_v3_small": dict(classes=10, input_shape=(32, 32, 3)),
    "fsrcnn": dict(input_shape=(32, 32, 1)),
    # a quarter of the width, the same graph: ONNX conversion took 20.5 s at 64 filters (31M weights), 1.7 s at 16
    "unet": dict(classes=2, input_shape=(188, 188, 1), filters=16),
}
EXPORTED = {k: v for k, v in EXPORTED.items() if k in kerasnets.available_models()}
# (model, runtime) pairs that fail, with the reason; strict xfail so a fix is noticed
KNOWN_FAILURES = {}
# the slowest conversions on a 2-core machine (30-70 s per runtime): still run in CI
SLOW = {"resnet50", "googlenet", "mobilenet_v3_small"}
NEEDS = {"onnx": "onnxruntime", "saved_model": "tensorflow", "tflite": "tensorflow"}


def _pixels(shape, count, seed):
    """0..255 images: MobileNetV3 rescales its input itself, and N(0, 1) would reach it as a constant."""
    return np.random.default_rng(seed).uniform(0, 255, (count,) + tuple(shape)).astype("float32")


def _small(name):
    model = build_uninitialised(kerasnets.build, name, **EXPORTED[name])
    return heal_keras(model, _pixels(model.inputs[0].shape[1:], 4, seed=3), seed=3)


@pytest.fixture(scope="module")
def models():
    return {}


def _model(models, name):
    if name not in models:
        models[name] = _small(name)
    return models[name]


@pytest.mark.parametrize("fmt", RUNTIMES)
@pytest.mark.parametrize(
    "name", [pytest.param(n, marks=pytest.mark.slow) if n in SLOW else n for n in sorted(EXPORTED)])
def test_export_runs_in_its_runtime_like_keras(models, name, fmt, tmp_path):
    if importlib.util.find_spec(NEEDS[fmt]) is None:
        pytest.skip(f"{NEEDS[fmt]} is not installed: pip install -e .[export]")
    model = _model(models, name)
    if (name, fmt) in KNOWN_FAILURES:
        with pytest.raises(deploy.ExportParityError, match="does not run|does not reproduce"):
            deploy.export(model, tmp_path / name, fmt, batch_size=2)
        pytest.xfail(KNOWN_FAILURES[name, fmt])
    report = deploy.export(model, tmp_path / name, fmt, batch_size=2)
    # independent of export()'s own check: a fresh runtime, another batch
    x = _pixels(model.inputs[0].shape[1:], 3, seed=7)
    expected = np.asarray(model(x, training=False))
    actual = deploy.load_runtime(report.path, fmt)(x)
    assert isinstance(actual, np.ndarray) and actual.shape == expected.shape  # one output: an array, as predict
    assert_parity(actual, expected, what=f"{name} via {fmt}")
    assert report.relative_diff <= 1e-4


@pytest.mark.parametrize("fmt", ["keras", "h5"])
def test_keras_file_formats_round_trip(models, fmt, tmp_path):
    model = _model(models, "mobilenet_v3_small")
    report = deploy.export(model, tmp_path / "m", fmt)
    # the file holds keras' own BatchNormalization (what kerasnets' fused layer saves as): the reloaded
    # model computes the same to float rounding, not bit for bit (2.8e-5 of max|ref| on an AVX-512 CPU)
    assert report.path.endswith("." + fmt) and report.relative_diff <= 1e-4


def test_mixed_precision_model_goes_to_onnx_as_its_float32_copy(tmp_path):
    """What precision="auto" trains on a CPU with bfloat16 (or a GPU in float16): tf2onnx refuses the mixed
    graph, so the artifact is the same weights computing in float32, checked against that copy."""
    pytest.importorskip("onnxruntime")
    from training.precision import build_under

    model = build_under("mixed_bfloat16", lambda: kerasnets.build("lenet5", classes=10))
    copy = deploy.float32_copy(model)
    assert {layer.dtype_policy.name for layer in copy._flatten_layers(include_self=False)} == {"float32"}
    x = deploy.sample_batch(model)
    bf16, f32 = np.asarray(model(x)), np.asarray(copy(x))
    assert 0 < np.abs(bf16 - f32).max() <= 1e-2 * np.abs(f32).max()  # bfloat16 rounding, same weights
    report = deploy.export(model, tmp_path / "m", "onnx")
    np.testing.assert_allclose(deploy.load_runtime(report.path, "onnx")(x), f32, rtol=0,
                               atol=1e-4 * np.abs(f32).max())


def test_onnx_export_without_tf2onnx_copies_writes_the_same_graph(models, tmp_path, monkeypatch):
    """deploy's ONNX conversion (tf2onnx's passes on the graph itself) against keras' own export (tf2onnx
    copying the graph before each pass, what a user's TF2ONNX_CATCH_ERRORS=TRUE also keeps): the same
    nodes, the same outputs in onnxruntime."""
    pytest.importorskip("onnxruntime")
    onnx = pytest.importorskip("onnx")
    tf2onnx_constants = pytest.importorskip("tf2onnx.constants")
    assert deploy.TF2ONNX_CATCH_ERRORS == tf2onnx_constants.ENV_TF2ONNX_CATCH_ERRORS
    model = _model(models, "unet")
    ours, keras_own = str(tmp_path / "ours.onnx"), str(tmp_path / "keras.onnx")
    monkeypatch.delenv(deploy.TF2ONNX_CATCH_ERRORS, raising=False)
    deploy._keras_export(model, ours, "onnx")
    assert deploy.TF2ONNX_CATCH_ERRORS not in os.environ
    monkeypatch.setenv(deploy.TF2ONNX_CATCH_ERRORS, "TRUE")
    model.export(keras_own, format="onnx", verbose=False)
    graphs = [onnx.load(path).graph for path in (ours, keras_own)]
    assert [n.op_type for n in graphs[0].node] == [n.op_type for n in graphs[1].node]
    assert len(graphs[0].node) > 40  # a real graph: U-Net's convolutions, crops, concatenations
    x = _pixels(model.inputs[0].shape[1:], 2, seed=5)
    np.testing.assert_array_equal(deploy.load_runtime(ours, "onnx")(x), deploy.load_runtime(keras_own, "onnx")(x))


class _ExportRecorder:
    """A stand-in for a model: records TF2ONNX_CATCH_ERRORS at each export, writes a file, fails on demand."""

    def __init__(self, fail_when=()):
        self.seen, self.fail_when = [], fail_when

    def export(self, path, format, verbose):
        value = os.environ.get(deploy.TF2ONNX_CATCH_ERRORS)
        self.seen.append((format, value))
        with open(path, "w") as f:
            f.write("partial")
        if value in self.fail_when:
            raise RuntimeError("an optimizer pass failed")


def test_onnx_export_redoes_a_failed_conversion_the_copying_way(tmp_path, monkeypatch):
    monkeypatch.delenv(deploy.TF2ONNX_CATCH_ERRORS, raising=False)
    model = _ExportRecorder(fail_when=("FALSE",))
    deploy._keras_export(model, str(tmp_path / "m.onnx"), "onnx")
    assert model.seen == [("onnx", "FALSE"), ("onnx", None)]  # the second time tf2onnx's default, copying
    assert deploy.TF2ONNX_CATCH_ERRORS not in os.environ

    model = _ExportRecorder(fail_when=("FALSE", None))  # fails either way: the error of the copying conversion reaches the caller
    with pytest.raises(RuntimeError, match="optimizer pass"):
        deploy._keras_export(model, str(tmp_path / "n.onnx"), "onnx")
    assert [value for _, value in model.seen] == ["FALSE", None]

    monkeypatch.setenv(deploy.TF2ONNX_CATCH_ERRORS, "TRUE")  # the user's choice stands
    model = _ExportRecorder()
    deploy._keras_export(model, str(tmp_path / "o.onnx"), "onnx")
    deploy._keras_export(model, str(tmp_path / "p"), "saved_model")
    assert model.seen == [("onnx", "TRUE"), ("tf_saved_model", "TRUE")]
    assert os.environ[deploy.TF2ONNX_CATCH_ERRORS] == "TRUE"


def test_mismatching_artifact_is_refused(models, tmp_path, monkeypatch):
    """A runtime that drifts by 1e-3 x max|ref| must fail the export (and the CLI with exit 1)."""
    model = _model(models, "fsrcnn") if "fsrcnn" in EXPORTED else kerasnets.build_lenet5()
    real = deploy._RUNTIMES["keras"]

    def drifting(path):
        run = real(path)

        def perturbed(x):
            out = run(x)
            return [o + 1e-3 * np.abs(o).max() for o in out]

        return perturbed

    monkeypatch.setitem(deploy._RUNTIMES, "keras", drifting)
    with pytest.raises(deploy.ExportParityError, match="does not reproduce"):
        deploy.export(model, tmp_path / "m", "keras")


def test_cli_export_writes_and_checks(tmp_path, monkeypatch, capsys):
    from training.cli import main

    weights = tmp_path / "lenet.weights.h5"
    model = kerasnets.build_lenet5()
    model.save_weights(weights)
    out = tmp_path / "lenet.onnx"
    fmt = "onnx" if importlib.util.find_spec("onnxruntime") else "keras"
    assert main(["export", "lenet5", "--format", fmt, "--output", str(out), "--weights", str(weights)]) == 0
    assert "max |diff|" in capsys.readouterr().out
    written = out if fmt == "onnx" else tmp_path / "lenet.onnx.keras"
    assert written.exists()
    if fmt == "onnx":  # the file holds the weights we passed, not fresh random ones
        x = np.random.default_rng(0).normal(0, 1, (2, 32, 32, 1)).astype("float32")
        assert_close(deploy.load_runtime(written, "onnx")(x), np.asarray(model(x)), what="onnx of --weights")

    monkeypatch.setattr(deploy, "compare_outputs", lambda actual, expected: (1.0, 1.0))
    assert main(["export", "lenet5", "--format", "keras", "--output", str(tmp_path / "bad")]) == 1
    assert "parity check failed" in capsys.readouterr().err


def test_cli_export_without_its_packages_says_what_to_install(tmp_path, monkeypatch, capsys):
    """No traceback: one line naming the missing packages and the install command, exit status 2."""
    from training.cli import main

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "tf2onnx" else real_find_spec(name, *a))
    assert main(["export", "lenet5", "--format", "onnx", "--output", str(tmp_path / "x.onnx")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["kerasnets export: --format onnx needs tf2onnx: pip install 'kerasnets[export]' "
                   "(or: pip install tf2onnx)"]
    assert not (tmp_path / "x.onnx").exists()


def test_cli_export_rejects_unknown_format(capsys):
    from training.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(["export", "lenet5", "--format", "pt", "--output", "x"])
    assert exit_info.value.code == 2
    with pytest.raises(ValueError, match="format"):
        deploy.export(kerasnets.build_lenet5(), "x", "pt")


def test_predictor_matches_model_and_records_its_choice():
    model = heal_keras(kerasnets.build_mobilenet_v3_small(classes=10, input_shape=(32, 32, 3)),
                       _pixels((32, 32, 3), 4, seed=0))
    names = ("eager", "tf.function", "tf.function+fold_batch_norm", "tf.function(jit_compile=True)")
    fast = deploy.predictor(model, repeats=2, candidates=names)
    assert fast.choice in fast.timings and set(fast.timings) <= set(names)
    assert fast.timings[fast.choice] == min(fast.timings.values())
    assert "tf.function+fold_batch_norm" in fast.timings, fast.rejected  # built, and within 1e-4 of eager
    for batch in (2, 3):  # other batch sizes than the timed one must work too
        x = _pixels((32, 32, 3), batch, seed=batch)
        assert_parity(fast(x), np.asarray(model(x, training=False)), what=f"predictor batch {batch}")
    x = _pixels((32, 32, 3), 1, seed=1)  # batch 1, the timed path
    assert_close(fast(x), np.asarray(model(x, training=False)), what="predictor batch 1")


def test_predictor_rejects_a_wrong_candidate(monkeypatch):
    model = kerasnets.build_lenet5()

    def broken(model, jit_compile):
        return lambda x: [np.zeros((len(x), 10), "float32")]

    monkeypatch.setattr(deploy, "_tf_function_candidate", broken)
    fast = deploy.predictor(model, repeats=1, candidates=("eager", "tf.function"))
    assert fast.choice == "eager"
    assert "max |diff|" in fast.rejected["tf.function"]


def test_predict_image_through_the_predictor_matches_model_predict(tmp_path):
    from PIL import Image

    from training.predict import predict_image

    model = heal_keras(kerasnets.build_mobilenet_v3_small(classes=7, input_shape=(32, 32, 3)),
                       _pixels((32, 32, 3), 4, seed=0))
    image = tmp_path / "x.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (40, 50, 3), dtype=np.uint8)).save(image)
    fast = deploy.predictor(model, repeats=1, candidates=deploy.quick_candidates())
    got = predict_image(model, image, top_k=7, runner=fast, preprocessing="tf")
    want = predict_image(model, image, top_k=7, preprocessing="tf")
    assert [n for n, _ in got] == [n for n, _ in want]
    assert_close([p for _, p in got], [p for _, p in want], what="top-7 probabilities")
