"""Export to deployment formats with a built-in parity check, and a fast batch-1 predictor.

    from training.deploy import export, predictor
    report = export(model, "resnet50.onnx", "onnx")     # raises ExportParityError on mismatch
    fast = predictor(model)                              # fastest verified batch-1 path
    probabilities = fast(image_batch)

Lives in `training` (not kerasnets) because exporting and running the
artifacts needs TensorFlow, onnxruntime and the TFLite interpreter, which
kerasnets and weights_io must never import.

Every export is followed by running the artifact in its own runtime (TF
SavedModel, onnxruntime, the LiteRT/TFLite interpreter, or a reload for
.keras/.h5) on a random batch and comparing with the Keras model: a
converter that silently changes numbers (padding, layout, fused ops) is
caught at export time, not in production.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import statistics
import tempfile
import time

import numpy as np

FORMATS = ("saved_model", "onnx", "tflite", "keras", "h5")
_KERAS_EXPORT_FORMAT = {"saved_model": "tf_saved_model", "onnx": "onnx", "tflite": "litert"}
_SUFFIX = {"onnx": ".onnx", "tflite": ".tflite", "keras": ".keras", "h5": ".h5"}
DEFAULT_SPATIAL = 224  # random-batch size for models built with input_shape=(None, None, C)
# tf2onnx's switch (tf2onnx.constants.ENV_TF2ONNX_CATCH_ERRORS), read at each conversion
TF2ONNX_CATCH_ERRORS = "TF2ONNX_CATCH_ERRORS"


class ExportParityError(RuntimeError):
    """The exported artifact's outputs differ from the Keras model's."""


@dataclasses.dataclass
class ExportReport:
    """What `export` wrote and how closely the artifact reproduced the model."""

    path: str
    format: str
    max_abs_diff: float | None
    max_abs_ref: float | None
    rtol: float

    @property
    def relative_diff(self):
        if self.max_abs_diff is None:
            return None
        return self.max_abs_diff / max(self.max_abs_ref, 1e-12)

    def __str__(self):
        if self.max_abs_diff is None:
            return f"exported {self.format} to {self.path} (parity not checked)"
        return (f"exported {self.format} to {self.path}: max |diff| {self.max_abs_diff:.3g} "
                f"= {self.relative_diff:.3g} x max |ref| (limit {self.rtol:g})")


def check_format(fmt):
    if fmt not in FORMATS:
        raise ValueError(f"`format` must be one of {FORMATS}. Received: format={fmt!r}")
    return fmt


def sample_batch(model, batch_size=2, seed=0):
    """A random float32 batch for every input of `model` (unknown H/W -> DEFAULT_SPATIAL)."""
    rng = np.random.default_rng(seed)
    batches = []
    for tensor in model.inputs:
        shape = [batch_size] + [DEFAULT_SPATIAL if d is None else int(d) for d in tensor.shape[1:]]
        batches.append(rng.uniform(-1.0, 1.0, shape).astype("float32"))
    return batches[0] if len(batches) == 1 else batches


def _as_list(outputs):
    if isinstance(outputs, dict):
        return [np.asarray(outputs[k]) for k in sorted(outputs)]
    if isinstance(outputs, (list, tuple)):
        return [np.asarray(o) for o in outputs]
    return [np.asarray(outputs)]


def keras_outputs(model, x):
    """The model's inference outputs as a list of numpy arrays."""
    import keras

    return [keras.ops.convert_to_numpy(o) for o in _as_list_tensors(model(x, training=False))]


def _as_list_tensors(outputs):
    if isinstance(outputs, dict):
        return [outputs[k] for k in sorted(outputs)]
    return list(outputs) if isinstance(outputs, (list, tuple)) else [outputs]


def load_runtime(path, fmt):
    """A function numpy batch -> numpy output running the exported artifact in its runtime.

    Args:
        path: what `export` wrote.
        fmt: one of FORMATS.

    Returns:
        A callable taking the model's input batch (array, or list for several
        inputs) and returning, as `model.predict` does, one array, or a list of
        arrays for a model with several outputs.
    """
    run = _runtime_outputs(path, fmt)

    def predict(x):
        outputs = run(x)
        return outputs[0] if len(outputs) == 1 else outputs

    predict.outputs = run  # every output as a list, whatever their number
    return predict


def _runtime_outputs(path, fmt):
    """The runtime as a function batch -> list of numpy outputs (what `export` compares)."""
    check_format(fmt)
    return _RUNTIMES[fmt](os.fspath(path))


def _saved_model_runtime(path):
    import tensorflow as tf

    loaded = tf.saved_model.load(path)
    serve = loaded.signatures["serving_default"]
    input_keys = list(serve.structured_input_signature[1].keys())

    def run(x):
        xs = x if isinstance(x, list) else [x]
        outputs = serve(**{k: tf.constant(v) for k, v in zip(input_keys, xs)})
        # serving_default returns a dict keyed output_0, output_1, ... in output order
        return [np.asarray(outputs[k]) for k in sorted(outputs, key=_output_index)]

    run.keep_alive = loaded  # the concrete function does not own the variables
    return run


def _output_index(key):
    tail = key.rsplit("_", 1)[-1]
    return (0, int(tail)) if tail.isdigit() else (1, key)


def _onnx_runtime(path):
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3
    session = onnxruntime.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]

    def run(x):
        xs = x if isinstance(x, list) else [x]
        return session.run(None, {n: np.ascontiguousarray(v, np.float32) for n, v in zip(names, xs)})

    run.session = session
    return run


def tflite_interpreter_class():
    """LiteRT's interpreter if `ai-edge-litert` is installed, else TensorFlow's tf.lite one."""
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        import tensorflow as tf

        Interpreter = tf.lite.Interpreter
    return Interpreter


def _tflite_runtime(path):
    interpreter = tflite_interpreter_class()(model_path=path)
    inputs = interpreter.get_input_details()
    outputs = interpreter.get_output_details()
    state = {"shapes": None}

    def run(x):
        xs = x if isinstance(x, list) else [x]
        shapes = [v.shape for v in xs]
        if shapes != state["shapes"]:
            # the batch dimension is dynamic in the flatbuffer; size it for this call
            for detail, v in zip(inputs, xs):
                interpreter.resize_tensor_input(detail["index"], v.shape)
            interpreter.allocate_tensors()
            state["shapes"] = shapes
        for detail, v in zip(inputs, xs):
            interpreter.set_tensor(detail["index"], np.ascontiguousarray(v, np.float32))
        interpreter.invoke()
        return [interpreter.get_tensor(d["index"]).copy() for d in outputs]

    return run


def load_saved_model(path):
    """`keras.saving.load_model(path, compile=False)` after `import kerasnets`, which registers
    the custom layers (Preprocess, LRN, ...) a saved kerasnets model needs to deserialize."""
    import keras

    import kerasnets  # noqa: F401

    return keras.saving.load_model(path, compile=False)


def _keras_file_runtime(path):
    model = load_saved_model(path)
    return lambda x: keras_outputs(model, x)


_RUNTIMES = {
    "saved_model": _saved_model_runtime,
    "onnx": _onnx_runtime,
    "tflite": _tflite_runtime,
    "keras": _keras_file_runtime,
    "h5": _keras_file_runtime,
}


def compare_outputs(actual, expected):
    """(max |diff|, max |ref|) over all outputs; shape mismatch raises ExportParityError."""
    if len(actual) != len(expected):
        raise ExportParityError(f"artifact returned {len(actual)} outputs, the model {len(expected)}")
    worst, scale = 0.0, 0.0
    for a, e in zip(actual, expected):
        a, e = np.asarray(a, np.float64), np.asarray(e, np.float64)
        if a.shape != e.shape:
            raise ExportParityError(f"artifact output shape {a.shape} != model output shape {e.shape}")
        worst = max(worst, float(np.abs(a - e).max()))
        scale = max(scale, float(np.abs(e).max()))
    return worst, scale


def _is_mixed_precision(model):
    return any(layer.dtype_policy.compute_dtype != layer.dtype_policy.variable_dtype
               for layer in model._flatten_layers(include_self=False))


def float32_copy(model):
    """`model` rebuilt with every layer computing in float32, holding its weights.

    A model trained under `precision="auto"` on a CPU with native bfloat16 (or on a GPU in float16)
    computes in that dtype; its variables are float32 already, so the copy holds the same numbers.
    """
    import keras

    def clone(layer):
        config = layer.get_config()
        config["dtype"] = "float32"
        return layer.__class__.from_config(config)

    copy = keras.models.clone_model(model, clone_function=clone, recursive=True)
    copy.set_weights(model.get_weights())
    return copy


def export(model, path, fmt, *, check=True, rtol=1e-4, batch_size=2, seed=0, overwrite=True):
    """Writes `model` as a deployment artifact and (by default) verifies it in its runtime.

    Args:
        model: a built Keras model.
        path: output path; a directory for saved_model, `.onnx`, `.tflite`,
            `.keras` or `.h5` file otherwise (the suffix is added if missing).
        fmt: "saved_model", "onnx", "tflite", "keras" or "h5".
        check: run the artifact on a random batch and compare with the model.
        rtol: allowed max |diff| as a fraction of max |model output|.
        batch_size: rows of the random batch (2 also checks the dynamic batch dimension).
        seed: seed of the random batch.
        overwrite: replace an existing artifact at `path`.

    A mixed-precision model goes to ONNX as its `float32_copy` (the same weights computing in float32),
    and the artifact is checked against that copy.

    Returns:
        An `ExportReport` with the path written and the measured difference.

    Raises:
        ExportParityError: the artifact's outputs differ by more than `rtol`.
        ValueError: unknown format or `path` exists and overwrite=False.
    """
    check_format(fmt)
    path = os.fspath(path)
    suffix = _SUFFIX.get(fmt)
    if suffix and not path.endswith(suffix):
        path += suffix
    if os.path.exists(path):
        if not overwrite:
            raise ValueError(f"{path!r} exists; pass overwrite=True to replace it.")
        shutil.rmtree(path) if os.path.isdir(path) else os.remove(path)
    parent = os.path.dirname(os.path.abspath(path))
    os.makedirs(parent, exist_ok=True)
    # one call first: Keras' exporters refuse a model that was never called (e.g. after load_weights)
    x = sample_batch(model, batch_size=batch_size, seed=seed)
    if fmt == "onnx" and _is_mixed_precision(model):
        model = float32_copy(model)  # tf2onnx refuses graphs that mix bfloat16 or float16 with float32
    expected = keras_outputs(model, x)
    if fmt in ("keras", "h5"):
        model.save(path)
    else:
        _keras_export(model, path, fmt)
    if not check:
        return ExportReport(path, fmt, None, None, rtol)
    try:
        actual = _runtime_outputs(path, fmt)(x)
    except Exception as err:  # noqa: BLE001 - an artifact its runtime cannot run is a failed export
        raise ExportParityError(f"{fmt} artifact {path} does not run in its runtime: "
                                f"{type(err).__name__}: {err}") from err
    worst, scale = compare_outputs(actual, expected)
    report = ExportReport(path, fmt, worst, scale, rtol)
    if not worst <= rtol * max(scale, 1e-12):
        raise ExportParityError(f"{fmt} artifact {path} does not reproduce the model: max |diff| {worst:.3g} "
                                f"> {rtol:g} x max |ref| {scale:.3g}")
    return report


def _keras_export(model, path, fmt):
    """`model.export`; for ONNX, tf2onnx's optimizer passes first run on the graph itself.

    tf2onnx deep-copies the whole graph, weights included, before each of its optimizer passes,
    so that a pass that fails can be skipped: without the copies a ResNet-50 exports 5.2x faster
    (median, 2 cores; docs/benchmarks.md section 12), to the same nodes. A pass that fails then
    raises, and the export is redone with tf2onnx's copies. A value the user set
    for the variable is left alone.
    """
    keras_format = _KERAS_EXPORT_FORMAT[fmt]
    if fmt != "onnx" or TF2ONNX_CATCH_ERRORS in os.environ:
        model.export(path, format=keras_format, verbose=False)
        return
    os.environ[TF2ONNX_CATCH_ERRORS] = "FALSE"
    try:
        model.export(path, format=keras_format, verbose=False)
        return
    except Exception:  # noqa: BLE001 - a pass tf2onnx would have skipped: convert again with its copies
        if os.path.exists(path):
            os.remove(path)
    finally:
        os.environ.pop(TF2ONNX_CATCH_ERRORS, None)
    model.export(path, format=keras_format, verbose=False)


# ---------------------------------------------------------------------------------------------
# Fast inference


@dataclasses.dataclass
class Predictor:
    """A verified inference path chosen by timing; call it like the model on a numpy batch."""

    fn: object
    choice: str
    timings: dict  # candidate -> median seconds per batch-1 call
    rejected: dict  # candidate -> why it was not usable

    def __call__(self, x):
        outputs = self.fn(x)
        return outputs[0] if len(outputs) == 1 else outputs


def _eager_candidate(model):
    return lambda x: keras_outputs(model, x)


def _tf_function_candidate(model, jit_compile):
    import tensorflow as tf

    specs = [tf.TensorSpec((None,) + tuple(t.shape[1:]), tf.float32) for t in model.inputs]

    @tf.function(input_signature=specs if len(specs) > 1 else specs[:1], jit_compile=jit_compile,
                 reduce_retracing=True)
    def call(*xs):
        return _as_list_tensors(model(list(xs) if len(xs) > 1 else xs[0], training=False))

    def run(x):
        xs = x if isinstance(x, list) else [x]
        return [o.numpy() for o in call(*[tf.convert_to_tensor(v, tf.float32) for v in xs])]

    return run


def _jax_jit_candidate(model):
    import jax

    trainable = [v.value for v in model.trainable_variables]
    non_trainable = [v.value for v in model.non_trainable_variables]

    @jax.jit
    def call(tv, ntv, x):
        outputs, _ = model.stateless_call(tv, ntv, x, training=False)
        return _as_list_tensors(outputs)

    return lambda x: [np.asarray(o) for o in call(trainable, non_trainable, x)]


def _torch_no_grad_candidate(model):
    import torch

    def run(x):
        with torch.inference_mode():
            return keras_outputs(model, x)

    return run


def _onnx_candidate(model, workdir):
    path = os.path.join(workdir, "predictor.onnx")
    _keras_export(model, path, "onnx")
    return _onnx_runtime(path)


def _candidates(model, workdir):
    import keras

    from kerasnets.fold import fold_batch_norm, foldable_pairs

    backend = keras.backend.backend()
    # BatchNormalization folded into its convolution: 1.27x for MobileNetV3-Large, within noise for
    # ResNet-50 on a 2-core CPU (docs/benchmarks.md, section 10), so it is measured here like the rest
    foldable = bool(foldable_pairs(model))
    yield "eager", lambda: _eager_candidate(model)
    if backend == "tensorflow":
        yield "tf.function", lambda: _tf_function_candidate(model, jit_compile=False)
        if foldable:
            yield "tf.function+fold_batch_norm", lambda: _tf_function_candidate(fold_batch_norm(model), False)
        yield "tf.function(jit_compile=True)", lambda: _tf_function_candidate(model, jit_compile=True)
        yield "onnxruntime", lambda: _onnx_candidate(model, workdir)
    elif backend == "jax":
        yield "jax.jit", lambda: _jax_jit_candidate(model)
        if foldable:
            yield "jax.jit+fold_batch_norm", lambda: _jax_jit_candidate(fold_batch_norm(model))
    elif backend == "torch":
        yield "torch.inference_mode", lambda: _torch_no_grad_candidate(model)


def quick_candidates():
    """Candidate names that need no export (seconds to set up, not tens of seconds)."""
    return ("eager", "tf.function", "tf.function+fold_batch_norm", "tf.function(jit_compile=True)", "jax.jit",
            "jax.jit+fold_batch_norm", "torch.inference_mode")


def _median_seconds(fn, x, repeats):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn(x)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def predictor(model, *, repeats=5, rtol=1e-4, candidates=None, seed=0):
    """The fastest inference path for batch-1 calls of `model`, chosen by measurement.

    Each candidate of the current backend (eager; tf.function with and without
    XLA and onnxruntime on TensorFlow; jax.jit on JAX; tf.function and jax.jit
    also over `kerasnets.fold_batch_norm(model)` where it folds) is built, checked
    against the eager call on a random batch (max |diff| <= rtol x max |ref|),
    warmed up and timed on batch 1; the fastest verified one wins. A candidate
    that fails to build (e.g. onnxruntime not installed) or to match is
    recorded in `rejected` and skipped.

    Args:
        model: a built Keras model.
        repeats: timed batch-1 calls per candidate (the median is used).
        rtol: parity limit against the eager call.
        candidates: restrict to these candidate names (see `Predictor.timings`).
        seed: seed of the check batch.

    Returns:
        A `Predictor`; `choice`, `timings` and `rejected` say what was measured.
    """
    x1 = sample_batch(model, batch_size=1, seed=seed)
    reference = keras_outputs(model, x1)
    workdir = tempfile.mkdtemp(prefix="kerasnets-predictor-")
    built, timings, rejected = {}, {}, {}
    try:
        for name, make in _candidates(model, workdir):
            if candidates is not None and name not in candidates:
                continue
            try:
                fn = make()
                got = fn(x1)  # also the warm-up: traces/compiles for batch 1
            except Exception as err:  # noqa: BLE001 - any failure just removes the candidate
                rejected[name] = f"{type(err).__name__}: {err}".splitlines()[0][:200]
                continue
            try:
                worst, scale = compare_outputs(got, reference)
            except ExportParityError as err:
                rejected[name] = str(err)
                continue
            if not worst <= rtol * max(scale, 1e-12):
                rejected[name] = f"max |diff| {worst:.3g} > {rtol:g} x max |ref| {scale:.3g}"
                continue
            fn(x1)
            timings[name] = _median_seconds(fn, x1, repeats)
            built[name] = fn
    finally:
        # the onnx candidate has loaded its file into memory already
        shutil.rmtree(workdir, ignore_errors=True)
    if not built:
        raise RuntimeError(f"no inference path reproduced the model: {rejected}")
    choice = min(timings, key=timings.get)
    return Predictor(fn=built[choice], choice=choice, timings=timings, rejected=rejected)


# ---------------------------------------------------------------------------------------------
# Command line


def _model_for_cli(args):
    import kerasnets

    if os.path.exists(args.model) and args.model.endswith((".keras", ".h5")) and not args.model.endswith(".weights.h5"):
        return load_saved_model(args.model)
    options = dict(args.option or [])
    if args.input_shape:
        options["input_shape"] = tuple(args.input_shape)
    weights = args.weights
    if weights and weights.endswith(".weights.h5"):
        model = kerasnets.build(args.model, **options)
        model.load_weights(weights)  # Keras' own format: by variable order, as the model saved it
        return model
    return kerasnets.build(args.model, weights=weights, **options)


# What each format needs beyond TensorFlow: keras exports ONNX through tf2onnx, the check runs onnxruntime.
FORMAT_PACKAGES = {"onnx": ("onnx", "onnxruntime", "tf2onnx")}


def missing_packages(fmt):
    """The packages `fmt` needs that are not installed."""
    import importlib.util

    return [p for p in FORMAT_PACKAGES.get(fmt, ()) if importlib.util.find_spec(p) is None]


def export_cli(args):
    """`kerasnets export`: build or load, export, check parity; returns the exit status (1 on mismatch, 2 when
    the format's packages are missing)."""
    import sys

    missing = missing_packages(args.format)
    if missing:
        print(f"kerasnets export: --format {args.format} needs {', '.join(missing)}: "
              f"pip install 'kerasnets[export]' (or: pip install {' '.join(missing)})", file=sys.stderr)
        return 2
    model = _model_for_cli(args)
    try:
        report = export(model, args.output, args.format, check=not args.no_check, rtol=args.rtol)
    except ExportParityError as err:
        print(f"kerasnets export: parity check failed: {err}", file=sys.stderr)
        return 1
    print(report)
    return 0
