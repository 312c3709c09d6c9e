"""A model's classes: which label each output means, how outputs become labels, and the
metrics of predicted labels against true ones. numpy only, shared by every layer.

Two labels are the binary case, exactly as it always was: one sigmoid output, P(labels[1]),
and a threshold. More labels are k softmax outputs in label order, and the predicted class is
the most probable one.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def label_problem(labels: Any) -> str | None:
    """What is wrong with a list of label names (None: k >= 2 distinct non-empty texts)."""
    if not isinstance(labels, (list, tuple)) or len(labels) < 2:
        return "must list at least two label names"
    if not all(isinstance(x, str) and x.strip() for x in labels):
        return "must be non-empty texts"
    if len(set(labels)) != len(labels):
        return "must be different names"
    return None


def is_binary(labels: Sequence[str]) -> bool:
    return len(labels) == 2


def output_width(k: int) -> int:
    """The model outputs for ``k`` labels: 1 (P of the second) for two, k softmax for more."""
    return 1 if k == 2 else k


def predicted_index(probabilities: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """Class index per row: P >= threshold for binary outputs ``[n]`` (or ``[n, 1]``), the
    most probable class for ``[n, k]``."""
    p = np.asarray(probabilities)
    if p.ndim == 2 and p.shape[1] == 1:
        p = p[:, 0]
    if p.ndim == 1:
        return (p >= threshold).astype(np.int64)
    return p.argmax(axis=1).astype(np.int64)


def top_probability(probabilities: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """The probability of each row's predicted class (for binary: P or 1 - P)."""
    p = np.asarray(probabilities, dtype=np.float32)
    if p.ndim == 1:
        return np.where(p >= threshold, p, 1 - p).astype(np.float32)
    return p.max(axis=1)


def numeric_labels(labels: Sequence[str]) -> np.ndarray | None:
    """The labels as numbers when every one is a number (ratings), else None."""
    try:
        return np.array([float(x) for x in labels], dtype=np.float64)
    except ValueError:
        return None


def confusion(truth: np.ndarray, predicted: np.ndarray, k: int) -> np.ndarray:
    """``[k, k]`` counts: row = true class, column = predicted class."""
    matrix = np.zeros((k, k), dtype=np.int64)
    np.add.at(matrix, (np.asarray(truth, np.int64), np.asarray(predicted, np.int64)), 1)
    return matrix


def classification_report(
    truth: np.ndarray, predicted: np.ndarray, labels: Sequence[str]
) -> dict[str, Any]:
    """Accuracy, macro-F1, per-class precision / recall / F1 / support, the confusion matrix
    (rows: true class) and, when every label is a number, the mean absolute error of the
    predicted class (in label units). JSON-ready."""
    k = len(labels)
    matrix = confusion(truth, predicted, k)
    hits = np.diag(matrix).astype(np.float64)
    predicted_n, true_n = matrix.sum(axis=0), matrix.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(predicted_n > 0, hits / predicted_n, 0.0)
        recall = np.where(true_n > 0, hits / true_n, 0.0)
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
    total = int(matrix.sum())
    report: dict[str, Any] = {
        "rows": total,
        "accuracy": float(hits.sum() / total) if total else 0.0,
        "macro_f1": float(f1[true_n > 0].mean()) if (true_n > 0).any() else 0.0,
        "classes": {
            name: {
                "precision": float(precision[i]),
                "recall": float(recall[i]),
                "f1": float(f1[i]),
                "support": int(true_n[i]),
            }
            for i, name in enumerate(labels)
        },
        "labels": list(labels),
        "confusion": matrix.tolist(),
    }
    values = numeric_labels(labels)
    if values is not None and total:
        errors = np.abs(
            values[np.asarray(predicted, np.int64)] - values[np.asarray(truth, np.int64)]
        )
        report["mean_absolute_error"] = float(errors.mean())
    return report
