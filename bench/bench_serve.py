"""``critic serve`` under load on loopback: requests/s and latency at fixed concurrencies,
then an open-loop overload at 10x the sustainable rate.

    python bench/bench_serve.py BUNDLE [--seconds 20] [--concurrency 1,8,64]

Starts ``critic serve`` (embedded Ray, default limits) in a subprocess, drives it with an
aiohttp load generator in this process (1-16 IMDB test reviews per request), then slow
clients (stalled mid-body) and huge chunked bodies; then stops it.
Memory is the server's whole process tree (Ray included), from /proc. The load generator
shares the cores with the server, so these are lower bounds for a separate client machine;
``--split-cores`` gives each its own half instead. Writes bench/results/serve.{json,md}
(``serve_split_cores.{json,md}`` with ``--split-cores``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import random
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import numpy as np
import pyarrow.parquet as pq
from bench_score import tree_pss

HERE = Path(__file__).resolve().parent
DEFAULT_DATA = HERE.parent.parent / "shared" / "data" / "imdb"


def percentile_ms(seconds: list[float], q: float) -> float | None:
    """The q-th percentile of ``seconds``, in milliseconds (None when there are none)."""
    return float(np.percentile(seconds, q)) * 1000 if seconds else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def closed_loop(
    url: str, texts: list[str], concurrency: int, seconds: float, max_texts: int = 16
) -> dict:
    """``concurrency`` clients, each sending its next request (1..max_texts reviews) when the
    last one returns; a client told 503 waits the ``Retry-After`` it was given (at most 1 s,
    jittered), as a well-behaved client does."""
    latencies, statuses, fast_503 = [], {}, []
    deadline = time.perf_counter() + seconds
    rng = random.Random(concurrency)

    async def client(session: aiohttp.ClientSession) -> None:
        while time.perf_counter() < deadline:
            body = {"texts": rng.choices(texts, k=rng.randint(1, max_texts))}
            start = time.perf_counter()
            try:
                async with session.post(url, json=body) as response:
                    await response.read()
                    status, retry = response.status, response.headers.get("Retry-After")
            except (aiohttp.ClientError, asyncio.TimeoutError) as e:
                status, retry = type(e).__name__, None
            statuses[status] = statuses.get(status, 0) + 1
            if status == 200:
                latencies.append(time.perf_counter() - start)
            elif status == 503:
                fast_503.append(time.perf_counter() - start)
                await asyncio.sleep(min(float(retry or 1), 1.0) * rng.uniform(0.5, 1.0))

    connector = aiohttp.TCPConnector(limit=concurrency)
    timeout = aiohttp.ClientTimeout(total=60)
    start = time.perf_counter()
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        await asyncio.gather(*(client(session) for _ in range(concurrency)))
    elapsed = time.perf_counter() - start
    return {
        "concurrency": concurrency,
        "requests_per_second": len(latencies) / elapsed,
        "p50_ms": percentile_ms(latencies, 50),
        "p99_ms": percentile_ms(latencies, 99),
        "p50_503_ms": percentile_ms(fast_503, 50),
        "statuses": {str(k): v for k, v in statuses.items()},
    }


async def slow_clients(
    url: str, texts: list[str], slow: int, normal: int, headers_only: bool = False
) -> dict:
    """``slow`` connections send headers and the start of a 1 MB body (``headers_only``: half
    their headers), then stall; meanwhile ``normal`` requests are sent one after another.
    How many normal ones get a 200, and what do the stalled ones get?"""
    host, port = url.removeprefix("http://").split("/")[0].split(":")
    head = (
        f"POST /predict HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
        'Content-Length: 1000000\r\n\r\n{"texts": ["'
    ).encode()
    if headers_only:
        head = head[: head.index(b"Content-Length")]
    stalled = []
    for _ in range(slow):
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(head)
        await writer.drain()
        stalled.append((reader, writer))
    statuses: dict[str, int] = {}
    start = time.perf_counter()
    async with aiohttp.ClientSession() as session:
        for i in range(normal):
            async with session.post(url, json={"texts": [texts[i]]}) as response:
                await response.read()
                statuses[str(response.status)] = statuses.get(str(response.status), 0) + 1
    normal_seconds = time.perf_counter() - start

    async def answer(reader, writer) -> str:
        try:
            line = await asyncio.wait_for(reader.readline(), 60)
            return line.split(b" ")[1].decode() if line else "closed"
        except asyncio.TimeoutError:
            return "still open after 60 s"
        except OSError as e:
            return type(e).__name__
        finally:
            writer.close()

    slow_statuses: dict[str, int] = {}
    for key in await asyncio.gather(*(answer(r, w) for r, w in stalled)):
        slow_statuses[key] = slow_statuses.get(key, 0) + 1
    return {
        "slow_connections": slow,
        "stalled": "in their headers" if headers_only else "mid-body",
        "normal_statuses": statuses,
        "normal_seconds": normal_seconds,
        "slow_statuses": slow_statuses,
    }


async def huge_bodies(url: str, pid: int, count: int, size: int) -> dict:
    """``count`` bodies of ``size`` bytes at once, streamed without a Content-Length
    (chunked: the server cannot refuse them by their header), and the server's memory."""
    before = tree_pss(pid)
    peak = before

    async def body():
        yield b'{"texts": ["'
        chunk = b"x" * (1 << 20)
        for _ in range(size >> 20):
            yield chunk
        yield b'"]}'

    async def one(session: aiohttp.ClientSession) -> str:
        try:
            async with session.post(url, data=body()) as response:
                await response.read()
                return str(response.status)
        except (aiohttp.ClientError, asyncio.TimeoutError) as e:
            return type(e).__name__

    async def watch() -> None:
        nonlocal peak
        while True:
            peak = max(peak, tree_pss(pid))
            await asyncio.sleep(0.2)

    watcher = asyncio.create_task(watch())
    async with aiohttp.ClientSession() as session:
        statuses = await asyncio.gather(*(one(session) for _ in range(count)))
    await asyncio.sleep(1)
    watcher.cancel()
    return {"count": count, "bytes": size, "statuses": statuses, "pss_before": before,
            "pss_peak": peak, "pss_after": tree_pss(pid)}  # fmt: skip


async def open_loop(url: str, texts: list[str], rate: float, seconds: float, pid: int) -> dict:
    """Requests fired at ``rate`` per second whatever the answers (an overload): how many
    200s per second while it lasts, and how long a 503 takes."""
    statuses: dict[str, int] = {}
    done_200, took_503, rss = [], [], []
    rng = random.Random(0)
    start = time.perf_counter()

    async def one(session: aiohttp.ClientSession) -> None:
        sent_at = time.perf_counter()
        try:
            body = {"texts": rng.choices(texts, k=rng.randint(1, 16))}
            async with session.post(url, json=body) as response:
                await response.read()
                key = str(response.status)
        except (aiohttp.ClientError, asyncio.TimeoutError) as e:
            key = type(e).__name__
        statuses[key] = statuses.get(key, 0) + 1
        if key == "200":
            done_200.append(time.perf_counter() - start)
        elif key == "503":
            took_503.append(time.perf_counter() - sent_at)

    timeout = aiohttp.ClientTimeout(total=30)
    connector = aiohttp.TCPConnector(limit=2000)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        tasks, sent = [], 0
        while (now := time.perf_counter() - start) < seconds:
            due = int(now * rate)
            for _ in range(due - sent):
                tasks.append(asyncio.create_task(one(session)))
            sent = due
            if int(now * 5) > len(rss):
                rss.append(tree_pss(pid))
            await asyncio.sleep(0.002)
        offered = sent / (time.perf_counter() - start)
        await asyncio.gather(*tasks)
    return {
        "offered_rate": offered,
        "sent": sent,
        "statuses": statuses,
        "ok_per_second_during": sum(t <= seconds for t in done_200) / seconds,
        "p50_503_ms": percentile_ms(took_503, 50),
        "p99_503_ms": percentile_ms(took_503, 99),
        "rss_samples": rss,
    }


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bundle", type=Path)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--concurrency", default="1,8,64,128,256,1000")
    parser.add_argument("--skip-abuse", action="store_true", help="no slow or huge clients")
    parser.add_argument(
        "--split-cores",
        action="store_true",
        help="server on the first half of the cores, load generator on the rest (as if the "
        "clients had their own machine; the server gets fewer cores)",
    )
    parser.add_argument("--out", type=Path, default=HERE / "results")
    args = parser.parse_args()

    texts = pq.read_table(args.data / "test.parquet", columns=["text"]).column("text").to_pylist()
    port = free_port()
    cores = sorted(os.sched_getaffinity(0))
    server_cores = set(cores[: max(1, len(cores) // 2)]) if args.split_cores else set(cores)
    server = subprocess.Popen(
        [sys.executable, "-m", "critic", "serve", "--model", str(args.bundle), "--port", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        preexec_fn=lambda: os.sched_setaffinity(0, server_cores),
    )  # fmt: skip
    if args.split_cores:
        os.sched_setaffinity(0, set(cores) - server_cores or server_cores)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 180
        while True:
            with contextlib.suppress(OSError):
                import urllib.request

                if urllib.request.urlopen(base + "/healthz", timeout=5).status == 200:
                    break
            if server.poll() is not None or time.time() > deadline:
                raise SystemExit("critic serve did not start")
            time.sleep(1)
        rss_idle = tree_pss(server.pid)
        asyncio.run(closed_loop(base + "/predict", texts, 8, 3))  # warm-up
        levels = []
        for c in (int(x) for x in args.concurrency.split(",")):
            levels.append(asyncio.run(closed_loop(base + "/predict", texts, c, args.seconds)))
            print(levels[-1], flush=True)
        sustainable = max(level["requests_per_second"] for level in levels)
        overload = asyncio.run(
            open_loop(base + "/predict", texts, 10 * sustainable, args.seconds, server.pid)
        )
        overload["rss_idle"] = rss_idle
        overload["alive_after"] = server.poll() is None
        overload["rss_after"] = tree_pss(server.pid)
        print({k: v for k, v in overload.items() if k != "rss_samples"}, flush=True)
        abuse = {}
        if not args.skip_abuse:
            abuse["slow"] = asyncio.run(slow_clients(base + "/predict", texts, 330, 20))
            print(abuse["slow"], flush=True)
            abuse["slow_headers"] = asyncio.run(
                slow_clients(base + "/predict", texts, 330, 20, headers_only=True)
            )
            print(abuse["slow_headers"], flush=True)
            abuse["huge"] = asyncio.run(huge_bodies(base + "/predict", server.pid, 3, 300 << 20))
            print(abuse["huge"], flush=True)
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)

    cpus = f"{platform.machine()}, {len(cores)} cores"
    if args.split_cores:
        cpus += f": {len(server_cores)} for the server, the rest for the load generator"
    else:
        cpus += " shared by server and load generator"
    report = {
        "machine": cpus,
        "levels": levels,
        "overload": overload,
        "abuse": abuse,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    name = "serve_split_cores" if args.split_cores else "serve"
    (args.out / f"{name}.json").write_text(json.dumps(report, indent=2))
    mb = 2**20
    md = [
        f"critic serve, 1-16 IMDB reviews per request, loopback, {args.seconds:.0f} s per level; "
        f"{report['machine']}.",
        "",
        "| concurrency | requests/s (200) | p50 (ms) | p99 (ms) | p50 of a 503 (ms) | statuses |",
        "|---:|---:|---:|---:|---:|---|",
    ]
    for level in levels:
        fast = level["p50_503_ms"]
        md.append(
            f"| {level['concurrency']} | {level['requests_per_second']:.0f} | "
            f"{level['p50_ms']:.1f} | {level['p99_ms']:.1f} | "
            f"{'-' if fast is None else f'{fast:.1f}'} | {level['statuses']} |"
        )
    samples = overload["rss_samples"] or [0]
    md += [
        "",
        f"Overload: offered {overload['offered_rate']:.0f} req/s (10x the best rate above) for "
        f"{args.seconds:.0f} s: {overload['sent']} requests -> {overload['statuses']}; "
        f"{overload['ok_per_second_during']:.0f} 200s per second meanwhile; a 503 took "
        f"{_ms(overload['p50_503_ms'])} ms (p50), {_ms(overload['p99_503_ms'])} ms (p99); server "
        f"alive after: {overload['alive_after']}; server memory {overload['rss_idle'] / mb:.0f} MB"
        f" idle, {min(samples) / mb:.0f}-{max(samples) / mb:.0f} MB during, "
        f"{overload['rss_after'] / mb:.0f} MB after.",
    ]
    if abuse:
        huge = abuse["huge"]
        for slow in (abuse["slow"], abuse["slow_headers"]):
            md += [
                "",
                f"Slow clients: {slow['slow_connections']} connections stalled {slow['stalled']}; "
                f"20 normal requests meanwhile -> {slow['normal_statuses']} in "
                f"{slow['normal_seconds']:.1f} s; the stalled ones -> {slow['slow_statuses']}.",
            ]
        md += [
            "",
            f"Huge bodies: {huge['count']} chunked bodies of {huge['bytes'] >> 20} MB at once "
            f"-> {huge['statuses']}; server memory {huge['pss_before'] / mb:.0f} MB before, "
            f"{huge['pss_peak'] / mb:.0f} MB peak, {huge['pss_after'] / mb:.0f} MB after.",
        ]
    (args.out / f"{name}.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()
