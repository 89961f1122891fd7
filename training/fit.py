"""Classification training: `fit` with checkpoints that survive a kill, strategies, speed switches.

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

Its parts live by concern: `training.callbacks` (backup, checkpoints,
schedules), `training.transfer` (new classifier, which layers train),
`training.strategies` (distribution by name).
"""

from __future__ import annotations

import csv
import json
import os

import keras
import numpy as np

from kerasnets.saving import DirectoryLock, save_model_atomically
from training.arrays import EpochShuffledArrays
from training.callbacks import (
    SCHEDULES, AtomicCheckpoint, ResumableBackup, lr_schedule_callback, read_resume_state, truncate_log,
)
from training.optimizers import make_optimizer, prepare_optimizer
from training.precision import build_under, choose_precision
from training.strategies import _null_scope, is_chief, make_strategy


def _is_array_input(train, fit_kwargs):
    """Arrays (or structures of arrays) that Keras would shuffle with a per-process random state."""
    if fit_kwargs.get("y") is None or {"class_weight", "validation_split", "steps_per_epoch"} & set(fit_kwargs):
        return False
    leaves = keras.tree.flatten(train) if isinstance(train, (list, tuple, dict)) else [train]
    return all(isinstance(leaf, np.ndarray) for leaf in leaves)


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


def build_optimizer(model):
    """Readies `model.optimizer` before training: its variables created now, Adam and SGD on fused kernels.

    Left to Keras, the TensorFlow backend creates the variables while it traces the
    first train step, and a tf.function whose trace created variables is traced again:
    two traces for one train step (ResNet-18 at 32x32, two epochs: 6.2-6.7 s against
    4.7-4.9 s built first; the same weights to the bit). A Keras Adam or SGD then
    updates through TensorFlow's fused kernels (`training.optimizers.fuse_optimizer`).
    """
    optimizer = getattr(model, "optimizer", None)
    if optimizer is not None:
        prepare_optimizer(optimizer, model.trainable_variables)


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
    precision="auto",
    mixed_precision=False,
    steps_per_execution=1,
    strategy=None,
    verbose=1,
    **fit_kwargs,
):
    """Compiles (with sensible defaults) and trains a classifier, keeping everything a long run needs.

    Args:
        model: a `keras.Model`, or a zero-argument function returning one (needed for
            mixed precision, and the cheapest way with a `strategy`: the model is
            then built inside the strategy's scope; a given model is cloned into it).
        train: training data: a `tf.data.Dataset` of (images, integer labels) batches,
            or anything `keras.Model.fit` accepts as `x` (then pass `y` in fit_kwargs).
        val: validation data (same kinds), or None.
        epochs: total epochs; a resumed run trains only the missing ones.
        output_dir: run directory for checkpoints, logs and the final model (see the
            module docstring), or None to keep nothing on disk (no resume).
        optimizer: a Keras optimizer, a name ("adam", "sgd", "adamw", ...) or a `keras.optimizers.get`
            config dict, made at `learning_rate` (`training.optimizers.make_optimizer`); default Adam.
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
            (the inference model inside a wrapper that adds augmentation), or a function
            trained model -> that part; found after training because a `strategy` trains a
            clone and mixed precision builds the model inside `fit`.
        resume: continue from output_dir/backup when a previous run was interrupted.
        checkpoint_every_epoch: keep checkpoints/epoch-NNN.weights.h5 for each epoch.
        tensorboard: write TensorBoard logs to output_dir/tensorboard: True, False or
            "auto" (when the `tensorboard` package is installed).
        callbacks: extra Keras callbacks.
        jit_compile: XLA compilation, passed to compile(): True, False or "auto"
            (Keras decides; on TF it uses XLA when every layer supports it).
        precision: "auto" (default), "float32", "mixed_float16" or "mixed_bfloat16"
            (`training.precision.choose_precision`): "auto" trains in float16 on a GPU
            with tensor cores and in bfloat16 on a CPU with AVX512_BF16 or AMX, else in
            float32. Mixed precision builds `model` (a function) under the policy; the
            classifier's logits and the loss stay float32. "auto" with a built model
            keeps float32.
        mixed_precision: True is `precision="mixed_float16"` (the older switch).
        steps_per_execution: batches per compiled call (fewer Python round trips;
            progress bars and callbacks update every that many steps).
        strategy: None, "mirrored" (all local GPUs), "multiworker" (the cluster in
            TF_CONFIG; create it first with `make_strategy`) or a tf.distribute.Strategy.
        verbose: Keras progress bars (1), one line per epoch (2) or silence (0).
        **fit_kwargs: passed on to `keras.Model.fit` (e.g. `y`, `batch_size`, `class_weight`).

    Returns:
        dict: `model` (trained), `saved_model` (`model` or its `save_model` part), `history`
        ({metric: per-epoch list}; all epochs when a log exists, resumed ones included),
        `best_epoch`, `best_value`, `monitor`, `paths`, and `precision` (the policy trained under)
        with `precision_reason`.
    """
    strategy = make_strategy(strategy)
    if schedule not in SCHEDULES:
        raise ValueError(f"`schedule` must be one of {SCHEDULES}. Received: schedule={schedule!r}")
    if not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"`epochs` must be a positive integer. Received: epochs={epochs!r}")
    bad_formats = set(save_formats) - {"keras", "h5"}
    if bad_formats:
        raise ValueError(f"`save_formats` may hold 'keras' and 'h5'. Received: save_formats={save_formats!r}")
    if mixed_precision:
        precision = "mixed_float16"
    asked = precision
    policy, precision_reason = choose_precision(precision)
    if policy != "float32" and isinstance(model, keras.Model):
        if asked != "auto":
            raise ValueError(f"precision={policy!r} needs `model` as a function that builds it, so its layers "
                             f"are created under the {policy} policy.")
        policy, precision_reason = "float32", "a built model keeps its float32 layers (pass a build function)"

    chief = is_chief()
    run_dir = output_dir
    if output_dir is not None and not chief:
        # non-chief workers must save too (same collectives), but not over the chief's files
        run_dir = os.path.join(output_dir, ".workers", f"worker-{json.loads(os.environ['TF_CONFIG'])['task']['index']}")

    scope = strategy.scope() if strategy is not None else _null_scope()
    with scope:
        if isinstance(model, keras.Model):  # built already: float32 (mixed needs a build function, above)
            if strategy is not None:
                clone = keras.models.clone_model(model)
                clone.set_weights(model.get_weights())
                model = clone
        else:
            model = build_under(policy, model)
        num_classes = int(model.outputs[0].shape[-1])
        if compile:
            optimizer = make_optimizer(optimizer or "adam", learning_rate)
            if loss is None:
                loss = keras.losses.SparseCategoricalCrossentropy(from_logits=not _output_is_probability(model))
            model.compile(
                optimizer=optimizer,
                loss=loss,
                metrics=metrics if metrics is not None else default_metrics(num_classes),
                jit_compile=jit_compile,
                steps_per_execution=steps_per_execution,
            )
        build_optimizer(model)  # under the strategy's scope, where its variables belong
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
            all_callbacks.append(ResumableBackup(backup_dir, extra_state={"data_seed": data_seed},
                                               checkpoint=checkpoint))
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
        if callable(save_model):
            saved = save_model(model)
        else:
            saved = model if save_model in (None, model.name) else model.get_layer(save_model)
        if run_dir is not None:
            for fmt in save_formats:
                paths[f"final_{fmt}"] = save_model_atomically(saved, os.path.join(run_dir, f"final.{fmt}"))
    finally:
        if lock is not None:
            lock.release()
    return {"model": model, "saved_model": saved, "history": result_history, "best_epoch": best_epoch,
            "best_value": best_value, "monitor": monitor, "paths": paths, "precision": policy,
            "precision_reason": precision_reason}
