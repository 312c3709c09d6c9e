"""critic serve on 127.0.0.1, called over HTTP: the local engine (uvicorn in the command's
process) and the ray engine (a real Ray Serve application), the same tests for both."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from http.client import HTTPConnection
from pathlib import Path

import numpy as np
import pytest
from helpers import exited, unloadable_bundle, wait_until_healthy
from processes import free_port, stop

import critic
from critic.serve.guard import proxy_env

pytestmark = [pytest.mark.tf, pytest.mark.ray]

pytest.importorskip("ray")
pytest.importorskip("fastapi")

JSON = {"Content-Type": "application/json"}
ENGINES = ("local", "ray")


def call(url: str, body: object | None = None, raw: bytes | None = None) -> tuple[int, dict]:
    data = raw if raw is not None else None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers=JSON)
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as e:
        text = e.read()
        try:
            return e.code, json.loads(text)
        except ValueError:
            return e.code, {"raw": text.decode(errors="replace")}


def serve_command(bundle, port: int, engine: str, *extra: str) -> list[str]:
    command = [sys.executable, "-m", "critic", "serve", "--model", str(bundle), "--port",
               str(port), "--engine", engine, *extra]  # fmt: skip
    return command + (["--num-cpus", "2"] if engine == "ray" else [])


@contextlib.contextmanager
def serving(bundle, tmp_path, *extra: str, engine: str):
    port = free_port()
    log = open(tmp_path / f"serve-{port}.log", "w")
    proc = subprocess.Popen(
        serve_command(bundle, port, engine, *extra),
        start_new_session=True, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_healthy(url, lambda: exited(proc, Path(log.name)), timeout=180)
        yield url
    finally:
        stop(proc, whole_group=False, timeout=60)
        log.close()


@pytest.fixture(scope="module", params=ENGINES)
def server(request, sample_bundle, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("serve")
    limits = ("--max-texts", "50", "--max-chars", "5000")
    with serving(sample_bundle[0], tmp, *limits, engine=request.param) as url:
        yield url


def test_predict_matches_the_runtime(server, sample_bundle, imdb_test):
    texts = [t[:5000] for t in imdb_test[:20]]
    status, body = call(server + "/predict", {"texts": texts})
    assert status == 200
    rt = critic.Runtime.load(sample_bundle[0])
    np.testing.assert_allclose(body["probabilities"], rt.predict(texts), atol=1e-6)
    assert body["labels"] == list(rt.predict_labels(texts))


def test_health_and_model_metadata(server, sample_bundle):
    assert call(server + "/healthz") == (200, {"status": "ok"})
    status, card = call(server + "/model")
    meta = critic.load_bundle(sample_bundle[0]).meta
    assert status == 200 and card["manifest_sha256"] == meta["manifest_sha256"]
    assert card["model"]["family"] == "lstm" and card["labels"] == ["negative", "positive"]


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({}, 400, 'expected a JSON object {"texts"'),
        ({"texts": []}, 400, "non-empty list"),
        ({"texts": "one text"}, 400, "non-empty list"),
        ({"texts": ["ok", 3]}, 400, "texts[1] is int"),
        ({"texts": ["x"] * 51}, 413, "51 texts in one request; the limit is 50"),
        ({"texts": ["ok", "y" * 5001]}, 413, "texts[1] has 5001 characters"),
        (None, 400, "not valid JSON"),
        ("nested", 400, "not valid JSON"),  # 100,000 nested [ was an uncaught RecursionError
    ],
)
def test_bad_requests_get_a_clear_4xx(server, body, status, message):
    raw = (
        {None: b"{not json", "nested": b"[" * 100_000}.get(body)
        if body in (None, "nested")
        else None
    )
    got_status, got = call(server + "/predict", None if raw else body, raw=raw)
    assert got_status == status and message in got["error"]


def test_concurrent_requests_are_batched_but_answered_separately(server, sample_bundle, imdb_test):
    rt = critic.Runtime.load(sample_bundle[0])
    requests = [[t[:2000] for t in imdb_test[i : i + 1 + i % 4]] for i in range(40)]
    with ThreadPoolExecutor(16) as pool:
        answers = list(
            pool.map(lambda texts: call(server + "/predict", {"texts": texts}), requests)
        )
    for texts, (status, body) in zip(requests, answers, strict=True):
        assert status == 200
        np.testing.assert_allclose(body["probabilities"], rt.predict(texts), atol=1e-6)


def _address(url: str) -> tuple[str, int]:
    host, port = url.removeprefix("http://").split(":")
    return host, int(port)


def _raw_request(url: str, head: bytes, body_parts=(), pause: float = 0.0) -> socket.socket:
    """A connection that sends ``head`` then each body part after ``pause`` seconds."""
    conn = socket.create_connection(_address(url), timeout=30)
    conn.sendall(head)
    for part in body_parts:
        time.sleep(pause)
        conn.sendall(part)
    return conn


def _status(conn: socket.socket) -> tuple[int, bytes]:
    data = b""
    with contextlib.suppress(OSError):  # the guard's answers close the connection
        while chunk := conn.recv(65536):
            data += chunk
    conn.close()
    return int(data.split(b" ", 2)[1]), data


def test_a_huge_declared_body_is_refused_before_it_is_read(server):
    head = (
        b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: 300000000\r\n\r\n"
    )
    start = time.perf_counter()
    status, data = _status(_raw_request(server, head, [b'{"texts": ["']))
    assert status == 413 and b"the limit is 4194304" in data
    assert time.perf_counter() - start < 10


def _chunked_upload(url: str, parts: list[bytes]) -> bytes:
    """POST /predict with a chunked body sent part by part; what the server answered, even
    when it stopped reading (a send that fails ends the upload, the answer is read anyway)."""
    conn = socket.create_connection(_address(url), timeout=60)
    conn.sendall(
        b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n"
    )
    with contextlib.suppress(OSError):  # the server answered and closed mid-upload
        for part in [*parts, b""]:
            conn.sendall(b"%x\r\n%s\r\n" % (len(part), part))
    data = b""
    with contextlib.suppress(OSError):
        while chunk := conn.recv(65536):
            data += chunk
    conn.close()
    return data


def test_a_chunked_body_past_the_limit_gets_413(server):
    """No Content-Length: the body is counted as it streams in, and refused with 413 once it
    passes the limit. The server closes the connection with the client's unread bytes still
    arriving, and TCP may then reset it before the client reads the 413 (a race of TCP, not
    of the server): so each try either reads a 413 or nothing, and one of three must read it."""
    parts = [b'{"texts": ["', b"x" * (3 << 20), b"y" * (3 << 20), b'"]}']
    answers = []
    for _ in range(3):
        answers.append(_chunked_upload(server, parts))
        if answers[-1]:
            break
    assert all(a.startswith(b"HTTP/1.1 413 ") for a in answers if a), answers
    assert answers[-1].startswith(b"HTTP/1.1 413 ") and b"the limit is 4194304" in answers[-1]


@pytest.mark.parametrize("engine", ENGINES)
def test_slow_clients_time_out_without_starving_normal_requests(sample_bundle, tmp_path, engine):
    """Clients that stall hold no admission place or replica slot, and get 408 when their
    time is up: after their headers (the body deadline), in the middle of their headers, on
    a connection that never sends a byte, and on a kept-alive connection's next request
    (the header deadline, enforced below the ASGI layer)."""
    options = ["--max-ongoing", "2", "--max-queued", "2", "--body-timeout", "3"]
    options += ["--header-timeout", "3"]
    head = (
        b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b'Content-Length: 1000000\r\n\r\n{"texts": ["'
    )
    with serving(sample_bundle[0], tmp_path, *options, engine=engine) as url:
        start = time.monotonic()
        slow = [_raw_request(url, head) for _ in range(12)]  # 3x the 4 admission places
        half_headers = [_raw_request(url, head[:40]) for _ in range(6)]
        silent = [_raw_request(url, b"") for _ in range(2)]
        kept_alive = _raw_request(url, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\nPOST /pre")
        answers = [call(url + "/predict", {"texts": ["A fine film."]}) for _ in range(5)]
        assert [status for status, _ in answers] == [200] * 5
        statuses = [_status(conn)[0] for conn in slow + half_headers + silent]
        assert statuses == [408] * 20
        status, data = _status(kept_alive)
        assert status == 200 and b"HTTP/1.1 408 Request Timeout" in data
        assert time.monotonic() - start < 20  # not the sockets' own 30 s timeout


def test_a_second_server_on_a_busy_port_is_refused(server, sample_bundle):
    port = server.rsplit(":", 1)[1]
    result = subprocess.run(
        [sys.executable, "-m", "critic", "serve", "--model", str(sample_bundle[0]), "--port", port],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr
    assert "Traceback" not in result.stderr
    assert call(server + "/healthz")[0] == 200  # the first one still serves


@pytest.mark.parametrize("engine", ENGINES)
def test_a_model_the_replica_cannot_load_is_a_clear_error(sample_bundle, tmp_path, engine):
    """Checksums pass (the bundle is re-sealed) but onnxruntime cannot load the model: the
    replica (or the local engine) fails, and critic serve says why in one line instead of
    Ray's deployment report or a traceback."""
    folder = unloadable_bundle(sample_bundle[0], tmp_path / "bundle")
    result = subprocess.run(
        serve_command(folder, free_port(), engine),
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr[-3000:]
    if engine == "local":  # (Ray's raylet may echo the replica's own traceback)
        assert "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    where = "the model replica could not start" if engine == "ray" else "the model could not load"
    assert last.startswith(f"critic serve: error: {where}: ")
    assert "Protobuf parsing failed" in last or "INVALID_PROTOBUF" in last, last
    assert len(last) < 600


def _post_keeping_the_connection(url: str) -> tuple[int, dict, str | None, HTTPConnection]:
    """POST /predict on a fresh connection, left open: the status, the JSON body, the
    Connection header and the connection."""
    conn = HTTPConnection(*_address(url), timeout=60)
    conn.request("POST", "/predict", json.dumps({"texts": ["Fine."]}), JSON)
    response = conn.getresponse()
    return response.status, json.loads(response.read()), response.getheader("Connection"), conn


@pytest.mark.parametrize("engine", ENGINES)
def test_overload_gets_503_not_a_crash(sample_bundle, tmp_path, imdb_test, engine):
    """Past the admission places, a 503 with Retry-After at once; the connection stays
    open for the client's next request (a retry costs no new TCP connection)."""
    # One request at a time per replica, one waiting; every batch waits 300 ms for company.
    options = ["--max-ongoing", "1", "--max-queued", "1", "--batch-wait-ms", "300"]
    with serving(sample_bundle[0], tmp_path, *options, engine=engine) as url:
        with ThreadPoolExecutor(24) as pool:
            answers = list(pool.map(lambda _: _post_keeping_the_connection(url), range(24)))
        statuses = sorted(status for status, *_ in answers)
        assert set(statuses) == {200, 503}, statuses
        assert statuses.count(503) >= 12
        for status, body, connection, conn in answers:
            if status == 503:
                assert "retry" in body["error"] and connection is None
            conn.request("POST", "/predict", json.dumps({"texts": imdb_test[:2]}), JSON)
            assert conn.getresponse().status == 200  # the same connection, served
            conn.close()


def test_a_bundle_on_object_storage_is_served(sample_bundle, tmp_path, s3_bucket, monkeypatch):
    """--model as an s3:// URI (a real S3-compatible server over HTTP): fetched into the
    cache under its seal, served, and /model names the URI it came from."""
    from critic.storage import location

    monkeypatch.setenv("CRITIC_CACHE", str(tmp_path / "cache"))
    for f in Path(sample_bundle[0]).iterdir():
        location(f"{s3_bucket}/bundle/{f.name}").write_atomic(f.read_bytes())
    texts = ["A wonderful, moving film.", "Dull and far too long."]
    with serving(f"{s3_bucket}/bundle", tmp_path, engine="local") as url:
        status, body = call(url + "/predict", {"texts": texts})
        card = call(url + "/model")[1]
    assert status == 200 and card["path"] == f"{s3_bucket}/bundle"
    expected = critic.Runtime.load(sample_bundle[0]).predict(texts)
    np.testing.assert_allclose(body["probabilities"], expected, atol=1e-6)
    assert list((tmp_path / "cache").rglob("bundle.json"))  # fetched into the cache


@pytest.mark.parametrize("engine", ENGINES)
def test_sigterm_drains_every_request_already_sent(sample_bundle, tmp_path, engine):
    """16 keep-alive clients under load; SIGTERM: every request a client sent gets its
    answer (the ones after the signal with Connection: close); only new connections are
    refused; the command exits 0 within --drain-timeout (the ray engine: plus the time
    Ray takes to stop once its proxies have drained)."""
    import http.client
    import signal
    import threading

    port = free_port()
    log = open(tmp_path / "drain.log", "w")
    proc = subprocess.Popen(
        serve_command(sample_bundle[0], port, engine, "--drain-timeout", "10"),
        start_new_session=True, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    wait_until_healthy(url, lambda: exited(proc, Path(log.name)), timeout=180)
    body = json.dumps({"texts": ["A fine film.", "Dull and long."]})
    outcomes: list[dict] = []

    def client() -> None:
        seen = {"ok": 0, "lost": [], "refused": 0, "last_close": False}
        conn = HTTPConnection("127.0.0.1", port, timeout=30)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                conn.request("POST", "/predict", body, JSON)
            except ConnectionRefusedError:  # a new connection after the listener closed
                seen["refused"] += 1
                break
            try:
                response = conn.getresponse()
                payload = json.loads(response.read())
            except (OSError, http.client.HTTPException) as e:  # sent, never answered
                seen["lost"].append(repr(e))
                break
            assert response.status == 200 and len(payload["probabilities"]) == 2
            seen["ok"] += 1
            seen["last_close"] = response.getheader("Connection") == "close"
        conn.close()
        outcomes.append(seen)

    threads = [threading.Thread(target=client) for _ in range(16)]
    for thread in threads:
        thread.start()
    time.sleep(2)
    start = time.monotonic()
    os.kill(proc.pid, signal.SIGTERM)
    code = proc.wait(timeout=60)
    took = time.monotonic() - start
    for thread in threads:
        thread.join(timeout=60)
    log.close()
    output = Path(log.name).read_text()
    assert code == 0, output
    assert took < (10 if engine == "local" else 30), took
    assert len(outcomes) == 16
    assert [o["lost"] for o in outcomes] == [[]] * 16
    assert sum(o["ok"] for o in outcomes) > 16  # it was under load
    # Each connection ended on an answer that told it to close (the drain's, not an idle
    # close that would lose the next request), then the listener refused a new one.
    assert [o["last_close"] for o in outcomes] == [True] * 16
    assert [o["refused"] for o in outcomes] == [1] * 16
    assert "draining" in output and "stopped" in output


def test_the_proxy_loop_accepts_every_waiting_connection_at_once():
    """Ray Serve's proxy, started with critic's environment, must not run on uvloop: libuv
    accepts one connection per loop iteration, so a busy proxy left new clients waiting
    seconds in the kernel's accept queue before even a 503. Starts a loop as a Ray worker
    does under that environment, queues 50 connections while it is blocked, and counts the
    iterations it needs to take them all."""
    code = """
import asyncio, socket
from ray._private.async_compat import try_install_uvloop

try_install_uvloop()  # what a Ray worker process does when it starts

async def main():
    made = []
    server = await asyncio.get_running_loop().create_server(
        lambda: type("P", (asyncio.Protocol,), {"connection_made": made.append})(),
        "127.0.0.1", 0, backlog=100)
    port = server.sockets[0].getsockname()[1]
    clients = [socket.create_connection(("127.0.0.1", port)) for _ in range(50)]
    iterations = 0
    while len(made) < 50 and iterations < 1000:
        await asyncio.sleep(0)
        iterations += 1
    print(iterations, len(made), type(asyncio.get_running_loop()).__module__)

asyncio.run(main())
"""
    env = {**os.environ, **proxy_env(capacity=1)}
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]
    iterations, made, loop_module = result.stdout.split()
    assert int(made) == 50
    assert int(iterations) <= 5, (iterations, loop_module)


def test_the_proxy_protocol_turns_nagle_off(monkeypatch):
    """Ray Serve's listening socket has ``proto`` 0, so asyncio's loop leaves Nagle on for
    the connections it accepts: a response's body (written after its headers) then waited
    for the client's delayed ACK, 40 ms a request. critic's protocol class sets
    TCP_NODELAY; checked on the server's side of a live connection."""
    import asyncio

    import uvicorn
    from uvicorn import config

    from critic.serve.proxy_protocol import install

    monkeypatch.setitem(config.HTTP_PROTOCOLS, "auto", config.HTTP_PROTOCOLS["auto"])
    assert install(5)

    async def app(scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    async def main() -> list[int]:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)  # proto 0, as Ray's
        listener.bind(("127.0.0.1", 0))
        port = listener.getsockname()[1]
        server = uvicorn.Server(uvicorn.Config(app, lifespan="off", log_level="warning"))
        serving = asyncio.create_task(server.serve(sockets=[listener]))
        while not server.started:
            await asyncio.sleep(0.01)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert (await reader.readline()).startswith(b"HTTP/1.1 200")
        flags = [
            protocol.transport.get_extra_info("socket").getsockopt(
                socket.IPPROTO_TCP, socket.TCP_NODELAY
            )
            for protocol in server.server_state.connections
        ]
        writer.close()
        await writer.wait_closed()
        server.should_exit = True
        await serving
        listener.close()
        return flags

    flags = asyncio.run(main())
    assert len(flags) == 1 and flags[0] != 0
