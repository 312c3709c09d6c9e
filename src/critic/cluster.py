"""Joining Ray: the cluster a Ray job runs in, else an embedded local Ray (shared by
``critic tune``, ``critic score --engine ray`` and ``critic serve``); and Ray's failures told
in one line (:func:`root_cause`, :func:`error_line`)."""

from __future__ import annotations

import atexit
import contextlib
import os
import re
import threading
from collections.abc import Iterator


def connect_ray(num_cpus: int | None = None) -> None:
    """Join the cluster Ray gives us (inside `ray job submit`, or RAY_ADDRESS), else start an
    embedded local Ray. Does nothing when Ray is already initialized."""
    import ray

    from critic.console import quietly, ray_logging_level

    if ray.is_initialized():
        return
    quiet = {"log_to_driver": False, "logging_level": ray_logging_level()}
    # Quietly: Ray's C++ core prints its start-up lines to stderr whatever the log level.
    if joins_a_cluster():
        quietly(ray.init, address="auto", **quiet)
    else:  # "local": never a Ray that another command left on record (/tmp/ray)
        quietly(ray.init, address="local", num_cpus=num_cpus, include_dashboard=False, **quiet)
    # Registered (once) after Ray's own exit handler, so it runs first and leaves that one
    # nothing to do.
    atexit.unregister(stop_ray)
    atexit.register(stop_ray)


def stop_ray() -> None:
    """Disconnect from Ray, stopping an embedded Ray, in about a second less than
    ``ray.shutdown()`` alone. Ray 2.60 stops the GCS before the autoscaler's monitor, whose
    SIGTERM handler then reports to the GCS that is gone until Ray kills it a second later;
    an embedded Ray has a fixed size, so its monitor is killed first. (At exit, Ray's own
    handler also sleeps half a second for the workers' log lines, which critic does not
    stream.) Does nothing when Ray is not initialized."""
    import ray

    if not ray.is_initialized():
        return
    for monitor in _embedded_monitor():
        monitor.kill()
        monitor.wait()
    ray.shutdown()


def _embedded_monitor() -> list:
    """The process of the embedded Ray's autoscaler monitor (none when joined to a cluster,
    whose monitor is not ours); Ray keeps it in its node's private process table."""
    from ray._private import ray_constants, worker

    node = worker._global_node
    if node is None:
        return []
    infos = node.all_processes.get(ray_constants.PROCESS_TYPE_MONITOR, [])
    return [info.process for info in infos if info.process.poll() is None]


class RaySession:
    """Ray, connected by :func:`ray_session`."""

    def __init__(self, owned: bool) -> None:
        self.owned = owned  # connected by this session (else by its caller, left as it is)
        self._closing: threading.Thread | None = None

    def close_in_background(self) -> None:
        """Start closing now, while the caller finishes (an embedded Ray takes ~0.4 s to stop)."""
        if self.owned and self._closing is None:
            self._closing = threading.Thread(target=stop_ray, name="ray-shutdown")
            self._closing.start()

    def close(self) -> None:
        self.close_in_background()
        if self._closing is not None:
            self._closing.join()


@contextlib.contextmanager
def ray_session(num_cpus: int | None = None) -> Iterator[RaySession]:
    """Ray for the length of a block (:func:`connect_ray`). A connection made here is closed
    after it, which stops an embedded Ray then rather than when the process exits (where
    Ray's exit handler also waits half a second); one the caller made is left open."""
    import ray

    session = RaySession(owned=not ray.is_initialized())
    try:
        connect_ray(num_cpus)
        yield session
    finally:
        session.close()


def joins_a_cluster() -> bool:
    """Whether :func:`connect_ray` joins a running cluster (else it starts an embedded Ray,
    which ends with this process)."""
    return bool(os.environ.get("RAY_ADDRESS")) or in_a_ray_job()


def in_a_ray_job() -> bool:
    """Whether this process is a Ray job's entrypoint (``ray job submit``): Ray's job
    supervisor hands it the job's configuration in this variable (``RAY_JOB_ID`` is set for
    a job's workers, not for its entrypoint)."""
    return bool(os.environ.get("RAY_JOB_CONFIG_JSON_ENV_VAR") or os.environ.get("RAY_JOB_ID"))


def error_line(report: str) -> str | None:
    """The last ``SomeError: why`` line of a Ray report or traceback, without colour codes
    or the error's module path; None when it has no such line."""
    plain = re.sub(r"\x1b\[[0-9;]*m", "", report)
    found = re.findall(r"^\s*(?:\w+\.)*([A-Z]\w*): (.+)$", plain, re.M)
    if not found:
        return None
    name, why = found[-1]
    return f"{name}: {why.strip()}"


def from_ray(error: BaseException) -> bool:
    """An error Ray raised for a task, an actor or a pipeline (not critic's own)."""
    return any(type(e).__module__.startswith("ray.") for e in error_chain(error))


def error_chain(error: BaseException) -> list[BaseException]:
    """``error`` and what caused it, outermost first (Ray's ``cause`` included)."""
    seen: list[BaseException] = []
    while error is not None and error not in seen:
        seen.append(error)
        error = getattr(error, "cause", None) or error.__cause__
    return seen


def root_cause(error: BaseException) -> str:
    """One line for a Ray failure (an actor that died, a task that raised): the innermost
    error with a message, its last traceback line or its first line, without Ray's frames
    and colour codes."""
    for inner in reversed(error_chain(error)):
        text = str(inner)
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        if not lines:
            continue
        # A traceback's last line is the error; any other message says it first.
        if any(line.startswith('File "') for line in lines):
            return (error_line(text) or lines[-1])[:400]
        line = error_line(lines[0]) or lines[0]
        if not line.startswith(type(inner).__name__):
            line = f"{type(inner).__name__}: {line}"
        return line[:400]
    return type(error).__name__
