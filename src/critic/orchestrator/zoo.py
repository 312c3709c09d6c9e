"""The model zoo: the classic Keras review classifiers as functional Keras 3 models.

Every model takes ``tokens`` (int32 ``[batch, maxlen]``, ids from critic's Tokenizer) and
returns the probability of the positive class (``[batch, 1]``, sigmoid) or, for ``classes``
k > 2, the probability of each class (``[batch, k]``, softmax). Functional models,
not ``Sequential``: tf2onnx's ``from_keras`` converts them cleanly.

Sequence families read word ids in order. Bag families read a row as a bag of word and
n-gram ids (see ``critic.kernels.ngrams``; :data:`FAMILY_FEATURES` says which ids they get):
``fasttext`` averages embeddings of unigram and bigram ids (Keras' ``imdb_fasttext``),
``nbsvm`` is logistic regression on the binarized uni/bi/trigram bag with weights started at
the naive-Bayes log-count ratios (Wang & Manning 2012), ``bow`` is Chollet's multi-hot MLP
(Dense on the binary bag, computed as a sum of embedding rows).
"""

from __future__ import annotations

import numbers
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np

from critic.classes import output_width

from .schema import yaml_number_hint

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
    "fasttext",
    "nbsvm",
    "bow",
)
BAG_FAMILIES = ("fasttext", "nbsvm", "bow")
# The ids each family reads unless the tokenizer section says otherwise: n-gram order and
# whether each id appears once per row.
FAMILY_FEATURES: dict[str, dict[str, Any]] = {
    "fasttext": {"ngrams": 2, "distinct": False},
    "nbsvm": {"ngrams": 3, "distinct": True},
    "bow": {"ngrams": 1, "distinct": True},
}
SEQUENCE_FEATURES: dict[str, Any] = {"ngrams": 1, "distinct": False}
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
    # How many labels: 2 is one sigmoid output, more are softmax outputs (set from the data)
    classes: int = 2

    @classmethod
    def from_dict(cls, config: dict[str, Any]) -> ModelSpec:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(config) - known)
        if unknown:
            raise ValueError(f"{unknown[0]}: unknown key; known: {', '.join(sorted(known))}")
        spec = cls(**config)
        spec.validate()
        return spec

    def validate(self) -> None:
        """ValueError naming the setting (``units: must be an integer, got 1.5``)."""
        for f in fields(self):
            value = getattr(self, f.name)
            if not _has_type(value, f.type):
                hint = yaml_number_hint(value)
                raise ValueError(f"{f.name}: must be {TYPE_WORDS[f.type]}, got {value!r}{hint}")
        if self.family not in FAMILIES:
            raise ValueError(f"family: unknown family {self.family!r}; choose from {FAMILIES}")
        if self.glove_path and self.family in BAG_FAMILIES:
            raise ValueError(f"glove_path: for sequence families, not {self.family!r}")
        if self.reverse and self.family not in REVERSIBLE:
            raise ValueError(
                f"reverse: needs a one-way recurrent family {REVERSIBLE}, not {self.family!r}"
            )
        if self.classes < 2:
            raise ValueError(f"classes: must be >= 2, got {self.classes}")
        for name in ("num_words", "maxlen", "embedding_dim", "units", "filters", "hidden"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}: must be >= 1, got {getattr(self, name)}")
        for name in ("kernel_size", "pool_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}: must be >= 1, got {getattr(self, name)}")
        for name in ("dropout", "recurrent_dropout", "embedding_dropout"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"{name}: must be in [0, 1), got {getattr(self, name)}")
        if not self.learning_rate > 0:
            raise ValueError(f"learning_rate: must be > 0, got {self.learning_rate}")


TYPE_WORDS = {
    "int": "an integer",
    "float": "a number",
    "bool": "true or false",
    "str": "text",
    "str | None": "text or null",
}


def _has_type(value: Any, kind: str) -> bool:
    """A value of a ModelSpec field's annotated type (numpy numbers count: Tune samples them)."""
    if kind == "int":
        return isinstance(value, numbers.Integral) and not isinstance(value, bool)
    if kind == "float":
        return isinstance(value, numbers.Real) and not isinstance(value, bool)
    if kind == "bool":
        return isinstance(value, bool)
    return isinstance(value, str) or (kind == "str | None" and value is None)


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


def nb_ratio(
    x: np.ndarray, y: np.ndarray, num_words: int, alpha: float = 1.0, classes: int = 2
) -> np.ndarray:
    """Naive-Bayes log-count ratios of the ids in padded rows ``x`` (each id counted once per
    row) for labels ``y``; 0 for padding. Binary: ``[num_words, 1]``, positive against
    negative rows. ``classes`` k > 2: ``[num_words, k]``, each class against the rest
    (one-vs-rest, as Wang & Manning use NBSVM on more than two classes)."""
    y = np.asarray(y).ravel().astype(np.int64)
    per_class = np.zeros((classes, num_words), dtype=np.float64)
    for label in range(per_class.shape[0]):
        for row in x[y == label]:
            per_class[label, np.unique(row[row > 0])] += 1
    counts = per_class[:, 1:] + alpha  # id 0 is padding, not a feature
    total = per_class[:, 1:].sum(axis=0)
    wanted = [1] if classes == 2 else range(classes)
    r = np.zeros((num_words, len(wanted)), dtype=np.float64)
    for column, label in enumerate(wanted):
        p = counts[label]
        q = (total - per_class[label, 1:]) + alpha  # every other class's rows
        r[1:, column] = np.log((p / p.sum()) / (q / q.sum()))
    return r.astype(np.float32)


def build_model(
    spec: ModelSpec,
    embedding_matrix: np.ndarray | None = None,
    ratios: np.ndarray | None = None,
):
    """The Keras model for ``spec``, compiled with Adam + binary cross-entropy (k > 2 classes:
    sparse categorical cross-entropy); ``ratios``: the nbsvm family's :func:`nb_ratio`."""
    import keras
    from keras import layers

    spec.validate()
    tokens = keras.Input(shape=(spec.maxlen,), dtype="int32", name="tokens")
    if spec.family in BAG_FAMILIES:
        out = _bag_model(spec, tokens, ratios)
        return _compiled(keras.Model(tokens, out, name=spec.family), spec)
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
    return _compiled(keras.Model(tokens, _head(spec, x), name=spec.family), spec)


def _head(spec: ModelSpec, x):
    """The output layer: P(positive) for two classes, the class probabilities for more."""
    from keras import layers

    if spec.classes == 2:
        return layers.Dense(1, activation="sigmoid", name="probability")(x)
    return layers.Dense(spec.classes, activation="softmax", name="probability")(x)


def _compiled(model, spec: ModelSpec):
    import keras

    binary = spec.classes == 2
    model.compile(
        optimizer=keras.optimizers.Adam(spec.learning_rate),
        loss="binary_crossentropy" if binary else "sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model


def _bag_model(spec: ModelSpec, tokens, ratios: np.ndarray | None):
    from keras import layers

    from critic.keras_layers import BagPooling, ScaledWeights

    if spec.family == "fasttext":
        x = layers.Embedding(spec.num_words, spec.embedding_dim, name="embedding")(tokens)
        x = BagPooling("mean", name="average")([x, tokens])
        if spec.dropout:
            x = layers.Dropout(spec.dropout)(x)
        return _head(spec, x)
    if spec.family == "nbsvm":
        # Logistic regression on the ratio-scaled binary bag: logit = sum_i w_i * r_i + b over
        # the row's distinct ids, r fixed, w trained from zero (NBSVM's feature scaling). k > 2
        # classes: one logit per class, each with its one-vs-rest ratios, under a softmax.
        columns = output_width(spec.classes)
        if ratios is None:  # plain logistic regression
            ratios = np.ones((spec.num_words, columns), dtype=np.float32)
        if ratios.shape != (spec.num_words, columns):
            raise ValueError(f"nb ratios must have shape ({spec.num_words}, {columns})")
        scaled = ScaledWeights(spec.num_words, ratios, columns, name="nb_weights")(tokens)
        logit = BagPooling("sum", use_bias=True, name="logit")([scaled, tokens])
        activation = "sigmoid" if spec.classes == 2 else "softmax"
        return layers.Activation(activation, name="probability")(logit)
    # bow: Dense(hidden) on the binary bag == a sum of embedding rows plus a bias
    x = layers.Embedding(spec.num_words, spec.hidden, name="embedding")(tokens)
    x = BagPooling("sum", use_bias=True, name="dense")([x, tokens])
    x = layers.Activation("relu")(x)
    if spec.dropout:
        x = layers.Dropout(spec.dropout)(x)
    return _head(spec, x)


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
assert set(_BODIES) | set(BAG_FAMILIES) == set(FAMILIES)
