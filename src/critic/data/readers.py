"""The one reader stack: every corpus format critic reads, in bounded batches, keeping every row.

A row that cannot be read (a broken JSON line, invalid UTF-8, a missing field, a short CSV
record) comes out with its error instead of disappearing; the caller decides whether an error
raises (training: :func:`read_columns`) or is kept as data (scoring: :func:`iter_batches`).

Formats (:data:`INPUT_FORMATS`, one detector :func:`input_format`): Parquet (pyarrow, texts
stay Arrow arrays), CSV/TSV, JSON Lines, plain text (one review per line) and aclImdb folders
(one review per file). A UTF-8 byte-order mark is dropped. One rule in every line format (CSV,
TSV, JSON Lines, plain text): a blank line (only whitespace) is not a row; errors still quote
the file's line numbers. A CSV record that breaks the quoting rules (a quote that never closes
swallows the rest of the file) is a row error, never silently merged text. Inputs are local
paths or storage URIs (:mod:`critic.storage`); every file is opened by :func:`open_binary` or
:func:`parquet_file`.
TF-free and Ray-free.
"""

from __future__ import annotations

import concurrent.futures
import csv
import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

try:  # in critic's serve and train installs; JSON Lines are read by json.loads without it
    import orjson as _orjson
except ImportError:  # pragma: no cover - the kernel-only install
    _orjson = None

from critic.data.footers import footer_key, keep_footer, kept_footer
from critic.kernels import CsvRows, CsvScan
from critic.storage import Location, location

Source = str | Path | Location  # a local path or a storage URI (see critic.storage)

INPUT_FORMATS = ("jsonl", "csv", "tsv", "parquet", "txt", "acl_imdb")
_SUFFIXES = {
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
    ".csv": "csv",
    ".tsv": "tsv",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".txt": "txt",
}
ACL_IMDB_CLASSES = ("neg", "pos", "unsup")
BOM = b"\xef\xbb\xbf"  # a UTF-8 byte-order mark (Excel's "CSV UTF-8"): not part of the text
HASH_CHUNK = 4 << 20  # bytes of lines a scan's sha256 takes at once, on a thread of its own
# The C++ scan and reader of CSV/TSV follow Python 3.11+'s csv module, which reads a NUL as text.
KERNEL_CSV = sys.version_info >= (3, 11)
READ_CHUNK = 1 << 20  # bytes of a CSV/TSV input the kernel's reader parses at once


class CorpusError(ValueError):
    """A corpus that cannot be read as asked (names the file and the row)."""


def folder_inputs(folder: Source) -> list[Location]:
    """The inputs a folder stands for: the folder itself when it is aclImdb-shaped (reviews
    in pos/neg/unsup folders), else every file in it (recursively, sorted) whose name gives
    its format, skipping hidden and ``_``-prefixed files (``_SUCCESS``, ``.crc``)."""
    folder = location(folder)
    files = folder.files()
    if any(f.name.endswith(".txt") and f.parent.name in ACL_IMDB_CLASSES for f in files):
        return [folder]
    found = [
        f
        for f in files
        if not any(part.startswith((".", "_")) for part in f.relative_to(folder).split("/"))
        and _suffix_format(f.name) is not None
    ]
    if not found:
        raise CorpusError(
            f"{folder}: no aclImdb reviews and no files of a known format "
            f"({', '.join(sorted(_SUFFIXES))}) in this folder"
        )
    return found


def _suffix_format(name: str) -> str | None:
    suffixes = ["." + s for s in name.lower().split(".")[1:]]
    for suffix in reversed(suffixes):
        if suffix in _SUFFIXES:
            return _SUFFIXES[suffix]
    return None


def input_format(path: Source, fmt: str | None = None) -> str:
    """``fmt`` when given, else the format of ``path``: a folder is aclImdb (see
    :func:`folder_inputs` for other folders); a file's suffix."""
    if fmt is not None:
        if fmt not in INPUT_FORMATS:
            raise CorpusError(f"unknown format {fmt!r}; expected one of {INPUT_FORMATS}")
        return fmt
    path = location(path)
    if path.is_dir():
        return "acl_imdb"
    if not path.exists():
        raise CorpusError(f"{path}: no such file or folder")
    found = _suffix_format(path.name)
    if found is not None:
        return found
    raise CorpusError(
        f"{path}: cannot tell the format from the name; pass one of {INPUT_FORMATS[:-1]}"
    )


def open_binary(path: Source) -> BinaryIO:
    """Open an input file for reading bytes (the one place a corpus file is opened)."""
    path = location(path)
    if not path.is_file():
        raise CorpusError(f"{path}: no such file")
    return path.open_input()


def parquet_file(path: Source):
    """A ``pyarrow.parquet.ParquetFile`` that reads without pre-buffering: with pyarrow's
    default the reader keeps what it has read and memory grows with the file (~0.8 GB extra at
    1M reviews); without it memory stays at about one row group."""
    try:
        import pyarrow.parquet as pq
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise CorpusError("reading Parquet needs pyarrow: pip install 'critic[arrow]'") from e
    path = location(path)
    if not path.is_file():
        raise CorpusError(f"{path}: no such file")
    key = footer_key(path)
    footer = kept_footer(key)
    try:
        if path.is_local:
            return pq.ParquetFile(path.path, filesystem=path.fs, pre_buffer=False)
        # Each range read retried; a footer read before is not read again.
        opened = pq.ParquetFile(path.open_raw(), metadata=footer, pre_buffer=False)
    except Exception as e:  # pyarrow's ArrowInvalid & co. do not name the file
        problem = str(e).splitlines()[0][:200] if str(e) else type(e).__name__
        raise CorpusError(f"{path}: not a readable Parquet file ({problem})") from None
    if footer is None:
        keep_footer(key, opened.metadata)
    return opened


def parquet_metadata(path: Source):
    """A Parquet input's footer (``pyarrow.parquet.FileMetaData``: rows, row groups, schema),
    read once per object version on an object store (:mod:`critic.data.footers`)."""
    path = location(path)
    footer = kept_footer(footer_key(path))
    return footer if footer is not None else parquet_file(path).metadata


@dataclass
class Batch:
    """Rows ``start .. start + len(texts)`` of one input, in input order. Cells are the
    values as stored (JSON values, CSV strings, Arrow arrays for Parquet)."""

    start: int
    texts: Any  # list (str / bytes / None / other) or a pyarrow array
    ids: Any = None  # id column values, when one was asked for
    columns: dict[str, Any] = field(default_factory=dict)  # kept columns
    errors: dict[int, str] = field(default_factory=dict)  # row in batch -> why unreadable

    def __len__(self) -> int:
        return len(self.texts)


def acl_imdb_files(folder: Source, classes: tuple[str, ...] = ACL_IMDB_CLASSES) -> list[Location]:
    """Review files of an aclImdb folder (or one of its splits): per split folder, the classes
    in ``classes`` order, each by numeric review id (the order training reads them in)."""
    folder = location(folder)
    files = [f for f in folder.files() if f.name.endswith(".txt") and f.parent.name in classes]
    if not files:
        raise CorpusError(f"{folder}: no aclImdb reviews ({{train,test}}/{{pos,neg}}/*.txt)")
    return sorted(
        files,
        key=lambda f: (f.parent.parent.path, classes.index(f.parent.name), _review_id(f.name)),
    )


def _review_id(name: str) -> tuple[int, str]:
    stem = name.rsplit(".", 1)[0]
    head = stem.split("_", 1)[0]
    return (int(head), stem) if head.isdigit() else (-1, stem)


@dataclass(frozen=True)
class Start:
    """Where a batch begins in its input without reading what comes before it: the row
    (0-based), the byte offset of that row (text formats) and the line of the file it starts
    on, which error messages quote."""

    row: int = 0
    offset: int = 0
    line: int = 1


def batch_starts(
    path: Source, batch_rows: int, fmt: str | None = None, phase: int = 0, digest=None
) -> tuple[list[Start], int]:
    """Where each batch of ``iter_batches(path, batch_rows)`` begins, and the rows in all
    (cheap: metadata, or one scan of the bytes). With ``phase`` p, the batches begin at row 0
    and at the rows r with ``r % batch_rows == p`` (the first one after row 0 is then p rows
    long): the cuts of batches counted across several inputs, this one starting mid-batch.
    ``digest`` (a hashlib object) is updated with every byte of a text input as the scan
    reads it, so a job fingerprints it without reading it again; Parquet leaves it as is."""
    if batch_rows < 1:
        raise ValueError(f"batch_rows must be >= 1, got {batch_rows}")
    if not 0 <= phase < batch_rows:
        raise ValueError(f"phase must be in [0, {batch_rows}), got {phase}")
    path = location(path)
    fmt = input_format(path, fmt)
    if fmt in ("parquet", "acl_imdb"):
        if fmt == "parquet":
            rows = parquet_metadata(path).num_rows
        else:
            rows = len(acl_imdb_files(path))
        cuts = [0, *range(phase or batch_rows, rows, batch_rows)] if rows else []
        return [Start(row) for row in cuts], rows
    if fmt in ("csv", "tsv"):
        scan = _csv_starts_kernel if KERNEL_CSV else _csv_starts_python
        return scan(path, fmt, batch_rows, phase, digest)
    starts, rows = [], 0
    with open_binary(path) as fh:
        offset = 0
        for number, raw in enumerate(_hashed(fh, digest), 1):
            if (raw.removeprefix(BOM) if number == 1 else raw).strip():  # blank: not a row
                if rows == 0 or rows % batch_rows == phase:
                    starts.append(Start(rows, offset, number))
                rows += 1
            offset += len(raw)
    return starts, rows


def _csv_starts_kernel(
    path: Location, fmt: str, batch_rows: int, phase: int, digest
) -> tuple[list[Start], int]:
    """:func:`batch_starts` of a CSV or TSV file by the C++ kernel's scan (``CsvScan``: the
    record boundaries of :func:`_csv_records`, at ~7x its speed), fed HASH_CHUNK bytes at a
    time with the GIL released, while a thread hashes the chunk the scan reads."""
    scan = CsvScan(*_csv_dialect(fmt), batch_rows, phase)
    hasher = _ChunkHasher(digest) if digest is not None else None
    with open_binary(path) as fh:
        try:
            while chunk := fh.read(HASH_CHUNK):
                if hasher is not None:
                    hasher.hash(chunk)
                scan.feed(chunk)
        finally:
            if hasher is not None:
                hasher.close(b"")
    scan.finish()
    return [Start(*start) for start in scan.starts], scan.rows


def _csv_starts_python(
    path: Location, fmt: str, batch_rows: int, phase: int, digest
) -> tuple[list[Start], int]:
    """:func:`batch_starts` of a CSV or TSV file read record by record with :func:`_csv_records`
    (Python 3.10, whose csv module ends a record at a NUL; and the kernel's reference)."""
    starts, rows = [], 0
    records = _csv_records(path, fmt, digest=digest)
    _, begin, lines = next(records, (None, 0, 0))  # the header
    line = 1 + lines
    for record, end, lines in records:
        if not _blank_record(record):
            if rows == 0 or rows % batch_rows == phase:
                starts.append(Start(rows, begin, line))
            rows += 1
        begin, line = end, line + lines
    return starts, rows


def _hashed(lines: Iterator[bytes], digest) -> Iterator[bytes]:
    """The lines of a binary file, each added to ``digest`` (if any) as it passes: gathered
    into chunks of HASH_CHUNK bytes that a thread of its own hashes while the scan reads on
    (hashlib lets go of the GIL for them), so a large file's scan and sha256 take two cores
    rather than one after the other. A file smaller than a chunk is hashed at the end, with
    no thread."""
    if digest is None:
        yield from lines
        return
    hasher = _ChunkHasher(digest)
    gathered: list[bytes] = []
    gather, size = gathered.append, 0
    try:
        for line in lines:
            gather(line)
            size += len(line)
            if size >= HASH_CHUNK:
                hasher.hash(b"".join(gathered))
                gathered.clear()
                size = 0
            yield line
    finally:
        hasher.close(b"".join(gathered))


class _ChunkHasher:
    """``digest.update`` of chunks in order: each one on a thread of its own while the caller
    reads on, once the next has come; the last one at :meth:`close`, on the caller's thread
    (a file of one chunk starts no thread)."""

    def __init__(self, digest) -> None:
        self._digest = digest
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None
        self._hashing: concurrent.futures.Future | None = None
        self._held = b""  # the latest chunk, not hashed yet

    def hash(self, chunk: bytes) -> None:
        if self._held:
            if self._hashing is not None:
                self._hashing.result()
            if self._pool is None:
                self._pool = concurrent.futures.ThreadPoolExecutor(1, "critic-hash")
            self._hashing = self._pool.submit(self._digest.update, self._held)
        self._held = chunk

    def close(self, rest: bytes) -> None:
        """Hash ``rest`` after every chunk; ``digest`` then holds them all."""
        try:
            if self._hashing is not None:
                self._hashing.result()
            self._digest.update(self._held)
            self._digest.update(rest)
        finally:
            if self._pool is not None:
                self._pool.shutdown()


def count_rows(path: Source, fmt: str | None = None) -> int:
    """Rows :func:`iter_batches` will yield (cheap: metadata or one scan of the bytes)."""
    return batch_starts(path, sys.maxsize, fmt)[1]


def iter_batches(
    path: Source,
    batch_rows: int,
    text_column: str = "text",
    id_column: str | None = None,
    keep: tuple[str, ...] = (),
    start: Start = Start(),
    fmt: str | None = None,
) -> Iterator[Batch]:
    """Batches of at most ``batch_rows`` rows, covering every row of ``path`` from ``start``
    (one of :func:`batch_starts`; default: the first row) once, in order.
    A missing column is a CorpusError before the first batch."""
    if batch_rows < 1:
        raise ValueError(f"batch_rows must be >= 1, got {batch_rows}")
    path = location(path)
    fmt = input_format(path, fmt)
    if fmt == "parquet":
        yield from _parquet(path, batch_rows, text_column, id_column, keep, start.row)
        return
    if fmt == "acl_imdb":
        if keep:
            raise CorpusError(f"{path}: an aclImdb folder has no columns to keep")
        files = acl_imdb_files(path)[start.row :]
        rows: Iterator[tuple[Any, dict, str | None]] = _acl_imdb(path, files, id_column)
    elif fmt == "txt":
        if keep or id_column:
            raise CorpusError(f"{path}: a plain-text corpus has no id or other columns")
        rows = _txt(path, start)
    else:
        wanted = [c for c in (text_column, id_column, *keep) if c]
        if fmt in ("csv", "tsv") and KERNEL_CSV:
            yield from _csv_batches(path, fmt, wanted, start, batch_rows, id_column, keep)
            return
        if fmt in ("csv", "tsv"):
            rows = _csv(path, fmt, wanted, start)
        else:
            rows = _jsonl(path, wanted, start)
    yield from _batched(rows, batch_rows, id_column, keep, start.row)


def check_columns(
    path: Source,
    text_column: str = "text",
    id_column: str | None = None,
    keep: tuple[str, ...] = (),
    fmt: str | None = None,
) -> None:
    """The CorpusError :func:`iter_batches` would raise before its first batch, if any:
    Parquet's schema, a CSV file's header, the columns a format cannot have. JSON Lines
    fields are checked row by row (a row without the text is an error row), so a JSON Lines
    file is not opened: checking many small files costs no read of each."""
    path = location(path)
    fmt = input_format(path, fmt)
    if fmt == "jsonl" or (fmt == "txt" and not (keep or id_column)):
        return
    if fmt == "parquet":  # the schema alone: reading a row would fetch a column chunk
        _parquet_columns(
            path, parquet_metadata(path).schema.to_arrow_schema(), text_column, id_column, keep
        )
        return
    next(iter_batches(path, 1, text_column, id_column, keep, fmt=fmt), None)


def read_columns(
    path: Source,
    text_column: str = "text",
    columns: tuple[str, ...] = (),
    id_column: str | None = None,
    fmt: str | None = None,
) -> dict[str, list]:
    """Every text of ``path`` (under ``text_column``), the named columns and the ids, in file
    order, for training: the first unreadable row, or a text that is not a string, is a
    CorpusError naming the file and row."""
    out: dict[str, list] = {c: [] for c in (text_column, *columns, id_column) if c}
    for batch in iter_batches(path, 65_536, text_column, id_column, columns, fmt=fmt):
        if batch.errors:
            raise CorpusError(f"{path}: {batch.errors[min(batch.errors)]}")
        texts = _pylist(batch.texts)
        for i, text in enumerate(texts):
            if not isinstance(text, str):
                kind = "null" if text is None else type(text).__name__
                raise CorpusError(f"{path}: row {batch.start + i}: {text_column!r} is {kind}")
        out[text_column].extend(texts)
        for c in columns:
            out[c].extend(_pylist(batch.columns[c]))
        if id_column:
            out[id_column].extend(_pylist(batch.ids))
    return out


def read_texts(path: Source, text_column: str = "text", fmt: str | None = None) -> list[str]:
    """All texts of one file (or aclImdb folder), in file order; see :func:`read_columns`."""
    return read_columns(path, text_column, fmt=fmt)[text_column]


def _pylist(values: Any) -> list:
    return values if isinstance(values, list) else values.to_pylist()


def _batched(rows, batch_rows, id_column, keep, start: int) -> Iterator[Batch]:
    """(text, {column: value}, error) rows -> Batches of exactly batch_rows (the last: fewer)."""
    batch = Batch(start, [], [] if id_column else None, {c: [] for c in keep})
    for text, cells, error in rows:
        if error is not None:
            batch.errors[len(batch.texts)] = error
        batch.texts.append(text)
        if id_column:
            batch.ids.append(cells.get(id_column))
        for c in keep:
            batch.columns[c].append(cells.get(c))
        if len(batch.texts) == batch_rows:
            yield batch
            start += batch_rows
            batch = Batch(start, [], [] if id_column else None, {c: [] for c in keep})
    if batch.texts:
        yield batch


def _txt(path: Location, start: Start):
    with open_binary(path) as fh:
        fh.seek(start.offset)
        for n, raw in enumerate(fh, start.line):
            line = raw.rstrip(b"\r\n")
            if n == 1:
                line = line.removeprefix(BOM)
            if not line.strip():
                continue  # a blank line is not a row
            try:
                yield line.decode("utf-8"), {}, None
            except UnicodeDecodeError as e:
                yield None, {}, f"line {n} is not valid UTF-8 (byte {e.start})"


def _acl_imdb(folder: Location, files: list[Location], id_column: str | None):
    """One review per file; with an id column asked for, the id is the file's path."""
    for p in files:
        rel = p.relative_to(folder)
        cells = {id_column: rel} if id_column else {}
        with open_binary(p) as fh:
            data = fh.read()
        try:
            yield data.decode("utf-8"), cells, None
        except UnicodeDecodeError as e:
            yield None, cells, f"{rel} is not valid UTF-8 (byte {e.start})"


def _jsonl(path: Location, wanted: list[str], start: Start):
    text_column = wanted[0]
    with open_binary(path) as fh:
        fh.seek(start.offset)
        for n, raw in enumerate(fh, start.line):
            if n == 1:
                raw = raw.removeprefix(BOM)
            if not raw.strip():
                continue
            record = _fast_record(raw, wanted)
            checked = record is not None  # orjson's strings are valid UTF-8
            if record is None:
                try:  # surrogateescape: invalid UTF-8 in one field must not cost the row its id
                    record = json.loads(raw.decode("utf-8", "surrogateescape"))
                except json.JSONDecodeError as e:
                    yield None, {}, f"line {n} is not valid JSON ({e.msg})"
                    continue
            if not isinstance(record, dict):
                yield None, {}, f"line {n} is not a JSON object"
                continue
            cells = {c: record.get(c) for c in wanted[1:]}
            text = record.get(text_column)
            if text_column not in record:
                yield None, cells, f"line {n} has no field {text_column!r}"
            elif isinstance(text, str) and not checked and not is_utf8(text):
                yield None, cells, f"line {n}: field {text_column!r} is not valid UTF-8"
            else:
                yield text, cells, None


def _fast_record(raw: bytes, wanted: list[str]) -> dict | None:
    """A JSON line's object by orjson (~2.4x json.loads here), when that is what json.loads
    reads too; None otherwise, and json.loads reads the line: what orjson refuses (invalid
    UTF-8, a lone surrogate escape, NaN, 1e400, a nesting over 1,024) and what it reads
    otherwise (an integer beyond 64 bits comes back as a float), so values and error messages
    stay json's. Only the wanted fields are asked: strings, integers, booleans, nulls and
    floats under 2**63 come out of both alike; anything else is read again by json."""
    if _orjson is None:
        return None
    try:
        record = _orjson.loads(raw)
    except _orjson.JSONDecodeError:
        return None
    if type(record) is not dict:
        return None
    for column in wanted:
        kind = type(value := record.get(column))
        if kind is float:
            if not -(2.0**63) < value < 2.0**63:
                return None
        elif kind is not str and kind is not int and kind is not bool and value is not None:
            return None
    return record


class BrokenRecord(str):
    """A CSV record that cannot be read as one; the str says why."""


def _csv_records(path: Location, fmt: str, offset: int = 0, digest=None):
    """(record, byte offset just past it, the lines it takes) from ``offset`` on. Lines end
    at LF, CR or CRLF as with ``open(newline="")``; invalid UTF-8 survives as surrogates
    (reported per row). CSV is parsed strictly: a quote inside an unquoted field is text, but
    a closing quote must be followed by the delimiter or the end of the line, so a stray
    opening quote cannot swallow the following lines into one field (TSV keeps Python's
    tolerant parsing). A record the csv module refuses, or whose quote never closes, comes as
    a BrokenRecord. ``digest``: as in :func:`batch_starts`."""
    csv.field_size_limit(sys.maxsize)
    end = offset
    quotes = lines_read = 0  # since the last record
    at_eof = False

    def lines():
        nonlocal end, quotes, lines_read, at_eof
        with open_binary(path) as fh:
            fh.seek(offset)
            for raw in _hashed(fh, digest):
                for line in raw.splitlines(keepends=True):
                    end += len(line)
                    if end == len(line):  # the file's first line: no byte-order mark
                        line = line.removeprefix(BOM)
                    quotes += line.count(b'"')
                    lines_read += 1
                    yield line.decode("utf-8", "surrogateescape")
        at_eof = True

    # csv.reader takes a line only when the record it is reading needs it, so ``end`` is
    # where the record just returned ends.
    delimiter, strict = _csv_dialect(fmt)
    reader = csv.reader(lines(), delimiter=delimiter, strict=strict)
    while True:
        try:
            record = next(reader)
        except StopIteration:
            return
        except csv.Error as e:
            record = BrokenRecord(str(e))
        if at_eof and lines_read > 1 and quotes % 2:
            record = BrokenRecord(
                f"a quoted field never closes: the {lines_read} lines to the end of the file "
                "are inside it"
            )
        taken, quotes, lines_read = lines_read, 0, 0
        yield record, end, taken


def _csv_dialect(fmt: str) -> tuple[str, bool]:
    """(delimiter, strict) of ``fmt``: CSV strictly (a CSV writer quotes a field that holds a
    quote); TSV as tolerantly as Python's csv, since TSV files usually hold raw text whose
    quotes are not quoting. Python's csv reader and the kernel's take the same two."""
    return ("\t", False) if fmt == "tsv" else (",", True)


def _blank_record(record: list[str] | BrokenRecord) -> bool:
    """A record read from a line holding only whitespace (or nothing)."""
    return isinstance(record, list) and (not record or (len(record) == 1 and not record[0].strip()))


def _csv_header(path: Location, fmt: str, wanted: list[str]) -> tuple[list[str], int, list[int]]:
    """The header of a CSV/TSV input, the lines it takes and the index of each wanted column
    in it; a CorpusError when it is broken or lacks one."""
    header, _, header_lines = next(_csv_records(path, fmt), ([], 0, 0))
    if isinstance(header, BrokenRecord):
        raise CorpusError(f"{path}: the header line is not valid CSV ({header})")
    missing = [c for c in wanted if c not in header]
    if missing:
        raise CorpusError(f"{path}: no column {missing[0]!r} (have {_short(header)})")
    return header, header_lines, [header.index(c) for c in wanted]


def _csv_batches(
    path: Location, fmt: str, wanted: list[str], start: Start, batch_rows: int, id_column, keep
) -> Iterator[Batch]:
    """:func:`iter_batches` of a CSV/TSV input read by the C++ kernel (``CsvRows``: the rows,
    cells and error messages of :func:`_csv`, parsed with the GIL released)."""
    header, _, where = _csv_header(path, fmt, wanted)
    rows = CsvRows(
        *_csv_dialect(fmt),
        start.offset == 0,
        start.line if start.offset else 1,
        len(header),
        where,
        f"column {wanted[0]!r} is not valid UTF-8",
    )
    row = start.row

    def batch(limit: int) -> Batch:
        texts, cells, errors = rows.take(limit)
        named = dict(zip(wanted[1:], cells, strict=True))
        columns = {c: named[c] for c in keep}
        return Batch(row, texts, named[id_column] if id_column else None, columns, errors)

    with open_binary(path) as fh:
        fh.seek(start.offset)
        while chunk := fh.read(READ_CHUNK):
            rows.feed(chunk)
            while rows.pending >= batch_rows:
                yield batch(batch_rows)
                row += batch_rows
    rows.finish()
    while rows.pending:
        yield batch(batch_rows)
        row += batch_rows


def _csv(path: Location, fmt: str, wanted: list[str], start: Start):
    """(text, cells, error) of each row of a CSV/TSV input from ``start``, read record by
    record with :func:`_csv_records` (Python 3.10; and :func:`_csv_batches`' reference)."""
    header, header_lines, where = _csv_header(path, fmt, wanted)
    records = _csv_records(path, fmt, start.offset)
    line = start.line
    if start.offset == 0:
        next(records, None)  # the header
        line = 1 + header_lines
    for row, _, lines in records:
        n, line = line, line + lines
        if _blank_record(row):
            continue  # a blank line is not a row
        if isinstance(row, BrokenRecord):
            span = f"line {n}" if lines == 1 else f"lines {n}-{n + lines - 1}"
            yield None, {}, f"{span}: not one valid CSV record ({row})"
            continue
        if len(row) != len(header):
            yield None, {}, f"line {n}: {len(row)} fields, the header has {len(header)}"
            continue
        cells = {c: row[i] for c, i in zip(wanted[1:], where[1:], strict=True)}
        text = row[where[0]]
        if not is_utf8(text):
            yield None, cells, f"line {n}: column {wanted[0]!r} is not valid UTF-8"
            continue
        yield text, cells, None


def _short(values: list, limit: int = 200) -> str:
    """A header for an error message: a binary file's 'header' can be kilobytes of garbage."""
    text = repr(values)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def is_utf8(text: str) -> bool:
    """False for a string holding surrogates (invalid UTF-8 read with surrogateescape)."""
    if text.isascii():  # a flag of the string: no scan
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _parquet_columns(path, schema, text_column, id_column, keep) -> list[str]:
    """The columns a Parquet read asks of ``schema``; a CorpusError when one is missing or
    the id column cannot hold ids."""
    import pyarrow as pa

    names = schema.names
    wanted = list(dict.fromkeys(c for c in (text_column, id_column, *keep) if c))
    missing = [c for c in wanted if c not in names]
    if missing:
        raise CorpusError(f"{path}: no column {missing[0]!r} (have {_short(names)})")
    if id_column:
        kind = schema.field(id_column).type
        if pa.types.is_nested(kind) or pa.types.is_dictionary(kind):
            raise CorpusError(
                f"{path}: id column {id_column!r} is {kind}; an id must be text or a number"
            )
    return wanted


def _parquet(path, batch_rows, text_column, id_column, keep, start: int) -> Iterator[Batch]:
    import pyarrow as pa

    pf = parquet_file(path)
    wanted = _parquet_columns(path, pf.schema_arrow, text_column, id_column, keep)
    # Read from the row group that holds row ``start``; skip the rows before it.
    group, skip = 0, start
    while group < pf.num_row_groups and skip >= pf.metadata.row_group(group).num_rows:
        skip -= pf.metadata.row_group(group).num_rows
        group += 1
    groups = range(group, pf.num_row_groups)
    pending, have = [], 0
    for rb in pf.iter_batches(batch_size=batch_rows, row_groups=groups, columns=wanted):
        if skip:
            cut = min(skip, rb.num_rows)
            rb, skip = rb.slice(cut), skip - cut
            if not rb.num_rows:
                continue
        pending.append(rb)
        have += rb.num_rows
        while have >= batch_rows:  # exact batch_rows per batch, whatever the row groups
            table = pa.Table.from_batches(pending)
            yield _arrow_batch(table.slice(0, batch_rows), start, text_column, id_column, keep)
            rest = table.slice(batch_rows)
            pending, have, start = rest.to_batches(), rest.num_rows, start + batch_rows
    if have:
        yield _arrow_batch(pa.Table.from_batches(pending), start, text_column, id_column, keep)


def _arrow_batch(table, start: int, text_column: str, id_column, keep) -> Batch:
    import pyarrow as pa
    import pyarrow.compute as pc

    texts = table.column(text_column).combine_chunks()
    if not (pa.types.is_string(texts.type) or pa.types.is_large_string(texts.type)):
        texts = texts.to_pylist()  # binary or non-text: checked row by row downstream
    ids = pc.cast(table.column(id_column), "string") if id_column else None
    return Batch(start, texts, ids, {c: table.column(c) for c in keep})
