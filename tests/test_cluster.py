"""critic on a real multi-node Ray cluster whose nodes share no working area, with its data on
a real S3-compatible server over HTTP (moto's standalone server on 127.0.0.1).

One machine plays a cluster: a head node with no CPUs (so every trial, read task and actor
runs on a worker node; its dashboard on 127.0.0.1 takes `ray job submit`) and two worker
nodes, each started inside a private mount namespace with a tmpfs over pytest's temporary
folder, where this driver keeps its data, runs and outputs: to a worker node that folder is
empty, as on another machine. Every node has its own ports and temp dir, runs in its own
process group, and only those groups are ended (never `ray stop`). Losing a node is ending
its process group.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from helpers import exited, post_texts, tiny_sweep_config, wait_until_healthy
from processes import RAY, RayNodes, free_port, stop

from critic.data.sample import sample_path

pytestmark = [pytest.mark.tf, pytest.mark.ray]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, s3_server):
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        pytest.skip("a cluster of private mount namespaces needs root and unshare")
    token = Path(tempfile.mkdtemp(prefix="critic-token-")) / "auth_token"
    token.write_text(secrets.token_hex(32))
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env.update(
        RAY_AUTH_MODE="token",
        RAY_AUTH_TOKEN_PATH=str(token),
        AWS_ACCESS_KEY_ID="critic",
        AWS_SECRET_ACCESS_KEY="critic-secret",
        AWS_ENDPOINT_URL=s3_server,
        AWS_DEFAULT_REGION="us-east-1",
    )
    cl = RayNodes(env, dashboard=True, private=tmp_path_factory.getbasetemp())
    try:
        cl.add_worker()
        cl.add_worker()
        cl.wait_for_cpus(2)
        yield cl
    finally:
        cl.shutdown()
        shutil.rmtree(token.parent, ignore_errors=True)


def critic(cluster: RayNodes, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "critic", *args],
        env=cluster.env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _s3_table(uri: str):
    import pyarrow.dataset as ds

    from critic.storage import location

    out = location(uri)
    shards = sorted(f.path for f in out.files(recursive=False) if f.name.startswith("part-"))
    return ds.dataset(shards, format="parquet", filesystem=out.fs).to_table()


def _corpus(path: Path, texts: list[str], n: int) -> Path:
    with open(path, "w", encoding="utf-8") as fh:
        for i in range(n):
            fh.write(json.dumps({"id": f"r{i}", "text": texts[i % len(texts)]}) + "\n")
    return path


def test_worker_nodes_do_not_see_the_drivers_files(cluster, tmp_path):
    """The premise: a file of the driver's working area does not exist on a worker node."""
    (tmp_path / "here.txt").write_text("driver only")
    code = (
        "import os, ray\n"
        "ray.init()\n"
        "@ray.remote(num_cpus=1)\n"
        f"def look(): return os.path.exists({str(tmp_path / 'here.txt')!r})\n"
        "print(ray.get([look.remote() for _ in range(4)]))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], env=cluster.env, capture_output=True, text=True, timeout=180
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().splitlines()[-1] == "[False, False, False, False]"


def test_sweep_export_and_score_with_everything_on_s3(cluster, tmp_path, s3_bucket, imdb_test):
    """critic tune (storage on S3, data only on the driver) -> critic export from the S3 run
    -> critic score --engine ray with bundle, input and output on S3, equal to the local
    engine on local files; then a worker node is lost while scoring, and the re-run ends with
    exactly the rows of a clean run."""
    from critic.storage import location

    for split in ("train", "test"):  # the data exists on the driver only
        shutil.copy(sample_path(split), tmp_path / f"{split}.jsonl")
    config = tiny_sweep_config(
        tmp_path,
        dataset={
            "kind": "files",
            "train": str(tmp_path / "train.jsonl"),
            "test": str(tmp_path / "test.jsonl"),
            "limit": 300,
            "seed": 5,
        },
        model={"family": "conv1d", "embedding_dim": 8, "filters": {"grid": [4, 8]}},
        search={"num_samples": 1, "scheduler": "fifo", "max_concurrent_trials": 2},
        training={"epochs": 2, "batch_size": 64},
        storage_path=f"{s3_bucket}/runs",
        top_k=1,
    )
    (tmp_path / "sweep.yaml").write_text(json.dumps(config))
    tuned = critic(cluster, "tune", "--config", str(tmp_path / "sweep.yaml"), "--export-top", "1")
    assert tuned.returncode == 0, (tuned.stdout + tuned.stderr)[-4000:]
    run = location(f"{s3_bucket}/runs/tiny")
    board = json.loads((run / "leaderboard.json").read_text())
    assert len(board["trials"]) == 2 and board["failed"] == []
    bundle = f"{s3_bucket}/runs/tiny/bundles/rank1"
    assert location(bundle).is_dir()

    corpus = _corpus(tmp_path / "corpus.jsonl", imdb_test, 3_000)
    location(f"{s3_bucket}/in/corpus.jsonl").write_atomic(corpus.read_bytes())
    score = ["score", "--model", bundle, "--shard-rows", "200", "--id-column", "id"]
    local = critic(
        cluster, *score, "--input", str(corpus), "--output", str(tmp_path / "local")
    )  # the local engine, in this process: the reference
    assert local.returncode == 0, local.stderr[-3000:]
    import pyarrow.dataset as ds

    reference = ds.dataset(sorted(str(p) for p in (tmp_path / "local").glob("part-*"))).to_table()
    on_s3 = [*score, "--input", f"{s3_bucket}/in/corpus.jsonl", "--engine", "ray"]
    first = critic(cluster, *on_s3, "--output", f"{s3_bucket}/out")
    assert first.returncode == 0, first.stderr[-4000:]
    assert _s3_table(f"{s3_bucket}/out").equals(reference)

    # The bundle as a folder on this machine only: the actors get it through Ray.
    from critic.bundle.format import fetch_bundle

    folder = fetch_bundle(bundle, cache=tmp_path / "cache")
    with_folder = [*on_s3[:2], str(folder), *on_s3[3:]]
    assert with_folder[1:3] == ["--model", str(folder)]
    shipped = critic(cluster, *with_folder, "--output", f"{s3_bucket}/out-folder")
    assert shipped.returncode == 0, shipped.stderr[-4000:]
    assert _s3_table(f"{s3_bucket}/out-folder").equals(reference)

    # A worker node dies while a second job scores: the job fails or finishes; the same
    # command, run again once a node is back, ends with exactly the rows of a clean run.
    out = location(f"{s3_bucket}/out-lost")
    job_log = open(tmp_path / "lost-node-job.log", "w")
    job = subprocess.Popen(
        [sys.executable, "-m", "critic", *on_s3, "--output", out.uri],
        env=cluster.env,
        stdout=subprocess.DEVNULL,
        stderr=job_log,
        start_new_session=True,
    )
    deadline = time.time() + 300
    while len([f for f in out.files(recursive=False) if f.name.startswith("part-")]) < 2:
        assert job.poll() is None, "the job ended before a node could be lost"
        assert time.time() < deadline
        time.sleep(0.2)
    cluster.lose(cluster.workers[-1])
    try:
        job.wait(timeout=300)
    except subprocess.TimeoutExpired:
        stop(job, whole_group=True, timeout=30)  # stalled without the node: end it
    else:  # it finished, or failed saying why and how to go on
        job_log.close()
        err = (tmp_path / "lost-node-job.log").read_text()
        assert job.returncode in (0, 2), err[-4000:]
        if job.returncode == 2:
            assert "the Ray job failed: " in err and "run the same command again" in err
    job_log.close()
    cluster.add_worker()
    cluster.wait_for_cpus(2)
    again = critic(cluster, *on_s3, "--output", out.uri)
    assert again.returncode == 0, again.stderr[-4000:]
    got = _s3_table(out.uri)
    ids = got.column("id").to_pylist()
    assert len(ids) == 3_000 and len(set(ids)) == 3_000  # none lost, none doubled
    assert got.equals(reference)


def test_a_sweep_survives_losing_a_worker_node(cluster, tmp_path, s3_bucket):
    """A worker node dies mid-sweep: its trials are retried on the other node from their
    last checkpoint in S3, and the sweep finishes with every trial."""
    from critic.storage import location

    config = tiny_sweep_config(
        tmp_path,
        model={"family": "conv1d", "embedding_dim": 8, "filters": {"grid": [4, 8]}},
        search={"num_samples": 1, "scheduler": "fifo", "max_concurrent_trials": 2},
        training={"epochs": 6, "batch_size": 32},
        storage_path=f"{s3_bucket}/runs",
        top_k=1,
    )
    (tmp_path / "sweep.yaml").write_text(json.dumps(config))
    tune = subprocess.Popen(
        [sys.executable, "-m", "critic", "tune", "--config", str(tmp_path / "sweep.yaml")],
        env=cluster.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    run = location(f"{s3_bucket}/runs/tiny")
    deadline = time.time() + 300
    while not [f for f in run.files() if "checkpoint_" in f.path]:
        assert tune.poll() is None, tune.stdout.read()[-4000:]
        assert time.time() < deadline
        time.sleep(0.5)
    cluster.lose(cluster.workers[-1])
    cluster.add_worker()  # a replacement joins later, as an autoscaler would bring one
    try:
        output, _ = tune.communicate(timeout=600)
    except subprocess.TimeoutExpired:
        stop(tune, whole_group=True, timeout=30)
        raise
    assert tune.returncode == 0, output[-4000:]
    board = json.loads((run / "leaderboard.json").read_text())
    assert board["failed"] == [] and len(board["trials"]) == 2
    assert all(t["epochs"] == 6 for t in board["trials"])
    cluster.wait_for_cpus(2)


def test_serve_a_local_bundle_on_nodes_that_cannot_read_it(cluster, tmp_path, sample_bundle):
    """critic serve with a bundle folder only this machine has: the replica runs on a worker
    node (the head has no CPUs), gets the bundle through Ray's object store and answers
    /predict as the runtime does here. One HTTP proxy runs, on the head, so the admission
    limits hold for the whole cluster."""
    import urllib.request

    import numpy as np

    import critic

    bundle = Path(shutil.copytree(sample_bundle[0], tmp_path / "bundle"))
    port = free_port()
    log = open(tmp_path / "serve.log", "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "critic", "serve", "--model", str(bundle), "--port", str(port),
         "--engine", "ray"],
        env=cluster.env, start_new_session=True, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    texts = ["A wonderful, moving film.", "Dull and far too long.", "Fine."]
    try:
        wait_until_healthy(url, lambda: exited(proc, tmp_path / "serve.log"), timeout=240)
        body = post_texts(url, texts)
        with urllib.request.urlopen(url + "/model", timeout=30) as response:
            card = json.loads(response.read())
        proxies = ray_list(cluster, "actors", "class_name=ProxyActor", "state=ALIVE")
        heads = ray_list(cluster, "nodes", "is_head_node=True")
    finally:
        stop(proc, whole_group=False, timeout=60)
        log.close()
    expected = critic.Runtime.load(bundle).predict(texts)
    np.testing.assert_allclose(body["probabilities"], expected, atol=1e-6)
    assert card["path"] == str(bundle)
    assert [actor["node_id"] for actor in proxies] == [heads[0]["node_id"]]


def test_a_proxy_on_every_node_serves_and_drains(cluster, tmp_path, sample_bundle):
    """--proxies every-node with a replica on each worker: an HTTP proxy on the head and on
    each worker (on one machine they share the port, as SO_REUSEPORT lets them), and the
    port answers /predict; SIGTERM drains them all (the command waits for each), exit 0."""
    import urllib.request

    import numpy as np

    import critic

    bundle = sample_bundle[0]
    port = free_port()
    log = open(tmp_path / "serve.log", "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "critic", "serve", "--model", str(bundle), "--port", str(port),
         "--engine", "ray", "--proxies", "every-node", "--replicas", "2",
         "--drain-timeout", "20"],
        env=cluster.env, start_new_session=True, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    texts = ["A wonderful, moving film.", "Dull and far too long."]
    try:
        wait_until_healthy(url, lambda: exited(proc, tmp_path / "serve.log"), timeout=240)
        heads = ray_list(cluster, "nodes", "is_head_node=True", "state=ALIVE")
        deadline = time.time() + 120
        while True:  # Serve starts a node's proxy once its replica runs
            actors = ray_list(cluster, "actors", "state=ALIVE")
            replicas = [a for a in actors if a["class_name"].startswith("ServeReplica:critic")]
            proxies = [a for a in actors if a["class_name"] == "ProxyActor"]
            want = {heads[0]["node_id"]} | {a["node_id"] for a in replicas}
            if {a["node_id"] for a in proxies} == want or time.time() > deadline:
                break
            time.sleep(2)
        answers = []
        for _ in range(12):  # a new connection each: the kernel spreads them over proxies
            request = urllib.request.Request(
                url + "/predict",
                data=json.dumps({"texts": texts}).encode(),
                headers={"Content-Type": "application/json", "Connection": "close"},
            )
            with urllib.request.urlopen(request, timeout=60) as response:
                answers.append(json.loads(response.read())["probabilities"])
    finally:
        stop(proc, whole_group=False, timeout=90)
        log.close()
    output = (tmp_path / "serve.log").read_text()
    assert proc.returncode == 0, output[-3000:]
    assert len(replicas) == 2 and {a["node_id"] for a in proxies} == want
    assert len(proxies) == 3, proxies  # the head and both workers (replicas spread)
    expected = critic.Runtime.load(bundle).predict(texts)
    for got in answers:
        np.testing.assert_allclose(got, expected, atol=1e-6)
    assert "draining" in output and "did not drain" not in output and "stopped" in output


def ray_list(cluster: RayNodes, kind: str, *filters: str) -> list[dict]:
    """`ray list KIND --filter ...` (Ray's state API, through the head's dashboard)."""
    command = [RAY, "list", kind, "--address", cluster.dashboard, "--format", "json"]
    for condition in filters:
        command += ["--filter", condition]
    env = {k: v for k, v in cluster.env.items() if k != "RAY_ADDRESS"}
    listing = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert listing.returncode == 0, listing.stderr[-2000:]
    return json.loads(listing.stdout)


def submit(cluster: RayNodes, options: list[str], args: list[str], timeout: float = 600):
    """`ray job submit [options] -- python -m critic ARGS` to the cluster, waiting for the
    job. Until the head's job agent has registered, Ray refuses a submission before making a
    job: that refusal is retried."""
    command = [RAY, "job", "submit", "--address", cluster.dashboard, *options, "--"]
    command += [sys.executable, "-m", "critic", *args]
    env = {k: v for k, v in cluster.env.items() if k != "RAY_ADDRESS"}
    deadline = time.time() + 300
    while True:
        result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout)
        refused = "No available agent to submit job" in result.stdout + result.stderr
        if not refused or time.time() > deadline:
            return result
        time.sleep(3)


def test_a_sweep_as_a_ray_job_on_the_cluster(cluster, tmp_path, s3_bucket):
    """`ray job submit --working-dir JOB -- critic tune` with the data in the job's folder and
    the run on S3: trials run on the worker nodes, the run lands in the bucket, and `--resume`
    takes it from there. The same job with a relative storage_path is refused before anything
    runs."""
    from critic.storage import location

    job = tmp_path / "job"
    job.mkdir()
    for split in ("train", "test"):
        shutil.copy(sample_path(split), job / f"{split}.jsonl")
    config = tiny_sweep_config(
        tmp_path,
        name="job-sweep",
        dataset={"kind": "files", "train": "train.jsonl", "test": "test.jsonl", "limit": 300},
        model={"family": "conv1d", "embedding_dim": 8, "filters": {"grid": [4, 8]}},
        search={"num_samples": 1, "scheduler": "fifo", "max_concurrent_trials": 2},
        training={"epochs": 1, "batch_size": 64},
        storage_path=f"{s3_bucket}/runs",
        top_k=1,
    )
    (job / "sweep.yaml").write_text(json.dumps(config))
    # The job's own S3 settings, as a user would pass them to nodes that lack them.
    aws = {k: v for k, v in cluster.env.items() if k.startswith("AWS_")}
    options = ["--working-dir", str(job), "--runtime-env-json", json.dumps({"env_vars": aws})]
    result = submit(cluster, options, ["tune", "--config", "sweep.yaml", "--export-top", "1"])
    logs = result.stdout + result.stderr
    assert result.returncode == 0, logs[-4000:]
    run = location(f"{s3_bucket}/runs/job-sweep")
    board = json.loads((run / "leaderboard.json").read_text())
    assert len(board["trials"]) == 2 and board["failed"] == []
    assert (run / "bundles" / "rank1" / "bundle.json").is_file()
    # --resume from the bucket, on this machine, which never had the run: nothing to re-run.
    resumed = critic(cluster, "tune", "--resume", run.uri)
    assert resumed.returncode == 0, (resumed.stdout + resumed.stderr)[-4000:]
    again = json.loads((run / "leaderboard.json").read_text())
    assert [t["trial"] for t in again["trials"]] == [t["trial"] for t in board["trials"]]

    (job / "sweep.yaml").write_text(json.dumps({**config, "storage_path": "runs"}))
    refused = submit(cluster, options, ["tune", "--config", "sweep.yaml"])
    logs = refused.stdout + refused.stderr
    assert refused.returncode != 0 and "package cache" in logs, logs[-4000:]
