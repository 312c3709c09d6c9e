"""Scoring a Keras model on a prepared dataset folder's test split, the one time a run looks
at it. Shared by the orchestrator (trials, refits) and export (ensembles); the model is passed
in, so this module imports neither Keras nor TensorFlow itself."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def accuracy_on_test(model, data: Path) -> float:
    """Accuracy at threshold 0.5 of ``model`` on ``data``'s ``x_test.npy`` / ``y_test.npy``."""
    x, y = np.load(data / "x_test.npy"), np.load(data / "y_test.npy")
    p = model.predict(x, batch_size=256, verbose=0)[:, 0]
    return float(((p >= 0.5) == (y >= 0.5)).mean())
