"""Joining Ray: the cluster a Ray job runs in, else an embedded local Ray (shared by
``critic tune``, ``critic score --engine ray`` and ``critic serve``)."""

from __future__ import annotations

import os


def connect_ray(num_cpus: int | None = None) -> None:
    """Join the cluster Ray gives us (inside `ray job submit`, or RAY_ADDRESS), else start an
    embedded local Ray. Does nothing when Ray is already initialized."""
    import ray

    if ray.is_initialized():
        return
    if os.environ.get("RAY_ADDRESS") or os.environ.get("RAY_JOB_ID"):
        ray.init(address="auto", log_to_driver=False)
    else:
        ray.init(num_cpus=num_cpus, include_dashboard=False, log_to_driver=False)
