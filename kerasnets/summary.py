"""Counting parameters the way published tables do, and layer tables for the CLI."""

from __future__ import annotations

import keras
import numpy as np

from kerasnets.shapes import receptive_fields

_MOVING_STATS = ("moving_mean", "moving_variance")


def _is_moving_stat(variable):
    return not variable.trainable and variable.name in _MOVING_STATS


def parameter_count(model, *, bn_moving_stats=False):
    """Number of parameters as torchvision and the papers count them.

    Args:
        model: a Keras model.
        bn_moving_stats: count BatchNormalization moving mean/variance too
            (what `model.count_params()` and keras.applications report).
    """
    return int(sum(
        np.prod(v.shape) for v in model.weights if bn_moving_stats or not _is_moving_stat(v)
    ))


def layer_table(model, receptive_field=False):
    """Rows (name, type, output shape, params[, receptive field]) for printing."""
    rf = {row.layer: row for row in receptive_fields(model)} if receptive_field else {}
    rows = []
    for layer in model.layers:
        if isinstance(layer, keras.layers.InputLayer):
            shape = tuple(layer.output.shape)
        else:
            outputs = keras.tree.flatten(layer.output) if hasattr(layer, "output") else []
            shape = tuple(outputs[0].shape) if len(outputs) == 1 else [tuple(o.shape) for o in outputs]
        row = [layer.name, type(layer).__name__, str(shape), int(sum(np.prod(w.shape) for w in layer.weights))]
        if receptive_field:
            entry = rf.get(layer.name)
            row.append("-" if entry is None else ("whole input" if entry.receptive_field is None else entry.receptive_field))
        rows.append(row)
    return rows


def format_table(headers, rows):
    """Plain-text table with aligned columns."""
    cells = [[str(c) for c in headers]] + [[f"{c:,}" if isinstance(c, int) else str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(cells[0], widths))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.rjust(w) if c.replace(",", "").isdigit() else c.ljust(w) for c, w in zip(r, widths)) for r in cells[1:]]
    return "\n".join(lines)
