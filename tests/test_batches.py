"""critic.data.readers: reading from any batch start gives exactly the batches of a full pass."""

from __future__ import annotations

import csv
import io
import itertools
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from critic.data.readers import (
    BOM,
    CorpusError,
    _csv_records,
    batch_starts,
    check_columns,
    count_rows,
    iter_batches,
    read_texts,
)

TRICKY = [
    "A plain review.",
    'She said "great", then left.',
    "Line one\nline two, with a comma",
    "Windows\r\nline ending inside",
    "",
    "caf\u00e9 \u2014 \u6f22\u5b57 \U0001f600",
]


def _as_dicts(batch) -> dict:
    def plain(values):
        return values if values is None or isinstance(values, list) else values.to_pylist()

    return {
        "start": batch.start,
        "texts": plain(batch.texts),
        "ids": plain(batch.ids),
        "columns": {k: plain(v) for k, v in batch.columns.items()},
        "errors": batch.errors,
    }


def _check_every_start(path: Path, batch_rows: int, **columns) -> int:
    """Every batch read from its start equals the same batch of one full pass."""
    full = [_as_dicts(b) for b in iter_batches(path, batch_rows, **columns)]
    starts, rows = batch_starts(path, batch_rows)
    assert rows == count_rows(path)
    assert rows == sum(len(b["texts"]) for b in full)
    assert [s.row for s in starts] == [b["start"] for b in full]
    for start, expected in zip(starts, full, strict=True):
        first = next(iter_batches(path, batch_rows, start=start, **columns))
        assert _as_dicts(first) == expected, start
    return rows


def _csv_file(path: Path, newline: str, delimiter: str = ",") -> None:
    with open(path, "w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh, delimiter=delimiter, lineterminator=newline)
        writer.writerow(["id", "text", "stars"])
        for i in range(23):
            writer.writerow([f"r{i}", TRICKY[i % len(TRICKY)], i % 5])


@pytest.mark.parametrize("newline", ["\n", "\r\n", "\r"])
@pytest.mark.parametrize("batch_rows", [1, 4, 7, 100])
def test_csv_from_every_start(tmp_path, newline, batch_rows):
    path = tmp_path / "reviews.csv"
    _csv_file(path, newline)
    with open(path, "ab") as fh:  # broken rows keep their place and their line number
        fh.write(b'r23,"caf\xe9 bad",1' + newline.encode() + b"r24,too,many,fields" + b"\n")
    rows = _check_every_start(path, batch_rows, id_column="id", keep=("stars",))
    assert rows == 25
    errors = {}
    for b in iter_batches(path, 10, id_column="id", keep=("stars",)):
        errors.update({b.start + k: v for k, v in b.errors.items()})
    assert errors == {  # the file's own line numbers (some texts span several lines)
        23: "line 33: column 'text' is not valid UTF-8",
        24: "line 34: 4 fields, the header has 3",
    }


def test_tsv_from_every_start(tmp_path):
    path = tmp_path / "reviews.tsv"
    _csv_file(path, "\n", delimiter="\t")
    assert _check_every_start(path, 5, id_column="id") == 23


@pytest.mark.parametrize("newline", [b"\n", b"\r\n", b"\r", b"\r\r\n"])
def test_csv_records_match_pythons_csv_module(tmp_path, newline):
    """The byte-tracking reader splits records as csv.reader over open(newline="") does."""
    path = tmp_path / "reviews.csv"
    lines = [b"id,text", b'1,"quoted\nnewline"', b'2,"quoted\r\nCRLF"', b"3,caf\xe9", b"4,", b""]
    path.write_bytes(newline.join(lines) + b'5,"last, no newline"')
    with open(path, encoding="utf-8", errors="surrogateescape", newline="") as fh:
        expected = list(csv.reader(fh))
    records = list(_csv_records(path, "csv"))
    assert [r for r, *_ in records] == expected
    assert records[-1][1] == path.stat().st_size
    if newline != b"\r\r\n":  # (that one ends two lines: CR, then CRLF)
        assert [lines for *_, lines in records] == [1, 2, 2, 1, 1, 1]  # the lines each takes
    for (_, end, _), (record, *_) in itertools.pairwise(records):  # an end is the next's start
        assert next(_csv_records(path, "csv", end))[0] == record


@pytest.mark.parametrize("batch_rows", [1, 3, 50])
def test_jsonl_from_every_start(tmp_path, batch_rows):
    path = tmp_path / "reviews.jsonl"
    lines = [json.dumps({"id": i, "text": TRICKY[i % len(TRICKY)]}).encode() for i in range(17)]
    lines[4] = b"not json"
    lines[9] = b'{"id": 9, "text": "caf\xe9"}'
    lines.insert(6, b"   ")  # blank lines are not rows
    lines.insert(12, b"")
    path.write_bytes(b"\n".join(lines))  # and no newline at the end
    assert _check_every_start(path, batch_rows, id_column="id") == 17
    errors = [e for b in iter_batches(path, 100, id_column="id") for e in b.errors.values()]
    assert errors == [  # line numbers count the blank lines too
        "line 5 is not valid JSON (Expecting value)",
        "line 11: field 'text' is not valid UTF-8",
    ]


@pytest.mark.parametrize("batch_rows", [1, 2, 5])
def test_text_from_every_start(tmp_path, batch_rows):
    path = tmp_path / "reviews.txt"
    path.write_bytes(b"Good.\n\nbad \xff byte\r\nFine film\n \t \nDull.")
    assert _check_every_start(path, batch_rows) == 4  # blank lines are not rows
    errors = [e for b in iter_batches(path, 100) for e in b.errors.values()]
    assert errors == ["line 3 is not valid UTF-8 (byte 4)"]  # the file's line numbers


@pytest.mark.parametrize("batch_rows", [1, 2, 5])
def test_a_quote_that_never_closes_is_an_error_not_merged_text(tmp_path, batch_rows):
    """Row 2's quote never closes: without strict parsing it swallowed rows 3-6 into one
    text and the file scored as 2 good rows."""
    path = tmp_path / "reviews.csv"
    path.write_text(
        'id,text\n1,a great movie\n2,"this quote never closes\n3,another review\n'
        "4,yet another\n5,fifth\n6,sixth\n",
        encoding="utf-8",
    )
    assert _check_every_start(path, batch_rows, id_column="id") == 2
    batches = list(iter_batches(path, 100, id_column="id"))
    assert batches[0].texts[0] == "a great movie"
    assert batches[0].errors == {
        1: "lines 3-7: not one valid CSV record (a quoted field never closes: the 5 lines to "
        "the end of the file are inside it)"
    }
    with pytest.raises(CorpusError, match="lines 3-7: not one valid CSV record"):
        read_texts(path)


@pytest.mark.parametrize("batch_rows", [1, 2, 5])
def test_a_stray_quote_cannot_swallow_the_next_rows(tmp_path, batch_rows):
    """Row 1's quote closes on line 4, inside row 3: tolerant parsing read lines 2-4 as row
    1's text and scored 2 rows with 0 errors. Strict: a closing quote must be followed by the
    delimiter or the end of the line, so lines 2-4 are one broken record, named, and row 4
    is itself."""
    path = tmp_path / "reviews.csv"
    path.write_text('id,text\n1,"good film\n2,bad film\n3,"fine"\n4,ok\n', encoding="utf-8")
    assert _check_every_start(path, batch_rows, id_column="id") == 2
    (batch,) = iter_batches(path, 100, id_column="id")
    assert batch.errors == {0: "lines 2-4: not one valid CSV record (',' expected after '\"')"}
    assert batch.texts[1] == "ok" and batch.ids[1] == "4"


def test_stray_quotes_inside_a_record_stay_text(tmp_path):
    """A quote inside an unquoted field is text, even an odd one; after a closing quote only
    the delimiter or the end of the line may follow, else the record is an error row."""
    path = tmp_path / "reviews.csv"
    path.write_text(
        'id,text\n1,good\n2,"closed"then more\n3,He said "hi\n4,"multi\nline"\n5,last "one',
        encoding="utf-8",
    )
    assert count_rows(path) == 5
    (batch,) = iter_batches(path, 10, id_column="id")
    assert batch.texts[:3] == ["good", None, 'He said "hi']
    assert batch.texts[3:] == ["multi\nline", 'last "one']
    assert batch.errors == {1: "line 3: not one valid CSV record (',' expected after '\"')"}


@pytest.mark.parametrize("batch_rows", [7, 10, 25, 1000])
def test_parquet_from_every_start(tmp_path, batch_rows):
    path = tmp_path / "reviews.parquet"
    n = 103
    table = pa.table(
        {
            "id": [f"r{i}" for i in range(n)],
            "text": [None if i == 50 else TRICKY[i % len(TRICKY)] for i in range(n)],
            "stars": list(range(n)),
        }
    )
    pq.write_table(table, path, row_group_size=10)  # groups that batches cut across
    assert pq.ParquetFile(path).num_row_groups == 11
    assert _check_every_start(path, batch_rows, id_column="id", keep=("stars",)) == n


def test_acl_imdb_from_every_start(tmp_path):
    for split, label, k in [("train", "pos", 3), ("train", "neg", 2), ("test", "pos", 4)]:
        folder = tmp_path / "aclImdb" / split / label
        folder.mkdir(parents=True)
        for i in range(k):
            (folder / f"{i}_7.txt").write_text(TRICKY[i], encoding="utf-8")
    (tmp_path / "aclImdb" / "test" / "pos" / "9_1.txt").write_bytes(b"\xffbad")
    assert _check_every_start(tmp_path / "aclImdb", 2, id_column="id") == 10


def test_empty_inputs_have_no_batches(tmp_path):
    for name, data in [("a.txt", b""), ("a.jsonl", b"\n\n"), ("a.csv", b"id,text\n")]:
        path = tmp_path / name
        path.write_bytes(data)
        assert batch_starts(path, 10) == ([], 0)
        assert list(iter_batches(path, 10)) == []


def test_csv_reader_is_the_standard_one_on_real_quoting(tmp_path):
    """Python's csv writer output round-trips through the offset reader unchanged."""
    rows = [["id", "text"]] + [[str(i), t] for i, t in enumerate(TRICKY * 3)]
    buf = io.StringIO(newline="")
    csv.writer(buf).writerows(rows)
    path = tmp_path / "r.csv"
    path.write_text(buf.getvalue(), encoding="utf-8", newline="")
    assert [r for r, *_ in _csv_records(path, "csv")] == rows


def test_blank_lines_are_not_rows_in_any_line_format(tmp_path):
    """One rule for every line format: a line of only whitespace is not a row (it made an
    error row in CSV and a confidently scored empty review in plain text)."""
    csv_path = tmp_path / "a.csv"
    csv_path.write_text("id,text\n1,good\n\n   \n2,bad\n\t\n", encoding="utf-8")
    jsonl_path = tmp_path / "a.jsonl"
    jsonl_path.write_text('{"id": 1, "text": "good"}\n\n  \n{"id": 2, "text": "bad"}\n\n')
    txt_path = tmp_path / "a.txt"
    txt_path.write_bytes(BOM + b"\ngood\n \n\nbad\n\t\n")
    for path in (csv_path, jsonl_path, txt_path):
        assert count_rows(path) == 2
        (batch,) = iter_batches(path, 10, id_column=None if path == txt_path else "id")
        assert batch.texts == ["good", "bad"] and not batch.errors
    assert read_texts(csv_path) == read_texts(jsonl_path) == read_texts(txt_path)


def test_training_and_scoring_read_acl_imdb_in_one_order(tmp_path):
    """One aclImdb walk: neg then pos (then unsup), each by numeric review id."""
    from critic.data.datasets import read_acl_imdb

    for label in ("neg", "pos", "unsup"):
        for review in (10, 2, 1):
            folder = tmp_path / "aclImdb" / "train" / label
            folder.mkdir(parents=True, exist_ok=True)
            (folder / f"{review}_7.txt").write_text(f"{label} {review}", encoding="utf-8")
    trained = read_acl_imdb(tmp_path, "train")
    assert trained.texts == [f"{c} {r}" for c in ("neg", "pos") for r in (1, 2, 10)]
    assert trained.labels.tolist() == [0, 0, 0, 1, 1, 1]
    (batch,) = iter_batches(tmp_path / "aclImdb" / "train", 100, id_column="path")
    assert batch.texts == [*trained.texts, "unsup 1", "unsup 2", "unsup 10"]
    assert batch.ids[:2] == ["neg/1_7.txt", "neg/2_7.txt"]


def test_read_columns_raises_on_the_first_bad_row_that_scoring_keeps(tmp_path):
    path = tmp_path / "a.jsonl"
    path.write_text('{"text": "ok"}\n{"text": "fine"}\nnot json\n', encoding="utf-8")
    (batch,) = iter_batches(path, 10)
    assert batch.errors == {2: "line 3 is not valid JSON (Expecting value)"}
    with pytest.raises(CorpusError, match=r"a.jsonl: line 3 is not valid JSON"):
        read_texts(path)


def test_a_utf8_byte_order_mark_is_not_text(tmp_path):
    """Excel's "CSV UTF-8" starts with a BOM: the header is still `text`, and in a text or
    JSON Lines file the first review does not start with U+FEFF."""
    bom = b"\xef\xbb\xbf"
    (tmp_path / "a.csv").write_bytes(bom + b"text,id\ngreat film,1\nbad,2\n")
    (tmp_path / "a.txt").write_bytes(bom + b"great film\nbad\n")
    (tmp_path / "a.jsonl").write_bytes(bom + b'{"text": "great film"}\n{"text": "bad"}\n')
    for name in ("a.csv", "a.txt", "a.jsonl"):
        assert read_texts(tmp_path / name) == ["great film", "bad"], name
        _check_every_start(tmp_path / name, 1)


@pytest.mark.parametrize("kind", ["csv", "jsonl", "parquet"])
def test_batches_cut_at_any_phase_read_back_as_the_same_rows(tmp_path, kind):
    """``phase``: the cuts of shards counted across several inputs (this one starting
    mid-shard). Each segment, read from its start, holds exactly its slice of the rows."""
    n = 23
    if kind == "csv":
        path = tmp_path / "r.csv"
        _csv_file(path, "\r\n")
    elif kind == "jsonl":
        path = tmp_path / "r.jsonl"
        lines = [json.dumps({"id": f"r{i}", "text": TRICKY[i % len(TRICKY)]}) for i in range(n)]
        path.write_text("\n\n".join(lines) + "\n", encoding="utf-8")  # blank lines: no rows
    else:
        path = tmp_path / "r.parquet"
        ids = [f"r{i}" for i in range(n)]
        texts = [TRICKY[i % len(TRICKY)] for i in range(n)]
        pq.write_table(pa.table({"id": ids, "text": texts}), path, row_group_size=4)
    whole = _as_dicts(next(iter_batches(path, 10_000, id_column="id")))
    for batch_rows, phase in itertools.product([1, 5, 7, 30], range(7)):
        if phase >= batch_rows:
            continue
        starts, rows = batch_starts(path, batch_rows, phase=phase)
        cuts = [s.row for s in starts]
        assert rows == n
        assert cuts == [0, *(r for r in range(1, n) if r % batch_rows == phase)]
        for start, end in zip(starts, [*cuts[1:], n], strict=True):
            segment = _as_dicts(next(iter_batches(path, end - start.row, id_column="id",
                                                  start=start)))  # fmt: skip
            assert segment["ids"] == whole["ids"][start.row : end]
            assert segment["texts"] == whole["texts"][start.row : end]
    with pytest.raises(ValueError, match="phase must be in"):
        batch_starts(path, 5, phase=5)


def test_check_columns_raises_what_the_first_batch_would(tmp_path):
    """The job's check before its output exists: per format and columns asked for, the
    error reading would raise before its first batch, or none (JSON Lines: row errors)."""
    inputs = {
        "a.jsonl": lambda p: p.write_text('{"id": 1, "text": "Fine."}\n{"id": 2}\n'),
        "a.csv": lambda p: p.write_text("id,text\n1,Fine.\n"),
        "a.txt": lambda p: p.write_text("Fine.\nDull.\n"),
        "a.parquet": lambda p: pq.write_table(pa.table({"id": [1], "text": ["Fine."]}), p),
    }
    asks = [
        ("text", None, ()),
        ("text", "id", ()),
        ("review", None, ()),
        ("text", "key", ()),
        ("text", "id", ("stars",)),
    ]
    raised = 0
    for name, make in inputs.items():
        path = tmp_path / name
        make(path)
        for text_column, id_column, keep in asks:
            try:
                next(iter_batches(path, 1, text_column, id_column, keep), None)
                expected = None
            except CorpusError as e:
                expected = str(e)
            if expected is None:
                check_columns(path, text_column, id_column, keep)
            else:
                raised += 1
                with pytest.raises(CorpusError) as info:
                    check_columns(path, text_column, id_column, keep)
                assert str(info.value) == expected
    assert raised == 9  # csv, parquet and txt (an id or kept column): 3 asks each
    rows = next(iter_batches(tmp_path / "a.jsonl", 2, "review", "key"))
    assert rows.errors == {0: "line 1 has no field 'review'", 1: "line 2 has no field 'review'"}


@pytest.mark.parametrize("chunk", [4 << 20, 7, 1])
def test_the_layout_scan_hashes_every_byte_of_a_text_input(tmp_path, monkeypatch, chunk):
    """A job fingerprints a local text input with the sha256 its layout scan took: it must
    be the file's, whatever its line endings, blank lines, byte-order mark or last line, and
    whether a thread hashes it in chunks (``chunk`` bytes: whole files here, or a few lines
    or one line at a time) or the scan hashes it at the end."""
    import hashlib

    from critic.data import readers

    monkeypatch.setattr(readers, "HASH_CHUNK", chunk)

    bodies = {
        "a.jsonl": BOM + b'{"text": "one"}\r\n\r\n{"text": "two"}\n{"text": "no newline"}',
        "b.csv": b'text,id\r"a, ""quoted""\rline",1\r\n\nplain,2\nlast,3',
        "c.tsv": b"text\tid\nx\t1\n\n",
        "d.txt": b"first\r\nsecond\n\n   \nthird",
        "e.txt": b"",
    }
    for name, body in bodies.items():
        path = tmp_path / name
        path.write_bytes(body)
        digest = hashlib.sha256()
        _, rows = batch_starts(path, 2, digest=digest)
        assert digest.hexdigest() == hashlib.sha256(body).hexdigest(), name
        assert rows == batch_starts(path, 2)[1]
    parquet = tmp_path / "f.parquet"
    pq.write_table(pa.table({"text": ["a", "b"]}), parquet)
    untouched = hashlib.sha256()
    assert batch_starts(parquet, 1, digest=untouched)[1] == 2
    assert untouched.hexdigest() == hashlib.sha256().hexdigest()  # Parquet: not scanned


_JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False)
    | st.text(),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3)
    ),
    max_leaves=6,
)
# Raw JSON tokens orjson and json read apart: NaN, out-of-range floats, integers beyond 64
# bits, lone surrogate escapes, invalid UTF-8, deep nesting.
_JSON_TOKENS = [
    b"NaN",
    b"-Infinity",
    b"1e400",
    b"18446744073709551616",
    b"-9223372036854775809",
    b'"\\ud800"',
    b'"\\udc00x"',
    b'"\xff"',
    b"[" * 1100 + b"]" * 1100,
    b"1.5",
    b"true",
]


@settings(max_examples=200, deadline=None)
@given(
    records=st.lists(
        st.dictionaries(
            st.sampled_from(["text", "id", "x", "other"]), _JSON_VALUES, max_size=4
        ).map(lambda r: json.dumps(r, ensure_ascii=False).encode("utf-8", "surrogatepass"))
        | st.tuples(st.sampled_from(["text", "id", "x"]), st.sampled_from(_JSON_TOKENS)).map(
            lambda kv: b'{"%s": %s, "text": "t"}' % (kv[0].encode(), kv[1])
        ),
        max_size=8,
    ),
)
def test_json_lines_read_alike_with_orjson_or_json_alone(tmp_path_factory, records):
    """orjson reads JSON Lines fast; every row, cell (its type too: a 20-digit id stays an
    int) and error message is what json.loads alone gives."""
    from critic.data import readers

    path = tmp_path_factory.mktemp("jsonl") / "a.jsonl"
    path.write_bytes(b"\n".join(records) + b"\n")
    fast = list(iter_batches(path, 3, "text", "id", ("x",)))
    with pytest.MonkeyPatch.context() as m:
        m.setattr(readers, "_orjson", None)
        alone = list(iter_batches(path, 3, "text", "id", ("x",)))
    assert repr(fast) == repr(alone)
