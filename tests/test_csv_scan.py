"""The kernel's CSV/TSV layout scan (``CsvScan``) against the reader it stands in for.

The reference is critic's Python scan (``readers._csv_starts_python``: Python's csv module
fed the file's lines), which the readers keep for Python 3.10 and which reads the rows back.
Where a row starts, on which line, how many rows, and which records are blank must be the
same for any bytes, cut into chunks anywhere.
"""

from __future__ import annotations

import csv
import hashlib
import io
import sys

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from critic.data import readers
from critic.data.readers import Start, batch_starts, iter_batches
from critic.kernels import _core
from critic.storage import location

# Pieces that steer the csv module's state machine: delimiters, quotes, every line end,
# whitespace (ASCII, and wide: NBSP, ideographic space, NEL), a byte-order mark, a NUL, and
# UTF-8 that is cut or invalid.
PIECES = [
    b",", b"\t", b'"', b'""', b"\n", b"\r", b"\r\n", b" ", b"  ", b"a", b"bc", b"x,y",
    b"\x0b", b"\x1c", b"\xc2\xa0", b"\xe3\x80\x80", b"\xc2\x85", b"\xe2\x80", b"\xc2",
    b"\xff", b"\xc3\xa9", b"\xef\xbb\xbf", b"\x00",
]  # fmt: skip
FORMATS = ("csv", "tsv")


def python_scan(path, fmt, batch_rows, phase=0):
    return readers._csv_starts_python(location(path), fmt, batch_rows, phase, None)


def kernel_scan(body: bytes, fmt: str, batch_rows: int, phase: int = 0, chunk: int = 1 << 20):
    scan = _core.CsvScan("\t" if fmt == "tsv" else ",", fmt == "csv", batch_rows, phase)
    for at in range(0, len(body), chunk):
        scan.feed(body[at : at + chunk])
    scan.finish()
    return [Start(*s) for s in scan.starts], scan.rows


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    pieces=st.lists(st.sampled_from(PIECES), max_size=40),
    fmt=st.sampled_from(FORMATS),
    batch_rows=st.integers(1, 3),
    data=st.data(),
)
def test_the_kernel_scan_finds_the_records_pythons_csv_module_reads(
    tmp_path_factory, pieces, fmt, batch_rows, data
):
    body = b"".join(pieces)
    phase = data.draw(st.integers(0, batch_rows - 1))
    chunk = data.draw(st.sampled_from([1, 2, 3, 5, 1 << 20]))
    path = tmp_path_factory.mktemp("scan") / f"f.{fmt}"
    path.write_bytes(body)
    assert kernel_scan(body, fmt, batch_rows, phase, chunk) == python_scan(
        path, fmt, batch_rows, phase
    )


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_record_of_whitespace_is_blank_for_exactly_pythons_whitespace(tmp_path, fmt):
    """Every code point Python's str.isspace calls whitespace, alone in a field, makes a
    blank record (not a row); every other code point makes a row: the kernel's table of
    multi-byte whitespace against the running Python's Unicode."""
    skip = {ord(","), ord("\t"), ord('"'), ord("\n"), ord("\r")}
    points = [c for c in range(1, 0x110000) if c not in skip and not 0xD800 <= c < 0xE000]
    lines = [chr(c).encode() for c in points]
    body = b"header\n" + b"\n".join(lines) + b"\n"
    path = tmp_path / f"all.{fmt}"
    path.write_bytes(body)
    starts, rows = kernel_scan(body, fmt, 1)
    assert (starts, rows) == python_scan(path, fmt, 1)
    assert rows == len(points) - sum(chr(c).isspace() for c in points)
    # Quoted, and after a run of wide whitespace, the same holds.
    quoted = b"header\n" + b"\n".join(b'"\xe3\x80\x80' + line + b'"' for line in lines) + b"\n"
    path.write_bytes(quoted)
    assert kernel_scan(quoted, fmt, 1) == python_scan(path, fmt, 1)


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("chunk", [1, 7, 4096, 1 << 22])
def test_reviews_written_by_a_csv_writer_scan_the_same_in_any_chunks(tmp_path, fmt, chunk):
    """Real quoting (commas, doubled quotes, line ends inside fields, CRLF records) from
    Python's csv writer: the kernel's starts read back every row, cut anywhere."""
    out = io.StringIO()
    writer = csv.writer(out, delimiter="\t" if fmt == "tsv" else ",")
    writer.writerow(["id", "text"])
    for i in range(3000):
        text = f'review {i}, "quoted"\nsecond line\r\n{"é" * (i % 5)}' if i % 3 else f"plain {i}"
        writer.writerow([i, text])
        if i % 100 == 0:
            out.write("\r\n")  # a blank line: not a row
    body = ("\ufeff" + out.getvalue()).encode()
    path = tmp_path / f"reviews.{fmt}"
    path.write_bytes(body)
    starts, rows = kernel_scan(body, fmt, 250, 0, chunk)
    assert (starts, rows) == python_scan(path, fmt, 250)
    assert rows == 3000
    batches = [next(iter_batches(path, 250, "text", "id", start=s)) for s in starts]
    ids = [int(v) for batch in batches for v in batch.ids]
    assert ids == list(range(3000))


def test_the_scan_hashes_every_byte_in_any_chunking(tmp_path, monkeypatch):
    """batch_starts' kernel path fingerprints a CSV file with its exact sha256, whether it is
    one chunk (hashed at the end, no thread) or many (hashed on a thread, in order)."""
    body = b"text,id\r\n" + b"".join(b'"row, %d\nmore",%d\r\n' % (i, i) for i in range(500))
    path = tmp_path / "a.csv"
    path.write_bytes(body)
    for chunk in (1 << 22, 4096, 5):
        monkeypatch.setattr(readers, "HASH_CHUNK", chunk)
        digest = hashlib.sha256()
        assert batch_starts(path, 7, digest=digest) == python_scan(path, "csv", 7)
        assert digest.hexdigest() == hashlib.sha256(body).hexdigest(), chunk


@pytest.mark.skipif(sys.version_info < (3, 11), reason="3.10's csv ends a record at a NUL")
def test_batch_starts_takes_the_kernel_scan_for_csv(tmp_path, monkeypatch):
    """On Python 3.11+ the layout of a CSV input comes from the kernel, not the Python loop."""

    def refuse(*args):
        raise AssertionError("the Python scan ran")

    monkeypatch.setattr(readers, "_csv_starts_python", refuse)
    path = tmp_path / "a.csv"
    path.write_bytes(b'text\n"a\nb"\n\nc\n')
    assert batch_starts(path, 1) == ([Start(0, 5, 2), Start(1, 12, 5)], 2)


def test_bad_arguments_are_errors_not_crashes():
    for delimiter, batch_rows, phase in ((";", 1, 0), ("", 1, 0), (",", 0, 0), (",", 2, 2)):
        with pytest.raises(ValueError):
            _core.CsvScan(delimiter, True, batch_rows, phase)
    scan = _core.CsvScan(",", True, 1)
    with pytest.raises(TypeError):
        scan.feed("text, not bytes")
    with pytest.raises(TypeError):
        import numpy as np

        scan.feed(np.zeros(4, dtype=np.int32))
    for delimiter, where in ((";", [0]), (",", []), (",", [-1])):
        with pytest.raises(ValueError):
            _core.CsvRows(delimiter, True, True, 1, 1, where, "bad text")
    scan.feed(memoryview(b"h\nrow\n"))
    scan.feed(bytearray(b"row 2"))
    scan.finish()
    assert scan.rows == 2


def python_batches(path, batch_rows, start=None, keep=("x",)):
    """The batches of critic's Python reader (the csv module), the kernel reader's reference."""
    with pytest.MonkeyPatch.context() as m:
        m.setattr(readers, "KERNEL_CSV", False)
        return list(iter_batches(path, batch_rows, "text", "id", keep, start=start or Start()))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    pieces=st.lists(st.sampled_from(PIECES), max_size=40),
    header=st.sampled_from([b"text,id,x\n", b"\xef\xbb\xbfid\ttext\tx\r\n", b'"text",x,"id"\r']),
    fmt=st.sampled_from(FORMATS),
    batch_rows=st.integers(1, 3),
    chunk=st.sampled_from([1, 3, 1 << 20]),
)
def test_the_kernel_reader_gives_the_rows_cells_and_errors_of_pythons(
    tmp_path_factory, pieces, header, fmt, batch_rows, chunk
):
    """Every batch from every start, texts, ids, kept cells and error messages (broken
    records, short rows, text that is not UTF-8), as the csv-module reader gives them."""
    if fmt == "tsv":
        header = header.replace(b",", b"\t")
    elif b"\t" in header:
        header = header.replace(b"\t", b",")
    path = tmp_path_factory.mktemp("read") / f"f.{fmt}"
    path.write_bytes(header + b"".join(pieces))
    with pytest.MonkeyPatch.context() as m:
        m.setattr(readers, "READ_CHUNK", chunk)
        for start in [Start(), *batch_starts(path, batch_rows)[0]]:
            got = list(iter_batches(path, batch_rows, "text", "id", ("x",), start=start))
            assert got == python_batches(path, batch_rows, start)


def test_the_kernel_reader_on_reviews_from_a_csv_writer(tmp_path, monkeypatch):
    """Long quoted reviews with commas, doubled quotes, line ends and non-ASCII text; a text
    that is not UTF-8, a short row and a broken one among them; read in small chunks."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["id", "text", "stars"])
    for i in range(2000):
        writer.writerow([i, f'Review {i}: "great", really\n{"ü" * (i % 7)}\r\nend', i % 10])
    body = out.getvalue().encode() + b'9001,"bad \xff byte",1\nshort,row\n"x"y,1,2\n4,last,1'
    path = tmp_path / "reviews.csv"
    path.write_bytes(body)
    monkeypatch.setattr(readers, "READ_CHUNK", 4099)
    for keep in ((), ("stars",)):
        got = list(iter_batches(path, 300, "text", "id", keep))
        assert got == python_batches(path, 300, keep=keep)
    last = got[-1]
    assert sorted(last.errors.values()) == [
        "line 6002: column 'text' is not valid UTF-8",
        "line 6003: 2 fields, the header has 3",
        "line 6004: not one valid CSV record (',' expected after '\"')",
    ]
    assert last.ids[-4:] == ["9001", None, None, "4"] and last.texts[-1] == "last"
