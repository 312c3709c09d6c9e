"""Storage URIs: local paths and s3:// on a real S3-compatible server over HTTP (moto's
standalone server on 127.0.0.1), through the same Location and reader code."""

from __future__ import annotations

import json
import subprocess
import sys

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from critic.data.readers import batch_starts, iter_batches, read_texts
from critic.storage import StorageError, expand, location


def test_local_paths_are_made_absolute_on_the_driver(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    loc = location("data/x.jsonl")
    assert loc.uri == str(tmp_path / "data" / "x.jsonl") and loc.is_local
    assert (loc.parent / "y.csv").uri == str(tmp_path / "data" / "y.csv")


def test_a_uri_pyarrow_cannot_open_is_a_clear_error():
    with pytest.raises(StorageError, match="nosuch://bucket/x: not a storage URI"):
        location("nosuch://bucket/x")


def test_s3_round_trip_listing_and_globs(s3_bucket):
    root = location(f"{s3_bucket}/corpus")
    assert not root.is_local and root.uri == f"{s3_bucket}/corpus"
    for name in ("a.jsonl", "b.jsonl", "sub/c.jsonl", "notes.txt"):
        (root / name).write_atomic(b'{"text": "fine"}\n')
    assert (root / "a.jsonl").read_text() == '{"text": "fine"}\n'
    assert (root / "a.jsonl").is_file() and root.is_dir() and not (root / "zz").exists()
    assert [f.relative_to(root) for f in root.files()] == [
        "a.jsonl",
        "b.jsonl",
        "notes.txt",
        "sub/c.jsonl",
    ]
    assert [f.name for f in expand(f"{s3_bucket}/corpus/*.jsonl")][:2] == ["a.jsonl", "b.jsonl"]
    assert expand(f"{s3_bucket}/corpus/*.parquet") == []


@pytest.mark.parametrize("name", ["archive.tar.gz", "words.txt.bz2", "x.zst"])
def test_s3_objects_hold_exactly_the_bytes_written(s3_bucket, name):
    """Regression: pyarrow compressed again what was written under a .gz (.bz2, .zst) name,
    so an aclImdb archive uploaded by critic could not be read back as one."""
    data = bytes(range(256)) * 64
    loc = location(f"{s3_bucket}/{name}")
    loc.write_atomic(data)
    assert loc.read_bytes() == data and loc.size() == len(data)


def test_an_upload_killed_before_it_completes_leaves_no_object(s3_bucket):
    """What the scoring commit relies on: an object appears only when its upload completes.
    A writer killed mid-upload (a 24 MB multipart upload, parts already sent) leaves nothing
    under the name."""
    code = f"""
import os, signal
from critic.storage import location
loc = location("{s3_bucket}/part-00000.parquet")
out = loc.fs.open_output_stream(loc.path)
for _ in range(24):
    out.write(os.urandom(1 << 20))
out.flush()
os.kill(os.getpid(), signal.SIGKILL)
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=120)
    assert result.returncode == -9, result.stderr[-2000:]
    assert not location(f"{s3_bucket}/part-00000.parquet").exists()
    assert location(s3_bucket).files() == []


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "parquet", "txt"])
def test_readers_read_s3_exactly_as_local_files(tmp_path, s3_bucket, imdb_test, fmt):
    texts = imdb_test[:90]
    local = tmp_path / f"corpus.{fmt}"
    if fmt == "jsonl":
        local.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
    elif fmt == "csv":
        pacsv.write_csv(pa.table({"text": texts}), local)
    elif fmt == "txt":
        local.write_text("".join(t.replace("\n", " ") + "\n" for t in texts))
    else:
        pq.write_table(pa.table({"text": texts}), local, row_group_size=25)
    remote = location(f"{s3_bucket}/in/corpus.{fmt}")
    remote.write_atomic(local.read_bytes())
    assert read_texts(remote.uri) == read_texts(local)
    starts, rows = batch_starts(remote, 20)
    assert (starts, rows) == batch_starts(local, 20)
    for start in starts:
        got = next(iter_batches(remote, 20, start=start))
        want = next(iter_batches(local, 20, start=start))
        assert _as_list(got.texts) == _as_list(want.texts) and got.start == want.start


def _as_list(values) -> list:
    return values if isinstance(values, list) else values.to_pylist()


def test_acl_imdb_folder_on_s3(tmp_path, s3_bucket):
    root = location(f"{s3_bucket}/aclImdb/test")
    for label in ("neg", "pos"):
        for review in (10, 2):
            (root / label / f"{review}_3.txt").write_atomic(f"{label} {review}".encode())
    (batch,) = iter_batches(root, 100, id_column="path")
    assert batch.texts == ["neg 2", "neg 10", "pos 2", "pos 10"]
    assert batch.ids == ["neg/2_3.txt", "neg/10_3.txt", "pos/2_3.txt", "pos/10_3.txt"]
