"""``keras.layers.TextVectorization`` (int output, default standardize and split) in C++.

Covers the configuration the Keras text-classification examples use:
``standardize="lower_and_strip_punctuation"`` (ASCII lower-casing, ASCII punctuation
deleted), ``split="whitespace"`` (ASCII whitespace runs), ``output_mode="int"`` with the
vocabulary ``["", "[UNK]", ...]`` and ``output_sequence_length`` padding/truncating at the end.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from . import _core
from .text_input import as_text_input

MASK, OOV = "", "[UNK]"


class TextVectorizer:
    """Keras ``TextVectorization(max_tokens, output_sequence_length=...)`` for raw text."""

    def __init__(
        self,
        max_tokens: int | None = None,
        output_sequence_length: int | None = None,
        vocabulary: Sequence[str] | None = None,
    ) -> None:
        if max_tokens is not None and max_tokens < 3:
            raise ValueError(f"max_tokens must be > 2 (mask, OOV, at least one word): {max_tokens}")
        self.max_tokens = max_tokens
        self.output_sequence_length = output_sequence_length
        self._splitter = _core.WordSplitter(True, False, "", " ", "text_vectorization")
        self._vocabulary: list[str] = [MASK, OOV]
        self._vocab = _core.Vocabulary({MASK: 1}, None, MASK)
        if vocabulary is not None:
            self.set_vocabulary(vocabulary)

    def adapt(self, texts: Iterable[str] | Any, *, threads: int | None = None) -> None:
        """Learn the vocabulary as Keras' adapt does: by count, descending; ties by the
        token's bytes, descending; at most ``max_tokens`` entries including "" and [UNK]."""
        words, counts, _, _ = _core.fit(self._splitter, as_text_input(texts), threads)
        keep = [
            (c, w.encode("utf-8", "surrogatepass"), w)
            for w, c in zip(words, counts, strict=True)
            if w not in (MASK, OOV)
        ]
        keep.sort(reverse=True)
        if self.max_tokens is not None:
            keep = keep[: self.max_tokens - 2]
        self.set_vocabulary([w for _, _, w in keep])

    def set_vocabulary(self, vocabulary: Sequence[str]) -> None:
        """Use these terms (with or without the leading "" and "[UNK]" Keras adds)."""
        terms = list(vocabulary)
        if terms[:2] == [MASK, OOV]:
            terms = terms[2:]
        if len(set(terms)) != len(terms) or MASK in terms or OOV in terms:
            raise ValueError("vocabulary terms must be unique and exclude '' and '[UNK]'")
        self._vocabulary = [MASK, OOV, *terms]
        table = {term: i for i, term in enumerate(self._vocabulary) if i >= 2}
        table[MASK] = 1  # carries the OOV id: "" is never a token
        self._vocab = _core.Vocabulary(table, None, MASK)

    def get_vocabulary(self) -> list[str]:
        return list(self._vocabulary)

    def vocabulary_size(self) -> int:
        return len(self._vocabulary)

    def __call__(
        self, texts: Iterable[str] | Any, *, threads: int | None = None, errors: str = "strict"
    ) -> np.ndarray:
        """int64 ids ``[n, output_sequence_length]`` (or the longest row when it is None)."""
        return _core.encode(
            self._splitter,
            self._vocab,
            as_text_input(texts, errors),
            self.output_sequence_length,
            "post",
            "post",
            0,
            "int64",
            threads,
        )
