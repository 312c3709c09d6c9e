"""onnxruntime inference over token ids (TF-free; used by the runtime and by export checks).

``predict_ids`` runs a bundle's model in batches. With a window model (see
``critic.export.window``) it sorts the rows by real length, runs each batch on only its last
L tokens (L: the batch's longest review, rounded up) starting from the LSTM state S(maxlen - L)
that the skipped padding would have produced: the same numbers as the full model, computed
without the padding steps.
"""

from __future__ import annotations

import threading

import numpy as np

WINDOW_STEP = 16  # window lengths are multiples of this (fewer distinct S(k) to compute)


class Window:
    """A window model session and its cache of padding states S(k)."""

    def __init__(self, session) -> None:
        self.session = session
        self.units = int(session.get_inputs()[1].shape[1])
        self._states: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self._lock = threading.Lock()

    def pad_state(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(h, c) after ``k`` padding tokens from the zero state, each float32 [units]."""
        with self._lock:
            if k not in self._states:
                zero = np.zeros((1, self.units), np.float32)
                if k == 0:
                    self._states[k] = (zero[0], zero[0])
                else:
                    feed = {"tokens": np.zeros((1, k), np.int32), "h0": zero, "c0": zero}
                    _, h, c = self.session.run(["probabilities", "h", "c"], feed)
                    self._states[k] = (h[0], c[0])
            return self._states[k]

    def run(self, ids: np.ndarray, longest: int) -> np.ndarray:
        """Probabilities of one batch of pre-padded rows whose longest real length is
        ``longest``, reading only their last L >= longest tokens."""
        maxlen = ids.shape[1]
        window = min(maxlen, max(WINDOW_STEP, -(-longest // WINDOW_STEP) * WINDOW_STEP))
        h, c = self.pad_state(maxlen - window)
        n = len(ids)
        feed = {
            "tokens": np.ascontiguousarray(ids[:, maxlen - window :]),
            "h0": np.broadcast_to(h, (n, self.units)).copy(),
            "c0": np.broadcast_to(c, (n, self.units)).copy(),
        }
        return _columns(self.session.run(["probabilities"], feed)[0])


def _columns(probabilities: np.ndarray) -> np.ndarray:
    """A model's output as the runtime gives it: ``[n]`` for one sigmoid column, ``[n, k]``
    for k class probabilities."""
    return probabilities[:, 0] if probabilities.shape[1] == 1 else probabilities


class _Rows:
    """The output array, made on the first batch (its width is the model's)."""

    def __init__(self, n: int) -> None:
        self.n, self.out = n, None

    def put(self, rows, values: np.ndarray) -> None:
        if self.out is None:
            self.out = np.empty((self.n, *values.shape[1:]), dtype=np.float32)
        self.out[rows] = values

    def result(self) -> np.ndarray:
        return self.out if self.out is not None else np.empty(0, dtype=np.float32)


def real_lengths(ids: np.ndarray, padding: str = "pre") -> np.ndarray:
    """Tokens after the leading padding (id 0) of each pre-padded row, or before the
    trailing padding of each post-padded one."""
    nonzero = ids != 0 if padding == "pre" else ids[:, ::-1] != 0
    return np.where(nonzero.any(axis=1), ids.shape[1] - nonzero.argmax(axis=1), 0)


def predict_ids(
    session,
    ids: np.ndarray,
    batch_size: int,
    window: Window | None = None,
    input_name: str = "tokens",
    trim: str | None = None,
) -> np.ndarray:
    """float32 probabilities for token ids [n, maxlen]: ``[n]`` for a binary model, ``[n, k]``
    for k classes. ``trim`` ("pre" or "post", the
    padding side) for a model that takes any row width: rows are sorted by length and each
    batch is cut to its longest row, so no step runs on padding shared by the whole batch."""
    ids = np.ascontiguousarray(ids, dtype=np.int32)
    out = _Rows(len(ids))
    if trim is not None and window is None:
        lengths = real_lengths(ids, trim)
        order = np.argsort(lengths, kind="stable")
        width = ids.shape[1]
        for start in range(0, len(ids), batch_size):
            rows = order[start : start + batch_size]
            keep = max(int(lengths[rows[-1]]), 1)  # sorted: the last is the longest
            cols = slice(width - keep, width) if trim == "pre" else slice(0, keep)
            batch = np.ascontiguousarray(ids[rows, cols])
            out.put(rows, _columns(session.run(None, {input_name: batch})[0]))
        return out.result()
    if window is None:
        for start in range(0, len(ids), batch_size):
            batch = ids[start : start + batch_size]
            out.put(
                slice(start, start + len(batch)),
                _columns(session.run(None, {input_name: batch})[0]),
            )
        return out.result()
    lengths = real_lengths(ids)
    order = np.argsort(lengths, kind="stable")
    for start in range(0, len(ids), batch_size):
        rows = order[start : start + batch_size]
        out.put(rows, window.run(ids[rows], int(lengths[rows[-1]])))  # sorted: last is longest
    return out.result()
