"""``critic serve`` under load on loopback: requests/s and latency at fixed concurrencies,
then an open-loop overload at 10x the sustainable rate.

    python bench/bench_serve.py BUNDLE [--seconds 20] [--concurrency 1,8,64]

Starts ``critic serve`` (embedded Ray, default limits) in a subprocess, drives it with an
aiohttp load generator in this process (one IMDB test review per request), then stops it.
Memory is the server's whole process tree (Ray included), from /proc. The load generator
shares the 2 cores with the server, so these are lower bounds for a separate client machine.
Writes bench/results/serve.{json,md}.
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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def closed_loop(url: str, texts: list[str], concurrency: int, seconds: float) -> dict:
    """``concurrency`` clients, each sending its next request when the last one returns."""
    latencies, statuses = [], {}
    deadline = time.perf_counter() + seconds
    rng = random.Random(concurrency)

    async def client(session: aiohttp.ClientSession) -> None:
        while time.perf_counter() < deadline:
            body = {"texts": [rng.choice(texts)]}
            start = time.perf_counter()
            async with session.post(url, json=body) as response:
                await response.read()
                statuses[response.status] = statuses.get(response.status, 0) + 1
            if response.status == 200:
                latencies.append(time.perf_counter() - start)

    connector = aiohttp.TCPConnector(limit=concurrency)
    start = time.perf_counter()
    async with aiohttp.ClientSession(connector=connector) as session:
        await asyncio.gather(*(client(session) for _ in range(concurrency)))
    elapsed = time.perf_counter() - start
    lat = np.array(latencies) * 1000
    return {
        "concurrency": concurrency,
        "requests_per_second": len(latencies) / elapsed,
        "p50_ms": float(np.percentile(lat, 50)) if len(lat) else None,
        "p99_ms": float(np.percentile(lat, 99)) if len(lat) else None,
        "statuses": statuses,
    }


async def open_loop(url: str, texts: list[str], rate: float, seconds: float, pid: int) -> dict:
    """Requests fired at ``rate`` per second whatever the answers (an overload)."""
    statuses: dict[str, int] = {}
    rss = []
    rng = random.Random(0)

    async def one(session: aiohttp.ClientSession) -> None:
        try:
            async with session.post(url, json={"texts": [rng.choice(texts)]}) as response:
                await response.read()
                key = str(response.status)
        except (aiohttp.ClientError, asyncio.TimeoutError) as e:
            key = type(e).__name__
        statuses[key] = statuses.get(key, 0) + 1

    timeout = aiohttp.ClientTimeout(total=30)
    connector = aiohttp.TCPConnector(limit=2000)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        tasks, start, sent = [], time.perf_counter(), 0
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
    return {"offered_rate": offered, "sent": sent, "statuses": statuses, "rss_samples": rss}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bundle", type=Path)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--concurrency", default="1,8,64")
    parser.add_argument("--out", type=Path, default=HERE / "results")
    args = parser.parse_args()

    texts = pq.read_table(args.data / "test.parquet", columns=["text"]).column("text").to_pylist()
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "critic", "serve", "--model", str(args.bundle), "--port", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
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
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)

    report = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "levels": levels,
        "overload": overload,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "serve.json").write_text(json.dumps(report, indent=2))
    mb = 2**20
    md = [
        f"critic serve, one IMDB review per request, loopback, {args.seconds:.0f} s per level; "
        f"{report['machine']} shared by server and load generator.",
        "",
        "| concurrency | requests/s | p50 (ms) | p99 (ms) | statuses |",
        "|---:|---:|---:|---:|---|",
    ]
    for level in levels:
        md.append(
            f"| {level['concurrency']} | {level['requests_per_second']:.0f} | "
            f"{level['p50_ms']:.1f} | {level['p99_ms']:.1f} | {level['statuses']} |"
        )
    samples = overload["rss_samples"] or [0]
    md += [
        "",
        f"Overload: offered {overload['offered_rate']:.0f} req/s (10x the best rate above) for "
        f"{args.seconds:.0f} s: {overload['sent']} requests -> {overload['statuses']}; server "
        f"alive after: {overload['alive_after']}; server memory {overload['rss_idle'] / mb:.0f} MB"
        f" idle, {min(samples) / mb:.0f}-{max(samples) / mb:.0f} MB during, "
        f"{overload['rss_after'] / mb:.0f} MB after.",
    ]
    (args.out / "serve.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()
