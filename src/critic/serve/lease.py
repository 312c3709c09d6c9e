"""One owner per ``critic score`` output folder: a lease the job holds while it writes.

Two jobs writing one output collide on shard names and leave it beyond repair, so a job takes
the output's ``_lease.json`` first, by creating it exclusively (of two jobs starting together
exactly one succeeds), renews it while it runs (every :data:`HEARTBEAT_S`) and removes it at the
end. A second job finds it and is refused, told who holds it (host, pid, start time, last
renewal). A lease whose owner is gone is taken over: on this host when its process no longer
exists, from anywhere when it has not been renewed for :data:`EXPIRY_S`.

Where the output lives decides how "exclusively" is done:

- a local disk (:class:`_FileLease`): ``O_CREAT | O_EXCL``; renewal is the file's
  modification time; a takeover moves the dead owner's file aside first;
- S3 (:class:`_ObjectLease`): conditional writes, ``If-None-Match: *`` to create and
  ``If-Match: <ETag>`` to renew, take over and remove, so a lease changed by another job is
  never overwritten; its age is measured on the store's clock (the ``Date`` of the answer
  against the object's ``Last-Modified``). A store that ignores the conditions is detected
  (a second exclusive create succeeds) and the job is told its output is not protected;
- other object stores (gs://, hdfs://): not leased, the job runs as before.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from critic.storage import Location, process_alive, s3_error_code, s3_object

LEASE = "_lease.json"
HEARTBEAT_S = 10.0
EXPIRY_S = 60.0  # six missed renewals: the owner is gone (or its host cannot reach the store)


class OutputBusy(ValueError):
    """Another live job holds the output (the command ends with exit code 2)."""


class OutputLease:
    """``with OutputLease(output):`` the job's ownership of ``output`` (a folder)."""

    def __init__(self, output: Location) -> None:
        self.output = output
        self.owner = {
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }
        if output.is_local:
            self.store: _FileLease | _ObjectLease | None = _FileLease(output)
        elif output.on_s3:
            self.store = _ObjectLease(output)
        else:
            self.store = None
        self.lost = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> OutputLease:
        if self.store is not None:
            self.acquire()
            self._thread = threading.Thread(target=self._renew, name="critic-lease", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, exc_type, *exc: object) -> None:
        if self.store is None:
            return
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        if not self.lost:
            self.store.release()
        elif exc_type is None:
            raise OutputBusy(
                f"{self.output}: another job took this job's lease over (it was not renewed "
                f"for {EXPIRY_S:.0f} s): check the output with the same command once that "
                "job has ended"
            )

    def acquire(self) -> None:
        """Create the lease, or take over a dead owner's; OutputBusy when one lives."""
        for _ in range(3):
            if self.store.create(self.owner):
                return
            held = self.store.read()
            if held is None:
                continue  # released meanwhile
            owner, age, token = held
            if self._alive(owner, age):
                raise OutputBusy(self._busy(owner, age))
            if self.store.take_over(token, self.owner):
                return
        raise OutputBusy(f"{self.output}: could not take the lease {self.store} (contended)")

    @staticmethod
    def _alive(owner: dict[str, Any] | None, age: float) -> bool:
        if owner is None:
            return age < EXPIRY_S  # being written right now, or a long-dead writer's
        if owner.get("host") == socket.gethostname() and isinstance(owner.get("pid"), int):
            if not process_alive(owner["pid"]):
                return False
        return age < EXPIRY_S

    def _renew(self) -> None:
        while not self._stop.wait(HEARTBEAT_S):
            try:
                if not self.store.renew(self.owner):
                    self.lost = True
                    print(
                        f"critic score: warning: {self.output}: another job took the lease over",
                        file=sys.stderr,
                    )
                    return
            except OSError:  # the store is unreachable for now: the next renewal tries again
                pass

    def _busy(self, owner: dict[str, Any] | None, age: float) -> str:
        who = (
            f"host {owner.get('host')}, pid {owner.get('pid')}, started {owner.get('started')}"
            if owner
            else "a job that is starting"
        )
        return (
            f"{self.output} is being written by another critic score ({who}; its lease "
            f"{self.store} was renewed {age:.0f} s ago): wait for it to end, or stop it "
            f"(a lease not renewed for {EXPIRY_S:.0f} s, or whose process is gone, is taken "
            "over)"
        )


def _parse(raw: bytes | str) -> dict[str, Any] | None:
    """A lease's owner; None when it cannot be read (a writer that died between creating and
    filling it)."""
    try:
        owner = json.loads(raw)
    except ValueError:
        return None
    return owner if isinstance(owner, dict) else None


class _FileLease:
    """The lease as a file on a local disk."""

    def __init__(self, output: Location) -> None:
        self.path = Path(output.path) / LEASE
        self._mine: dict[str, Any] | None = None

    def __str__(self) -> str:
        return str(self.path)

    def create(self, owner: dict[str, Any]) -> bool:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(owner, fh)
            fh.flush()
            os.fsync(fh.fileno())
        self._mine = owner
        return True

    def read(self) -> tuple[dict[str, Any] | None, float, Any] | None:
        """(owner, seconds since the last renewal, what identifies this lease); None when
        there is no lease."""
        try:
            age = time.time() - self.path.stat().st_mtime
            owner = _parse(self.path.read_bytes())
        except FileNotFoundError:
            return None
        return owner, age, owner

    def take_over(self, stale: dict[str, Any] | None, owner: dict[str, Any]) -> bool:
        """Move a dead owner's lease aside (if what was moved is not that lease, another job
        took it over meanwhile: put it back); the caller then creates its own."""
        aside = self.path.with_name(f".lease-stale-{os.getpid()}-{time.monotonic_ns()}")
        try:
            os.rename(self.path, aside)
        except FileNotFoundError:
            return False
        try:
            moved = _parse(aside.read_bytes())
        except OSError:
            moved = None
        if moved != stale:
            try:
                os.link(aside, self.path)  # back, unless yet another lease was created
            except FileExistsError:
                pass
        aside.unlink(missing_ok=True)
        return False

    def renew(self, owner: dict[str, Any]) -> bool:
        try:
            os.utime(self.path)
        except FileNotFoundError:  # the folder went away: the job's own writes will say so
            pass
        return True

    def release(self) -> None:
        held = self.read()
        if held is not None and held[2] == self._mine:  # never remove another job's lease
            self.path.unlink(missing_ok=True)


class _ObjectLease:
    """The lease as an S3 object, changed only by conditional writes."""

    def __init__(self, output: Location) -> None:
        self.uri = f"{output.uri.rstrip('/')}/{LEASE}"
        self._client, self._bucket, prefix = s3_object(output)
        self._key = f"{prefix.rstrip('/')}/{LEASE}" if prefix else LEASE
        self._etag: str | None = None

    def __str__(self) -> str:
        return self.uri

    def _put(self, owner: dict[str, Any], recover: bool = True, **condition: str) -> bool:
        """A conditional write of ``owner``; False when the condition fails. With ``recover``,
        a refusal after a retry is checked: when the first try landed and only its answer was
        lost (a reset, a 500 after the write), the object holds exactly these bytes, and the
        write is this job's."""
        from botocore.exceptions import ClientError

        body = json.dumps(owner).encode()
        try:
            answer = self._client.put_object(
                Bucket=self._bucket, Key=self._key, Body=body, **condition
            )
        except ClientError as e:
            refused = s3_error_code(e) in ("PreconditionFailed", "412")
            # 409 ConditionalRequestConflict: another write raced this one
            refused |= e.response.get("ResponseMetadata", {}).get("HTTPStatusCode") in (409, 412)
            if not refused:
                raise OSError(f"{self.uri}: {e}") from None
            return recover and self._landed(body)
        self._etag = answer["ETag"]
        return True

    def _landed(self, body: bytes) -> bool:
        """Whether the lease object holds exactly ``body`` (then its ETag is this job's)."""
        from botocore.exceptions import ClientError

        try:
            answer = self._client.get_object(Bucket=self._bucket, Key=self._key)
        except ClientError:
            return False
        if answer["Body"].read() != body:
            return False
        self._etag = answer["ETag"]
        return True

    def create(self, owner: dict[str, Any]) -> bool:
        if not self._put(owner, IfNoneMatch="*"):
            return False
        # The same write again must be refused; a store that takes it ignores the condition.
        if self._put(owner, recover=False, IfNoneMatch="*"):
            print(
                f"critic score: warning: {self.uri}: this store ignores conditional writes, "
                "so nothing keeps a second job off this output",
                file=sys.stderr,
            )
        return True

    def read(self) -> tuple[dict[str, Any] | None, float, Any] | None:
        from botocore.exceptions import ClientError

        try:
            answer = self._client.get_object(Bucket=self._bucket, Key=self._key)
        except ClientError as e:
            if s3_error_code(e) in ("NoSuchKey", "404"):
                return None
            raise OSError(f"{self.uri}: {e}") from None
        owner = _parse(answer["Body"].read())
        now = answer["ResponseMetadata"]["HTTPHeaders"].get("date")
        age = 0.0
        if now:  # the store's clock on both sides: hosts' clocks may disagree
            from email.utils import parsedate_to_datetime

            age = (parsedate_to_datetime(now) - answer["LastModified"]).total_seconds()
        return owner, max(age, 0.0), answer["ETag"]

    def take_over(self, stale_etag: str, owner: dict[str, Any]) -> bool:
        return self._put(owner, IfMatch=stale_etag)

    def renew(self, owner: dict[str, Any]) -> bool:
        owner = {**owner, "renewed": datetime.now(timezone.utc).isoformat(timespec="seconds")}
        return self._etag is not None and self._put(owner, IfMatch=self._etag)

    def release(self) -> None:
        from botocore.exceptions import ClientError

        if self._etag is None:
            return
        try:
            self._client.delete_object(Bucket=self._bucket, Key=self._key, IfMatch=self._etag)
        except ClientError:  # taken over meanwhile, or gone: not this job's any more
            pass
