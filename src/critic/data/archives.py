"""The aclImdb data: a folder as it is (local or in object storage), or a ``.tar.gz``
(local or a storage URI) extracted safely, once, into critic's cache. critic never downloads
it from the web: :data:`IMDB_URL` and its checksum say where the canonical archive comes
from."""

from __future__ import annotations

import hashlib
import os
import shutil
import tarfile
import tempfile
import zlib
from pathlib import Path

from critic.storage import Location, cache_dir, is_uri, location, process_alive

from .readers import CorpusError

IMDB_URL = "https://ai.stanford.edu/~amaas/data/sentiment/aclImdb_v1.tar.gz"
# Checksums of the canonical archive as published by independent projects (d2l, Paddle).
IMDB_SHA1 = "01ada507287d82875905620988597833ad4e0903"
IMDB_MD5 = "7c2ac02c03563afcf9b574c7e56c153a"
IMDB_ENV = "CRITIC_IMDB"  # where the aclImdb folder or archive is, when no path is given
TMP_PREFIX = ".extracting-"
# aclImdb is ~100k files, its largest under 2 MB; its 50,000 labeled reviews are 72 MB of
# files (the canonical archive adds unlabeled reviews and bag-of-words files). Far above that,
# a small archive that expands into gigabytes is refused while it extracts, and what it had
# written is removed; $CRITIC_MAX_EXTRACT_BYTES sets another total.
MAX_MEMBER_BYTES = 64 << 20
MAX_TOTAL_BYTES = 1 << 30
MAX_TOTAL_ENV = "CRITIC_MAX_EXTRACT_BYTES"
MAX_MEMBERS = 400_000
SPLITS = ("train", "test")


def imdb_location(path: str | Path | None) -> str:
    """``path``, else ``$CRITIC_IMDB``; neither is a CorpusError saying where to get the data."""
    chosen = path or os.environ.get(IMDB_ENV)
    if not chosen:
        raise CorpusError(
            "no aclImdb data given: pass --imdb PATH (critic tune / critic run), set "
            f"dataset.path in the config, or set {IMDB_ENV}=PATH; PATH is the aclImdb folder "
            f"or its archive, local or a storage URI, {IMDB_URL} (sha1 {IMDB_SHA1})"
        )
    return str(chosen) if is_uri(chosen) else os.path.expanduser(chosen)


def resolve_imdb(source: str | Path | Location, *, cache: Path | None = None) -> Location:
    """An aclImdb folder for ``source``: the folder itself (local or in object storage), or an
    archive extracted once into the cache. A local archive is known by its content; one in
    object storage by its URI and stamp (size and ETag on S3), so it is read once, not per run."""
    cache = Path(cache) if cache is not None else cache_dir()
    source = location(source)
    if source.is_dir():
        return source
    if not source.is_file():
        raise CorpusError(f"{source}: no such file or folder")
    if source.is_local:
        key = source.sha256()
    else:
        size, version = source.stamp()  # on S3 its ETag, else its modification time
        key = hashlib.sha256(f"{source.uri}\0{size}\0{version}".encode()).hexdigest()
    folder = extract_archive(source, cache / "extracted" / key[:16])
    if acl_root(location(folder)) is None:  # not aclImdb: nothing of it stays in the cache
        shutil.rmtree(folder, ignore_errors=True)
        raise CorpusError(
            f"{source}: not an aclImdb archive (no {' or '.join(SPLITS)} folder, at its top or "
            "under aclImdb/); nothing of it was kept"
        )
    return location(folder)


def acl_root(path: Location) -> Location | None:
    """The folder holding ``train/`` and ``test/``: ``path`` itself or its ``aclImdb/``."""
    for candidate in (path, path / "aclImdb"):
        if any((candidate / split).is_dir() for split in SPLITS):
            return candidate
    return None


def _max_total_bytes() -> int:
    value = os.environ.get(MAX_TOTAL_ENV, "")
    if not value:
        return MAX_TOTAL_BYTES
    if not value.isdigit() or int(value) < 1:
        raise CorpusError(f"{MAX_TOTAL_ENV} must be a number of bytes, got {value!r}")
    return int(value)


class _Guard:
    """tarfile's 'data' filter, stricter and bounded: absolute names, '..' and any link are
    refused (the data filter would strip a leading '/' and allow links inside the
    destination), and so are members past the size and count bounds."""

    def __init__(self) -> None:
        self.members = 0
        self.total = 0
        self.max_total = _max_total_bytes()

    def __call__(self, member: tarfile.TarInfo, dest: str) -> tarfile.TarInfo:
        name = member.name.replace("\\", "/")
        if name.startswith("/") or ".." in name.split("/"):
            raise tarfile.FilterError(f"refusing path {member.name!r}")
        if member.issym() or member.islnk():
            raise tarfile.FilterError(f"refusing link member {member.name!r}")
        self.members += 1
        self.total += member.size
        if member.size > MAX_MEMBER_BYTES:
            raise tarfile.FilterError(
                f"{member.name!r} is {member.size:,} bytes, more than {MAX_MEMBER_BYTES:,}"
            )
        if self.total > self.max_total or self.members > MAX_MEMBERS:
            raise tarfile.FilterError(
                f"more than {self.max_total:,} bytes or {MAX_MEMBERS:,} members extracted "
                f"(${MAX_TOTAL_ENV} sets the byte limit)"
            )
        return tarfile.data_filter(member, dest)


def extract_archive(archive: str | Path | Location, dest: Path) -> Path:
    """Extract a .tar.gz (read as a stream, so one in object storage is never downloaded
    whole first) once into dest, refusing absolute paths, '..', links and sizes far past
    aclImdb's. The work folder is made beside ``dest`` (same filesystem, so the final
    rename cannot cross one) and named after this process, so a later run removes the work
    folder of one that was killed."""
    done = dest / ".complete"
    if done.is_file():
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_work(dest.parent)
    tmp = Path(tempfile.mkdtemp(prefix=f"{TMP_PREFIX}{os.getpid()}-", dir=dest.parent))
    try:
        try:
            with location(archive).open_input() as raw:
                with tarfile.open(fileobj=raw, mode="r|*") as tar:
                    tar.extractall(tmp, filter=_Guard())
        except tarfile.FilterError as e:
            raise CorpusError(f"{archive}: unsafe archive member ({e})") from e
        except (tarfile.TarError, EOFError, zlib.error, OSError) as e:
            if isinstance(e, OSError) and not _is_damage(e):
                raise
            raise CorpusError(f"{archive}: not a readable .tar.gz archive ({e})") from None
        (tmp / ".complete").write_text(str(archive))
        if dest.exists():
            shutil.rmtree(dest)
        os.replace(tmp, dest)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return dest


def _is_damage(error: OSError) -> bool:
    """gzip's BadGzipFile and friends are OSErrors too; a full disk is not damage."""
    return error.errno is None


def remove_stale_work(folder: Path) -> list[Path]:
    """Remove work folders left by extractions whose process is gone (killed mid-way)."""
    removed = []
    for work in folder.glob(f"{TMP_PREFIX}*"):
        pid = work.name[len(TMP_PREFIX) :].split("-", 1)[0]
        if not pid.isdigit() or not process_alive(int(pid)):
            shutil.rmtree(work, ignore_errors=True)
            removed.append(work)
    return removed
