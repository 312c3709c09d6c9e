"""One shard's work, the same in both engines: read its segments, score them, write the
shard in one piece; and count what committed shards hold."""

from __future__ import annotations

import collections
import json
from collections.abc import Iterator
from typing import Any, NamedTuple

import numpy as np

from critic.data.readers import Batch, is_utf8, iter_batches
from critic.storage import Location, is_uri

from .layout import Segment, Shard, each
from .options import KEPT, MissingRows, ScoreError, ScoreOptions


class Cursors:
    """Open readers of inputs, each where the segment it last read ended. A segment that
    starts there is read on, so a Parquet row group holding several shards is decoded once,
    not again from its first row for every shard that starts inside it (for a file written
    as one row group, that made reading it quadratic). Keeps the ``size`` last used."""

    def __init__(self, size: int = 4) -> None:
        self.size = size
        # input -> (its batches, the row the next one starts at, their size)
        self._open: collections.OrderedDict[str, tuple[Iterator[Batch], int, int]] = (
            collections.OrderedDict()
        )

    def read(self, source: str | Location, segment: Segment, options) -> Batch | None:
        """The segment's rows of ``source`` (None when the input ends before them)."""
        key = str(source)
        batches, at, size = self._open.pop(key, (None, -1, 0))
        # Within an input only its first segment (starting mid-shard) and its last one are
        # short; a reader of whole shards yields the last one as it is.
        if batches is None or at != segment.start.row or segment.rows > size:
            if batches is not None:
                batches.close()
            batches, size = (
                iter_batches(
                    source,
                    segment.rows,
                    options.text_column,
                    options.id_column,
                    options.source_columns(),
                    start=segment.start,
                ),
                segment.rows,
            )
        batch = next(batches, None)
        if batch is None:
            batches.close()
            return None
        self._open[key] = (batches, segment.start.row + len(batch), size)
        while len(self._open) > self.size:
            _, (oldest, _, _) = self._open.popitem(last=False)
            oldest.close()
        return batch

    def close(self) -> None:
        for batches, _, _ in self._open.values():
            batches.close()
        self._open.clear()


def read_shard_input(
    inputs: dict[int, str | Location],
    offsets: dict[int, int],
    shard: Shard,
    options,
    cursors: Cursors | None = None,
):
    """One shard's rows ready for a scorer (:func:`shard_input` of each segment, joined):
    ``inputs`` and ``offsets`` map at least the shard's input numbers to the input and its
    first row across all inputs. ``cursors``: readers kept from the previous shards (a job
    reading its shards in order), else each segment is read afresh."""
    import pyarrow as pa

    own = cursors is None
    cursors = Cursors() if own else cursors

    def read(segment: Segment, readers: Cursors) -> tuple[int, Batch]:
        batch = readers.read(inputs[segment.input], segment, options)
        if batch is None or len(batch) != segment.rows:
            raise MissingRows(
                f"{inputs[segment.input]} changed while the job read it ({segment.rows} "
                f"rows expected from row {segment.start.row}, {len(batch or [])} read); "
                "score it again into a new --output"
            )
        return offsets[segment.input] + batch.start, batch

    def whole(segment: Segment) -> tuple[int, Batch]:
        readers = Cursors(1)
        try:
            return read(segment, readers)
        finally:
            readers.close()

    # The segments between a shard's first and last are whole inputs: on a store, many
    # small objects are read 16 at a time (each is a round trip or two), not in turn.
    middle = list(shard.segments[1:-1])
    on_store = len(middle) > 1 and is_uri(inputs[middle[0].input])
    try:
        if on_store:
            batches = [read(shard.segments[0], cursors)]
            batches += each(whole, middle, local=False)
            batches.append(read(shard.segments[-1], cursors))
        else:
            batches = [read(segment, cursors) for segment in shard.segments]
    finally:
        if own:
            cursors.close()
    if all(isinstance(b.texts, list) for _, b in batches):
        # Text formats: one batch of all the segments' rows (consecutive across the inputs,
        # so a row's position is still the first one's plus its index), converted at once.
        return shard_input(_joined([b for _, b in batches]), batches[0][0], options)
    tables = [shard_input(batch, position, options) for position, batch in batches]
    if len(tables) == 1:
        return tables[0]
    try:  # one chunk per column: a shard of many small inputs scores and writes faster
        return pa.concat_tables(tables, promote_options="permissive").combine_chunks()
    except (pa.ArrowInvalid, pa.ArrowTypeError) as e:
        names = ", ".join(str(inputs[s.input]) for s in shard.segments)
        raise ScoreError(
            f"the inputs {names} share shard {shard.number} but their columns do not match "
            f"({e}); give the kept columns one type in every input"
        ) from None


def _joined(batches: list[Batch]) -> Batch:
    """Batches of Python cells (text formats) as one, rows in order."""
    if len(batches) == 1:
        return batches[0]
    texts: list = []
    ids: list | None = [] if batches[0].ids is not None else None
    columns: dict[str, list] = {name: [] for name in batches[0].columns}
    errors: dict[int, str] = {}
    for batch in batches:
        errors.update({len(texts) + row: why for row, why in batch.errors.items()})
        texts.extend(batch.texts)
        if ids is not None:
            ids.extend(batch.ids)
        for name, values in batch.columns.items():
            columns[name].extend(values)
    return Batch(batches[0].start, texts, ids, columns, errors)


def shard_input(batch: Batch, position: int, options: ScoreOptions):
    """One shard ready for a scorer: ``text`` (valid text; empty where unreadable), ``_error``
    (why a row cannot be scored), ``id`` (text: the id column's value, else the row's
    position across the inputs) and the kept columns under their output names, prefixed with
    :data:`KEPT`. Both engines build shards here, so they write the same rows and the same
    error messages."""
    import pyarrow as pa

    errors = dict(batch.errors)
    if isinstance(batch.texts, list):
        texts = []
        for row, value in enumerate(batch.texts):
            text, error = (None, errors[row]) if row in errors else _as_text(value)
            texts.append(text or "")
            if error is not None:
                errors[row] = error
        text_array = pa.array(texts, type=pa.large_string())
    else:  # an Arrow string array (Parquet): only nulls can be bad
        for row in np.flatnonzero(batch.texts.is_null().to_numpy(zero_copy_only=False)):
            errors.setdefault(int(row), "text is null")
        text_array = batch.texts.fill_null("").cast(pa.large_string())
    if batch.ids is not None:
        ids = _string_column(batch.ids)
    else:
        ids = pa.array(np.arange(position, position + len(batch)).astype(str), type=pa.string())
    error_list = [errors.get(row) for row in range(len(batch))]
    columns = {"text": text_array, "_error": pa.array(error_list, type=pa.string()), "id": ids}
    for source, out in options.kept():
        columns[KEPT + out] = _string_column(batch.columns[source])
    return pa.table(columns)


def _string_column(values: Any):
    """A column of cells read from a text format as Arrow strings (one type per column:
    strings as they are, other JSON values as JSON); Arrow columns stay as they are."""
    import pyarrow as pa

    if not isinstance(values, list):
        return values
    return pa.array([_cell_text(v) for v in values], type=pa.string())


def _cell_text(value: Any) -> str | None:
    if value is None:
        return None
    if type(value) is int:  # the common id, written as JSON writes it, without json's cost
        return str(value)
    if not isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if is_utf8(value):
        return value
    return value.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def _as_text(value: Any) -> tuple[str | None, str | None]:
    if isinstance(value, str):
        return value, None
    if value is None:
        return None, "text is null"
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8"), None
        except UnicodeDecodeError as e:
            return None, f"text is not valid UTF-8 (byte {e.start})"
    return None, f"text is {type(value).__name__}, not a string"


def score_shard(runtime, shard):
    """The output table of one shard: id, probability, label, error, kept columns."""
    import pyarrow as pa

    probabilities, errors = runtime.score(shard.column("text").combine_chunks())
    for row, message in enumerate(shard.column("_error").to_pylist()):
        if message is not None:  # the reader's verdict comes first
            probabilities[row] = np.nan
            errors[row] = message
    failed = np.array([e is not None for e in errors], dtype=bool)
    scored = np.nan_to_num(probabilities)  # a failed row's NaN: any label, masked below
    labels = runtime.to_labels(scored).astype(object)
    labels[failed] = None
    kept = [c for c in shard.column_names if c.startswith(KEPT)]
    columns = {"id": shard.column("id")}
    if runtime.binary:  # P(labels[1]), as it always was
        columns["probability"] = pa.array(probabilities, mask=failed, type=pa.float32())
    else:  # the predicted class's probability, then every class's in label order
        top = runtime.top_probability(scored)
        columns["probability"] = pa.array(top, mask=failed, type=pa.float32())
    columns["label"] = pa.array(labels, type=pa.string())
    if not runtime.binary:
        columns["probabilities"] = _class_lists(probabilities, failed)
    columns["error"] = pa.array(errors, type=pa.string())
    columns.update({c.removeprefix(KEPT): shard.column(c) for c in kept})
    return pa.table(columns)


def _class_lists(probabilities: np.ndarray, failed: np.ndarray):
    """``list<float32>`` of each row's k class probabilities (null for a failed row)."""
    import pyarrow as pa

    n, k = probabilities.shape
    values = pa.array(np.ascontiguousarray(probabilities, dtype=np.float32).ravel())
    offsets = pa.array(np.arange(0, (n + 1) * k, k, dtype=np.int32))
    return pa.ListArray.from_arrays(offsets, values, mask=pa.array(failed))


def shard_bytes(table, fmt: str) -> bytes:
    """One output shard, serialized in memory (so it is committed in one piece)."""
    import pyarrow as pa

    if fmt == "jsonl":
        lines = (json.dumps(r, ensure_ascii=False) + "\n" for r in table.to_pylist())
        return "".join(lines).encode("utf-8")
    sink = pa.BufferOutputStream()
    if fmt == "parquet":
        import pyarrow.parquet as pq

        pq.write_table(table, sink)
    else:
        import pyarrow.csv as pacsv

        pacsv.write_csv(_lists_as_json(table), sink)
    return sink.getvalue().to_pybytes()


def _lists_as_json(table):
    """CSV has no lists: a list column (``probabilities``) is written as JSON text."""
    import pyarrow as pa

    for i, column in enumerate(table.schema):
        if pa.types.is_list(column.type):
            texts = [
                None if v is None else "[" + ", ".join(f"{x:.8g}" for x in v) + "]"
                for v in table.column(i).to_pylist()
            ]
            table = table.set_column(i, column.name, pa.array(texts, type=pa.string()))
    return table


class Written(NamedTuple):
    """A shard as its writer committed it: its rows, its rows with an error, its bytes."""

    rows: int
    errors: int
    size: int


def write_shard(table, path: Location, fmt: str) -> Written:
    """Commit one shard: visible complete under its final name, or not at all."""
    data = shard_bytes(table, fmt)
    path.write_atomic(data)
    return Written(table.num_rows, table.num_rows - table.column("error").null_count, len(data))


def count_output(
    output: Location, fmt: str, shards: list[str], known: dict[str, tuple[int, int]] | None = None
) -> tuple[int, int]:
    """Rows and rows with an error across the committed ``shards`` (file names): read from
    each shard, except those whose counts are ``known`` (by name)."""
    import pyarrow.compute as pc

    known = known or {}

    def count(name: str) -> tuple[int, int]:
        if name in known:
            return known[name]
        shard = output / name
        if fmt == "jsonl":
            lines = shard.read_text().splitlines()
            return len(lines), sum(json.loads(line)["error"] is not None for line in lines)
        if fmt == "parquet":  # the footer alone: rows, and the error column's nulls
            found = _parquet_counts(shard)
            if found is not None:
                return found
        column = read_shard_table(shard, fmt, ["error"]).column("error")
        return len(column), int(pc.sum(pc.is_valid(column)).as_py() or 0)

    counts = each(count, shards, output.is_local)
    return sum(rows for rows, _ in counts), sum(errors for _, errors in counts)


def _parquet_counts(shard: Location) -> tuple[int, int] | None:
    """A Parquet shard's rows and rows with an error from its footer (critic writes the
    error column's null counts), or None when the footer lacks them."""
    import pyarrow.parquet as pq

    meta = shard.retry(
        "reading its footer", lambda: pq.read_metadata(shard.path, filesystem=shard.fs)
    )
    leaves = [meta.schema.column(k).path for k in range(meta.num_columns)]
    if "error" not in leaves:
        return None
    column, errors = leaves.index("error"), 0
    for group in range(meta.num_row_groups):
        part = meta.row_group(group)
        stats = part.column(column).statistics
        if stats is None or not stats.has_null_count:
            return None
        errors += part.num_rows - stats.null_count
    return meta.num_rows, errors


def read_shard_table(shard: Location, fmt: str, columns: list[str] | None = None):
    """One committed shard (Parquet or CSV) as a table; on an object store the read is
    retried as a whole."""
    import pyarrow.dataset as ds

    return shard.retry(
        "reading it",
        lambda: ds.dataset(shard.path, format=fmt, filesystem=shard.fs).to_table(columns=columns),
    )
