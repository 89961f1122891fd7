"""Distribution strategies by name, and who writes the run directory in a multi-worker run."""

from __future__ import annotations

import json
import os

STRATEGIES = (None, "mirrored", "multiworker")


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


class _null_scope:
    """The scope `fit` enters when no strategy is given."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False
