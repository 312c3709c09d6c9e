"""`critic tune` and `critic score --engine ray` submitted as Ray jobs to a real head node
started by this test.

The head runs in its own process group with its own ports, temp dir and auth token, and only
that group is stopped at the end (never `ray stop`, which would kill every Ray on the
machine). Clients reach the dashboard on 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import post_texts, sample_dataset, tiny_sweep_config, wait_until_healthy
from processes import RayNodes, free_port

from critic.data.sample import sample_path

pytestmark = [pytest.mark.tf, pytest.mark.ray]

pytest.importorskip("ray")  # only checks it is installed; the client is the CLI


def _ray_cli(env: dict, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    ray_bin = Path(sys.executable).with_name("ray")
    return subprocess.run(
        [str(ray_bin), *args], env=env, capture_output=True, text=True, timeout=timeout
    )


@pytest.fixture
def ray_head(tmp_path):
    """A head node of our own; yields (dashboard address, client environment)."""
    token = tmp_path / "auth_token"
    token.write_text(secrets.token_hex(32))
    # Token auth, explicitly, with this test's own token (not ~/.ray/auth_token); the job
    # client runs as a CLI subprocess so it reads these settings fresh.
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN_PATH=str(token))
    head = RayNodes(env, head_cpus=2, dashboard=True)
    deadline = time.time() + 120
    try:
        while _ray_cli(env, "job", "list", "--address", head.dashboard).returncode != 0:
            if head.head.poll() is not None or time.time() > deadline:
                pytest.fail("Ray head did not start:\n" + head.logs())
            time.sleep(2)
        yield head.dashboard, env
    finally:
        head.shutdown()


def _submit_critic_job(env, address, options: list[str], critic_args: list[str], timeout):
    """`ray job submit [options] -- python -m critic ARGS`, waiting for the job. The
    entrypoint names the interpreter, so the job cannot pick another Python from the
    raylet's PATH. A head that answers `job list` may not have its job agent registered yet
    (slow on a loaded machine); Ray then refuses the submission before creating a job, so
    that refusal is retried for up to 5 minutes."""
    command = ["job", "submit", "--address", address, *options, "--"]
    command += [sys.executable, "-m", "critic", *critic_args]
    deadline = time.time() + 300
    while True:
        result = _ray_cli(env, *command, timeout=timeout)
        refused = "No available agent to submit job" in result.stdout + result.stderr
        if not refused or time.time() > deadline:
            return result
        time.sleep(3)


def test_tune_as_a_ray_job(tmp_path, ray_head):
    address, env = ray_head
    job_dir = tmp_path / "job"
    job_dir.mkdir()
    config = tiny_sweep_config(
        tmp_path,
        name="job-sweep",
        dataset=sample_dataset(limit=300),
        tokenizer={"num_words": 800, "maxlen": 32},
        model={
            "family": {"choice": ["conv1d", "lstm"]},
            "embedding_dim": 8,
            "units": 4,
            "filters": 4,
        },
        search={"num_samples": 2, "scheduler": "fifo", "max_concurrent_trials": 2},
        training={"epochs": 1, "batch_size": 64},
        resources={"cpu": 1, "gpu": 0.5},  # no GPU in the cluster: falls back to CPU
        top_k=1,
    )
    storage = Path(config["storage_path"])
    (job_dir / "sweep.yaml").write_text(json.dumps(config))
    # `ray job submit` waits for the job and streams its logs.
    result = _submit_critic_job(
        env,
        address,
        ["--working-dir", str(job_dir)],
        ["tune", "--config", "sweep.yaml", "--export-top", "1"],
        timeout=480,
    )
    logs = result.stdout + result.stderr
    assert result.returncode == 0, logs[-3000:]
    assert "succeeded" in logs.lower()
    assert "no GPU in this Ray cluster" in logs
    board = (storage / "job-sweep" / "leaderboard.csv").read_text().splitlines()
    assert len(board) == 3  # header + 2 trials

    # Scoring on the same cluster through Ray Data, with the bundle the sweep exported.
    bundle = storage / "job-sweep" / "bundles" / "rank1"
    scored = tmp_path / "scored"
    score_args = ["score", "--engine", "ray", "--model", str(bundle)]
    score_args += ["--input", str(sample_path("test")), "--output", str(scored)]
    result = _submit_critic_job(env, address, [], [*score_args, "--shard-rows", "400"], timeout=300)
    logs = result.stdout + result.stderr
    assert result.returncode == 0, logs[-3000:]
    assert "1000 rows (0 with errors) in 3 shards" in logs
    summary = json.loads((scored / "_summary.json").read_text())
    assert summary["rows"] == 1000 and len(summary["files"]) == 3


def _get(url: str, timeout: float = 10) -> tuple[int, bytes]:
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def test_serve_as_a_ray_job(tmp_path, ray_head, sample_bundle):
    """`ray job submit --no-wait -- critic serve`: the job serves /predict on the cluster;
    `ray job stop` ends it, and with it the application: the port answers no more."""

    import numpy as np

    import critic

    address, env = ray_head
    bundle = sample_bundle[0]
    port = free_port()
    job = "critic-serve-job"
    submitted = _submit_critic_job(
        env,
        address,
        ["--no-wait", "--submission-id", job],
        [
            "serve",
            "--model",
            str(bundle),
            "--port",
            str(port),
            "--engine",
            "ray",
            "--replicas",
            "1",
        ],
        timeout=120,
    )
    assert submitted.returncode == 0, submitted.stdout + submitted.stderr
    url = f"http://127.0.0.1:{port}"
    texts = ["A wonderful, moving film.", "Dull and far too long."]
    try:

        def ended() -> str | None:
            status = _ray_cli(env, "job", "status", "--address", address, job).stdout
            if "FAILED" not in status and "SUCCEEDED" not in status:
                return None
            logs = _ray_cli(env, "job", "logs", "--address", address, job).stdout
            return f"the job ended:\n{status}\n{logs[-4000:]}"

        wait_until_healthy(url, ended, timeout=300, every=2)
        body = post_texts(url, texts)
        expected = critic.Runtime.load(bundle).predict(texts)
        np.testing.assert_allclose(body["probabilities"], expected, atol=1e-6)
    finally:
        stopped = _ray_cli(env, "job", "stop", "--address", address, job, timeout=180)
    assert stopped.returncode == 0, stopped.stdout + stopped.stderr
    logs = _ray_cli(env, "job", "logs", "--address", address, job).stdout
    assert "critic serve: stopping" in logs, logs[-3000:]
    deadline = time.time() + 60
    while True:  # the application and its proxy are gone with the job
        try:
            _get(url + "/healthz", timeout=5)
        except OSError:
            break
        assert time.time() < deadline, "the server still answers after `ray job stop`"
        time.sleep(2)
