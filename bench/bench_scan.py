"""What the layout scan of a local text input costs the driver: ``critic score`` reads a JSON
Lines or CSV input once before the first shard, to count its rows, find where each shard
begins and take its sha256 (the input's fingerprint).

    python bench/bench_scan.py [--rows 1000000] [--format jsonl,csv] [--repeat 5]

Writes --rows IMDB reviews (50,000 repeated, as in bench_score.py) as each format, then times,
interleaved in one process, median of --repeat:

- ``scan``: the layout scan without a fingerprint (what an input on S3 pays: its ETag stands
  for the sha256);
- ``scan+sha256``: the job's scan of a local input, which hashes what it reads;
- ``sha256``: hashlib alone over the same file in 4 MB reads (the peer: the cost of the
  fingerprint on its own);
- ``python scan+sha256`` (CSV): the same scan by Python's csv module, record by record (the
  readers' scan before the C++ kernel's ``CsvScan``, kept for Python 3.10): the kernel's peer.

Writes bench/results/scan[-TAG].{json,md}.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from bench_score import DEFAULT_DATA, HERE

SHARD_ROWS = 20_000  # critic score's default --shard-rows


def make_inputs(data: Path, rows: int, formats: list[str], folder: Path) -> dict[str, Path]:
    reviews = pq.read_table(data / "train.parquet", columns=["text"]).column("text")
    texts = [reviews[i % len(reviews)].as_py() for i in range(rows)]
    paths = {}
    for fmt in formats:
        path = folder / f"reviews.{fmt}"
        if fmt == "jsonl":
            with open(path, "w", encoding="utf-8") as fh:
                for i, text in enumerate(texts):
                    fh.write(json.dumps({"id": i, "text": text}) + "\n")
        elif fmt == "csv":
            pacsv.write_csv(pa.table({"id": list(range(rows)), "text": texts}), path)
        elif fmt == "parquet":  # the same rows, in 50,000-row groups
            table = pa.table({"id": list(range(rows)), "text": texts})
            pq.write_table(table, path, row_group_size=50_000)
        else:
            raise SystemExit(f"unknown format {fmt!r}: jsonl, csv or parquet")
        paths[fmt] = path
    return paths


def sha256_alone(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(4 << 20):
            digest.update(block)
    return digest.hexdigest()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--format", default="jsonl,csv")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--out", type=Path, default=HERE / "results")
    parser.add_argument("--tag", default="")
    args = parser.parse_args()
    from critic.data import readers
    from critic.data.readers import batch_starts
    from critic.storage import location

    formats = args.format.split(",")
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        paths = make_inputs(args.data, args.rows, formats, Path(tmp))
        for fmt, path in paths.items():
            times: dict[str, list[float]] = {"scan": [], "scan+sha256": [], "sha256": []}
            if fmt == "csv":
                times["python scan+sha256"] = []
            for _ in range(args.repeat):  # interleaved: the VM's speed drifts
                start = time.perf_counter()
                _, rows = batch_starts(path, SHARD_ROWS, fmt)
                times["scan"].append(time.perf_counter() - start)
                digest = hashlib.sha256()
                start = time.perf_counter()
                _, hashed_rows = batch_starts(path, SHARD_ROWS, fmt, digest=digest)
                times["scan+sha256"].append(time.perf_counter() - start)
                start = time.perf_counter()
                alone = sha256_alone(path)
                times["sha256"].append(time.perf_counter() - start)
                if rows != args.rows or hashed_rows != rows or digest.hexdigest() != alone:
                    raise SystemExit(f"{fmt}: the scan counted {rows} rows or hashed otherwise")
                if fmt == "csv":
                    py_digest = hashlib.sha256()
                    start = time.perf_counter()
                    py_scan = readers._csv_starts_python(
                        location(path), fmt, SHARD_ROWS, 0, py_digest
                    )
                    times["python scan+sha256"].append(time.perf_counter() - start)
                    if py_scan != batch_starts(path, SHARD_ROWS, fmt):
                        raise SystemExit("csv: the kernel's scan and Python's disagree")
            size = path.stat().st_size
            results[fmt] = {
                "bytes": size,
                **{
                    k: {"median_seconds": statistics.median(v), "runs": v} for k, v in times.items()
                },
            }
            med = {k: statistics.median(v) for k, v in times.items()}
            print(f"{fmt}: " + ", ".join(f"{k} {v:.2f} s" for k, v in med.items()), flush=True)
    write(args, results)


def write(args, results: dict) -> None:
    machine = f"{platform.machine()}, {len(os.sched_getaffinity(0))} cores"
    name = f"scan-{args.tag}" if args.tag else "scan"
    args.out.mkdir(parents=True, exist_ok=True)
    doc = {"machine": machine, "rows": args.rows, "repeat": args.repeat, "formats": results}
    (args.out / f"{name}.json").write_text(json.dumps(doc, indent=1))
    lines = [
        f"Layout scan of one local input of {args.rows:,} IMDB reviews; {machine}; median of "
        f"{args.repeat}, interleaved, in one process.",
        "",
        "| format | MB | scan (s) | scan+sha256, the job's (s) | sha256 alone (s) | "
        "scan+sha256 MB/s | fingerprint's cost over the scan | Python's csv scan+sha256 (s) | "
        "the job's scan vs Python's |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for fmt, r in results.items():
        scan, job, alone = (r[k]["median_seconds"] for k in ("scan", "scan+sha256", "sha256"))
        mb = r["bytes"] / 1e6
        peer = r.get("python scan+sha256", {}).get("median_seconds")
        vs = f"| {peer:.2f} | {peer / job:.1f}x |" if peer else "| | |"
        lines.append(
            f"| {fmt} | {mb:,.0f} | {scan:.2f} | {job:.2f} | {alone:.2f} | {mb / job:,.0f} | "
            f"+{(job - scan) / scan:.0%} {vs}"
        )
    (args.out / f"{name}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    sys.exit(main())
