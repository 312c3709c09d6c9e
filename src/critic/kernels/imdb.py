"""Raw text -> the id space of ``keras.datasets.imdb.load_data``.

A model trained on Keras' ``imdb.npz`` arrays expects ids built from ``imdb_word_index.json``
(word -> frequency rank) as ``load_data`` builds them: ``start_char`` first, then
``rank + index_from`` for each word, ids outside ``[skip_top, num_words)`` replaced by
``oov_char`` (or dropped when it is None). ``ImdbIndex`` maps raw reviews the same way
(words split as Keras' ``text_to_word_sequence`` splits them), so that model can score new
text. Words missing from the index become ``oov_char`` too.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from . import _core
from .text_input import as_text_input, encode_texts
from .tokenizer import DEFAULT_FILTERS, _fill_value

_UNKNOWN = ""  # never a token, so usable as the key that carries the OOV id


class ImdbIndex:
    """Keras IMDB ids for raw text. Arguments mirror ``keras.datasets.imdb.load_data``."""

    def __init__(
        self,
        word_index: dict[str, int],
        num_words: int | None = None,
        skip_top: int = 0,
        start_char: int | None = 1,
        oov_char: int | None = 2,
        index_from: int = 3,
    ) -> None:
        if not word_index:
            raise ValueError("word_index is empty")
        self.word_index = dict(word_index)
        self.num_words, self.skip_top, self.index_from = num_words, skip_top, index_from
        self.start_char, self.oov_char = start_char, oov_char
        # load_data without num_words: the largest id in the data, kept out by `<`
        self._limit = num_words or max(word_index.values()) + index_from
        table: dict[str, int] = {}
        for word, rank in word_index.items():
            i = self._resolve(rank + index_from)
            if i is not None:
                table[word] = i
        if oov_char is not None:
            table[_UNKNOWN] = oov_char
        start = None if start_char is None else self._resolve(start_char)
        self._vocab = _core.Vocabulary(
            table, None, None if oov_char is None else _UNKNOWN, start=start
        )
        self._splitter = _core.WordSplitter(True, False, DEFAULT_FILTERS, " ")

    @classmethod
    def from_file(cls, path: str | Path, **kwargs: Any) -> ImdbIndex:
        """Load Keras' ``imdb_word_index.json`` (``keras.datasets.imdb.get_word_index``)."""
        with open(path, encoding="utf-8") as fh:
            return cls(json.load(fh), **kwargs)

    def get_config(self) -> dict[str, Any]:
        return {
            "word_index": json.dumps(self.word_index, ensure_ascii=False),
            "num_words": self.num_words,
            "skip_top": self.skip_top,
            "start_char": self.start_char,
            "oov_char": self.oov_char,
            "index_from": self.index_from,
        }

    def to_json(self, **kwargs: Any) -> str:
        """``{"class_name": "ImdbIndex", "config": ...}``, read back by ``from_json``."""
        return json.dumps({"class_name": "ImdbIndex", "config": self.get_config()}, **kwargs)

    @classmethod
    def from_json(cls, json_string: str) -> ImdbIndex:
        payload = json.loads(json_string)
        if not isinstance(payload, dict) or payload.get("class_name") != "ImdbIndex":
            raise ValueError("not an ImdbIndex JSON: expected class_name 'ImdbIndex'")
        config = dict(payload["config"])
        return cls(json.loads(config.pop("word_index")), **config)

    def remap(self, ranks: Iterable[int]) -> list[int]:
        """One review of an ``imdb.npz`` file (word ranks) -> ids, as ``load_data`` maps
        them: ``start_char`` first, then ``rank + index_from``, ids outside
        ``[skip_top, num_words)`` replaced by ``oov_char`` (or dropped when it is None)."""
        head = [] if self.start_char is None else [self.start_char]
        ids = (self._resolve(i) for i in [*head, *(int(r) + self.index_from for r in ranks)])
        return [i for i in ids if i is not None]

    def _resolve(self, i: int) -> int | None:
        """``i`` inside ``[skip_top, limit)``, else ``oov_char`` (None: dropped)."""
        return i if self.skip_top <= i < self._limit else self.oov_char

    def texts_to_sequences(
        self, texts: Iterable[str] | Any, *, threads: int | None = None, errors: str = "strict"
    ) -> list[list[int]]:
        """Ids as ``load_data`` gives them (before any padding)."""
        return _core.sequences(self._splitter, self._vocab, as_text_input(texts, errors), threads)

    def encode(
        self,
        texts: Iterable[str] | Any,
        maxlen: int | None = None,
        padding: str = "pre",
        truncating: str = "pre",
        value: int = 0,
        dtype: str = "int32",
        threads: int | None = None,
        errors: str = "strict",
    ) -> np.ndarray:
        """``pad_sequences(texts_to_sequences(texts), ...)`` in one pass, like Tokenizer.encode."""
        fill = _fill_value(value, dtype)
        return encode_texts(
            self._splitter,
            self._vocab,
            texts,
            maxlen,
            padding,
            truncating,
            fill,
            dtype,
            threads,
            errors,
        )
