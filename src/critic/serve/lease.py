"""One owner per ``critic score`` output folder: a lease file the job holds while it writes.

Two jobs writing one output collide on shard names and leave it beyond repair, so a job takes
the output's ``_lease.json`` first, by creating it exclusively (``O_CREAT | O_EXCL``: of two
jobs starting together exactly one succeeds), renews it while it runs (the file's
modification time, every :data:`HEARTBEAT_S`) and removes it at the end. A second job finds it
and is refused, told who holds it (host, pid, start time, last renewal). A lease whose owner is
gone is taken over: on this host when its process no longer exists, from anywhere when it has
not been renewed for :data:`EXPIRY_S`.

Object stores: not yet leased (a conditional create, ``If-None-Match: *``, is the way; see the
hardening issue); a job on an object-store output runs as before.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from critic.storage import Location, process_alive

LEASE = "_lease.json"
HEARTBEAT_S = 10.0
EXPIRY_S = 60.0  # six missed renewals: the owner is gone (or its host cannot reach the disk)


class OutputBusy(ValueError):
    """Another live job holds the output (the command ends with exit code 2)."""


class OutputLease:
    """``with OutputLease(output):`` the job's ownership of ``output`` (a folder)."""

    def __init__(self, output: Location) -> None:
        self.output = output
        self.path = Path(output.path) / LEASE if output.is_local else None
        self.owner = {
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> OutputLease:
        if self.path is not None:
            self.acquire()
            self._thread = threading.Thread(target=self._renew, name="critic-lease", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.path is None:
            return
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        if self._read() == self.owner:  # never remove a lease another job has taken over
            self.path.unlink(missing_ok=True)

    def acquire(self) -> None:
        """Create the lease, or take over a dead owner's; OutputBusy when one lives."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(3):
            if self._create():
                return
            held = self._read()
            if self._alive(held):
                raise OutputBusy(self._busy(held))
            self._take_over(held)
        raise OutputBusy(f"{self.output}: could not take the lease {self.path} (contended)")

    def _create(self) -> bool:
        try:
            fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(self.owner, fh)
            fh.flush()
            os.fsync(fh.fileno())
        return True

    def _read(self) -> dict[str, Any] | None:
        """The lease's owner; None when there is none, or it cannot be read (a writer that
        died between creating and filling it)."""
        try:
            owner = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return owner if isinstance(owner, dict) else None

    def _age(self) -> float:
        try:
            return time.time() - self.path.stat().st_mtime
        except FileNotFoundError:
            return float("inf")

    def _alive(self, owner: dict[str, Any] | None) -> bool:
        age = self._age()
        if age == float("inf"):
            return False  # released meanwhile: try again
        if owner is None:
            return age < EXPIRY_S  # being written right now, or a long-dead writer's
        if owner.get("host") == socket.gethostname() and isinstance(owner.get("pid"), int):
            if not process_alive(owner["pid"]):
                return False
        return age < EXPIRY_S

    def _take_over(self, stale: dict[str, Any] | None) -> None:
        """Move a dead owner's lease aside; if what was moved is not that lease (another job
        took it over meanwhile), put it back."""
        aside = self.path.with_name(f".lease-stale-{os.getpid()}-{time.monotonic_ns()}")
        try:
            os.rename(self.path, aside)
        except FileNotFoundError:
            return
        try:
            moved = json.loads(aside.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            moved = None
        if moved != stale:
            try:
                os.link(aside, self.path)  # back, unless yet another lease was created
            except FileExistsError:
                pass
        aside.unlink(missing_ok=True)

    def _renew(self) -> None:
        while not self._stop.wait(HEARTBEAT_S):
            try:
                os.utime(self.path)
            except OSError:  # the folder went away: the job's own writes will say so
                pass

    def _busy(self, owner: dict[str, Any] | None) -> str:
        who = (
            f"host {owner.get('host')}, pid {owner.get('pid')}, started {owner.get('started')}"
            if owner
            else "a job that is starting"
        )
        return (
            f"{self.output} is being written by another critic score ({who}; its lease "
            f"{self.path} was renewed {self._age():.0f} s ago): wait for it to end, or stop it "
            f"(a lease not renewed for {EXPIRY_S:.0f} s, or whose process is gone, is taken "
            "over)"
        )
