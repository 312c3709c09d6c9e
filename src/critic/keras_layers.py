"""Keras layers critic's bag-of-ids models are built from (registered for safe-mode loading).

Imports Keras: only the training and export code import this module, never the runtime.
"""

from __future__ import annotations

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="critic")
class BagPooling(keras.layers.Layer):
    """Pools the embeddings of a row's ids, leaving out the padding (id 0).

    Called on ``[embeddings, ids]``: ``mode="mean"`` averages the real ids' vectors (an empty
    row gives zeros, never a division by zero), ``"sum"`` adds them; ``use_bias`` adds a
    trainable bias (a sum of embedding rows plus a bias is a Dense layer on the multi-hot
    vector, without building the vector).
    """

    def __init__(self, mode: str = "mean", use_bias: bool = False, **kwargs) -> None:
        super().__init__(**kwargs)
        if mode not in ("mean", "sum"):
            raise ValueError(f"mode must be 'mean' or 'sum', got {mode!r}")
        self.mode = mode
        self.use_bias = use_bias

    def build(self, input_shape) -> None:
        if self.use_bias:
            self.bias = self.add_weight(
                shape=(input_shape[0][-1],), initializer="zeros", name="bias"
            )

    def call(self, inputs):
        embeddings, ids = inputs
        real = ops.cast(ops.not_equal(ids, 0), embeddings.dtype)
        pooled = ops.sum(embeddings * ops.expand_dims(real, -1), axis=1)
        if self.mode == "mean":
            pooled = pooled / ops.maximum(ops.sum(real, axis=1, keepdims=True), 1.0)
        if self.use_bias:
            pooled = pooled + self.bias
        return pooled

    def compute_output_shape(self, input_shape):
        return (input_shape[0][0], input_shape[0][-1])

    def get_config(self) -> dict:
        return {**super().get_config(), "mode": self.mode, "use_bias": self.use_bias}


@keras.saving.register_keras_serializable(package="critic")
class ScaledWeights(keras.layers.Layer):
    """Per-id weights ``w`` (trained, from zero) times fixed per-id scales ``r``, looked up
    as one table ``w * r`` (NBSVM's ratio-scaled features; the product folds into one
    constant in the exported graph, so inference does a single lookup per id).

    Called on ids ``[batch, length]``; returns ``[batch, length, columns]`` (one column per
    logit: 1 for a binary model, k for k classes).
    """

    def __init__(self, num_words: int, scales=None, columns: int = 1, **kwargs) -> None:
        super().__init__(**kwargs)
        self.num_words = int(num_words)
        self.columns = int(columns)
        self._scales = scales  # initial values only; saved and loaded as a weight

    def build(self, input_shape) -> None:
        init = "zeros" if self._scales is None else keras.initializers.Constant(self._scales)
        self.scales = self.add_weight(
            shape=(self.num_words, self.columns), initializer=init, trainable=False, name="scales"
        )
        self.weights_per_id = self.add_weight(
            shape=(self.num_words, self.columns), initializer="zeros", name="weights_per_id"
        )

    def call(self, ids):
        return ops.take(self.weights_per_id * self.scales, ops.cast(ids, "int32"), axis=0)

    def compute_output_shape(self, input_shape):
        return (*input_shape, self.columns)

    def get_config(self) -> dict:
        return {**super().get_config(), "num_words": self.num_words, "columns": self.columns}
