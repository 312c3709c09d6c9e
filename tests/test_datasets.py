"""Labeled readers, the aclImdb layout/archive, safe extraction, the data location, splits."""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from critic.data.archives import IMDB_SHA1, IMDB_URL, imdb_location, resolve_imdb
from critic.data.datasets import read_acl_imdb, read_labeled, stratified_split
from critic.data.readers import CorpusError
from critic.data.sample import sample_path


@pytest.fixture(scope="module")
def sample_rows() -> list[dict]:
    with open(sample_path("train"), encoding="utf-8") as fh:
        return [json.loads(line) for line in fh][:60]


def _write_acl(root: Path, rows: list[dict]) -> None:
    for split in ("train", "test"):
        for i, row in enumerate(rows):
            name = "pos" if row["label"] else "neg"
            folder = root / "aclImdb" / split / name
            folder.mkdir(parents=True, exist_ok=True)
            (folder / f"{i}_{row['rating']}.txt").write_text(row["text"], encoding="utf-8")


def _tar(path: Path, src: Path) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        tar.add(src / "aclImdb", arcname="aclImdb")
    return path


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "tsv", "parquet"])
def test_read_labeled_formats(tmp_path, sample_rows, fmt):
    texts = [r["text"] for r in sample_rows]
    labels = [r["label"] for r in sample_rows]
    path = tmp_path / f"data.{fmt}"
    if fmt == "jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in sample_rows), encoding="utf-8")
    elif fmt == "parquet":
        pq.write_table(pa.table({"text": texts, "label": labels}), path)
    else:
        with open(path, "w", encoding="utf-8", newline="") as fh:
            writer = csv.writer(fh, delimiter="\t" if fmt == "tsv" else ",")
            writer.writerow(["text", "label"])
            writer.writerows(zip(texts, ["pos" if y else "neg" for y in labels], strict=True))
    data = read_labeled(path)
    assert data.texts == texts
    assert data.labels.tolist() == labels


def test_read_labeled_errors_name_the_row(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"text": "ok", "label": 1}\n{"text": "x", "label": "maybe"}\n')
    with pytest.raises(CorpusError, match="row 1: label 'maybe'"):
        read_labeled(path)
    path.write_text('{"text": "ok", "label": 1}\n{"text": null, "label": 0}\n')
    with pytest.raises(CorpusError, match="row 1: 'text' is null"):
        read_labeled(path)
    path.write_text('{"text": "ok"}\n')
    with pytest.raises(CorpusError, match="row 0: no label"):
        read_labeled(path)
    with pytest.raises(CorpusError, match="no such file"):
        read_labeled(tmp_path / "missing.csv")


def test_acl_imdb_folder_and_archive(tmp_path, sample_rows):
    _write_acl(tmp_path / "src", sample_rows)
    from_dir = read_acl_imdb(tmp_path / "src", "train")
    assert len(from_dir) == len(sample_rows)
    assert sorted(from_dir.texts) == sorted(r["text"] for r in sample_rows)
    by_text = {r["text"]: r["label"] for r in sample_rows}
    assert all(by_text[t] == y for t, y in zip(from_dir.texts, from_dir.labels, strict=True))

    archive = _tar(tmp_path / "aclImdb_v1.tar.gz", tmp_path / "src")
    cache = tmp_path / "cache"
    extracted = resolve_imdb(archive, cache=cache)
    assert extracted.local_path.is_relative_to(cache)
    from_tar = read_acl_imdb(extracted, "test")
    assert from_tar.texts == read_acl_imdb(tmp_path / "src", "test").texts
    assert resolve_imdb(archive, cache=cache) == extracted  # extracted once, then reused


def test_acl_imdb_star_ratings_as_classes(tmp_path, sample_rows):
    """target rating: the file names' ratings are the classes, in IMDB_RATINGS order, and
    critic run's truth for a scored row comes from its file name too."""
    from critic.data.datasets import IMDB_RATINGS, imdb_rating
    from critic.data.kinds import dataset_kind
    from critic.orchestrator.schema import ImdbDataset

    _write_acl(tmp_path / "src", sample_rows)
    data = read_acl_imdb(tmp_path / "src", "train", target="rating")
    assert data.label_names == IMDB_RATINGS == ("1", "2", "3", "4", "7", "8", "9", "10")
    by_text = {r["text"]: str(r["rating"]) for r in sample_rows}
    assert [data.label_names[y] for y in data.labels] == [by_text[t] for t in data.texts]
    ds = ImdbDataset(path=str(tmp_path / "src"), target="rating")
    folder, id_column, truth = dataset_kind(ds).test_reviews(ds, Path)
    assert folder.name == "test"
    assert id_column == "path" and truth(
        ["pos/3_9.txt", "neg/12_1.txt"], IMDB_RATINGS
    ).tolist() == ["9", "1"]
    with pytest.raises(CorpusError, match="pos/7_5: no rating 1-4 or 7-10"):
        imdb_rating("pos/7_5")
    with pytest.raises(ValueError, match="target must be one of"):
        read_acl_imdb(tmp_path / "src", "train", target="stars")


def test_acl_imdb_archive_and_folder_in_object_storage(
    tmp_path, sample_rows, s3_bucket, monkeypatch
):
    """An aclImdb archive or folder on the S3 server reads as the local one; the archive is
    extracted once and found again by its URI, size and time, without being read again."""
    from critic.storage import location

    _write_acl(tmp_path / "src", sample_rows[:40])
    archive = _tar(tmp_path / "aclImdb_v1.tar.gz", tmp_path / "src")
    remote = location(f"{s3_bucket}/data/aclImdb_v1.tar.gz")
    remote.write_atomic(archive.read_bytes())
    cache = tmp_path / "cache"
    monkeypatch.setenv("CRITIC_CACHE", str(cache))
    extracted = resolve_imdb(remote.uri, cache=cache)
    assert extracted.local_path.is_relative_to(cache)
    want = read_acl_imdb(tmp_path / "src", "train")
    assert read_acl_imdb(remote.uri, "train").texts == want.texts
    assert resolve_imdb(remote.uri, cache=cache) == extracted
    assert len(list((cache / "extracted").iterdir())) == 1
    # Rewritten in place: a new size/time, so it is extracted again.
    _write_acl(tmp_path / "src2", sample_rows[40:60])
    remote.write_atomic(_tar(tmp_path / "second.tar.gz", tmp_path / "src2").read_bytes())
    assert len(read_acl_imdb(remote.uri, "train")) == 20

    for path in sorted((tmp_path / "src").rglob("*.txt")):
        rel = path.relative_to(tmp_path / "src").as_posix()
        location(f"{s3_bucket}/folder/{rel}").write_atomic(path.read_bytes())
    from_folder = read_acl_imdb(f"{s3_bucket}/folder", "train")
    assert from_folder.texts == want.texts and from_folder.ids == want.ids
    with pytest.raises(CorpusError, match="no such file or folder"):
        read_acl_imdb(f"{s3_bucket}/missing.tar.gz", "train")


def test_a_sweep_config_takes_an_imdb_uri(tmp_path, sample_rows, s3_bucket, monkeypatch):
    monkeypatch.setenv("CRITIC_CACHE", str(tmp_path / "cache"))
    from critic.orchestrator.config import SweepConfig
    from critic.storage import location

    _write_acl(tmp_path / "src", sample_rows[:40])
    archive = _tar(tmp_path / "aclImdb_v1.tar.gz", tmp_path / "src")
    uri = f"{s3_bucket}/aclImdb_v1.tar.gz"
    location(uri).write_atomic(archive.read_bytes())
    config = tmp_path / "c.yaml"
    config.write_text("name: c\nmodel: {family: lstm}\n")
    cfg = SweepConfig.load(config, imdb=uri)
    assert cfg.dataset.path == uri
    cfg.validate_rules()
    with pytest.raises(Exception, match="no such file or folder"):
        SweepConfig.load(config, imdb=f"{s3_bucket}/nothing.tar.gz").validate_rules()


@pytest.mark.parametrize(
    "member",
    [
        tarfile.TarInfo("/etc/evil.txt"),
        tarfile.TarInfo("aclImdb/../../evil.txt"),
        ("symlink", "aclImdb/train/pos/link.txt", "/etc/passwd"),
        ("hardlink", "aclImdb/train/pos/hard.txt", "aclImdb/README"),
    ],
    ids=["absolute", "dotdot", "symlink", "hardlink"],
)
def test_unsafe_archives_are_refused(tmp_path, member):
    archive = tmp_path / "evil.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        readme = tarfile.TarInfo("aclImdb/README")
        readme.size = 2
        tar.addfile(readme, io.BytesIO(b"hi"))
        if isinstance(member, tuple):
            kind, name, target = member
            info = tarfile.TarInfo(name)
            info.type = tarfile.SYMTYPE if kind == "symlink" else tarfile.LNKTYPE
            info.linkname = target
            tar.addfile(info)
        else:
            member.size = 4
            tar.addfile(member, io.BytesIO(b"evil"))
    with pytest.raises(CorpusError, match="unsafe archive member"):
        resolve_imdb(archive, cache=tmp_path / "cache")
    assert not (tmp_path / "evil.txt").exists()
    assert not list((tmp_path / "cache").rglob("evil.txt"))


def test_an_archive_that_expands_past_the_bounds_is_refused(tmp_path, monkeypatch):
    """A small archive holding a large member of zeros is stopped before it is written."""
    import critic.data.archives as archives

    archive = tmp_path / "zeros.tar.gz"
    size = 32 << 20
    with tarfile.open(archive, "w:gz") as tar:
        info = tarfile.TarInfo("aclImdb/train/pos/0_10.txt")
        info.size = size
        tar.addfile(info, io.BytesIO(bytes(size)))
    assert archive.stat().st_size < 100_000
    monkeypatch.setattr(archives, "MAX_MEMBER_BYTES", 8 << 20)
    with pytest.raises(CorpusError, match="33,554,432 bytes, more than 8,388,608"):
        resolve_imdb(archive, cache=tmp_path / "cache")
    # Nothing is left behind: no work folder, no partial file.
    assert not [p for p in (tmp_path / "cache").rglob("*") if p.is_file()]
    monkeypatch.setattr(archives, "MAX_MEMBER_BYTES", 64 << 20)
    monkeypatch.setattr(archives, "MAX_TOTAL_BYTES", 16 << 20)
    with pytest.raises(CorpusError, match="more than 16,777,216 bytes"):
        resolve_imdb(archive, cache=tmp_path / "cache")


def test_many_members_under_each_bound_stop_at_the_total_and_leave_nothing(tmp_path, monkeypatch):
    """Members each under the per-member bound, together past the total (the real case: 20
    members of 60 MB): refused while extracting, at $CRITIC_MAX_EXTRACT_BYTES (here 1 MB),
    with nothing left in the cache; an archive that extracts but is not aclImdb is refused
    and removed from the cache too."""
    archive = tmp_path / "many.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for i in range(5):
            info = tarfile.TarInfo(f"aclImdb/train/pos/{i}_10.txt")
            info.size = 300_000
            tar.addfile(info, io.BytesIO(bytes(info.size)))
    monkeypatch.setenv("CRITIC_MAX_EXTRACT_BYTES", str(1 << 20))
    with pytest.raises(CorpusError, match=r"more than 1,048,576 bytes .*CRITIC_MAX_EXTRACT"):
        resolve_imdb(archive, cache=tmp_path / "cache")
    assert not [p for p in (tmp_path / "cache").rglob("*") if p.is_file()]
    monkeypatch.setenv("CRITIC_MAX_EXTRACT_BYTES", str(2 << 20))
    assert (resolve_imdb(archive, cache=tmp_path / "cache") / "aclImdb" / "train").is_dir()

    other = tmp_path / "other.tar.gz"
    with tarfile.open(other, "w:gz") as tar:
        info = tarfile.TarInfo("photos/cat.jpg")
        info.size = 10
        tar.addfile(info, io.BytesIO(bytes(10)))
    with pytest.raises(CorpusError, match=r"not an aclImdb archive .* nothing of it was kept"):
        resolve_imdb(other, cache=tmp_path / "other-cache")
    assert not [p for p in (tmp_path / "other-cache").rglob("*") if p.is_file()]


@pytest.mark.parametrize("damage", ["truncated", "garbage", "empty"])
def test_damaged_archives_are_clear_errors(tmp_path, sample_rows, damage):
    _write_acl(tmp_path / "src", sample_rows[:20])
    archive = _tar(tmp_path / "aclImdb_v1.tar.gz", tmp_path / "src")
    data = archive.read_bytes()
    bad = {"truncated": data[: len(data) // 2], "garbage": b"\x1f\x8b" + bytes(999), "empty": b""}
    archive.write_bytes(bad[damage])
    with pytest.raises(CorpusError, match=r"not a readable \.tar\.gz archive"):
        resolve_imdb(archive, cache=tmp_path / "cache")
    assert not list((tmp_path / "cache").rglob(".extracting-*"))


def test_a_killed_extraction_leaves_nothing_for_the_next_run(tmp_path, sample_rows):
    """The work folder of a process that died mid-extraction is removed by the next one; a
    live process's work folder is left alone."""
    _write_acl(tmp_path / "src", sample_rows[:6])
    archive = _tar(tmp_path / "aclImdb_v1.tar.gz", tmp_path / "src")
    cache = tmp_path / "cache"
    dead = subprocess.Popen(["true"])  # a pid that has exited
    dead.wait()
    parent = cache / "extracted"
    stale = parent / f".extracting-{dead.pid}-abc"
    (stale / "aclImdb").mkdir(parents=True)
    (stale / "aclImdb" / "big.bin").write_bytes(bytes(1000))
    live = parent / f".extracting-{os.getpid()}-xyz"
    live.mkdir()
    folder = resolve_imdb(archive, cache=cache)
    assert len(read_acl_imdb(folder, "train")) == 6
    assert not stale.exists() and live.exists()


def test_imdb_location_says_where_the_data_comes_from(tmp_path, monkeypatch):
    monkeypatch.delenv("CRITIC_IMDB", raising=False)
    with pytest.raises(CorpusError, match="--imdb PATH") as info:
        imdb_location(None)
    assert IMDB_URL in str(info.value) and IMDB_SHA1 in str(info.value)
    monkeypatch.setenv("CRITIC_IMDB", str(tmp_path / "aclImdb"))
    assert imdb_location(None) == str(tmp_path / "aclImdb")
    assert imdb_location(tmp_path / "given") == str(tmp_path / "given")
    assert imdb_location("s3://bucket/aclImdb_v1.tar.gz") == "s3://bucket/aclImdb_v1.tar.gz"


def test_extraction_into_a_new_cache_on_another_filesystem(tmp_path, monkeypatch, sample_rows):
    """Regression: the work folder was made in $TMPDIR when the cache did not exist yet, and
    renaming it into a cache on another filesystem failed with EXDEV."""
    shm = Path("/dev/shm")
    assert shm.is_dir() and shm.stat().st_dev != tmp_path.stat().st_dev, "needs a 2nd filesystem"
    _write_acl(tmp_path / "src", sample_rows[:6])
    archive = _tar(tmp_path / "aclImdb_v1.tar.gz", tmp_path / "src")
    other_fs = Path(tempfile.mkdtemp(dir=shm))
    try:
        monkeypatch.setattr(tempfile, "tempdir", str(other_fs))
        folder = resolve_imdb(archive, cache=tmp_path / "new-cache")
        assert len(read_acl_imdb(folder, "train")) == 6
        assert not list(other_fs.iterdir())  # nothing was staged on the other filesystem
        # The work folder was renamed.
        assert not list(folder.local_path.parent.glob(".extracting-*"))
    finally:
        shutil.rmtree(other_fs, ignore_errors=True)


def test_stratified_split_is_seeded_and_stratified():
    labels = np.array([0] * 70 + [1] * 30)
    train, val = stratified_split(labels, 0.2, seed=7)
    assert len(set(train) & set(val)) == 0 and len(train) + len(val) == 100
    assert labels[val].tolist().count(0) == 14 and labels[val].tolist().count(1) == 6
    again = stratified_split(labels, 0.2, seed=7)
    assert (again[0] == train).all() and (again[1] == val).all()
    other = stratified_split(labels, 0.2, seed=8)
    assert not (other[1] == val).all()
    with pytest.raises(ValueError):
        stratified_split(labels, 1.5, seed=0)
