"""Type stubs for the private extension module critic.kernels._core."""

from collections.abc import Iterable
from typing import Any

import numpy as np

__version__: str

class TextInput:
    @staticmethod
    def from_sequence(texts: Iterable[str | bytes], errors: str = "strict") -> TextInput: ...
    @staticmethod
    def from_numpy(texts: np.ndarray, errors: str = "strict") -> TextInput: ...
    @staticmethod
    def from_arrow(
        chunks: Iterable[tuple[Any, Any | None, Any | None, int, int, bool]],
        errors: str = "strict",
    ) -> TextInput: ...
    def __len__(self) -> int: ...

class WordSplitter:
    def __init__(
        self,
        lower: bool,
        char_level: bool,
        filters: str,
        split: str,
        mode: str = "keras_tokenizer",
    ) -> None: ...
    def split(self, texts: TextInput) -> list[list[str]]: ...

class Vocabulary:
    def __init__(
        self,
        word_index: dict[str, int],
        num_words: int | None,
        oov_token: str | None,
        start: int | None = None,
    ) -> None: ...
    def __len__(self) -> int: ...

class CsvScan:
    def __init__(self, delimiter: str, strict: bool, batch_rows: int, phase: int = 0) -> None: ...
    def feed(self, data: bytes | bytearray | memoryview) -> None: ...
    def finish(self) -> None: ...
    @property
    def rows(self) -> int: ...
    @property
    def starts(self) -> list[tuple[int, int, int]]: ...

class CsvRows:
    def __init__(
        self,
        delimiter: str,
        strict: bool,
        file_start: bool,
        first_line: int,
        header_fields: int,
        where: list[int],
        text_error: str,
    ) -> None: ...
    def feed(self, data: bytes | bytearray | memoryview) -> None: ...
    def finish(self) -> None: ...
    @property
    def pending(self) -> int: ...
    def take(
        self, max_rows: int
    ) -> tuple[list[str | None], list[list[str | None]], dict[int, str]]: ...

class NgramTable:
    def __init__(
        self, order: int, base: int, keys: np.ndarray, buckets: int = 0, distinct: bool = False
    ) -> None: ...
    @property
    def order(self) -> int: ...
    @property
    def base(self) -> int: ...
    @property
    def distinct(self) -> bool: ...
    @property
    def hashed(self) -> bool: ...
    def __len__(self) -> int: ...

def fit_ngrams(
    splitter: WordSplitter,
    vocab: Vocabulary,
    texts: TextInput,
    order: int,
    threads: int | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]: ...
def bags(
    splitter: WordSplitter,
    vocab: Vocabulary,
    texts: TextInput,
    columns: int,
    mode: str,
    idf: np.ndarray | None,
    dtype: str,
    sparse: bool = False,
    threads: int | None = None,
    ngrams: NgramTable | None = None,
) -> Any: ...
def fit(
    splitter: WordSplitter, texts: TextInput, threads: int | None = None
) -> tuple[list[str], list[int], list[int], int]: ...
def sequences(
    splitter: WordSplitter,
    vocab: Vocabulary,
    texts: TextInput,
    threads: int | None = None,
    ngrams: NgramTable | None = None,
) -> list[list[int]]: ...
def encode(
    splitter: WordSplitter,
    vocab: Vocabulary,
    texts: TextInput,
    maxlen: int | None,
    padding: str,
    truncating: str,
    value: int,
    dtype: str,
    threads: int | None = None,
    out: np.ndarray | None = None,
    ngrams: NgramTable | None = None,
) -> np.ndarray: ...
def pad(
    sequences: Any,
    maxlen: int | None,
    padding: str,
    truncating: str,
    value: int,
    dtype: str,
    threads: int | None = None,
) -> np.ndarray | None: ...
def unicode_version() -> str: ...
def default_threads() -> int: ...
