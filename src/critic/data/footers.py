"""Parquet footers of object-store inputs, kept while a process runs: a job reads an input's
footer for its column check, for its layout and for its read, and on an object store each
read is a request. A footer is kept under the object's URI and ETag, so a rewritten object
is read afresh, and only for an object whose ETag a listing or lookup gave (local files
are cheap to read again). At most :data:`KEPT_BYTES` of footers are kept, the least
recently used going first."""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

from critic.storage import Location

KEPT_BYTES = 64 << 20  # a one-row-group footer is a few KB: thousands of inputs fit

_kept: OrderedDict[tuple[str, str], tuple[Any, int]] = OrderedDict()
_lock = threading.Lock()
_held = 0  # bytes of the kept footers


def footer_key(path: Location) -> tuple[str, str] | None:
    """What a footer of ``path`` is kept under, or None when it is not kept."""
    if path.is_local or path.listed is None or not path.listed.etag:
        return None
    return path.uri, path.listed.etag


def kept_footer(key: tuple[str, str] | None):
    """The footer (a pyarrow FileMetaData) kept under ``key``, or None."""
    if key is None:
        return None
    with _lock:
        found = _kept.get(key)
        if found is None:
            return None
        _kept.move_to_end(key)
        return found[0]


def keep_footer(key: tuple[str, str] | None, metadata) -> None:
    """Keep ``metadata`` under ``key`` (nothing when ``key`` is None or it is too large)."""
    global _held
    size = int(metadata.serialized_size)
    if key is None or size > KEPT_BYTES:
        return
    with _lock:
        if key in _kept:
            return
        _kept[key] = (metadata, size)
        _held += size
        while _held > KEPT_BYTES:
            _, (_, dropped) = _kept.popitem(last=False)
            _held -= dropped


def forget_footers() -> None:
    """Drop every kept footer."""
    global _held
    with _lock:
        _kept.clear()
        _held = 0
