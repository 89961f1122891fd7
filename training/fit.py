"""Classification training: `fit` with checkpoints that survive a kill, transfer learning, speed switches.

    from training.fit import fit
    from training.folder import train_on_folder
    result = fit(model, train_ds, val_ds, epochs=30, output_dir="runs/exp1", schedule="cosine")
    result = train_on_folder("resnet34", "flower_data/train", weights="resnet34.pth", epochs=3,
                             output_dir="runs/flowers", transfer="head")

A run directory holds everything needed to inspect or continue it:

    runs/exp1/best.weights.h5           best epoch by `monitor` (+ best.json: epoch, value)
    runs/exp1/checkpoints/epoch-003.weights.h5   one per epoch
    runs/exp1/backup/                   resume state; run the same call again after a crash
    runs/exp1/log.csv, tensorboard/     per-epoch metrics
    runs/exp1/final.keras, final.h5     the model after training (best weights if restore_best)

Every file is written to a temporary name and `os.replace`d, so a kill at any
moment leaves the previous version intact.
"""

from __future__ import annotations

import csv
import json
import math
import os
import warnings

import h5py
import keras
import numpy as np

from kerasnets.saving import DirectoryLock, atomic_path, save_model_atomically, save_weights_atomically
from training.arrays import EpochShuffledArrays

TRANSFER_MODES = ("all", "last", "head")
SCHEDULES = (None, "step", "cosine", "plateau")
STRATEGIES = (None, "mirrored", "multiworker")


def _write_json_atomically(data, path):
    with atomic_path(path) as tmp:
        with open(tmp, "w") as f:
            json.dump(data, f)


# --------------------------------------------------------------------------- callbacks


def _seed_states(model):
    """The model's random-number state variables (Dropout, augmentation layers), in model order.

    Weight files leave them out; their paths need not be unique, so they are kept by position.
    """
    return [v for v in model.variables if v.path.endswith("seed_generator_state")]


class ResumableBackup(keras.callbacks.Callback):
    """Resume an interrupted `fit` where it stopped: weights, optimizer state, epoch and RNG state.

    Unlike `keras.callbacks.BackupAndRestore` (which writes the weights and then the
    epoch number in place, so a kill between the two resumes with mismatched
    state), each epoch's state goes to a new file and one small JSON, replaced
    atomically, names the file that is complete.

    Args:
        backup_dir: where the state lives.
        delete_on_success: remove the state when training finishes normally.
        extra_state: JSON-able values the resumed run needs as they were (e.g. the
            data-order seed), stored with every epoch's state; see `read_resume_state`.
    """

    def __init__(self, backup_dir, delete_on_success=True, extra_state=None):
        super().__init__()
        self.backup_dir = os.fspath(backup_dir)
        self.state_path = os.path.join(self.backup_dir, "state.json")
        self.delete_on_success = delete_on_success
        self.extra_state = dict(extra_state or {})

    def on_train_begin(self, logs=None):
        if not os.path.exists(self.state_path):
            return
        with open(self.state_path) as f:
            state = json.load(f)
        if self.model.optimizer is not None and not self.model.optimizer.built:
            self.model.optimizer.build(self.model.trainable_variables)  # its variables are in the file
        self.model.load_weights(os.path.join(self.backup_dir, state["weights"]))
        variables, saved = _seed_states(self.model), state.get("seed_states", [])
        if len(saved) == len(variables):
            for variable, value in zip(variables, saved):
                variable.assign(np.asarray(value, dtype=variable.dtype))
        self.model._initial_epoch = state["epoch"]
        print(f"Resuming from {self.backup_dir}: {state['epoch']} epoch(s) already done.")

    def on_epoch_end(self, epoch, logs=None):
        name = f"epoch-{epoch + 1:04d}.weights.h5"
        save_weights_atomically(self.model, os.path.join(self.backup_dir, name))
        seeds = [keras.ops.convert_to_numpy(v).tolist() for v in _seed_states(self.model)]
        _write_json_atomically({**self.extra_state, "epoch": epoch + 1, "weights": name, "seed_states": seeds},
                               self.state_path)
        for old in os.listdir(self.backup_dir):
            if old.startswith("epoch-") and old.endswith(".weights.h5") and old != name:
                os.remove(os.path.join(self.backup_dir, old))

    def on_train_end(self, logs=None):
        if self.delete_on_success and not getattr(self.model, "stop_training_by_signal", False):
            for name in os.listdir(self.backup_dir) if os.path.isdir(self.backup_dir) else ():
                os.remove(os.path.join(self.backup_dir, name))


class AtomicCheckpoint(keras.callbacks.Callback):
    """Per-epoch weights and the best weights by `monitor`, written atomically.

    The best value is kept in `best.json` beside the weights, so a resumed run
    keeps comparing against the real best, not against infinity.

    Args:
        directory: run directory (files `best.weights.h5`, `best.json`, `checkpoints/`).
        monitor: a logged metric, e.g. "val_accuracy" or "val_loss".
        mode: "max", "min" or "auto" (max for accuracy-like names).
        every_epoch: also keep `checkpoints/epoch-NNN.weights.h5` for every epoch.
    """

    def __init__(self, directory, monitor="val_accuracy", mode="auto", every_epoch=True):
        super().__init__()
        self.directory = os.fspath(directory)
        self.monitor = monitor
        if mode == "auto":
            mode = "min" if "loss" in monitor or "error" in monitor else "max"
        if mode not in ("min", "max"):
            raise ValueError(f"`mode` must be 'min', 'max' or 'auto'. Received: mode={mode!r}")
        self.mode = mode
        self.every_epoch = every_epoch
        self.best_path = os.path.join(self.directory, "best.weights.h5")
        self.best_json = os.path.join(self.directory, "best.json")
        self.best = None
        self.best_epoch = None

    def on_train_begin(self, logs=None):
        saved = read_best_record(self.best_path)
        if saved is not None and saved.get("monitor") == self.monitor:
            self.best, self.best_epoch = saved["value"], saved["epoch"]

    def _better(self, value):
        if self.best is None:
            return True
        return value > self.best if self.mode == "max" else value < self.best

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        if self.every_epoch:
            save_weights_atomically(
                self.model, os.path.join(self.directory, "checkpoints", f"epoch-{epoch + 1:03d}.weights.h5")
            )
        value = logs.get(self.monitor)
        if value is None:
            if epoch == 0:
                warnings.warn(f"Checkpoint monitor {self.monitor!r} is not logged (have {sorted(logs)}).",
                              stacklevel=2)
            return
        value = float(value)
        if not math.isnan(value) and self._better(value):
            self.best, self.best_epoch = value, epoch + 1
            record = {"monitor": self.monitor, "value": value, "epoch": epoch + 1}
            # The record travels inside the weights file (one atomic rename commits both);
            # best.json is a copy for people and scripts.
            with atomic_path(self.best_path) as tmp:
                self.model.save_weights(tmp)
                with h5py.File(tmp, "a") as f:
                    f.attrs["kerasnets_best"] = json.dumps(record)
            _write_json_atomically(record, self.best_json)


def read_resume_state(backup_dir):
    """The state a `ResumableBackup` in `backup_dir` committed last ({"epoch", "weights", ...}), or None."""
    path = os.path.join(backup_dir, "state.json")
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


def _is_array_input(train, fit_kwargs):
    """Arrays (or structures of arrays) that Keras would shuffle with a per-process random state."""
    if fit_kwargs.get("y") is None or {"class_weight", "validation_split", "steps_per_epoch"} & set(fit_kwargs):
        return False
    leaves = keras.tree.flatten(train) if isinstance(train, (list, tuple, dict)) else [train]
    return all(isinstance(leaf, np.ndarray) for leaf in leaves)


def read_best_record(best_weights_path):
    """{"monitor", "value", "epoch"} stored in a best.weights.h5 by `AtomicCheckpoint`, or None."""
    if not os.path.exists(best_weights_path):
        return None
    with h5py.File(best_weights_path, "r") as f:
        record = f.attrs.get("kerasnets_best")
    return json.loads(record) if record is not None else None


def truncate_log(log_path, epochs_done):
    """Drops the CSV rows of epochs that a resumed run will train again.

    A kill after an epoch's log line but before its resume state was committed
    would otherwise leave that epoch twice in the log.
    """
    if not os.path.exists(log_path):
        return
    with open(log_path, newline="") as f:
        rows = list(csv.reader(f))
    if not rows:
        return
    kept = [rows[0]] + [r for r in rows[1:] if r and int(r[0]) < epochs_done]
    if len(kept) != len(rows):
        with atomic_path(log_path) as tmp:
            with open(tmp, "w", newline="") as f:
                csv.writer(f).writerows(kept)


def lr_schedule_callback(schedule, learning_rate, epochs, **options):
    """The callback implementing `schedule` ("step", "cosine", "plateau"), or None.

    Schedules are functions of the epoch number, so a resumed run continues the same curve.

    Args:
        schedule: "step" (x `gamma` every `step_size` epochs; defaults 0.1 and max(epochs // 3, 1)),
            "cosine" (from `learning_rate` to `min_lr` over `epochs`, optional `warmup` epochs),
            "plateau" (x `factor` after `patience` epochs without improvement of `monitor`).
        learning_rate: the initial rate.
        epochs: total epochs of the run.
    """
    if schedule is None:
        return None
    if schedule == "step":
        step_size = options.pop("step_size", max(epochs // 3, 1))
        gamma = options.pop("gamma", 0.1)
        _no_more(options, schedule)
        return keras.callbacks.LearningRateScheduler(lambda e: learning_rate * gamma ** (e // step_size))
    if schedule == "cosine":
        min_lr = options.pop("min_lr", 0.0)
        warmup = options.pop("warmup", 0)
        _no_more(options, schedule)

        def cosine(epoch):
            if epoch < warmup:
                return learning_rate * (epoch + 1) / warmup
            progress = (epoch - warmup) / max(epochs - warmup, 1)
            return min_lr + 0.5 * (learning_rate - min_lr) * (1 + math.cos(math.pi * progress))

        return keras.callbacks.LearningRateScheduler(cosine)
    if schedule == "plateau":
        kwargs = dict(monitor="val_loss", factor=0.1, patience=5, min_lr=0.0)
        kwargs.update(options)
        return keras.callbacks.ReduceLROnPlateau(**kwargs)
    raise ValueError(f"`schedule` must be one of {SCHEDULES}. Received: schedule={schedule!r}")


def _no_more(options, schedule):
    if options:
        raise ValueError(f"Unknown option(s) {sorted(options)} for schedule {schedule!r}.")


# --------------------------------------------------------------------------- transfer learning


def replace_classifier(model, classes, *, hidden=(), classifier_activation="softmax", dropout=0.0):
    """A model with a new classifier for `classes` on the features that fed the old one.

    The features are the input of the layer named `predictions` (the pooled
    features of ResNet/DenseNet, fc7 of VGG) or, for a headless model, its
    output (globally average-pooled if it is a feature map). All other layers
    are shared with `model`, weights included.

    Args:
        model: a functional model.
        classes: number of output classes K.
        hidden: widths of extra Dense+ReLU layers before the classifier (the notes'
            "add a fully connected layer"), named `head_fc1`, `head_fc2`, ...
        classifier_activation: activation of the new `predictions` layer.
        dropout: dropout rate before the classifier.

    Returns:
        A new `keras.Model` named like `model`.
    """
    try:
        x = model.get_layer("predictions").input
    except ValueError:
        x = model.output
        if len(x.shape) == 4:
            x = keras.layers.GlobalAveragePooling2D(name="head_pool")(x)
    for i, width in enumerate(hidden, 1):
        x = keras.layers.Dense(width, activation="relu", name=f"head_fc{i}")(x)
    if dropout:
        x = keras.layers.Dropout(dropout, name="head_dropout")(x)
    outputs = keras.layers.Dense(classes, activation=classifier_activation, name="predictions")(x)
    return keras.Model(model.inputs, outputs, name=model.name)


def head_layer_names(model):
    """Names of the classifier layers (`predictions` and `head_*` added by `replace_classifier`)."""
    return [layer.name for layer in model.layers if layer.name == "predictions" or layer.name.startswith("head_")]


def set_transfer_mode(model, mode, *, last_n=1, head_layers=None):
    """Marks which layers train: the notes' three ways of fine-tuning.

    - "all": every layer trains (load weights, then train everything).
    - "last": only the last `last_n` layers that have weights train.
    - "head": only the classifier (`head_layers`, default `head_layer_names(model)`).

    Frozen BatchNormalization layers run in inference mode (Keras 3 does this for
    `trainable=False`), so their moving statistics stay those of the pretrained net.

    Args:
        model: the model to change in place.
        mode: one of `TRANSFER_MODES`.
        last_n: layers to train for "last".
        head_layers: names of the layers to train for "head".

    Returns:
        Names of the trainable layers that have weights.
    """
    if mode not in TRANSFER_MODES:
        raise ValueError(f"`transfer` must be one of {TRANSFER_MODES}. Received: transfer={mode!r}")
    weighted = [layer for layer in model.layers if layer.weights]
    if mode == "all":
        train = {layer.name for layer in weighted}
    elif mode == "last":
        if not isinstance(last_n, int) or not 1 <= last_n <= len(weighted):
            raise ValueError(f"`last_n` must be in 1..{len(weighted)}. Received: last_n={last_n!r}")
        train = {layer.name for layer in weighted[-last_n:]}
    else:
        train = set(head_layers if head_layers is not None else head_layer_names(model))
        if not train:
            raise ValueError("transfer='head' found no head layer (`predictions` or `head_*`); pass head_layers.")
    model.trainable = True
    for layer in model.layers:
        layer.trainable = layer.name in train or not layer.weights
    return [layer.name for layer in weighted if layer.name in train]


# --------------------------------------------------------------------------- distribution and precision


def make_strategy(strategy):
    """A tf.distribute strategy from a name ("mirrored", "multiworker") or passes one through.

    "multiworker" reads the cluster from the TF_CONFIG environment variable and
    must be created before TensorFlow runs any op in the process: call this
    first thing in the worker script and pass the result to `fit`.
    """
    if strategy is None or not isinstance(strategy, str):
        return strategy
    import tensorflow as tf

    if strategy == "mirrored":
        return tf.distribute.MirroredStrategy()
    if strategy == "multiworker":
        if "TF_CONFIG" not in os.environ:
            raise ValueError("strategy='multiworker' needs the TF_CONFIG environment variable (see docs/training.md).")
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise ValueError(f"`strategy` must be one of {STRATEGIES} or a tf.distribute.Strategy. Received: {strategy!r}")


def is_chief():
    """True unless TF_CONFIG names this process as a non-chief worker (it then writes to a scratch dir)."""
    config = json.loads(os.environ.get("TF_CONFIG", "{}") or "{}")
    task = config.get("task", {})
    kind, index = task.get("type"), task.get("index", 0)
    if kind is None or kind == "chief":
        return True
    has_chief = "chief" in config.get("cluster", {})
    return kind == "worker" and index == 0 and not has_chief


def _gpu_available():
    import tensorflow as tf

    return bool(tf.config.list_physical_devices("GPU"))


# --------------------------------------------------------------------------- fit


def default_metrics(num_classes):
    """Top-1 accuracy, plus top-5 when there are at least 5 classes."""
    metrics = [keras.metrics.SparseCategoricalAccuracy(name="accuracy")]
    if num_classes >= 5:
        metrics.append(keras.metrics.SparseTopKCategoricalAccuracy(k=5, name="top5_accuracy"))
    return metrics


def _output_is_probability(model):
    """True when the output comes from a softmax/sigmoid (followed into nested models)."""
    layer = model.outputs[0]._keras_history.operation
    while isinstance(layer, keras.Model):
        layer = layer.outputs[0]._keras_history.operation
    if isinstance(layer, keras.layers.Softmax):
        return True
    activation = getattr(layer, "activation", None)
    return getattr(activation, "__name__", "") in ("softmax", "sigmoid")


def read_history_csv(path):
    """{metric: [per-epoch values]} from a CSVLogger file (all epochs, across resumes)."""
    history = {}
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            for key, value in row.items():
                if key == "epoch":
                    value = int(value)
                else:  # CSVLogger writes "NA" for a metric missing that epoch
                    value = float("nan") if value in ("", "NA") else float(value)
                history.setdefault(key, []).append(value)
    return history


def fit(
    model,
    train,
    val=None,
    epochs=10,
    *,
    output_dir=None,
    optimizer=None,
    learning_rate=1e-3,
    loss=None,
    metrics=None,
    compile=True,
    monitor=None,
    schedule=None,
    schedule_options=None,
    restore_best=True,
    save_formats=("keras", "h5"),
    save_model=None,
    resume=True,
    checkpoint_every_epoch=True,
    tensorboard="auto",
    callbacks=(),
    jit_compile="auto",
    mixed_precision=False,
    steps_per_execution=1,
    strategy=None,
    verbose=1,
    **fit_kwargs,
):
    """Compiles (with sensible defaults) and trains a classifier, keeping everything a long run needs.

    Args:
        model: a `keras.Model`, or a zero-argument function returning one (needed for
            `mixed_precision`, and the cheapest way with a `strategy`: the model is
            then built inside the strategy's scope; a given model is cloned into it).
        train: training data: a `tf.data.Dataset` of (images, integer labels) batches,
            or anything `keras.Model.fit` accepts as `x` (then pass `y` in fit_kwargs).
        val: validation data (same kinds), or None.
        epochs: total epochs; a resumed run trains only the missing ones.
        output_dir: run directory for checkpoints, logs and the final model (see the
            module docstring), or None to keep nothing on disk (no resume).
        optimizer: a Keras optimizer; default Adam(`learning_rate`).
        learning_rate: initial learning rate of the default optimizer and schedules.
        loss: default sparse categorical cross-entropy (from logits if the model's last
            layer has no softmax).
        metrics: default top-1 accuracy, and top-5 when the model has >= 5 outputs.
        compile: False to keep the model's own compile().
        monitor: metric choosing the best epoch; default "val_accuracy" with `val`,
            else "accuracy".
        schedule: None, "step", "cosine" or "plateau" (see `lr_schedule_callback`),
            with `schedule_options` as keyword arguments.
        restore_best: load the best weights into the model at the end (before saving it).
        save_formats: final model formats written to output_dir: "keras" and/or "h5".
        save_model: name of a model nested in `model` to save as the final model instead
            (the inference model inside a wrapper that adds augmentation); found by name
            because a `strategy` trains a clone.
        resume: continue from output_dir/backup when a previous run was interrupted.
        checkpoint_every_epoch: keep checkpoints/epoch-NNN.weights.h5 for each epoch.
        tensorboard: write TensorBoard logs to output_dir/tensorboard: True, False or
            "auto" (when the `tensorboard` package is installed).
        callbacks: extra Keras callbacks.
        jit_compile: XLA compilation, passed to compile(): True, False or "auto"
            (Keras decides; on TF it uses XLA when every layer supports it).
        mixed_precision: True for the "mixed_float16" policy on GPU (float16 compute,
            float32 variables, loss scaling). Ignored with a warning on a machine
            without a GPU, where float16 is slower; never on by default.
        steps_per_execution: batches per compiled call (fewer Python round trips;
            progress bars and callbacks update every that many steps).
        strategy: None, "mirrored" (all local GPUs), "multiworker" (the cluster in
            TF_CONFIG; create it first with `make_strategy`) or a tf.distribute.Strategy.
        verbose: Keras progress bars (1), one line per epoch (2) or silence (0).
        **fit_kwargs: passed on to `keras.Model.fit` (e.g. `y`, `batch_size`, `class_weight`).

    Returns:
        dict: `model` (trained), `saved_model` (`model` or its `save_model` part), `history`
        ({metric: per-epoch list}; all epochs when a log exists, resumed ones included),
        `best_epoch`, `best_value`, `monitor` and `paths`.
    """
    strategy = make_strategy(strategy)
    if schedule not in SCHEDULES:
        raise ValueError(f"`schedule` must be one of {SCHEDULES}. Received: schedule={schedule!r}")
    if not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"`epochs` must be a positive integer. Received: epochs={epochs!r}")
    bad_formats = set(save_formats) - {"keras", "h5"}
    if bad_formats:
        raise ValueError(f"`save_formats` may hold 'keras' and 'h5'. Received: save_formats={save_formats!r}")
    if mixed_precision and not _gpu_available():
        warnings.warn("mixed_precision=True ignored: no GPU, and float16 on CPU is slower than float32.",
                      stacklevel=2)
        mixed_precision = False
    if mixed_precision and isinstance(model, keras.Model):
        raise ValueError("mixed_precision=True needs `model` as a function that builds it, so its layers "
                         "are created under the mixed_float16 policy.")

    chief = is_chief()
    run_dir = output_dir
    if output_dir is not None and not chief:
        # non-chief workers must save too (same collectives), but not over the chief's files
        run_dir = os.path.join(output_dir, ".workers", f"worker-{json.loads(os.environ['TF_CONFIG'])['task']['index']}")

    scope = strategy.scope() if strategy is not None else _null_scope()
    with scope:
        previous_policy = keras.config.dtype_policy()
        if mixed_precision:
            keras.config.set_dtype_policy("mixed_float16")
        try:
            if isinstance(model, keras.Model):
                if strategy is not None:
                    clone = keras.models.clone_model(model)
                    clone.set_weights(model.get_weights())
                    model = clone
            else:
                model = model()
        finally:
            keras.config.set_dtype_policy(previous_policy)
        num_classes = int(model.outputs[0].shape[-1])
        if compile:
            optimizer = optimizer or keras.optimizers.Adam(learning_rate)
            if loss is None:
                loss = keras.losses.SparseCategoricalCrossentropy(from_logits=not _output_is_probability(model))
            model.compile(
                optimizer=optimizer,
                loss=loss,
                metrics=metrics if metrics is not None else default_metrics(num_classes),
                jit_compile=jit_compile,
                steps_per_execution=steps_per_execution,
            )
    try:
        learning_rate = float(keras.ops.convert_to_numpy(model.optimizer.learning_rate))
    except (TypeError, ValueError, AttributeError):
        pass  # a LearningRateSchedule object: the schedule callbacks would override it

    monitor = monitor or ("val_accuracy" if val is not None else "accuracy")
    all_callbacks = list(callbacks)
    schedule_cb = lr_schedule_callback(schedule, learning_rate, epochs, **dict(schedule_options or {}))
    if schedule_cb is not None:
        all_callbacks.append(schedule_cb)
    paths = {}
    checkpoint = None
    lock = None
    # In-memory arrays: batches ordered by (data_seed, epoch), the seed kept with the
    # resume state, so that resumed epochs see the very batches an uninterrupted run sees.
    shuffle_arrays = (strategy is None and fit_kwargs.get("shuffle", True) and _is_array_input(train, fit_kwargs))
    data_seed = int(np.random.randint(0, 2**31 - 1)) if shuffle_arrays else None
    if run_dir is not None:
        lock = DirectoryLock(run_dir).acquire()
        paths = {
            "output_dir": os.fspath(output_dir),
            "best_weights": os.path.join(run_dir, "best.weights.h5"),
            "checkpoints": os.path.join(run_dir, "checkpoints"),
            "log": os.path.join(run_dir, "log.csv"),
        }
        checkpoint = AtomicCheckpoint(run_dir, monitor=monitor, every_epoch=checkpoint_every_epoch)
        backup_dir = os.path.join(run_dir, "backup")
        resume_state = read_resume_state(backup_dir) if resume else None
        if resume_state is not None:
            truncate_log(paths["log"], resume_state["epoch"])
            if resume_state.get("data_seed") is not None:
                data_seed = resume_state["data_seed"]
        else:
            for stale in (paths["log"], checkpoint.best_json, checkpoint.best_path):
                if os.path.exists(stale):
                    os.remove(stale)
        all_callbacks.append(checkpoint)
        all_callbacks.append(keras.callbacks.CSVLogger(paths["log"], append=True))
        if tensorboard == "auto":
            import importlib.util

            tensorboard = importlib.util.find_spec("tensorboard") is not None
        if tensorboard:
            paths["tensorboard"] = os.path.join(run_dir, "tensorboard")
            all_callbacks.append(keras.callbacks.TensorBoard(paths["tensorboard"]))
        if resume:
            # last, so that an epoch counts as done only after its checkpoint and log line exist
            all_callbacks.append(ResumableBackup(backup_dir, extra_state={"data_seed": data_seed}))
    if getattr(train, "epoch_seed", None) is not None:  # a make_dataset pipeline: order and crops by epoch
        all_callbacks.insert(0, train.epoch_seed.epoch_callback())
    if shuffle_arrays:
        train = EpochShuffledArrays(train, fit_kwargs.pop("y"), fit_kwargs.pop("sample_weight", None),
                                    batch_size=fit_kwargs.pop("batch_size", None) or 32, seed=data_seed)
        fit_kwargs["shuffle"] = False  # else Keras permutes the batches again, from the process's random state
        all_callbacks.insert(0, train.epoch_callback())
    if type(train).__module__.startswith("tensorflow"):
        fit_kwargs.setdefault("shuffle", False)  # a tf.data pipeline shuffles itself
    try:
        from training.distributed import distributed_fit, is_multi_worker

        if is_multi_worker(strategy):  # Keras 3's fit fails under this strategy: our own loop
            history = distributed_fit(model, train, val, epochs=epochs, strategy=strategy, callbacks=all_callbacks,
                                      initial_epoch=fit_kwargs.get("initial_epoch", 0))
        else:
            history = model.fit(train, validation_data=val, epochs=epochs, callbacks=all_callbacks,
                                verbose=verbose, **fit_kwargs)
        result_history = dict(history.history)
        if run_dir is not None and os.path.exists(paths["log"]):
            result_history = read_history_csv(paths["log"])
        best_epoch = best_value = None
        if checkpoint is not None:
            best_epoch, best_value = checkpoint.best_epoch, checkpoint.best
            if restore_best and best_epoch is not None:
                model.load_weights(paths["best_weights"])
        saved = model if save_model in (None, model.name) else model.get_layer(save_model)
        if run_dir is not None:
            for fmt in save_formats:
                paths[f"final_{fmt}"] = save_model_atomically(saved, os.path.join(run_dir, f"final.{fmt}"))
    finally:
        if lock is not None:
            lock.release()
    return {"model": model, "saved_model": saved, "history": result_history, "best_epoch": best_epoch,
            "best_value": best_value, "monitor": monitor, "paths": paths}


class _null_scope:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


# --------------------------------------------------------------------------- folder training (the CLI job)


def __getattr__(name):
    """`from training.fit import train_on_folder` keeps working: the folder job lives in training.folder."""
    if name in ("build_classifier", "train_on_folder"):
        from training import folder

        return getattr(folder, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
