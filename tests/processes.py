"""Helpers for tests that start servers in their own process group (Ray head, critic serve)."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stop(proc: subprocess.Popen, *, whole_group: bool, timeout: float) -> None:
    """SIGTERM (to its whole process group, or to the process alone so it can shut its
    children down itself), wait ``timeout`` s, then SIGKILL the group. Only this process
    group is touched, never other Ray processes on the machine."""
    with contextlib.suppress(ProcessLookupError):
        if whole_group:
            os.killpg(proc.pid, signal.SIGTERM)
        else:
            proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
