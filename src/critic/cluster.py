"""Joining Ray: the cluster a Ray job runs in, else an embedded local Ray (shared by
``critic tune``, ``critic score --engine ray`` and ``critic serve``)."""

from __future__ import annotations

import os
import re


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
    else:
        quietly(ray.init, num_cpus=num_cpus, include_dashboard=False, **quiet)


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
