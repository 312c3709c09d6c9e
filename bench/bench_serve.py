"""``critic serve`` against the peer a user would write (bench/peer_server.py: Starlette +
uvicorn + ``critic.Runtime``), on the same bundle with the same client, in one run.

    python bench/bench_serve.py BUNDLE [--servers peer,local,ray] [--concurrency 1,8,64]
        [--seconds 10] [--repeat 3] [--abuse]

For each repeat, each server in turn is started in a subprocess, warmed up, then driven by an
aiohttp load generator in this process at each concurrency (closed loop, keep-alive, one IMDB
test review per request unless --texts-per-request says otherwise): requests/s, p50 and p99
latency, and the server's CPU seconds per 1,000 requests (its whole process tree, from
/proc). Medians over the repeats. Then, on critic's local engine, requests of 256 texts
against ``Runtime.predict``'s own texts/s on the same texts in this process; with --abuse,
an open-loop overload at 10x the best rate, slow clients and huge bodies. The load generator
shares the cores with the server, so these are lower bounds for a separate client machine.
Writes bench/results/serve_peer.{json,md}.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import random
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import numpy as np
import pyarrow.parquet as pq
from bench_score import tree_pss
from processes import free_port, stop

HERE = Path(__file__).resolve().parent
DEFAULT_DATA = HERE.parent.parent / "shared" / "data" / "imdb"


def percentile_ms(seconds: list[float], q: float) -> float | None:
    """The q-th percentile of ``seconds``, in milliseconds (None when there are none)."""
    return float(np.percentile(seconds, q)) * 1000 if seconds else None


def request_texts(texts: list[str], per_request: int | None, count: int, seed: int):
    """``count`` requests' texts: ``per_request`` reviews each (or 1-16), drawn at random."""
    rng = random.Random(seed)
    return [rng.choices(texts, k=per_request or rng.randint(1, 16)) for _ in range(count)]


async def closed_loop(
    url: str,
    texts: list[str],
    concurrency: int,
    seconds: float,
    per_request: int | None = None,
    requests: list[list[str]] | None = None,
) -> dict:
    """``concurrency`` clients, each sending its next request (one of ``requests``, or
    ``per_request`` reviews, or 1-16) when the last one returns; a client told 503 waits the
    ``Retry-After`` it was given (at most 1 s, jittered), as a well-behaved client does."""
    latencies, statuses, fast_503 = [], {}, []
    rng = random.Random(concurrency)
    # Bodies encoded once, before the clock starts: the client's JSON work is not the server's.
    requests = requests or request_texts(texts, per_request, 256, concurrency)
    bodies = [json.dumps({"texts": r}).encode() for r in requests]
    headers = {"Content-Type": "application/json"}
    deadline = time.perf_counter() + seconds

    async def client(session: aiohttp.ClientSession) -> None:
        while time.perf_counter() < deadline:
            body = rng.choice(bodies)
            start = time.perf_counter()
            try:
                async with session.post(url, data=body, headers=headers) as response:
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
        "requests": len(latencies),
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


def tree_cpu_seconds(root: int) -> float:
    """CPU time (user + system) of ``root`` and its live descendants, in seconds."""
    stats: dict[int, tuple[int, float]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as fh:
                    fields = fh.read().rsplit(")", 1)[1].split()
                stats[int(entry)] = (int(fields[1]), (int(fields[11]) + int(fields[12])))
            except (OSError, IndexError, ValueError):
                continue
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in stats.items():
        children.setdefault(ppid, []).append(pid)
    total, stack = 0, [root]
    while stack:
        pid = stack.pop()
        stack.extend(children.get(pid, []))
        total += stats.get(pid, (0, 0))[1]
    return total / os.sysconf("SC_CLK_TCK")


def server_command(kind: str, bundle: Path, port: int) -> list[str]:
    if kind == "peer":
        return [sys.executable, str(HERE / "peer_server.py"), str(bundle), str(port)]
    engine = {"local": "local", "ray": "ray"}[kind]
    return [sys.executable, "-m", "critic", "serve", "--model", str(bundle), "--port", str(port),
            "--engine", engine]  # fmt: skip


@contextlib.contextmanager
def running(kind: str, bundle: Path, cores: set[int]):
    """A server of ``kind`` on a free port, healthy: (base URL, pid); stopped after."""
    import urllib.request

    port = free_port()
    server = subprocess.Popen(
        server_command(kind, bundle, port),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        preexec_fn=lambda: os.sched_setaffinity(0, cores),
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 180
        while True:
            with contextlib.suppress(OSError):
                if urllib.request.urlopen(base + "/healthz", timeout=5).status == 200:
                    break
            if server.poll() is not None or time.time() > deadline:
                raise SystemExit(f"{kind} server did not start")
            time.sleep(0.5)
        yield base, server.pid
    finally:
        stop(server, timeout=60)


def measure_levels(base: str, pid: int, texts: list[str], args) -> list[dict]:
    asyncio.run(closed_loop(base + "/predict", texts, 8, 2, args.texts_per_request))  # warm-up
    levels = []
    for c in (int(x) for x in args.concurrency.split(",")):
        cpu = tree_cpu_seconds(pid)
        level = asyncio.run(
            closed_loop(base + "/predict", texts, c, args.seconds, args.texts_per_request)
        )
        level["cpu_s_per_1000"] = (tree_cpu_seconds(pid) - cpu) / max(level["requests"], 1) * 1000
        levels.append(level)
    return levels


def runtime_texts_per_second(bundle: Path, requests: list[list[str]], repeat: int = 3) -> float:
    """``Runtime.predict``'s own texts/s on the texts of ``requests``, one call per request,
    every core."""
    import critic

    rt = critic.Runtime.load(bundle)
    rt.predict(requests[0])
    total = sum(map(len, requests))
    rates = []
    for _ in range(repeat):
        start = time.perf_counter()
        for texts in requests:
            rt.predict(texts)
        rates.append(total / (time.perf_counter() - start))
    return float(np.median(rates))


def _median(values: list[float | None]) -> float | None:
    values = [v for v in values if v is not None]
    return float(np.median(values)) if values else None


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bundle", type=Path)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--servers", default="peer,local", help="peer, local, ray")
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--concurrency", default="1,8,64")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--texts-per-request", type=int, default=1)
    parser.add_argument("--many", type=int, default=256, help="texts per request, many-texts run")
    parser.add_argument("--abuse", action="store_true", help="overload, slow and huge clients")
    parser.add_argument("--out", type=Path, default=HERE / "results")
    args = parser.parse_args()

    texts = pq.read_table(args.data / "test.parquet", columns=["text"]).column("text").to_pylist()
    cores = set(os.sched_getaffinity(0))
    servers = args.servers.split(",")
    runs: dict[str, list[list[dict]]] = {kind: [] for kind in servers}
    many: dict[str, list[float]] = {"runtime": [], "served": []}
    # The same requests for the server and for Runtime.predict.
    many_requests = request_texts(texts, args.many, 64, seed=0)
    for r in range(args.repeat):
        for kind in servers:  # interleaved: each repeat runs every server once
            with running(kind, args.bundle, cores) as (base, pid):
                runs[kind].append(measure_levels(base, pid, texts, args))
                if kind == "local":
                    level = asyncio.run(closed_loop(base + "/predict", texts, 2, args.seconds,
                                                    requests=many_requests))  # fmt: skip
                    many["served"].append(level["requests_per_second"] * args.many)
            rates = [round(x["requests_per_second"]) for x in runs[kind][-1]]
            print(f"run {r + 1}, {kind}: requests/s {rates}", flush=True)
        many["runtime"].append(runtime_texts_per_second(args.bundle, many_requests))
    table = {}
    for kind, repeats in runs.items():
        table[kind] = []
        for i, level in enumerate(repeats[0]):
            per = [rep[i] for rep in repeats]
            table[kind].append({
                "concurrency": level["concurrency"],
                "requests_per_second": _median([x["requests_per_second"] for x in per]),
                "p50_ms": _median([x["p50_ms"] for x in per]),
                "p99_ms": _median([x["p99_ms"] for x in per]),
                "cpu_s_per_1000": _median([x["cpu_s_per_1000"] for x in per]),
                "runs": [round(x["requests_per_second"]) for x in per],
            })  # fmt: skip
    abuse = {}
    if args.abuse:
        with running("local", args.bundle, cores) as (base, pid):
            best = max(x["requests_per_second"] for x in table.get("local", [{}])) or 1000
            abuse["overload"] = asyncio.run(
                open_loop(base + "/predict", texts, 10 * best, args.seconds, pid)
            )
            abuse["slow"] = asyncio.run(slow_clients(base + "/predict", texts, 330, 20))
            abuse["slow_headers"] = asyncio.run(
                slow_clients(base + "/predict", texts, 330, 20, headers_only=True)
            )
            abuse["huge"] = asyncio.run(huge_bodies(base + "/predict", pid, 3, 300 << 20))
    report = {
        "machine": f"{platform.machine()}, {len(cores)} cores shared by server and client",
        "seconds": args.seconds,
        "repeat": args.repeat,
        "texts_per_request": args.texts_per_request,
        "levels": table,
        "many_texts": {
            "texts_per_request": args.many,
            "served_texts_per_second": _median(many["served"]),
            "runtime_texts_per_second": _median(many["runtime"]),
        },
        "abuse": abuse,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "serve_peer.json").write_text(json.dumps(report, indent=2))
    md = [
        f"{args.texts_per_request} IMDB review(s) per request, keep-alive, loopback, "
        f"{args.seconds:g} s per level, median of {args.repeat} interleaved runs; "
        f"{report['machine']}.",
        "",
        "| server | concurrency | requests/s | vs peer | p50 (ms) | p99 (ms) | CPU s / 1,000 req |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    peer = {x["concurrency"]: x["requests_per_second"] for x in table.get("peer", [])}
    for kind, levels in table.items():
        for x in levels:
            ratio = x["requests_per_second"] / peer[x["concurrency"]] if peer else None
            md.append(
                f"| {kind} | {x['concurrency']} | {x['requests_per_second']:,.0f} | "
                f"{'-' if ratio is None else f'{ratio:.2f}x'} | {x['p50_ms']:.2f} | "
                f"{x['p99_ms']:.2f} | {x['cpu_s_per_1000']:.2f} |"
            )
    m = report["many_texts"]
    if m["served_texts_per_second"]:
        md += [
            "",
            f"{args.many} texts per request (local engine, 2 clients): "
            f"{m['served_texts_per_second']:,.0f} texts/s served, against "
            f"{m['runtime_texts_per_second']:,.0f} texts/s for `Runtime.predict` in one process, "
            "one call per request on the same requests "
            f"({m['served_texts_per_second'] / m['runtime_texts_per_second']:.0%}).",
        ]
    if abuse:
        o, mb = abuse["overload"], 2**20
        md += [
            "",
            f"Overload (local engine): offered {o['offered_rate']:.0f} req/s for "
            f"{args.seconds:g} s: {o['statuses']}; {o['ok_per_second_during']:.0f} 200s per "
            f"second meanwhile; a 503 took {_ms(o['p50_503_ms'])} ms (p50), "
            f"{_ms(o['p99_503_ms'])} ms (p99).",
        ]
        for slow in (abuse["slow"], abuse["slow_headers"]):
            md.append(
                f"Slow clients: {slow['slow_connections']} stalled {slow['stalled']}; 20 normal "
                f"requests meanwhile -> {slow['normal_statuses']} in {slow['normal_seconds']:.1f} "
                f"s; the stalled ones -> {slow['slow_statuses']}."
            )
        huge = abuse["huge"]
        md.append(
            f"Huge bodies: {huge['count']} chunked bodies of {huge['bytes'] >> 20} MB -> "
            f"{huge['statuses']}; server memory {huge['pss_before'] / mb:.0f} MB before, "
            f"{huge['pss_peak'] / mb:.0f} MB peak."
        )
    (args.out / "serve_peer.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()
