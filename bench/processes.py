"""What the benchmarks share to start and end the servers they measure: a free port on
127.0.0.1, a Ray node's own agent ports, and the end of a process started in its own group
(never `ray stop` or pkill)."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess

_given: set[int] = set()  # ports free_port has handed out


def free_port() -> int:
    """A TCP port on 127.0.0.1 free right now and never handed out before by this process:
    a node's four agent ports are bound only later, so being free is not enough (the tests'
    helper of the same name had two of them draw one port)."""
    while True:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        if port not in _given:
            _given.add(port)
            return port


def ray_node_ports() -> list[str]:
    """`ray start` flags giving a node agent ports of its own: left to Ray, two nodes on one
    machine (or a node beside a test's) take the same ones."""
    flags = ("--dashboard-agent-listen-port", "--dashboard-agent-grpc-port",
             "--runtime-env-agent-port", "--metrics-export-port")  # fmt: skip
    return [f"{flag}={free_port()}" for flag in flags]


def stop_group(proc: subprocess.Popen, timeout: float = 30) -> None:
    """End a process started in its own group: SIGTERM to the group, ``timeout`` s to exit,
    then SIGKILL to whatever of the group is left (`ray start`'s children outlive it)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=timeout)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
