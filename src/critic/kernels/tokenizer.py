"""A drop-in for Keras' legacy ``Tokenizer`` whose hot paths run in C++.

Semantics follow ``keras.src.legacy.preprocessing.text.Tokenizer`` (what
``tf.keras.preprocessing.text.Tokenizer`` is in TF 2.21) exactly: same ids, same
``word_index`` order, same JSON. The dictionaries (``word_counts``, ``word_index`` ...) are
plain Python attributes, as in Keras; the C++ tables are rebuilt from them when they change.
"""

from __future__ import annotations

import collections
import json
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import numpy as np

from . import _core
from .ngrams import Ngrams, reference
from .text_input import as_text_input, encode_texts, int_arg

DEFAULT_FILTERS = '!"#$%&()*+,-./:;<=>?@[\\]^_`{|}~\t\n'
_JSON_FIELDS = ("word_counts", "word_docs", "index_docs", "index_word", "word_index")


class _WordIndex(dict):
    """A dict that counts its mutations, so cached C++ tables know when to rebuild."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.version = 0

    def _mutating(name: str) -> Callable:
        base = getattr(dict, name)

        def method(self: _WordIndex, *args: Any, **kwargs: Any) -> Any:
            self.version += 1
            return base(self, *args, **kwargs)

        method.__name__ = name
        return method

    __setitem__ = _mutating("__setitem__")
    __delitem__ = _mutating("__delitem__")
    __ior__ = _mutating("__ior__")
    clear = _mutating("clear")
    pop = _mutating("pop")
    popitem = _mutating("popitem")
    setdefault = _mutating("setdefault")
    update = _mutating("update")
    del _mutating


def text_to_word_sequence(
    input_text: str,
    filters: str = DEFAULT_FILTERS,
    lower: bool = True,
    split: str = " ",
) -> list[str]:
    """Keras' ``text_to_word_sequence``, computed by the C++ splitter."""
    splitter = _core.WordSplitter(lower, False, filters, split)
    return splitter.split(as_text_input([input_text]))[0]


class Tokenizer:
    """Keras' legacy text Tokenizer with a C++ core.

    Args are Keras': ``num_words`` (keep words whose index < num_words), ``filters``,
    ``lower``, ``split``, ``char_level``, ``oov_token`` (index 1 when given) and
    ``analyzer`` (a Python callable; when set, that path runs in Python).

    Beyond Keras: ``encode`` tokenizes, looks up and pads in one multi-threaded pass, and
    every method accepts numpy and pyarrow string arrays as well as lists.
    """

    def __init__(
        self,
        num_words: int | None = None,
        filters: str = DEFAULT_FILTERS,
        lower: bool = True,
        split: str = " ",
        char_level: bool = False,
        oov_token: str | None = None,
        analyzer: Callable[[str], list[str]] | None = None,
        **kwargs: Any,
    ) -> None:
        if "nb_words" in kwargs:
            warnings.warn(
                "The `nb_words` argument in `Tokenizer` has been renamed `num_words`.",
                stacklevel=2,
            )
            num_words = kwargs.pop("nb_words")
        document_count = kwargs.pop("document_count", 0)
        if kwargs:
            raise TypeError(f"Unrecognized keyword arguments: {kwargs}")
        if not isinstance(filters, str):
            raise TypeError(f"filters must be a str, got {type(filters).__name__}")
        if not isinstance(split, str):
            raise TypeError(f"split must be a str, got {type(split).__name__}")
        self.word_counts: dict[str, int] = collections.OrderedDict()
        self.word_docs: dict[str, int] = collections.defaultdict(int)
        self.filters = filters
        self.split = split
        self.lower = lower
        self.num_words = num_words
        self.document_count = document_count
        self.char_level = char_level
        self.oov_token = oov_token
        self.index_docs: dict[int, int] = collections.defaultdict(int)
        self.word_index: dict[str, int] = {}
        self.index_word: dict[int, str] = {}
        self.analyzer = analyzer
        # n-gram ids appended after the word ids (critic's extension; see critic.kernels.ngrams)
        self.ngrams: Ngrams | None = None
        self._splitter_cache: tuple[tuple, _core.WordSplitter] | None = None
        self._vocab_cache: tuple[tuple, _core.Vocabulary] | None = None

    # -- word_index is tracked so the C++ vocabulary is rebuilt only when it changes ------
    @property
    def word_index(self) -> dict[str, int]:
        return self._word_index

    @word_index.setter
    def word_index(self, value: dict[str, int]) -> None:
        self._word_index = value if isinstance(value, _WordIndex) else _WordIndex(value)

    def _splitter(self) -> _core.WordSplitter:
        key = (bool(self.lower), bool(self.char_level), self.filters, self.split)
        if self._splitter_cache is None or self._splitter_cache[0] != key:
            self._splitter_cache = (key, _core.WordSplitter(*key))
        return self._splitter_cache[1]

    def _vocab(self) -> _core.Vocabulary:
        wi = self._word_index
        key = (id(wi), wi.version, len(wi), self.num_words, self.oov_token)
        if self._vocab_cache is None or self._vocab_cache[0] != key:
            self._vocab_cache = (key, _core.Vocabulary(wi, self.num_words, self.oov_token))
        return self._vocab_cache[1]

    def _python_path(self) -> bool:
        return self.analyzer is not None and not self.char_level

    def _table(self) -> _core.NgramTable | None:
        return None if self.ngrams is None else self.ngrams.table()

    def _with_ngrams(self, rows: list[list[int]]) -> list[list[int]]:
        if self.ngrams is None:
            return rows
        add = reference(self.ngrams)
        return [add(r) for r in rows]

    # -- fitting ---------------------------------------------------------------------------
    def fit_on_texts(
        self, texts: Iterable[str] | Any, *, threads: int | None = None, errors: str = "strict"
    ) -> None:
        """Count words over ``texts`` and rebuild ``word_index`` (count desc, ties by first
        occurrence), exactly as Keras. Can be called repeatedly to add texts. Counting runs
        on ``threads`` threads (default: all cores)."""
        if self._python_path():
            self._fit_python(texts)
        else:
            words, counts, docs, n = _core.fit(
                self._splitter(), as_text_input(texts, errors), int_arg("threads", threads)
            )
            self.document_count += n
            wc, wd = self.word_counts, self.word_docs
            if not wc and not wd:  # first fit: new words arrive in first-occurrence order
                wc.update(zip(words, counts, strict=True))
                wd.update(zip(words, docs, strict=True))
            else:
                for w, c, d in zip(words, counts, docs, strict=True):
                    wc[w] = wc.get(w, 0) + c
                    wd[w] = wd.get(w, 0) + d
        self._build_index()

    def _fit_python(self, texts: Iterable[str]) -> None:
        wc, wd = self.word_counts, self.word_docs
        for text in texts:
            self.document_count += 1
            seq = self.analyzer(text)
            for w in seq:
                wc[w] = wc.get(w, 0) + 1
            for w in set(seq):
                wd[w] = wd.get(w, 0) + 1

    def _build_index(self) -> None:
        # A stable sort by count, descending: ties keep first-occurrence order.
        ranked = sorted(self.word_counts, key=self.word_counts.__getitem__, reverse=True)
        sorted_voc = ranked if self.oov_token is None else [self.oov_token, *ranked]
        indices = range(1, len(sorted_voc) + 1)
        # Index 0 is reserved. If the oov_token is also a word, dict() keeps its later index,
        # as Keras does (and index_word then lacks index 1).
        word_index = dict(zip(sorted_voc, indices, strict=True))
        self.word_index = word_index
        if len(word_index) == len(sorted_voc):
            self.index_word = dict(zip(indices, sorted_voc, strict=True))
        else:
            self.index_word = {c: w for w, c in word_index.items()}
        self.index_docs = collections.defaultdict(
            int, {word_index[w]: c for w, c in self.word_docs.items()}
        )

    def fit_on_sequences(self, sequences: Sequence[Sequence[int]]) -> None:
        """Keras' ``fit_on_sequences``: document frequencies of ids (for tf-idf)."""
        self.document_count += len(sequences)
        for seq in sequences:
            for i in set(seq):
                self.index_docs[i] = self.index_docs.get(i, 0) + 1

    # -- texts -> ids ------------------------------------------------------------------------
    def texts_to_sequences(
        self, texts: Iterable[str] | Any, *, threads: int | None = None, errors: str = "strict"
    ) -> list[list[int]]:
        """Word ids of each text (list of lists of int), exactly as Keras (with ``ngrams``
        set, each row's n-gram ids follow its word ids)."""
        if self._python_path():
            return self._with_ngrams([self._ids_python(self.analyzer(t)) for t in texts])
        texts = as_text_input(texts, errors)
        return _core.sequences(
            self._splitter(), self._vocab(), texts, int_arg("threads", threads), self._table()
        )

    def texts_to_sequences_generator(
        self, texts: Iterable[str], *, batch_size: int = 4096
    ) -> Iterator[list[int]]:
        """Lazy ``texts_to_sequences``: consumes ``texts`` ``batch_size`` at a time."""
        batch: list[str] = []
        for text in texts:
            batch.append(text)
            if len(batch) == batch_size:
                yield from self.texts_to_sequences(batch)
                batch = []
        if batch:
            yield from self.texts_to_sequences(batch)

    def _ids_python(self, seq: Iterable[str]) -> list[int]:
        num_words = self.num_words
        oov_index = self.word_index.get(self.oov_token)
        vect = []
        for w in seq:
            i = self.word_index.get(w)
            if i is not None:
                if num_words and i >= num_words:
                    if oov_index is not None:
                        vect.append(oov_index)
                else:
                    vect.append(i)
            elif self.oov_token is not None:
                if oov_index is None:
                    raise ValueError("oov_token is missing from word_index (fit first)")
                vect.append(oov_index)
        return vect

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
        out: np.ndarray | None = None,
    ) -> np.ndarray:
        """``pad_sequences(texts_to_sequences(texts), ...)`` fused into one C++ pass.

        Returns an ``int32`` (or ``int64``) array ``[len(texts), maxlen]``; ``maxlen=None``
        uses the longest row. Runs on ``threads`` threads (default: all cores) with the GIL
        released. ``errors='replace'`` substitutes U+FFFD for invalid UTF-8 in bytes/Arrow
        input instead of raising. ``out``: a C-contiguous array of that shape and dtype to
        fill instead of allocating one (reuse it across batches to skip page faults).
        """
        fill = _fill_value(value, dtype)
        if self._python_path():
            from .padding import pad_sequences

            result = pad_sequences(
                self.texts_to_sequences(texts), maxlen, dtype, padding, truncating, fill
            )
            if out is None:
                return result
            out[...] = result
            return out
        return encode_texts(
            self._splitter(),
            self._vocab(),
            texts,
            maxlen,
            padding,
            truncating,
            fill,
            dtype,
            int_arg("threads", threads),
            errors,
            out,
            self._table(),
        )

    # -- bags of ids ------------------------------------------------------------------------
    def _columns(self) -> int:
        if self.ngrams is not None:
            return self.ngrams.size
        if self.num_words:
            return int(self.num_words)
        if self.word_index:
            return len(self.word_index) + 1
        raise ValueError(
            "Specify a dimension (`num_words` argument), or fit on some text data first."
        )

    def _idf(self, columns: int) -> np.ndarray:
        if not self.document_count:
            raise ValueError("Fit the Tokenizer on some data before using tfidf mode.")
        df = np.zeros(columns, dtype=np.float64)
        for j, c in self.index_docs.items():
            if 0 <= j < columns:
                df[j] = c
        return np.log(1 + self.document_count / (1 + df))

    def texts_to_matrix(
        self,
        texts: Iterable[str] | Any,
        mode: str = "binary",
        *,
        dtype: str = "float64",
        sparse: bool = False,
        threads: int | None = None,
        errors: str = "strict",
    ) -> np.ndarray | tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Keras' ``texts_to_matrix`` (modes binary, count, freq, tfidf) in one C++ pass.

        Returns a dense ``[len(texts), columns]`` array (float64 as in Keras, or float32), or
        with ``sparse=True`` CSR arrays ``(indptr, indices, values)`` (``scipy.sparse.
        csr_matrix((values, indices, indptr))`` wraps them). Columns: ``num_words`` (or
        ``len(word_index) + 1``), or with ``ngrams`` every word and n-gram id.
        """
        if self._python_path():
            matrix = self.sequences_to_matrix(self.texts_to_sequences(texts), mode)
            return matrix.astype(dtype, copy=False)
        columns = self._columns()
        idf = self._idf(columns) if mode == "tfidf" else None
        return _core.bags(
            self._splitter(),
            self._vocab(),
            as_text_input(texts, errors),
            columns,
            mode,
            idf,
            np.dtype(dtype).name,
            sparse,
            int_arg("threads", threads),
            self._table(),
        )

    def sequences_to_matrix(
        self, sequences: Iterable[Iterable[int]], mode: str = "binary"
    ) -> np.ndarray:
        """Keras' ``sequences_to_matrix``: a float64 ``[len(sequences), columns]`` array."""
        if mode not in ("binary", "count", "freq", "tfidf"):
            raise ValueError(f"Unknown vectorization mode: {mode}")
        columns = self._columns()
        idf = self._idf(columns) if mode == "tfidf" else None
        sequences = list(sequences)
        x = np.zeros((len(sequences), columns))
        for i, seq in enumerate(sequences):
            seq = list(seq)
            if not seq:
                continue
            ids, counts = np.unique(np.asarray(seq, dtype=np.int64), return_counts=True)
            keep = ids < columns
            ids, counts = ids[keep], counts[keep].astype(np.float64)
            if mode == "binary":
                x[i, ids] = 1
            elif mode == "count":
                x[i, ids] = counts
            elif mode == "freq":
                x[i, ids] = counts / len(seq)
            else:
                x[i, ids] = (1 + np.log(counts)) * idf[ids]
        return x

    # -- ids -> texts ------------------------------------------------------------------------
    def sequences_to_texts(self, sequences: Iterable[Iterable[int]]) -> list[str]:
        """Keras' ``sequences_to_texts``: ids back to space-joined words."""
        return list(self.sequences_to_texts_generator(sequences))

    def sequences_to_texts_generator(self, sequences: Iterable[Iterable[int]]) -> Iterator[str]:
        num_words = self.num_words
        oov_index = self.word_index.get(self.oov_token)
        index_word = self.index_word
        for seq in sequences:
            vect = []
            for num in seq:
                word = index_word.get(num)
                if word is not None:
                    if num_words and num >= num_words:
                        if oov_index is not None:
                            vect.append(index_word[oov_index])
                    else:
                        vect.append(word)
                elif self.oov_token is not None:
                    vect.append(index_word[oov_index])
            yield " ".join(vect)

    # -- serialization -----------------------------------------------------------------------
    def get_config(self) -> dict[str, Any]:
        """Keras' ``get_config``: dictionaries are JSON strings inside the config."""
        return {
            "num_words": self.num_words,
            "filters": self.filters,
            "lower": self.lower,
            "split": self.split,
            "char_level": self.char_level,
            "oov_token": self.oov_token,
            "document_count": self.document_count,
            "word_counts": json.dumps(self.word_counts),
            "word_docs": json.dumps(self.word_docs),
            "index_docs": json.dumps(self.index_docs),
            "index_word": json.dumps(self.index_word),
            "word_index": json.dumps(dict(self.word_index)),
        }

    def to_json(self, **kwargs: Any) -> str:
        """JSON that Keras' ``tokenizer_from_json`` loads (and ``from_json`` reads back; an
        ``ngrams`` section, which Keras ignores, carries the n-gram vocabulary)."""
        doc: dict[str, Any] = {"class_name": "Tokenizer", "config": self.get_config()}
        if self.ngrams is not None:
            doc["ngrams"] = self.ngrams.to_dict()
        return json.dumps(doc, **kwargs)

    @classmethod
    def from_json(cls, json_string: str) -> Tokenizer:
        """Load Keras' ``Tokenizer.to_json()`` output (or ours)."""
        return tokenizer_from_json(json_string, cls)

    def __repr__(self) -> str:
        return (
            f"Tokenizer(num_words={self.num_words!r}, oov_token={self.oov_token!r}, "
            f"lower={self.lower!r}, char_level={self.char_level!r}, "
            f"words={len(self.word_index)})"
        )


def tokenizer_from_json(json_string: str, cls: type[Tokenizer] = Tokenizer) -> Tokenizer:
    """Keras' ``tokenizer_from_json``, returning a critic ``Tokenizer``."""
    payload = json.loads(json_string)
    if not isinstance(payload, dict) or "config" not in payload:
        raise ValueError("not a Tokenizer JSON: expected an object with a 'config' key")
    config = dict(payload["config"])
    fields = {name: json.loads(config.pop(name, "{}")) for name in _JSON_FIELDS}
    tok = cls(**config)
    tok.word_counts = collections.OrderedDict(fields["word_counts"])
    tok.word_docs = collections.defaultdict(int, fields["word_docs"])
    tok.index_docs = collections.defaultdict(
        int, {int(k): v for k, v in fields["index_docs"].items()}
    )
    tok.index_word = {int(k): v for k, v in fields["index_word"].items()}
    tok.word_index = fields["word_index"]
    if payload.get("ngrams") is not None:
        tok.ngrams = Ngrams.from_dict(payload["ngrams"])
    return tok


def _fill_value(value: Any, dtype: Any) -> int:
    """The padding value as numpy would store it in ``dtype`` (Keras uses np.full)."""
    dt = np.dtype(dtype)
    if dt not in (np.dtype("int32"), np.dtype("int64")):
        raise ValueError(f"dtype must be int32 or int64, got {dt}")
    if isinstance(value, str):
        raise ValueError(f"`dtype` {dt} is not compatible with `value`'s type: {type(value)}")
    return int(np.full((), value, dtype=dt))
