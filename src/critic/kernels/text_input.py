"""Turn user texts (list, numpy array, pyarrow array) into the kernel's TextInput."""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np

from ._core import TextInput

ERRORS = ("strict", "replace")


def int_arg(name: str, value: Any) -> int | None:
    """An optional integer argument (``maxlen``, ``threads``): None, or an int; a bool, float
    or str is a TypeError, as in Keras (not a conversion error from the C++ binding)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"`{name}` must be an int or None, got {type(value).__name__} {value!r}")
    return int(value)


def _arrow_chunk(arr: Any) -> tuple:
    import pyarrow as pa  # only reached when the caller passed pyarrow objects

    if pa.types.is_string(arr.type):
        large = False
    elif pa.types.is_large_string(arr.type):
        large = True
    else:
        raise TypeError(
            f"pyarrow texts must be string or large_string, got {arr.type}; "
            "cast with arr.cast(pyarrow.large_string())"
        )
    validity, offsets, data = arr.buffers()
    if arr.null_count == 0:
        validity = None
    return (offsets, data, validity, arr.offset, len(arr), large)


def as_text_input(texts: Any, errors: str = "strict") -> TextInput:
    """Snapshot ``texts`` for the kernel without copying the text bytes.

    Accepts a sequence of ``str`` (or UTF-8 ``bytes``), a 1-D numpy array of ``str_``,
    ``bytes_`` or objects, or a pyarrow ``StringArray`` / ``LargeStringArray`` /
    ``ChunkedArray`` (read in place over its Arrow buffers).
    """
    if errors not in ERRORS:
        raise ValueError(f"errors must be one of {ERRORS}, got {errors!r}")
    if isinstance(texts, TextInput):
        return texts
    if isinstance(texts, np.ndarray):
        return TextInput.from_numpy(texts, errors)
    module = type(texts).__module__ or ""
    if module.startswith("pyarrow"):
        if hasattr(texts, "chunks"):
            return TextInput.from_arrow([_arrow_chunk(c) for c in texts.chunks], errors)
        if hasattr(texts, "buffers"):
            return TextInput.from_arrow([_arrow_chunk(texts)], errors)
    return TextInput.from_sequence(texts, errors)


def encode_texts(
    splitter: Any,
    vocab: Any,
    texts: Any,
    maxlen: int | None,
    padding: str,
    truncating: str,
    fill: int,
    dtype: Any,
    threads: int | None,
    errors: str,
    out: np.ndarray | None = None,
    ngrams: Any = None,
) -> np.ndarray:
    """The fused C++ encode for any splitter/vocabulary pair (see Tokenizer.encode)."""
    from ._core import encode

    return encode(
        splitter,
        vocab,
        as_text_input(texts, errors),
        int_arg("maxlen", maxlen),
        padding,
        truncating,
        fill,
        np.dtype(dtype).name,
        int_arg("threads", threads),
        out,
        ngrams,
    )
