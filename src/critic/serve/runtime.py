"""The inference runtime: a checked bundle, critic's C++ tokenizer and onnxruntime.

Imports neither TensorFlow nor Ray. Work is split into lanes: a call's rows are cut into
chunks, and each of ``threads`` worker threads tokenizes a chunk and scores it with
onnxruntime on its own core (both release the GIL; the session runs single-threaded per
call, so lanes never contend for cores). A bundle with a window model (single-LSTM families)
skips the padding steps: each chunk is sorted by review length and each batch reads only its
reviews' tokens (see ``critic.bundle.inference``). One Runtime may be shared by many threads.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from critic.bundle import BASE_VARIANT, Bundle, BundleError, load_bundle
from critic.bundle.inference import Window, predict_ids
from critic.classes import is_binary, output_width, predicted_index, top_probability

from .providers import DEFAULT_DEVICE, session_for

# Rows per onnxruntime call. Small batches of length-sorted rows cost no speed here (an LSTM
# runs its steps one after another anyway) and keep memory low: onnxruntime's arena grows
# with batch x steps (about 450 MB at 256 rows of 500 steps for the seed LSTM, 460 MB total
# process at 64; see BENCHMARKS.md).
BATCH_SIZE = 64
CHUNK_BATCHES = 16  # at most this many batches per lane task (sorted by length together)


def bundle_tokenizer(bundle: Bundle):
    """critic's (Keras-exact) Tokenizer for ``bundle``, or its ImdbIndex."""
    from critic.kernels import ImdbIndex, Tokenizer

    cls = ImdbIndex if bundle.encode["mode"] == "keras_imdb_index" else Tokenizer
    return cls.from_json(bundle.tokenizer_json())


class Runtime:
    """Raw review text in, probabilities out: of the positive label for a binary bundle
    (``[n]``), of each of its ``labels`` for a bundle with k > 2 classes (``[n, k]``)."""

    def __init__(
        self,
        bundle: Bundle,
        *,
        variant: str = BASE_VARIANT,
        device: str = DEFAULT_DEVICE,
        batch_size: int = BATCH_SIZE,
        threads: int | None = None,
        window: bool = True,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.bundle = bundle
        self.batch_size = int(batch_size)
        self.threads = threads or _cores()
        self.tokenizer = bundle_tokenizer(bundle)
        self._encode_options = {k: bundle.encode[k] for k in ("maxlen", "padding", "truncating")}
        # One onnxruntime thread per call: the parallelism is in the lanes (see the module).
        self.session, self.device = session_for(bundle.model_bytes(variant), device, 1)
        self.window = None
        window_model = bundle.window_bytes() if window and variant == BASE_VARIANT else None
        if window_model is not None:
            self.window = Window(session_for(window_model, device, 1)[0])
        self._input = bundle.meta["model"]["input"]
        self._trim = bundle.encode["padding"] if bundle.meta["model"].get("any_length") else None
        self.variant = variant
        self._labels = np.asarray(bundle.labels)
        self.binary = is_binary(bundle.labels)
        _check_outputs(bundle, self.session)
        self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="critic-lane")

    @classmethod
    def load(cls, path: str | Path, **options: Any) -> Runtime:
        """Load and check a bundle (see ``critic.bundle.load_bundle``)."""
        return cls(load_bundle(path), **options)

    @property
    def labels(self) -> tuple[str, ...]:
        return self.bundle.labels

    @property
    def threshold(self) -> float:
        return self.bundle.threshold

    def encode(self, texts: Any, threads: int | None = 1) -> np.ndarray:
        """Token ids ``int32 [n, maxlen]`` exactly as the model was trained on them."""
        return self.tokenizer.encode(texts, threads=threads, **self._encode_options)

    def predict(self, texts: Any, batch_size: int | None = None) -> np.ndarray:
        """``float32 [n]`` probabilities of ``labels[1]`` (binary), or ``float32 [n, k]``
        probabilities of each of the k ``labels``. ``texts``: list of str, numpy string/object
        array or pyarrow string array. A bad row (None, non-text, invalid UTF-8) raises
        TypeError/ValueError naming its row; see ``score`` to keep going."""
        probabilities, _ = self._predict(texts, batch_size, strict=True)
        return probabilities

    def predict_labels(self, texts: Any, batch_size: int | None = None) -> np.ndarray:
        """Label names: binary, ``labels[1]`` where probability >= threshold; k classes, the
        most probable one."""
        return self.to_labels(self.predict(texts, batch_size))

    def to_labels(self, probabilities: np.ndarray) -> np.ndarray:
        """The predicted label name of each row of ``predict``'s output."""
        return self._labels[predicted_index(probabilities, self.threshold)]

    def top_probability(self, probabilities: np.ndarray) -> np.ndarray:
        """The probability of each row's predicted label (binary: P or 1 - P)."""
        return top_probability(probabilities, self.threshold)

    def score(self, texts: Any, batch_size: int | None = None) -> tuple[np.ndarray, list]:
        """Like ``predict`` but never raises for a bad row: its probability is NaN and its
        entry in the returned error list says why (``None`` for good rows)."""
        return self._predict(texts, batch_size, strict=False)

    def _predict(self, texts: Any, batch_size: int | None, strict: bool):
        if isinstance(texts, (str, bytes)):
            raise TypeError("expected a sequence of texts, got a single text; wrap it in a list")
        n = len(texts)
        size = int(batch_size or self.batch_size)
        if size < 1:
            raise ValueError(f"batch_size must be >= 1, got {size}")
        # Chunks of at most CHUNK_BATCHES batches, as many as a multiple of the lanes (of even
        # size), so no lane runs the last chunk alone while the others idle.
        chunks = max(1, -(-n // (size * CHUNK_BATCHES)))
        chunks = -(-chunks // self.threads) * self.threads
        chunk = max(1, -(-n // chunks))
        out = np.empty((n,) if self.binary else (n, len(self._labels)), dtype=np.float32)
        errors: list = [None] * n

        def lane(start: int) -> None:
            ids, bad = self._encode_batch(texts[start : start + chunk], start, strict)
            out[start : start + len(ids)] = predict_ids(
                self.session, ids, size, self.window, self._input, self._trim
            )
            for row, message in bad.items():
                out[start + row] = np.nan
                errors[start + row] = message

        starts = range(0, n, chunk)
        if len(starts) <= 1:
            for start in starts:
                lane(start)
            return out, errors
        tasks = [self._pool.submit(lane, start) for start in starts]
        try:
            for task in tasks:  # in order: a strict call names the first bad row
                task.result()
        finally:
            for task in tasks:
                task.cancel()
        return out, errors

    def _encode_batch(self, batch: Any, start: int, strict: bool) -> tuple[np.ndarray, dict]:
        try:
            return self.encode(batch), {}
        except (TypeError, ValueError):
            bad = self._row_errors(batch)
            if not bad:
                raise
        if strict:
            row, error = next(iter(bad.items()))
            raise type(error)(f"row {start + row}{_reason(error)}") from None
        good = [i for i in range(len(batch)) if i not in bad]
        ids = np.zeros((len(batch), self._encode_options["maxlen"]), dtype=np.int32)
        if good:
            ids[good] = self.encode(_take(batch, good))
        return ids, {row: f"text{_reason(error)}" for row, error in bad.items()}

    def _row_errors(self, batch: Any) -> dict[int, Exception]:
        """Which rows of a batch the tokenizer refuses, and why (the slow path, row by row)."""
        bad = {}
        for i in range(len(batch)):
            try:
                self.encode(batch[i : i + 1])
            except (TypeError, ValueError) as e:
                bad[i] = e
        return bad

    def close(self) -> None:
        self._pool.shutdown(wait=False)

    def __repr__(self) -> str:
        m = self.bundle.meta["model"]
        return (
            f"Runtime({self.bundle.path}, {m.get('family')}, maxlen={self.bundle.maxlen}, "
            f"variant={self.variant}, device={self.device}, batch_size={self.batch_size}, "
            f"window={self.window is not None})"
        )


def _check_outputs(bundle: Bundle, session) -> None:
    """A model whose output width is not its labels' (1 for two, k for k) is refused."""
    k = len(bundle.labels)
    width, want = session.get_outputs()[0].shape[-1], output_width(k)
    if isinstance(width, int) and width != want:
        raise BundleError(
            f"{bundle.path}: the model gives {width} output(s) per text, but the bundle lists "
            f"{k} labels (expected {want})"
        )


def _reason(error: Exception) -> str:
    """The kernel's message for a one-row batch without its "row 0" ("row 0 is null; ..." ->
    " is null; ...")."""
    return str(error).removeprefix("row 0")


def _take(batch: Any, rows: list[int]) -> Any:
    """Rows of a list, numpy array or pyarrow array."""
    if isinstance(batch, np.ndarray):
        return batch[rows]
    if hasattr(batch, "take"):  # pyarrow Array / ChunkedArray
        return batch.take(rows)
    return [batch[i] for i in rows]


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1
