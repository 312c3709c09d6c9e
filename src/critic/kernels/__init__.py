"""Keras-exact text kernels in C++: ``Tokenizer``, ``pad_sequences`` and a fused ``encode``;
``CsvScan`` and ``CsvRows``, the layout scan and the reader of CSV/TSV inputs.

Imports only numpy and the compiled ``_core`` (no TensorFlow, no Ray).
"""

from ._core import CsvRows, CsvScan, default_threads, unicode_version
from .imdb import ImdbIndex
from .ngrams import Ngrams
from .padding import pad_sequences
from .text_input import as_text_input
from .tokenizer import DEFAULT_FILTERS, Tokenizer, text_to_word_sequence, tokenizer_from_json
from .vectorization import TextVectorizer

__all__ = [
    "DEFAULT_FILTERS",
    "CsvRows",
    "CsvScan",
    "ImdbIndex",
    "Ngrams",
    "TextVectorizer",
    "Tokenizer",
    "as_text_input",
    "default_threads",
    "pad_sequences",
    "text_to_word_sequence",
    "tokenizer_from_json",
    "unicode_version",
]
