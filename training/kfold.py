"""k-fold cross-validation (the notes' "寻找最优模型—K折交叉验证") with scikit-learn's splitters.

Each fold trains a fresh model from `build_fn` on k-1 parts and scores it on
the held-out part; the mean +/- std over folds estimates how a model of that
design generalises, more reliably than one split on a small data set.
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np


@dataclasses.dataclass
class KFoldResult:
    """Attributes:
        histories: per-fold Keras history dicts.
        scores: per-fold value of `metric` on the held-out part.
        mean, std: over folds (population std, ddof=0).
        best_fold: index of the best fold; its weights are at `best_weights_path`.
        folds: (train indices, validation indices) per fold.
    """

    histories: list
    scores: list
    mean: float
    std: float
    metric: str
    best_fold: int
    best_weights_path: str | None
    folds: list

    def __str__(self):
        return f"{self.metric}: {self.mean:.4f} +/- {self.std:.4f} over {len(self.scores)} folds"


def _materialize(dataset):
    xs, ys = [], []
    for x, y in dataset.unbatch() if _is_batched(dataset) else dataset:
        xs.append(np.asarray(x))
        ys.append(np.asarray(y))
    return np.stack(xs), np.stack(ys)


def _is_batched(dataset):
    spec = dataset.element_spec[0]
    return len(spec.shape) > 0 and spec.shape[0] is None


def kfold(build_fn, x, y=None, *, k=5, stratified=True, epochs=10, batch_size=32, metric="accuracy",
          mode="max", seed=0, output_dir=None, verbose=0, **fit_kwargs):
    """Cross-validates `build_fn` over k folds.

    Args:
        build_fn: zero-argument function returning a compiled `keras.Model` (a fresh one each call).
        x: inputs (numpy), or a tf.data.Dataset of (x, y) elements or batches (then `y` is None;
            it is read into memory, as folds need random access).
        y: integer labels.
        k: number of folds.
        stratified: keep class proportions in every fold (`StratifiedKFold`), else `KFold`.
        epochs, batch_size: per fold.
        metric: the compiled metric scored on the held-out part ("accuracy", "loss", ...).
        mode: "max" or "min": which fold is best.
        seed: shuffles the fold assignment.
        output_dir: where `best_fold.weights.h5` is saved (atomically), or None.
        verbose: Keras verbosity per fold.
        **fit_kwargs: passed to `model.fit`.

    Returns:
        A `KFoldResult`.
    """
    from sklearn.model_selection import KFold, StratifiedKFold

    from kerasnets.saving import save_weights_atomically
    from training.fit import build_optimizer

    if y is None:
        x, y = _materialize(x)
    x, y = np.asarray(x), np.asarray(y)
    if not isinstance(k, int) or k < 2:
        raise ValueError(f"`k` must be an integer >= 2. Received: k={k!r}")
    if mode not in ("max", "min"):
        raise ValueError(f"`mode` must be 'max' or 'min'. Received: mode={mode!r}")
    splitter = (StratifiedKFold if stratified else KFold)(n_splits=k, shuffle=True, random_state=seed)
    folds = list(splitter.split(np.zeros(len(y)), y))
    histories, scores, best_fold, best_path = [], [], None, None
    for i, (train_idx, val_idx) in enumerate(folds):
        model = build_fn()
        build_optimizer(model)
        history = model.fit(x[train_idx], y[train_idx], batch_size=batch_size, epochs=epochs,
                            validation_data=(x[val_idx], y[val_idx]), verbose=verbose, **fit_kwargs)
        results = model.evaluate(x[val_idx], y[val_idx], batch_size=batch_size, verbose=0, return_dict=True)
        if metric not in results:
            raise ValueError(f"`metric` {metric!r} is not compiled into the model (have {sorted(results)}).")
        score = float(results[metric])
        histories.append(history.history)
        scores.append(score)
        if best_fold is None or (score > scores[best_fold] if mode == "max" else score < scores[best_fold]):
            best_fold = i
            if output_dir is not None:
                best_path = save_weights_atomically(model, os.path.join(output_dir, "best_fold.weights.h5"))
    return KFoldResult(histories=histories, scores=scores, mean=float(np.mean(scores)), std=float(np.std(scores)),
                       metric=metric, best_fold=best_fold, best_weights_path=best_path, folds=folds)
