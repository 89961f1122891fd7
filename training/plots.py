"""Figures saved to files.

Figures are `matplotlib.figure.Figure` objects rendered by the Agg canvas, never
pyplot: no display is needed, no global backend is switched, and nothing
leaks between calls (safe on servers, in threads and in CI).
"""

from __future__ import annotations

import os

import numpy as np


def _subplots(nrows=1, ncols=1, figsize=(5, 4), squeeze=True):
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize)
    return fig, fig.subplots(nrows, ncols, squeeze=squeeze)


def _save(fig, path):
    from kerasnets.saving import atomic_path

    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100, bbox_inches="tight", format=os.path.splitext(os.fspath(path))[1][1:] or "png")
    return os.fspath(path)


def plot_history(history, path):
    """Saves one panel per metric (training and validation curves) to `path`; returns it.

    Args:
        history: a Keras `History`, or a dict {metric: per-epoch values} (`val_` keys
            are drawn with their training metric).
        path: image file (.png, .pdf, .svg).
    """
    history = getattr(history, "history", history)
    names = [k for k in history if not k.startswith("val_") and k not in ("epoch", "learning_rate", "lr")]
    names += [k[4:] for k in history if k.startswith("val_") and k[4:] not in history]
    if not names:
        raise ValueError(f"No metric to plot in history keys {sorted(history)}")
    fig, axes = _subplots(1, len(names), figsize=(4.5 * len(names), 3.5), squeeze=False)
    for ax, name in zip(axes[0], names):
        for key, label in ((name, "train"), (f"val_{name}", "validation")):
            if key in history:
                values = history[key]
                ax.plot(np.arange(1, len(values) + 1), values, marker="o", label=label)
        ax.set_xlabel("epoch")
        ax.set_title(name)
        ax.grid(alpha=0.3)
        ax.legend()
    return _save(fig, path)


def plot_confusion_matrix(matrix, path, class_names=None, normalize=False):
    """Saves a confusion-matrix heat map (rows: true class, columns: predicted); returns `path`."""
    matrix = np.asarray(matrix, dtype=float)
    if normalize:
        matrix = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    n = matrix.shape[0]
    names = class_names or [str(i) for i in range(n)]
    fig, ax = _subplots(figsize=(1 + 0.6 * n, 1 + 0.6 * n))
    ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(n), names, rotation=45, ha="right")
    ax.set_yticks(range(n), names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    top = matrix.max() if matrix.size else 0
    for i in range(n):
        for j in range(n):
            text = f"{matrix[i, j]:.2f}" if normalize else f"{int(matrix[i, j])}"
            ax.text(j, i, text, ha="center", va="center", color="white" if matrix[i, j] > top / 2 else "black")
    return _save(fig, path)


def plot_pr_curve(curves, path):
    """Saves precision-recall curves; `curves` maps a label to (recall, precision) arrays. Returns `path`."""
    fig, ax = _subplots(figsize=(5, 4))
    for label, (recall, precision) in curves.items():
        ax.plot(recall, precision, label=str(label))
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.05)
    ax.grid(alpha=0.3)
    ax.legend()
    return _save(fig, path)


def plot_prediction(image, predictions, path):
    """Saves `image` titled with its top prediction (the notes' predict script); returns `path`.

    Args:
        image: uint8 array (H, W, 3) or a file path.
        predictions: [(class name, probability), ...], best first.
        path: output image file.
    """
    if isinstance(image, (str, os.PathLike)):
        from PIL import Image

        with Image.open(image) as img:
            image = np.asarray(img.convert("RGB"))
    fig, ax = _subplots(figsize=(5, 5))
    ax.imshow(image)
    ax.axis("off")
    name, prob = predictions[0]
    ax.set_title(f"class: {name}   prob: {prob:.3f}")
    return _save(fig, path)
