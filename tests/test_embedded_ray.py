"""An embedded Ray (``critic.cluster.connect_ray`` with no cluster to join) ends with the
command: every process it started is gone after ``stop_ray``, and after an exit that did not
call it. Each case runs in a fresh Python with its own Ray temp folder."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import process_tree, ray_temp_dir, running, tiny_sweep_config

pytestmark = pytest.mark.ray

pytest.importorskip("ray")

# Starts an embedded Ray, says so, waits for a line on stdin, then stops Ray or just exits.
CHILD = """
import json, sys
from critic.cluster import _embedded_monitor, connect_ray, stop_ray
connect_ray(1)
print(json.dumps([p.pid for p in _embedded_monitor()]), flush=True)
sys.stdin.readline()
if sys.argv[1] == "stop":
    stop_ray()
    print(json.dumps([p.pid for p in _embedded_monitor()]), flush=True)
"""


def _embedded_ray_env(temp: Path) -> dict[str, str]:
    """The environment of a child that starts its own Ray in ``temp`` (no cluster named)."""
    env = {**os.environ, "RAY_TMPDIR": str(temp)}
    env.pop("RAY_ADDRESS", None)
    return env


def _still_running(pids: list[int], within: float = 30.0) -> list[int]:
    """Those of ``pids`` still running after ``within`` seconds (a raylet ends its workers
    and agents after it is told to stop)."""
    deadline = time.monotonic() + within
    while (left := [pid for pid in pids if running(pid)]) and time.monotonic() < deadline:
        time.sleep(0.2)
    return left


@pytest.mark.parametrize("how", ["stop", "exit"])
def test_an_embedded_ray_leaves_no_process_behind(how):
    """``stop``: stop_ray(), which kills the autoscaler's monitor before Ray's shutdown;
    ``exit``: the command ends without it (its exit handler stops Ray)."""
    with ray_temp_dir() as temp:
        child = subprocess.Popen(
            [sys.executable, "-c", CHILD, how], env=_embedded_ray_env(temp), text=True,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )  # fmt: skip
        try:
            monitors = json.loads(child.stdout.readline() or "null")
            ray_processes = process_tree(child.pid)
            out, err = child.communicate("go\n", timeout=120)
        finally:
            child.kill()
            child.wait()
    assert child.returncode == 0, err[-3000:]
    assert len(ray_processes) >= 4  # GCS, raylet, monitor, agents, workers
    # The monitor is found (else stop_ray would fall back to Ray's slower order unseen).
    assert monitors is not None and len(monitors) == 1, err[-3000:]
    assert monitors[0] in ray_processes
    if how == "stop":
        assert json.loads(out) == []
    assert _still_running(ray_processes) == []


SWEEP_CHILD = """
import json, sys
import ray
from critic.orchestrator.config import SweepConfig
from critic.orchestrator.sweep import run_sweep
run_sweep(SweepConfig.from_dict(json.loads(sys.argv[1])), num_cpus=1)
print(json.dumps(ray.is_initialized()), flush=True)
"""


@pytest.mark.tf
def test_a_sweep_stops_the_embedded_ray_it_started(tmp_path):
    """Ray for the sweep and its refits only: `critic run` exports and scores after it
    without Ray's processes beside it."""
    cfg = tiny_sweep_config(
        tmp_path,
        model={"family": "conv1d", "embedding_dim": 8, "filters": 8},
        search={"num_samples": 1},
        training={"epochs": 1, "batch_size": 64},
    )
    with ray_temp_dir() as temp:
        done = subprocess.run(
            [sys.executable, "-c", SWEEP_CHILD, json.dumps(cfg)], env=_embedded_ray_env(temp),
            capture_output=True, text=True, timeout=600,
        )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout.splitlines()[-1]) is False
    assert (tmp_path / "runs" / "tiny" / "leaderboard.csv").exists()
