"""n-gram ids after the word ids: Keras' ``imdb_fasttext`` recipe and fastText's hashing trick.

A tokenizer with ``ngrams`` set appends, to every row's word ids, the ids of its n-grams of
word ids (bigrams, then trigrams, in reading order), computed in C++ inside ``encode`` and
``texts_to_sequences``. The n-gram ids follow the word ids: from ``base`` (the tokenizer's
``num_words``, or ``len(word_index) + 1``) up to ``base + len(ngrams)``. Either

- **fitted**: the n-grams counted on the training texts, ranked like Keras ranks words (count
  descending, ties by first occurrence) and kept down to ``min_count`` / ``max_ngrams``; or
- **hashed**: every n-gram maps to one of ``buckets`` ids (no vocabulary to fit or ship).

``distinct`` keeps each id once per row (the binarized bag NBSVM reads). n-grams of ids
outside ``[1, 2**21)`` are not formed. :func:`reference` is the same computation in plain
Python (the parity reference).
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import _core

ID_BITS = 21
ID_LIMIT = 1 << ID_BITS
MAX_ORDER = 3
_MASK64 = (1 << 64) - 1


@dataclass(frozen=True, eq=False)
class Ngrams:
    """n-gram settings and (for the fitted variant) the n-gram vocabulary."""

    order: int
    base: int
    keys: np.ndarray = field(default_factory=lambda: np.zeros(0, np.uint64))
    buckets: int = 0
    distinct: bool = False
    _table: list = field(default_factory=list, repr=False)  # the C++ table, built once

    def __post_init__(self) -> None:
        object.__setattr__(self, "keys", np.ascontiguousarray(self.keys, dtype=np.uint64))
        self.table()  # validates

    @classmethod
    def fit(
        cls,
        tokenizer: Any,
        texts: Any,
        order: int = 2,
        *,
        max_ngrams: int | None = None,
        min_count: int = 1,
        distinct: bool = False,
        threads: int | None = None,
    ) -> Ngrams:
        """Count the n-grams (orders 2..order) of ``tokenizer``'s word ids on ``texts`` and
        keep the ``max_ngrams`` most frequent that occur at least ``min_count`` times."""
        from .text_input import as_text_input, int_arg

        if order == 1:
            return cls(1, id_base(tokenizer), distinct=distinct)
        keys, counts, _ = _core.fit_ngrams(
            tokenizer._splitter(),
            tokenizer._vocab(),
            as_text_input(texts),
            order,
            int_arg("threads", threads),
        )
        # Count descending, ties by first occurrence (a stable sort), as Keras ranks words.
        ranked = np.argsort(-counts, kind="stable")
        ranked = ranked[counts[ranked] >= min_count]
        if max_ngrams is not None:
            ranked = ranked[:max_ngrams]
        return cls(order, id_base(tokenizer), keys[ranked], distinct=distinct)

    @classmethod
    def hashed(cls, tokenizer: Any, order: int, buckets: int, *, distinct: bool = False) -> Ngrams:
        """n-grams hashed into ``buckets`` ids (no fitting)."""
        if buckets < 1:
            raise ValueError(f"buckets must be >= 1, got {buckets}")
        return cls(order, id_base(tokenizer), buckets=buckets, distinct=distinct)

    @property
    def size(self) -> int:
        """One past the largest id: the embedding size a model needs."""
        return self.base + (self.buckets or len(self.keys))

    def table(self) -> _core.NgramTable:
        if not self._table:
            self._table.append(
                _core.NgramTable(self.order, self.base, self.keys, self.buckets, self.distinct)
            )
        return self._table[0]

    def to_dict(self) -> dict[str, Any]:
        return {
            "order": self.order,
            "base": self.base,
            "buckets": self.buckets,
            "distinct": self.distinct,
            "keys_uint64le_base64": base64.b64encode(self.keys.astype("<u8").tobytes()).decode(),
        }

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> Ngrams:
        try:
            raw = base64.b64decode(doc.get("keys_uint64le_base64", ""), validate=True)
            if len(raw) % 8:
                raise ValueError("n-gram keys are not a whole number of uint64")
            return cls(
                int(doc["order"]),
                int(doc["base"]),
                np.frombuffer(raw, dtype="<u8").astype(np.uint64),
                buckets=int(doc.get("buckets", 0)),
                distinct=bool(doc.get("distinct", False)),
            )
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError(f"invalid 'ngrams' section: {e}") from e

    def __repr__(self) -> str:
        kind = f"buckets={self.buckets}" if self.buckets else f"fitted={len(self.keys)}"
        return f"Ngrams(order={self.order}, base={self.base}, {kind}, distinct={self.distinct})"


def id_base(tokenizer: Any) -> int:
    """The first n-gram id for ``tokenizer``: its num_words, or one past its largest index."""
    if tokenizer.num_words:
        return int(tokenizer.num_words)
    return max(tokenizer.word_index.values(), default=0) + 1


def pack(ids: tuple[int, ...]) -> int:
    """The 64-bit key of an n-gram of word ids (21 bits per id), or 0 if it cannot be packed."""
    key = 0
    for i in ids:
        if not 1 <= i < ID_LIMIT:
            return 0
        key = (key << ID_BITS) | i
    return key


def mix64(x: int) -> int:
    """splitmix64's finalizer (the hashed variant's bucket hash)."""
    x ^= x >> 30
    x = (x * 0xBF58476D1CE4E5B9) & _MASK64
    x ^= x >> 27
    x = (x * 0x94D049BB133111EB) & _MASK64
    return x ^ (x >> 31)


def reference(ngrams: Ngrams) -> Callable[[list[int]], list[int]]:
    """What the kernel computes for one row, in plain Python: word ids in, word ids then
    n-gram ids out."""
    lookup = {int(k): ngrams.base + r for r, k in enumerate(ngrams.keys)}

    def ids(word_ids: list[int]) -> list[int]:
        out = list(word_ids)
        for n in range(2, ngrams.order + 1):
            for i in range(len(word_ids) - n + 1):
                key = pack(tuple(word_ids[i : i + n]))
                if not key:
                    continue
                if ngrams.buckets:
                    out.append(ngrams.base + mix64(key) % ngrams.buckets)
                elif key in lookup:
                    out.append(lookup[key])
        return list(dict.fromkeys(out)) if ngrams.distinct else out

    return ids
