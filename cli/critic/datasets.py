"""Labeled review datasets: readers, the aclImdb layout and archive, and seeded splits.

TF-free and Ray-free, shared by training (orchestrator) and scoring (serve).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tarfile
import tempfile
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .corpus import CorpusError, detect_format, read_columns

IMDB_URL = "https://ai.stanford.edu/~amaas/data/sentiment/aclImdb_v1.tar.gz"
# Checksums of the canonical archive as published by independent projects (d2l, Paddle).
IMDB_SHA1 = "01ada507287d82875905620988597833ad4e0903"
IMDB_MD5 = "7c2ac02c03563afcf9b574c7e56c153a"
DEFAULT_LABELS = ("neg", "pos")


@dataclass
class LabeledTexts:
    """Texts with 0/1 labels (1 = the second name in ``label_names``) and row ids."""

    texts: list[str]
    labels: np.ndarray
    ids: list[str] = field(default_factory=list)
    label_names: tuple[str, str] = DEFAULT_LABELS

    def __post_init__(self) -> None:
        self.labels = np.asarray(self.labels, dtype=np.int8)
        if not self.ids:
            self.ids = [str(i) for i in range(len(self.texts))]
        if not (len(self.texts) == len(self.labels) == len(self.ids)):
            raise ValueError("texts, labels and ids must have the same length")

    def __len__(self) -> int:
        return len(self.texts)

    def subset(self, index: Sequence[int] | np.ndarray) -> LabeledTexts:
        index = np.asarray(index, dtype=np.int64)
        return LabeledTexts(
            [self.texts[i] for i in index],
            self.labels[index],
            [self.ids[i] for i in index],
            self.label_names,
        )


def parse_label(value: object, names: Sequence[str], where: str) -> int:
    """0/1 (ints or bools) or one of the two declared label names."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, (int, np.integer)) and int(value) in (0, 1):
        return int(value)
    if isinstance(value, str):
        if value in names:
            return list(names).index(value)
        if value.strip() in ("0", "1"):
            return int(value)
    raise CorpusError(f"{where}: label {value!r} is neither 0/1 nor one of {list(names)}")


def read_labeled(
    path: str | Path,
    text_column: str = "text",
    label_column: str = "label",
    label_names: Sequence[str] = DEFAULT_LABELS,
    fmt: str | None = None,
    id_column: str | None = None,
) -> LabeledTexts:
    """A labeled corpus from JSON Lines, CSV/TSV or Parquet (or an aclImdb folder/archive,
    where the split must be part of the path: ``aclImdb/train``)."""
    path = Path(path)
    if path.is_dir() or str(path).endswith((".tar.gz", ".tgz")):
        raise CorpusError(f"{path}: use read_acl_imdb(path, split) for the aclImdb layout")
    fmt = fmt or detect_format(path)
    columns = [text_column, label_column] + ([id_column] if id_column else [])
    data = read_columns(path, columns, fmt)
    labels = [
        parse_label(v, label_names, f"{path}: row {i}") for i, v in enumerate(data[label_column])
    ]
    ids = [str(v) for v in data[id_column]] if id_column else []
    return LabeledTexts(data[text_column], np.array(labels), ids, tuple(label_names))


def read_acl_imdb(root: str | Path, split: str) -> LabeledTexts:
    """``{split}/{neg,pos}/<id>_<rating>.txt`` under ``root`` (the aclImdb folder, a folder
    holding it, or its .tar.gz archive, which is extracted safely into the cache)."""
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    base = _acl_root(resolve_imdb(root))
    texts, labels, ids = [], [], []
    for label, name in enumerate(DEFAULT_LABELS):
        folder = base / split / name
        if not folder.is_dir():
            raise CorpusError(f"{base}: no {split}/{name} folder (not the aclImdb layout)")
        files = sorted(folder.glob("*.txt"), key=lambda p: _numeric_id(p.stem))
        for f in files:
            texts.append(f.read_text(encoding="utf-8"))
            labels.append(label)
            ids.append(f"{name}/{f.stem}")
    if not texts:
        raise CorpusError(f"{base}/{split}: no reviews found")
    return LabeledTexts(texts, np.array(labels), ids)


def _numeric_id(stem: str) -> tuple[int, str]:
    head = stem.split("_", 1)[0]
    return (int(head), stem) if head.isdigit() else (-1, stem)


def acl_imdb_split(root: str | Path | None, split: str) -> Path:
    """The ``{split}/`` folder (``pos/``, ``neg/``) of an aclImdb folder or archive."""
    return _acl_root(resolve_imdb(root)) / split


def _acl_root(path: Path) -> Path:
    for candidate in (path, path / "aclImdb"):
        if (candidate / "train").is_dir() or (candidate / "test").is_dir():
            return candidate
    raise CorpusError(f"{path}: not an aclImdb folder (expected train/ and test/)")


def cache_dir() -> Path:
    return Path(os.environ.get("CRITIC_CACHE", Path.home() / ".cache" / "critic"))


def resolve_imdb(
    source: str | Path | None = None,
    *,
    url: str = IMDB_URL,
    sha1: str = IMDB_SHA1,
    cache: Path | None = None,
) -> Path:
    """A local aclImdb folder for ``source``: the folder itself; an archive, extracted once
    into the cache; or, with no source, the canonical archive downloaded into the cache and
    checked against its published checksum before use."""
    cache = Path(cache) if cache is not None else cache_dir()
    if source is not None:
        source = Path(source)
        if source.is_dir():
            return source
        if not source.is_file():
            raise CorpusError(f"{source}: no such file or folder")
        return extract_archive(source, cache / "extracted" / _sha256(source)[:16])
    archive = cache / "downloads" / Path(url).name
    if not archive.is_file():
        download(url, archive, sha1=sha1)
    return extract_archive(archive, cache / "extracted" / _sha256(archive)[:16])


def download(url: str, dest: Path, *, sha1: str | None = None) -> Path:
    """Fetch url to dest atomically; refuse (and delete) a file whose SHA-1 differs."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, suffix=".part")
    digest = hashlib.sha1()
    try:
        with urllib.request.urlopen(url, timeout=60) as response, os.fdopen(fd, "wb") as out:
            while chunk := response.read(1 << 20):
                digest.update(chunk)
                out.write(chunk)
        if sha1 is not None and digest.hexdigest() != sha1:
            raise CorpusError(
                f"{url}: checksum mismatch (sha1 {digest.hexdigest()}, expected {sha1}); "
                "the download was discarded"
            )
        os.replace(tmp, dest)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return dest


def _no_links(member: tarfile.TarInfo, dest: str) -> tarfile.TarInfo:
    """tarfile's 'data' filter, stricter: absolute names, '..' and any link are refused
    (the data filter would strip a leading '/' and allow links inside the destination)."""
    name = member.name.replace("\\", "/")
    if name.startswith("/") or ".." in name.split("/"):
        raise tarfile.FilterError(f"refusing path {member.name!r}")
    if member.issym() or member.islnk():
        raise tarfile.FilterError(f"refusing link member {member.name!r}")
    return tarfile.data_filter(member, dest)


def extract_archive(archive: Path, dest: Path) -> Path:
    """Extract a .tar.gz once into dest, refusing absolute paths, '..' and links."""
    done = dest / ".complete"
    if done.is_file():
        return dest
    tmp = Path(tempfile.mkdtemp(dir=dest.parent if dest.parent.exists() else None))
    try:
        with tarfile.open(archive, "r:*") as tar:
            try:
                tar.extractall(tmp, filter=_no_links)
            except tarfile.FilterError as e:
                raise CorpusError(f"{archive}: unsafe archive member ({e})") from e
        done_tmp = tmp / ".complete"
        done_tmp.write_text(str(archive))
        dest.parent.mkdir(parents=True, exist_ok=True)
        if dest.exists():
            shutil.rmtree(dest)
        os.replace(tmp, dest)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return dest


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def stratified_split(
    labels: np.ndarray, validation_fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Seeded stratified (train, validation) row indices; each class split by the fraction."""
    if not 0.0 < validation_fraction < 1.0:
        raise ValueError(f"validation_fraction must be in (0, 1), got {validation_fraction}")
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    train, val = [], []
    for cls in np.unique(labels):
        rows = rng.permutation(np.flatnonzero(labels == cls))
        n_val = max(1, round(len(rows) * validation_fraction)) if len(rows) > 1 else 0
        val.append(rows[:n_val])
        train.append(rows[n_val:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(val))
