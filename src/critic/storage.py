"""Where critic reads and writes: a local path or a URI, resolved in this one module.

A :class:`Location` is a pyarrow filesystem plus a path on it. Local paths are made absolute
here, on the driver, so a location shipped to a Ray worker means the same file; URIs
(``s3://``, ``gs://``, ``hdfs://``, ``file://``) go to pyarrow's filesystem layer, which
reads the standard settings of each store (for S3: ``AWS_ACCESS_KEY_ID``,
``AWS_SECRET_ACCESS_KEY``, ``AWS_REGION``/``AWS_DEFAULT_REGION`` and ``AWS_ENDPOINT_URL``
for S3-compatible stores), so critic has no storage settings of its own.

Object stores have no rename: :meth:`Location.write_atomic` writes a finished object in one
piece (it becomes visible complete or not at all); on local disks it writes a temporary
file, fsyncs and renames it.

Object stores fail a request now and then (503 Slow Down, 500, a reset connection, a body cut
short). pyarrow's S3 client retries single requests, but not a ranged read whose body broke
off mid-way, nor a listing or an upload as a whole: every operation on an object store goes
through :func:`retried`, which repeats it (a read from where it stopped) with backoff, up to
:data:`ATTEMPTS` times ($CRITIC_STORAGE_ATTEMPTS), and names the URI when it gives up. An
``s3://`` location is refused up front when no credentials can be found (unless
$CRITIC_S3_ANONYMOUS asks for unsigned requests, for a public bucket): the store would
otherwise take unsigned requests and fail late.
"""

from __future__ import annotations

import fnmatch
import functools
import glob as _glob
import hashlib
import io
import json
import os
import random
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, NamedTuple

_MAGIC = ("*", "?", "[")
# Each read of an object store is one ranged GET, with a cost per request on top of the bytes
# (0.13 s per request on the test S3 server for a 200 MB object; tens of ms on a real store):
# objects are read in large pieces.
REMOTE_BUFFER = 8 << 20
WHOLE_READ_CHUNK = 32 << 20
ATTEMPTS_ENV = "CRITIC_STORAGE_ATTEMPTS"
ANONYMOUS_ENV = "CRITIC_S3_ANONYMOUS"
ATTEMPTS = 6  # tries of one object-store operation; waits 0.2, 0.4, ... 3.2 s between them
_FIRST_WAIT_S = 0.2
# Errors a second try cannot mend: the object or bucket is not there, access is denied, the
# request is wrong (HTTP 4xx but 408 Request Timeout and 429 Too Many Requests).
_FINAL = re.compile(
    r"HTTP status 4(?!08|29)\d\d|ACCESS_DENIED|NO_SUCH_|INVALID_|NoSuch|AccessDenied|Invalid"
)


class StorageError(ValueError):
    """A location that cannot be resolved or used as asked."""


def attempts() -> int:
    """How many times an object-store operation is tried ($CRITIC_STORAGE_ATTEMPTS, >= 1)."""
    raw = os.environ.get(ATTEMPTS_ENV, "")
    try:
        value = int(raw) if raw else ATTEMPTS
    except ValueError:
        raise StorageError(f"{ATTEMPTS_ENV}={raw!r}: not a whole number") from None
    if value < 1:
        raise StorageError(f"{ATTEMPTS_ENV}={raw!r}: must be at least 1")
    return value


def transient(error: BaseException) -> bool:
    """Whether another try of the failed object-store operation may succeed."""
    if isinstance(error, (FileNotFoundError, PermissionError, IsADirectoryError)):
        return False
    return isinstance(error, OSError) and not _FINAL.search(str(error))


def retried(
    uri: str, what: str, operation: Callable[[], Any], reset: Callable[[], None] | None = None
):
    """``operation()``, tried again with backoff after a transient error (``reset()`` first,
    when given); after the last try an OSError naming ``uri`` and ``what`` was being done."""
    tries = attempts()
    for attempt in range(1, tries + 1):
        try:
            return operation()
        except OSError as e:
            if not transient(e):
                raise
            if attempt == tries:
                first = str(e).splitlines()[0] if str(e) else type(e).__name__
                raise OSError(
                    f"{uri}: {what} failed {tries} times; the last error: {first}"
                ) from None
        wait = _FIRST_WAIT_S * 2 ** (attempt - 1)
        time.sleep(wait * random.uniform(0.75, 1.25))
        if reset is not None:
            reset()
    raise AssertionError("unreachable")


def _pyarrow_fs():
    try:
        import pyarrow.fs as pafs
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise StorageError("storage URIs need pyarrow: pip install 'critic[arrow]'") from e
    return pafs


def is_uri(value: str | os.PathLike) -> bool:
    return "://" in str(value)


class Listed(NamedTuple):
    """What the listing or lookup that found a file said of it: kind (a pyarrow FileType),
    size, an S3 object's ETag, and which S3 listing found it (so that it can be made again:
    :func:`stamps_relisted`)."""

    type: Any
    size: int
    etag: str | None = None
    listing: tuple[str, bool] | None = None  # (folder URI, recursive) of the S3 listing

    @property
    def stamp(self) -> tuple[int, str | None]:
        """An S3 object's stamp (:meth:`Location.stamp`): its size and ETag."""
        return self.size, self.etag


@dataclass(frozen=True)
class Location:
    """A file or folder: ``uri`` (what users see and workers receive) on ``fs`` at ``path``."""

    uri: str
    fs: Any  # pyarrow.fs.FileSystem
    path: str
    # What the listing that found this file said of it: its kind, size and ETag then cost
    # no request of their own (an object store answers each in a round trip, and a job
    # plans each input with several). stamp() always asks afresh.
    listed: Listed | None = field(default=None, compare=False, repr=False)

    def __reduce__(self):  # a copy elsewhere, later, asks the store afresh
        return (Location, (self.uri, self.fs, self.path))

    # -- naming ------------------------------------------------------------------------
    def __str__(self) -> str:
        return self.uri

    def __truediv__(self, name: str) -> Location:
        return Location(
            f"{self.uri.rstrip('/')}/{name}", self.fs, f"{self.path.rstrip('/')}/{name}"
        )

    @property
    def name(self) -> str:
        return self.path.rstrip("/").rsplit("/", 1)[-1]

    @property
    def parent(self) -> Location:
        return Location(self.uri.rstrip("/").rsplit("/", 1)[0], self.fs, _parent(self.path))

    @property
    def is_local(self) -> bool:
        return type(self.fs).__name__ == "LocalFileSystem"

    @property
    def on_s3(self) -> bool:
        return _is_s3(self.fs)

    @property
    def local_path(self) -> Path:
        """The local file system path (only for local locations)."""
        if not self.is_local:
            raise StorageError(f"{self.uri} is not on the local file system")
        return Path(self.path)

    def relative_to(self, base: Location) -> str:
        return self.path[len(base.path.rstrip("/")) + 1 :]

    # -- what is there -----------------------------------------------------------------
    def retry(self, what: str, operation: Callable[[], Any]):
        """``operation()``: once on a local disk, :func:`retried` on an object store."""
        return operation() if self.is_local else retried(self.uri, what, operation)

    def _info(self, fresh: bool = False):
        if self.listed is not None and not fresh:
            return self.listed
        return self.retry("looking it up", lambda: self.fs.get_file_info(self.path))

    def looked_up(self) -> Location:
        """This location knowing its kind and size from one lookup, as if a listing had
        found it: on an object store each later check is then free (a job asks an input's
        kind and size a score of times). A local one is itself (os.stat is cheap)."""
        if self.listed is not None or self.is_local:
            return self
        listed = (self._s3_head() or self._s3_folder()) if self.on_s3 else None
        if listed is None:  # a bucket, or on another store
            info = self._info()
            listed = Listed(info.type, int(info.size or 0))
        return Location(self.uri, self.fs, self.path, listed)

    def _s3_head(self) -> Listed | None:
        """An S3 object's size and ETag from one HEAD request (pyarrow's lookup drops the
        ETag, which a job asks next); None when no object has this key."""
        client, bucket, key = s3_object(self)
        if not key or key.endswith("/"):  # a bucket or a folder (a marker is not a file)
            return None
        try:
            head = client.head_object(Bucket=bucket, Key=key)
        except Exception as e:  # botocore's errors, after its own retries
            if s3_error_code(e) in ("404", "NoSuchKey", "NotFound"):
                return None
            raise StorageError(f"{self.uri}: cannot look it up ({e})") from e
        etag = str(head["ETag"]).strip('"')
        return Listed(_pyarrow_fs().FileType.File, int(head["ContentLength"]), etag)

    def _s3_folder(self) -> Listed | None:
        """A key that is no object: a folder when one key lies under it (an empty folder's
        marker counts), else nothing; one listing request (after the HEAD, pyarrow's own
        lookup asked two more). None for a bucket, which pyarrow looks up."""
        client, bucket, key = s3_object(self)
        if not key:
            return None
        fs = _pyarrow_fs()
        try:
            page = client.list_objects_v2(Bucket=bucket, Prefix=f"{key.rstrip('/')}/", MaxKeys=1)
        except Exception as e:  # botocore's errors, after its own retries
            if s3_error_code(e) == "NoSuchBucket":
                return Listed(fs.FileType.NotFound, 0)
            raise StorageError(f"{self.uri}: cannot look it up ({e})") from e
        found = page.get("KeyCount", len(page.get("Contents", ())))
        return Listed(fs.FileType.Directory if found else fs.FileType.NotFound, 0)

    # A local file asks os.stat (a tenth of pyarrow's cost, for corpora of many small
    # files), unless its listing already said.
    def exists(self) -> bool:
        if self.listed is None and self.is_local:
            return os.path.exists(self.path)
        return self._info().type != _pyarrow_fs().FileType.NotFound

    def is_file(self) -> bool:
        if self.listed is None and self.is_local:
            return os.path.isfile(self.path)
        return self._info().type == _pyarrow_fs().FileType.File

    def is_dir(self) -> bool:
        if self.listed is None and self.is_local:
            return os.path.isdir(self.path)
        return self._info().type == _pyarrow_fs().FileType.Directory

    def size(self) -> int:
        if self.listed is None and self.is_local:
            return os.stat(self.path).st_size
        return int(self._info().size)

    def stamp(self, known: bool = False) -> tuple[int, int | str]:
        """What changes when the file is rewritten: (size, modification time in ns), on S3
        (size, ETag); (0, 0) when nothing is there. Asked afresh, unless ``known`` and the
        listing or lookup that found this S3 object told it: a job takes its inputs' stamps
        from the listing it was planned from, and asks afresh at its end."""
        if self.is_local:
            try:
                st = os.stat(self.path)
            except FileNotFoundError:
                return 0, 0
            return st.st_size, st.st_mtime_ns
        if self.on_s3:
            told = known and self.listed is not None and self.listed.etag
            said = self.listed if told else self._s3_head()
            return said.stamp if said is not None else (0, 0)
        info = self._info(fresh=True)
        return int(info.size or 0), int(info.mtime_ns or 0)

    def files(self, recursive: bool = True) -> list[Location]:
        """The files below this folder, sorted by path, each knowing what the listing said
        of it (:class:`Listed`)."""
        if self.on_s3:
            found = self.retry("listing it", lambda: self._s3_listing(recursive))
        else:
            pafs = _pyarrow_fs()
            selector = pafs.FileSelector(self.path, recursive=recursive, allow_not_found=True)
            infos = self.retry("listing it", lambda: self.fs.get_file_info(selector))
            file = pafs.FileType.File
            found = [(i.path, Listed(file, i.size)) for i in infos if i.type == file]
        base = self.path.rstrip("/")
        return [
            Location(f"{self.uri.rstrip('/')}/{path[len(base) + 1 :]}", self.fs, path, listed)
            for path, listed in sorted(found, key=lambda f: f[0])
        ]

    def _s3_listing(self, recursive: bool) -> list[tuple[str, Listed]]:
        """The objects below this prefix from S3's own listing, 1,000 per request with their
        size and ETag (pyarrow's listing drops the ETag, and a HEAD per object for it made
        planning a job cost a round trip per input)."""
        client, bucket, key = s3_object(self, text_timestamps=True)
        query = {"Bucket": bucket, "Prefix": f"{key.rstrip('/')}/" if key else ""}
        if not recursive:
            query["Delimiter"] = "/"
        found, file = [], _pyarrow_fs().FileType.File
        try:
            for page in client.get_paginator("list_objects_v2").paginate(**query):
                for obj in page.get("Contents", ()):
                    if not obj["Key"].endswith("/"):  # a folder marker is not a file
                        etag = str(obj["ETag"]).strip('"')
                        listed = Listed(file, obj["Size"], etag, (self.uri, recursive))
                        found.append((f"{bucket}/{obj['Key']}", listed))
        except Exception as e:  # botocore's errors
            code = s3_error_code(e)
            if code == "NoSuchBucket":
                return []
            if code or not transient(OSError(str(e))):  # the store's answer: no retry
                raise StorageError(f"{self.uri}: cannot list it ({e})") from e
            raise OSError(str(e)) from e
        return found

    # -- reading -----------------------------------------------------------------------
    def open_input(self) -> BinaryIO:
        """A seekable, buffered binary file with lines (local files are opened directly)."""
        if self.is_local:
            return open(self.path, "rb")
        return io.BufferedReader(self.open_raw(), REMOTE_BUFFER)

    def open_raw(self) -> BinaryIO:
        """A seekable binary file without a buffer of its own, for readers that ask for
        large ranges themselves (Parquet): on an object store each read is retried."""
        if self.is_local:
            return open(self.path, "rb", buffering=0)
        return _Remote(self)

    def read_bytes(self) -> bytes:
        with self.open_input() as fh:
            return fh.read()

    def read_text(self, encoding: str = "utf-8") -> str:
        return self.read_bytes().decode(encoding)

    def sha256(self) -> str:
        digest = hashlib.sha256()
        with self.open_input() as fh:
            # One buffer, no larger than the file: read(32 MiB) allocated 32 MiB per call,
            # 80 us per small file (a corpus of many small files is fingerprinted file by file).
            size = os.fstat(fh.fileno()).st_size if self.is_local else WHOLE_READ_CHUNK
            buffer = bytearray(max(1, min(WHOLE_READ_CHUNK, size + 1)))
            view = memoryview(buffer)
            while n := fh.readinto(buffer):
                digest.update(view[:n])
        return digest.hexdigest()

    def etag(self) -> str:
        """The store's content tag of this S3 object (its ETag: an MD5 of the content, or of
        its parts' MD5s for a multipart upload), from one HEAD request: an identity of the
        content that costs no read of it."""
        if self.listed is not None and self.listed.etag:
            return self.listed.etag
        client, bucket, key = s3_object(self)
        try:
            return str(client.head_object(Bucket=bucket, Key=key)["ETag"]).strip('"')
        except Exception as e:  # botocore's errors: not found, denied, unreachable
            raise StorageError(f"{self.uri}: cannot look up its ETag ({e})") from e

    # -- writing -----------------------------------------------------------------------
    def make_dirs(self) -> None:
        self.retry("creating it", lambda: self.fs.create_dir(self.path, recursive=True))

    def write_atomic(self, data: bytes) -> None:
        """Make this file hold ``data``, visible complete or not at all (see the module
        docstring). A writer killed half-way leaves no file under this name."""
        if self.is_local:
            path = Path(self.path)
            tmp = path.with_name(f".tmp-{path.name}-{os.getpid()}")
            try:
                with open(tmp, "wb") as fh:
                    fh.write(data)
                    fh.flush()
                    os.fsync(fh.fileno())
            except OSError as e:  # a full disk, a quota: name the file, leave nothing behind
                tmp.unlink(missing_ok=True)
                raise OSError(
                    e.errno, f"{e.strerror} (writing {len(data)} bytes)", str(path)
                ) from None
            os.replace(tmp, path)
            _fsync_dir(path.parent)
            return

        # One upload of the finished bytes: the store publishes the object when the upload
        # completes (a single PUT, or the completion of a multipart upload), so uploading it
        # again after a failure is harmless. compression=None: pyarrow would otherwise gzip a
        # second time what is written under a .gz name.
        def upload() -> None:
            with self.fs.open_output_stream(self.path, compression=None) as out:
                out.write(data)

        retried(self.uri, f"writing {len(data)} bytes", upload)


def s3_error_code(error: BaseException) -> str:
    """The code in the store's answer to a failed botocore call ("404", "NoSuchKey",
    "PreconditionFailed", ...); "" when the call got no answer (unreachable, reset)."""
    return str(getattr(error, "response", {}).get("Error", {}).get("Code") or "")


def stamps_relisted(paths: list[Location]) -> dict[str, tuple[int, Any]]:
    """The stamps (:meth:`Location.stamp`) of the ``paths`` an S3 listing found, by URI, from
    those listings made again (1,000 objects per request) instead of a HEAD each; (0, 0) for
    one no longer there. Paths no listing found are left out."""
    found = [p for p in paths if p.listed is not None and p.listed.listing]
    now: dict[str, tuple[int, Any]] = {}
    for folder, recursive in sorted({p.listed.listing for p in found}):
        now.update((f.uri, f.listed.stamp) for f in location(folder).files(recursive) if f.listed)
    return {p.uri: now.get(p.uri, (0, 0)) for p in found}


class _Remote(io.RawIOBase):
    """An object as a raw, seekable Python stream (io.BufferedReader adds lines): each read is
    one ranged request, retried from the same offset (on a fresh handle) when it fails."""

    def __init__(self, where: Location) -> None:
        self._where = where
        self._native = None
        self._size: int | None = None
        self._pos = 0

    def _file(self):
        if self._native is None:
            self._native = retried(
                self._where.uri,
                "opening it",
                lambda: self._where.fs.open_input_file(self._where.path),
            )
        return self._native

    def _reopen(self) -> None:
        if self._native is not None:
            try:
                self._native.close()
            except OSError:
                pass
        self._native = None

    def _read(self, what: str, operation: Callable[[Any], Any]):
        return retried(self._where.uri, what, lambda: operation(self._file()), self._reopen)

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def size(self) -> int:
        if self._size is None:
            self._size = int(self._read("reading its size", lambda f: f.size()))
        return self._size

    def readinto(self, buffer) -> int:
        want = min(len(buffer), max(self.size() - self._pos, 0))
        if want == 0:
            return 0
        at = self._pos
        data = self._read(f"reading {want} bytes at {at}", lambda f: f.read_at(want, at))
        buffer[: len(data)] = data
        self._pos += len(data)
        return len(data)

    def readall(self) -> bytes:
        # io.RawIOBase's readall reads 8 KiB at a time: one request each on an object store.
        want, at = max(self.size() - self._pos, 0), self._pos
        data = self._read(f"reading {want} bytes at {at}", lambda f: f.read_at(want, at))
        self._pos += len(data)
        return data

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0:
            return self.readall()
        buffer = bytearray(size)
        return bytes(buffer[: self.readinto(buffer)])

    def seek(self, offset: int, whence: int = 0) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: None}[whence]
        self._pos = (self.size() if base is None else base) + offset
        return self._pos

    def tell(self) -> int:
        return self._pos

    def close(self) -> None:
        self._reopen()
        super().close()


def _parent(path: str) -> str:
    stripped = path.rstrip("/")
    return stripped.rsplit("/", 1)[0] if "/" in stripped else stripped


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def location(value: str | os.PathLike | Location) -> Location:
    """A local path (made absolute here) or a URI, as a :class:`Location`."""
    if isinstance(value, Location):
        return value
    text = os.fspath(value)
    pafs = _pyarrow_fs()
    if is_uri(text):
        try:
            fs, path = pafs.FileSystem.from_uri(_with_delayed_opens(text))
        except (ValueError, OSError) as e:
            raise StorageError(f"{text}: not a storage URI pyarrow can open ({e})") from e
        if _is_s3(fs):
            fs = _signed_or_anonymous(text, fs)
        return Location(text.rstrip("/") if path else text, fs, path.rstrip("/") or path)
    path = os.path.abspath(os.path.expanduser(text))
    return Location(path, pafs.LocalFileSystem(), path)


def _is_s3(fs) -> bool:
    return type(fs).__name__ == "S3FileSystem"


def _with_delayed_opens(uri: str) -> str:
    """An ``s3://`` URI as critic opens it: with pyarrow's delayed opens (unless it says
    otherwise), so an upload that fits in one part (a shard, a manifest, a summary) is one
    PutObject, not the three requests of a multipart upload (start, the part, completion).
    An error such as a missing bucket then comes at close, inside the write's retries."""
    if not uri.lower().startswith("s3://") or "allow_delayed_open=" in uri:
        return uri
    return f"{uri}{'&' if '?' in uri else '?'}allow_delayed_open=true"


def _s3_settings(fs) -> dict[str, Any]:
    """An S3 filesystem's settings as pyarrow rebuilds it from them (endpoint, region,
    credentials given in the URI, ...)."""
    return fs.__reduce__()[1][0]


def _signed_or_anonymous(uri: str, fs):
    """The S3 filesystem for ``uri``: unsigned when $CRITIC_S3_ANONYMOUS asks for it (a public
    bucket), else refused when no credentials can sign its requests: the store would take
    unsigned ones (reads of a public bucket; on some servers, anonymous uploads stored in their
    transfer framing) and the job would fail late, or write wrong bytes."""
    settings = _s3_settings(fs)
    if os.environ.get(ANONYMOUS_ENV, "").lower() in ("1", "true", "yes"):
        return _pyarrow_fs().S3FileSystem(**{**settings, "anonymous": True})
    if settings.get("access_key") or _credentials_found():
        return fs
    raise StorageError(
        f"{uri}: no credentials found for S3: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY "
        f"(or AWS_PROFILE, a credentials file, a role); for a public bucket set "
        f"{ANONYMOUS_ENV}=true"
    )


@functools.cache
def _credentials_found() -> bool:
    """Whether AWS's standard credential chain (variables, files, profiles, roles) yields
    credentials here: the chain pyarrow's S3 client follows too."""
    import botocore.session

    return botocore.session.get_session().get_credentials() is not None


def s3_object(where: Location, text_timestamps: bool = False) -> tuple[Any, str, str]:
    """(a botocore S3 client for the store ``where`` lives on, bucket, key): for what pyarrow
    does not offer, conditional writes (``If-None-Match``/``If-Match``) and listings with
    ETags. The client talks to the same endpoint with the same credentials and region as the
    location's filesystem. ``text_timestamps``: a client that leaves timestamps as the text
    the store sent (a listing's LastModified of every object, unparsed, costs ~100 us less
    each; critic reads none of them)."""
    if not where.on_s3:
        raise StorageError(f"{where}: not on S3")
    bucket, _, key = where.path.partition("/")
    # What the client is made of: the filesystem's settings, the credential chain's
    # variables and the retry budget (a change to any of them makes a new client).
    made_of = {
        "settings": _s3_settings(where.fs),
        "env": {k: v for k, v in os.environ.items() if k.startswith("AWS_")},
        "attempts": attempts(),
    }
    made = json.dumps(made_of, sort_keys=True, default=str)
    return _s3_client(made, text_timestamps), bucket, key


@functools.lru_cache(maxsize=8)
def _s3_client(made_of: str, text_timestamps: bool = False):
    """One botocore client per store (creating one costs ~50 ms: not once per object)."""
    import botocore.session
    from botocore import UNSIGNED
    from botocore.config import Config

    made = json.loads(made_of)
    settings = made["settings"]
    endpoint = settings.get("endpoint_override") or None
    if endpoint and "://" not in endpoint:
        endpoint = f"{settings.get('scheme') or 'https'}://{endpoint}"
    style = "virtual" if settings.get("force_virtual_addressing") or not endpoint else "path"
    config = Config(
        retries={"mode": "standard", "max_attempts": made["attempts"]},
        s3={"addressing_style": style},
        signature_version=UNSIGNED if settings.get("anonymous") else None,
    )
    session = botocore.session.get_session()
    if text_timestamps:
        session.get_component("response_parser_factory").set_parser_defaults(timestamp_parser=str)
    client = session.create_client(
        "s3",
        region_name=settings.get("region") or None,
        endpoint_url=endpoint,
        aws_access_key_id=settings.get("access_key") or None,
        aws_secret_access_key=settings.get("secret_key") or None,
        aws_session_token=settings.get("session_token") or None,
        config=config,
    )
    return client


def expand(pattern: str | os.PathLike) -> list[Location]:
    """The files and folders a path, URI or glob names, sorted (a glob that matches nothing
    is an empty list; a plain name is returned as it is, existing or not)."""
    text = os.fspath(pattern)
    if not any(m in text for m in _MAGIC):
        return [location(text)]
    if not is_uri(text):
        return [location(p) for p in sorted(_glob.glob(os.path.expanduser(text), recursive=True))]
    scheme, rest = text.split("://", 1)
    fixed = rest[: min(rest.index(m) for m in _MAGIC if m in rest)].rsplit("/", 1)[0]
    base = location(f"{scheme}://{fixed}")
    matches = [f for f in base.files() if fnmatch.fnmatchcase(f"{scheme}://{f.path}", text)]
    return sorted(matches, key=lambda f: f.path)


def cache_dir() -> Path:
    """critic's cache: extracted archives, fetched bundles, working copies of remote runs."""
    return Path(os.environ.get("CRITIC_CACHE", Path.home() / ".cache" / "critic"))


def working_copy(folder: Location) -> Path:
    """The local folder critic works in for ``folder``: the folder itself when it is local,
    else a mirror in critic's cache; :func:`push` and :func:`pull` move files between the two."""
    if folder.is_local:
        return folder.local_path
    return cache_dir() / "mirrors" / hashlib.sha256(folder.uri.encode()).hexdigest()[:16]


def push(local: Path, folder: Location, rel: str) -> None:
    """Upload ``local/rel`` (a file, or every file below a folder) to ``folder/rel``; nothing
    to do when ``folder`` is local (``local`` is then the folder itself)."""
    if folder.is_local:
        return
    source = local / rel
    files = [source] if source.is_file() else sorted(p for p in source.rglob("*") if p.is_file())
    for path in files:
        (folder / path.relative_to(local).as_posix()).write_atomic(path.read_bytes())


def pull(folder: Location, rel: str, local: Path) -> Path:
    """Download ``folder/rel`` (a file, or every file below a prefix) into ``local/rel``,
    skipping files already there; returns ``local/rel``. Nothing to do for a local folder."""
    target = local / rel
    if folder.is_local:
        return target
    remote = folder / rel
    files = [remote] if remote.is_file() else remote.files()
    if not files:
        raise StorageError(f"{remote}: no such file or folder")
    for f in files:
        dest = local / f.relative_to(folder)
        if not dest.is_file():
            dest.parent.mkdir(parents=True, exist_ok=True)
            location(dest).write_atomic(f.read_bytes())
    return target


def process_alive(pid: int) -> bool:
    """Whether process ``pid`` of this host still runs: the writer behind a work folder or a
    lease left on a local disk (a process of another user counts as running)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
