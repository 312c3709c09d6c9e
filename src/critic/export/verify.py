"""Prove an ONNX model answers like its Keras original, and measure it with onnxruntime."""

from __future__ import annotations

import statistics
import time
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from critic.bundle.inference import Window, predict_ids
from critic.classes import predicted_index

from .convert import INPUT

TOLERANCE = 1e-5
BATCH = 256


class ParityError(RuntimeError):
    """The ONNX model does not reproduce the Keras model within tolerance."""


@dataclass
class Parity:
    rows: int
    source: str
    max_abs_diff: float
    mean_abs_diff: float
    label_flips: int
    tolerance: float
    threshold: float
    # Rows Keras puts within ``tolerance`` of a decision (binary: of the threshold; k classes:
    # the two most probable that close): float noise may give them either label, so a flip
    # there is reported here, not counted in label_flips.
    boundary_flips: int = 0

    @property
    def ok(self) -> bool:
        return self.max_abs_diff <= self.tolerance and self.label_flips == 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def session(model_bytes: bytes):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    return ort.InferenceSession(model_bytes, opts, providers=["CPUExecutionProvider"])


def onnx_predict(sess, x: np.ndarray, batch: int = BATCH) -> np.ndarray:
    return predict_ids(sess, x, batch, input_name=INPUT)


def keras_predict(model, x: np.ndarray, batch: int = BATCH) -> np.ndarray:
    """``[n]`` for a sigmoid model, ``[n, k]`` for k classes (as ``predict_ids`` gives)."""
    p = model.predict(np.asarray(x, dtype=np.int32), batch_size=batch, verbose=0)
    return p[:, 0] if p.shape[1] == 1 else p


def check_parity(
    p_keras: np.ndarray,
    p_onnx: np.ndarray,
    source: str,
    threshold: float = 0.5,
    tolerance: float = TOLERANCE,
    what: str = "ONNX",
) -> Parity:
    """Compare Keras' and onnxruntime's probabilities on the same sequences (every class's,
    for k classes); raises ParityError with the numbers when they differ by more than
    ``tolerance`` or change a predicted label."""
    if np.shape(p_keras) != np.shape(p_onnx):
        raise ParityError(
            f"{what} gives probabilities of shape {np.shape(p_onnx)}, Keras {np.shape(p_keras)}"
        )
    diff = np.abs(p_keras.astype(np.float64) - p_onnx)
    flips = predicted_index(p_keras, threshold) != predicted_index(p_onnx, threshold)
    boundary = decision_margin(p_keras, threshold) <= tolerance
    parity = Parity(
        rows=len(p_keras),
        source=source,
        max_abs_diff=float(diff.max(initial=0.0)),
        mean_abs_diff=float(diff.mean()) if diff.size else 0.0,
        label_flips=int((flips & ~boundary).sum()),
        tolerance=tolerance,
        threshold=threshold,
        boundary_flips=int((flips & boundary).sum()),
    )
    if not parity.ok:
        raise ParityError(
            f"{what} differs from Keras on {parity.rows} {source} sequences: max |diff| "
            f"{parity.max_abs_diff:.3g} (allowed {tolerance:g}), {parity.label_flips} label "
            f"flips at threshold {threshold} (allowed 0)"
        )
    return parity


def decision_margin(p: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """How far each row is from changing its label: |P - threshold| for a binary output, the
    gap between the two most probable classes for k."""
    p = np.asarray(p, dtype=np.float64)
    if p.ndim == 1:
        return np.abs(p - threshold)
    top = np.sort(p, axis=1)
    return top[:, -1] - top[:, -2]


def accuracy(p: np.ndarray, y: np.ndarray, threshold: float = 0.5) -> float:
    """The share of rows whose predicted class (``p``: ``[n]`` or ``[n, k]``) is ``y``."""
    return float((predicted_index(p, threshold) == np.asarray(y).astype(np.int64)).mean())


def sequences_per_second(
    sess, x: np.ndarray, repeats: int = 5, window: Window | None = None
) -> float:
    """onnxruntime throughput on ``x`` (median of ``repeats`` passes after a warm-up), of
    ``sess`` or, given one, of the window model's padding-skipping inference."""
    predict_ids(sess, x[:BATCH], BATCH, window, INPUT)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        predict_ids(sess, x, BATCH, window, INPUT)
        times.append(time.perf_counter() - start)
    return len(x) / statistics.median(times)
