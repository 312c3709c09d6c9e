"""The seed model zoo: the classic Keras review classifiers as functional Keras 3 models.

Every model takes ``tokens`` (int32 ``[batch, maxlen]``, ids from critic's Tokenizer) and
returns the probability of the positive class (``[batch, 1]``, sigmoid). Functional models,
not ``Sequential``: tf2onnx's ``from_keras`` converts them cleanly.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np

FAMILIES = (
    "lstm",
    "lstm_dropout",
    "lstm_recurrent_dropout",
    "cnn_lstm",
    "stacked_lstm",
    "bilstm",
    "gru",
    "bigru",
    "simple_rnn",
    "conv1d",
    "flatten",
)
# Families that can read the review backwards (seed 003): their first layer after the
# embedding is a one-way recurrent layer, and ``go_backwards`` on it is exactly a reversed
# input (no flip Lambda: safe-mode loading and ONNX export both work).
REVERSIBLE = (
    "lstm",
    "lstm_dropout",
    "lstm_recurrent_dropout",
    "stacked_lstm",
    "gru",
    "simple_rnn",
)


@dataclass
class ModelSpec:
    """One model's architecture; unknown keys are an error, so configs fail early."""

    family: str = "lstm"
    num_words: int = 20000
    maxlen: int = 500
    embedding_dim: int = 32
    units: int = 100
    dropout: float = 0.2
    recurrent_dropout: float = 0.2
    # SpatialDropout1D on the embeddings (whole embedding channels dropped), any family; 0 = off
    embedding_dropout: float = 0.0
    filters: int = 32
    kernel_size: int = 3
    pool_size: int = 2
    hidden: int = 250
    reverse: bool = False
    glove_path: str | None = None
    glove_trainable: bool = False
    learning_rate: float = 1e-3

    @classmethod
    def from_dict(cls, config: dict[str, Any]) -> ModelSpec:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(config) - known)
        if unknown:
            raise ValueError(f"unknown model setting(s) {unknown}; known: {sorted(known)}")
        spec = cls(**config)
        spec.validate()
        return spec

    def validate(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if f.type in ("int", "float") and (
                isinstance(value, bool) or not isinstance(value, (int, float))
            ):
                raise ValueError(f"{f.name} must be a number, got {value!r}")
        if self.family not in FAMILIES:
            raise ValueError(f"unknown model family {self.family!r}; choose from {FAMILIES}")
        if self.reverse and self.family not in REVERSIBLE:
            raise ValueError(
                f"reverse needs a one-way recurrent family {REVERSIBLE}, not {self.family!r}"
            )
        for name in ("num_words", "maxlen", "embedding_dim", "units", "filters", "hidden"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("dropout", "recurrent_dropout", "embedding_dropout"):
            if not 0.0 <= float(getattr(self, name)) < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {getattr(self, name)}")


def load_glove(
    path: str | Path, word_index: dict[str, int], num_words: int, dim: int
) -> tuple[np.ndarray, int]:
    """Embedding matrix ``[num_words, dim]`` from a GloVe text file for ids < num_words.

    Rows of words missing from GloVe (and row 0, padding) stay zero. Returns the matrix and
    how many vocabulary words were found.
    """
    matrix = np.zeros((num_words, dim), dtype=np.float32)
    wanted = {w: i for w, i in word_index.items() if 0 < i < num_words}
    found = 0
    with open(path, encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            word, _, rest = line.rstrip("\n").partition(" ")
            i = wanted.get(word)
            if i is None:
                continue
            values = np.asarray(rest.split(" "), dtype=np.float32)
            if values.shape != (dim,):
                raise ValueError(f"{path}:{n}: {values.size} values, expected {dim}")
            matrix[i] = values
            found += 1
    return matrix, found


def build_model(spec: ModelSpec, embedding_matrix: np.ndarray | None = None):
    """The Keras model for ``spec``, compiled with Adam + binary cross-entropy."""
    import keras
    from keras import layers

    spec.validate()
    tokens = keras.Input(shape=(spec.maxlen,), dtype="int32", name="tokens")
    x = tokens
    if embedding_matrix is not None:
        if embedding_matrix.shape[0] != spec.num_words:
            raise ValueError("embedding matrix rows must equal num_words")
        embed = layers.Embedding(
            spec.num_words,
            embedding_matrix.shape[1],
            embeddings_initializer=keras.initializers.Constant(embedding_matrix),
            trainable=spec.glove_trainable,
            name="embedding",
        )
    else:
        embed = layers.Embedding(spec.num_words, spec.embedding_dim, name="embedding")
    x = embed(x)
    if spec.embedding_dropout:
        x = layers.SpatialDropout1D(spec.embedding_dropout, name="embedding_dropout")(x)
    x = _BODIES[spec.family](spec, layers, x)
    out = layers.Dense(1, activation="sigmoid", name="probability")(x)
    model = keras.Model(tokens, out, name=spec.family)
    model.compile(
        optimizer=keras.optimizers.Adam(spec.learning_rate),
        loss="binary_crossentropy",
        metrics=["accuracy"],
    )
    return model


def _lstm(spec, layers, x):
    return layers.LSTM(spec.units, go_backwards=spec.reverse)(x)


def _lstm_dropout(spec, layers, x):
    x = layers.Dropout(spec.dropout)(x)
    x = layers.LSTM(spec.units, go_backwards=spec.reverse)(x)
    return layers.Dropout(spec.dropout)(x)


def _lstm_recurrent_dropout(spec, layers, x):
    return layers.LSTM(
        spec.units,
        dropout=spec.dropout,
        recurrent_dropout=spec.recurrent_dropout,
        go_backwards=spec.reverse,
    )(x)


def _cnn_lstm(spec, layers, x):
    x = layers.Conv1D(spec.filters, spec.kernel_size, padding="same", activation="relu")(x)
    x = layers.MaxPooling1D(spec.pool_size)(x)
    return layers.LSTM(spec.units)(x)


def _stacked_lstm(spec, layers, x):  # seed 001
    # go_backwards returns the sequence in reading order: LSTM(10) sees what it would see on
    # reversed input.
    x = layers.LSTM(50, return_sequences=True, go_backwards=spec.reverse)(x)
    x = layers.LSTM(10)(x)
    x = layers.Dropout(spec.dropout)(x)
    return layers.Dense(8, activation="relu")(x)


def _bilstm(spec, layers, x):
    return layers.Bidirectional(layers.LSTM(spec.units))(x)


def _gru(spec, layers, x):
    return layers.GRU(spec.units, go_backwards=spec.reverse)(x)


def _bigru(spec, layers, x):
    return layers.Bidirectional(layers.GRU(spec.units))(x)


def _simple_rnn(spec, layers, x):
    return layers.SimpleRNN(spec.units, go_backwards=spec.reverse)(x)


def _conv1d(spec, layers, x):
    x = layers.Conv1D(spec.filters, spec.kernel_size, padding="same", activation="relu")(x)
    x = layers.MaxPooling1D(spec.pool_size)(x)
    x = layers.Conv1D(spec.filters, spec.kernel_size, padding="same", activation="relu")(x)
    return layers.GlobalMaxPooling1D()(x)


def _flatten(spec, layers, x):
    x = layers.Flatten()(x)
    return layers.Dense(spec.hidden, activation="relu")(x)


_BODIES: dict[str, Callable] = {
    "lstm": _lstm,
    "lstm_dropout": _lstm_dropout,
    "lstm_recurrent_dropout": _lstm_recurrent_dropout,
    "cnn_lstm": _cnn_lstm,
    "stacked_lstm": _stacked_lstm,
    "bilstm": _bilstm,
    "gru": _gru,
    "bigru": _bigru,
    "simple_rnn": _simple_rnn,
    "conv1d": _conv1d,
    "flatten": _flatten,
}
assert set(_BODIES) == set(FAMILIES)
