"""What a job's input list costs before a row is read: listing many objects on S3.

    python bench/bench_listing.py [--objects 100000] [--storage seaweedfs,moto] [--repeat 3]

Puts --objects small JSON Lines objects (one review each) under one prefix of each S3 server
(started here on 127.0.0.1 in turn, as in bench_score.py), then in a fresh process per run
times ``critic score``'s input expansion of that folder (``expand_inputs``: one listing,
1,000 objects per request, each object's kind and format) and the metadata the plan asks of
every input (size and fingerprint; ETags come with the listing), and measures the driver's
memory for the list of inputs (tracemalloc, Python objects). The per-object cost is what a
job of that many inputs pays before the layout scan reads any object (that part scales with
the bytes: see the many-small-files rows of bench_score.py). Median of --repeat. Writes
bench/results/listing[-TAG].{json,md}.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bench_score import BUCKET, HERE, s3_server

PROBE = """
import json, sys, time, tracemalloc
from critic.serve.score.job import expand_inputs
from critic.serve.score.manifest import fingerprint
from critic.storage import location
location(sys.argv[1] + "-none").files()  # imports and the S3 client, made once per job
tracemalloc.start()
start = time.perf_counter()
inputs = expand_inputs([sys.argv[1]])
listed = time.perf_counter() - start
fingerprints = [fingerprint(p) for p in inputs]
planned = time.perf_counter() - start
size, _ = tracemalloc.get_traced_memory()
print(json.dumps({"objects": len(inputs), "list_seconds": listed,
                  "metadata_seconds": planned - listed, "python_bytes": size}))
"""


def populate(objects: int) -> float:
    """``objects`` one-review JSON Lines objects under ``many/``, 16 PUTs at a time."""
    from critic.storage import location, s3_object

    client, bucket, _ = s3_object(location(f"s3://{BUCKET}/many"))

    def put(i: int) -> None:
        body = json.dumps({"id": i, "text": f"review number {i}"}).encode() + b"\n"
        client.put_object(Bucket=bucket, Key=f"many/part-{i:07d}.jsonl", Body=body)

    start = time.perf_counter()
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(put, range(objects)))
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=100_000)
    parser.add_argument("--storage", default="seaweedfs,moto")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--out", type=Path, default=HERE / "results")
    parser.add_argument("--tag", default="", help="results as listing-TAG.{json,md}")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    results = {}
    for storage in args.storage.split(","):
        with tempfile.TemporaryDirectory() as tmp, s3_server(storage, Path(tmp)):
            took = populate(args.objects)
            print(f"{storage}: {args.objects:,} objects put in {took:.0f} s", flush=True)
            runs = []
            for _ in range(args.repeat):
                probe = [sys.executable, "-c", PROBE, f"s3://{BUCKET}/many"]
                done = subprocess.run(probe, capture_output=True, text=True, check=True)
                runs.append(json.loads(done.stdout.splitlines()[-1]))
                assert runs[-1]["objects"] == args.objects, runs[-1]
                print(f"{storage}: {runs[-1]}", flush=True)
            results[storage] = {
                key: statistics.median(r[key] for r in runs)
                for key in ("list_seconds", "metadata_seconds", "python_bytes")
            } | {"runs": runs, "put_per_second": args.objects / took}
    report = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "objects": args.objects,
        "repeat": args.repeat,
        "results": results,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    name = f"listing-{args.tag}" if args.tag else "listing"
    (args.out / f"{name}.json").write_text(json.dumps(report, indent=2))
    n = args.objects
    md = [
        f"critic score's input list of {n:,} S3 objects under one prefix ({report['machine']}; "
        f"server on 127.0.0.1, same cores): expand the folder (listing), then each input's "
        f"size and fingerprint; median of {args.repeat} fresh processes.",
        "",
        "| store | listing (s) | per object (us) | size + fingerprint (s) | driver memory (MB) "
        "| per object (bytes) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for storage, r in results.items():
        md.append(
            f"| {storage} | {r['list_seconds']:.2f} | {1e6 * r['list_seconds'] / n:.0f} | "
            f"{r['metadata_seconds']:.2f} | {r['python_bytes'] / 2**20:.0f} | "
            f"{r['python_bytes'] / n:.0f} |"
        )
    (args.out / f"{name}.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()
