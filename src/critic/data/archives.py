"""The aclImdb data on disk: a folder as it is, or a ``.tar.gz`` extracted safely, once, into
critic's cache. critic never downloads it: :data:`IMDB_URL` and its checksum say where the
canonical archive comes from."""

from __future__ import annotations

import os
import shutil
import tarfile
import tempfile
from pathlib import Path

from critic.storage import cache_dir, location

from .readers import CorpusError

IMDB_URL = "https://ai.stanford.edu/~amaas/data/sentiment/aclImdb_v1.tar.gz"
# Checksums of the canonical archive as published by independent projects (d2l, Paddle).
IMDB_SHA1 = "01ada507287d82875905620988597833ad4e0903"
IMDB_MD5 = "7c2ac02c03563afcf9b574c7e56c153a"
IMDB_ENV = "CRITIC_IMDB"  # where the aclImdb folder or archive is, when no path is given
TMP_PREFIX = ".extracting-"


def imdb_location(path: str | Path | None) -> Path:
    """``path``, else ``$CRITIC_IMDB``; neither is a CorpusError saying where to get the data."""
    chosen = path or os.environ.get(IMDB_ENV)
    if not chosen:
        raise CorpusError(
            "no aclImdb data given: pass --imdb PATH (critic tune / critic run), set "
            f"dataset.path in the config, or set {IMDB_ENV}=PATH; PATH is the aclImdb folder "
            f"or its archive, {IMDB_URL} (sha1 {IMDB_SHA1})"
        )
    return Path(chosen).expanduser()


def resolve_imdb(source: str | Path, *, cache: Path | None = None) -> Path:
    """A local aclImdb folder for ``source``: the folder itself, or an archive extracted once
    into the cache."""
    cache = Path(cache) if cache is not None else cache_dir()
    source = Path(source)
    if source.is_dir():
        return source
    if not source.is_file():
        raise CorpusError(f"{source}: no such file or folder")
    return extract_archive(source, cache / "extracted" / location(source).sha256()[:16])


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
    """Extract a .tar.gz once into dest, refusing absolute paths, '..' and links. The work
    folder is made beside ``dest`` (same filesystem, so the final rename cannot cross one)."""
    done = dest / ".complete"
    if done.is_file():
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=TMP_PREFIX, dir=dest.parent))
    try:
        with tarfile.open(archive, "r:*") as tar:
            try:
                tar.extractall(tmp, filter=_no_links)
            except tarfile.FilterError as e:
                raise CorpusError(f"{archive}: unsafe archive member ({e})") from e
        (tmp / ".complete").write_text(str(archive))
        if dest.exists():
            shutil.rmtree(dest)
        os.replace(tmp, dest)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return dest
