"""Keras' ``pad_sequences``, with a C++ fast path for lists of int lists."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from . import _core
from .text_input import int_arg


def pad_sequences(
    sequences: Sequence[Sequence[int]],
    maxlen: int | None = None,
    dtype: Any = "int32",
    padding: str = "pre",
    truncating: str = "pre",
    value: Any = 0.0,
    *,
    threads: int | None = None,
) -> np.ndarray:
    """Pad (or truncate) sequences to a ``[len(sequences), maxlen]`` array, as Keras does.

    ``padding`` / ``truncating``: ``'pre'`` or ``'post'``; ``maxlen=None`` uses the longest
    sequence; ``value`` is cast to ``dtype`` as numpy casts it. Lists of lists of ints into
    int32/int64 run in C++; anything else (numpy rows, other dtypes, multi-dimensional
    samples) takes a numpy path with the same results and errors as Keras.
    """
    if padding not in ("pre", "post"):
        raise ValueError(f'Padding type "{padding}" not understood')
    if truncating not in ("pre", "post"):
        raise ValueError(f'Truncating type "{truncating}" not understood')
    if not hasattr(sequences, "__len__"):
        raise ValueError("`sequences` must be iterable.")
    maxlen, threads = int_arg("maxlen", maxlen), int_arg("threads", threads)
    dt = np.dtype(dtype) if dtype is not object else None
    fast = dt is not None and dt.name in ("int32", "int64") and maxlen != 0 and len(sequences)
    if fast and not isinstance(value, str):
        fill = int(np.full((), value, dtype=dt))
        out = _core.pad(sequences, maxlen, padding, truncating, fill, dt.name, threads)
        if out is not None:
            return out
    return _pad_general(sequences, maxlen, dtype, padding, truncating, value)


def _pad_general(
    sequences: Sequence[Any],
    maxlen: int | None,
    dtype: Any,
    padding: str,
    truncating: str,
    value: Any,
) -> np.ndarray:
    """The numpy path: any element type, dtype or sample shape."""
    lengths = []
    sample_shape: tuple[int, ...] = ()
    found = False
    for x in sequences:
        try:
            lengths.append(len(x))
            if not found and len(x):
                sample_shape = np.asarray(x).shape[1:]
                found = True
        except TypeError as e:
            raise ValueError(
                f"`sequences` must be a list of iterables. Found non-iterable: {x}"
            ) from e
    if maxlen is None:
        maxlen = int(np.max(lengths))
    is_str = dtype is not object and np.issubdtype(dtype, np.str_)
    if isinstance(value, str) and dtype is not object and not is_str:
        raise ValueError(
            f"`dtype` {dtype} is not compatible with `value`'s type: {type(value)}\n"
            "You should set `dtype=object` for variable length strings."
        )
    x = np.full((len(lengths), maxlen, *sample_shape), value, dtype=dtype)
    for idx, s in enumerate(sequences):
        if not len(s):
            continue
        trunc = s[-maxlen:] if truncating == "pre" else s[:maxlen]
        trunc = np.asarray(trunc, dtype=dtype)
        if trunc.shape[1:] != sample_shape:
            raise ValueError(
                f"Shape of sample {trunc.shape[1:]} of sequence at position {idx} "
                f"is different from expected shape {sample_shape}"
            )
        if padding == "post":
            x[idx, : len(trunc)] = trunc
        else:
            x[idx, -len(trunc) :] = trunc
    return x
