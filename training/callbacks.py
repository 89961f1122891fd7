"""`fit`'s callbacks: a backup to resume a killed run, atomic per-epoch and best checkpoints, LR schedules.

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

from kerasnets.saving import atomic_path, link_atomically, save_weights_atomically

SCHEDULES = (None, "step", "cosine", "plateau")
RECORD_ATTRIBUTE = "kerasnets_checkpoint"  # a checkpoint's {"monitor", "value", "epoch"}
LEGACY_RECORD_ATTRIBUTE = "kerasnets_best"  # the same, in best files written before the epoch files had it


def _write_json_atomically(data, path):
    with atomic_path(path) as tmp:
        with open(tmp, "w") as f:
            json.dump(data, f)


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
        checkpoint: an `AtomicCheckpoint` that runs before this callback with nothing
            changing the weights in between (as `fit` orders them): its file of the same
            epoch is hard-linked instead of writing the same weights a second time.
    """

    def __init__(self, backup_dir, delete_on_success=True, extra_state=None, checkpoint=None):
        super().__init__()
        self.backup_dir = os.fspath(backup_dir)
        self.checkpoint = checkpoint
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
        written = getattr(self.checkpoint, "epoch_file", None)
        if written is not None and written[0] == epoch and os.path.exists(written[1]):
            link_atomically(written[1], os.path.join(self.backup_dir, name))
        else:
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

    Each file carries its epoch's record ({"monitor", "value", "epoch"}, the HDF5
    attribute `kerasnets_checkpoint`), so a resumed run keeps comparing against the
    real best, not against infinity; `best.json` is a copy for people and scripts.
    With per-epoch files, `best.weights.h5` is a hard link to the best epoch's file
    (a copy where the file system has none): the weights are written once per epoch.

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
        self.epoch_file = None  # (epoch, path) of the weights written at the end of that epoch

    def on_train_begin(self, logs=None):
        saved = read_best_record(self.best_path)
        if saved is not None and saved.get("monitor") == self.monitor:
            self.best, self.best_epoch = saved["value"], saved["epoch"]

    def _better(self, value):
        if self.best is None:
            return True
        return value > self.best if self.mode == "max" else value < self.best

    def _save(self, path, record):
        """The model's weights at `path`, atomically, with `record` (or none) inside."""
        with atomic_path(path) as tmp:
            self.model.save_weights(tmp)
            if record is not None:
                with h5py.File(tmp, "a") as f:
                    f.attrs[RECORD_ATTRIBUTE] = json.dumps(record)
        return path

    def on_epoch_end(self, epoch, logs=None):
        value = (logs or {}).get(self.monitor)
        if value is None and epoch == 0:
            warnings.warn(f"Checkpoint monitor {self.monitor!r} is not logged (have {sorted(logs or {})}).",
                          stacklevel=2)
        record = None if value is None else {"monitor": self.monitor, "value": float(value), "epoch": epoch + 1}
        self.epoch_file = None
        if self.every_epoch:
            path = os.path.join(self.directory, "checkpoints", f"epoch-{epoch + 1:03d}.weights.h5")
            self.epoch_file = (epoch, self._save(path, record))
        if record is None or math.isnan(record["value"]) or not self._better(record["value"]):
            return
        self.best, self.best_epoch = record["value"], epoch + 1
        if self.epoch_file is not None:  # the same weights and record: a second name, not a second file
            link_atomically(self.epoch_file[1], self.best_path)
        else:
            self._save(self.best_path, record)
        _write_json_atomically(record, self.best_json)


def read_resume_state(backup_dir):
    """The state a `ResumableBackup` in `backup_dir` committed last ({"epoch", "weights", ...}), or None."""
    path = os.path.join(backup_dir, "state.json")
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


def read_best_record(best_weights_path):
    """{"monitor", "value", "epoch"} stored in a best.weights.h5 by `AtomicCheckpoint`, or None."""
    if not os.path.exists(best_weights_path):
        return None
    with h5py.File(best_weights_path, "r") as f:
        record = f.attrs.get(RECORD_ATTRIBUTE, f.attrs.get(LEGACY_RECORD_ATTRIBUTE))
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
