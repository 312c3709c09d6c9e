"""Scoring a Keras model on a prepared dataset folder's test split, the one time a run looks
at it. Shared by the orchestrator (trials, refits) and export (ensembles); the model is passed
in, so this module imports neither Keras nor TensorFlow itself."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from critic.classes import predicted_index


def predictions_on_test(model, data: Path) -> tuple[np.ndarray, np.ndarray]:
    """(true class, predicted class) of every row of ``data``'s ``x_test.npy`` /
    ``y_test.npy`` (binary: P >= 0.5; k classes: the most probable)."""
    x, y = np.load(data / "x_test.npy"), np.load(data / "y_test.npy")
    p = model.predict(x, batch_size=256, verbose=0)
    return y.astype(np.int64), predicted_index(p)


def accuracy_on_test(model, data: Path) -> float:
    """Accuracy of ``model`` on ``data``'s test split."""
    truth, predicted = predictions_on_test(model, data)
    return float((truth == predicted).mean())
