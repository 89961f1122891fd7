"""Classification metrics on numpy arrays: top-k accuracy, confusion matrix, precision/recall/F1.

Conventions follow scikit-learn (`confusion_matrix`, `precision_recall_fscore_support`
with zero_division=0) so numbers can be compared; no scikit-learn needed at run time.
"""

from __future__ import annotations

import numpy as np


def top_k_accuracy(y_true, scores, k=1):
    """Fraction of samples whose true class is among the `k` highest scores.

    Args:
        y_true: (N,) integer labels.
        scores: (N, C) probabilities or logits.
        k: how many top classes count as a hit.
    """
    y_true = np.asarray(y_true).astype(int).ravel()
    scores = np.asarray(scores)
    if scores.ndim != 2 or len(scores) != len(y_true):
        raise ValueError(f"`scores` must be (N, C) with N = len(y_true). Received shape {scores.shape}")
    k = min(int(k), scores.shape[1])
    # a tie at the k-th score counts against the sample (strictly greater scores ranked first)
    true_score = scores[np.arange(len(y_true)), y_true]
    rank = (scores > true_score[:, None]).sum(axis=1)
    return float(np.mean(rank < k))


def confusion_matrix(y_true, y_pred, num_classes=None):
    """(C, C) counts: rows are true classes, columns predicted classes."""
    y_true = np.asarray(y_true).astype(int).ravel()
    y_pred = np.asarray(y_pred).astype(int).ravel()
    if num_classes is None:
        num_classes = int(max(y_true.max(initial=-1), y_pred.max(initial=-1)) + 1)
    matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(matrix, (y_true, y_pred), 1)
    return matrix


def precision_recall_f1(y_true, y_pred, num_classes=None, average=None):
    """Precision, recall and F1 per class or averaged.

    Args:
        y_true, y_pred: (N,) integer labels.
        num_classes: C, default from the labels.
        average: None (per-class arrays), "macro" (unweighted mean over classes),
            "micro" (from global TP/FP/FN counts) or "weighted" (mean weighted by support).

    Returns:
        (precision, recall, f1, support); 0/0 is 0, as scikit-learn's zero_division=0.
    """
    matrix = confusion_matrix(y_true, y_pred, num_classes)
    tp = np.diag(matrix).astype(float)
    predicted = matrix.sum(axis=0).astype(float)
    support = matrix.sum(axis=1)
    if average == "micro":
        tp, predicted, actual = tp.sum(), predicted.sum(), float(support.sum())
        precision = _divide(tp, predicted)
        recall = _divide(tp, actual)
        return precision, recall, _divide(2 * precision * recall, precision + recall), int(actual)
    precision = _divide(tp, predicted)
    recall = _divide(tp, support.astype(float))
    f1 = _divide(2 * precision * recall, precision + recall)
    if average is None:
        return precision, recall, f1, support
    if average == "macro":
        return float(precision.mean()), float(recall.mean()), float(f1.mean()), int(support.sum())
    if average == "weighted":
        w = support / max(support.sum(), 1)
        return float(precision @ w), float(recall @ w), float(f1 @ w), int(support.sum())
    raise ValueError(f"`average` must be None, 'macro', 'micro' or 'weighted'. Received: average={average!r}")


def _divide(a, b):
    a, b = np.asarray(a, float), np.asarray(b, float)
    out = np.divide(a, b, out=np.zeros_like(a, dtype=float), where=b != 0)
    return float(out) if out.ndim == 0 else out


def classification_report(y_true, scores, class_names=None, top_k=(1, 5)):
    """A dict of everything above: top-k accuracies, confusion matrix, per-class and macro P/R/F1."""
    scores = np.asarray(scores)
    y_pred = scores.argmax(axis=1)
    num_classes = scores.shape[1]
    precision, recall, f1, support = precision_recall_f1(y_true, y_pred, num_classes)
    names = list(class_names) if class_names is not None else [str(i) for i in range(num_classes)]
    return {
        **{f"top{k}_accuracy": top_k_accuracy(y_true, scores, k) for k in top_k if k <= num_classes},
        "confusion_matrix": confusion_matrix(y_true, y_pred, num_classes),
        "per_class": {
            name: {"precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
            for name, p, r, f, s in zip(names, precision, recall, f1, support)
        },
        "macro": dict(zip(("precision", "recall", "f1"), precision_recall_f1(y_true, y_pred, num_classes, "macro"))),
    }


def evaluate_classifier(model, dataset, class_names=None, top_k=(1, 5)):
    """Runs `model` over a dataset of (images, labels) batches and returns `classification_report`."""
    labels, scores = [], []
    for x, y in dataset:
        scores.append(np.asarray(model.predict_on_batch(x)))
        labels.append(np.asarray(y))
    return classification_report(np.concatenate(labels), np.concatenate(scores), class_names, top_k)
